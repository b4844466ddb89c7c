// Package definitions reads and writes a broker's definitions — users,
// vhosts, permissions, topic permissions, limits, parameters, policies,
// exchanges, queues and bindings — in RabbitMQ's JSON format, so a file
// exported by `rabbitmqctl export_definitions` (or the management API)
// imports into Warren unchanged and Warren's export imports into RabbitMQ.
//
// Import goes through the broker's operator API, so it validates like any
// other request and every change is an ordinary durable command; importing
// the same file again changes nothing (RabbitMQ's load_definitions at boot).
package definitions

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// File is a definitions document. Fields Warren does not know are ignored on
// import, as RabbitMQ ignores them.
type File struct {
	RabbitVersion    string            `json:"rabbit_version,omitempty"`
	RabbitMQVersion  string            `json:"rabbitmq_version,omitempty"`
	ProductName      string            `json:"product_name,omitempty"`
	ProductVersion   string            `json:"product_version,omitempty"`
	Users            []User            `json:"users"`
	VHosts           []VHost           `json:"vhosts"`
	Permissions      []Permission      `json:"permissions"`
	TopicPermissions []TopicPermission `json:"topic_permissions"`
	Parameters       []Parameter       `json:"parameters"`
	GlobalParameters []GlobalParameter `json:"global_parameters"`
	Policies         []Policy          `json:"policies"`
	Queues           []Queue           `json:"queues"`
	Exchanges        []Exchange        `json:"exchanges"`
	Bindings         []Binding         `json:"bindings"`
}

// User is a user with its password hash in RabbitMQ's encoding.
type User struct {
	Name             string           `json:"name"`
	PasswordHash     string           `json:"password_hash"`
	HashingAlgorithm string           `json:"hashing_algorithm,omitempty"`
	Tags             Tags             `json:"tags"`
	Limits           map[string]int64 `json:"limits,omitempty"`
}

// VHost is a virtual host with its metadata and limits.
type VHost struct {
	Name string `json:"name"`
	// Description and Tags are where RabbitMQ before 3.8 kept them; newer
	// files have them in Metadata.
	Description      string     `json:"description,omitempty"`
	Tags             Tags       `json:"tags,omitempty"`
	DefaultQueueType string     `json:"default_queue_type,omitempty"`
	Metadata         *VHostMeta `json:"metadata,omitempty"`
	Limits           Limits     `json:"limits,omitempty"`
}

// VHostMeta is a vhost's metadata object.
type VHostMeta struct {
	Description      string `json:"description"`
	Tags             Tags   `json:"tags"`
	DefaultQueueType string `json:"default_queue_type,omitempty"`
}

// Permission is a user's configure, write and read expressions on a vhost.
type Permission struct {
	User      string `json:"user"`
	VHost     string `json:"vhost"`
	Configure string `json:"configure"`
	Write     string `json:"write"`
	Read      string `json:"read"`
}

// TopicPermission is a user's routing-key expressions on a topic exchange.
type TopicPermission struct {
	User     string `json:"user"`
	VHost    string `json:"vhost"`
	Exchange string `json:"exchange"`
	Write    string `json:"write"`
	Read     string `json:"read"`
}

// Parameter is a vhost-scoped runtime parameter. RabbitMQ keeps vhost limits
// (component "vhost-limits") and operator policies ("operator_policy") here.
type Parameter struct {
	VHost     string          `json:"vhost"`
	Component string          `json:"component"`
	Name      string          `json:"name"`
	Value     json.RawMessage `json:"value"`
}

// GlobalParameter is a cluster-wide runtime parameter.
type GlobalParameter struct {
	Name  string          `json:"name"`
	Value json.RawMessage `json:"value"`
}

// Policy is a policy: which queues or exchanges it applies to and what it sets.
type Policy struct {
	VHost      string          `json:"vhost"`
	Name       string          `json:"name"`
	Pattern    string          `json:"pattern"`
	ApplyTo    string          `json:"apply-to"`
	Definition json.RawMessage `json:"definition"`
	Priority   int             `json:"priority"`
}

// Queue is a queue declaration.
type Queue struct {
	Name       string         `json:"name"`
	VHost      string         `json:"vhost"`
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Arguments  map[string]any `json:"arguments"`
	Type       string         `json:"type,omitempty"`
}

// Exchange is an exchange declaration.
type Exchange struct {
	Name       string         `json:"name"`
	VHost      string         `json:"vhost"`
	Type       string         `json:"type"`
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Internal   bool           `json:"internal"`
	Arguments  map[string]any `json:"arguments"`
}

// Binding is a binding from an exchange to a queue or exchange.
type Binding struct {
	Source          string         `json:"source"`
	VHost           string         `json:"vhost"`
	Destination     string         `json:"destination"`
	DestinationType string         `json:"destination_type"`
	RoutingKey      string         `json:"routing_key"`
	Arguments       map[string]any `json:"arguments"`
}

// Tags is a tag list, written as a JSON list; RabbitMQ before 3.9 wrote a
// comma-separated string, which is read too.
type Tags []string

// UnmarshalJSON implements json.Unmarshaler.
func (t *Tags) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*t = nil
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				*t = append(*t, p)
			}
		}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("tags: want a list of strings or a comma-separated string")
	}
	*t = l
	return nil
}

// MarshalJSON implements json.Marshaler: never null.
func (t Tags) MarshalJSON() ([]byte, error) {
	if t == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]string(t))
}

// Limits are a vhost's limits. RabbitMQ writes them as a list of
// [name, value] pairs; an object is read too.
type Limits map[string]int64

// UnmarshalJSON implements json.Unmarshaler.
func (l *Limits) UnmarshalJSON(b []byte) error {
	var pairs [][]json.RawMessage
	if json.Unmarshal(b, &pairs) == nil {
		out := Limits{}
		for _, p := range pairs {
			var name string
			var v int64
			if len(p) != 2 || json.Unmarshal(p[0], &name) != nil || json.Unmarshal(p[1], &v) != nil {
				return fmt.Errorf("limits: want [name, integer] pairs")
			}
			out[name] = v
		}
		*l = out
		return nil
	}
	var m map[string]int64
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("limits: want [name, integer] pairs or an object of integers")
	}
	*l = m
	return nil
}

// MarshalJSON implements json.Marshaler as RabbitMQ writes limits: pairs.
func (l Limits) MarshalJSON() ([]byte, error) {
	pairs := make([][2]any, 0, len(l))
	for _, k := range sortedKeys(l) {
		pairs = append(pairs, [2]any{k, l[k]})
	}
	return json.Marshal(pairs)
}

// Parse decodes a definitions document, with errors that say where.
func Parse(b []byte) (*File, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("definitions: %s", describeJSONError(b, err))
	}
	if dec.More() {
		return nil, fmt.Errorf("definitions: more than one JSON document")
	}
	return &f, nil
}

// describeJSONError adds the line and column of a syntax or type error.
func describeJSONError(b []byte, err error) string {
	var off int64 = -1
	switch e := err.(type) {
	case *json.SyntaxError:
		off = e.Offset
	case *json.UnmarshalTypeError:
		off = e.Offset
		if e.Field != "" {
			err = fmt.Errorf("field %s: cannot use a JSON %s as %v", e.Field, e.Value, e.Type)
		}
	}
	if off < 0 || off > int64(len(b)) {
		return err.Error()
	}
	line := 1 + bytes.Count(b[:off], []byte("\n"))
	col := off - int64(bytes.LastIndexByte(b[:off], '\n'))
	return fmt.Sprintf("line %d, column %d: %v", line, col, err)
}
