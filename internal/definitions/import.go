package definitions

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// Import applies f to b in dependency order: users, vhosts, permissions,
// limits, parameters, policies, exchanges, queues, bindings. Each entity is
// an ordinary operator request, validated as such; one that fails is
// reported and the rest still imported. Entities already there with the
// same properties are left as they are, so importing twice is harmless.
func Import(b *broker.Broker, f *File) error {
	var errs []error
	fail := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	for _, u := range f.Users {
		what := fmt.Sprintf("user '%s'", u.Name)
		err := b.PutUser(broker.User{Name: u.Name, PasswordHash: u.PasswordHash, HashAlgorithm: u.HashingAlgorithm, Tags: u.Tags})
		if err == nil && len(u.Limits) > 0 {
			err = b.SetUserLimits(u.Name, u.Limits)
		}
		fail(what, err)
	}
	for _, v := range f.VHosts {
		info := broker.VHostInfo{Description: v.Description, Tags: strings.Join(v.Tags, ","), DefaultQueueType: v.DefaultQueueType}
		if m := v.Metadata; m != nil {
			info = broker.VHostInfo{Description: m.Description, Tags: strings.Join(m.Tags, ","), DefaultQueueType: m.DefaultQueueType}
		}
		_, err := b.PutVHost(v.Name, info)
		if err == nil && len(v.Limits) > 0 {
			err = b.SetVHostLimits(v.Name, v.Limits)
		}
		fail(fmt.Sprintf("vhost '%s'", v.Name), err)
	}
	for _, p := range f.Permissions {
		fail(fmt.Sprintf("permissions of user '%s' in vhost '%s'", p.User, p.VHost),
			b.SetPermissions(p.User, p.VHost, broker.Permission{Configure: p.Configure, Write: p.Write, Read: p.Read}))
	}
	for _, p := range f.TopicPermissions {
		fail(fmt.Sprintf("topic permissions of user '%s' on exchange '%s' in vhost '%s'", p.User, p.Exchange, p.VHost),
			b.SetTopicPermissions(p.User, p.VHost, broker.TopicPermission{Exchange: p.Exchange, Write: p.Write, Read: p.Read}))
	}
	errs = append(errs, importPolicies(b, f)...)
	for _, x := range f.Exchanges {
		fail(fmt.Sprintf("exchange '%s' in vhost '%s'", x.Name, x.VHost), importExchange(b, x))
	}
	for _, q := range f.Queues {
		fail(fmt.Sprintf("queue '%s' in vhost '%s'", q.Name, q.VHost), importQueue(b, q))
	}
	for _, bd := range f.Bindings {
		fail(fmt.Sprintf("binding from '%s' to %s '%s' in vhost '%s'", bd.Source, bd.DestinationType, bd.Destination, bd.VHost), importBinding(b, bd))
	}
	return errors.Join(errs...)
}

func vhost(b *broker.Broker, name string) (*broker.VHost, error) {
	v, ok := b.VHost(name)
	if !ok {
		return nil, fmt.Errorf("no vhost '%s'", name)
	}
	return v, nil
}

func importExchange(b *broker.Broker, x Exchange) error {
	v, err := vhost(b, x.VHost)
	if err != nil {
		return err
	}
	args, err := ArgsFromJSON(x.Arguments)
	if err != nil {
		return err
	}
	if strings.HasPrefix(x.Name, "amq.") || x.Name == "" {
		if _, ok := v.Exchange(x.Name); ok {
			return nil // predeclared in every vhost
		}
	}
	_, err = v.DeclareExchange(broker.ExchangeDecl{Name: x.Name, Kind: x.Type, Durable: x.Durable, AutoDelete: x.AutoDelete, Internal: x.Internal, Args: args})
	return err
}

func importQueue(b *broker.Broker, q Queue) error {
	v, err := vhost(b, q.VHost)
	if err != nil {
		return err
	}
	args, err := ArgsFromJSON(q.Arguments)
	if err != nil {
		return err
	}
	if q.Type != "" && q.Type != "classic" {
		if args == nil {
			args = amqp091.Table{}
		}
		if _, set := args["x-queue-type"]; !set {
			args["x-queue-type"] = q.Type // refused with the broker's message
		}
	}
	_, err = v.Declare(broker.QueueDecl{Name: q.Name, Durable: q.Durable, AutoDelete: q.AutoDelete, Args: args})
	return err
}

func importBinding(b *broker.Broker, bd Binding) error {
	v, err := vhost(b, bd.VHost)
	if err != nil {
		return err
	}
	args, err := ArgsFromJSON(bd.Arguments)
	if err != nil {
		return err
	}
	var toExchange bool
	switch bd.DestinationType {
	case "queue":
	case "exchange":
		toExchange = true
	default:
		return fmt.Errorf("destination_type '%s': want queue or exchange", bd.DestinationType)
	}
	return v.Bind(broker.BindingDecl{Source: bd.Source, Destination: bd.Destination, ToExchange: toExchange, Key: bd.RoutingKey, Args: args}, nil)
}

// ArgsFromJSON converts JSON arguments (decoded with UseNumber, or as
// float64) to an AMQP field table: integral numbers become 64-bit integers,
// as RabbitMQ's JSON decoder makes them, others floats; objects nest as
// tables. An empty object gives a nil table.
func ArgsFromJSON(m map[string]any) (amqp091.Table, error) {
	if len(m) == 0 {
		return nil, nil
	}
	t := amqp091.Table{}
	for _, k := range sortedKeys(m) {
		v, err := fieldValue(m[k])
		if err != nil {
			return nil, fmt.Errorf("argument '%s': %w", k, err)
		}
		t[k] = v
	}
	return t, nil
}

func fieldValue(v any) (any, error) {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, fmt.Errorf("bad number %s", v)
		}
		return f, nil
	case float64:
		if v == float64(int64(v)) {
			return int64(v), nil
		}
		return v, nil
	case string, bool, nil:
		return v, nil
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			y, err := fieldValue(x)
			if err != nil {
				return nil, err
			}
			out[i] = y
		}
		return out, nil
	case map[string]any:
		t, err := ArgsFromJSON(v)
		if t == nil && err == nil {
			t = amqp091.Table{}
		}
		return t, err
	}
	return nil, fmt.Errorf("unsupported JSON value %T", v)
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
