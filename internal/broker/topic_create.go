package broker

import (
	"strconv"

	"github.com/warren-mq/warren/internal/amqp091"
)

// Creating a topic, or growing a super stream, is one metadata command:
// the partition streams, the super stream's exchange and bindings and the
// topic configs of the new streams are in one record, so a broker that
// stops half way has either all of it after its restart or none of it
// (several commands left streams without their exchange, whose names then
// blocked creating the topic again). Its apply is the applies of the
// commands that would otherwise be logged one by one, so the result is
// the same as theirs. Field tags are part of the on-disk format (see
// command.go): never reuse one.

func init() {
	registerCommand(cmdCreateTopic, func() command { return &createTopicCmd{} })
}

// createTopicCmd creates topic Name: the stream Name (Super false), or
// partitions From to To-1 of super stream Name, with its exchange when
// From is 0; Config is the topic config of every stream it creates.
type createTopicCmd struct {
	VHost, Name string
	Super       bool
	From, To    int64
	Config      amqp091.Table // config name -> string value
}

func (c *createTopicCmd) typ() cmdType { return cmdCreateTopic }

func (c *createTopicCmd) fields() []field {
	return []field{{2, &c.VHost}, {4, &c.Name}, {6, &c.Super}, {8, &c.From}, {10, &c.To}, {12, &c.Config}}
}

// streams are the names of the streams the command creates.
func (c *createTopicCmd) streams() []string {
	if !c.Super {
		return []string{c.Name}
	}
	var out []string
	for i := c.From; i < c.To; i++ {
		out = append(out, PartitionName(c.Name, int(i)))
	}
	return out
}

// apply creates everything or, if a name is taken (which validation
// rules out; a replayed log has the same state), nothing.
func (c *createTopicCmd) apply(a *applier) (any, error) {
	v, err := a.vhostFor(c.VHost)
	if err != nil {
		return nil, err
	}
	names := c.streams()
	v.mu.RLock()
	taken := ""
	for _, n := range names {
		if v.hasQueueLocked(n) {
			taken = n
		}
	}
	e, hasExchange := v.exchanges[c.Name]
	switch {
	case c.Super && c.From == 0 && hasExchange, !c.Super && hasExchange:
		taken = c.Name
	case c.Super && c.From > 0 && (!hasExchange || e.Kind != SuperStreamKind):
		taken = c.Name // nothing to grow: refused as a whole too
	}
	v.mu.RUnlock()
	if taken != "" {
		return nil, ErrTopicExists{taken}
	}
	for _, n := range names {
		if _, err := (&declareQueueCmd{VHost: c.VHost, Name: n, Durable: true, Args: amqp091.Table{"x-queue-type": "stream"}}).apply(a); err != nil {
			return nil, err
		}
	}
	if c.Super && c.From == 0 {
		if _, err := (&declareExchangeCmd{VHost: c.VHost, Name: c.Name, Kind: SuperStreamKind, Durable: true}).apply(a); err != nil {
			return nil, err
		}
	}
	if c.Super {
		for i := c.From; i < c.To; i++ {
			b := &bindCmd{VHost: c.VHost, BindingDecl: BindingDecl{Source: c.Name, Destination: PartitionName(c.Name, int(i)),
				Key: strconv.FormatInt(i, 10), Args: amqp091.Table{PartitionOrderArg: i}}}
			if _, err := b.apply(a); err != nil {
				return nil, err
			}
		}
	}
	if len(c.Config) > 0 {
		for _, n := range names {
			if _, err := (&setTopicConfigCmd{VHost: c.VHost, Stream: n, Config: c.Config}).apply(a); err != nil {
				return nil, err
			}
		}
	}
	return nil, nil
}

// createTopic validates and commits one createTopicCmd; topicAdmin is held.
// The names it creates are reserved and count against the vhost's queue
// limit while it runs, as a declare's do.
func (v *VHost) createTopic(c *createTopicCmd, cfg map[string]string) error {
	for k, x := range cfg {
		if err := CheckTopicConfig(k, x); err != nil {
			return err
		}
	}
	if len(cfg) > 0 {
		c.Config = amqp091.Table{}
		for k, x := range cfg {
			c.Config[k] = x
		}
	}
	names := c.streams()
	keys := []string{exchangeKey(c.Name)}
	for _, n := range names {
		keys = append(keys, queueKey(n))
	}
	var slots []string
	defer func() {
		for _, n := range slots {
			v.releaseQueueSlot(n)
		}
	}()
	_, err := v.run(keys, func() (command, bool, any, error) {
		if v.broker.streamRoot == "" {
			return nil, false, nil, amqp091.NewError(amqp091.InternalError, "no stream directory configured")
		}
		if c.From == 0 {
			if err := v.topicNameFree(c.Name); err != nil {
				return nil, false, nil, err
			}
		}
		for _, n := range names {
			if c.Super {
				if err := v.topicNameFree(n); err != nil {
					return nil, false, nil, err
				}
			}
			if err := v.takeQueueSlot(n); err != nil {
				return nil, false, nil, err
			}
			slots = append(slots, n)
		}
		return c, true, nil, nil
	})
	return err
}
