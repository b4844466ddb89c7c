package broker

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/streamlog"
)

// Stream is a stream queue (x-queue-type=stream): an append-only log of
// record batches that consumers read from an offset of their choosing and
// that acknowledgements never shrink. It is a queue type of its own beside
// the classic Queue, sharing only the names map's namespace, the bindings
// and the metadata commands (a stream is declared and deleted by the same
// queue commands, its type kept in its arguments). The Kafka front end reads
// and writes its Log directly.
type Stream struct {
	name  string
	vhost *VHost
	// Args are the arguments it was declared with (kept for equivalence
	// checks, the snapshot and the query side).
	Args     amqp091.Table
	declared streamArgs
	dir      string
	log      *streamlog.Log
	// pol are the policies that apply, replaced under the vhost's lock.
	pol atomic.Pointer[appliedPolicies]

	pub streamPublishes // see stream_publish.go

	mu        sync.Mutex
	args      streamArgs  // in effect: declared merged with the policies
	consumers []*Consumer // in arrival order, for the query side
	readers   map[*Consumer]*streamConsumer
	deleted   bool
	// closing is closed when the stream is deleted or the broker closes,
	// ending its consumers' waits on the log.
	closing   chan struct{}
	closeOnce sync.Once
}

// Name returns the stream's name.
func (s *Stream) Name() string { return s.name }

// Log returns the stream's log, which the Kafka front end reads and writes.
func (s *Stream) Log() *streamlog.Log { return s.log }

// VHost returns the vhost the stream belongs to.
func (s *Stream) VHost() *VHost { return s.vhost }

// isStreamDecl reports whether a declare asks for a stream.
func isStreamDecl(args amqp091.Table) bool {
	t, _ := args["x-queue-type"].(string)
	return t == "stream"
}

// streamDir is where a stream's log lives: <stream dir>/<vhost>/<name>, each
// name escaped so that any AMQP name (slashes, dots, non-ASCII) makes one
// safe path element; a long one is shortened to a hash, so the element stays
// within file systems' 255-byte limit.
func (b *Broker) streamDir(vhost, name string) string {
	return filepath.Join(b.streamRoot, pathElement(vhost), pathElement(name))
}

func pathElement(s string) string {
	const hexdigits = "0123456789ABCDEF"
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.' && i > 0:
			out = append(out, c)
		default:
			out = append(out, '%', hexdigits[c>>4], hexdigits[c&15])
		}
	}
	if len(out) > 200 {
		sum := sha256.Sum256([]byte(s))
		return string(out[:100]) + "~" + hex.EncodeToString(sum[:16])
	}
	if len(out) == 0 {
		return "%"
	}
	return string(out)
}

// declareStream applies a stream's declaration unless a queue or stream of
// that name exists: it opens the log (creating its directory, or recovering
// it at boot) without holding the vhost's lock, which routing takes; apply
// runs one command at a time, so nothing else creates the name meanwhile.
// The arguments were checked when the command was made; one a newer rule
// refuses is ignored, as for queues.
func (a *applier) declareStream(v *VHost, name string, args amqp091.Table) (any, error) {
	v.mu.RLock()
	q, isQueue := v.queues[name]
	old, isStream := v.streams[name]
	ap := v.policiesForLocked(name, policyStream)
	v.mu.RUnlock()
	switch {
	case isQueue:
		return q, nil // the caller compares it with what it asked for
	case isStream:
		return old, nil
	}
	sa, err := parseStreamArgs(name, v.Name, args)
	if err != nil {
		v.broker.log.Warn("stream arguments no longer valid; ignoring them", "vhost", v.Name, "queue", name, "err", err)
		sa = streamArgs{}
	}
	s := &Stream{name: name, vhost: v, Args: args, declared: sa, dir: v.broker.streamDir(v.Name, name), readers: map[*Consumer]*streamConsumer{}, closing: make(chan struct{})}
	s.pol.Store(ap)
	s.args = sa.withPolicy(ap.definition())
	l, err := streamlog.Open(s.dir, s.args.options(), v.broker.log.With("vhost", v.Name, "stream", name))
	if err != nil {
		v.broker.streamsUnopened.Store(s.dir, true)
		v.broker.log.Error("stream: cannot open its log", "vhost", v.Name, "stream", name, "err", err)
		return nil, amqp091.NewError(amqp091.InternalError, "cannot open the log of stream '%s' in vhost '%s'", name, v.Name)
	}
	s.log = l
	v.mu.Lock()
	v.streams[name] = s
	v.mu.Unlock()
	if !a.boot {
		v.broker.totals.queuesCreated.Add(1)
	}
	return s, nil
}

func (s *Stream) equivalent(d QueueDecl) error {
	what := "queue '" + s.name + "' in vhost '" + s.vhost.Name + "'"
	if !d.Durable {
		return inequivalent("durable", what, "'false'", "'true'")
	}
	if d.AutoDelete {
		return inequivalent("auto_delete", what, "'true'", "'false'")
	}
	if d.Exclusive {
		return amqp091.NewError(amqp091.ResourceLocked, "cannot obtain exclusive access to locked queue '%s' in vhost '%s'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.", s.name, s.vhost.Name)
	}
	return argsEquivalent(what, s.Args, d.Args, streamArgKeys)
}

// Counts returns the records a queue.declare-ok reports (0, as RabbitMQ's
// streams do: a stream has no ready messages) and the consumer count.
func (s *Stream) Counts() (messages, consumers int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return 0, len(s.consumers)
}

// destroy applies the stream's deletion: consumers are cancelled, the log
// closed and its files removed, the stream unlinked.
func (s *Stream) destroy(a *applier) {
	s.mu.Lock()
	if s.deleted {
		s.mu.Unlock()
		return
	}
	s.deleted = true
	consumers := s.consumers
	readers := s.readers
	s.consumers, s.readers = nil, map[*Consumer]*streamConsumer{}
	s.mu.Unlock()
	for _, sc := range readers {
		sc.cancel()
	}
	s.vhost.removeStream(a, s)
	s.closeOnce.Do(func() { close(s.closing) })
	if err := s.log.Delete(); err != nil {
		s.vhost.broker.log.Error("stream: deleting its files failed", "vhost", s.vhost.Name, "stream", s.name, "err", err)
	}
	for _, c := range consumers {
		c.Sink.Cancelled(c)
	}
}

// close closes the log when the broker shuts down.
func (s *Stream) close() {
	s.closeOnce.Do(func() { close(s.closing) })
	if err := s.log.Close(); err != nil {
		s.vhost.broker.log.Error("stream: closing its log failed", "vhost", s.vhost.Name, "stream", s.name, "err", err)
	}
}

// Stream returns a stream by name.
func (v *VHost) Stream(name string) (*Stream, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s, ok := v.streams[name]
	return s, ok
}

// Streams returns the vhost's streams, sorted by name.
func (v *VHost) Streams() []*Stream {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]*Stream, 0, len(v.streams))
	for _, s := range v.streams {
		out = append(out, s)
	}
	sortStreams(out)
	return out
}

// removeStream unlinks a destroyed stream from the vhost and the bindings to it.
func (v *VHost) removeStream(a *applier, s *Stream) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.streams[s.name] != s {
		return
	}
	delete(v.streams, s.name)
	v.unbindQueueLocked(a, s.name)
}

// Delete deletes the stream with its records and files (queue.delete,
// Kafka's DeleteTopics), through the same command as a queue's deletion.
func (s *Stream) Delete() error {
	v := s.vhost
	_, err := v.run([]string{queueKey(s.name)}, func() (command, bool, any, error) {
		if cur, ok := v.Stream(s.name); !ok || cur != s {
			return nil, false, nil, nil // deleted already
		}
		return &deleteQueueCmd{VHost: v.Name, Name: s.name}, true, nil, nil
	})
	return err
}

// DeclareStream declares a stream, or finds the one of that name whose
// arguments are equivalent (Kafka's CreateTopics; the same command as an
// AMQP queue.declare with x-queue-type=stream). args may be nil.
func (v *VHost) DeclareStream(name string, args amqp091.Table) (*Stream, error) {
	a := amqp091.Table{"x-queue-type": "stream"}
	for k, x := range args {
		a[k] = x
	}
	r, err := v.Declare(QueueDecl{Name: name, Durable: true, Args: a})
	if err != nil {
		return nil, err
	}
	if r.Stream == nil {
		return nil, amqp091.NewError(amqp091.PreconditionFailed, "inequivalent arg 'x-queue-type' for queue '%s' in vhost '%s': received the value 'stream' of type 'longstr' but current is none", name, v.Name)
	}
	return r.Stream, nil
}

// hasQueueLocked reports whether a queue or stream of that name exists.
func (v *VHost) hasQueueLocked(name string) bool {
	if _, ok := v.queues[name]; ok {
		return true
	}
	_, ok := v.streams[name]
	return ok
}

// closeStreams closes every stream's log (the broker is closing); a
// temporary stream directory is removed with them.
func (b *Broker) closeStreams() {
	for _, v := range b.VHosts() {
		for _, s := range v.Streams() {
			s.close()
		}
	}
	if b.streamRootTemp {
		_ = os.RemoveAll(b.streamRoot)
	}
}

// removeStrayStreamDirs removes stream directories no stream owns: those of
// streams deleted by a command whose apply did not get to remove the files
// before a crash, when the log was compacted since (the replay then never
// sees the stream to delete it again).
func (b *Broker) removeStrayStreamDirs() {
	vdirs, err := os.ReadDir(b.streamRoot)
	if err != nil {
		return // none yet
	}
	owned := map[string]bool{}
	for _, v := range b.VHosts() {
		for _, s := range v.Streams() {
			owned[s.dir] = true
		}
	}
	b.streamsUnopened.Range(func(dir, _ any) bool {
		owned[dir.(string)] = true
		return true
	})
	for _, vd := range vdirs {
		vpath := filepath.Join(b.streamRoot, vd.Name())
		sdirs, err := os.ReadDir(vpath)
		if err != nil || !vd.IsDir() {
			continue
		}
		for _, sd := range sdirs {
			p := filepath.Join(vpath, sd.Name())
			if !owned[p] {
				b.log.Warn("removing the files of a stream that no longer exists", "dir", p)
				_ = os.RemoveAll(p)
			}
		}
	}
}

// policiesChanged recomputes the retention in effect from new policies and
// hands the log its options, which it applies at its next check. Those are
// LogOptions: the stream's Kafka topic config still wins over the arguments
// and policies (see topic_config.go), so a policy change keeps what
// AlterConfigs set. Commands apply one at a time, so this and a topic
// config change cannot hand the log their options out of order.
func (s *Stream) policiesChanged(ap *appliedPolicies) {
	s.mu.Lock()
	s.args = s.declared.withPolicy(ap.definition())
	s.mu.Unlock()
	s.log.SetOptions(s.LogOptions())
}

// Options returns the log options the stream's arguments and policies set,
// without its Kafka topic config (LogOptions is what the log runs with).
func (s *Stream) Options() streamlog.Options {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.args.options()
}
