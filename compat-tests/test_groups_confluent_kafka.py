"""Consumer groups with confluent-kafka 2.16.1 (bundled librdkafka 2.16), classic
protocol with client-side assignors.  Members that must be closed or killed run
in their own processes (group_member.py); the others are in-process Consumers
polled from the test thread.

TODO(KIP-848): only the classic protocol is tested here; `group.protocol=consumer`
(ConsumerGroupHeartbeat) with librdkafka is in test_groups_kip848.py.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING, OFFSET_END, Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions,
    KafkaError, KafkaException, TopicPartition,
)
from confluent_kafka.admin import AdminClient

import groups
import helpers
from groups import (
    MemberProc, create_topics, describe_members, expected_range, expected_roundrobin,
    is_disjoint_cover, produce, stop_all, values,
)


def wait_members(members, predicate, timeout, what):
    try:
        return helpers.wait_until(predicate, timeout=timeout, interval=0.1, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{describe_members(members)}") from None


def consumer(bootstrap, group, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    }
    conf.update(extra)
    return Consumer(conf)


class Tracked:
    """An in-process Consumer that records its rebalance callbacks."""

    def __init__(self, name, c: Consumer, topics):
        self.name, self.c = name, c
        self.assigned: list | None = None
        self.assigns = 0
        self.revokes = 0
        self.msgs = []
        c.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, c, parts):
        self.assigns += 1
        self.assigned = sorted((p.topic, p.partition) for p in parts)

    def _on_revoke(self, c, parts):
        self.revokes += 1
        self.assigned = []

    def poll(self, timeout=0.05):
        m = self.c.poll(timeout)
        if m is not None and not m.error():
            self.msgs.append(m)
        elif m is not None:
            raise AssertionError(f"{self.name}: consume error {m.error()}")
        return m

    def __repr__(self):
        return (f"<{self.name} member={self.c.memberid()!r} assigned={self.assigned} "
                f"assigns={self.assigns} revokes={self.revokes} msgs={len(self.msgs)}>")


def poll_until(tracked, predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t in tracked:
            t.poll(0.02)
        if predicate():
            return
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {tracked}")


def close_all(tracked):
    for t in tracked:
        try:
            t.c.close()
        except Exception:  # noqa: BLE001
            pass


_ADMINS: dict[str, AdminClient] = {}


def admin(bootstrap):
    # Keep the client alive: a destroyed AdminClient never completes its futures.
    if bootstrap not in _ADMINS:
        _ADMINS[bootstrap] = AdminClient({"bootstrap.servers": bootstrap})
    return _ADMINS[bootstrap]


def describe_group(bootstrap, group):
    [f] = admin(bootstrap).describe_consumer_groups([group], request_timeout=15).values()
    return f.result(timeout=30)


def group_offsets(bootstrap, group) -> dict:
    futs = admin(bootstrap).list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)], request_timeout=15)
    [f] = futs.values()
    res = f.result(timeout=30)
    return {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions}


# ---------------------------------------------------------------------------- 1
def test_ck_group_three_members_share_partitions(group_broker, topic):
    b = group_broker.bootstrap
    create_topics(b, {topic: 6})
    group = f"g-{topic}"
    all_tps = [(topic, p) for p in range(6)]
    members = [MemberProc("confluent", b, group, [topic], f"m{i}") for i in range(3)]
    try:
        def stable():
            a = {m.name: m.assignment() for m in members}
            return (all(a.values()) and is_disjoint_cover(a, all_tps)
                    and sorted(len(v) for v in a.values()) == [2, 2, 2])

        wait_members(members, stable, 45, "3 members with 2 disjoint partitions each")
        produced = produce(b, topic, values(topic, range(6), 10))

        def all_consumed():
            return len({(p, o) for m in members for p, o, _ in m.consumed()}) >= 60

        wait_members(members, all_consumed, 30, "all 60 records consumed")
        for m in members:
            mine = {p for _, p in m.assignment()}
            got = {p for p, _, _ in m.consumed()}
            assert got <= mine, f"{m.name} consumed partitions {got} but owns {mine}"
            assert len(got) == 2, f"{m.name} consumed from {got}, expected its 2 partitions"
        groups.check_contiguous([r for m in members for r in m.consumed()], produced)

        def committed_all():
            return groups.merged_commits(members) == {tp: 10 for tp in all_tps}

        wait_members(members, committed_all, 20, "every member committed offset 10")
        assert group_offsets(b, group) == {tp: 10 for tp in all_tps}
        d = describe_group(b, group)
        assert d.state == ConsumerGroupState.STABLE, d
        assert len(d.members) == 3, d.members
        assert sorted(m.member_id for m in d.members) == sorted(m.member_id() for m in members)
    finally:
        for m in members:
            m.close()
        stop_all(members)
    helpers.wait_until(lambda: describe_group(b, group).state == ConsumerGroupState.EMPTY,
                       timeout=15, what="group Empty after all members closed")


# ---------------------------------------------------------------------------- 2
def test_ck_group_member_leaves_and_member_dies(group_broker, topic):
    """Four members; one close()s (LeaveGroup), one is killed with SIGKILL (its
    session expires after 6 s).  The two survivors must end up with all six
    partitions and everything produced must be consumed, without gaps."""
    b = group_broker.bootstrap
    create_topics(b, {topic: 6})
    group = f"g-{topic}"
    all_tps = [(topic, p) for p in range(6)]
    conf = {"max.poll.interval.ms": 15000}
    members = [MemberProc("confluent", b, group, [topic], f"m{i}", conf) for i in range(4)]
    leaver, victim, survivors = members[0], members[1], members[2:]
    try:
        wait_members(members, lambda: all(m.assignment() for m in members) and is_disjoint_cover(
            {m.name: m.assignment() for m in members}, all_tps), 45, "4 members sharing 6 partitions")
        produced = produce(b, topic, values(topic, range(6), 5, "a"))

        def committed_up_to(n):
            def check():
                c = groups.merged_commits(members)
                return all(c.get(tp, 0) >= n for tp in all_tps)
            return check

        wait_members(members, committed_up_to(5), 30, "first 30 records consumed and committed")
        victim_parts = victim.assignment()
        leaver.close()
        victim.kill()
        t_kill = time.monotonic()
        for p, recs in produce(b, topic, values(topic, range(6), 5, "b")).items():
            produced[p] += recs

        def survivors_own_all():
            a = {m.name: m.assignment() for m in survivors}
            return all(a.values()) and is_disjoint_cover(a, all_tps)

        wait_members(members, survivors_own_all, 40, "the 2 survivors owning all 6 partitions")
        took = time.monotonic() - t_kill
        for p, recs in produce(b, topic, values(topic, range(6), 5, "c")).items():
            produced[p] += recs

        def everything():
            got = {(p, o) for m in members for p, o, _ in m.consumed()}
            return all((p, o) in got for p, recs in produced.items() for o, _ in recs)

        wait_members(members, everything, 30, "all 90 records consumed")
        groups.check_contiguous([r for m in members for r in m.consumed()], produced)
        # the dead member's partitions were taken over from its commits, not from 0
        for _, p in victim_parts:
            after = [e["o"] for m in survivors for e in m.evs("msg") if e["p"] == p and e["_t"] > t_kill]
            assert after and min(after) == 5, (
                f"p{p} was taken over from offset {min(after, default=None)}, "
                f"the dead member had committed 5")
        wait_members(members, committed_up_to(15), 20, "survivors committed offset 15 everywhere")
        assert group_offsets(b, group) == {tp: 15 for tp in all_tps}
        d = describe_group(b, group)
        assert sorted(m.member_id for m in d.members) == sorted(m.member_id() for m in survivors), (
            d.members, took)
    finally:
        for m in survivors:
            m.close()
        stop_all(members)


# ---------------------------------------------------------------------------- 3
@pytest.mark.parametrize("strategy", ["range", "roundrobin"])
@pytest.mark.parametrize("n", [2, 3])
def test_ck_group_assignor(group_broker, topic, strategy, n):
    b = group_broker.bootstrap
    topics = {f"{topic}-a": 3, f"{topic}-b": 3}
    create_topics(b, topics)
    group = f"g-{topic}"
    tracked = [Tracked(f"c{i}", consumer(b, group, **{"partition.assignment.strategy": strategy,
                                                       "client.id": f"c{i}"}), sorted(topics))
               for i in range(n)]
    all_tps = [(t, p) for t, k in topics.items() for p in range(k)]
    expect = {}
    try:
        def matches():
            ids = [t.c.memberid() for t in tracked]
            if not all(ids) or any(t.assigned is None for t in tracked):
                return False
            a = {t.c.memberid(): t.assigned for t in tracked}
            if not is_disjoint_cover(a, all_tps):
                return False
            fn = expected_range if strategy == "range" else expected_roundrobin
            expect.clear()
            expect.update(fn(ids, topics))
            return a == expect

        poll_until(tracked, matches, 45,
                   f"{strategy} assignment over {n} members (expected {expect})")
        d = describe_group(b, group)
        assert d.partition_assignor == strategy, d
        assert d.state == ConsumerGroupState.STABLE
        for m in d.members:
            assert sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions) \
                == expect[m.member_id], m
    finally:
        close_all(tracked)


# ---------------------------------------------------------------------------- 4
@pytest.mark.parametrize("restarted", ["leader", "follower"])
def test_ck_group_static_membership_rejoin(group_broker, topic, restarted):
    """KIP-345: a static member (group.instance.id) that is restarted within
    session.timeout.ms gets its partitions back; the other member is not
    revoked and its assignment does not change.  The member that joins first
    alone is the group leader; `restarted` says which one is restarted."""
    b = group_broker.bootstrap
    create_topics(b, {topic: 6})
    group = f"g-{topic}"
    all_tps = [(topic, p) for p in range(6)]

    def static(name):
        return Tracked(name, consumer(b, group, **{"group.instance.id": f"static-{name}",
                                                   "client.id": name,
                                                   "session.timeout.ms": 15000}), [topic])

    first = static("a" if restarted == "leader" else "b")
    poll_until([first], lambda: first.assigned and len(first.assigned) == 6, 45,
               "the first member alone owning all 6 partitions")
    second = static("b" if restarted == "leader" else "a")
    a, other = (first, second) if restarted == "leader" else (second, first)
    a2 = None
    try:
        poll_until([a, other], lambda: a.assigned and other.assigned and is_disjoint_cover(
            {"a": a.assigned, "b": other.assigned}, all_tps), 45, "two static members sharing 6 partitions")
        a_parts, b_parts = a.assigned, other.assigned
        b_revokes, b_assigns = other.revokes, other.assigns
        a.c.close()  # a static member does not send LeaveGroup
        a2 = static("a")
        poll_until([a2, other], lambda: a2.assigned, 14, "restarted static member assigned")
        assert a2.assigned == a_parts, f"restarted member got {a2.assigned}, had {a_parts}"
        # observe the other member for a while: no revoke, no new assignment
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            for t in (a2, other):
                t.poll(0.05)
        assert (other.revokes, other.assigns, other.assigned) == (b_revokes, b_assigns, b_parts), other
        assert a2.assigned == a_parts
        # and both still consume their own partitions
        produced = produce(b, topic, values(topic, range(6), 2))
        poll_until([a2, other], lambda: len(a2.msgs) + len(other.msgs) >= 12, 20, "12 records")
        assert {(m.topic(), m.partition()) for m in a2.msgs} == set(a_parts)
        assert {(m.topic(), m.partition()) for m in other.msgs} == set(b_parts)
        assert sum(len(v) for v in produced.values()) == 12
    finally:
        close_all([t for t in (other, a2) if t is not None])


# ---------------------------------------------------------------------------- 5
@pytest.mark.parametrize("storage", ["embedded", "postgres"])
def test_ck_group_commits_survive_restart(group_broker_factory, topic, storage):
    br = group_broker_factory(storage=storage)
    create_topics(br.bootstrap, {topic: 3})
    group = f"g-{topic}"
    produced = produce(br.bootstrap, topic, values(topic, range(3), 10))
    t = Tracked("c", consumer(br.bootstrap, group), [topic])
    commit = {0: 4, 1: 7, 2: 10}
    try:
        poll_until([t], lambda: len(t.msgs) >= 30, 45, "30 records consumed")
        t.c.commit(offsets=[TopicPartition(topic, p, o, f"meta-{p}-\u00e9") for p, o in commit.items()],
                   asynchronous=False)
        got = t.c.committed([TopicPartition(topic, p) for p in range(3)], timeout=15)
        assert [(x.partition, x.offset, x.metadata) for x in got] == \
            [(p, o, f"meta-{p}-\u00e9") for p, o in commit.items()]
    finally:
        t.c.close()
    br.restart()
    b = br.bootstrap
    t2 = Tracked("c2", consumer(b, group), [topic])
    try:
        got = t2.c.committed([TopicPartition(topic, p) for p in range(3)], timeout=20)
        assert [(x.partition, x.offset, x.metadata, x.error) for x in got] == \
            [(p, o, f"meta-{p}-\u00e9", None) for p, o in commit.items()]
        want = {(p, o) for p, recs in produced.items() for o, _ in recs if o >= commit[p]}
        poll_until([t2], lambda: len(t2.msgs) >= len(want), 45, f"{len(want)} records after restart")
        # a short extra poll: nothing older than the commits may show up
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            t2.poll(0.1)
        got_msgs = sorted((m.partition(), m.offset(), m.value()) for m in t2.msgs)
        expected = sorted((p, o, v) for p, recs in produced.items() for o, v in recs if o >= commit[p])
        assert got_msgs == expected
    finally:
        t2.c.close()
    assert group_offsets(b, group) == {(topic, p): o for p, o in commit.items()}


# ---------------------------------------------------------------------------- 6
def next_msg(t: Tracked, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = t.c.poll(0.1)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise AssertionError(f"consume error {m.error()}")
        return m
    raise AssertionError(f"no message within {timeout}s: {t}")


def test_ck_group_seek(group_broker, topic):
    b = group_broker.bootstrap
    create_topics(b, {topic: 1})
    base = helpers.now_ms() - 600_000
    produce(b, topic, {0: [f"v{i}".encode() for i in range(20)]},
            timestamps={0: [base + i * 1000 for i in range(20)]})
    t = Tracked("c", consumer(b, f"g-{topic}"), [topic])
    tp0 = TopicPartition(topic, 0)
    try:
        m = next_msg(t)
        assert (m.offset(), m.value()) == (0, b"v0")
        assert t.assigned == [(topic, 0)]
        t.c.seek(TopicPartition(topic, 0, 7))
        m = next_msg(t)
        assert (m.offset(), m.value()) == (7, b"v7")
        t.c.seek(TopicPartition(topic, 0, OFFSET_BEGINNING))
        m = next_msg(t)
        assert (m.offset(), m.value()) == (0, b"v0")
        [ts] = t.c.offsets_for_times([TopicPartition(topic, 0, base + 12_000 - 500)], timeout=15)
        assert ts.offset == 12, ts
        t.c.seek(ts)
        m = next_msg(t)
        assert (m.offset(), m.value(), m.timestamp()[1]) == (12, b"v12", base + 12_000)
        t.c.seek(TopicPartition(topic, 0, OFFSET_END))
        # nothing is left after the end; a new record is the next one read
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            m = t.c.poll(0.1)
            assert m is None or m.error(), f"read offset {m.offset()} after seeking to the end"
        produce(b, topic, {0: [b"after-end"]})
        m = next_msg(t)
        assert (m.offset(), m.value()) == (20, b"after-end")
        assert t.c.position([tp0])[0].offset == 21
    finally:
        t.c.close()


# ---------------------------------------------------------------------------- 7
def test_ck_group_admin(group_broker, topic):
    b = group_broker.bootstrap
    create_topics(b, {topic: 4})
    produced = produce(b, topic, values(topic, range(4), 10))
    group, other_group = f"g-{topic}", f"g2-{topic}"
    ad = admin(b)
    tracked = [Tracked(f"c{i}", consumer(b, group, **{"client.id": f"admin-c{i}"}), [topic])
               for i in range(2)]
    try:
        poll_until(tracked, lambda: len({(m.partition(), m.offset()) for t in tracked for m in t.msgs}) >= 40
                   and all(t.assigned for t in tracked), 45, "2 members consuming 40 records")
        commits = {0: 10, 1: 5, 2: 0, 3: 3}
        for t in tracked:
            mine = [TopicPartition(topic, p, commits[p], "m") for _, p in t.assigned]
            t.c.commit(offsets=mine, asynchronous=False)

        # list with a state filter (ListGroups v4)
        res = ad.list_consumer_groups(states={ConsumerGroupState.STABLE}, request_timeout=15).result(30)
        assert not res.errors, res.errors
        stable = {g.group_id: g for g in res.valid}
        assert group in stable and stable[group].state == ConsumerGroupState.STABLE, res.valid
        assert not stable[group].is_simple_consumer_group
        res = ad.list_consumer_groups(states={ConsumerGroupState.EMPTY}, request_timeout=15).result(30)
        assert group not in {g.group_id for g in res.valid}

        d = describe_group(b, group)
        assert (d.group_id, d.state, d.partition_assignor, d.is_simple_consumer_group) == \
            (group, ConsumerGroupState.STABLE, "range", False), d
        assert sorted(m.client_id for m in d.members) == ["admin-c0", "admin-c1"]
        assert sorted(m.member_id for m in d.members) == sorted(t.c.memberid() for t in tracked)
        by_member = {m.member_id: sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions)
                     for m in d.members}
        assert by_member == {t.c.memberid(): t.assigned for t in tracked}
        assert d.coordinator is not None and d.coordinator.port == int(b.rsplit(":", 1)[1])

        assert group_offsets(b, group) == {(topic, p): o for p, o in commits.items()}
        # lag = end offset - committed offset
        ends = groups.end_offsets(b, topic, range(4))
        lag = {p: ends[p] - commits[p] for p in range(4)}
        assert lag == {0: 0, 1: 5, 2: 10, 3: 7}
        assert ends == {p: len(produced[p]) for p in range(4)}

        # a group with members cannot be deleted
        [f] = ad.delete_consumer_groups([group], request_timeout=15).values()
        with pytest.raises(KafkaException) as ei:
            f.result(30)
        assert ei.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, ei.value

        # an unknown group: describe says Dead, delete says GROUP_ID_NOT_FOUND
        d = describe_group(b, other_group)
        assert d.state == ConsumerGroupState.DEAD and not d.members, d
        [f] = ad.delete_consumer_groups([other_group], request_timeout=15).values()
        with pytest.raises(KafkaException) as ei:
            f.result(30)
        assert ei.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, ei.value
    finally:
        close_all(tracked)

    helpers.wait_until(lambda: describe_group(b, group).state == ConsumerGroupState.EMPTY,
                       timeout=15, what="group Empty after close")
    res = ad.list_consumer_groups(states={ConsumerGroupState.EMPTY}, request_timeout=15).result(30)
    assert group in {g.group_id for g in res.valid}

    # alter offsets of the empty group (OffsetCommit with generation -1)
    [f] = ad.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, 0, 2)])], request_timeout=15).values()
    f.result(30)
    assert group_offsets(b, group)[(topic, 0)] == 2

    [f] = ad.delete_consumer_groups([group], request_timeout=15).values()
    f.result(30)
    res = ad.list_consumer_groups(request_timeout=15).result(30)
    assert group not in {g.group_id for g in res.valid}
    # deleting the group deleted its offsets
    assert all(o < 0 for o in group_offsets(b, group).values())
