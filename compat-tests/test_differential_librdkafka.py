"""Differential tests for what librdkafka's own test suite found (tests 0011, 0081, 0102,
0113): the same requests to the reference Apache Kafka 4.1.2 and to DuctStream, answers
compared field by field (see test_differential.py for the comparison rules).

- 0011 produce_batch: a compacted topic refuses records without a key; the batch fails with
  INVALID_RECORD and the response names each offending record (KIP-467 record_errors).
- 0081 admin: the ACL APIs, on a broker without an authorizer: SECURITY_DISABLED.
- 0102 static_group_rebalance: a static member replaced by a newer incarnation (same
  group.instance.id) is FENCED_INSTANCE_ID on heartbeat, sync and commit.
- 0113 cooperative_rebalance: commits during a rebalance, in Kafka's order of checks.
"""

from __future__ import annotations

import struct
import threading
import time
import uuid
from collections import Counter

import groups
from groups import Raw, consumer_protocol_assignment, raw_join
from raw_produce import batch as _batch, produce_v8, produce_v8_once_led
from test_differential import both, compare, ds  # noqa: F401 - fixtures used by the tests below


def _wait_coordinator(raw: Raw, group: str):
    # Kafka loads the group's __consumer_offsets partition on the first FindCoordinator.
    deadline = time.monotonic() + 30
    while raw.find_coordinator(group)[0] != 0:
        assert time.monotonic() < deadline, "FindCoordinator kept failing"
        time.sleep(0.2)


def produce_record_errors(bootstrap: str) -> list:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    tag = uuid.uuid4().hex[:8]
    compacted, plain = f"diff-compact-{tag}", f"diff-plain-{tag}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(compacted, 4, 1, config={"cleanup.policy": "compact"}),
                                   NewTopic(plain, 4, 1)], operation_timeout=15)
    for f in futures.values():
        f.result(timeout=30)
    out = []
    raw = Raw(bootstrap, "compat-diff-produce")
    try:
        records = [(b"k0", b"v0"), (None, b"v1"), (b"k2", b"v2"), (None, b"v3"), (None, b"v4"), (None, b"v5")]
        answer = produce_v8_once_led(raw, compacted, 2, _batch(records))
        out.append(("compacted: keyless records", answer["error"], answer["base_offset"],
                    [(i, m.replace(compacted, "T")) for i, m in answer["record_errors"]],
                    (answer["error_message"] or "").replace(compacted, "T")))
        answer = produce_v8(raw, compacted, 2, _batch([(b"k", b"v"), (b"k2", b"v")]))
        out.append(("compacted: every record keyed", answer["error"], answer["base_offset"], answer["record_errors"]))
        answer = produce_v8_once_led(raw, plain, 1, _batch(records))
        out.append(("delete policy: keyless records", answer["error"], answer["base_offset"], answer["record_errors"]))
    finally:
        raw.close()
    # librdkafka's view (test 0011): the keyless records fail with INVALID_RECORD, the others of
    # their batch with _INVALID_DIFFERENT_RECORD; one record per batch, only the keyless fail.
    for label, conf in [("one batch", {}), ("a batch per record", {"batch.size": 1})]:
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **conf})
        results: list[str] = []
        for i in range(100):
            p.produce(compacted, value=f"m{i}".encode(), key=None if i % 10 == 0 else f"k{i}".encode(),
                      partition=0, on_delivery=lambda err, _msg: results.append(err.name() if err else "ok"))
        assert p.flush(30) == 0
        out.append((f"confluent-kafka, {label}", sorted(Counter(results).items())))
    return out


def test_produce_record_errors(both):
    compare("produce_record_errors", {name: produce_record_errors(bs) for name, bs in both.items()})


def acls_without_authorizer(bootstrap: str) -> list:
    """CreateAcls, DescribeAcls, DeleteAcls v1 (resource TOPIC=2, LITERAL=3, READ=3, ALLOW=3;
    filters ANY=1)."""
    raw = Raw(bootstrap, "compat-diff-acls")
    out = []
    try:
        binding = struct.pack(">b", 2) + Raw.s("t1") + struct.pack(">b", 3) + Raw.s("User:test1") + Raw.s("*") \
            + struct.pack(">bb", 3, 3)
        r = raw.request(30, 1, struct.pack(">i", 2) + binding + binding)
        r.i32()
        out.append(("create two", [(r.i16(), r.string()) for _ in range(r.i32())]))
        any_filter = struct.pack(">b", 1) + Raw.s(None) + struct.pack(">b", 1) + Raw.s(None) + Raw.s(None) \
            + struct.pack(">bb", 1, 1)
        r = raw.request(29, 1, any_filter)
        r.i32()
        out.append(("describe any", r.i16(), r.string(), r.i32()))
        r = raw.request(31, 1, struct.pack(">i", 1) + any_filter)
        r.i32()
        results = []
        for _ in range(r.i32()):
            results.append((r.i16(), r.string(), r.i32()))
        out.append(("delete any", results))
    finally:
        raw.close()
    return out


def test_acls_without_authorizer(both):
    compare("acls_without_authorizer", {name: acls_without_authorizer(bs) for name, bs in both.items()})


def static_fencing_and_commits(bootstrap: str) -> list:
    """A static member "i1" alone in a group; a new incarnation of "i1" replaces it; then a
    second member joins and the commits of each rebalance phase are answered."""
    tag = uuid.uuid4().hex[:8]
    topic, group = f"diff-static-{tag}", f"diff-static-g-{tag}"
    groups.create_topics(bootstrap, {topic: 2})
    conns = [Raw(bootstrap, f"compat-diff-static-{i}") for i in range(3)]
    old_conn, new_conn, other = conns
    out = []
    offsets = {(topic, 0): (1, "")}
    try:
        _wait_coordinator(old_conn, group)
        first = raw_join(old_conn, group, [topic], instance_id="i1")
        gen, old = first["generation"], first["member_id"]
        synced = old_conn.sync_group(group, gen, old, [(old, consumer_protocol_assignment({topic: [0, 1]}))], "i1")
        out.append(("first incarnation syncs", synced["error"]))
        again = raw_join(new_conn, group, [topic], instance_id="i1")
        new = again["member_id"]
        out.append(("second incarnation joins", again["error"], again["generation"] == gen, new != old))
        out.append(("old: heartbeat", old_conn.heartbeat(group, gen, old, "i1")))
        out.append(("old: sync", old_conn.sync_group(group, gen, old, [], "i1")["error"]))
        out.append(("old: commit", old_conn.offset_commit(group, gen, old, offsets, version=7, instance_id="i1")))
        out.append(("old id, another instance: heartbeat", old_conn.heartbeat(group, gen, old, "i2")))
        out.append(("new: sync", new_conn.sync_group(group, gen, new, [], "i1")["error"]))
        out.append(("new: commit", new_conn.offset_commit(group, gen, new, offsets, version=7, instance_id="i1")))

        # A second member joins: PreparingRebalance until "i1" rejoins.
        joined = {}
        t = threading.Thread(target=lambda: joined.update(other=raw_join(other, group, [topic])), daemon=True)
        t.start()
        deadline = time.monotonic() + 20
        while new_conn.heartbeat(group, gen, new, "i1") != groups.REBALANCE_IN_PROGRESS:
            assert time.monotonic() < deadline, "no rebalance for the second member"
            time.sleep(0.1)
        out.append(("preparing: commit at the current generation",
                    new_conn.offset_commit(group, gen, new, offsets, version=7, instance_id="i1")))
        out.append(("preparing: commit at the next generation",
                    new_conn.offset_commit(group, gen + 1, new, offsets, version=7, instance_id="i1")))
        out.append(("preparing: simple commit", new_conn.offset_commit(group, -1, "", offsets)))
        rejoined = raw_join(new_conn, group, [topic], instance_id="i1", member_id=new)
        t.join(timeout=30)
        next_gen = rejoined["generation"]
        out.append(("rejoined", rejoined["error"], next_gen == gen + 1))
        # Completing: the leader has not sent the assignment yet.
        out.append(("completing: commit at the old generation",
                    new_conn.offset_commit(group, gen, new, offsets, version=7, instance_id="i1")))
        out.append(("completing: commit at the new generation",
                    new_conn.offset_commit(group, next_gen, new, offsets, version=7, instance_id="i1")))
        out.append(("completing: unknown member",
                    new_conn.offset_commit(group, next_gen, "nobody", offsets, version=7)))
    finally:
        for c in conns:
            c.close()
    return [tuple(_anon(x, topic) for x in row) for row in out]


def _anon(x, topic):
    if isinstance(x, dict):
        return {(t.replace(topic, "T"), p): v for (t, p), v in x.items()}
    return x


def test_static_fencing_and_commits(both):
    compare("static_fencing_and_commits", {name: static_fencing_and_commits(bs) for name, bs in both.items()})


def timestamp_bounds(bootstrap: str) -> list:
    """Kafka 4.1's message.timestamp.after/before.max.ms (FINDINGS.md J4): records too far
    ahead (default: an hour) or behind the broker's clock are refused with INVALID_TIMESTAMP
    and KIP-467 record errors; configs out of Kafka's ranges are refused."""
    import re

    from confluent_kafka.admin import AdminClient, NewTopic

    tag = uuid.uuid4().hex[:8]
    default, strict = f"diff-ts-{tag}", f"diff-ts-strict-{tag}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    out = []
    for label, config in [("zstd level 23", {"compression.zstd.level": "23"}),
                          ("gzip level 0", {"compression.gzip.level": "0"}),
                          ("negative after.max.ms", {"message.timestamp.after.max.ms": "-1"}),
                          ("remote storage", {"remote.storage.enable": "true"}),
                          ("throttle list", {"leader.replication.throttled.replicas": "0-1"})]:
        future = admin.create_topics([NewTopic(f"diff-bad-{tag}", 1, 1, config=config)], operation_timeout=15)
        try:
            list(future.values())[0].result(timeout=30)
            out.append((label, "ok"))
        except Exception as e:  # noqa: BLE001 - the error code is what is compared
            out.append((label, e.args[0].name()))
    futures = admin.create_topics([
        NewTopic(default, 1, 1, config={"compression.zstd.level": "-5", "compression.gzip.level": "9",
                                        "local.retention.ms": "-2", "leader.replication.throttled.replicas": "0:1"}),
        NewTopic(strict, 1, 1, config={"message.timestamp.before.max.ms": "60000",
                                       "message.timestamp.after.max.ms": "0"})], operation_timeout=15)
    for f in futures.values():
        f.result(timeout=30)
    out.append(("valid levels, retention and throttles", "ok"))
    now = int(time.time() * 1000)

    def produce_at(topic, timestamps):
        from kafka.record.default_records import DefaultRecordBatchBuilder

        builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                            producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
        for offset, ts in enumerate(timestamps):
            builder.append(offset, timestamp=ts, key=b"k", value=b"v", headers=[])
        raw = Raw(bootstrap, "compat-diff-ts")
        try:
            answer = produce_v8_once_led(raw, topic, 0, bytes(builder.build()))
        finally:
            raw.close()
        # the bounds in the messages follow each broker's clock
        errors = [(i, re.sub(r"-?\d{6,}", "N", m)) for i, m in answer["record_errors"]]
        return answer["error"], answer["base_offset"] >= 0, errors, answer["error_message"]

    hour = 3_600_000
    out.append(("default: now, a day ago", produce_at(default, [now, now - 24 * hour])))
    out.append(("default: two hours ahead", produce_at(default, [now, now + 2 * hour, now])))
    out.append(("strict: two minutes ago, an hour ahead", produce_at(strict, [now - 120_000, now + hour, now - 1000])))
    return out


def test_timestamp_bounds(both):
    compare("timestamp_bounds", {name: timestamp_bounds(bs) for name, bs in both.items()})


def alter_configs(bootstrap: str) -> list:
    """0081's AlterConfigs (the non-incremental API, v1): a topic's configs become exactly the
    ones given; validate_only changes nothing; errors for an unknown topic, bad values,
    unknown names and null values."""
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    tag = uuid.uuid4().hex[:8]
    topic = f"diff-alter-{tag}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    list(admin.create_topics([NewTopic(topic, 1, 1, config={"retention.ms": "1000", "cleanup.policy": "compact"})],
                             operation_timeout=15).values())[0].result(timeout=30)
    raw = Raw(bootstrap, "compat-diff-alter")

    def alter(name, entries, validate_only=False, resource_type=2):
        body = struct.pack(">i", 1) + struct.pack(">b", resource_type) + Raw.s(name) + struct.pack(">i", len(entries))
        for k, v in entries.items():
            body += Raw.s(k) + Raw.s(v)
        r = raw.request(33, 1, body + struct.pack(">b", 1 if validate_only else 0))
        r.i32()
        assert r.i32() == 1
        return r.i16()

    def overrides():
        resource = ConfigResource("TOPIC", topic)
        entries = list(admin.describe_configs([resource]).values())[0].result(timeout=30)
        # Kafka 4.1's controller also stores min.insync.replicas with every topic (FINDINGS notes)
        return sorted((k, e.value) for k, e in entries.items()
                      if e.source == 1 and k != "min.insync.replicas")  # DYNAMIC_TOPIC_CONFIG

    def changed_from(before):
        # Kafka's controller applies an accepted change a moment after answering: wait for it.
        deadline = time.time() + 10
        now = overrides()
        while now == before and time.time() < deadline:
            time.sleep(0.1)
            now = overrides()
        return now

    out = []
    try:
        created = overrides()
        out.append(("created", created))
        out.append(("replace", alter(topic, {"compression.type": "gzip", "flush.ms": "12345678"})))
        out.append(("after replace", changed_from(created)))
        out.append(("validate only", alter(topic, {"retention.ms": "5"}, validate_only=True)))
        out.append(("after validate only", overrides()))
        out.append(("unknown topic", alter(f"{topic}-none", {"compression.type": "lz4"})))
        out.append(("bad value", alter(topic, {"retention.ms": "soon"})))
        out.append(("unknown name", alter(topic, {"no.such.config": "1"})))
        out.append(("null value", alter(topic, {"retention.ms": None})))
        out.append(("after the errors", overrides()))
        before_empty = overrides()
        out.append(("empty set", alter(topic, {})))
        out.append(("after the empty set", changed_from(before_empty)))
    finally:
        raw.close()
    return out


def test_alter_configs(both):
    compare("alter_configs", {name: alter_configs(bs) for name, bs in both.items()})


def advertised_versions(bootstrap: str) -> list:
    """ApiVersions v0: the version ranges of the APIs added for librdkafka's suite and the
    Java client (AlterConfigs, DescribeLogDirs, the ACL APIs) are Kafka 4.1's."""
    raw = Raw(bootstrap, "compat-diff-versions")
    try:
        r = raw.request(18, 0, b"")
        assert r.i16() == 0
        ranges = {}
        for _ in range(r.i32()):
            key, low, high = r.i16(), r.i16(), r.i16()
            ranges[key] = (low, high)
    finally:
        raw.close()
    names = {29: "DescribeAcls", 30: "CreateAcls", 31: "DeleteAcls", 33: "AlterConfigs", 35: "DescribeLogDirs"}
    return [(name, ranges.get(key)) for key, name in names.items()]


def test_advertised_versions(both):
    compare("advertised_versions", {name: advertised_versions(bs) for name, bs in both.items()})
