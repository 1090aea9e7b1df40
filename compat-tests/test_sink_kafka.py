"""The Kafka sink: records copied to another Kafka-compatible cluster (a second DuctStream
broker, and the reference Apache Kafka), read back with a Kafka client."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer

import helpers
from sink_support import create_sink, create_topic, produce, wait_caught_up


def read_all(bootstrap: str, topic: str, n: int, timeout: float = 60.0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{topic}", "auto.offset.reset": "earliest",
                  "isolation.level": "read_committed"})
    c.subscribe([topic])
    got = []
    try:
        helpers.wait_until(lambda: got.extend(m for m in c.consume(500, 0.5) if not m.error()) or len(got) >= n,
                           timeout=timeout, what=f"{n} records on {topic}")
        got.extend(m for m in c.consume(500, 1.0) if not m.error())  # nothing more should come
    finally:
        c.close()
    return got


def copy_and_check(source, target_bootstrap: str, tmp_path, topic: str, sink_id: str):
    create_topic(source.bootstrap, topic, 2)
    records = [(f"k{i % 7}".encode(), f"v{i}".encode(), None) for i in range(3000)]
    produce(source.bootstrap, topic, records)
    create_sink(source, tmp_path, {
        "id": sink_id, "topics": [topic],
        "destination": {"name": "mirror", "type": "kafka", "options": {
            "brokers": target_bootstrap, "topic": "mirror.{topic}", "compression": "zstd"}},
    })
    wait_caught_up(source, sink_id, timeout=120)
    got = read_all(target_bootstrap, f"mirror.{topic}", len(records))
    assert sorted(m.value() for m in got) == sorted(v for _, v, _ in records), "every record once"
    # Order per key is kept: each key's values come in produce order.
    per_key = {}
    for m in got:
        per_key.setdefault(m.key(), []).append(int(m.value()[1:]))
    for key, values in per_key.items():
        assert values == sorted(values), key


def test_copies_to_another_ductstream(broker_factory, tmp_path, topic):
    source, target = broker_factory(), broker_factory()
    copy_and_check(source, target.bootstrap, tmp_path, topic, "mirror")


def test_copies_to_apache_kafka(broker, reference_kafka, tmp_path, topic):
    copy_and_check(broker, reference_kafka.bootstrap, tmp_path, topic, "to-kafka")


def test_transactional_copy_is_exactly_once_across_a_broker_kill(broker, reference_kafka, tmp_path, topic):
    """Each batch is one Kafka transaction carrying the sink's offsets; after a kill -9 the sink
    goes on from the offsets in the target, so read_committed readers see every record once."""
    import signal

    create_topic(broker.bootstrap, topic, 1)
    n = 20000
    produce(broker.bootstrap, topic, [(f"k{i % 5}".encode(), f"v{i}".encode(), None) for i in range(n)])
    create_sink(broker, tmp_path, {
        "id": "txn", "topics": [topic],
        "destination": {"name": "mirror", "type": "kafka", "options": {
            "brokers": reference_kafka.bootstrap, "topic": "txn.{topic}", "transactional": "true",
            "batch_records": "500"}},
    })
    from confluent_kafka import Consumer, TopicPartition

    probe = Consumer({"bootstrap.servers": reference_kafka.bootstrap, "group.id": "probe", "isolation.level": "read_committed"})
    helpers.wait_until(lambda: probe.get_watermark_offsets(TopicPartition(f"txn.{topic}", 0), 5)[1] > 2000
                       if f"txn.{topic}" in probe.list_topics(timeout=5).topics else False,
                       timeout=60, what="part of the copy")
    probe.close()
    broker.proc.send_signal(signal.SIGKILL)
    broker.proc.wait(10)
    broker.expected_exit = True
    broker.restart()
    broker.expected_exit = False
    wait_caught_up(broker, "txn", timeout=120)
    got = read_all(reference_kafka.bootstrap, f"txn.{topic}", n)
    values = [m.value() for m in got]
    repeated = sorted({int(v[1:]) for v in values if values.count(v) > 1}) if len(values) != len(set(values)) else []
    assert len(values) == len(set(values)) == n, f"{len(values)} read, {len(set(values))} distinct, of {n}; repeated {repeated[:1]}..{repeated[-1:]}"
