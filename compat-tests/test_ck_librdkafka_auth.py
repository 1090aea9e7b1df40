"""librdkafka's own authorization and authentication tests, replayed with confluent-kafka
(bundled librdkafka) against the real broker, as librdkafka's suite runs them against a
cluster with an ACL authorizer that allows what no ACL names (`--authorizer acl
--allow-everyone-if-no-acl-found`), ACLs set with Kafka's own kafka-acls tool:

- 0115 producer_auth: a topic denied to everyone after (or before) the producer learned of
  it: queued records fail with TOPIC_AUTHORIZATION_FAILED, then produce() refuses at once.
  For a topic the producer did not know, librdkafka may refuse the first records at once
  too, when the topic's metadata comes back before they are queued.
- 0119 consumer_auth: DESCRIBE allowed, READ denied: a subscribed consumer sees exactly one
  TOPIC_AUTHORIZATION_FAILED per partition and no record.
- 0135 sasl_credentials: a client started with wrong SASL credentials is refused
  (_AUTHENTICATION), then logs in once given the right ones (sasl_set_credentials).
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from test_security import add_user, kafka_tool

ACLS = "org.apache.kafka.tools.AclCommand"


@pytest.fixture
def acl_broker(broker_factory):
    return broker_factory("--authorizer", "acl", "--allow-everyone-if-no-acl-found")


def create_topic(bootstrap: str, name: str, partitions: int):
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until its futures are done
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(timeout=30)


def kafka_acls(bootstrap: str, *args: str):
    kafka_tool(ACLS, "--bootstrap-server", bootstrap, *args)


@pytest.mark.parametrize("topic_known", [True, False], ids=["topic known", "topic not known"])
def test_0115_producer_auth(acl_broker, topic, topic_known):
    b = acl_broker.bootstrap
    create_topic(b, topic, 3)
    reports: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": b, "message.timeout.ms": 20000})

    def deliver(err, _msg):
        reports.append(err)

    if topic_known:
        producer.produce(topic, b"0", on_delivery=deliver)
        assert producer.flush(30) == 0
        assert reports == [None], "the seeding record is written"
        reports.clear()

    kafka_acls(b, "--add", "--deny-principal", "User:*", "--operation", "All", "--deny-host", "*", "--topic", topic)
    # Queued, then failed in its delivery report; or, when the topic's first metadata answer
    # (this broker answers in a millisecond) beats the record into the queue, refused by
    # produce() itself: librdkafka does either, with the same error.
    refused_at_once = 0
    for value, partition in ((b"1", {}), (b"2", {"partition": 0})):
        try:
            producer.produce(topic, value, on_delivery=deliver, **partition)
        except KafkaException as e:
            assert e.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, e
            refused_at_once += 1
    assert producer.flush(30) == 0
    assert [e and e.code() for e in reports] == [KafkaError.TOPIC_AUTHORIZATION_FAILED] * (2 - refused_at_once), reports
    if topic_known:
        assert refused_at_once == 0, "a known topic's records are queued before its error is learnt"

    # The topic's error is known now: produce() refuses at once, to any or one partition.
    for partition in ({}, {"partition": 0}):
        with pytest.raises(KafkaException) as refused:
            producer.produce(topic, b"3", **partition)
        assert refused.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert producer.flush(10) == 0
    assert len(reports) == 2 - refused_at_once, "nothing more was queued"


def test_0119_consumer_auth(acl_broker, topic):
    b = acl_broker.bootstrap
    partitions = 3
    create_topic(b, topic, partitions)
    producer = Producer({"bootstrap.servers": b})
    for i in range(1000):
        producer.produce(topic, str(i).encode(), partition=i % partitions)
    assert producer.flush(30) == 0

    kafka_acls(b, "--add", "--allow-principal", "User:*", "--operation", "Describe", "--allow-host", "*", "--topic", topic)
    kafka_acls(b, "--add", "--deny-principal", "User:*", "--operation", "Read", "--deny-host", "*", "--topic", topic)

    consumer = Consumer({"bootstrap.servers": b, "group.id": topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    denied, records = [], 0
    for _ in range(30):  # 15 s, as the suite polls
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error() is None:
            records += 1
        elif msg.error().code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            denied.append(msg.partition())
        else:
            pytest.fail(f"unexpected consumer error: {msg.error()}")
    consumer.close()
    assert records == 0
    assert sorted(denied) == list(range(partitions)), f"one error per partition, got {denied}"

    kafka_acls(b, "--remove", "--force", "--allow-principal", "User:*", "--operation", "Describe", "--allow-host", "*", "--topic", topic)
    kafka_acls(b, "--remove", "--force", "--deny-principal", "User:*", "--operation", "Read", "--deny-host", "*", "--topic", topic)
    lines = kafka_tool(ACLS, "--bootstrap-server", b, "--list", "--topic", topic)
    assert not any("principal=" in line for line in lines), lines


@pytest.mark.parametrize("set_after_auth_failure", [True, False], ids=["after a failure", "before connecting"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_0135_sasl_credentials(broker_factory, mechanism, set_after_auth_failure):
    b = broker_factory("--listeners", "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
                       "--sasl-enabled-mechanisms", "PLAIN,SCRAM-SHA-256")
    add_user(b.listeners["PLAINTEXT"], "alice", "alice-secret")
    auth_errors: list[KafkaError] = []
    producer = Producer({
        "bootstrap.servers": b.listeners["SASL_PLAINTEXT"], "security.protocol": "sasl_plaintext",
        "sasl.mechanism": mechanism, "sasl.username": "ThisIsNotRight", "sasl.password": "Neither Is This",
        "error_cb": lambda err: auth_errors.append(err) if err.code() == KafkaError._AUTHENTICATION else None,
    })
    if set_after_auth_failure:
        deadline = time.monotonic() + 30
        while not auth_errors:
            assert time.monotonic() < deadline, "the wrong credentials were not refused"
            producer.poll(1)
    producer.set_sasl_credentials("alice", "alice-secret")
    assert producer.list_topics(timeout=10).cluster_id, "logged in with the right credentials"
