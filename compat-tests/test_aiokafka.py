"""aiokafka (asyncio) against DuctStream: produce (send_and_wait and
explicit batches, all compressions) and consume by assignment with every field
compared; offset look-ups; admin topics/configs/delete_records."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.admin.records_to_delete import RecordsToDelete

import helpers
from helpers import Rec


def records(n, base_ts, tag):
    out = []
    for i in range(n):
        key = f"{tag}-key-{i}".encode() if i % 4 else None
        value = f"{tag}-value-{i}".encode() + b"\x00\x01\xfe"
        headers = [("n", str(i).encode()), ("tag", tag.encode()), ("empty", b"")]
        out.append((key, value, headers, base_ts + i))
    return out


def expected(recs, first=0):
    return [Rec(first + i, k, v, helpers.norm_headers(h), ts) for i, (k, v, h, ts) in enumerate(recs)]


async def consume_n(bs, topic, n, *, offset=None, partition=0, timeout=20.0):
    c = AIOKafkaConsumer(bootstrap_servers=bs, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", fetch_max_wait_ms=200,
                         request_timeout_ms=15000)
    await c.start()
    try:
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        if offset is None:
            await c.seek_to_beginning(tp)
        else:
            c.seek(tp, offset)
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            batch = await c.getmany(tp, timeout_ms=250)
            out.extend(batch.get(tp, []))
        assert len(out) >= n, f"aiokafka consumer got {len(out)} of {n} within {timeout}s"
        return [Rec(r.offset, r.key, r.value, helpers.norm_headers(r.headers), r.timestamp)
                for r in out]
    finally:
        await c.stop()


@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
async def test_aiokafka_send_and_wait_roundtrip(any_broker, topic, codec):
    bs = any_broker.bootstrap
    n = 12
    recs = records(n, helpers.now_ms() - 7_200_000, str(codec))
    p = AIOKafkaProducer(bootstrap_servers=bs, acks="all", compression_type=codec,
                         request_timeout_ms=15000)
    await p.start()
    try:
        metas = []
        for k, v, h, ts in recs:
            metas.append(await p.send_and_wait(topic, value=v, key=k, headers=h, partition=0,
                                               timestamp_ms=ts))
    finally:
        await p.stop()
    assert [(m.topic, m.partition, m.offset) for m in metas] == [(topic, 0, i) for i in range(n)]
    assert [m.timestamp for m in metas] == [ts for *_, ts in recs]
    helpers.assert_records(await consume_n(bs, topic, n), expected(recs))
    helpers.assert_records(await consume_n(bs, topic, n - 5, offset=5), expected(recs)[5:])


@pytest.mark.parametrize("codec", [None, "gzip", "lz4"])
async def test_aiokafka_explicit_batch(broker, topic, codec):
    """One multi-record batch via create_batch/send_batch; offsets are per record."""
    bs = broker.bootstrap
    n = 40
    recs = records(n, helpers.now_ms() - 1000, "batch")
    p = AIOKafkaProducer(bootstrap_servers=bs, acks="all", compression_type=codec)
    await p.start()
    try:
        batch = p.create_batch()
        for k, v, h, ts in recs:
            # BatchBuilder.append's docstring says seconds, but aiokafka passes the
            # value straight into the record batch, i.e. it is milliseconds.
            assert batch.append(key=k, value=v, headers=h, timestamp=ts) is not None
        fut = await p.send_batch(batch, topic, partition=0)
        meta = await asyncio.wait_for(fut, 30)
    finally:
        await p.stop()
    assert meta.offset == 0  # base offset of the batch
    helpers.assert_records(await consume_n(bs, topic, n), expected(recs))


async def test_aiokafka_acks_0_and_1(broker, topic):
    bs = broker.bootstrap
    for acks in (0, 1):
        p = AIOKafkaProducer(bootstrap_servers=bs, acks=acks)
        await p.start()
        try:
            for i in range(5):
                await p.send_and_wait(topic, value=f"acks{acks}-{i}".encode(), partition=0)
            # acks=0 promises nothing once the client goes away, so keep the producer's
            # connection open until the records are readable: the broker must not lose them.
            got = await consume_n(bs, topic, 5 * (acks + 1))
        finally:
            await p.stop()
    assert [r.value for r in got] == [f"acks{a}-{i}".encode() for a in (0, 1) for i in range(5)]
    assert [r.offset for r in got] == list(range(10))


async def test_aiokafka_offset_lookups(broker, topic):
    bs = broker.bootstrap
    base_ts = 1_650_000_000_000
    p = AIOKafkaProducer(bootstrap_servers=bs)
    await p.start()
    try:
        for i in range(6):
            await p.send_and_wait(topic, value=b"x%d" % i, partition=0, timestamp_ms=base_ts + 100 * i)
    finally:
        await p.stop()
    c = AIOKafkaConsumer(bootstrap_servers=bs, group_id=None, enable_auto_commit=False)
    await c.start()
    try:
        tp = TopicPartition(topic, 0)
        assert await c.beginning_offsets([tp]) == {tp: 0}
        assert await c.end_offsets([tp]) == {tp: 6}
        res = await c.offsets_for_times({tp: base_ts + 250})
        assert (res[tp].offset, res[tp].timestamp) == (3, base_ts + 300), res
    finally:
        await c.stop()


async def test_aiokafka_admin(broker, topic):
    bs = broker.bootstrap
    a = AIOKafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=15000)
    await a.start()
    try:
        resp = await a.create_topics([NewTopic(topic, 2, 1, topic_configs={"retention.ms": "123456"})])
        errs = [(t[0], t[1]) for t in resp.topic_errors]
        assert errs == [(topic, 0)], resp
        assert topic in await a.list_topics()
        [desc] = await a.describe_topics([topic])
        assert desc["error_code"] == 0 and len(desc["partitions"]) == 2, desc

        [resp] = await a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        [res] = resp.resources
        error_code, _msg, _rtype, rname, entries = res[:5]
        assert (error_code, rname) == (0, topic), res
        values = {e[0]: e[1] for e in entries}
        assert values.get("retention.ms") == "123456", values

        p = AIOKafkaProducer(bootstrap_servers=bs)
        await p.start()
        try:
            for i in range(5):
                await p.send_and_wait(topic, value=b"v%d" % i, partition=1)
        finally:
            await p.stop()
        tp = TopicPartition(topic, 1)
        out = await a.delete_records({tp: RecordsToDelete(3)})
        assert out == {tp: 3}, out
        assert [r.offset for r in await consume_n(bs, topic, 2, partition=1)] == [3, 4]

        resp = await a.delete_topics([topic])
        deadline = time.monotonic() + 15
        while topic in await a.list_topics():
            assert time.monotonic() < deadline, "topic still listed 15s after delete_topics"
            await asyncio.sleep(0.1)
    finally:
        await a.close()


async def test_aiokafka_idempotent_producer(any_broker, topic):
    bs = any_broker.bootstrap
    n = 60
    p = AIOKafkaProducer(bootstrap_servers=bs, enable_idempotence=True, linger_ms=5,
                         compression_type="gzip")
    await p.start()
    try:
        futs = [await p.send(topic, value=b"i%d" % i, key=b"k", partition=0) for i in range(n)]
        metas = [await asyncio.wait_for(f, 30) for f in futs]
    finally:
        await p.stop()
    assert [m.offset for m in metas] == list(range(n))
    got = await consume_n(bs, topic, n)
    assert [(r.offset, r.value) for r in got] == [(i, b"i%d" % i) for i in range(n)]
