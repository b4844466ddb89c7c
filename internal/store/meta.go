package store

import (
	"encoding/binary"
	"slices"
	"sort"
)

// metaState is the live metadata a command log describes: the last command
// per object, objects deleted since dropped. It lets a log be compacted to one
// command per object while replaying to the same state.
type metaState struct {
	seq    uint64
	objs   map[metaKey]metaObj
	opaque bool // an op it does not know was seen: the log cannot be compacted
}

// metaKey names one metadata object.
type metaKey struct {
	kind  uint8 // metaKind*; also the replay order of a compacted log
	vhost string
	name  string // vhost-local name; binding source
	dest  string // bindings only
	toEx  bool
	key   string
	args  string
}

const (
	metaKindVHost uint8 = iota
	metaKindUser
	metaKindExchange
	metaKindQueue
	metaKindBinding
)

type metaObj struct {
	seq uint64
	cmd MetaCommand
}

// apply updates the state with one command.
func (s *metaState) apply(c MetaCommand) {
	if s.objs == nil {
		s.objs = map[metaKey]metaObj{}
	}
	s.seq++
	put := func(k metaKey) { s.objs[k] = metaObj{s.seq, cloneMeta(c)} }
	switch c.Op {
	case MetaDeclareVHost:
		put(metaKey{kind: metaKindVHost, vhost: c.VHost})
	case MetaDeleteVHost:
		delete(s.objs, metaKey{kind: metaKindVHost, vhost: c.VHost})
		s.deleteWhere(func(k metaKey) bool { return k.kind >= metaKindExchange && k.vhost == c.VHost })
	case MetaPutUser:
		put(metaKey{kind: metaKindUser, name: c.Name})
	case MetaDeleteUser:
		delete(s.objs, metaKey{kind: metaKindUser, name: c.Name})
	case MetaDeclareExchange:
		put(metaKey{kind: metaKindExchange, vhost: c.VHost, name: c.Name})
	case MetaDeleteExchange:
		delete(s.objs, metaKey{kind: metaKindExchange, vhost: c.VHost, name: c.Name})
		s.deleteWhere(func(k metaKey) bool {
			return k.kind == metaKindBinding && k.vhost == c.VHost && (k.name == c.Name || k.toEx && k.dest == c.Name)
		})
	case MetaDeclareQueue:
		put(metaKey{kind: metaKindQueue, vhost: c.VHost, name: c.Name})
	case MetaDeleteQueue:
		delete(s.objs, metaKey{kind: metaKindQueue, vhost: c.VHost, name: c.Name})
		s.deleteWhere(func(k metaKey) bool {
			return k.kind == metaKindBinding && k.vhost == c.VHost && !k.toEx && k.dest == c.Name
		})
	case MetaBind:
		put(bindingKey(c))
	case MetaUnbind:
		delete(s.objs, bindingKey(c))
	default:
		s.opaque = true
	}
}

func bindingKey(c MetaCommand) metaKey {
	return metaKey{kind: metaKindBinding, vhost: c.VHost, name: c.Name, dest: c.Destination, toEx: c.ToExchange, key: c.Key, args: string(c.Args)}
}

func (s *metaState) deleteWhere(f func(metaKey) bool) {
	for k := range s.objs {
		if f(k) {
			delete(s.objs, k)
		}
	}
}

// compactDue reports whether a log of n commands should be rewritten: when it
// has grown well beyond the live state, so rewrites cost O(1) per append.
func (s *metaState) compactDue(n int) bool {
	return !s.opaque && n >= 256 && n > 2*len(s.objs)
}

// commands returns the state as a log: vhosts, users, exchanges, queues, then
// bindings, each kind in the order of its last command.
func (s *metaState) commands() []MetaCommand {
	keys := make([]metaKey, 0, len(s.objs))
	for k := range s.objs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		return s.objs[a].seq < s.objs[b].seq
	})
	out := make([]MetaCommand, len(keys))
	for i, k := range keys {
		out[i] = s.objs[k].cmd
	}
	return out
}

// cloneMeta copies the byte slices, so a caller reusing its buffers cannot
// change what the store holds.
func cloneMeta(c MetaCommand) MetaCommand {
	c.Args = slices.Clip(slices.Clone(c.Args))
	c.Secret = slices.Clip(slices.Clone(c.Secret))
	if len(c.Args) == 0 {
		c.Args = nil
	}
	if len(c.Secret) == 0 {
		c.Secret = nil
	}
	return c
}

// appendMetaPayload encodes c as a metadata record payload.
func appendMetaPayload(b []byte, c MetaCommand) []byte {
	toEx := byte(0)
	if c.ToExchange {
		toEx = 1
	}
	b = append(b, byte(c.Op), c.Flags, toEx)
	for _, s := range []string{c.VHost, c.Name, c.Kind, c.Destination, c.Key, c.Tags} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, s := range [][]byte{c.Args, c.Secret} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// decodeMetaPayload decodes a metadata record payload; it never reads or
// allocates beyond what p holds.
func decodeMetaPayload(p []byte) (MetaCommand, error) {
	var c MetaCommand
	if len(p) < 3 || p[2] > 1 || p[0] == 0 {
		return c, errCorrupt
	}
	c.Op, c.Flags, c.ToExchange = MetaOp(p[0]), p[1], p[2] == 1
	p = p[3:]
	field := func() ([]byte, bool) {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, false
		}
		f := p[k : k+int(n)]
		p = p[k+int(n):]
		return f, true
	}
	strs := []*string{&c.VHost, &c.Name, &c.Kind, &c.Destination, &c.Key, &c.Tags}
	for _, s := range strs {
		f, ok := field()
		if !ok {
			return c, errCorrupt
		}
		*s = string(f)
	}
	for _, s := range []*[]byte{&c.Args, &c.Secret} {
		f, ok := field()
		if !ok {
			return c, errCorrupt
		}
		if len(f) > 0 {
			*s = slices.Clone(f)
		}
	}
	if len(p) != 0 {
		return c, errCorrupt
	}
	return c, nil
}
