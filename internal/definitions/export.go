package definitions

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// Export describes everything b holds that an operator or client defined:
// what `rabbitmqctl export_definitions` writes. Exclusive queues belong to a
// connection and are left out, as are the exchanges every vhost has from the
// start. Unlike RabbitMQ 3.10, internal exchanges are written too, so the
// bindings to them import. Operator policies and vhost limits are written
// where RabbitMQ writes them: among the parameters.
func Export(b *broker.Broker, version string) *File {
	f := &File{ProductName: "Warren", ProductVersion: version,
		Users: []User{}, VHosts: []VHost{}, Permissions: []Permission{}, TopicPermissions: []TopicPermission{},
		Parameters: []Parameter{}, GlobalParameters: []GlobalParameter{}, Policies: []Policy{},
		Queues: []Queue{}, Exchanges: []Exchange{}, Bindings: []Binding{}}
	userLimits := b.AllUserLimits()
	for _, u := range b.Users() {
		f.Users = append(f.Users, User{Name: u.Name, PasswordHash: u.PasswordHash, HashingAlgorithm: u.HashAlgorithm, Tags: Tags(u.Tags), Limits: userLimits[u.Name]})
	}
	for _, p := range b.Permissions() {
		f.Permissions = append(f.Permissions, Permission{User: p.User, VHost: p.VHost, Configure: p.Configure, Write: p.Write, Read: p.Read})
	}
	for _, p := range b.TopicPermissions() {
		f.TopicPermissions = append(f.TopicPermissions, TopicPermission{User: p.User, VHost: p.VHost, Exchange: p.Exchange, Write: p.Write, Read: p.Read})
	}
	for _, p := range b.GlobalParameters() {
		f.GlobalParameters = append(f.GlobalParameters, GlobalParameter{Name: p.Name, Value: p.Value})
	}
	for _, v := range b.VHosts() {
		exportVHost(f, b, v)
	}
	return f
}

func exportVHost(f *File, b *broker.Broker, v *broker.VHost) {
	info := v.Info()
	tags := Tags{}
	for _, t := range strings.Split(info.Tags, ",") {
		if t != "" {
			tags = append(tags, t)
		}
	}
	limits := Limits(b.VHostLimits(v.Name))
	f.VHosts = append(f.VHosts, VHost{Name: v.Name, Limits: limits, Metadata: &VHostMeta{Description: info.Description, Tags: tags, DefaultQueueType: info.DefaultQueueType}})
	if len(limits) > 0 {
		value, _ := json.Marshal(map[string]int64(limits))
		f.Parameters = append(f.Parameters, Parameter{VHost: v.Name, Component: componentVHostLimits, Name: "limits", Value: value})
	}
	for _, p := range b.Parameters(v.Name) {
		f.Parameters = append(f.Parameters, Parameter{VHost: v.Name, Component: p.Component, Name: p.Name, Value: p.Value})
	}
	for _, p := range b.Policies(v.Name, false) {
		f.Policies = append(f.Policies, Policy{VHost: v.Name, Name: p.Name, Pattern: p.Pattern, ApplyTo: applyTo(p.ApplyTo), Definition: p.Definition, Priority: p.Priority})
	}
	for _, p := range b.Policies(v.Name, true) {
		value, _ := json.Marshal(operatorPolicy{Pattern: p.Pattern, ApplyTo: applyTo(p.ApplyTo), Priority: p.Priority, Def: p.Definition})
		f.Parameters = append(f.Parameters, Parameter{VHost: v.Name, Component: componentOperatorPolicy, Name: p.Name, Value: value})
	}
	exported := map[string]bool{} // "e:" / "q:" + name
	for _, x := range v.Exchanges() {
		if x.Name == "" || strings.HasPrefix(x.Name, "amq.") {
			continue
		}
		exported["e:"+x.Name] = true
		f.Exchanges = append(f.Exchanges, Exchange{Name: x.Name, VHost: v.Name, Type: x.Kind, Durable: x.Durable, AutoDelete: x.AutoDelete, Internal: x.Internal, Arguments: ArgsToJSON(x.Args)})
	}
	for _, q := range v.Queues() {
		if q.Exclusive {
			continue
		}
		exported["q:"+q.Name] = true
		f.Queues = append(f.Queues, Queue{Name: q.Name, VHost: v.Name, Durable: q.Durable, AutoDelete: q.AutoDelete, Arguments: ArgsToJSON(q.Args), Type: "classic"})
	}
	for _, x := range v.Exchanges() {
		if x.Name == "" {
			continue // the default exchange's bindings are implicit
		}
		for _, bd := range x.Bindings() {
			kind, prefix := "queue", "q:"
			if bd.ToExchange {
				kind, prefix = "exchange", "e:"
			}
			if !exported[prefix+bd.Destination] && !(bd.ToExchange && strings.HasPrefix(bd.Destination, "amq.")) {
				continue
			}
			f.Bindings = append(f.Bindings, Binding{Source: x.Name, VHost: v.Name, Destination: bd.Destination, DestinationType: kind, RoutingKey: bd.Key, Arguments: ArgsToJSON(bd.Args)})
		}
	}
}

func applyTo(s string) string {
	if s == "" {
		return "all"
	}
	return s
}

// ArgsToJSON converts a field table for JSON: never null, nested tables as
// objects, byte arrays as strings, timestamps as Unix seconds.
func ArgsToJSON(t amqp091.Table) map[string]any {
	out := map[string]any{}
	for k, v := range t {
		out[k] = jsonValue(v)
	}
	return out
}

func jsonValue(v any) any {
	switch v := v.(type) {
	case amqp091.Table:
		return ArgsToJSON(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = jsonValue(x)
		}
		return out
	case []byte:
		return string(v)
	case time.Time:
		return v.Unix()
	}
	return v
}
