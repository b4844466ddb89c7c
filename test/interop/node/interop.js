#!/usr/bin/env node
// Interop checks for an AMQP 0-9-1 broker using Node's amqplib (the version
// pinned in package.json and package-lock.json).
//
// Usage: node interop.js [AMQP_URL]   (default amqp://guest:guest@127.0.0.1:5672/%2F)
//
// Every scenario asserts the exact outcome RabbitMQ 3.x produces, so the same
// script is run against RabbitMQ (the reference) and against Warren by .ci/run.
// Each scenario uses names unique to this run and deletes what it created.
// Output: one "ok NAME" / "FAIL NAME: why" line per scenario, then
// "N passed, N failed"; the exit status is non-zero if anything failed.
// INTEROP_DEBUG=1 adds stack traces on stderr.
'use strict';

const assert = require('node:assert/strict');
const util = require('node:util');
const amqp = require('amqplib');

const DEFAULT_URL = 'amqp://guest:guest@127.0.0.1:5672/%2F';
const AMQP_URL = process.argv[2] || DEFAULT_URL;

// Every wait for the broker is bounded by WAIT_MS; a scenario that still hangs
// (an RPC the broker never answers) is abandoned after SCENARIO_LIMIT_MS and
// its connections closed, and once TOTAL_BUDGET_MS is spent the remaining
// scenarios fail without running, so a broken broker costs well under a minute.
const WAIT_MS = 10000;
const SCENARIO_LIMIT_MS = 12000;
const CLEANUP_LIMIT_MS = 5000;
const TOTAL_BUDGET_MS = 30000;
const CONNECT_TIMEOUT_MS = 5000;

const RUN_ID = `${process.pid}-${Date.now() % 100000000}`;
const DEBUG = Boolean(process.env.INTEROP_DEBUG);

/** An assertion about broker behaviour did not hold. */
class Failure extends Error {}

function show(v) {
  return util.inspect(v, { depth: 8, breakLength: Infinity });
}

function check(cond, why) {
  if (!cond) throw new Failure(why);
}

// Deep, type-strict equality: 1 and '1', or a number and a boolean, differ.
function expectEq(got, want, what) {
  try {
    assert.deepStrictEqual(got, want);
  } catch {
    throw new Failure(`${what}: got ${show(got)}, want ${show(want)}`);
  }
}

// bounded rejects with a Failure naming `what` if promise is not settled in ms.
function bounded(promise, ms, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failure(`timed out after ${ms / 1000}s waiting for ${what}`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

// Signal lets the main flow wait for state that consumer callbacks build up:
// callbacks call notify() after each change and until() re-checks its
// condition then, so waits are driven by deliveries rather than by sleeping.
class Signal {
  constructor() {
    this.checks = new Set();
  }

  notify() {
    for (const c of [...this.checks]) c();
  }

  until(what, cond, ms = WAIT_MS) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.checks.delete(test);
        reject(new Failure(`timed out after ${ms / 1000}s waiting for ${what}`));
      }, ms);
      const test = () => {
        let ok;
        try {
          ok = cond();
        } catch (e) {
          ok = e;
        }
        if (!ok) return;
        clearTimeout(timer);
        this.checks.delete(test);
        if (ok instanceof Error) reject(ok);
        else resolve();
      };
      this.checks.add(test);
      test();
    });
  }
}

// vhostOf names the vhost AMQP_URL selects, as amqplib derives it, for the
// expected text of NOT_FOUND errors.
function vhostOf(url) {
  const path = new URL(url).pathname;
  return path.length > 1 ? decodeURIComponent(path.slice(1)) : '/';
}

// replyText recovers the broker's channel.close reply-text, which amqplib
// only exposes inside its error message: ... with message "TEXT".
function replyText(err) {
  const m = /with message "(.*)"$/s.exec(err.message);
  return m ? m[1] : `(no reply text in ${show(err.message)})`;
}

async function readyCount(ch, queue) {
  return (await ch.checkQueue(queue)).messageCount;
}

// drain fetches every ready message with basic.get (no-ack); returns bodies.
async function drain(ch, queue) {
  const out = [];
  for (let i = 0; i < 1000; i++) {
    const m = await ch.get(queue, { noAck: true });
    if (m === false) return out;
    out.push(m.content.toString());
  }
  throw new Failure(`queue ${queue} still not empty after 1000 basic.get`);
}

function confirmsOf(ch, what) {
  return bounded(ch.waitForConfirms(), WAIT_MS, what);
}

/** Per-scenario resources: connections to close, names to delete. */
class Env {
  constructor(scenario) {
    this.prefix = `interop.node.${RUN_ID}.${scenario}`;
    this.conns = [];
    this.queues = [];
    this.exchanges = [];
    this.closed = new Set();
  }

  name(suffix) {
    return `${this.prefix}.${suffix}`;
  }

  async connect() {
    const conn = await amqp.connect(AMQP_URL, {
      timeout: CONNECT_TIMEOUT_MS,
      clientProperties: { connection_name: this.prefix },
    });
    // A connection or channel that emits 'error' without a listener would
    // crash the process; the failing operation itself reports the error.
    conn.on('error', () => {});
    conn.on('close', () => this.closed.add(conn));
    this.conns.push(conn);
    return conn;
  }

  // channel opens a channel on conn, or on a new connection of its own.
  async channel({ confirm = false, conn = null } = {}) {
    const c = conn || (await this.connect());
    const ch = confirm ? await c.createConfirmChannel() : await c.createChannel();
    ch.on('error', () => {});
    return ch;
  }

  /** queue declares a named queue and remembers it for cleanup. */
  async queue(ch, suffix, options = {}) {
    const name = this.name(suffix);
    this.queues.push(name);
    const ok = await ch.assertQueue(name, options);
    expectEq(ok.queue, name, 'queue.declare-ok queue name');
    return name;
  }

  async exchange(ch, suffix, type) {
    const name = this.name(suffix);
    this.exchanges.push(name);
    const ok = await ch.assertExchange(name, type, { durable: false });
    expectEq(ok.exchange, name, 'exchange name');
    return name;
  }

  async cleanup() {
    for (const c of this.conns) {
      if (this.closed.has(c)) continue;
      try {
        await c.close();
      } catch {
        // already closed by the broker or by the scenario
      }
    }
    if (this.queues.length === 0 && this.exchanges.length === 0) return;
    const admin = await amqp.connect(AMQP_URL, { timeout: CONNECT_TIMEOUT_MS });
    admin.on('error', () => {});
    try {
      let ch = null;
      const del = async (fn) => {
        if (ch === null) {
          ch = await admin.createChannel();
          ch.on('error', () => {});
        }
        try {
          await fn(ch);
        } catch {
          ch = null; // the broker closed the channel; carry on with a new one
        }
      };
      for (const q of this.queues) await del((c) => c.deleteQueue(q));
      for (const x of this.exchanges) await del((c) => c.deleteExchange(x));
    } finally {
      await admin.close();
    }
  }
}

const SCENARIOS = [];

function scenario(name, fn) {
  SCENARIOS.push({ name, fn });
}

// ---------------------------------------------------------------- scenarios

scenario('work_queue', async (env) => {
  // Two workers, prefetch 1, manual acks: one task each while both are busy,
  // then every remaining task goes to the worker that has acked.
  const pub = await env.channel({ confirm: true });
  const q = await env.queue(pub, 'tasks', { durable: true });
  const sig = new Signal();
  const workers = {};
  for (const w of ['a', 'b']) {
    const state = { ch: await env.channel(), seen: [], redelivered: 0, busy: true, held: null };
    await state.ch.prefetch(1);
    await state.ch.consume(q, (m) => {
      if (m === null) return;
      if (m.fields.redelivered) state.redelivered++;
      state.seen.push(m.content.toString());
      if (state.busy) state.held = m;
      else state.ch.ack(m);
      sig.notify();
    });
    workers[w] = state;
  }
  const { a, b } = workers;
  const publish = (i) => pub.sendToQueue(q, Buffer.from(`task-${i}`), { persistent: true });

  for (const i of [0, 1]) publish(i);
  await confirmsOf(pub, 'confirms of the first two tasks');
  await sig.until('the first two tasks', () => a.seen.length + b.seen.length === 2);
  expectEq([a.seen.length, b.seen.length], [1, 1], 'tasks per worker while both are busy');

  for (let i = 2; i < 10; i++) publish(i);
  await confirmsOf(pub, 'confirms of tasks 2-9');
  expectEq(await readyCount(pub, q), 8, 'ready tasks while each worker holds one unacked');

  b.busy = false;
  b.ch.ack(b.held);
  await sig.until('worker b to take the remaining 8 tasks', () => b.seen.length === 9);
  a.ch.ack(a.held);
  expectEq(a.seen.length, 1, 'tasks given to the busy worker');
  const want = Array.from({ length: 10 }, (_, i) => `task-${i}`);
  const all = [...a.seen, ...b.seen].sort((x, y) => Number(x.slice(5)) - Number(y.slice(5)));
  expectEq(all, want, 'each task processed exactly once');
  expectEq(b.seen.slice(1), want.slice(2), 'order of tasks at the free worker');
  expectEq([a.redelivered, b.redelivered], [0, 0], 'redelivered flags set');
  expectEq(await readyCount(pub, q), 0, 'tasks left in the queue');
});

scenario('pubsub_fanout', async (env) => {
  // A fanout exchange copies every message to two exclusive server-named queues.
  const pub = await env.channel({ confirm: true });
  const x = await env.exchange(pub, 'logs', 'fanout');
  const sub = await env.channel();
  const sig = new Signal();
  const got = new Map();
  for (let i = 0; i < 2; i++) {
    const { queue } = await sub.assertQueue('', { exclusive: true });
    check(queue.startsWith('amq.gen-'), `server-named queue ${show(queue)} lacks the amq.gen- prefix`);
    check(!got.has(queue), `server returned the queue name ${queue} twice`);
    await sub.bindQueue(queue, x, '');
    got.set(queue, []);
    await sub.consume(
      queue,
      (m) => {
        got.get(queue).push([m.fields.exchange, m.fields.routingKey, m.content.toString()]);
        sig.notify();
      },
      { noAck: true },
    );
  }
  const msgs = ['log-0', 'log-1', 'log-2'];
  for (const m of msgs) pub.publish(x, 'ignored-key', Buffer.from(m));
  await confirmsOf(pub, 'publish confirms');
  await sig.until('three copies in each queue', () => [...got.values()].every((v) => v.length >= 3));
  for (const [queue, v] of got) {
    expectEq(
      v,
      msgs.map((m) => [x, 'ignored-key', m]),
      `deliveries from ${queue} (exchange, routing key, body)`,
    );
  }
});

scenario('topic_routing', async (env) => {
  // user.profile.* style bindings: '*' is exactly one word, '#' zero or more,
  // and a message matching two bindings of one queue is queued there once.
  const ch = await env.channel({ confirm: true });
  const x = await env.exchange(ch, 'user_events', 'topic');
  const profile = await env.queue(ch, 'profile');
  await ch.bindQueue(profile, x, 'user.profile.*');
  const user = await env.queue(ch, 'user');
  await ch.bindQueue(user, x, 'user.#');
  const updated = await env.queue(ch, 'updated');
  await ch.bindQueue(updated, x, '*.*.updated');
  await ch.bindQueue(updated, x, 'user.*.updated');
  // key -> queues it reaches: P(rofile), U(ser), D (upDated)
  const table = [
    ['user.profile.updated', 'PUD'],
    ['user.profile.avatar', 'PU'],
    ['user.profile', 'U'],
    ['user.profile.avatar.changed', 'U'],
    ['user', 'U'],
    ['user.settings.updated', 'UD'],
    ['order.profile.updated', 'D'],
    ['users.profile.updated', 'D'],
    ['profile.updated', ''],
    ['User.profile.updated', 'D'],
    ['user.profile.', 'PU'],
    ['', ''],
  ];
  for (const [key] of table) ch.publish(x, key, Buffer.from(key));
  await confirmsOf(ch, 'publish confirms');
  const expect = (tag) => table.filter(([, qs]) => qs.includes(tag)).map(([key]) => key);
  expectEq(await drain(ch, profile), expect('P'), "keys routed by 'user.profile.*'");
  expectEq(await drain(ch, user), expect('U'), "keys routed by 'user.#'");
  expectEq(await drain(ch, updated), expect('D'), "keys routed by '*.*.updated' + 'user.*.updated'");
});

function fib(n) {
  let [a, b] = [0, 1];
  for (let i = 0; i < n; i++) [a, b] = [b, a + b];
  return a;
}

scenario('rpc_direct_reply_to', async (env) => {
  // RPC with amq.rabbitmq.reply-to: a no-ack pseudo-consumer, no callback
  // queue, replies matched by correlationId.
  const client = await env.channel();
  const rpcQ = await env.queue(client, 'rpc');
  const server = await env.channel();
  await server.prefetch(1);
  const seenReplyTo = [];
  await server.consume(rpcQ, (m) => {
    seenReplyTo.push(m.properties.replyTo);
    const answer = String(fib(Number(m.content.toString())));
    server.sendToQueue(m.properties.replyTo, Buffer.from(answer), {
      correlationId: m.properties.correlationId,
    });
    server.ack(m);
  });
  const sig = new Signal();
  const replies = [];
  await client.consume(
    'amq.rabbitmq.reply-to',
    (m) => {
      replies.push(m);
      sig.notify();
    },
    { noAck: true },
  );
  const want = {};
  for (const n of [1, 10, 30]) {
    const cid = `${env.prefix}-${n}`;
    want[cid] = String(fib(n));
    client.sendToQueue(rpcQ, Buffer.from(String(n)), {
      replyTo: 'amq.rabbitmq.reply-to',
      correlationId: cid,
    });
  }
  await sig.until('3 RPC replies', () => replies.length >= 3);
  expectEq(
    Object.fromEntries(replies.map((m) => [m.properties.correlationId, m.content.toString()])),
    want,
    'replies by correlationId',
  );
  expectEq(seenReplyTo.length, 3, 'requests seen by the server');
  check(
    seenReplyTo.every((r) => r.startsWith('amq.rabbitmq.reply-to.') && r === seenReplyTo[0]),
    `server saw replyTo ${show(seenReplyTo)}, want one amq.rabbitmq.reply-to.<token> for all`,
  );
  expectEq(
    replies.map((m) => [m.fields.exchange, m.fields.routingKey, m.fields.redelivered]),
    replies.map(() => ['', seenReplyTo[0], false]),
    'reply deliveries (exchange, routing key, redelivered)',
  );
});

scenario('confirm_channel', async (env) => {
  // ConfirmChannel: every publish is acked, waitForConfirms resolves.
  const ch = await env.channel({ confirm: true });
  const q = await env.queue(ch, 'confirmed');
  const outcomes = [];
  const msgs = Array.from({ length: 20 }, (_, i) => `m-${i}`);
  for (const m of msgs) {
    ch.sendToQueue(q, Buffer.from(m), {}, (err) => outcomes.push(err === null ? 'ack' : `nack: ${err.message}`));
  }
  await confirmsOf(ch, 'waitForConfirms');
  expectEq(
    outcomes,
    msgs.map(() => 'ack'),
    'confirm callbacks',
  );
  expectEq(await readyCount(ch, q), 20, 'ready messages');
  expectEq(await drain(ch, q), msgs, 'queue contents');
});

scenario('mandatory_return', async (env) => {
  // A mandatory publish nothing routes comes back as basic.return 312
  // NO_ROUTE before its (positive) confirm; a routed one is not returned.
  const ch = await env.channel({ confirm: true });
  const routed = await env.queue(ch, 'routed');
  const missing = env.name('no-such-queue');
  const returns = [];
  ch.on('return', (m) => returns.push(m));
  const outcomes = {};
  const record = (key) => (err) => {
    outcomes[key] = [err === null ? 'ack' : 'nack', returns.length];
  };
  ch.sendToQueue(routed, Buffer.from('routed'), { mandatory: true }, record('routed'));
  ch.publish('', missing, Buffer.from('lost'), { mandatory: true, messageId: 'lost-1' }, record('lost'));
  await confirmsOf(ch, 'waitForConfirms');
  expectEq(returns.length, 1, 'basic.return count');
  const r = returns[0];
  expectEq(
    {
      replyCode: r.fields.replyCode,
      replyText: r.fields.replyText,
      exchange: r.fields.exchange,
      routingKey: r.fields.routingKey,
      body: r.content.toString(),
      messageId: r.properties.messageId,
    },
    { replyCode: 312, replyText: 'NO_ROUTE', exchange: '', routingKey: missing, body: 'lost', messageId: 'lost-1' },
    'basic.return',
  );
  expectEq(outcomes.lost, ['ack', 1], 'confirm of the unroutable message (outcome, returns seen by then)');
  expectEq(outcomes.routed[0], 'ack', 'confirm of the routed message');
  expectEq(await drain(ch, routed), ['routed'], 'routed queue contents');
});

scenario('reject_publish_nack', async (env) => {
  // x-max-length 1 with x-overflow reject-publish: the second publish is nacked.
  const ch = await env.channel({ confirm: true });
  const q = await env.queue(ch, 'bounded', {
    arguments: { 'x-max-length': 1, 'x-overflow': 'reject-publish' },
  });
  const sig = new Signal();
  const outcomes = [];
  for (const body of ['first', 'second']) {
    ch.sendToQueue(q, Buffer.from(body), {}, (err) => {
      outcomes.push([body, err === null ? 'ack' : err.message]);
      sig.notify();
    });
  }
  let waitErr = null;
  try {
    await confirmsOf(ch, 'waitForConfirms');
  } catch (e) {
    waitErr = e;
  }
  check(waitErr !== null && !(waitErr instanceof Failure), `waitForConfirms: got ${show(waitErr)}, want rejection by a nack`);
  await sig.until('both confirms', () => outcomes.length === 2);
  outcomes.sort();
  expectEq(
    outcomes,
    [
      ['first', 'ack'],
      ['second', 'message nacked'],
    ],
    'confirm outcomes',
  );
  expectEq(await drain(ch, q), ['first'], 'bounded queue contents');
});

scenario('consumer_crash_redelivery', async (env) => {
  // An unacked delivery to a consumer whose TCP connection drops goes to the
  // next consumer with redelivered=true.
  const pub = await env.channel({ confirm: true });
  const q = await env.queue(pub, 'jobs');
  pub.sendToQueue(q, Buffer.from('job-1'), { persistent: true });
  await confirmsOf(pub, 'publish confirm');
  const sig = new Signal();
  const firstConn = await env.connect();
  const first = await env.channel({ conn: firstConn });
  const got = [];
  await first.consume(q, (m) => {
    if (m === null) return;
    got.push([m.fields.redelivered, m.content.toString()]);
    sig.notify();
  });
  await sig.until('first delivery', () => got.length >= 1);
  expectEq(got, [[false, 'job-1']], 'first delivery (redelivered, body)');

  // Crash: drop the socket without channel.close or connection.close. The
  // error makes amqplib notice and close its side; a bare destroy() would not.
  const crashed = new Promise((resolve) => firstConn.once('close', resolve));
  firstConn.connection.stream.destroy(new Error('simulated consumer crash'));
  await bounded(crashed, WAIT_MS, 'the crashed connection to close');

  const second = await env.channel();
  const got2 = [];
  await second.consume(q, (m) => {
    if (m === null) return;
    got2.push([m.fields.redelivered, m.content.toString()]);
    second.ack(m);
    sig.notify();
  });
  await sig.until('redelivery to the second consumer', () => got2.length >= 1);
  expectEq(got2, [[true, 'job-1']], 'second delivery (redelivered, body)');
  expectEq(await readyCount(pub, q), 0, 'ready after ack');
});

scenario('channel_error', async (env) => {
  // checkQueue (passive declare) on a missing queue closes the channel with
  // 404 and RabbitMQ's text; the connection stays usable on a new channel.
  const conn = await env.connect();
  let connClosed = false;
  conn.on('close', () => {
    connClosed = true;
  });
  const ch = await env.channel({ conn });
  const closed = new Promise((resolve) => ch.once('close', resolve));
  const missing = env.name('missing');
  let err = null;
  try {
    await ch.checkQueue(missing);
  } catch (e) {
    err = e;
  }
  check(err !== null, 'checkQueue on a missing queue succeeded');
  check(!(err instanceof Failure), err && err.message);
  expectEq(
    [err.code, err.classId, err.methodId, replyText(err)],
    [404, 50, 10, `NOT_FOUND - no queue '${missing}' in vhost '${vhostOf(AMQP_URL)}'`],
    'channel.close (code, class, method, text)',
  );
  await bounded(closed, WAIT_MS, "the channel's close event");
  let reuse = null;
  try {
    await ch.checkQueue('amq.rabbitmq.reply-to');
  } catch (e) {
    reuse = e;
  }
  check(reuse instanceof amqp.IllegalOperationError, `use of the closed channel: got ${show(reuse)}`);

  const again = await env.channel({ conn });
  const { queue } = await again.assertQueue('', { exclusive: true });
  check(queue.startsWith('amq.gen-'), `server-named queue ${show(queue)} lacks the amq.gen- prefix`);
  expectEq((await again.checkQueue(queue)).queue, queue, 'checkQueue on the new channel');
  await again.close();
  check(!connClosed, 'the connection closed after a channel-level error');
});

scenario('headers_preserved', async (env) => {
  // Header tables keep their values and types end to end: strings, integers
  // of each width amqplib picks (b/s/I/l), doubles, booleans, nested tables,
  // arrays; the other basic properties come back as sent.
  const pub = await env.channel({ confirm: true });
  const q = await env.queue(pub, 'headers');
  const headers = {
    str: 'héllo, wörld ✓',
    empty: '',
    byte: 7,
    negative: -42,
    short: 1000,
    int: 100000,
    long: 2 ** 40,
    double: 1.5,
    yes: true,
    no: false,
    nested: { level: 1, inner: { s: 'deep', n: -3, flag: true, list: ['x', 2] } },
    list: [1, 'two', false, { k: 'v' }, [3, 4.25]],
    emptyList: [],
    emptyTable: {},
  };
  const props = {
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    deliveryMode: 2,
    priority: 3,
    correlationId: 'corr-1',
    replyTo: 'reply-queue',
    messageId: 'msg-1',
    timestamp: 1700000000,
    type: 'user.created',
    appId: 'warren-interop-node',
  };
  pub.sendToQueue(q, Buffer.from('{"id":1}'), { headers, ...props });
  await confirmsOf(pub, 'publish confirm');
  const sub = await env.channel();
  const sig = new Signal();
  const got = [];
  await sub.consume(
    q,
    (m) => {
      got.push(m);
      sig.notify();
    },
    { noAck: true },
  );
  await sig.until('the delivery', () => got.length >= 1);
  const m = got[0];
  expectEq(m.content.toString(), '{"id":1}', 'body');
  expectEq(m.properties.headers, headers, 'headers');
  const back = Object.fromEntries(Object.keys(props).map((k) => [k, m.properties[k]]));
  expectEq(back, props, 'basic properties');
});

// ---------------------------------------------------------------- runner

function oneLine(e) {
  let s = (e && e.message) || String(e);
  if (!(e instanceof Failure)) s = `${(e && e.constructor && e.constructor.name) || 'Error'}: ${s}`;
  return s.split(/\s+/).join(' ').trim();
}

// run runs one scenario under its time limit and cleans up after it;
// returns null or the failure text.
async function run({ name, fn }, start) {
  if (Date.now() - start > TOTAL_BUDGET_MS) {
    return `not run: total time budget of ${TOTAL_BUDGET_MS / 1000}s spent`;
  }
  const env = new Env(name);
  let why = null;
  try {
    await bounded(fn(env), SCENARIO_LIMIT_MS, `scenario ${name} to finish (${SCENARIO_LIMIT_MS / 1000}s limit)`);
  } catch (e) {
    why = oneLine(e);
    if (DEBUG) console.error(e);
  }
  try {
    await bounded(env.cleanup(), CLEANUP_LIMIT_MS, 'cleanup');
  } catch (e) {
    why = why || `cleanup: ${oneLine(e)}`;
    if (DEBUG) console.error(e);
  }
  return why;
}

async function main() {
  // A scenario abandoned at its time limit can leave a client promise that
  // rejects later, when cleanup closes its connection; that must not end the
  // run, the scenario has already been reported as failed.
  process.on('unhandledRejection', (e) => {
    if (DEBUG) console.error('unhandled rejection:', e);
  });
  const start = Date.now();
  let passed = 0;
  let failed = 0;
  for (const s of SCENARIOS) {
    const why = await run(s, start);
    if (why === null) {
      passed++;
      console.log(`ok ${s.name}`);
    } else {
      failed++;
      console.log(`FAIL ${s.name}: ${why}`);
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

main().then(
  (code) => {
    // Exit explicitly: sockets of abandoned scenarios must not keep us alive.
    process.exitCode = code;
    process.exit(code);
  },
  (e) => {
    console.error(e);
    process.exit(2);
  },
);
