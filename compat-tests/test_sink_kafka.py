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
