package broker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/warren-mq/warren/internal/amqp091"
)

// Policies and operator policies, as RabbitMQ's set_policy and
// set_operator_policy: a regular expression on queue and exchange names
// picks the entities a definition (optional arguments in bulk) applies to.
// At most one policy and one operator policy apply to an entity, the
// matching one of highest priority. A queue's behaviour is its declared
// arguments merged with both (see queueArgs.withPolicy); the merge is
// recomputed on live queues and exchanges whenever a policy changes, while
// queue.declare equivalence keeps comparing the declared arguments only.

// Policy is a policy or, with Operator set, an operator policy.
type Policy struct {
	VHost   string
	Name    string
	Pattern string
	// ApplyTo is all, queues, classic_queues, quorum_queues, streams or
	// exchanges; "" means all.
	ApplyTo  string
	Priority int
	// Definition is a JSON object of policy keys (message-ttl, max-length...).
	Definition json.RawMessage
	// Operator marks an operator policy: its limits cap what users' policies
	// and queue arguments set.
	Operator bool
}

// ValidationFailed is a policy or parameter the broker refuses; Reason is
// RabbitMQ's text for it (e.g. "-1 is not a valid maximum length").
type ValidationFailed struct{ Reason string }

func (e *ValidationFailed) Error() string { return "validation failed: " + e.Reason }

func invalid(format string, args ...any) error {
	return &ValidationFailed{Reason: fmt.Sprintf(format, args...)}
}

// policy is a Policy compiled for matching.
type policy struct {
	Policy
	match func(name string) bool
	def   map[string]any // values: string, int64, bool, or other decoded JSON
}

// appliedPolicies are the policies that currently apply to one queue or
// exchange. Replaced whole (under VHost.mu) when they change.
type appliedPolicies struct {
	user, op *policy
}

// policySet holds a vhost's policies; guarded by VHost.mu, because a queue or
// exchange picks its policies when it is created under that lock.
type policySet struct {
	user map[string]*policy
	op   map[string]*policy
}

func (s *policySet) of(operator bool) map[string]*policy {
	if operator {
		if s.op == nil {
			s.op = map[string]*policy{}
		}
		return s.op
	}
	if s.user == nil {
		s.user = map[string]*policy{}
	}
	return s.user
}

// The keys a policy may set, each with its check. Keys that do nothing in
// Warren (mirroring, quorum queues, streams, lazy mode) are accepted so that
// definitions written for RabbitMQ load unchanged.
var policyKeys = map[string]func(v any) error{
	"alternate-exchange":            stringKey("%s is not a valid alternate exchange name"),
	"dead-letter-exchange":          stringKey("%s is not a valid dead letter exchange name"),
	"dead-letter-routing-key":       stringKey("%s is not a valid dead letter routing key"),
	"message-ttl":                   intKey(0, "%s is not a valid message TTL"),
	"expires":                       intKey(1, "%s is not a valid queue expiry"),
	"max-length":                    intKey(0, "%s is not a valid maximum length"),
	"max-length-bytes":              intKey(0, "%s is not a valid maximum length in bytes"),
	"max-in-memory-length":          intKey(0, "%s is not a valid maximum memory in bytes"),
	"max-in-memory-bytes":           intKey(0, "%s is not a valid maximum memory in bytes"),
	"delivery-limit":                intKey(0, "%s is not a valid delivery limit"),
	"consumer-timeout":              intKey(0, "%s is not a valid consumer timeout"),
	"initial-cluster-size":          intKey(0, "%s is not a valid cluster size"),
	"stream-max-segment-size-bytes": intKey(0, "%s is not a valid segment size"),
	"ha-sync-batch-size":            intKey(1, "%s is not a valid ha-sync-batch-size value"),
	"queue-mode":                    enumKey("%s is not a valid queue-mode value", "default", "lazy"),
	"overflow":                      enumKey("%s is not a valid overflow value", "drop-head", "reject-publish", "reject-publish-dlx"),
	"queue-version":                 intEnumKey("%s is not a valid queue version", 1, 2),
	"queue-leader-locator":          enumKey("%s is not a valid queue leader locator value", "client-local", "random", "least-leaders", "balanced"),
	"queue-master-locator":          enumKey("%s is not a valid queue-master-locator value", "min-masters", "client-local", "random"),
	"ha-mode":                       enumKey("%s is not a valid ha-mode value", "all", "exactly", "nodes"),
	"ha-sync-mode":                  enumKey("%s is not a valid ha-sync-mode value", "manual", "automatic"),
	"ha-promote-on-shutdown":        enumKey("%s is not a valid ha-promote-on-shutdown value", "always", "when-synced"),
	"ha-promote-on-failure":         enumKey("%s is not a valid ha-promote-on-failure value", "always", "when-synced"),
	"ha-params":                     func(any) error { return nil },
	"max-age":                       maxAgeKey,
}

// operatorPolicyKeys are the keys an operator policy may set (RabbitMQ's
// operator_policy_validator registrations).
var operatorPolicyKeys = map[string]bool{
	"expires": true, "message-ttl": true, "max-length": true, "max-length-bytes": true,
	"max-in-memory-length": true, "max-in-memory-bytes": true, "delivery-limit": true,
}

// minMerged are the keys for which, when both a policy and an operator policy
// set them, the lower value applies; for any other key the operator's wins.
var minMerged = map[string]bool{
	"expires": true, "message-ttl": true, "max-length": true, "max-length-bytes": true,
	"max-in-memory-length": true, "max-in-memory-bytes": true, "delivery-limit": true,
	"consumer-timeout": true,
}

func stringKey(msg string) func(any) error {
	return func(v any) error {
		if _, ok := v.(string); !ok {
			return invalid(msg, erlangTerm(v))
		}
		return nil
	}
}

func intKey(minimum int64, msg string) func(any) error {
	return func(v any) error {
		if n, ok := v.(int64); !ok || n < minimum {
			return invalid(msg, erlangTerm(v))
		}
		return nil
	}
}

func enumKey(msg string, allowed ...string) func(any) error {
	return func(v any) error {
		if s, ok := v.(string); !ok || !slices.Contains(allowed, s) {
			return invalid(msg, erlangTerm(v))
		}
		return nil
	}
}

func intEnumKey(msg string, allowed ...int64) func(any) error {
	return func(v any) error {
		if n, ok := v.(int64); !ok || !slices.Contains(allowed, n) {
			return invalid(msg, erlangTerm(v))
		}
		return nil
	}
}

var maxAgeRE = regexp.MustCompile(`^[0-9]+[YMDhms]$`)

func maxAgeKey(v any) error {
	if s, ok := v.(string); !ok || !maxAgeRE.MatchString(s) {
		return invalid("%s is not a valid max age", erlangTerm(v))
	}
	return nil
}

// erlangTerm prints a JSON value the way RabbitMQ's messages show it (~p).
func erlangTerm(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("<<%q>>", v)
	case int64:
		return strconv.FormatInt(v, 10)
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return "null"
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = erlangTerm(x)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case map[string]any:
		keys := slices.Sorted(maps.Keys(v))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = erlangTerm(k) + " => " + erlangTerm(v[k])
		}
		return "#{" + strings.Join(parts, ",") + "}"
	}
	return fmt.Sprint(v)
}

// decodeJSON decodes one JSON value keeping integers exact: whole numbers
// become int64, other numbers stay json.Number (RabbitMQ tells 1 from 1.0).
func decodeJSON(raw []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("data after the JSON value")
	}
	return normalizeJSON(v), nil
}

func normalizeJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return n
		}
		return x
	case []any:
		for i := range x {
			x[i] = normalizeJSON(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalizeJSON(x[k])
		}
	}
	return v
}

// applyToValues are the accepted apply-to values (RabbitMQ 3.13's).
var applyToValues = []string{"all", "queues", "classic_queues", "quorum_queues", "streams", "exchanges"}

// compilePolicy validates p as RabbitMQ does and compiles it. The returned
// policy's Definition is canonical JSON (keys sorted).
func compilePolicy(p Policy) (*policy, error) {
	if p.Name == "" {
		return nil, invalid("policy name must not be empty")
	}
	if p.ApplyTo == "" {
		p.ApplyTo = "all"
	}
	if !slices.Contains(applyToValues, p.ApplyTo) {
		return nil, invalid("apply-to '%s' unrecognised; should be one of: 'queues', 'classic_queues',  'quorum_queues', 'streams', 'exchanges', or 'all'", p.ApplyTo)
	}
	match, err := compilePattern(p.Pattern)
	if err != nil {
		return nil, invalid("pattern should be regular expression but is invalid: %v", err)
	}
	v, err := decodeJSON(p.Definition)
	if err != nil {
		return nil, invalid("JSON decoding error: %v", err)
	}
	def, ok := v.(map[string]any)
	if !ok {
		return nil, invalid("definition must be a dictionary: %s", erlangTerm(v))
	}
	if len(def) == 0 {
		return nil, invalid("no policy provided")
	}
	var unknown []string
	for _, k := range slices.Sorted(maps.Keys(def)) {
		check, known := policyKeys[k]
		if known && p.Operator && !operatorPolicyKeys[k] {
			known = false
		}
		if !known {
			unknown = append(unknown, "{"+erlangTerm(k)+","+erlangTerm(def[k])+"}")
			continue
		}
		if err := check(def[k]); err != nil {
			return nil, err
		}
	}
	if len(unknown) > 0 {
		return nil, invalid("[%s] are not recognised policy settings", strings.Join(unknown, ","))
	}
	canon, err := json.Marshal(def)
	if err != nil {
		return nil, invalid("definition: %v", err)
	}
	p.Definition = canon
	return &policy{Policy: p, match: match, def: def}, nil
}

// compilePattern compiles a policy's regular expression. RabbitMQ's are
// PCRE, Go's RE2 has no lookaround; the one PCRE form policies commonly use,
// a negative lookahead at the start ("^(?!amq\.).*", everything but the
// amq.* names), is handled as "does not match that prefix".
func compilePattern(pattern string) (func(string) bool, error) {
	if rest, ok := strings.CutPrefix(pattern, "^(?!"); ok {
		if end := closingParen(rest); end >= 0 {
			neg, err := regexp.Compile("^(?:" + rest[:end] + ")")
			if err != nil {
				return nil, err
			}
			pos, err := regexp.Compile("^(?:" + rest[end+1:] + ")")
			if err != nil {
				return nil, err
			}
			return func(s string) bool { return !neg.MatchString(s) && pos.MatchString(s) }, nil
		}
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	return re.MatchString, nil
}

// closingParen returns the index of the ")" closing a group whose opening
// parenthesis precedes s, or -1.
func closingParen(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			if depth == 0 {
				return i
			}
			depth--
		}
	}
	return -1
}

// policyTarget is the kind of entity a policy is matched against.
type policyTarget uint8

const (
	policyExchange policyTarget = iota
	policyClassicQueue
	policyStream
)

// appliesTo reports whether p applies to entities of kind t: "queues" means
// every queue type, as in RabbitMQ, "classic_queues" and "streams" one each.
func (p *policy) appliesTo(t policyTarget) bool {
	switch p.ApplyTo {
	case "all":
		return true
	case "exchanges":
		return t == policyExchange
	case "queues":
		return t != policyExchange
	case "classic_queues":
		return t == policyClassicQueue
	case "streams":
		return t == policyStream
	}
	return false // quorum_queues: none yet
}

// matchLocked returns the policy of m that applies to the named entity: the
// matching one of highest priority. RabbitMQ leaves ties to table order;
// Warren takes the lowest name, so the choice is the same after a restart.
func matchLocked(m map[string]*policy, name string, t policyTarget) *policy {
	var best *policy
	for _, p := range m {
		if !p.appliesTo(t) || !p.match(name) {
			continue
		}
		if best == nil || p.Priority > best.Priority || (p.Priority == best.Priority && p.Name < best.Name) {
			best = p
		}
	}
	return best
}

// policiesForLocked returns the policies that apply to the named entity, with v.mu held.
func (v *VHost) policiesForLocked(name string, t policyTarget) *appliedPolicies {
	return v.policies.applying(name, t)
}

// applying returns the policies of s that apply to the named entity.
func (s *policySet) applying(name string, t policyTarget) *appliedPolicies {
	ap := &appliedPolicies{user: matchLocked(s.user, name, t), op: matchLocked(s.op, name, t)}
	if ap.user == nil && ap.op == nil {
		return nil
	}
	return ap
}

// definition merges the two policies' definitions as RabbitMQ does: a key
// both set takes the lower value for limits and the operator's otherwise.
func (ap *appliedPolicies) definition() map[string]any {
	if ap == nil {
		return nil
	}
	out := map[string]any{}
	if ap.user != nil {
		maps.Copy(out, ap.user.def)
	}
	if ap.op != nil {
		for k, ov := range ap.op.def {
			uv, both := out[k]
			if both && minMerged[k] {
				if un, ok := uv.(int64); ok {
					if on, ok := ov.(int64); ok && un < on {
						continue
					}
				}
			}
			out[k] = ov
		}
	}
	return out
}

func samePolicy(a, b *policy) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Name == b.Name && a.Pattern == b.Pattern && a.ApplyTo == b.ApplyTo && a.Priority == b.Priority && bytes.Equal(a.Definition, b.Definition)
}

func sameApplied(a, b *appliedPolicies) bool {
	if a == nil || b == nil {
		return a == b
	}
	return samePolicy(a.user, b.user) && samePolicy(a.op, b.op)
}

// AppliedPolicy says which policies apply to a queue or exchange and what
// they give together.
type AppliedPolicy struct {
	// Policy and OperatorPolicy are the names of the applying policies, "" for none.
	Policy, OperatorPolicy string
	// Definition is the merged definition (RabbitMQ's effective_policy_definition).
	Definition map[string]any
}

func (ap *appliedPolicies) public() AppliedPolicy {
	var out AppliedPolicy
	if ap == nil {
		return out
	}
	if ap.user != nil {
		out.Policy = ap.user.Name
	}
	if ap.op != nil {
		out.OperatorPolicy = ap.op.Name
	}
	out.Definition = ap.definition()
	return out
}

// changePolicies applies a change to a vhost's policies and recomputes the
// policies of its exchanges and queues. Matching every name against every
// policy happens without v.mu, so routing is not held up by it: under the
// lock the set changes (entities created from then on match the new one)
// and the existing entities are listed; their new policies are then found,
// and set: an exchange's under v.mu again (routing reads its alternate
// exchange under it), a queue's under its own lock (LOCKS.md). Policy
// changes are commands, applied one at a time, so no other change races.
func (v *VHost) changePolicies(change func(s *policySet)) {
	v.mu.Lock()
	change(&v.policies)
	set := policySet{user: maps.Clone(v.policies.user), op: maps.Clone(v.policies.op)}
	exchanges := slices.Collect(maps.Values(v.exchanges))
	queues := slices.Collect(maps.Values(v.queues))
	streams := slices.Collect(maps.Values(v.streams))
	v.mu.Unlock()

	type exchangeUpdate struct {
		e  *Exchange
		ap *appliedPolicies
	}
	var xs []exchangeUpdate
	for _, e := range exchanges {
		if e.Name == "" {
			continue // the default exchange takes no policy
		}
		if ap := set.applying(e.Name, policyExchange); !sameApplied(ap, e.pol.Load()) {
			xs = append(xs, exchangeUpdate{e, ap})
		}
	}
	if len(xs) > 0 {
		v.mu.Lock()
		for _, x := range xs {
			if v.exchanges[x.e.Name] == x.e {
				x.e.setPoliciesLocked(x.ap)
			}
		}
		v.mu.Unlock()
	}
	sort.Slice(queues, func(i, j int) bool { return queues[i].Name < queues[j].Name })
	for _, q := range queues {
		if ap := set.applying(q.Name, policyClassicQueue); !sameApplied(ap, q.pol.Load()) {
			q.pol.Store(ap)
			q.policiesChanged(ap)
		}
	}
	sortStreams(streams)
	for _, s := range streams {
		if ap := set.applying(s.name, policyStream); !sameApplied(ap, s.pol.Load()) {
			s.pol.Store(ap)
			s.policiesChanged(ap)
		}
	}
}

// SetPolicy creates or replaces a policy (or operator policy); durable. The
// policies of the vhost's queues and exchanges are recomputed at once.
func (b *Broker) SetPolicy(p Policy) error {
	cp, err := compilePolicy(p)
	if err != nil {
		return err
	}
	if _, ok := b.VHost(p.VHost); !ok {
		return amqp091.NewError(amqp091.NotFound, "no vhost '%s'", p.VHost)
	}
	c := &setPolicyCmd{VHost: p.VHost, Name: p.Name, Pattern: p.Pattern, ApplyTo: cp.ApplyTo, Priority: int64(p.Priority), Definition: string(cp.Definition), Operator: p.Operator}
	if _, _, err = b.commit(c, true); err == nil {
		b.log.Info(fmt.Sprintf("Successfully set %s '%s' matching %s names in virtual host '%s' using pattern '%s'", policyKind(p.Operator), p.Name, cp.ApplyTo, p.VHost, p.Pattern),
			"vhost", p.VHost, "policy", p.Name, "operator", p.Operator, "definition", string(cp.Definition), "priority", p.Priority)
	}
	return err
}

// policyKind names a policy or operator policy in log lines.
func policyKind(operator bool) string {
	if operator {
		return "operator policy"
	}
	return "policy"
}

// ClearPolicy removes a policy (or operator policy); durable.
func (b *Broker) ClearPolicy(vhost, name string, operator bool) error {
	v, ok := b.VHost(vhost)
	if !ok {
		return amqp091.NewError(amqp091.NotFound, "no vhost '%s'", vhost)
	}
	v.mu.RLock()
	_, exists := v.policies.of(operator)[name]
	v.mu.RUnlock()
	if !exists {
		return amqp091.NewError(amqp091.NotFound, "no policy '%s' in vhost '%s'", name, vhost)
	}
	_, _, err := b.commit(&clearPolicyCmd{VHost: vhost, Name: name, Operator: operator}, true)
	if err == nil {
		b.log.Info(fmt.Sprintf("Successfully cleared %s '%s' in virtual host '%s'", policyKind(operator), name, vhost), "vhost", vhost, "policy", name, "operator", operator)
	}
	return err
}

// Policies returns the policies (operator false) or operator policies of a
// vhost, or of every vhost when vhost is "", sorted by vhost and name.
func (b *Broker) Policies(vhost string, operator bool) []Policy {
	var out []Policy
	for _, v := range b.VHosts() {
		if vhost != "" && v.Name != vhost {
			continue
		}
		v.mu.RLock()
		m := v.policies.user
		if operator {
			m = v.policies.op
		}
		for _, name := range slices.Sorted(maps.Keys(m)) {
			out = append(out, m[name].Policy)
		}
		v.mu.RUnlock()
	}
	return out
}

// snapshotPolicies adds every vhost's policies and parameters and the global
// parameters to a snapshot, sorted so that equal states give equal logs.
func (b *Broker) snapshotPolicies(add func(command)) {
	for _, p := range b.GlobalParameters() {
		add(&setParameterCmd{Global: true, Name: p.Name, Value: string(p.Value)})
	}
	for _, p := range b.Parameters("") {
		add(&setParameterCmd{VHost: p.VHost, Component: p.Component, Name: p.Name, Value: string(p.Value)})
	}
	for _, operator := range []bool{false, true} {
		for _, p := range b.Policies("", operator) {
			add(&setPolicyCmd{VHost: p.VHost, Name: p.Name, Pattern: p.Pattern, ApplyTo: p.ApplyTo, Priority: int64(p.Priority), Definition: string(p.Definition), Operator: operator})
		}
	}
}

// Policy returns the policies that apply to the queue.
func (q *Queue) Policy() AppliedPolicy { return q.pol.Load().public() }

// Policy returns the policies that apply to the exchange.
func (e *Exchange) Policy() AppliedPolicy { return e.pol.Load().public() }
