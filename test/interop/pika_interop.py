#!/usr/bin/python3
"""Interop checks for an AMQP 0-9-1 broker using Debian's python3-pika 1.2.

Usage: pika_interop.py [AMQP_URL]   (default amqp://guest:guest@127.0.0.1:5672/%2F)

Every scenario asserts the exact outcome RabbitMQ 3.x produces, so the same
script is run against RabbitMQ (the reference) and against Warren by .ci/run.
Each scenario uses names unique to this run and deletes what it created.
Output: one "ok NAME" / "FAIL NAME: why" line per scenario, then
"N passed, N failed"; the exit status is non-zero if anything failed.

The shebang names /usr/bin/python3 on purpose: python3-pika is installed for
the system interpreter, which a pyenv/virtualenv python3 on PATH cannot see.
"""

import os
import signal
import sys
import time
import traceback

import pika
from pika.exceptions import ChannelClosedByBroker, NackError, UnroutableError

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
URL = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_URL

# Every wait for the broker is bounded by WAIT; a scenario that still hangs
# (e.g. a confirm that never comes) is cut off by SCENARIO_LIMIT, and once
# TOTAL_BUDGET is spent the remaining scenarios fail without running, so a
# broken broker costs well under a minute.
WAIT = 10.0
SCENARIO_LIMIT = 12.0
CLEANUP_LIMIT = 5.0
TOTAL_BUDGET = 30.0

RUN_ID = "%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000000)


class Failure(Exception):
    """An assertion about broker behaviour did not hold."""


class Timeout(BaseException):
    """Raised by SIGALRM; BaseException so client code cannot swallow it."""


def _on_alarm(signum, frame):
    raise Timeout("scenario exceeded %.0fs" % SCENARIO_LIMIT)


def check(cond, why):
    if not cond:
        raise Failure(why)


def expect_eq(got, want, what):
    if got != want:
        raise Failure("%s: got %r, want %r" % (what, got, want))


def params():
    """Connection parameters from URL with every network wait bounded."""
    p = pika.URLParameters(URL)
    p.connection_attempts = 1
    p.socket_timeout = 5
    p.stack_timeout = 5
    p.blocked_connection_timeout = 10
    return p


def pump(conns, done, what, timeout=WAIT):
    """Dispatch events on conns until done() holds, failing after timeout.

    process_data_events returns as soon as something was dispatched, so this
    polls the broker rather than sleeping for a guessed amount of time.
    """
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise Failure("timed out after %.0fs waiting for %s" % (timeout, what))
        for c in conns:
            c.process_data_events(time_limit=0.05)


def get_until(ch, queue, what, timeout=WAIT):
    """basic.get (auto-ack) in a loop until a message shows up, bounded."""
    result = []

    def got():
        m, p, b = ch.basic_get(queue, auto_ack=True)
        if m is not None:
            result.append((m, p, b))
        return bool(result)

    pump([ch.connection], got, what, timeout)
    return result[0]


def drain(ch, queue):
    """Fetch every ready message with basic.get; returns the bodies in order."""
    out = []
    while True:
        m, _, b = ch.basic_get(queue, auto_ack=True)
        if m is None:
            return out
        out.append(b.decode())


def ready_count(ch, queue):
    return ch.queue_declare(queue, passive=True).method.message_count


def props(**kw):
    return pika.BasicProperties(**kw)


class Env:
    """Per-scenario resources: connections to close, names to delete."""

    def __init__(self, scenario):
        self.prefix = "interop.%s.%s" % (RUN_ID, scenario)
        self.conns = []
        self.queues = []
        self.exchanges = []

    def name(self, suffix):
        return "%s.%s" % (self.prefix, suffix)

    def connect(self):
        c = pika.BlockingConnection(params())
        self.conns.append(c)
        return c

    def channel(self, confirm=False):
        ch = self.connect().channel()
        if confirm:
            ch.confirm_delivery()
        return ch

    def queue(self, ch, suffix, **kw):
        """Declare a named queue and remember it for cleanup."""
        name = self.name(suffix)
        ch.queue_declare(name, **kw)
        self.queues.append(name)
        return name

    def exchange(self, ch, suffix, kind):
        name = self.name(suffix)
        ch.exchange_declare(name, kind)
        self.exchanges.append(name)
        return name

    def cleanup(self):
        for c in self.conns:
            try:
                if c.is_open:
                    c.close()
            except Exception:
                pass
        if not self.queues and not self.exchanges:
            return
        admin = pika.BlockingConnection(params())
        try:
            ch = admin.channel()
            for kind, names in (("queue", self.queues), ("exchange", self.exchanges)):
                for n in names:
                    try:
                        if kind == "queue":
                            ch.queue_delete(n)
                        else:
                            ch.exchange_delete(n)
                    except ChannelClosedByBroker:
                        ch = admin.channel()
        finally:
            admin.close()


SCENARIOS = []


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


# ---------------------------------------------------------------- scenarios


@scenario
def work_queue(env):
    """Two workers, prefetch 1, manual acks: round-robin, then fair dispatch."""
    pub = env.channel(confirm=True)
    q = env.queue(pub, "tasks", durable=True)
    seen = {"a": [], "b": []}
    held = {}
    chans = {}
    conns = []
    for w in ("a", "b"):
        ch = env.channel()
        ch.basic_qos(prefetch_count=1)

        def on_task(ch, m, p, body, w=w):
            check(not m.redelivered, "worker %s got a redelivery" % w)
            seen[w].append(body.decode())
            if w in held:
                held[w] = m.delivery_tag  # busy: keep it unacked for now
            else:
                ch.basic_ack(m.delivery_tag)

        held[w] = None
        ch.basic_consume(q, on_task)
        chans[w] = ch
        conns.append(ch.connection)

    # Both workers busy: the first two tasks go one to each worker.
    for i in (0, 1):
        pub.basic_publish("", q, ("task-%d" % i).encode(), props(delivery_mode=2))
    pump(conns, lambda: len(seen["a"]) + len(seen["b"]) == 2, "first two tasks")
    expect_eq((len(seen["a"]), len(seen["b"])), (1, 1), "tasks per worker after round-robin")

    # Prefetch 1 keeps the other eight ready while both workers hold one.
    for i in range(2, 10):
        pub.basic_publish("", q, ("task-%d" % i).encode(), props(delivery_mode=2))
    expect_eq(ready_count(pub, q), 8, "ready tasks while both workers busy")

    # Worker a stays busy; b finishes its task and so takes all the rest.
    b_tag = held.pop("b")
    chans["b"].basic_ack(b_tag)
    pump(conns, lambda: len(seen["b"]) == 9, "worker b to take the remaining 8 tasks")
    chans["a"].basic_ack(held.pop("a"))
    expect_eq(len(seen["a"]), 1, "tasks given to the busy worker")
    want = ["task-%d" % i for i in range(10)]
    expect_eq(sorted(seen["a"] + seen["b"], key=lambda s: int(s[5:])), want,
              "each task processed exactly once")
    expect_eq(seen["b"][1:], want[2:], "order of tasks at the free worker")
    expect_eq(ready_count(pub, q), 0, "tasks left in queue")


@scenario
def pubsub_fanout(env):
    """A fanout exchange copies every message to two exclusive server-named queues."""
    pub = env.channel(confirm=True)
    x = env.exchange(pub, "logs", "fanout")
    sub = env.channel()
    queues = []
    for _ in range(2):
        q = sub.queue_declare("", exclusive=True).method.queue
        check(q.startswith("amq.gen-"), "server-named queue %r lacks amq.gen- prefix" % q)
        sub.queue_bind(q, x)
        queues.append(q)
    check(queues[0] != queues[1], "server returned the same queue name twice")
    msgs = ["log-%d" % i for i in range(3)]
    for m in msgs:
        pub.basic_publish(x, "ignored-key", m.encode())
    got = {q: [] for q in queues}
    for q in queues:
        sub.basic_consume(q, lambda ch, m, p, b, q=q: got[q].append(b.decode()), auto_ack=True)
    pump([sub.connection], lambda: all(len(v) >= 3 for v in got.values()), "fanout copies")
    for q in queues:
        expect_eq(got[q], msgs, "messages in %s" % q)
    # Exclusive queues belong to the connection: closing it deletes them.
    # The broker may delete them just after close-ok, hence the polling.
    sub.connection.close()
    probe = env.connect()

    def gone(q):
        ch = probe.channel()
        try:
            ch.queue_declare(q, passive=True)
        except ChannelClosedByBroker as e:
            expect_eq(e.reply_code, 404, "passive declare of deleted exclusive queue")
            return True
        ch.close()
        return False

    for q in queues:
        pump([probe], lambda: gone(q), "exclusive queue %s to go with its connection" % q)


@scenario
def routing_direct(env):
    """A direct exchange routes by exact severity key; unmatched keys are dropped."""
    ch = env.channel(confirm=True)
    x = env.exchange(ch, "direct_logs", "direct")
    errors = env.queue(ch, "errors")
    ch.queue_bind(errors, x, "error")
    everything = env.queue(ch, "all")
    for sev in ("info", "warning", "error"):
        ch.queue_bind(everything, x, sev)
    for sev in ("info", "warning", "error", "debug"):
        ch.basic_publish(x, sev, ("%s message" % sev).encode())
    expect_eq(drain(ch, errors), ["error message"], "errors queue")
    expect_eq(drain(ch, everything), ["info message", "warning message", "error message"],
              "all-severities queue")


@scenario
def topics(env):
    """The tutorial's topic bindings and its full table of routing keys."""
    ch = env.channel(confirm=True)
    x = env.exchange(ch, "topic_logs", "topic")
    q1 = env.queue(ch, "q1")
    q2 = env.queue(ch, "q2")
    ch.queue_bind(q1, x, "*.orange.*")
    ch.queue_bind(q2, x, "*.*.rabbit")
    ch.queue_bind(q2, x, "lazy.#")
    table = [
        ("quick.orange.rabbit", "12"),
        ("lazy.orange.elephant", "12"),
        ("quick.orange.fox", "1"),
        ("lazy.brown.fox", "2"),
        ("lazy.pink.rabbit", "2"),  # matches both q2 bindings, delivered once
        ("quick.brown.fox", ""),
        ("orange", ""),
        ("quick.orange.male.rabbit", ""),
        ("lazy.orange.male.rabbit", "2"),
        ("lazy", "2"),  # '#' matches zero words
        ("quick.orange", ""),
    ]
    for key, _ in table:
        ch.basic_publish(x, key, key.encode())
    expect_eq(drain(ch, q1), [k for k, qs in table if "1" in qs], "keys routed to *.orange.*")
    expect_eq(drain(ch, q2), [k for k, qs in table if "2" in qs],
              "keys routed to *.*.rabbit / lazy.#")


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def rpc_server(env, queue):
    """Start a fib server on its own connection; returns that connection."""
    ch = env.channel()
    ch.basic_qos(prefetch_count=1)
    seen_reply_to = []

    def on_request(ch, m, p, body):
        seen_reply_to.append(p.reply_to)
        ch.basic_publish("", p.reply_to, str(fib(int(body))).encode(),
                         props(correlation_id=p.correlation_id))
        ch.basic_ack(m.delivery_tag)

    ch.basic_consume(queue, on_request)
    return ch.connection, seen_reply_to


@scenario
def rpc_callback_queue(env):
    """RPC over an exclusive callback queue, replies matched by correlation_id."""
    client = env.channel()
    rpc_q = env.queue(client, "rpc")
    server_conn, _ = rpc_server(env, rpc_q)
    callback = client.queue_declare("", exclusive=True).method.queue
    replies = {}
    client.basic_consume(callback, lambda ch, m, p, b: replies.__setitem__(p.correlation_id, b.decode()),
                         auto_ack=True)
    want = {}
    for n in (1, 10, 30):
        cid = "%s-%d" % (env.prefix, n)
        want[cid] = str(fib(n))
        client.basic_publish("", rpc_q, str(n).encode(), props(reply_to=callback, correlation_id=cid))
    pump([client.connection, server_conn], lambda: len(replies) >= 3, "3 RPC replies")
    expect_eq(replies, want, "replies by correlation_id")


@scenario
def rpc_direct_reply_to(env):
    """RPC with amq.rabbitmq.reply-to: no callback queue, no-ack pseudo-consumer."""
    client = env.channel()
    rpc_q = env.queue(client, "rpc")
    server_conn, seen_reply_to = rpc_server(env, rpc_q)
    replies = []
    client.basic_consume("amq.rabbitmq.reply-to", lambda ch, m, p, b: replies.append((m, p, b)),
                         auto_ack=True)
    client.basic_publish("", rpc_q, b"20",
                         props(reply_to="amq.rabbitmq.reply-to", correlation_id="cid-20"))
    pump([client.connection, server_conn], lambda: replies, "direct reply-to reply")
    check(seen_reply_to[0].startswith("amq.rabbitmq.reply-to."),
          "server saw reply_to %r, want amq.rabbitmq.reply-to.<token>" % seen_reply_to[0])
    m, p, b = replies[0]
    expect_eq((b.decode(), p.correlation_id), (str(fib(20)), "cid-20"), "reply body, correlation_id")
    expect_eq(m.routing_key, seen_reply_to[0], "routing key of the reply")


@scenario
def transactions(env):
    """tx.select/commit/rollback for publishes and for acks."""
    ch = env.channel()
    q = env.queue(ch, "tx")
    ch.tx_select()
    ch.basic_publish("", q, b"rolled-back")
    ch.tx_rollback()
    expect_eq(ready_count(ch, q), 0, "ready after rollback")
    ch.basic_publish("", q, b"committed")
    expect_eq(ready_count(ch, q), 0, "ready before commit")
    ch.tx_commit()
    expect_eq(ready_count(ch, q), 1, "ready after commit")

    # An ack inside a rolled-back transaction is undone: the message stays unacked.
    m, _, b = ch.basic_get(q)
    expect_eq(b, b"committed", "body fetched in tx")
    ch.basic_ack(m.delivery_tag)
    ch.tx_rollback()
    other = env.channel()
    expect_eq(ready_count(other, q), 0, "ready while the rolled-back ack leaves it unacked")
    ch.close()  # closing the channel requeues what it still holds
    m, p, b = other.basic_get(q)
    check(m is not None, "message lost after rolled-back ack")
    expect_eq((b, m.redelivered), (b"committed", True), "requeued message (body, redelivered)")

    # Acking in a transaction and committing removes it for good.
    other.tx_select()
    other.basic_ack(m.delivery_tag)
    other.tx_commit()
    other.close()
    check_ch = env.channel()
    expect_eq(ready_count(check_ch, q), 0, "ready after committed ack and channel close")


@scenario
def publisher_confirms(env):
    """Confirms: acks, mandatory returns, and nacks from reject-publish overflow."""
    ch = env.channel(confirm=True)
    ok = env.queue(ch, "ok")
    ch.basic_publish("", ok, b"routed", mandatory=True)  # acked: no exception
    try:
        ch.basic_publish("", env.name("no-such-queue"), b"lost", mandatory=True)
        raise Failure("mandatory publish to unroutable key did not raise UnroutableError")
    except UnroutableError as e:
        expect_eq(len(e.messages), 1, "returned messages")
        expect_eq(e.messages[0].method.reply_code, 312, "basic.return reply code")
        expect_eq(e.messages[0].method.reply_text, "NO_ROUTE", "basic.return reply text")
    full = env.queue(ch, "bounded", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    ch.basic_publish("", full, b"first")
    try:
        ch.basic_publish("", full, b"second")
        raise Failure("publish beyond x-max-length with reject-publish was not nacked")
    except NackError:
        pass
    expect_eq(drain(ch, full), ["first"], "bounded queue contents")
    expect_eq(drain(ch, ok), ["routed"], "routed queue contents")


@scenario
def consumer_crash_redelivery(env):
    """An unacked delivery to a consumer whose connection dies goes to the next consumer."""
    pub = env.channel(confirm=True)
    q = env.queue(pub, "jobs")
    pub.basic_publish("", q, b"job-1")
    first = env.channel()
    got = []
    first.basic_consume(q, lambda ch, m, p, b: got.append((m.redelivered, b)))
    pump([first.connection], lambda: got, "first delivery")
    expect_eq(got[0], (False, b"job-1"), "first delivery (redelivered, body)")
    first.connection.close()  # crash: no ack
    second = env.channel()
    got2 = []

    def on_msg(ch, m, p, b):
        got2.append((m.redelivered, b))
        ch.basic_ack(m.delivery_tag)

    second.basic_consume(q, on_msg)
    pump([second.connection], lambda: got2, "redelivery")
    expect_eq(got2, [(True, b"job-1")], "second delivery (redelivered, body)")
    expect_eq(ready_count(pub, q), 0, "ready after ack")


@scenario
def basic_get(env):
    """basic.get: get-empty, message counts, requeue via nack."""
    ch = env.channel(confirm=True)
    q = env.queue(ch, "get")
    expect_eq(ch.basic_get(q), (None, None, None), "basic.get on empty queue")
    for i in range(3):
        ch.basic_publish("", q, ("m%d" % i).encode(), props(content_type="text/plain",
                                                             headers={"n": i}))
    m, p, b = ch.basic_get(q)
    expect_eq((b, m.message_count, m.redelivered, m.exchange, m.routing_key),
              (b"m0", 2, False, "", q), "first get-ok (body, message_count, redelivered, exchange, key)")
    expect_eq((p.content_type, p.headers), ("text/plain", {"n": 0}), "properties")
    ch.basic_nack(m.delivery_tag, requeue=True)
    m, _, b = ch.basic_get(q, auto_ack=True)
    expect_eq((b, m.redelivered, m.message_count), (b"m0", True, 2), "get after requeue")
    expect_eq(drain(ch, q), ["m1", "m2"], "remaining messages")
    expect_eq(ch.basic_get(q), (None, None, None), "basic.get after draining")


@scenario
def passive_declare_missing(env):
    """Passive declare of a missing queue closes the channel with 404 and RabbitMQ's text."""
    ch = env.channel()
    missing = env.name("missing")
    vhost = params().virtual_host
    try:
        ch.queue_declare(missing, passive=True)
        raise Failure("passive declare of missing queue succeeded")
    except ChannelClosedByBroker as e:
        expect_eq((e.reply_code, e.reply_text),
                  (404, "NOT_FOUND - no queue '%s' in vhost '%s'" % (missing, vhost)),
                  "channel.close")
    check(ch.is_closed, "channel still open after 404")
    check(ch.connection.is_open, "connection closed by a channel-level error")
    again = ch.connection.channel()
    again.queue_declare("", exclusive=True)  # the connection is still usable


def expect_death(p, reason, queue, exchange, key):
    """Check the x-death entry and x-first-death-* headers RabbitMQ 3.x adds."""
    h = p.headers or {}
    deaths = h.get("x-death")
    check(isinstance(deaths, list) and len(deaths) == 1, "x-death: got %r, want one entry" % deaths)
    d = deaths[0]
    got = {k: d.get(k) for k in ("count", "reason", "queue", "exchange", "routing-keys")}
    expect_eq(got, {"count": 1, "reason": reason, "queue": queue, "exchange": exchange,
                    "routing-keys": [key]}, "x-death entry")
    check("time" in d, "x-death entry has no time")
    got = {k: h.get(k) for k in ("x-first-death-reason", "x-first-death-queue", "x-first-death-exchange")}
    expect_eq(got, {"x-first-death-reason": reason, "x-first-death-queue": queue,
                    "x-first-death-exchange": exchange}, "x-first-death-* headers")
    return d


def dlx_setup(env, ch, queue_args):
    src = env.exchange(ch, "src", "direct")
    dlx = env.exchange(ch, "dlx", "fanout")
    dlq = env.queue(ch, "dead")
    ch.queue_bind(dlq, dlx)
    work = env.queue(ch, "work", arguments=dict(queue_args, **{"x-dead-letter-exchange": dlx}))
    ch.queue_bind(work, src, "task")
    return src, dlx, dlq, work


@scenario
def dead_letter_reject(env):
    """basic.reject(requeue=false) dead-letters with an x-death record."""
    ch = env.channel(confirm=True)
    src, dlx, dlq, work = dlx_setup(env, ch, {})
    ch.basic_publish(src, "task", b"poison", props(message_id="m-1", headers={"app": "x"}))
    m, _, _ = ch.basic_get(work)
    ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, b = get_until(ch, dlq, "dead-lettered message")
    expect_eq((b, m.exchange, m.routing_key, p.message_id), (b"poison", dlx, "task", "m-1"),
              "dead letter (body, exchange, routing key, message_id)")
    expect_eq(p.headers.get("app"), "x", "original header kept")
    expect_death(p, "rejected", work, src, "task")
    expect_eq(ready_count(ch, work), 0, "ready in source queue")


@scenario
def ttl_expiry_to_dlx(env):
    """A message with per-message TTL expires into the dead-letter exchange."""
    ch = env.channel(confirm=True)
    src, dlx, dlq, work = dlx_setup(env, ch, {})
    ch.basic_publish(src, "task", b"short-lived", props(expiration="100"))
    m, p, b = get_until(ch, dlq, "expired message")
    expect_eq(b, b"short-lived", "dead letter body")
    expect_eq(p.expiration, None, "expiration property after dead-lettering")
    d = expect_death(p, "expired", work, src, "task")
    expect_eq(d.get("original-expiration"), "100", "x-death original-expiration")


@scenario
def priority_queue(env):
    """x-max-priority: higher priority first, FIFO within a priority, capped at the max."""
    ch = env.channel(confirm=True)
    q = env.queue(ch, "prio", arguments={"x-max-priority": 10})
    sent = [(1, "a"), (5, "b"), (None, "c"), (9, "d"), (5, "e"), (0, "f"), (9, "g"), (20, "h")]
    for prio, body in sent:
        ch.basic_publish("", q, body.encode(), props(priority=prio))
    expect_eq("".join(drain(ch, q)), "hdgbeacf", "delivery order")


# ---------------------------------------------------------------- runner


def one_line(e):
    s = str(e) or type(e).__name__
    if not isinstance(e, (Failure, Timeout)):
        s = "%s: %s" % (type(e).__name__, s)
    return " ".join(s.split())


def run(fn, start):
    """Run one scenario under its time limit; returns None or the failure text."""
    if time.monotonic() - start > TOTAL_BUDGET:
        return "not run: total time budget of %.0fs spent" % TOTAL_BUDGET
    env = Env(fn.__name__)
    why = None
    try:
        signal.setitimer(signal.ITIMER_REAL, SCENARIO_LIMIT)
        fn(env)
    except (Exception, Timeout) as e:
        why = one_line(e)
        if os.environ.get("INTEROP_DEBUG"):
            traceback.print_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        signal.setitimer(signal.ITIMER_REAL, CLEANUP_LIMIT)
        env.cleanup()
    except (Exception, Timeout) as e:
        why = why or "cleanup: " + one_line(e)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return why


def main():
    signal.signal(signal.SIGALRM, _on_alarm)
    start = time.monotonic()
    passed = failed = 0
    for fn in SCENARIOS:
        why = run(fn, start)
        if why is None:
            passed += 1
            print("ok %s" % fn.__name__, flush=True)
        else:
            failed += 1
            print("FAIL %s: %s" % (fn.__name__, why), flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
