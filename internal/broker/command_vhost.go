package broker

import (
	"strings"

	"github.com/warren-mq/warren/internal/amqp091"
)

// The vhost commands. Field tags are part of the on-disk format (see
// command.go): never reuse one.

func init() {
	registerCommand(cmdPutVHost, func() command { return &putVHostCmd{} })
	registerCommand(cmdDeleteVHost, func() command { return &deleteVHostCmd{} })
}

// VHostInfo is what an operator sets on a vhost.
type VHostInfo struct {
	Description      string
	Tags             string // comma-separated
	DefaultQueueType string
}

// putVHostCmd creates a vhost (with its predeclared exchanges) or updates its
// description, tags and default queue type.
type putVHostCmd struct {
	Name                                string
	Description, Tags, DefaultQueueType string
}

func (c *putVHostCmd) typ() cmdType { return cmdPutVHost }

func (c *putVHostCmd) fields() []field {
	return []field{{2, &c.Name}, {4, &c.Description}, {6, &c.Tags}, {8, &c.DefaultQueueType}}
}

func (c *putVHostCmd) apply(a *applier) (any, error) {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.vhosts[c.Name]
	if !ok {
		v = newVHost(b, c.Name)
		b.vhosts[c.Name] = v
	}
	v.infoMu.Lock()
	v.info = VHostInfo{Description: c.Description, Tags: c.Tags, DefaultQueueType: c.DefaultQueueType}
	v.infoMu.Unlock()
	return v, nil
}

// deleteVHostCmd deletes a vhost with its exchanges, queues and messages.
type deleteVHostCmd struct{ Name string }

func (c *deleteVHostCmd) typ() cmdType { return cmdDeleteVHost }

func (c *deleteVHostCmd) fields() []field { return []field{{2, &c.Name}} }

func (c *deleteVHostCmd) apply(a *applier) (any, error) {
	b := a.b
	b.mu.Lock()
	v, ok := b.vhosts[c.Name]
	delete(b.vhosts, c.Name)
	b.mu.Unlock()
	if !ok {
		return nil, nil
	}
	v.mu.RLock()
	queues := make([]*Queue, 0, len(v.queues))
	for _, q := range v.queues {
		queues = append(queues, q)
	}
	streams := make([]*Stream, 0, len(v.streams))
	for _, s := range v.streams {
		streams = append(streams, s)
	}
	v.mu.RUnlock()
	for _, q := range queues {
		q.destroy(a)
	}
	for _, s := range streams {
		s.destroy(a)
	}
	b.forgetVHostAccess(c.Name)
	b.offsets.forgetVHost(c.Name)
	for _, fn := range b.vhostDeleted() {
		fn(c.Name)
	}
	return nil, nil
}

func (v *VHost) putCommand() *putVHostCmd {
	info := v.Info()
	return &putVHostCmd{Name: v.Name, Description: info.Description, Tags: info.Tags, DefaultQueueType: info.DefaultQueueType}
}

// Info returns what an operator set on the vhost.
func (v *VHost) Info() VHostInfo {
	v.infoMu.Lock()
	defer v.infoMu.Unlock()
	return v.info
}

// PutVHost creates a vhost or updates its information; durable.
func (b *Broker) PutVHost(name string, info VHostInfo) (*VHost, error) {
	if name == "" {
		return nil, amqp091.NewError(amqp091.PreconditionFailed, "vhost name must not be empty")
	}
	if strings.IndexByte(name, 0) >= 0 {
		// The store keys a priority queue's levels by vhost, NUL, level.
		return nil, amqp091.NewError(amqp091.PreconditionFailed, "vhost name must not contain NUL")
	}
	res, _, err := b.commit(&putVHostCmd{Name: name, Description: info.Description, Tags: info.Tags, DefaultQueueType: info.DefaultQueueType}, true)
	if err != nil {
		return nil, err
	}
	return res.(*VHost), nil
}

// DeleteVHost deletes a vhost, its queues and their messages; durable. The
// functions given to OnVHostDeleted run (front ends close its connections).
func (b *Broker) DeleteVHost(name string) error {
	if _, ok := b.VHost(name); !ok {
		return amqp091.NewError(amqp091.NotFound, "no vhost '%s'", name)
	}
	_, _, err := b.commit(&deleteVHostCmd{Name: name}, true)
	return err
}

// OnVHostDeleted registers fn to run after a vhost is deleted.
func (b *Broker) OnVHostDeleted(fn func(vhost string)) {
	b.hookMu.Lock()
	b.onVHostDeleted = append(b.onVHostDeleted, fn)
	b.hookMu.Unlock()
}

func (b *Broker) vhostDeleted() []func(string) {
	b.hookMu.Lock()
	defer b.hookMu.Unlock()
	return b.onVHostDeleted
}

// predeclared reports whether an exchange is one every vhost has from the start.
func predeclared(name string) bool { return name == "" || strings.HasPrefix(name, "amq.") }

// validExchangeKind reports whether Warren has an exchange type of that name.
func validExchangeKind(kind string) bool {
	_, ok := newRouteTable(kind)
	return ok
}
