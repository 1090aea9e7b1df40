#!/usr/bin/env node
// Produces 5 records and reads them back with kafkajs over TLS and/or SASL, then tries a wrong
// password; prints {"values": [...], "wrongPassword": "<error>"} as one JSON line.
//
//   node kafkajs_secure.js <bootstrap> <topic> <ca file or ""> <mechanism or ""> <user> <password>
//
// For OAUTHBEARER the password is the token (and the wrong one is no JWT).
'use strict';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, ca, mechanism, username, password] = process.argv.slice(2);

function client(pass) {
  const config = { clientId: 'compat-secure', brokers: [bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 0 } };
  if (ca) config.ssl = { ca: [fs.readFileSync(ca, 'utf-8')] };
  if (mechanism && mechanism.toLowerCase() === 'oauthbearer') {
    config.sasl = { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: pass }) };
  } else if (mechanism) {
    config.sasl = { mechanism, username, password: pass };
  }
  return new Kafka(config);
}

async function main() {
  const kafka = client(password);
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages: [0, 1, 2, 3, 4].map((i) => ({ value: `v${i}` })) });
  await producer.disconnect();
  const values = [];
  const consumer = kafka.consumer({ groupId: `secure-${process.pid}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`read ${values.length} of 5 in 30 s`)), 30000);
    consumer.run({
      eachMessage: async ({ message }) => {
        values.push(message.value.toString());
        if (values.length === 5) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  let wrongPassword = '';
  if (mechanism) {
    const admin = client('wrong-password').admin();
    try {
      await admin.connect();
      await admin.listTopics();
      wrongPassword = 'connected';
    } catch (e) {
      wrongPassword = String(e && e.message);
    }
    await admin.disconnect().catch(() => {});
  }
  console.log(JSON.stringify({ values, wrongPassword }));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
