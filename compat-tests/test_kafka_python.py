"""kafka-python (3.x, pure Python) against DuctStream: admin create/delete/
describe configs/alter/partitions/delete_records, produce with keys, headers
and timestamps in all compressions, consume by assignment with seeks, offset
look-ups, and persistence across a broker restart (embedded store)."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType
from kafka.errors import TopicAlreadyExistsError

import helpers
from helpers import Rec


def producer(bs, **kw):
    conf = dict(bootstrap_servers=bs, acks="all", linger_ms=10, request_timeout_ms=15000,
                client_id="compat-kafka-python")
    conf.update(kw)
    return KafkaProducer(**conf)


def make_records(n, base_ts):
    out = []
    for i in range(n):
        key = None if i == 3 else f"key-{i}".encode()
        value = None if i == 4 else f"value-{i}".encode() * (1 + i % 3)
        headers = [("idx", str(i).encode()), ("h", b"\x00\xff binary"), ("same", b"1"), ("same", b"2")]
        out.append((key, value, headers, base_ts + 10 * i))
    return out


def send_all(p, topic, records, partition=0):
    metas = []
    for key, value, headers, ts in records:
        fut = p.send(topic, key=key, value=value, headers=headers, partition=partition,
                     timestamp_ms=ts)
        metas.append(fut)
    p.flush(timeout=30)
    return [f.get(timeout=30) for f in metas]


def expected(records, first=0):
    return [Rec(first + i, k, v, helpers.norm_headers(h), ts)
            for i, (k, v, h, ts) in enumerate(records)]


def consumer(bs, **kw):
    conf = dict(bootstrap_servers=bs, group_id=None, enable_auto_commit=False,
                auto_offset_reset="earliest", fetch_max_wait_ms=200, request_timeout_ms=15000,
                client_id="compat-kafka-python")
    conf.update(kw)
    return KafkaConsumer(**conf)


def poll_n(c, n, timeout=20.0):
    import time
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=250).values():
            out.extend(recs)
    assert len(out) >= n, f"got {len(out)} of {n} records within {timeout}s: {out}"
    return [Rec(r.offset, r.key, r.value, helpers.norm_headers(r.headers), r.timestamp) for r in out]


# ---------------------------------------------------------------------------


@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
def test_kp_produce_consume_all_fields(any_broker, topic, codec):
    bs = any_broker.bootstrap
    n = 25
    base_ts = helpers.now_ms() - 86_400_000
    records = make_records(n, base_ts)
    p = producer(bs, compression_type=codec)
    try:
        metas = send_all(p, topic, records)
    finally:
        p.close()
    assert [(m.topic, m.partition, m.offset) for m in metas] == [(topic, 0, i) for i in range(n)]
    assert [m.timestamp for m in metas] == [ts for *_, ts in records]

    c = consumer(bs)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        helpers.assert_records(poll_n(c, n), expected(records))
        # seek to a specific offset and re-read the tail
        c.seek(tp, 17)
        helpers.assert_records(poll_n(c, n - 17), expected(records)[17:])
        assert c.position(tp) == n
    finally:
        c.close()


def test_kp_offset_lookups(broker, topic):
    bs = broker.bootstrap
    n = 10
    base_ts = 1_600_000_000_000
    records = [(f"k{i}".encode(), f"v{i}".encode(), [], base_ts + 1000 * i) for i in range(n)]
    p = producer(bs)
    try:
        send_all(p, topic, records)
    finally:
        p.close()
    c = consumer(bs)
    try:
        tp = TopicPartition(topic, 0)
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: n}
        res = c.offsets_for_times({tp: base_ts + 3500})
        assert (res[tp].offset, res[tp].timestamp) == (4, base_ts + 4000), res
        res = c.offsets_for_times({tp: base_ts})
        assert (res[tp].offset, res[tp].timestamp) == (0, base_ts), res
        res = c.offsets_for_times({tp: base_ts + 1000 * n})
        assert res[tp] is None, res  # no record at/after that timestamp
        assert c.partitions_for_topic(topic) == {0}
    finally:
        c.close()


def test_kp_admin_topics_and_configs(broker, topic):
    bs = broker.bootstrap
    a = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=15000)
    try:
        a.create_topics({topic: {"num_partitions": 2, "replication_factor": 1,
                                 "configs": {"retention.ms": "86400000"}}})
        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}})
        assert topic in a.list_topics()
        [desc] = a.describe_topics([topic])
        assert desc["name"] == topic and desc["error_code"] == 0, desc
        assert sorted(p["partition_index"] for p in desc["partitions"]) == [0, 1]

        res = ConfigResource(ConfigResourceType.TOPIC, topic)
        cfg = a.describe_configs([res], config_filter="all")["topic"][topic]
        assert cfg["retention.ms"]["value"] == "86400000", cfg.get("retention.ms")
        # only modified values with the default filter
        modified = a.describe_configs([res])["topic"][topic]
        assert "retention.ms" in modified, modified

        a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                        configs={"retention.ms": (AlterConfigOp.SET, "1000000"),
                                                 "segment.bytes": (AlterConfigOp.SET, "10485760")})])
        cfg = a.describe_configs([res], config_filter="all")["topic"][topic]
        assert cfg["retention.ms"]["value"] == "1000000"
        assert cfg["segment.bytes"]["value"] == "10485760"

        a.create_partitions({topic: 4})
        helpers.wait_until(lambda: len(a.describe_topics([topic])[0]["partitions"]) == 4,
                           what="4 partitions")

        a.delete_topics([topic])
        helpers.wait_until(lambda: topic not in a.list_topics(), what="topic deleted")
    finally:
        a.close()


def test_kp_delete_records_and_cluster(broker, topic):
    bs = broker.bootstrap
    p = producer(bs)
    try:
        send_all(p, topic, [(None, f"v{i}".encode(), [], None) for i in range(6)])
    finally:
        p.close()
    a = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=15000)
    try:
        tp = TopicPartition(topic, 0)
        out = a.delete_records({tp: 2})
        assert out[tp]["low_watermark"] == 2, out
        cluster = a.describe_cluster()
        assert len(cluster["brokers"]) == 1, cluster
    finally:
        a.close()
    c = consumer(bs)
    try:
        assert c.beginning_offsets([tp]) == {tp: 2}
        c.assign([tp])
        c.seek_to_beginning(tp)
        assert [r.offset for r in poll_n(c, 4)] == [2, 3, 4, 5]
    finally:
        c.close()


def test_kp_persistence_across_restart(broker, topic):
    bs = broker.bootstrap
    n = 20
    base_ts = helpers.now_ms() - 5000
    records = make_records(n, base_ts)
    p = producer(bs, compression_type="gzip")
    try:
        send_all(p, topic, records)
    finally:
        p.close()
    broker.restart()
    got, _ = helpers.kafka_python_read(broker.bootstrap, topic, n)
    helpers.assert_records(got, expected(records))
    # appends continue at the next offset after the restart
    p = producer(broker.bootstrap)
    try:
        [meta] = send_all(p, topic, [(b"after", b"restart", [], base_ts + 999_999)])
    finally:
        p.close()
    assert meta.offset == n


# ---------------------------------------------------------------------------
# edge cases


def _produce_values(bs, topic, values, **kw):
    p = producer(bs, **kw)
    try:
        return send_all(p, topic, [(None, v, [], None) for v in values])
    finally:
        p.close()


def test_kp_offset_out_of_range_resets(broker, topic):
    bs = broker.bootstrap
    _produce_values(bs, topic, [b"a", b"b", b"c"])
    tp = TopicPartition(topic, 0)
    c = consumer(bs, auto_offset_reset="earliest")
    try:
        c.assign([tp])
        c.seek(tp, 100)  # past the end: Fetch answers OFFSET_OUT_OF_RANGE
        assert [r.value for r in poll_n(c, 3)] == [b"a", b"b", b"c"]
    finally:
        c.close()
    c = consumer(bs, auto_offset_reset="latest")
    try:
        c.assign([tp])
        c.seek(tp, 100)
        helpers.wait_until(lambda: (c.poll(timeout_ms=100) or True) and c.position(tp) == 3,
                           what="position reset to the end (3)")
        _produce_values(bs, topic, [b"d"])
        assert [(r.offset, r.value) for r in poll_n(c, 1)] == [(3, b"d")]
    finally:
        c.close()


def test_kp_long_poll_returns_when_data_arrives(broker, topic):
    """A Fetch waiting on an empty partition (fetch_max_wait_ms=8000) must
    return soon after a record is appended, not at the end of max wait."""
    import threading
    import time

    bs = broker.bootstrap
    _produce_values(bs, topic, [b"first"])
    tp = TopicPartition(topic, 0)
    c = consumer(bs, fetch_max_wait_ms=8000, request_timeout_ms=30000)
    try:
        c.assign([tp])
        c.seek(tp, 0)
        assert [r.value for r in poll_n(c, 1)] == [b"first"]
        sent_at = {}

        def later():
            time.sleep(1.0)
            sent_at["t"] = time.monotonic()
            _produce_values(bs, topic, [b"second"])

        th = threading.Thread(target=later)
        th.start()
        try:
            got = poll_n(c, 1, timeout=20)
        finally:
            th.join()
        latency = time.monotonic() - sent_at["t"]
        assert got[0].value == b"second"
        assert latency < 3.0, f"record arrived {latency:.1f}s after produce (fetch max wait 8s)"
    finally:
        c.close()


def test_kp_fetch_limit_smaller_than_first_batch(broker, topic):
    """KIP-74: the first batch is returned even if it exceeds the fetch limits."""
    bs = broker.bootstrap
    big = bytes(range(256)) * 800  # 200 KiB
    _produce_values(bs, topic, [big, b"small"], compression_type=None)
    c = consumer(bs, max_partition_fetch_bytes=1024, fetch_max_bytes=1024)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        got = poll_n(c, 2)
        assert [g.value for g in got] == [big, b"small"]
    finally:
        c.close()


def test_kp_log_append_time_topic(broker, topic):
    bs = broker.bootstrap
    a = KafkaAdminClient(bootstrap_servers=bs)
    try:
        a.create_topics({topic: {"num_partitions": 1, "replication_factor": 1,
                                 "configs": {"message.timestamp.type": "LogAppendTime"}}})
    finally:
        a.close()
    t0 = helpers.now_ms()
    metas = _produce_values_ts(bs, topic, [(b"v0", 1_000_000_000_000), (b"v1", 1_000_000_000_001)])
    t1 = helpers.now_ms()
    for m in metas:  # produce response carries log_append_time
        assert t0 - 1000 <= m.timestamp <= t1 + 1000, (m, t0, t1)
    _, raw = helpers.kafka_python_read(bs, topic, 2)
    assert [r.timestamp_type for r in raw] == [helpers.LOG_APPEND_TIME] * 2, raw
    assert all(t0 - 1000 <= r.timestamp <= t1 + 1000 for r in raw), raw


def _produce_values_ts(bs, topic, values_ts):
    p = producer(bs)
    try:
        return send_all(p, topic, [(None, v, [], ts) for v, ts in values_ts])
    finally:
        p.close()


def test_kp_message_too_large(broker, topic):
    from kafka.errors import MessageSizeTooLargeError

    bs = broker.bootstrap
    big = b"x" * 1_500_000  # above the default message.max.bytes (1048588)
    p = producer(bs, max_request_size=5_000_000, compression_type=None, retries=0)
    try:
        with pytest.raises(MessageSizeTooLargeError):
            p.send(topic, value=big, partition=0).get(timeout=30)
    finally:
        p.close()
    # a topic override lets it through
    big_topic = topic + "-big"
    a = KafkaAdminClient(bootstrap_servers=bs)
    try:
        a.create_topics({big_topic: {"num_partitions": 1, "replication_factor": 1,
                                     "configs": {"max.message.bytes": "3000000"}}})
    finally:
        a.close()
    p = producer(bs, max_request_size=5_000_000, compression_type=None)
    try:
        meta = p.send(big_topic, value=big, partition=0).get(timeout=30)
    finally:
        p.close()
    assert meta.offset == 0
    c = consumer(bs, max_partition_fetch_bytes=4_000_000, fetch_max_bytes=8_000_000)
    try:
        tp = TopicPartition(big_topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        assert poll_n(c, 1)[0].value == big
    finally:
        c.close()


def test_kp_auto_create_disabled(broker_factory):
    from kafka.errors import KafkaTimeoutError

    b = broker_factory("--auto-create-topics", "false")
    bs = b.bootstrap
    topic = helpers.unique_topic("no-auto")
    p = producer(bs, max_block_ms=3000)
    try:
        with pytest.raises(KafkaTimeoutError):
            p.send(topic, value=b"x").get(timeout=10)
    finally:
        p.close()
    a = KafkaAdminClient(bootstrap_servers=bs)
    try:
        assert topic not in a.list_topics()
        a.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
    finally:
        a.close()
    assert [m.offset for m in _produce_values(bs, topic, [b"ok"])] == [0]


def test_kp_invalid_topic_names(broker):
    from kafka.errors import InvalidTopicError

    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        for bad in ["bad name", "a" * 250, "..", "slash/topic"]:
            with pytest.raises(InvalidTopicError):
                a.create_topics({bad: {"num_partitions": 1, "replication_factor": 1}})
    finally:
        a.close()


def test_kp_concurrent_producers_same_partition(any_broker, topic):
    import threading

    bs = any_broker.bootstrap
    n_threads, per = 4, 250
    errors = []

    def work(t):
        try:
            _produce_values(bs, topic, [f"{t}:{i}".encode() for i in range(per)], linger_ms=2)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    got, _ = helpers.kafka_python_read(bs, topic, n_threads * per, timeout=60)
    assert [g.offset for g in got] == list(range(n_threads * per))
    for t in range(n_threads):  # each producer's own order is kept
        mine = [g.value for g in got if g.value.startswith(f"{t}:".encode())]
        assert mine == [f"{t}:{i}".encode() for i in range(per)]


def test_kp_delete_and_recreate_topic(broker, topic):
    bs = broker.bootstrap
    _produce_values(bs, topic, [b"old0", b"old1", b"old2"])
    a = KafkaAdminClient(bootstrap_servers=bs)
    try:
        a.delete_topics([topic])
        helpers.wait_until(lambda: topic not in a.list_topics(), what="topic deleted")
        a.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
    finally:
        a.close()
    assert [m.offset for m in _produce_values(bs, topic, [b"new0"])] == [0]
    got, _ = helpers.kafka_python_read(bs, topic, 1)
    assert [(g.offset, g.value) for g in got] == [(0, b"new0")]
    c = consumer(bs)
    try:
        tp = TopicPartition(topic, 0)
        assert c.end_offsets([tp]) == {tp: 1}
    finally:
        c.close()


@pytest.mark.parametrize("api_version", [(0, 11), (1, 0), (2, 0), (2, 4), (2, 8), (3, 0)],
                         ids=lambda v: "v" + ".".join(map(str, v)))
def test_kp_pinned_api_version(broker, topic, api_version):
    """kafka-python pinned to an older broker version sends older request
    versions (Produce/Fetch/ListOffsets/Metadata) than it would negotiate."""
    bs = broker.bootstrap
    n = 6
    base_ts = helpers.now_ms() - 10_000
    records = make_records(n, base_ts)
    p = producer(bs, api_version=api_version)
    try:
        metas = send_all(p, topic, records)
    finally:
        p.close()
    assert [m.offset for m in metas] == list(range(n))
    c = consumer(bs, api_version=api_version)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        helpers.assert_records(poll_n(c, n), expected(records))
        assert c.end_offsets([tp]) == {tp: n}
    finally:
        c.close()


def test_kp_restart_keeps_metadata(broker, topic):
    """Topic configs, partition counts and log start offsets survive a restart."""
    bs = broker.bootstrap
    a = KafkaAdminClient(bootstrap_servers=bs)
    try:
        a.create_topics({topic: {"num_partitions": 2, "replication_factor": 1,
                                 "configs": {"retention.ms": "4321000"}}})
        a.create_partitions({topic: 3})
    finally:
        a.close()
    p = producer(bs)
    try:
        send_all(p, topic, [(None, b"v%d" % i, [], None) for i in range(4)], partition=2)
    finally:
        p.close()
    a = KafkaAdminClient(bootstrap_servers=bs)
    try:
        a.delete_records({TopicPartition(topic, 2): 1})
    finally:
        a.close()

    broker.restart()
    bs = broker.bootstrap
    a = KafkaAdminClient(bootstrap_servers=bs)
    try:
        [desc] = a.describe_topics([topic])
        assert sorted(p["partition_index"] for p in desc["partitions"]) == [0, 1, 2]
        cfg = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                 config_filter="all")["topic"][topic]
        assert cfg["retention.ms"]["value"] == "4321000"
    finally:
        a.close()
    c = consumer(bs)
    try:
        tp = TopicPartition(topic, 2)
        assert c.beginning_offsets([tp]) == {tp: 1}
        assert c.end_offsets([tp]) == {tp: 4}
    finally:
        c.close()


def test_kp_consume_many_partitions_one_consumer(broker_factory):
    b = broker_factory("--num-partitions", "5")
    bs = b.bootstrap
    topic = helpers.unique_topic("kp-multi")
    p = producer(bs)
    try:
        for part in range(5):
            send_all(p, topic, [(None, f"p{part}-{i}".encode(), [], None) for i in range(part + 1)],
                     partition=part)
    finally:
        p.close()
    c = consumer(bs, max_partition_fetch_bytes=2048)
    try:
        tps = [TopicPartition(topic, i) for i in range(5)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        assert c.end_offsets(tps) == {tp: tp.partition + 1 for tp in tps}
        import time
        got = {}
        deadline = time.monotonic() + 20
        while sum(len(v) for v in got.values()) < 15 and time.monotonic() < deadline:
            for tp, recs in c.poll(timeout_ms=250).items():
                got.setdefault(tp.partition, []).extend((r.offset, r.value) for r in recs)
        assert got == {part: [(i, f"p{part}-{i}".encode()) for i in range(part + 1)]
                       for part in range(5)}
    finally:
        c.close()


def test_kp_fetch_below_log_start_is_out_of_range(broker, topic):
    bs = broker.bootstrap
    p = producer(bs)
    try:
        send_all(p, topic, [(None, b"v%d" % i, [], None) for i in range(6)])
    finally:
        p.close()
    a = KafkaAdminClient(bootstrap_servers=bs)
    try:
        tp = TopicPartition(topic, 0)
        a.delete_records({tp: 4})
    finally:
        a.close()
    c = consumer(bs, auto_offset_reset="earliest")
    try:
        c.assign([tp])
        c.seek(tp, 1)  # below the log start offset (4): OFFSET_OUT_OF_RANGE -> reset
        assert [(r.offset, r.value) for r in poll_n(c, 2)] == [(4, b"v4"), (5, b"v5")]
    finally:
        c.close()


def test_kp_idempotent_producer(any_broker, topic):
    bs = any_broker.bootstrap
    n = 100
    p = producer(bs, enable_idempotence=True, acks="all", linger_ms=5, compression_type="lz4")
    try:
        metas = send_all(p, topic, [(b"k", b"i%d" % i, [("n", b"%d" % i)], None) for i in range(n)])
    finally:
        p.close()
    assert [m.offset for m in metas] == list(range(n))
    got, _ = helpers.kafka_python_read(bs, topic, n)
    assert [(g.offset, g.value, g.headers) for g in got] == [
        (i, b"i%d" % i, (("n", b"%d" % i),)) for i in range(n)
    ]
