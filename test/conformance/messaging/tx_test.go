package messaging

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// txChannel opens a channel and puts it in transaction mode.
func txChannel(t *testing.T, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch := openChannel(t, conn)
	if err := ch.Tx(); err != nil {
		t.Fatalf("tx.select: %v", err)
	}
	return ch
}

// TestTxPublishCommit: publishes inside a transaction are invisible until
// tx.commit-ok, then all there in order.
func TestTxPublishCommit(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	tx := txChannel(t, conn)
	publishBodies(t, tx, q, "a", "b", "c")
	// A synchronous call on the tx channel makes sure the publishes were
	// processed before the count is taken.
	if _, err := tx.QueueDeclarePassive(q, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := queueCounts(t, conn, q); n != 0 {
		t.Fatalf("%d messages visible before commit", n)
	}
	if err := tx.TxCommit(); err != nil {
		t.Fatal(err)
	}
	if n, _ := queueCounts(t, conn, q); n != 3 {
		t.Fatalf("%d messages after commit-ok, want 3", n)
	}
	equalStrings(t, "committed", bodies(drain(t, conn, q, 3)), []string{"a", "b", "c"})
}

// TestTxPublishRollback: rollback discards the publishes; the channel stays
// transactional and a later commit only carries later work.
func TestTxPublishRollback(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	tx := txChannel(t, conn)
	publishBodies(t, tx, q, "discarded-1", "discarded-2")
	if err := tx.TxRollback(); err != nil {
		t.Fatal(err)
	}
	publishBodies(t, tx, q, "kept")
	if err := tx.TxCommit(); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "after rollback and commit", bodies(drain(t, conn, q, 1)), []string{"kept"})
}

// TestTxUncommittedDiscardedOnClose: closing the channel drops an open
// transaction's publishes.
func TestTxUncommittedDiscardedOnClose(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	tx := txChannel(t, conn)
	publishBodies(t, tx, q, "never")
	if err := tx.Close(); err != nil {
		t.Fatal(err)
	}
	publishBodies(t, ch, q, "sentinel")
	equalStrings(t, "after close", bodies(drain(t, conn, q, 1)), []string{"sentinel"})
}

// TestTxAckCommit: acks inside a transaction take effect at commit.
func TestTxAckCommit(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, 3)
	tx := txChannel(t, conn)
	got := nextN(t, consume(t, tx, q, ""), 3)
	if err := got[1].Ack(true); err != nil { // m-1, m-2
		t.Fatal(err)
	}
	if err := tx.TxCommit(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Close(); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "after committed ack", bodies(drain(t, conn, q, 1)), []string{"m-3"})
}

// TestTxAckRollback: rolled-back acks are forgotten, and the messages stay
// unacked on the channel (rollback does not requeue them); they can be acked
// again and return to the queue only when the channel closes.
func TestTxAckRollback(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, 3)
	tx := txChannel(t, conn)
	got := nextN(t, consume(t, tx, q, ""), 3)
	for _, d := range got {
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.TxRollback(); err != nil {
		t.Fatal(err)
	}
	if n, _ := queueCounts(t, conn, q); n != 0 {
		t.Fatalf("rollback requeued %d messages, want 0", n)
	}
	// The same tag is valid again after rollback.
	if err := got[0].Ack(false); err != nil {
		t.Fatal(err)
	}
	if err := tx.TxCommit(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Close(); err != nil {
		t.Fatal(err)
	}
	d := drain(t, conn, q, 2)
	equalStrings(t, "after close", bodies(d), []string{"m-2", "m-3"})
	equalBools(t, "redelivered", redelivered(d), []bool{true, true})
}

// TestTxRejectCommit: reject/nack with requeue inside a transaction requeues
// only at commit.
func TestTxRejectCommit(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, 2)
	tx := txChannel(t, conn)
	d1, _, err := tx.Get(q, false)
	if err != nil {
		t.Fatal(err)
	}
	d2, _, err := tx.Get(q, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := d1.Reject(true); err != nil {
		t.Fatal(err)
	}
	if err := d2.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.QueueDeclarePassive(q, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := queueCounts(t, conn, q); n != 0 {
		t.Fatalf("%d requeued before commit, want 0", n)
	}
	if err := tx.TxCommit(); err != nil {
		t.Fatal(err)
	}
	d := drain(t, conn, q, 2)
	equalStrings(t, "after commit", bodies(d), []string{"m-1", "m-2"})
	equalBools(t, "redelivered", redelivered(d), []bool{true, true})
}

// TestTxRejectRollback: a rolled-back reject leaves the message unacked.
func TestTxRejectRollback(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, 1)
	tx := txChannel(t, conn)
	d, _, err := tx.Get(q, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Reject(false); err != nil { // would discard
		t.Fatal(err)
	}
	if err := tx.TxRollback(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Close(); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "after rollback and close", bodies(drain(t, conn, q, 1)), []string{"m-1"})
}

// TestTxReturnBeforeCommitOk: an unroutable mandatory publish in a
// transaction is returned at commit, before commit-ok, not at publish time.
func TestTxReturnBeforeCommitOk(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	tx := txChannel(t, conn)
	returns := tx.NotifyReturn(make(chan amqp.Return, 1))
	key := uniqueName(t, "key")
	if err := tx.Publish("amq.direct", key, true, false, amqp.Publishing{Body: []byte("lost")}); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Fatal(err)
	}
	expectNoReturn(t, returns)
	if err := tx.TxCommit(); err != nil {
		t.Fatal(err)
	}
	// amqp091-go dispatches frames in arrival order from one goroutine, so a
	// return sent before commit-ok is already waiting here.
	select {
	case r := <-returns:
		if r.ReplyCode != 312 || r.ReplyText != "NO_ROUTE" || r.RoutingKey != key {
			t.Fatalf("return %d %q %q", r.ReplyCode, r.ReplyText, r.RoutingKey)
		}
	default:
		t.Fatal("no basic.return before tx.commit-ok")
	}
}

// TestTxReturnDiscardedByRollback: a rolled-back unroutable publish is never
// returned.
func TestTxReturnDiscardedByRollback(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	tx := txChannel(t, conn)
	returns := tx.NotifyReturn(make(chan amqp.Return, 1))
	if err := tx.Publish("amq.direct", uniqueName(t, "key"), true, false, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := tx.TxRollback(); err != nil {
		t.Fatal(err)
	}
	if err := tx.TxCommit(); err != nil {
		t.Fatal(err)
	}
	expectNoReturn(t, returns)
}

// TestTxSelectIdempotent: tx.select twice is fine.
func TestTxSelectIdempotent(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	tx := txChannel(t, conn)
	if err := tx.Tx(); err != nil {
		t.Fatalf("second tx.select: %v", err)
	}
}

// TestTxCommitWithoutSelect: 406 closes the channel; the connection stays.
func TestTxCommitWithoutSelect(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	err := ch.TxCommit()
	expectError(t, err, 406, "PRECONDITION_FAILED - channel is not transactional")
	if _, err := openChannel(t, conn).QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Fatalf("connection after channel error: %v", err)
	}
}

func TestTxRollbackWithoutSelect(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	err := ch.TxRollback()
	expectError(t, err, 406, "PRECONDITION_FAILED - channel is not transactional")
}

// TestTxMissingExchangeClosesChannel: a publish to a missing exchange inside a
// transaction fails at once (404 on the publish), not at commit.
func TestTxMissingExchangeClosesChannel(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	tx := txChannel(t, conn)
	closes := notifyChannelClose(tx)
	name := uniqueName(t, "nox")
	publish(t, tx, name, "", amqp.Publishing{Body: []byte("x")})
	expectClosed(t, closes, 404, "NOT_FOUND - no exchange '"+name+"' in vhost '/'")
}
