"""confluent-kafka (bundled librdkafka 2.16) against DuctStream: all
compressions, idempotent producer, headers, explicit timestamps, acks, the
AdminClient (topics, configs, partitions, offsets, delete_records, cluster)
and a group-less-by-assignment Consumer."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

import helpers
from helpers import Rec

# ---------------------------------------------------------------------------
# helpers


def produce_all(conf, topic, records, *, partition=0, flush_timeout=30):
    """Produce records [(key, value, headers, timestamp|None)] and return the
    delivery reports as [(err, partition, offset)] in delivery order."""
    reports = []

    def on_delivery(err, msg):
        reports.append((err, msg.partition(), msg.offset(), msg.key()))

    p = Producer(conf)
    for key, value, headers, ts in records:
        kwargs = dict(key=key, value=value, partition=partition, on_delivery=on_delivery)
        if headers is not None:
            kwargs["headers"] = headers
        if ts is not None:
            kwargs["timestamp"] = ts
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(flush_timeout)
    assert remaining == 0, f"{remaining} messages still undelivered after {flush_timeout}s"
    return reports


def assert_deliveries(reports, n, partition=0):
    errors = [r for r in reports if r[0] is not None]
    assert not errors, f"delivery errors: {errors[:5]}"
    assert len(reports) == n, reports
    assert sorted(r[2] for r in reports) == list(range(n)), [r[2] for r in reports]
    assert all(r[1] == partition for r in reports)


def ck_consumer(bootstrap, **extra):
    # The Python binding requires group.id; we never subscribe, only assign(),
    # so no JoinGroup/SyncGroup is sent. Auto-commit is off so no OffsetCommit.
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": f"compat-ck-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
        "socket.timeout.ms": 10000,
        "check.crcs": True,  # verify the CRC of every batch the broker returns
    }
    conf.update(extra)
    return Consumer(conf)


def ck_read(bootstrap, topic, n, *, partition=0, offset=OFFSET_BEGINNING, timeout=20):
    c = ck_consumer(bootstrap)
    try:
        c.assign([TopicPartition(topic, partition, offset)])
        msgs, errors = [], []
        deadline = time.monotonic() + timeout
        while len(msgs) < n and time.monotonic() < deadline:
            m = c.poll(0.25)
            if m is None:
                continue
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    errors.append(m.error())
                continue
            msgs.append(m)
        assert len(msgs) >= n, (
            f"confluent Consumer read {len(msgs)} of {n} records from {topic}[{partition}] "
            f"within {timeout}s; consumer errors: {errors[:10]}"
        )
        recs = []
        for m in msgs:
            ts_type, ts = m.timestamp()
            assert ts_type == TIMESTAMP_CREATE_TIME, (ts_type, ts)
            recs.append(Rec(m.offset(), m.key(), m.value(), helpers.norm_headers(m.headers()), ts))
        return recs
    finally:
        c.close()


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def result_of(futmap, timeout=30):
    return {k: f.result(timeout=timeout) for k, f in futmap.items()}


def sample_records(n, base_ts, prefix="v"):
    recs = []
    for i in range(n):
        key = None if i % 10 == 9 else f"key-{i}".encode()
        value = None if i % 17 == 16 else f"{prefix}-{i}-".encode() + bytes(range(i % 256))
        headers = [("idx", str(i).encode()), ("dup", b"a"), ("dup", b"b"), ("nullh", None)]
        recs.append((key, value, headers, base_ts + i))
    return recs


def expected_recs(records, first_offset=0):
    return [
        Rec(first_offset + i, k, v, helpers.norm_headers(h), ts)
        for i, (k, v, h, ts) in enumerate(records)
    ]


# ---------------------------------------------------------------------------
# producer


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_ck_compression_roundtrip(broker, topic, codec):
    bs = broker.bootstrap
    n = 200
    base_ts = helpers.now_ms() - 3_600_000
    records = sample_records(n, base_ts, prefix=codec)
    reports = produce_all(
        {"bootstrap.servers": bs, "compression.type": codec, "linger.ms": 50,
         "batch.num.messages": 64, "acks": "all"},
        topic, records,
    )
    assert_deliveries(reports, n)
    # Independent decoder: kafka-python.
    got, raw = helpers.kafka_python_read(bs, topic, n)
    helpers.assert_records(got, expected_recs(records))
    assert all(r.timestamp_type == helpers.CREATE_TIME for r in raw)


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_ck_consumer_by_assignment(any_broker, topic, codec):
    """confluent Consumer with assign() only (no subscribe, no commits)."""
    bs = any_broker.bootstrap
    n = 30
    base_ts = helpers.now_ms() - 60_000
    records = sample_records(n, base_ts)
    assert_deliveries(
        produce_all({"bootstrap.servers": bs, "compression.type": codec, "linger.ms": 20},
                    topic, records),
        n,
    )
    helpers.assert_records(ck_read(bs, topic, n), expected_recs(records))
    # from a specific offset
    helpers.assert_records(ck_read(bs, topic, n - 12, offset=12), expected_recs(records)[12:])


def test_ck_idempotent_producer(any_broker, topic):
    bs = any_broker.bootstrap
    n = 500
    base_ts = helpers.now_ms() - 1000
    records = [(f"k{i}".encode(), f"idempotent-{i}".encode(), None, base_ts + i) for i in range(n)]
    reports = produce_all(
        {"bootstrap.servers": bs, "enable.idempotence": True, "acks": "all",
         "max.in.flight.requests.per.connection": 5, "linger.ms": 5,
         "batch.num.messages": 25},
        topic, records,
    )
    assert_deliveries(reports, n)
    # delivery order == produce order for an idempotent producer
    assert [r[3] for r in reports] == [k for k, *_ in records]
    got, _ = helpers.kafka_python_read(bs, topic, n)
    helpers.assert_records(got, [Rec(i, k, v, (), ts) for i, (k, v, _, ts) in enumerate(records)])
    # nothing duplicated: the end offset is exactly n
    c = ck_consumer(bs)
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        c.close()
    assert (lo, hi) == (0, n)


def test_ck_idempotent_two_producers_same_topic(broker, topic):
    """Two idempotent producers get distinct producer ids; both sequences start at 0."""
    bs = broker.bootstrap
    conf = {"bootstrap.servers": bs, "enable.idempotence": True, "linger.ms": 1}
    a = produce_all(conf, topic, [(b"a", f"a{i}".encode(), None, None) for i in range(10)])
    b = produce_all(conf, topic, [(b"b", f"b{i}".encode(), None, None) for i in range(10)])
    assert_deliveries(a + b, 20)
    got, _ = helpers.kafka_python_read(bs, topic, 20)
    assert [r.value for r in got] == [f"a{i}".encode() for i in range(10)] + [
        f"b{i}".encode() for i in range(10)
    ]


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_ck_acks(broker, topic, acks):
    bs = broker.bootstrap
    n = 50
    records = [(f"k{i}".encode(), f"v{i}".encode(), [("acks", acks.encode())], None) for i in range(n)]
    reports = produce_all({"bootstrap.servers": bs, "acks": acks, "linger.ms": 5}, topic, records)
    errors = [r for r in reports if r[0] is not None]
    assert not errors and len(reports) == n, errors[:5]
    if acks != "0":  # with acks=0 librdkafka reports offset -1 (OFFSET_INVALID)
        assert sorted(r[2] for r in reports) == list(range(n))
    got, _ = helpers.kafka_python_read(bs, topic, n)
    helpers.assert_records(
        got, [Rec(i, k, v, helpers.norm_headers(h)) for i, (k, v, h, _) in enumerate(records)],
        compare_timestamps=False,
    )


def test_ck_large_message(broker, topic):
    bs = broker.bootstrap
    big = bytes(i % 251 for i in range(900_000))
    reports = produce_all(
        {"bootstrap.servers": bs, "compression.type": "none", "message.max.bytes": 2_000_000},
        topic, [(b"big", big, None, None)],
    )
    assert_deliveries(reports, 1)
    got, _ = helpers.kafka_python_read(bs, topic, 1)
    assert got[0].value == big


# ---------------------------------------------------------------------------
# admin


def test_ck_admin_topic_lifecycle(broker, topic):
    bs = broker.bootstrap
    a = admin(bs)
    result_of(a.create_topics(
        [NewTopic(topic, num_partitions=3, replication_factor=1,
                  config={"retention.ms": "3600000", "cleanup.policy": "delete"})],
        operation_timeout=10,
    ))
    md = a.list_topics(topic, timeout=10)
    assert md.topics[topic].error is None, md.topics[topic].error
    assert sorted(md.topics[topic].partitions) == [0, 1, 2]
    assert len(md.brokers) == 1

    # creating it again fails with TOPIC_ALREADY_EXISTS
    with pytest.raises(KafkaException) as ei:
        result_of(a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]))
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, ei.value

    # describe_topics
    [desc] = result_of(a.describe_topics(TopicCollection([topic]))).values()
    assert desc.name == topic and [p.id for p in desc.partitions] == [0, 1, 2]

    # configs: describe, incremental alter, describe again
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    [entries] = result_of(a.describe_configs([res])).values()
    assert entries["retention.ms"].value == "3600000", entries.get("retention.ms")
    assert entries["cleanup.policy"].value == "delete"

    alter = ConfigResource(
        ConfigResource.Type.TOPIC, topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("max.message.bytes", "2000000", incremental_operation=AlterConfigOpType.SET),
        ],
    )
    result_of(a.incremental_alter_configs([alter]))
    [entries] = result_of(a.describe_configs([res])).values()
    assert entries["retention.ms"].value == "7200000"
    assert entries["max.message.bytes"].value == "2000000"

    delete_op = ConfigResource(
        ConfigResource.Type.TOPIC, topic,
        incremental_configs=[
            ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE)
        ],
    )
    result_of(a.incremental_alter_configs([delete_op]))
    [entries] = result_of(a.describe_configs([res])).values()
    assert entries.get("max.message.bytes") is None or entries["max.message.bytes"].value != "2000000"

    # partitions 3 -> 5
    result_of(a.create_partitions([NewPartitions(topic, 5)], operation_timeout=10))
    helpers.wait_until(
        lambda: len(a.list_topics(topic, timeout=10).topics[topic].partitions) == 5,
        timeout=15, what="5 partitions in metadata",
    )

    # delete
    result_of(a.delete_topics([topic], operation_timeout=10))
    helpers.wait_until(
        lambda: topic not in a.list_topics(timeout=10).topics, timeout=15,
        what="topic gone from metadata",
    )


def test_ck_admin_describe_cluster(broker):
    a = admin(broker.bootstrap)
    desc = a.describe_cluster().result(timeout=30)
    assert len(desc.nodes) == 1, desc.nodes
    host, port = broker.bootstrap.rsplit(":", 1)
    assert (desc.nodes[0].host, desc.nodes[0].port) == (host, int(port))
    assert desc.controller is not None and desc.controller.id == desc.nodes[0].id
    assert desc.cluster_id, desc


def test_ck_list_offsets_and_offsets_for_times(broker, topic):
    bs = broker.bootstrap
    n = 10
    base_ts = 1_700_000_000_000
    records = [(f"k{i}".encode(), f"v{i}".encode(), None, base_ts + 1000 * i) for i in range(n)]
    assert_deliveries(produce_all({"bootstrap.servers": bs}, topic, records), n)
    tp = TopicPartition(topic, 0)
    a = admin(bs)
    out = result_of(a.list_offsets({tp: OffsetSpec.earliest()}))
    assert [r.offset for r in out.values()] == [0]
    out = result_of(a.list_offsets({tp: OffsetSpec.latest()}))
    assert [r.offset for r in out.values()] == [n]
    out = result_of(a.list_offsets({tp: OffsetSpec.for_timestamp(base_ts + 4500)}))
    [info] = out.values()
    assert (info.offset, info.timestamp) == (5, base_ts + 5000)
    out = result_of(a.list_offsets({tp: OffsetSpec.max_timestamp()}))
    [info] = out.values()
    assert (info.offset, info.timestamp) == (n - 1, base_ts + 1000 * (n - 1))

    c = ck_consumer(bs)
    try:
        assert c.get_watermark_offsets(tp, timeout=10) == (0, n)
        [r] = c.offsets_for_times([TopicPartition(topic, 0, base_ts + 2000)], timeout=10)
        assert (r.offset, r.error) == (2, None)
        [r] = c.offsets_for_times([TopicPartition(topic, 0, base_ts + 10 * n * 1000)], timeout=10)
        assert r.offset == -1, r  # past the last timestamp: no offset
    finally:
        c.close()


def test_ck_delete_records(any_broker, topic):
    bs = any_broker.bootstrap
    n = 10
    records = [(f"k{i}".encode(), f"v{i}".encode(), None, None) for i in range(n)]
    assert_deliveries(produce_all({"bootstrap.servers": bs}, topic, records), n)
    a = admin(bs)
    tp = TopicPartition(topic, 0, 4)
    [deleted] = result_of(a.delete_records([tp], operation_timeout=10)).values()
    assert deleted.low_watermark == 4
    out = result_of(a.list_offsets({TopicPartition(topic, 0): OffsetSpec.earliest()}))
    assert [r.offset for r in out.values()] == [4]
    got, _ = helpers.kafka_python_read(bs, topic, n - 4)
    assert [r.offset for r in got] == list(range(4, n))
    assert [r.value for r in got] == [f"v{i}".encode() for i in range(4, n)]


# ---------------------------------------------------------------------------
# edge cases


def test_ck_message_too_large_is_rejected_by_broker(broker, topic):
    bs = broker.bootstrap
    big = b"y" * 1_500_000  # above the broker's default message.max.bytes (1048588)
    reports = produce_all(
        {"bootstrap.servers": bs, "message.max.bytes": 5_000_000, "compression.type": "none",
         "retries": 0},
        topic, [(None, big, None, None)],
    )
    [(err, _, _, _)] = reports
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err


def test_ck_produce_to_missing_partition(broker, topic):
    bs = broker.bootstrap
    assert_deliveries(produce_all({"bootstrap.servers": bs}, topic, [(None, b"x", None, None)]), 1)
    reports = produce_all({"bootstrap.servers": bs, "message.timeout.ms": 5000}, topic,
                          [(None, b"nope", None, None)], partition=5)
    [(err, *_)] = reports
    assert err is not None and err.code() == KafkaError._UNKNOWN_PARTITION, err


def test_ck_describe_broker_configs(broker):
    a = admin(broker.bootstrap)
    desc = a.describe_cluster().result(timeout=30)
    node_id = str(desc.nodes[0].id)
    [entries] = result_of(a.describe_configs([ConfigResource(ConfigResource.Type.BROKER, node_id)])).values()
    assert entries, "no broker configs described"
    if "message.max.bytes" in entries:
        assert entries["message.max.bytes"].value == "1048588"


def test_ck_consumer_long_poll_wakeup(broker, topic):
    """librdkafka fetches with fetch.wait.max.ms=5000; a record produced while
    the Fetch is parked must arrive well before that."""
    bs = broker.bootstrap
    assert_deliveries(produce_all({"bootstrap.servers": bs}, topic, [(None, b"first", None, None)]), 1)
    c = ck_consumer(bs, **{"fetch.wait.max.ms": 5000})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 20
        first = None
        while first is None and time.monotonic() < deadline:
            m = c.poll(0.25)
            if m is not None and not m.error():
                first = m
        assert first is not None and first.value() == b"first"
        # let the consumer park a Fetch on the (now empty) tail
        end_wait = time.monotonic() + 1.0
        while time.monotonic() < end_wait:
            c.poll(0.1)
        p = Producer({"bootstrap.servers": bs, "linger.ms": 0})
        p.produce(topic, b"second", partition=0)
        assert p.flush(10) == 0
        sent = time.monotonic()
        got = None
        while got is None and time.monotonic() < sent + 20:
            m = c.poll(0.1)
            if m is not None and not m.error():
                got = m
        assert got is not None and got.value() == b"second"
        latency = time.monotonic() - sent
        assert latency < 2.5, f"record arrived {latency:.1f}s after produce (fetch.wait.max.ms 5s)"
    finally:
        c.close()


def test_ck_many_partitions_keyed(broker_factory):
    b = broker_factory("--num-partitions", "6")
    bs = b.bootstrap
    topic = helpers.unique_topic("ck-keyed")
    n = 300
    reports = []

    def on_delivery(err, msg):
        reports.append((err, msg.partition(), msg.offset(), msg.key(), msg.value()))

    p = Producer({"bootstrap.servers": bs, "linger.ms": 10, "enable.idempotence": True})
    for i in range(n):
        p.produce(topic, key=f"k{i % 12}".encode(), value=f"v{i}".encode(), on_delivery=on_delivery)
        p.poll(0)
    assert p.flush(30) == 0
    assert not [r for r in reports if r[0] is not None]
    by_part = {}
    for _, part, off, k, v in reports:
        by_part.setdefault(part, []).append((off, k, v))
    assert len(by_part) > 1, "all keys went to one partition"
    for part, rows in by_part.items():
        rows.sort()
        assert [o for o, *_ in rows] == list(range(len(rows))), (part, rows[:5])
        got, _ = helpers.kafka_python_read(bs, topic, len(rows), partition=part)
        assert [(g.offset, g.key, g.value) for g in got] == rows


def _admin_error(futmap):
    [f] = futmap.values()
    with pytest.raises(KafkaException) as ei:
        f.result(timeout=30)
    return ei.value.args[0].code()


def test_ck_admin_errors(broker, topic):
    bs = broker.bootstrap
    a = admin(bs)
    # validate_only creates nothing
    result_of(a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)],
                              validate_only=True))
    assert topic not in a.list_topics(timeout=10).topics
    # one broker: replication factor 3 is impossible
    assert _admin_error(a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3)])) \
        == KafkaError.INVALID_REPLICATION_FACTOR
    # bad partition count
    assert _admin_error(a.create_topics([NewTopic(topic, num_partitions=0, replication_factor=1)])) \
        == KafkaError.INVALID_PARTITIONS
    # bad config key / value
    assert _admin_error(a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1,
                                                  config={"retention.ms": "not-a-number"})])) \
        == KafkaError.INVALID_CONFIG
    result_of(a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)]))
    # shrinking partitions is invalid
    assert _admin_error(a.create_partitions([NewPartitions(topic, 1)])) == KafkaError.INVALID_PARTITIONS
    # unknown topics
    missing = topic + "-missing"
    assert _admin_error(a.delete_topics([missing], operation_timeout=10)) == \
        KafkaError.UNKNOWN_TOPIC_OR_PART
    assert _admin_error(a.create_partitions([NewPartitions(missing, 3)])) == \
        KafkaError.UNKNOWN_TOPIC_OR_PART
    assert _admin_error(a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, missing)])) == \
        KafkaError.UNKNOWN_TOPIC_OR_PART
    # unknown config key in an incremental alter
    bad = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET)])
    assert _admin_error(a.incremental_alter_configs([bad])) == KafkaError.INVALID_CONFIG


def test_ck_delete_records_edge_offsets(broker, topic):
    from confluent_kafka import OFFSET_END

    bs = broker.bootstrap
    n = 5
    assert_deliveries(produce_all({"bootstrap.servers": bs}, topic,
                                  [(None, b"v%d" % i, None, None) for i in range(n)]), n)
    a = admin(bs)
    # past the high watermark -> OFFSET_OUT_OF_RANGE
    assert _admin_error(a.delete_records([TopicPartition(topic, 0, n + 10)])) == \
        KafkaError.OFFSET_OUT_OF_RANGE
    # OFFSET_END (-1) deletes everything up to the high watermark
    [deleted] = result_of(a.delete_records([TopicPartition(topic, 0, OFFSET_END)])).values()
    assert deleted.low_watermark == n
    c = ck_consumer(bs)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (n, n)
    finally:
        c.close()
    # appends continue at n
    reports = produce_all({"bootstrap.servers": bs}, topic, [(None, b"after", None, None)])
    assert [r[2] for r in reports] == [n]
    assert [(r.offset, r.value) for r in ck_read(bs, topic, 1)] == [(n, b"after")]


def test_ck_volume_multi_partition(broker_factory):
    """20k small records over 3 partitions in large lz4 batches; every record
    comes back exactly once, in order per partition."""
    b = broker_factory("--num-partitions", "3")
    bs = b.bootstrap
    topic = helpers.unique_topic("ck-volume")
    n = 20_000
    reports = []

    def on_delivery(err, msg):
        reports.append((err, msg.partition(), msg.offset()))

    p = Producer({"bootstrap.servers": bs, "linger.ms": 20, "compression.type": "lz4",
                  "enable.idempotence": True, "batch.size": 262144})
    for i in range(n):
        while True:
            try:
                p.produce(topic, value=b"%d" % i, partition=i % 3, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    assert not [r for r in reports if r[0] is not None], [r for r in reports if r[0]][:3]
    c = ck_consumer(bs)
    try:
        c.assign([TopicPartition(topic, part, OFFSET_BEGINNING) for part in range(3)])
        got = {0: [], 1: [], 2: []}
        deadline = time.monotonic() + 60
        while sum(map(len, got.values())) < n and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                if not m.error():
                    got[m.partition()].append((m.offset(), int(m.value())))
    finally:
        c.close()
    for part in range(3):
        want = [(off, v) for off, v in enumerate(range(part, n, 3))]
        assert got[part] == want, (part, len(got[part]), len(want), got[part][:3])


def test_ck_empty_vs_null_fields(any_broker, topic):
    """b'' and None are different for keys, values and header values."""
    bs = any_broker.bootstrap
    records = [
        (b"", b"", [("h", b"")], None),
        (None, None, [("h", None)], None),
        (b"", None, [], None),
        (None, b"", None, None),
    ]
    assert_deliveries(produce_all({"bootstrap.servers": bs}, topic, records), 4)
    want = [(0, b"", b"", (("h", b""),)), (1, None, None, (("h", None),)),
            (2, b"", None, ()), (3, None, b"", ())]
    got = ck_read(bs, topic, 4)
    assert [(r.offset, r.key, r.value, r.headers) for r in got] == want
    got, _ = helpers.kafka_python_read(bs, topic, 4)
    assert [(r.offset, r.key, r.value, r.headers) for r in got] == want


def test_ck_create_many_topics_at_once(broker):
    bs = broker.bootstrap
    a = admin(bs)
    names = [helpers.unique_topic(f"many{i}") for i in range(40)]
    result_of(a.create_topics([NewTopic(t, num_partitions=1 + i % 3, replication_factor=1)
                               for i, t in enumerate(names)]))
    md = a.list_topics(timeout=10)
    for i, t in enumerate(names):
        assert t in md.topics, t
        assert len(md.topics[t].partitions) == 1 + i % 3
    result_of(a.delete_topics(names, operation_timeout=10))
    helpers.wait_until(lambda: not set(names) & set(a.list_topics(timeout=10).topics),
                       what="all 40 topics deleted")


def test_ck_delete_topic_under_parked_fetch(broker, topic):
    """Deleting a topic while a consumer's Fetch is parked on it (long poll)
    must be answered with a partition error (UNKNOWN_TOPIC_OR_PARTITION in
    Kafka), not by closing the client's connection."""
    import logging

    bs = broker.bootstrap
    assert_deliveries(produce_all({"bootstrap.servers": bs}, topic, [(None, b"x", None, None)]), 1)
    lines = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    log = logging.getLogger(f"ck-{topic}")
    log.addHandler(Collect())
    log.setLevel(logging.INFO)
    c = Consumer({
        "bootstrap.servers": bs, "group.id": f"compat-{topic}", "enable.auto.commit": False,
        "fetch.wait.max.ms": 5000, "enable.partition.eof": False,
    }, logger=log)
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 20
        got = None
        while got is None and time.monotonic() < deadline:
            m = c.poll(0.25)
            if m is not None and not m.error():
                got = m
        assert got is not None and got.value() == b"x"
        park_until = time.monotonic() + 1.0  # the next Fetch now waits for data
        while time.monotonic() < park_until:
            c.poll(0.1)
        a = admin(bs)  # keep a reference: the handle must outlive the future
        result_of(a.delete_topics([topic], operation_timeout=10))
        settle = time.monotonic() + 3.0
        while time.monotonic() < settle:
            c.poll(0.1)
    finally:
        c.close()
    broker.check_alive()
    dropped = [l for l in lines if "Disconnected" in l or "connection closed" in l]
    assert not dropped, f"broker dropped the consumer's connection: {dropped}"


def test_ck_idempotent_producer_survives_broker_restart(broker, topic):
    """An idempotent producer keeps producing across a broker restart (embedded store,
    same port): nothing lost, nothing duplicated, offsets contiguous."""
    bs = broker.bootstrap
    reports = []

    def on_delivery(err, msg):
        reports.append((err, msg.offset(), msg.value()))

    p = Producer({"bootstrap.servers": bs, "enable.idempotence": True, "linger.ms": 5,
                  "message.timeout.ms": 30000, "reconnect.backoff.max.ms": 500})
    for i in range(50):
        p.produce(topic, value=b"a%d" % i, partition=0, on_delivery=on_delivery)
    assert p.flush(30) == 0
    broker.restart(keep_port=True)
    assert broker.bootstrap == bs
    for i in range(50):
        p.produce(topic, value=b"b%d" % i, partition=0, on_delivery=on_delivery)
    assert p.flush(40) == 0
    errors = [r for r in reports if r[0] is not None]
    assert not errors, errors[:5]
    assert sorted(r[1] for r in reports) == list(range(100))
    got, _ = helpers.kafka_python_read(bs, topic, 100)
    assert [g.value for g in got] == [b"a%d" % i for i in range(50)] + [b"b%d" % i for i in range(50)]
    c = ck_consumer(bs)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 100)
    finally:
        c.close()


def test_ck_sigterm_with_parked_fetch(broker, topic):
    """SIGTERM while a consumer has a long Fetch parked: the broker exits
    cleanly and promptly."""
    bs = broker.bootstrap
    assert_deliveries(produce_all({"bootstrap.servers": bs}, topic, [(None, b"x", None, None)]), 1)
    c = ck_consumer(bs, **{"fetch.wait.max.ms": 10000, "enable.partition.eof": False})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 20
        got = None
        while got is None and time.monotonic() < deadline:
            m = c.poll(0.25)
            if m is not None and not m.error():
                got = m
        assert got is not None
        park_until = time.monotonic() + 1.0
        while time.monotonic() < park_until:
            c.poll(0.1)
        t = time.monotonic()
        rc = broker.stop()
        took = time.monotonic() - t
    finally:
        c.close()
    assert rc == 0, (rc, broker.stderr_tail())
    assert took < 5.0, f"broker took {took:.1f}s to stop with a parked Fetch"


def test_ck_metadata_respects_allow_auto_topic_creation_false(broker, topic):
    """A Metadata request with allow_auto_topic_creation=false (librdkafka
    consumers send that by default) must not create the topic, even though the
    broker's auto-creation is on."""
    bs = broker.bootstrap
    c = ck_consumer(bs, **{"allow.auto.create.topics": False})
    try:
        md = c.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        assert t is not None and t.error is not None and \
            t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, t
    finally:
        c.close()
    a = admin(bs)
    assert topic not in a.list_topics(timeout=10).topics
    # ...while a producer's metadata request (allow=true) creates it
    assert_deliveries(produce_all({"bootstrap.servers": bs}, topic, [(None, b"x", None, None)]), 1)
    assert topic in a.list_topics(timeout=10).topics
