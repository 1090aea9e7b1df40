"""Consumer groups with aiokafka 0.14.0 (classic protocol): members in one
event loop share partitions, commit with metadata, resume from commits, seek
inside a group, and the admin's group calls.  (aiokafka has no KIP-848
support; `group.protocol=consumer` is tested with librdkafka in test_groups_kip848.py.)"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.structs import OffsetAndMetadata

import groups
import helpers
from groups import create_topics, expected_range, expected_roundrobin, is_disjoint_cover, produce, values


def make(bootstrap, group, **extra):
    conf = dict(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=500,
                request_timeout_ms=20000, metadata_max_age_ms=2000)
    conf.update(extra)
    return AIOKafkaConsumer(**conf)


async def until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Member:
    """An AIOKafkaConsumer with a task that keeps fetching."""

    def __init__(self, c: AIOKafkaConsumer, name):
        self.c, self.name, self.msgs, self.task = c, name, [], None

    async def start(self, topics):
        await self.c.start()
        self.c.subscribe(topics)
        self.task = asyncio.create_task(self._run())

    async def _run(self):
        while True:
            batch = await self.c.getmany(timeout_ms=200)
            for recs in batch.values():
                self.msgs.extend(recs)

    def assigned(self):
        return sorted((tp.topic, tp.partition) for tp in self.c.assignment())

    def member_id(self):
        return self.c._coordinator.member_id

    def generation(self):
        return self.c._coordinator.generation

    async def stop(self):
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        await self.c.stop()

    def __repr__(self):
        return (f"<{self.name} member={self.member_id()} gen={self.generation()} "
                f"assigned={self.assigned()} msgs={len(self.msgs)}>")


async def test_aiokafka_group_two_members(group_broker, topic):
    b = group_broker.bootstrap
    create_topics(b, {topic: 4})
    group = f"g-{topic}"
    all_tps = [(topic, p) for p in range(4)]
    ms = [Member(make(b, group, client_id=f"aio{i}"), f"aio{i}") for i in range(2)]
    try:
        for m in ms:
            await m.start([topic])
        await until(lambda: all(m.assigned() for m in ms) and is_disjoint_cover(
            {m.name: m.assigned() for m in ms}, all_tps) and ms[0].generation() == ms[1].generation(),
            45, f"2 members sharing 4 partitions: {ms}")
        produced = produce(b, topic, values(topic, range(4), 10))
        await until(lambda: sum(len(m.msgs) for m in ms) >= 40, 30, f"40 records: {ms}")
        for m in ms:
            assert {r.partition for r in m.msgs} == {p for _, p in m.assigned()}, m
        groups.check_contiguous([(r.partition, r.offset, r.value) for m in ms for r in m.msgs], produced)
        for m in ms:
            await m.c.commit()  # the consumed positions
            for _, p in m.assigned():
                assert await m.c.committed(TopicPartition(topic, p)) == 10
    finally:
        for m in ms:
            await m.stop()


@pytest.mark.parametrize("strategy", ["range", "roundrobin"])
async def test_aiokafka_group_assignor(group_broker, topic, strategy):
    b = group_broker.bootstrap
    topics = {f"{topic}-a": 3, f"{topic}-b": 3}
    create_topics(b, topics)
    assignor = RangePartitionAssignor if strategy == "range" else RoundRobinPartitionAssignor
    fn = expected_range if strategy == "range" else expected_roundrobin
    ms = [Member(make(b, f"g-{topic}", partition_assignment_strategy=(assignor,)), f"aio{i}")
          for i in range(3)]
    all_tps = [(t, p) for t, n in topics.items() for p in range(n)]
    try:
        for m in ms:
            await m.start(sorted(topics))

        def ok():
            ids = [m.member_id() for m in ms]
            a = {m.member_id(): m.assigned() for m in ms}
            return (all(ids) and len({m.generation() for m in ms}) == 1
                    and is_disjoint_cover(a, all_tps) and a == fn(ids, topics))

        try:
            await until(ok, 45, f"{strategy} assignment")
        except AssertionError as e:
            raise AssertionError(f"{e}: {ms}; expected {fn([m.member_id() for m in ms], topics)}") from None
    finally:
        for m in ms:
            await m.stop()


@pytest.mark.parametrize("storage", ["embedded", "postgres"])
async def test_aiokafka_group_resume_from_commit(group_broker_factory, topic, storage):
    br = group_broker_factory(storage=storage)
    create_topics(br.bootstrap, {topic: 2})
    group = f"g-{topic}"
    produced = produce(br.bootstrap, topic, values(topic, range(2), 6))
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    m = Member(make(br.bootstrap, group), "aio")
    try:
        await m.start([topic])
        await until(lambda: len(m.msgs) >= 12, 45, f"12 records: {m}")
        await m.c.commit({tp0: OffsetAndMetadata(2, "aio-meta"), tp1: OffsetAndMetadata(5, "")})
        assert await m.c.committed(tp0) == 2
    finally:
        await m.stop()
    br.restart()
    m = Member(make(br.bootstrap, group), "aio2")
    try:
        await m.start([topic])
        await until(lambda: len(m.msgs) >= 5, 45, f"5 records after restart: {m}")
        await asyncio.sleep(0.5)  # nothing older than the commits may arrive
        got = sorted((r.partition, r.offset, r.value) for r in m.msgs)
        assert got == sorted([(0, o, v) for o, v in produced[0][2:]] + [(1, o, v) for o, v in produced[1][5:]])
    finally:
        await m.stop()
    ad = AIOKafkaAdminClient(bootstrap_servers=br.bootstrap)
    await ad.start()
    try:
        offs = await ad.list_consumer_group_offsets(group)
        assert {tp.partition: (om.offset, om.metadata) for tp, om in offs.items()} == \
            {0: (2, "aio-meta"), 1: (5, "")}
    finally:
        await ad.close()


async def test_aiokafka_group_seek(group_broker, topic):
    b = group_broker.bootstrap
    create_topics(b, {topic: 1})
    base = helpers.now_ms() - 600_000
    produce(b, topic, {0: [f"v{i}".encode() for i in range(20)]},
            timestamps={0: [base + i * 1000 for i in range(20)]})
    tp = TopicPartition(topic, 0)
    c = make(b, f"g-{topic}")
    await c.start()
    try:
        c.subscribe([topic])
        r = await asyncio.wait_for(c.getone(), 30)
        assert (r.offset, r.value) == (0, b"v0")
        c.seek(tp, 7)
        assert (await asyncio.wait_for(c.getone(), 15)).offset == 7
        await c.seek_to_beginning(tp)
        assert (await asyncio.wait_for(c.getone(), 15)).offset == 0
        ts = (await c.offsets_for_times({tp: base + 12_000 - 500}))[tp]
        assert (ts.offset, ts.timestamp) == (12, base + 12_000)
        c.seek(tp, ts.offset)
        r = await asyncio.wait_for(c.getone(), 15)
        assert (r.offset, r.value, r.timestamp) == (12, b"v12", base + 12_000)
        await c.seek_to_end(tp)
        assert await c.position(tp) == 20
        assert await c.getmany(timeout_ms=500) == {}
        produce(b, topic, {0: [b"after-end"]})
        r = await asyncio.wait_for(c.getone(), 15)
        assert (r.offset, r.value) == (20, b"after-end")
        await c.commit()
        assert await c.committed(tp) == 21
    finally:
        await c.stop()


async def test_aiokafka_group_admin(group_broker, topic):
    b = group_broker.bootstrap
    create_topics(b, {topic: 2})
    produce(b, topic, values(topic, range(2), 3))
    group = f"g-{topic}"
    m = Member(make(b, group, client_id="aio-admin"), "aio")
    ad = AIOKafkaAdminClient(bootstrap_servers=b, request_timeout_ms=20000)
    await ad.start()
    try:
        await m.start([topic])
        await until(lambda: len(m.msgs) >= 6, 45, f"6 records: {m}")
        await m.c.commit()
        listed = await ad.list_consumer_groups()
        assert (group, "consumer") in [tuple(g[:2]) for g in listed], listed
        [resp] = await ad.describe_consumer_groups([group])
        [g] = resp.groups
        # (error_code, group_id, state, protocol_type, protocol, members, ...)
        assert (g[0], g[1], g[2], g[3], g[4]) == (0, group, "Stable", "consumer", "roundrobin"), g  # aiokafka default
        [mem] = g[5]
        # (member_id, [group_instance_id (v4+),] client_id, client_host, metadata, assignment)
        assert mem[0] == m.member_id() and "aio-admin" in mem[1:3], mem
        offs = await ad.list_consumer_group_offsets(group)
        assert {tp.partition: om.offset for tp, om in offs.items()} == {0: 3, 1: 3}
        ends = await m.c.end_offsets([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        assert {tp.partition: ends[tp] - offs[tp].offset for tp in offs} == {0: 0, 1: 0}
    finally:
        await m.stop()
        await ad.close()
