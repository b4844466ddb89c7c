package broker

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/warren-mq/warren/internal/amqp091"
)

// Runtime parameters, as RabbitMQ's set_parameter and set_global_parameter.
// RabbitMQ's plugins (federation, shovel) read them; Warren has no such
// plugin yet and only keeps them, validated as JSON, so that definitions
// round-trip and an operator's settings are not lost.

// Parameter is a vhost-scoped runtime parameter.
type Parameter struct {
	VHost     string
	Component string
	Name      string
	// Value is any JSON value, kept in canonical form (object keys sorted).
	Value json.RawMessage
}

// GlobalParameter is a runtime parameter of the whole broker.
type GlobalParameter struct {
	Name  string
	Value json.RawMessage
}

// paramSet holds parameters by key; its own lock, since routing never reads them.
type paramSet struct {
	mu sync.Mutex
	m  map[string]json.RawMessage
}

func paramKey(component, name string) string { return component + "\x00" + name }

func (s *paramSet) set(key string, value json.RawMessage) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string]json.RawMessage{}
	}
	s.m[key] = value
	s.mu.Unlock()
}

func (s *paramSet) clear(key string) {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
}

func (s *paramSet) has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[key]
	return ok
}

// sorted returns the keys and values, sorted by key.
func (s *paramSet) sorted(fn func(key string, value json.RawMessage)) {
	s.mu.Lock()
	keys := slices.Sorted(maps.Keys(s.m))
	vals := make([]json.RawMessage, len(keys))
	for i, k := range keys {
		vals[i] = s.m[k]
	}
	s.mu.Unlock()
	for i, k := range keys {
		fn(k, vals[i])
	}
}

// canonicalJSON validates a parameter value and returns it canonical.
func canonicalJSON(raw json.RawMessage) (json.RawMessage, error) {
	v, err := decodeJSON(raw)
	if err != nil {
		return nil, invalid("JSON decoding error: %v", err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, invalid("JSON encoding error: %v", err)
	}
	return out, nil
}

// SetParameter creates or replaces a vhost-scoped parameter; durable.
// Policies are not parameters here: they have SetPolicy.
func (b *Broker) SetParameter(p Parameter) error {
	if p.Component == "" || p.Name == "" {
		return invalid("parameter component and name must not be empty")
	}
	if p.Component == "policy" || p.Component == "operator_policy" {
		return invalid("component %s is set with set_policy / set_operator_policy", p.Component)
	}
	value, err := canonicalJSON(p.Value)
	if err != nil {
		return err
	}
	if _, ok := b.VHost(p.VHost); !ok {
		return amqp091.NewError(amqp091.NotFound, "no vhost '%s'", p.VHost)
	}
	_, _, err = b.commit(&setParameterCmd{VHost: p.VHost, Component: p.Component, Name: p.Name, Value: string(value)}, true)
	return err
}

// ClearParameter removes a vhost-scoped parameter; durable.
func (b *Broker) ClearParameter(vhost, component, name string) error {
	v, ok := b.VHost(vhost)
	if !ok {
		return amqp091.NewError(amqp091.NotFound, "no vhost '%s'", vhost)
	}
	if !v.params.has(paramKey(component, name)) {
		return amqp091.NewError(amqp091.NotFound, "no parameter '%s' of component '%s' in vhost '%s'", name, component, vhost)
	}
	_, _, err := b.commit(&clearParameterCmd{VHost: vhost, Component: component, Name: name}, true)
	return err
}

// Parameters returns a vhost's parameters, or every vhost's when vhost is
// "", sorted by vhost, component and name.
func (b *Broker) Parameters(vhost string) []Parameter {
	var out []Parameter
	for _, v := range b.VHosts() {
		if vhost != "" && v.Name != vhost {
			continue
		}
		v.params.sorted(func(key string, value json.RawMessage) {
			component, name, _ := strings.Cut(key, "\x00")
			out = append(out, Parameter{VHost: v.Name, Component: component, Name: name, Value: value})
		})
	}
	return out
}

// SetGlobalParameter creates or replaces a global parameter; durable.
func (b *Broker) SetGlobalParameter(p GlobalParameter) error {
	if p.Name == "" {
		return invalid("parameter name must not be empty")
	}
	value, err := canonicalJSON(p.Value)
	if err != nil {
		return err
	}
	_, _, err = b.commit(&setParameterCmd{Global: true, Name: p.Name, Value: string(value)}, true)
	return err
}

// ClearGlobalParameter removes a global parameter; durable.
func (b *Broker) ClearGlobalParameter(name string) error {
	if !b.globalParams.has(name) {
		return amqp091.NewError(amqp091.NotFound, "no global parameter '%s'", name)
	}
	_, _, err := b.commit(&clearParameterCmd{Global: true, Name: name}, true)
	return err
}

// GlobalParameters returns the global parameters, sorted by name.
func (b *Broker) GlobalParameters() []GlobalParameter {
	var out []GlobalParameter
	b.globalParams.sorted(func(name string, value json.RawMessage) {
		out = append(out, GlobalParameter{Name: name, Value: value})
	})
	return out
}
