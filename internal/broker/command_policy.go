package broker

import "encoding/json"

// The policy and parameter commands. Field tags are part of the on-disk
// format (see command.go): never reuse one. Definitions and values are
// stored as canonical JSON text.

func init() {
	registerCommand(cmdSetPolicy, func() command { return &setPolicyCmd{} })
	registerCommand(cmdClearPolicy, func() command { return &clearPolicyCmd{} })
	registerCommand(cmdSetParameter, func() command { return &setParameterCmd{} })
	registerCommand(cmdClearParameter, func() command { return &clearParameterCmd{} })
}

// setPolicyCmd creates or replaces a policy or, with Operator, an operator policy.
type setPolicyCmd struct {
	VHost, Name, Pattern, ApplyTo string
	Priority                      int64
	Definition                    string
	Operator                      bool
}

func (c *setPolicyCmd) typ() cmdType { return cmdSetPolicy }

func (c *setPolicyCmd) fields() []field {
	return []field{{2, &c.VHost}, {4, &c.Name}, {6, &c.Pattern}, {8, &c.ApplyTo}, {10, &c.Priority}, {12, &c.Definition}, {14, &c.Operator}}
}

func (c *setPolicyCmd) apply(a *applier) (any, error) {
	v, err := a.vhostFor(c.VHost)
	if err != nil {
		return nil, err
	}
	p, err := compilePolicy(Policy{VHost: c.VHost, Name: c.Name, Pattern: c.Pattern, ApplyTo: c.ApplyTo, Priority: int(c.Priority), Definition: json.RawMessage(c.Definition), Operator: c.Operator})
	if err != nil {
		// Checked when committed; a newer rule refusing an old log keeps the
		// rest of the state rather than stopping start-up.
		a.b.log.Warn("policy no longer valid; ignoring it", "vhost", c.VHost, "policy", c.Name, "err", err)
		return nil, err
	}
	v.changePolicies(func(s *policySet) { s.of(c.Operator)[c.Name] = p })
	return nil, nil
}

// clearPolicyCmd removes a policy or operator policy.
type clearPolicyCmd struct {
	VHost, Name string
	Operator    bool
}

func (c *clearPolicyCmd) typ() cmdType { return cmdClearPolicy }

func (c *clearPolicyCmd) fields() []field {
	return []field{{2, &c.VHost}, {4, &c.Name}, {6, &c.Operator}}
}

func (c *clearPolicyCmd) apply(a *applier) (any, error) {
	v, err := a.vhostFor(c.VHost)
	if err != nil {
		return nil, err
	}
	v.changePolicies(func(s *policySet) { delete(s.of(c.Operator), c.Name) })
	return nil, nil
}

// setParameterCmd creates or replaces a vhost-scoped parameter or, with
// Global, a global one (VHost and Component empty).
type setParameterCmd struct {
	VHost, Component, Name, Value string
	Global                        bool
}

func (c *setParameterCmd) typ() cmdType { return cmdSetParameter }

func (c *setParameterCmd) fields() []field {
	return []field{{2, &c.VHost}, {4, &c.Component}, {6, &c.Name}, {8, &c.Value}, {10, &c.Global}}
}

func (c *setParameterCmd) apply(a *applier) (any, error) {
	if c.Global {
		a.b.globalParams.set(c.Name, json.RawMessage(c.Value))
		return nil, nil
	}
	v, err := a.vhostFor(c.VHost)
	if err != nil {
		return nil, err
	}
	v.params.set(paramKey(c.Component, c.Name), json.RawMessage(c.Value))
	return nil, nil
}

// clearParameterCmd removes a vhost-scoped or global parameter.
type clearParameterCmd struct {
	VHost, Component, Name string
	Global                 bool
}

func (c *clearParameterCmd) typ() cmdType { return cmdClearParameter }

func (c *clearParameterCmd) fields() []field {
	return []field{{2, &c.VHost}, {4, &c.Component}, {6, &c.Name}, {8, &c.Global}}
}

func (c *clearParameterCmd) apply(a *applier) (any, error) {
	if c.Global {
		a.b.globalParams.clear(c.Name)
		return nil, nil
	}
	v, err := a.vhostFor(c.VHost)
	if err != nil {
		return nil, err
	}
	v.params.clear(paramKey(c.Component, c.Name))
	return nil, nil
}
