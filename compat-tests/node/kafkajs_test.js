#!/usr/bin/env node
// kafkajs driver for the DuctStream compatibility suite.
//
//   node kafkajs_test.js <bootstrap host:port> <topic> [baseTimestampMs]
//
// Runs admin + producer steps against the broker and prints ONE JSON object on
// stdout: {"steps": {name: {"ok": bool, "value"?: ..., "error"?: {...}}},
// "produced": [...]}. Every step is attempted even if an earlier one failed, so
// a single run reports as many incompatibilities as possible.
// compat-tests/test_kafkajs.py asserts on the output and reads the produced
// messages back with another client (kafkajs has no group-less consumer).
'use strict';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

const { Kafka, logLevel, CompressionTypes, ConfigResourceTypes } = require('kafkajs');

const [bootstrap, topic, baseTsArg] = process.argv.slice(2);
if (!bootstrap || !topic) {
  console.error('usage: kafkajs_test.js <bootstrap> <topic> [baseTimestampMs]');
  process.exit(2);
}
const baseTs = Number(baseTsArg || Date.now() - 3600 * 1000);
const delTopic = `${topic}-del`;

const steps = {};
async function step(name, fn) {
  try {
    const value = await fn();
    steps[name] = { ok: true, value: value === undefined ? null : value };
  } catch (e) {
    steps[name] = {
      ok: false,
      error: {
        name: e && e.name,
        type: e && e.type,
        code: e && e.code,
        message: e && e.message,
        retriable: e && e.retriable,
        cause: e && e.cause ? String(e.cause.message || e.cause) : undefined,
        // KafkaJSDeleteTopicRecordsError and friends carry per-partition errors
        partitions: e && Array.isArray(e.partitions)
          ? e.partitions.map((p) => ({
            partition: p.partition,
            offset: p.offset,
            error: p.error && { name: p.error.name, type: p.error.type, message: p.error.message },
          }))
          : undefined,
      },
    };
  }
}

// The messages this script produces; the pytest side reads them back.
const p0Messages = [];
for (let i = 0; i < 5; i++) {
  p0Messages.push({
    key: i === 2 ? null : `js-key-${i}`,
    value: `js-gzip-value-${i}`,
    headers: { idx: String(i), multi: ['a', 'b'] },
    timestamp: String(baseTs + i),
    partition: 0,
  });
}
const p1Messages = [];
for (let i = 0; i < 3; i++) {
  p1Messages.push({
    key: `idem-key-${i}`,
    value: Buffer.from([0, 1, 2, 255, i]),
    headers: { producer: 'idempotent' },
    timestamp: String(baseTs + 100 + i),
    partition: 1,
  });
}

async function main() {
  const kafka = new Kafka({
    clientId: 'ductstream-compat-kafkajs',
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
  });
  const admin = kafka.admin();
  await step('admin_connect', () => admin.connect());

  await step('create_topics', () =>
    admin.createTopics({
      waitForLeaders: true,
      timeout: 10000,
      topics: [{
        topic,
        numPartitions: 2,
        replicationFactor: 1,
        configEntries: [{ name: 'retention.ms', value: '3600000' }],
      }],
    }));
  // createTopics resolves false when the topic already exists
  await step('create_topics_again', () =>
    admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }] }));
  await step('list_topics', () => admin.listTopics());
  await step('fetch_topic_metadata', () => admin.fetchTopicMetadata({ topics: [topic] }));
  await step('describe_cluster', () => admin.describeCluster());
  await step('describe_configs', async () => {
    const r = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
    });
    const res = r.resources[0];
    const configs = {};
    for (const e of res.configEntries) configs[e.configName] = e.configValue;
    return { errorCode: res.errorCode, resourceName: res.resourceName, configs };
  });

  // ---- plain producer, acks=all, gzip, explicit partition 0
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await step('producer_connect', () => producer.connect());
  await step('send_gzip', () =>
    producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages: p0Messages }));
  await step('producer_disconnect', () => producer.disconnect());

  // ---- idempotent producer (InitProducerId), partition 1
  const idem = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await step('idempotent_connect', () => idem.connect());
  await step('send_idempotent', () => idem.send({ topic, acks: -1, messages: p1Messages }));
  await step('idempotent_disconnect', () => idem.disconnect());

  await step('fetch_topic_offsets', () => admin.fetchTopicOffsets(topic));
  await step('fetch_topic_offsets_by_timestamp', () =>
    admin.fetchTopicOffsetsByTimestamp(topic, baseTs + 3));

  // ---- partitions, delete records, delete topic on a second topic
  await step('create_partitions', () =>
    admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] }));
  await step('fetch_topic_metadata_after_create_partitions', () =>
    admin.fetchTopicMetadata({ topics: [topic] }));

  await step('create_del_topic', () =>
    admin.createTopics({ waitForLeaders: true, topics: [{ topic: delTopic, numPartitions: 1 }] }));
  const p2 = kafka.producer({ allowAutoTopicCreation: false });
  await step('del_topic_produce', async () => {
    await p2.connect();
    try {
      return await p2.send({
        topic: delTopic, acks: 1,
        messages: [0, 1, 2, 3].map((i) => ({ value: `d${i}`, partition: 0 })),
      });
    } finally {
      await p2.disconnect();
    }
  });
  // kafkajs looks the partition leader up in its metadata cache before it
  // fetches anything, so the admin must have loaded this topic's metadata.
  await step('del_topic_metadata', () => admin.fetchTopicMetadata({ topics: [delTopic] }));
  await step('delete_topic_records', () =>
    admin.deleteTopicRecords({ topic: delTopic, partitions: [{ partition: 0, offset: '2' }] }));
  await step('fetch_offsets_after_delete_records', () => admin.fetchTopicOffsets(delTopic));
  await step('delete_topics', () => admin.deleteTopics({ topics: [delTopic], timeout: 10000 }));
  await step('list_topics_after_delete', () => admin.listTopics());

  await step('admin_disconnect', () => admin.disconnect());
}

main()
  .catch((e) => {
    steps.fatal = { ok: false, error: { name: e && e.name, message: e && e.message } };
  })
  .finally(() => {
    const produced = [...p0Messages, ...p1Messages].map((m) => ({
      partition: m.partition,
      key: m.key,
      value_b64: Buffer.from(m.value).toString('base64'),
      headers: m.headers,
      timestamp: Number(m.timestamp),
    }));
    process.stdout.write(JSON.stringify({ steps, produced, baseTs }) + '\n');
    process.exit(0);
  });
