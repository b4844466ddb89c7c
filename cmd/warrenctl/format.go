package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// writeRows prints rows (one value per column) the way rabbitmqctl does:
// tab-separated with a header row (left out with --no-table-headers or -s, and
// when there are no rows), or with --formatter json an array of objects, one
// per line, keys in column order.
func writeRows(w io.Writer, o *options, cols []string, rows [][]any) error {
	var b bytes.Buffer
	if o.formatter == "json" {
		b.WriteString("[\n")
		for i, r := range rows {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('{')
			for j, c := range cols {
				if j > 0 {
					b.WriteByte(',')
				}
				b.Write(marshal(c))
				b.WriteByte(':')
				b.Write(jsonValue(c, r[j]))
			}
			b.WriteString("}\n")
		}
		b.WriteString("]\n")
		_, err := w.Write(b.Bytes())
		return err
	}
	if len(rows) > 0 && !o.noHeaders && !o.silent {
		b.WriteString(strings.Join(cols, "\t"))
		b.WriteByte('\n')
	}
	for _, r := range rows {
		for j, c := range cols {
			if j > 0 {
				b.WriteByte('\t')
			}
			b.WriteString(cellText(c, r[j]))
		}
		b.WriteByte('\n')
	}
	_, err := w.Write(b.Bytes())
	return err
}

// jsonValue is a cell for --formatter json: the API's value as JSON, except
// that a policy definition is a JSON string as rabbitmqctl prints it, and a
// missing value is "" rather than null, as rabbitmqctl never prints null
// for a known column.
func jsonValue(col string, v any) []byte {
	if v == nil {
		return []byte(`""`)
	}
	if col == "definition" {
		v = compactJSON(v)
	}
	return marshal(v)
}

// marshal is json.Marshal without HTML escaping, so a connection name
// prints as "a -> b", as rabbitmqctl prints it, not "a -\u003e b".
func marshal(v any) []byte {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return []byte(`""`)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// cellText renders one value as rabbitmqctl's table formatter renders the
// Erlang term behind it: AMQP tables (arguments, client_properties) as
// [{"key",value},...], other lists as [a, b], maps as [{k, v}], a policy
// definition as compact JSON.
func cellText(col string, v any) string {
	switch col {
	case "arguments", "client_properties":
		return amqpTableText(v)
	case "definition":
		return compactJSON(v)
	}
	return termText(v)
}

func termText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		if v {
			return "true"
		}
		return "false"
	case json.Number:
		return v.String()
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = termText(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := sortedKeys(v)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = "{" + k + ", " + termText(v[k]) + "}"
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		return fmt.Sprint(v)
	}
}

func amqpTableText(v any) string {
	switch v := v.(type) {
	case nil:
		return "[]"
	case map[string]any:
		keys := sortedKeys(v)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = "{" + quoteTerm(k) + "," + amqpValueText(v[k]) + "}"
		}
		return "[" + strings.Join(parts, ",") + "]"
	default:
		return amqpValueText(v)
	}
}

func amqpValueText(v any) string {
	switch v := v.(type) {
	case string:
		return quoteTerm(v)
	case map[string]any:
		return amqpTableText(v)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = amqpValueText(e)
		}
		return "[" + strings.Join(parts, ",") + "]"
	default:
		return termText(v)
	}
}

func quoteTerm(s string) string { return string(marshal(s)) }

func compactJSON(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if v == nil {
		return ""
	}
	return string(marshal(v))
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
