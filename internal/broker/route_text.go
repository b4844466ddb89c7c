package broker

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
)

// routeErlangTerm renders a field value the way RabbitMQ's error texts print it (Erlang's ~p
// of the decoded value), so reply texts read the same as RabbitMQ's. Erlang breaks terms
// longer than a line over several lines; this keeps them on one. Nested tables come out sorted
// by name, not in wire order, which a map cannot remember.
func routeErlangTerm(v any) string {
	var sb strings.Builder
	routeWriteTerm(&sb, v)
	return sb.String()
}

func routeWriteTerm(sb *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		sb.WriteString("undefined")
	case bool:
		sb.WriteString(strconv.FormatBool(x))
	case int8, uint8, int16, uint16, int32, uint32, int64:
		n, _ := headersNumber(x)
		sb.WriteString(strconv.FormatInt(n.i, 10))
	case time.Time:
		sb.WriteString(strconv.FormatInt(x.Unix(), 10))
	case float32:
		sb.WriteString(routeErlangFloat(float64(x)))
	case float64:
		sb.WriteString(routeErlangFloat(x))
	case amqp091.Decimal:
		// RabbitMQ decodes the decimal's value as unsigned.
		sb.WriteString("{" + strconv.Itoa(int(x.Scale)) + "," + strconv.FormatUint(uint64(uint32(x.Value)), 10) + "}")
	case string:
		routeWriteBinary(sb, x)
	case []byte:
		routeWriteBinary(sb, string(x))
	case amqp091.Table:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		sb.WriteByte('[')
		for i, k := range keys {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteByte('{')
			routeWriteBinary(sb, k)
			sb.WriteString("," + typeName(x[k]) + ",")
			routeWriteTerm(sb, x[k])
			sb.WriteByte('}')
		}
		sb.WriteByte(']')
	case []any:
		sb.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("{" + typeName(e) + ",")
			routeWriteTerm(sb, e)
			sb.WriteByte('}')
		}
		sb.WriteByte(']')
	default:
		sb.WriteString("unknown")
	}
}

// routeWriteBinary prints an Erlang binary: as a quoted string when every byte is printable
// Latin-1 (Erlang's default notion of printable), else as a list of byte values.
func routeWriteBinary(sb *strings.Builder, s string) {
	printable := true
	for i := 0; i < len(s) && printable; i++ {
		c := s[i]
		printable = c >= ' ' && c <= '~' || c >= 0xA0 || strings.IndexByte("\n\r\t\v\b\f\x1b", c) >= 0
	}
	sb.WriteString("<<")
	if !printable {
		for i := 0; i < len(s); i++ {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(strconv.Itoa(int(s[i])))
		}
		sb.WriteString(">>")
		return
	}
	if len(s) > 0 {
		sb.WriteByte('"')
		for i := 0; i < len(s); i++ {
			switch c := s[i]; c {
			case '"', '\\':
				sb.WriteByte('\\')
				sb.WriteByte(c)
			case '\n':
				sb.WriteString(`\n`)
			case '\r':
				sb.WriteString(`\r`)
			case '\t':
				sb.WriteString(`\t`)
			case '\v':
				sb.WriteString(`\v`)
			case '\b':
				sb.WriteString(`\b`)
			case '\f':
				sb.WriteString(`\f`)
			case 0x1b:
				sb.WriteString(`\e`)
			default:
				sb.WriteByte(c)
			}
		}
		sb.WriteByte('"')
	}
	sb.WriteString(">>")
}

// routeErlangFloat prints a float as Erlang does: the shortest digits that read back exactly,
// in plain notation ("0.001", "3.0") unless scientific notation ("1.0e20", "1.0e-5") is
// strictly shorter.
func routeErlangFloat(f float64) string {
	s := strconv.FormatFloat(f, 'e', -1, 64) // like "-1.2345e+05"
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	mant, expText, ok := strings.Cut(s, "e")
	if !ok {
		return sign + s // Inf or NaN, which AMQP peers cannot send to RabbitMQ anyway
	}
	exp, _ := strconv.Atoi(expText)
	digits := strings.Replace(mant, ".", "", 1)

	frac := digits[1:]
	if frac == "" {
		frac = "0"
	}
	sci := digits[:1] + "." + frac + "e" + strconv.Itoa(exp)

	var plain string
	switch {
	case exp < 0:
		plain = "0." + strings.Repeat("0", -exp-1) + digits
	case exp+1 >= len(digits):
		plain = digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
	default:
		plain = digits[:exp+1] + "." + digits[exp+1:]
	}
	if len(sci) < len(plain) {
		return sign + sci
	}
	return sign + plain
}
