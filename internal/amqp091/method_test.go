package amqp091

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

// fillMethod sets every field of a method struct to a distinct non-zero value
// (all bits true), so a round trip that drops or swaps a field is noticed.
func fillMethod(t *testing.T, m Method) {
	t.Helper()
	v := reflect.ValueOf(m).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		name := v.Type().Field(i).Name
		switch f.Kind() {
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(uint64(i+1) * 0x0101)
		case reflect.String:
			f.SetString(name + "-value")
		case reflect.Map:
			f.Set(reflect.ValueOf(Table{"k-" + name: int32(i), "nested": Table{"a": "b"}}))
		case reflect.Struct:
			f.Set(reflect.ValueOf(time.Unix(1700000000+int64(i), 0).UTC()))
		default:
			t.Fatalf("%s.%s: unhandled kind %s", m.Name(), name, f.Kind())
		}
	}
}

func TestCodecMethodRoundTripEveryMethod(t *testing.T) {
	seen := map[[2]uint16]bool{}
	for _, newM := range allMethods {
		m := newM()
		id := [2]uint16{m.ClassID(), m.MethodID()}
		if seen[id] {
			t.Errorf("%s: duplicate ids %v", m.Name(), id)
		}
		seen[id] = true
		fillMethod(t, m)
		payload := m.Append(nil)
		got, err := DecodeMethod(payload)
		if err != nil {
			t.Errorf("%s: decode: %v", m.Name(), err)
			continue
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%s: round trip\n got %#v\nwant %#v", m.Name(), got, m)
		}
		if again := got.Append(nil); !bytes.Equal(again, payload) {
			t.Errorf("%s: re-encode differs", m.Name())
		}
		if got.Name() != m.Name() || got.HasContent() != m.HasContent() || got.Synchronous() != m.Synchronous() {
			t.Errorf("%s: metadata differs", m.Name())
		}
		// Every strict prefix of the arguments is malformed.
		for n := 4; n < len(payload); n++ {
			if _, err := DecodeMethod(payload[:n]); err == nil {
				t.Errorf("%s: prefix of %d/%d bytes accepted", m.Name(), n, len(payload))
				break
			}
		}
		// Trailing bytes are rejected, as RabbitMQ does.
		var e *Error
		if _, err := DecodeMethod(append(payload, 0)); !errors.As(err, &e) || e.Code != FrameError ||
			e.ClassID != m.ClassID() || e.MethodID != m.MethodID() {
			t.Errorf("%s: trailing byte: got %v", m.Name(), err)
		}
	}
	if len(allMethods) != 64 {
		t.Errorf("registry has %d methods, want 64", len(allMethods))
	}
}

func TestCodecMethodMetadata(t *testing.T) {
	content := map[string]bool{"basic.publish": true, "basic.return": true, "basic.deliver": true, "basic.get-ok": true}
	for _, newM := range allMethods {
		m := newM()
		if m.HasContent() != content[m.Name()] {
			t.Errorf("%s: HasContent = %v", m.Name(), m.HasContent())
		}
	}
	for _, tc := range []struct {
		m    Method
		sync bool
	}{
		{&BasicPublish{}, false}, {&BasicAck{}, false}, {&BasicNack{}, false}, {&ConnectionBlocked{}, false},
		{&QueueDeclare{}, true}, {&ConfirmSelect{}, true}, {&BasicGetOk{}, true}, {&ChannelFlowOk{}, false},
	} {
		if tc.m.Synchronous() != tc.sync {
			t.Errorf("%s: Synchronous = %v, want %v", tc.m.Name(), tc.m.Synchronous(), tc.sync)
		}
	}
	if n := (&ConnectionUpdateSecret{}).Name(); n != "connection.update-secret" {
		t.Errorf("update-secret name %q", n)
	}
}

func TestCodecMethodBitPacking(t *testing.T) {
	// queue.declare: passive, durable, exclusive, auto-delete, no-wait share one
	// octet, low bit first.
	m := &QueueDeclare{Queue: "q", Durable: true, AutoDelete: true, NoWait: true}
	want := []byte{0, 50, 0, 10, 0, 0, 1, 'q', 0b11010, 0, 0, 0, 0}
	if got := m.Append(nil); !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
	// basic.nack: multiple and requeue after the delivery tag.
	n := &BasicNack{DeliveryTag: 7, Requeue: true}
	want = []byte{0, 60, 0, 120, 0, 0, 0, 0, 0, 0, 0, 7, 0b10}
	if got := n.Append(nil); !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}

func TestCodecDecodeBasicPublishReuse(t *testing.T) {
	var m BasicPublish
	for _, want := range []BasicPublish{
		{Exchange: "orders", RoutingKey: "eu.created", Mandatory: true},
		{Exchange: "orders", RoutingKey: "eu.created"},
		{Exchange: "", RoutingKey: "q", Immediate: true},
		{Exchange: "x", RoutingKey: ""},
	} {
		b := want.Append(nil)[4:]
		if err := DecodeBasicPublish(b, &m); err != nil || m != want {
			t.Fatalf("decoded %+v (%v), want %+v", m, err, want)
		}
	}
	good := (&BasicPublish{Exchange: "e", RoutingKey: "k"}).Append(nil)[4:]
	for n := 0; n < len(good); n++ {
		var a, b BasicPublish
		errA, errB := DecodeBasicPublish(good[:n], &a), b.Decode(good[:n])
		if errA == nil || errB == nil || errA.Error() != errB.Error() {
			t.Fatalf("prefix %d: DecodeBasicPublish %v, Decode %v", n, errA, errB)
		}
	}
	long := append(append([]byte(nil), good...), 0)
	var a, b BasicPublish
	if errA, errB := DecodeBasicPublish(long, &a), b.Decode(long); errA == nil || errB == nil || errA.Error() != errB.Error() {
		t.Fatalf("trailing byte: DecodeBasicPublish %v, Decode %v", errA, errB)
	}
}
