#!/usr/bin/env node
// kafkajs consumer-group driver for the DuctStream compatibility suite.
//
//   node kafkajs_group.js <bootstrap host:port> <topic> <group>
//
// Creates <topic> with 4 partitions, starts two kafkajs consumers in <group>,
// waits until they share the partitions, produces 10 records per partition,
// waits until everything is consumed and committed (kafkajs auto-commit),
// uses admin describeGroups / listGroups / fetchOffsets, stops the consumers,
// then a third consumer in the group must resume at the committed offsets.
// Prints ONE JSON object: {"steps": {name: {ok, value?, error?}}, "consumed":
// [...], "joins": [...]}; test_groups_kafkajs.py asserts on it.
'use strict';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

const { Kafka, logLevel, AssignerProtocol } = require('kafkajs');

const [bootstrap, topic, groupId] = process.argv.slice(2);
if (!bootstrap || !topic || !groupId) {
  console.error('usage: kafkajs_group.js <bootstrap> <topic> <group>');
  process.exit(2);
}
const PARTITIONS = 4;
const PER_PARTITION = 10;

const steps = {};
async function step(name, fn) {
  try {
    const value = await fn();
    steps[name] = { ok: true, value: value === undefined ? null : value };
    return value;
  } catch (e) {
    steps[name] = {
      ok: false,
      error: { name: e && e.name, type: e && e.type, message: e && e.message,
        cause: e && e.cause ? String(e.cause.message || e.cause) : undefined,
        // KafkaJSDeleteGroupsError carries the per-group results
        groups: e && Array.isArray(e.groups) ? e.groups.map((g) => ({ groupId: g.groupId,
          errorCode: g.errorCode, type: g.error && g.error.type })) : undefined },
    };
    return undefined;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(pred, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

const kafka = new Kafka({
  clientId: 'ductstream-compat-kafkajs-group',
  brokers: [bootstrap],
  logLevel: logLevel.NOTHING,
  retry: { retries: 8, initialRetryTime: 100 },
});

const consumed = [];
const joins = [];
// latest assignment per consumer name: { name: { memberId, generation?, partitions } }
const latest = {};

function makeConsumer(name) {
  const c = kafka.consumer({
    groupId,
    sessionTimeout: 6000,
    heartbeatInterval: 500,
    rebalanceTimeout: 10000,
    maxWaitTimeInMs: 200,
  });
  c.on(c.events.GROUP_JOIN, (e) => {
    const parts = (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b);
    joins.push({ name, memberId: e.payload.memberId, leaderId: e.payload.leaderId,
      isLeader: e.payload.isLeader, protocol: e.payload.groupProtocol, partitions: parts });
    latest[name] = { memberId: e.payload.memberId, partitions: parts };
  });
  return c;
}

async function startConsumer(name) {
  const c = makeConsumer(name);
  await c.connect();
  await c.subscribe({ topics: [topic], fromBeginning: true });
  await c.run({
    eachMessage: async ({ partition, message }) => {
      consumed.push({ consumer: name, partition, offset: Number(message.offset),
        value: message.value === null ? null : message.value.toString() });
    },
  });
  return c;
}

function disjointCover(names) {
  const seen = [];
  for (const n of names) {
    if (!latest[n]) return false;
    seen.push(...latest[n].partitions);
  }
  const set = new Set(seen);
  return seen.length === PARTITIONS && set.size === PARTITIONS;
}

async function main() {
  const admin = kafka.admin();
  const producer = kafka.producer();
  await step('admin_connect', () => admin.connect());
  await step('create_topic', () => admin.createTopics({
    waitForLeaders: true, topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
  }));
  await step('producer_connect', () => producer.connect());

  const consumers = {};
  await step('start_consumers', async () => {
    consumers.c0 = await startConsumer('c0');
    consumers.c1 = await startConsumer('c1');
  });
  await step('shared_assignment', async () => {
    await until(() => disjointCover(['c0', 'c1']) && latest.c0.partitions.length
      && latest.c1.partitions.length, 45000, 'c0 and c1 sharing the partitions');
    return { c0: latest.c0, c1: latest.c1 };
  });

  const messages = [];
  for (let p = 0; p < PARTITIONS; p++) {
    for (let i = 0; i < PER_PARTITION; i++) {
      messages.push({ partition: p, value: `${topic}|${p}|${i}` });
    }
  }
  await step('produce', async () => {
    const res = await producer.send({ topic, acks: -1, messages });
    return res.map((r) => ({ partition: r.partition, baseOffset: r.baseOffset, errorCode: r.errorCode }));
  });
  await step('consume_all', () => until(
    () => new Set(consumed.map((m) => `${m.partition}:${m.offset}`)).size >= PARTITIONS * PER_PARTITION,
    30000, 'all records consumed'));

  const committedAll = async () => {
    const res = await admin.fetchOffsets({ groupId, topics: [topic] });
    const parts = res.find((t) => t.topic === topic).partitions;
    return parts.length === PARTITIONS && parts.every((p) => p.offset === String(PER_PARTITION));
  };
  await step('committed', () => until(committedAll, 20000, 'auto-commits at offset 10'));

  await step('describe_groups', async () => {
    const res = await admin.describeGroups([groupId]);
    return res.groups.map((g) => ({
      groupId: g.groupId, state: g.state, protocolType: g.protocolType, protocol: g.protocol,
      errorCode: g.errorCode,
      members: g.members.map((m) => {
        const a = AssignerProtocol.MemberAssignment.decode(m.memberAssignment);
        return { memberId: m.memberId, clientId: m.clientId,
          partitions: ((a && a.assignment[topic]) || []).slice().sort((x, y) => x - y) };
      }),
    }));
  });
  await step('list_groups', async () => (await admin.listGroups()).groups);
  await step('fetch_offsets', async () => {
    const res = await admin.fetchOffsets({ groupId, topics: [topic] });
    return res.map((t) => ({ topic: t.topic,
      partitions: t.partitions.map((p) => ({ partition: p.partition, offset: p.offset, metadata: p.metadata }))
        .sort((a, b) => a.partition - b.partition) }));
  });
  await step('delete_active_group', () => admin.deleteGroups([groupId]));

  await step('stop_consumers', async () => {
    await consumers.c0.disconnect();
    await consumers.c1.disconnect();
  });
  await step('describe_after_stop', async () => {
    const res = await admin.describeGroups([groupId]);
    return res.groups.map((g) => ({ state: g.state, members: g.members.length }));
  });

  // a new member resumes at the committed offsets: only the new records arrive
  const before = consumed.length;
  await step('produce_more', () => producer.send({ topic, acks: -1,
    messages: [0, 1, 2, 3].map((p) => ({ partition: p, value: `${topic}|${p}|more` })) }));
  await step('resume', async () => {
    consumers.c2 = await startConsumer('c2');
    await until(() => consumed.length - before >= PARTITIONS, 45000, 'the 4 new records');
    await sleep(500); // would show records re-read from before the commits
    await until(committedAllAt(PER_PARTITION + 1), 20000, 'commits at offset 11');
    await consumers.c2.disconnect();
    return consumed.slice(before);
  });
  await step('delete_group', () => admin.deleteGroups([groupId]));
  await step('list_groups_after_delete', async () => (await admin.listGroups()).groups);

  function committedAllAt(n) {
    return async () => {
      const res = await admin.fetchOffsets({ groupId, topics: [topic] });
      const parts = res.find((t) => t.topic === topic).partitions;
      return parts.every((p) => p.offset === String(n));
    };
  }

  await producer.disconnect().catch(() => {});
  await admin.disconnect().catch(() => {});
}

main()
  .catch((e) => { steps.fatal = { ok: false, error: { message: String(e && e.stack) } }; })
  .finally(() => {
    process.stdout.write(`${JSON.stringify({ steps, consumed, joins })}\n`);
    process.exit(0);
  });
