package definitions

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/warren-mq/warren/internal/broker"
)

// RabbitMQ keeps two kinds of vhost settings among the runtime parameters:
// vhost limits and operator policies.
const (
	componentVHostLimits    = "vhost-limits"
	componentOperatorPolicy = "operator_policy"
)

// operatorPolicy is the value of an operator_policy parameter.
type operatorPolicy struct {
	Pattern  string          `json:"pattern"`
	ApplyTo  string          `json:"apply-to"`
	Priority int             `json:"priority"`
	Def      json.RawMessage `json:"definition"`
}

func importPolicies(b *broker.Broker, f *File) []error {
	var errs []error
	fail := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	for _, p := range f.Parameters {
		what := fmt.Sprintf("parameter '%s' of component '%s' in vhost '%s'", p.Name, p.Component, p.VHost)
		switch p.Component {
		case componentVHostLimits:
			var l Limits
			err := json.Unmarshal(p.Value, &l)
			if err == nil {
				err = b.SetVHostLimits(p.VHost, l)
			}
			fail(what, err)
		case componentOperatorPolicy:
			var op operatorPolicy
			err := json.Unmarshal(p.Value, &op)
			var def json.RawMessage
			if err == nil {
				def, err = definitionObject(op.Def)
			}
			if err == nil {
				err = b.SetPolicy(broker.Policy{VHost: p.VHost, Name: p.Name, Pattern: op.Pattern, ApplyTo: op.ApplyTo, Priority: op.Priority, Definition: def, Operator: true})
			}
			fail("operator policy '"+p.Name+"' in vhost '"+p.VHost+"'", err)
		default:
			fail(what, b.SetParameter(broker.Parameter{VHost: p.VHost, Component: p.Component, Name: p.Name, Value: p.Value}))
		}
	}
	for _, p := range f.GlobalParameters {
		fail(fmt.Sprintf("global parameter '%s'", p.Name), b.SetGlobalParameter(broker.GlobalParameter{Name: p.Name, Value: p.Value}))
	}
	for _, p := range f.Policies {
		def, err := definitionObject(p.Definition)
		if err == nil {
			err = b.SetPolicy(broker.Policy{VHost: p.VHost, Name: p.Name, Pattern: p.Pattern, ApplyTo: p.ApplyTo, Priority: p.Priority, Definition: def})
		}
		fail(fmt.Sprintf("policy '%s' in vhost '%s'", p.Name, p.VHost), err)
	}
	return errs
}

// definitionObject returns a policy definition as a JSON object. RabbitMQ
// exports operator policies' definitions as a list of [key, value] pairs.
func definitionObject(def json.RawMessage) (json.RawMessage, error) {
	if t := bytes.TrimSpace(def); len(t) == 0 || t[0] != '[' {
		return def, nil
	}
	var pairs [][]json.RawMessage
	if err := json.Unmarshal(def, &pairs); err != nil {
		return nil, fmt.Errorf("definition: want an object or [key, value] pairs")
	}
	obj := map[string]json.RawMessage{}
	for _, p := range pairs {
		var k string
		if len(p) != 2 || json.Unmarshal(p[0], &k) != nil {
			return nil, fmt.Errorf("definition: want [key, value] pairs")
		}
		obj[k] = p[1]
	}
	return json.Marshal(obj)
}
