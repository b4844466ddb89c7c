#!/usr/bin/env node
// Interop checks of a Kafka listener with kafkajs (the version pinned in
// package.json and package-lock.json).
//
// Usage: node kafka.js [HOST:PORT]   (default 127.0.0.1:9092)
//
// Every scenario asserts what Apache Kafka does (checked first against
// franz-go's kfake), so .ci/run runs the same script against Warren. Each
// scenario uses topics and groups unique to this run and deletes its topics.
// Output: one "ok NAME" / "FAIL NAME: why" line per scenario, then
// "N passed, N failed"; the exit status is non-zero if anything failed.
// INTEROP_DEBUG=1 adds stack traces and kafkajs's own warnings on stderr.
'use strict';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const assert = require('node:assert/strict');
const { Kafka, logLevel, Partitioners } = require('kafkajs');

const BROKER = process.argv[2] || '127.0.0.1:9092';
const SCENARIO_LIMIT_MS = 45000;
const TOTAL_BUDGET_MS = 150000;
const WAIT_MS = 30000;
const RUN_ID = `${process.pid}-${Date.now() % 100000000}`;
const DEBUG = Boolean(process.env.INTEROP_DEBUG);

const kafka = new Kafka({
  clientId: `warren-interop-${RUN_ID}`,
  brokers: [BROKER],
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1000 },
  logLevel: DEBUG ? logLevel.WARN : logLevel.NOTHING,
});

const cleanups = [];
const name = (what) => `interop-kafkajs-${RUN_ID}-${what}`;

/** Resolves once pred() is true, polling; rejects after WAIT_MS. */
async function until(what, pred) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function connected(client) {
  await client.connect();
  cleanups.push(() => client.disconnect());
  return client;
}

async function createTopic(admin, topic, numPartitions) {
  const created = await admin.createTopics({ topics: [{ topic, numPartitions, replicationFactor: 1 }], waitForLeaders: true });
  assert.equal(created, true, `createTopics(${topic}) returned ${created}`);
  cleanups.push(() => deleted.has(topic) || admin.deleteTopics({ topics: [topic] }).catch(() => {}));
}
const deleted = new Set();

/**
 * Runs a consumer of group on topic from the beginning and resolves with the
 * first n messages (as {key, value, headers, partition, offset}); the
 * consumer is left running, returned as consumer.
 */
async function consume(group, topic, n, config = {}) {
  const consumer = await connected(kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 500, ...config.consumer }));
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const got = [];
  await consumer.run({
    autoCommit: config.autoCommit ?? true,
    eachMessage: async ({ partition, message }) => {
      const headers = {};
      for (const [k, v] of Object.entries(message.headers || {})) headers[k] = v.toString();
      got.push({ key: message.key && message.key.toString(), value: message.value.toString(), headers, partition, offset: message.offset });
    },
  });
  await until(`${n} messages from ${topic} (have ${got.length})`, () => got.length >= n);
  return { consumer, got };
}

const scenarios = {
  async admin_create_list_delete() {
    const admin = await connected(kafka.admin());
    const topic = name('admin');
    await createTopic(admin, topic, 3);
    assert.ok((await admin.listTopics()).includes(topic), `listTopics lacks ${topic}`);
    const md = await admin.fetchTopicMetadata({ topics: [topic] });
    assert.equal(md.topics[0].partitions.length, 3, 'partitions in metadata');
    await assert.rejects(admin.createTopics({ topics: [{ topic, numPartitions: 3 }], validateOnly: false })
      .then((ok) => { if (!ok) throw Object.assign(new Error('exists'), { type: 'TOPIC_ALREADY_EXISTS' }); }),
    (e) => JSON.stringify(e).includes('TOPIC_ALREADY_EXISTS') || e.type === 'TOPIC_ALREADY_EXISTS',
    'creating an existing topic');
    await admin.deleteTopics({ topics: [topic] });
    deleted.add(topic);
    await until(`${topic} gone from listTopics`, async () => !(await admin.listTopics()).includes(topic));
  },

  async produce_consume_from_beginning() {
    const admin = await connected(kafka.admin());
    const topic = name('pc');
    await createTopic(admin, topic, 1);
    const producer = await connected(kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner }));
    const res = await producer.send({
      topic, acks: -1,
      messages: [
        { key: 'customer-1', value: 'new-order', headers: { event: 'orders', n: '1' } },
        { key: 'customer-1', value: 'payment-successful', headers: { event: 'payments' } },
        { key: null, value: 'no key' },
      ],
    });
    assert.equal(res[0].errorCode, 0, `produce error ${res[0].errorCode}`);
    assert.equal(res[0].baseOffset, '0', 'base offset of the first produce');
    const { got } = await consume(name('pc-group'), topic, 3);
    assert.deepEqual(got.map(({ key, value, headers, offset }) => ({ key, value, headers, offset })), [
      { key: 'customer-1', value: 'new-order', headers: { event: 'orders', n: '1' }, offset: '0' },
      { key: 'customer-1', value: 'payment-successful', headers: { event: 'payments' }, offset: '1' },
      { key: null, value: 'no key', headers: {}, offset: '2' },
    ]);
  },

  async group_commit_and_resume() {
    const admin = await connected(kafka.admin());
    const topic = name('resume');
    const group = name('resume-group');
    await createTopic(admin, topic, 1);
    const producer = await connected(kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner }));
    await producer.send({ topic, acks: -1, messages: [...Array(8).keys()].map((i) => ({ value: `m${i}` })) });
    const first = await consume(group, topic, 5, { autoCommit: false });
    assert.deepEqual(first.got.slice(0, 5).map((m) => m.value), ['m0', 'm1', 'm2', 'm3', 'm4']);
    await first.consumer.commitOffsets([{ topic, partition: 0, offset: '5' }]);
    await first.consumer.disconnect();
    const fetched = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    assert.equal(fetched[0].partitions[0].offset, '5', `committed offset read back: ${JSON.stringify(fetched)}`);
    const second = await consume(group, topic, 3);
    assert.deepEqual(second.got.map((m) => `${m.offset}:${m.value}`), ['5:m5', '6:m6', '7:m7'], 'resumed after the committed offset');
  },

  async keyed_partitions() {
    const admin = await connected(kafka.admin());
    const topic = name('keyed');
    await createTopic(admin, topic, 6);
    const producer = await connected(kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner }));
    const messages = [];
    for (let i = 0; i < 10; i++) for (let k = 0; k < 12; k++) messages.push({ key: `customer-${k}`, value: String(i) });
    await producer.send({ topic, acks: -1, messages });
    const { got } = await consume(name('keyed-group'), topic, messages.length);
    const part = new Map();
    const next = new Map();
    for (const m of got) {
      if (part.has(m.key)) assert.equal(m.partition, part.get(m.key), `key ${m.key} in two partitions`);
      part.set(m.key, m.partition);
      assert.equal(m.value, String(next.get(m.key) || 0), `order of key ${m.key}`);
      next.set(m.key, (next.get(m.key) || 0) + 1);
    }
    assert.ok(new Set(part.values()).size > 1, 'all keys in one partition');
  },
};

function withLimit(p, ms, what) {
  let timer;
  return Promise.race([p, new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`${what}: not done within ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(timer));
}

async function main() {
  const start = Date.now();
  let passed = 0;
  let failed = 0;
  for (const [n, fn] of Object.entries(scenarios)) {
    if (Date.now() - start > TOTAL_BUDGET_MS) {
      failed++;
      console.log(`FAIL ${n}: not run: total time budget of ${TOTAL_BUDGET_MS} ms spent`);
      continue;
    }
    try {
      await withLimit(fn(), SCENARIO_LIMIT_MS, n);
      passed++;
      console.log(`ok ${n}`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${n}: ${e.message.split('\n')[0]}`);
      if (DEBUG) console.error(e);
    }
    while (cleanups.length) {
      await withLimit(Promise.resolve().then(cleanups.pop()), 10000, 'cleanup').catch(() => {});
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
