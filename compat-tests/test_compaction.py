"""Compacted topics (cleanup.policy=compact) on the embedded store and on Postgres: many
updates per key from producers of every compression codec, tombstones, transactions; the
log cleaner leaves the latest record of each key at its original offset, and every client
reads the result from offset 0 (librdkafka, kafka-python, kcat, kafkajs, sarama 1.22). A reader going over the
log again and again while the cleaner works never misses a key's latest value."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import helpers

CLEANER = ("--log-cleaner-backoff-ms", "100")
# Segments roll after 100 ms (embedded store): what the test produces after a pause starts a
# new active segment, so everything before it is compactable.
COMPACTED = {"cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01"}
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.fixture(params=["embedded", "postgres"])
def cleaning_broker(request, broker_factory):
    return broker_factory(*CLEANER, storage=request.param)


def create(bootstrap: str, topic: str, **configs: str):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config={**COMPACTED, **configs})], operation_timeout=15)[topic].result(timeout=30)


def read_from_start(bootstrap: str, topic: str, isolation: str = "read_uncommitted") -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record from offset 0 to the end, with librdkafka."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.partition.eof": True,
                  "enable.auto.commit": False, "isolation.level": isolation})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    return got
                raise KafkaException(m.error())
            got.append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    raise AssertionError(f"no end of partition within 30 s; read {len(got)}")


def read_kafka_python(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    tp = KTP(topic, 0)
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100)
    try:
        c.assign([tp])
        c.seek_to_beginning(tp)
        end = c.end_offsets([tp])[tp]
        got = []
        deadline = time.time() + 30
        while c.position(tp) < end and time.time() < deadline:
            for records in c.poll(timeout_ms=250).values():
                got.extend((r.offset, r.key, r.value) for r in records)
        assert c.position(tp) >= end, f"kafka-python stopped at {c.position(tp)} of {end}"
        return got
    finally:
        c.close()


def read_kcat(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
    proc = helpers.run([helpers.kcat_bin(), "-C", "-b", bootstrap, "-t", topic, "-p", "0", "-o", "beginning", "-e", "-J", "-q"], timeout=60)
    rows = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]
    enc = lambda v: None if v is None else v.encode()  # noqa: E731
    return [(r["offset"], enc(r["key"]), enc(r["payload"])) for r in rows]


def read_kafkajs(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
    node = shutil.which("node")
    assert node, "node not installed (run compat-tests/setup.sh)"
    proc = helpers.run([node, str(helpers.HERE / "node" / "kafkajs_read.js"), bootstrap, topic], timeout=90)
    return [(r["offset"], _enc(r["key"]), _enc(r["value"])) for r in json.loads(proc.stdout.decode().splitlines()[-1])]


SARAMA_BIN = Path(os.environ.get("DUCTSTREAM_SARAMA_BIN", str(helpers.COMPAT_BIN / "sarama-compat")))


def read_sarama(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
    proc = helpers.run([str(SARAMA_BIN), bootstrap, topic, "read"], timeout=90)
    return [(r["offset"], _enc(r["key"]), _enc(r["value"])) for r in json.loads(proc.stdout.decode().splitlines()[-1])]


def _enc(v: str | None) -> bytes | None:
    return None if v is None else v.encode()


READERS = [("confluent-kafka", read_from_start), ("kafka-python", read_kafka_python), ("kcat", read_kcat),
           ("kafkajs", read_kafkajs), ("sarama", read_sarama)]


def latest(records) -> dict[bytes, bytes | None]:
    out = {}
    for _, key, value in records:
        out[key] = value
    return out


def write_then_roll(p: Producer, topic: str, sentinel: bytes, *pairs):
    """Writes `pairs` one by one, then, after the segment rolled (segment.ms), `sentinel`
    with value b"end": everything before it becomes compactable."""
    for key, value in pairs:
        p.produce(topic, key=key, value=value)
        p.flush(30)
    time.sleep(0.3)
    p.produce(topic, key=sentinel, value=b"end")
    p.flush(30)


def is_compacted(records) -> bool:
    keys = [key for _, key, _ in records]
    return len(keys) == len(set(keys))


class Written:
    """Every acknowledged record by offset, to know each key's latest value below an offset."""

    def __init__(self):
        self.by_offset: dict[int, tuple[bytes, bytes | None]] = {}
        self.lock = threading.Lock()

    def report(self, err, msg):
        assert err is None, err
        with self.lock:
            self.by_offset[msg.offset()] = (msg.key(), msg.value())

    def end(self) -> int:
        """One past the last acknowledged offset: every offset below it is acknowledged, as
        each producer flushes before the next one writes."""
        with self.lock:
            return max(self.by_offset, default=-1) + 1

    def latest_below(self, end: int) -> dict[bytes, bytes | None]:
        return {k: v for k, (_, v) in self.latest_offsets_below(end).items()}

    def latest_offsets_below(self, end: int) -> dict[bytes, tuple[int, bytes | None]]:
        with self.lock:
            items = sorted((o, kv) for o, kv in self.by_offset.items() if o < end)
        return {k: (o, v) for o, (k, v) in items}


def high_watermark(bootstrap: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


def produce_updates(bootstrap: str, topic: str, written: Written, rounds: int, keys: int):
    """Rounds of updates to a varying subset of keys, each round from a producer of another
    codec; keys 0-4 get a tombstone two thirds in and no update after it."""
    producers = [Producer({"bootstrap.servers": bootstrap, "compression.type": c, "linger.ms": 20}) for c in CODECS]
    for r in range(rounds):
        p = producers[r % len(producers)]
        for k in range(keys):
            if k < 5 and r > rounds * 2 // 3:
                continue
            key = f"key-{k}".encode()
            if k < 5 and r == rounds * 2 // 3:
                p.produce(topic, key=key, value=None, on_delivery=written.report)
            elif (k * 7 + r) % 5 < 3:
                p.produce(topic, key=key, value=f"{k}@{r}".encode(), on_delivery=written.report)
        p.flush(30)
    # The last batch, alone in the active segment once the one before rolled.
    time.sleep(0.3)
    p = producers[0]
    p.produce(topic, key=b"sentinel", value=b"end", on_delivery=written.report)
    p.flush(30)


def test_the_cleaner_keeps_each_keys_latest_record_for_every_reader(cleaning_broker, topic):
    b = cleaning_broker.bootstrap
    create(b, topic)
    written = Written()
    stop = threading.Event()
    failures: list[str] = []
    reads = [0]

    def reread():
        # A reader from offset 0 while the cleaner rewrites the log under it: each pass holds,
        # for every key written before it started, that key's latest record then or a later
        # one (the cleaner may have dropped the former for the latter, never for nothing).
        while not stop.is_set():
            expected = written.latest_offsets_below(written.end())
            last_seen = {key: offset for offset, key, _ in read_from_start(b, topic)}
            missing = {k: o for k, (o, _) in expected.items() if last_seen.get(k, -1) < o}
            if missing:
                failures.append(f"a read from 0 lacks the latest record of {missing}")
            reads[0] += 1

    reader = threading.Thread(target=reread)
    reader.start()
    try:
        produce_updates(b, topic, written, rounds=45, keys=25)
        helpers.wait_until(lambda: is_compacted(read_from_start(b, topic)), timeout=60, what="the log compacted")
    finally:
        stop.set()
        reader.join(60)
    assert not failures, failures[:3]
    assert reads[0] > 0

    end = high_watermark(b, topic)
    expected = written.latest_below(end)
    assert len(written.by_offset) > 500
    # kafkajs reads snappy, lz4 and zstd only with codec plugins: it reads the uncompressed
    # topics of the other tests.
    for name, read in [r for r in READERS if r[0] != "kafkajs"]:
        got = read(b, topic)
        offsets = [o for o, _, _ in got]
        assert offsets == sorted(set(offsets)), f"{name}: offsets out of order"
        assert is_compacted(got), f"{name}: a key appears twice"
        assert latest(got) == expected, name
        # Offsets never move: each record is where it was written.
        assert all(written.by_offset[o] == (k, v) for o, k, v in got), name
        assert offsets[-1] == end - 1, name
    assert len(expected) == 26 and all(expected[f"key-{k}".encode()] is None for k in range(5))


def test_aborted_records_go_and_committed_ones_stay(broker_factory, topic):
    broker = broker_factory(*CLEANER)
    b = broker.bootstrap
    create(b, topic)
    txn = Producer({"bootstrap.servers": b, "transactional.id": f"tx-{topic}"})
    txn.init_transactions(30)
    txn.begin_transaction()
    txn.produce(topic, key=b"t", value=b"committed")
    txn.commit_transaction(30)
    txn.begin_transaction()
    txn.produce(topic, key=b"t", value=b"aborted")
    txn.produce(topic, key=b"u", value=b"aborted")
    txn.abort_transaction(30)
    write_then_roll(Producer({"bootstrap.servers": b}), topic, b"sentinel", *[(b"p", f"{i}".encode()) for i in range(3)])

    def cleaned():
        records = read_from_start(b, topic)
        return [(k, v) for _, k, v in records if k is not None] if is_compacted(records) else None

    helpers.wait_until(lambda: cleaned() is not None, timeout=60, what="the log compacted")
    # Read uncommitted: the aborted records are gone from the log itself.
    assert cleaned() == [(b"t", b"committed"), (b"p", b"2"), (b"sentinel", b"end")]
    assert [(k, v) for _, k, v in read_from_start(b, topic, "read_committed")] == cleaned()


def test_tombstones_go_after_delete_retention_and_compacted_topics_are_not_deleted_by_time(broker_factory, topic):
    broker = broker_factory(*CLEANER, "--log-retention-check-interval-ms", "100")
    b = broker.bootstrap
    # delete.retention.ms=0: a tombstone goes at the cleaning after the one that passed it.
    # retention.ms=1: would delete everything on a delete topic.
    create(b, topic, **{"delete.retention.ms": "0", "retention.ms": "1"})
    p = Producer({"bootstrap.servers": b})
    write_then_roll(p, topic, b"end-1", (b"a", b"1"), (b"b", b"1"), (b"a", None))
    helpers.wait_until(lambda: b"a" not in latest(read_from_start(b, topic)), timeout=60, what="the tombstone removed")
    first = read_from_start(b, topic)
    assert [(k, v) for _, k, v in first] == [(b"b", b"1"), (b"end-1", b"end")]
    assert first[0][0] == 1, "the log start did not move: retention.ms does not apply to a compact-only topic"

    write_then_roll(p, topic, b"end-2", (b"b", b"2"), (b"c", b"1"))
    helpers.wait_until(lambda: is_compacted(read_from_start(b, topic)), timeout=60, what="the second cleaning")
    # Offsets 0-2 are one empty batch now; 3 to 6 are as written.
    for name, read in READERS:
        assert [(k, v) for _, k, v in read(b, topic)] == [(b"end-1", b"end"), (b"b", b"2"), (b"c", b"1"), (b"end-2", b"end")], name


def test_a_tombstone_goes_at_its_due_time_without_new_writes(cleaning_broker, topic):
    b = cleaning_broker.bootstrap
    create(b, topic, **{"delete.retention.ms": "8000"})
    write_then_roll(Producer({"bootstrap.servers": b}), topic, b"end", (b"a", b"1"), (b"b", b"1"), (b"a", None))
    helpers.wait_until(lambda: is_compacted(read_from_start(b, topic)), timeout=60, what="the first cleaning")
    assert (b"a", None) in [(k, v) for _, k, v in read_from_start(b, topic)], "the tombstone stays for delete.retention.ms"
    # Nothing more is written: the tombstone's due time alone starts the cleaning that drops it.
    helpers.wait_until(lambda: b"a" not in latest(read_from_start(b, topic)), timeout=60, what="the tombstone removed")
    assert [(k, v) for _, k, v in read_from_start(b, topic)] == [(b"b", b"1"), (b"end", b"end")]


def test_max_compaction_lag_cleans_a_log_that_is_not_dirty_enough(cleaning_broker, topic):
    b = cleaning_broker.bootstrap
    # A dirty ratio that a small update never reaches, and a lag after which it is cleaned anyway.
    create(b, topic, **{"min.cleanable.dirty.ratio": "0.9", "max.compaction.lag.ms": "2000"})
    p = Producer({"bootstrap.servers": b})
    write_then_roll(p, topic, b"end-1", *[(f"k{i}".encode(), b"1") for i in range(30)])
    helpers.wait_until(lambda: is_compacted(read_from_start(b, topic)), timeout=60, what="the first cleaning")
    # One key updated: a few percent of the log is dirty, far below the ratio.
    write_then_roll(p, topic, b"end-2", (b"k0", b"2"))
    helpers.wait_until(lambda: is_compacted(read_from_start(b, topic)), timeout=60, what="the overdue cleaning")
    assert latest(read_from_start(b, topic))[b"k0"] == b"2"


def test_compaction_configs_are_validated(broker_factory, topic):
    b = broker_factory().bootstrap
    admin = AdminClient({"bootstrap.servers": b})
    for name, value in [("min.cleanable.dirty.ratio", "1.5"), ("delete.retention.ms", "-1"), ("min.compaction.lag.ms", "x")]:
        f = admin.create_topics([NewTopic(topic, 1, 1, config={"cleanup.policy": "compact", name: value})], operation_timeout=15)[topic]
        with pytest.raises(KafkaException) as e:
            f.result(timeout=30)
        assert e.value.args[0].code() == KafkaError.INVALID_CONFIG, (name, e.value)
    # A record without a key is refused by a compacted topic (KIP-467), and nothing is stored.
    create(b, topic)
    p = Producer({"bootstrap.servers": b})
    errors = []
    p.produce(topic, value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD, errors
    assert high_watermark(b, topic) == 0
