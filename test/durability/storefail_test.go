package durability

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/store"
	"github.com/warren-mq/warren/internal/testbroker"
)

// failingStore is a store whose message appends fail while failing is set,
// as the file store's do when the disk is full.
type failingStore struct {
	*store.Memory
	failing atomic.Bool
}

func (s *failingStore) AppendMessages(recs []store.MessageRecord, done func(error)) {
	if s.failing.Load() {
		done(errors.New("no space left on device"))
		return
	}
	s.Memory.AppendMessages(recs, done)
}

// TestDurableStoreWriteFailureNacks: a persistent message the store could not
// write is nacked to a publisher in confirm mode; the broker stays up, and
// once writes succeed again publishes are acked.
func TestDurableStoreWriteFailureNacks(t *testing.T) {
	st := &failingStore{Memory: store.NewMemory()}
	inst := testbroker.Start(t, testbroker.Options{Broker: broker.Config{Store: st}})
	conn, err := amqp.Dial(inst.URL)
	must(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	must(t, err)
	_, err = ch.QueueDeclare("jobs", true, false, false, false, nil)
	must(t, err)
	must(t, ch.Confirm(false))
	publish := func(body string, mode uint8) bool {
		t.Helper()
		dc, err := ch.PublishWithDeferredConfirm("", "jobs", false, false, amqp.Publishing{DeliveryMode: mode, Body: []byte(body)})
		must(t, err)
		select {
		case <-dc.Done():
			return dc.Acked()
		case <-time.After(10 * time.Second):
			t.Fatalf("no confirm for %q", body)
			return false
		}
	}
	if !publish("before", amqp.Persistent) {
		t.Fatal("publish before the failure was nacked")
	}
	st.failing.Store(true)
	if publish("during", amqp.Persistent) {
		t.Fatal("a persistent publish the store could not write was acked")
	}
	if !publish("transient", amqp.Transient) {
		t.Fatal("a transient publish (nothing to write) was nacked")
	}
	st.failing.Store(false)
	if !publish("after", amqp.Persistent) {
		t.Fatal("publish after the store recovered was nacked")
	}
}
