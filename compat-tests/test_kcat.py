"""kcat (librdkafka from Debian 12) against DuctStream: produce with keys,
headers, explicit partition, compression and acks; consume with -f format and
-J; metadata with -L."""

from __future__ import annotations

import json

import pytest

import helpers
from helpers import Rec, kcat_bin, run

FMT = "%t|%p|%o|%k|%s|%h|%T\\n"


def kcat_produce(bootstrap, topic, lines, *, partition=0, key_delim=":", headers=(), extra=()):
    cmd = [kcat_bin(), "-P", "-b", bootstrap, "-t", topic, "-p", str(partition)]
    if key_delim:
        cmd += ["-K", key_delim]
    for h in headers:
        cmd += ["-H", h]
    cmd += list(extra)
    data = ("\n".join(lines) + "\n").encode()
    return run(cmd, input=data, timeout=60)


def kcat_consume_fmt(bootstrap, topic, n, *, partition=0, offset="beginning", fmt=FMT):
    proc = run(
        [kcat_bin(), "-C", "-b", bootstrap, "-t", topic, "-p", str(partition),
         "-o", str(offset), "-c", str(n), "-e", "-q", "-f", fmt],
        timeout=60,
    )
    return [l for l in proc.stdout.decode().split("\n") if l]


def test_kcat_produce_consume_keys_headers(any_broker, topic):
    bs = any_broker.bootstrap
    n = 10
    t0 = helpers.now_ms()
    kcat_produce(
        bs, topic, [f"key-{i}:value-{i}" for i in range(n)],
        headers=["h1=v1", "trace=abc-123"],
        extra=["-X", "acks=all"],
    )
    t1 = helpers.now_ms()
    lines = kcat_consume_fmt(bs, topic, n)
    assert len(lines) == n, lines
    for i, line in enumerate(lines):
        t, p, o, k, s, h, ts = line.split("|")
        assert (t, p, o, k, s, h) == (
            topic, "0", str(i), f"key-{i}", f"value-{i}", "h1=v1,trace=abc-123"
        ), line
        # kcat cannot set per-message timestamps: librdkafka stamps CreateTime
        # at produce() time, which must lie inside the test's wall-clock window.
        assert t0 - 1000 <= int(ts) <= t1 + 1000, (line, t0, t1)


def test_kcat_json_envelope_and_cross_client(broker, topic):
    bs = broker.bootstrap
    n = 5
    kcat_produce(bs, topic, [f"k{i}:payload {i} with spaces" for i in range(n)],
                 headers=["a=1", "a=2", "empty="])
    recs = helpers.kcat_read_json(bs, topic, n)
    assert [r["offset"] for r in recs] == list(range(n))
    assert [r["key"] for r in recs] == [f"k{i}" for i in range(n)]
    assert [r["payload"] for r in recs] == [f"payload {i} with spaces" for i in range(n)]
    assert all(r["partition"] == 0 and r["topic"] == topic for r in recs)
    # kcat -J prints headers as a flat [name, value, name, value, ...] list
    assert all(r["headers"] == ["a", "1", "a", "2", "empty", ""] for r in recs), recs[0]
    assert all(r["tstype"] == "create" for r in recs), recs[0]

    # The same bytes as seen by an independent client.
    got, _ = helpers.kafka_python_read(bs, topic, n)
    expected = [
        Rec(i, f"k{i}".encode(), f"payload {i} with spaces".encode(),
            (("a", b"1"), ("a", b"2"), ("empty", b"")), recs[i]["ts"])
        for i in range(n)
    ]
    helpers.assert_records(got, expected)


def test_kcat_explicit_partition(broker_factory):
    b = broker_factory("--num-partitions", "3")
    topic = helpers.unique_topic("kcat-partitions")
    for p in (2, 0, 1):
        kcat_produce(b.bootstrap, topic, [f"p{p}-k{i}:p{p}-v{i}" for i in range(3)], partition=p)
    for p in range(3):
        lines = kcat_consume_fmt(b.bootstrap, topic, 3, partition=p, fmt="%p|%o|%k|%s\\n")
        assert lines == [f"{p}|{i}|p{p}-k{i}|p{p}-v{i}" for i in range(3)]


def test_kcat_consume_from_offsets(broker, topic):
    bs = broker.bootstrap
    n = 8
    kcat_produce(bs, topic, [f"k{i}:v{i}" for i in range(n)])
    # absolute offset
    assert kcat_consume_fmt(bs, topic, n - 5, offset=5, fmt="%o|%s\\n") == [
        f"{i}|v{i}" for i in range(5, n)
    ]
    # relative from end (uses ListOffsets latest)
    assert kcat_consume_fmt(bs, topic, 3, offset=-3, fmt="%o|%s\\n") == [
        f"{i}|v{i}" for i in range(n - 3, n)
    ]
    # offset by timestamp: s@<ts> (uses ListOffsets with a timestamp)
    first_ts = int(kcat_consume_fmt(bs, topic, 1, fmt="%T\\n")[0])
    got = kcat_consume_fmt(bs, topic, n, offset=f"s@{first_ts}", fmt="%o\\n")
    assert got == [str(i) for i in range(n)]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kcat_compression(broker, topic, codec):
    bs = broker.bootstrap
    n = 50
    vals = [f"k{i}:{codec}-" + ("x" * (i % 7)) + f"-{i}" for i in range(n)]
    # linger so the records end up in few compressed batches
    kcat_produce(bs, topic, vals, extra=["-z", codec, "-X", "linger.ms=100"])
    got, _ = helpers.kafka_python_read(bs, topic, n)
    expected = [Rec(i, f"k{i}".encode(), v.split(":", 1)[1].encode()) for i, v in enumerate(vals)]
    helpers.assert_records(got, expected, compare_timestamps=False)
    lines = kcat_consume_fmt(bs, topic, n, fmt="%o|%k|%s\\n")
    assert lines == [f"{i}|k{i}|{v.split(':', 1)[1]}" for i, v in enumerate(vals)]


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_kcat_acks(broker, topic, acks):
    bs = broker.bootstrap
    n = 20
    kcat_produce(bs, topic, [f"k{i}:v{i}" for i in range(n)], extra=["-X", f"acks={acks}"])
    # acks=0: nothing confirms the write, so poll with a deadline.
    got, _ = helpers.kafka_python_read(bs, topic, n, timeout=20)
    helpers.assert_records(
        got, [Rec(i, f"k{i}".encode(), f"v{i}".encode()) for i in range(n)],
        compare_timestamps=False,
    )


def test_kcat_metadata(broker_factory):
    b = broker_factory("--num-partitions", "2")
    topic = helpers.unique_topic("kcat-meta")
    kcat_produce(b.bootstrap, topic, ["k:v"], partition=1)  # auto-creates the topic
    proc = run([kcat_bin(), "-L", "-J", "-b", b.bootstrap, "-t", topic], timeout=30)
    md = json.loads(proc.stdout)
    assert len(md["brokers"]) == 1, md
    host, port = b.bootstrap.rsplit(":", 1)
    assert md["brokers"][0]["name"] == f"{host}:{port}", md["brokers"]
    broker_id = md["brokers"][0]["id"]
    [t] = md["topics"]
    assert t["topic"] == topic and "error" not in t, t
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1]
    for p in t["partitions"]:
        assert p["leader"] == broker_id, p
        assert [r["id"] for r in p["replicas"]] == [broker_id], p
        assert [r["id"] for r in p["isrs"]] == [broker_id], p

    # all-topics listing contains it too
    proc = run([kcat_bin(), "-L", "-J", "-b", b.bootstrap], timeout=30)
    assert topic in [t["topic"] for t in json.loads(proc.stdout)["topics"]]


def test_kcat_unknown_partition_is_an_error(broker, topic):
    bs = broker.bootstrap
    kcat_produce(bs, topic, ["k:v"])
    proc = run(
        [kcat_bin(), "-P", "-b", bs, "-t", topic, "-p", "7", "-X", "message.timeout.ms=5000"],
        input=b"x\n", check=False, timeout=60,
    )
    assert proc.returncode != 0 or b"Unknown partition" in proc.stderr or b"ERROR" in proc.stderr, (
        proc.returncode, proc.stderr
    )


def test_kcat_query_offsets_by_timestamp(broker, topic):
    bs = broker.bootstrap
    kcat_produce(bs, topic, [f"k{i}:v{i}" for i in range(4)])
    ts = [int(x) for x in kcat_consume_fmt(bs, topic, 4, fmt="%T\\n")]
    # kcat -Q prints "<topic> [<partition>] offset <offset>"
    proc = run([kcat_bin(), "-Q", "-b", bs, "-t", f"{topic}:0:{ts[0]}"], timeout=30)
    assert f"{topic} [0] offset 0" in proc.stdout.decode(), proc.stdout
    proc = run([kcat_bin(), "-Q", "-b", bs, "-t", f"{topic}:0:{ts[-1] + 60_000}"], timeout=30)
    assert f"{topic} [0] offset -1" in proc.stdout.decode(), proc.stdout


def test_kcat_small_fetch_limits(broker, topic):
    """librdkafka with tiny fetch limits still gets every record (KIP-74)."""
    bs = broker.bootstrap
    vals = [f"k{i}:" + "z" * 3000 + f"-{i}" for i in range(10)]
    kcat_produce(bs, topic, vals, extra=["-X", "linger.ms=50"])
    proc = run(
        [kcat_bin(), "-C", "-b", bs, "-t", topic, "-p", "0", "-o", "beginning", "-c", "10",
         "-e", "-q", "-f", "%o|%S\\n", "-X", "message.max.bytes=1000", "-X", "fetch.max.bytes=1024",
         "-X", "fetch.message.max.bytes=1024", "-X", "receive.message.max.bytes=100000"],
        timeout=60,
    )
    lines = [l for l in proc.stdout.decode().split("\n") if l]
    assert lines == [f"{i}|{3000 + len(f'-{i}')}" for i in range(10)], lines
