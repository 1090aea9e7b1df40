#!/usr/bin/env node
// Reads partition 0 of a topic from its first offset to its end with kafkajs and prints the
// records as one JSON array of {offset, key, value} (strings, or null).
//
//   node kafkajs_read.js <bootstrap host:port> <topic>
//
// test_compaction.py reads compacted topics with it: kafkajs has no group-less consumer, so
// it joins a group of its own.
'use strict';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic] = process.argv.slice(2);
if (!bootstrap || !topic) {
  console.error('usage: kafkajs_read.js <bootstrap> <topic>');
  process.exit(2);
}

async function main() {
  const kafka = new Kafka({ clientId: 'compat-reader', brokers: [bootstrap], logLevel: logLevel.ERROR });
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const end = Number(offsets.find((o) => o.partition === 0).high);
  const records = [];
  if (end === 0) {
    console.log(JSON.stringify(records));
    return;
  }
  const consumer = kafka.consumer({ groupId: `reader-${process.pid}-${Date.now()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no end of partition within 30 s; read ${records.length}`)), 30000);
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        if (partition !== 0) return;
        const str = (b) => (b === null || b === undefined ? null : b.toString());
        records.push({ offset: Number(message.offset), key: str(message.key), value: str(message.value) });
        if (Number(message.offset) >= end - 1) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  try {
    await done;
  } finally {
    await consumer.disconnect();
  }
  console.log(JSON.stringify(records));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
