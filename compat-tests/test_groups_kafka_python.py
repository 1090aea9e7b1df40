"""Consumer groups with kafka-python 3.0.12 (classic protocol, client-side
assignors).  Members that are closed or killed run in subprocesses
(group_member.py); the assignor tests run one KafkaConsumer per thread.

TODO(KIP-848): kafka-python 3.0.12 does not implement `group.protocol=consumer`;
it is tested with librdkafka in test_groups_kip848.py.
"""

from __future__ import annotations

import threading
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.errors import GroupSubscribedToTopicError, NoError
from kafka.structs import OffsetAndMetadata

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


def kp_consumer(bootstrap, group, **extra):
    conf = dict(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=500,
                request_timeout_ms=20000)
    conf.update(extra)
    return KafkaConsumer(**conf)


class ThreadMember(threading.Thread):
    """A KafkaConsumer polled in its own thread; the test reads its state."""

    def __init__(self, name, bootstrap, group, topics, **conf):
        super().__init__(daemon=True, name=name)
        self.c = kp_consumer(bootstrap, group, client_id=name, **conf)
        self.topics = topics
        self.stop_flag = threading.Event()
        self.assigned = None
        self.member_id = None
        self.generation = None
        self.msgs = []
        self.error = None
        self._commit = None
        self._committed = threading.Event()

    def commit(self, offsets, timeout=20):
        """Have the polling thread commit {TopicPartition: OffsetAndMetadata}."""
        self._committed.clear()
        self._commit = offsets
        assert self._committed.wait(timeout), f"commit not done within {timeout}s: {self}"
        assert self.error is None, self.error

    def run(self):
        try:
            self.c.subscribe(self.topics)
            while not self.stop_flag.is_set():
                for recs in self.c.poll(timeout_ms=100).values():
                    self.msgs.extend(recs)
                gm = self.c.group_metadata()
                self.member_id, self.generation = gm.member_id, gm.generation_id
                self.assigned = sorted((tp.topic, tp.partition) for tp in self.c.assignment())
                if self._commit is not None:
                    offsets, self._commit = self._commit, None
                    try:
                        self.c.commit(offsets)
                    finally:
                        self._committed.set()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.c.close()

    def stop(self):
        self.stop_flag.set()
        self.join(timeout=30)

    def __repr__(self):
        return (f"<{self.name} member={self.member_id} gen={self.generation} "
                f"assigned={self.assigned} msgs={len(self.msgs)} error={self.error!r}>")


def admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)


# ---------------------------------------------------------------------------- 1 + 2
def test_kp_group_three_members_then_leave_and_kill(group_broker, topic):
    """Three kafka-python members share 6 partitions and commit; then one
    close()s and one is killed -9: the survivor owns all 6 partitions and
    every record is consumed with no gaps."""
    b = group_broker.bootstrap
    create_topics(b, {topic: 6})
    group = f"g-{topic}"
    all_tps = [(topic, p) for p in range(6)]
    conf = {"max_poll_interval_ms": 15000}
    members = [MemberProc("kafka-python", b, group, [topic], f"kp{i}", conf) for i in range(3)]
    try:
        def stable():
            a = {m.name: m.assignment() for m in members}
            return (all(a.values()) and is_disjoint_cover(a, all_tps)
                    and sorted(len(v) for v in a.values()) == [2, 2, 2])

        wait_members(members, stable, 45, "3 members with 2 disjoint partitions each")
        produced = produce(b, topic, values(topic, range(6), 10, "a"))
        wait_members(members, lambda: groups.merged_commits(members) == {tp: 10 for tp in all_tps},
                     30, "60 records consumed and committed")
        for m in members:
            assert {p for p, _, _ in m.consumed()} == {p for _, p in m.assignment()}, m.describe()
        groups.check_contiguous([r for m in members for r in m.consumed()], produced)
        off = admin(b).list_group_offsets(group)[group]
        assert {(tp.topic, tp.partition): om.offset for tp, om in off.items()} == \
            {tp: 10 for tp in all_tps}

        leaver, victim, survivor = members
        leaver.close()
        victim.kill()
        for p, recs in produce(b, topic, values(topic, range(6), 5, "b")).items():
            produced[p] += recs
        wait_members(members, lambda: survivor.assignment() == sorted(all_tps), 40,
                     "the survivor owning all 6 partitions")
        for p, recs in produce(b, topic, values(topic, range(6), 5, "c")).items():
            produced[p] += recs
        wait_members(members, lambda: groups.merged_commits(members) == {tp: 20 for tp in all_tps},
                     30, "all 120 records consumed and committed")
        groups.check_contiguous([r for m in members for r in m.consumed()], produced)
    finally:
        for m in members:
            m.close()
        stop_all(members)


# ---------------------------------------------------------------------------- 3
@pytest.mark.parametrize("strategy", ["range", "roundrobin"])
@pytest.mark.parametrize("n", [2, 3])
def test_kp_group_assignor(group_broker, topic, strategy, n):
    b = group_broker.bootstrap
    topics = {f"{topic}-a": 3, f"{topic}-b": 3}
    create_topics(b, topics)
    group = f"g-{topic}"
    assignor = RangePartitionAssignor if strategy == "range" else RoundRobinPartitionAssignor
    ms = [ThreadMember(f"kp{i}", b, group, sorted(topics), partition_assignment_strategy=[assignor])
          for i in range(n)]
    for m in ms:
        m.start()
    all_tps = [(t, p) for t, k in topics.items() for p in range(k)]
    fn = expected_range if strategy == "range" else expected_roundrobin
    try:
        def matches():
            if any(m.error for m in ms):
                raise AssertionError(ms)
            ids = [m.member_id for m in ms]
            if not all(ids) or len({m.generation for m in ms}) != 1:
                return False
            a = {m.member_id: m.assigned for m in ms}
            return is_disjoint_cover(a, all_tps) and a == fn(ids, topics)

        try:
            helpers.wait_until(matches, timeout=45, what=f"{strategy} assignment over {n} members")
        except AssertionError as e:
            ids = [m.member_id for m in ms if m.member_id]
            raise AssertionError(f"{e}\nmembers: {ms}\nexpected: {fn(ids, topics) if ids else None}") from None
        d = admin(b).describe_groups([group])[group]
        assert (d["group_state"], d["protocol_type"], d["protocol_data"]) == ("Stable", "consumer", strategy), d
        want = fn([m.member_id for m in ms], topics)
        for mem in d["members"]:
            got = sorted((a["topic"], p) for a in mem["member_assignment"]["assigned_partitions"]
                         for p in a["partitions"])
            assert got == want[mem["member_id"]], mem
            assert sorted(mem["member_metadata"]["topics"]) == sorted(topics)
    finally:
        for m in ms:
            m.stop()


# ---------------------------------------------------------------------------- 4
@pytest.mark.parametrize("restarted", ["leader", "follower"])
def test_kp_group_static_member_rejoin(group_broker, topic, restarted):
    """KIP-345 with kafka-python: a static member restarted quickly gets the same
    partitions and the other member's generation/assignment does not change.
    The member that joins first alone is the leader; `restarted` says which
    one is restarted."""
    b = group_broker.bootstrap
    create_topics(b, {topic: 4})
    group = f"g-{topic}"
    all_tps = [(topic, p) for p in range(4)]
    other = ThreadMember("kp-b", b, group, [topic], group_instance_id="static-b", session_timeout_ms=15000)
    a = ThreadMember("kp-a", b, group, [topic], group_instance_id="static-a", session_timeout_ms=15000)
    first, second = (a, other) if restarted == "leader" else (other, a)
    first.start()
    helpers.wait_until(lambda: first.assigned and len(first.assigned) == 4, 45,
                       what=f"the first member alone owning all 4 partitions: {first}")
    second.start()
    a2 = None
    try:
        helpers.wait_until(lambda: a.assigned and other.assigned and is_disjoint_cover(
            {1: a.assigned, 2: other.assigned}, all_tps), 45, what=f"two static members: {a} {other}")
        a_parts, b_parts, b_gen = a.assigned, other.assigned, other.generation
        a.stop()  # static members do not send LeaveGroup on close
        a2 = ThreadMember("kp-a2", b, group, [topic], group_instance_id="static-a", session_timeout_ms=15000)
        a2.start()
        helpers.wait_until(lambda: a2.assigned, 14, what=f"restarted static member assigned: {a2}")
        assert a2.assigned == a_parts, (a2, a_parts)
        time.sleep(2)  # observation window: the other member must not rebalance
        assert (other.generation, other.assigned) == (b_gen, b_parts), (other, a2)
        assert (a2.generation, a2.assigned) == (b_gen, a_parts), (other, a2)
    finally:
        for m in (other, a2):
            if m is not None:
                m.stop()


# ---------------------------------------------------------------------------- 5
@pytest.mark.parametrize("storage", ["embedded", "postgres"])
def test_kp_group_commit_metadata_survives_restart(group_broker_factory, topic, storage):
    br = group_broker_factory(storage=storage)
    create_topics(br.bootstrap, {topic: 2})
    group = f"g-{topic}"
    produced = produce(br.bootstrap, topic, values(topic, range(2), 8))
    c = kp_consumer(br.bootstrap, group)
    tps = [TopicPartition(topic, p) for p in range(2)]
    commit = {tps[0]: OffsetAndMetadata(3, "kp-meta-0", -1), tps[1]: OffsetAndMetadata(8, "", -1)}
    try:
        c.subscribe([topic])
        got = []
        deadline = time.monotonic() + 45
        while len(got) < 16 and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=200).values():
                got.extend(recs)
        assert len(got) == 16, got
        c.commit(commit)
        assert c.committed(tps[0], metadata=True) == OffsetAndMetadata(3, "kp-meta-0", -1)
    finally:
        c.close()
    br.restart()
    c = kp_consumer(br.bootstrap, group)
    try:
        assert c.committed(tps[0], metadata=True) == OffsetAndMetadata(3, "kp-meta-0", -1)
        assert c.committed(tps[1], metadata=True).offset == 8
        c.subscribe([topic])
        got = []
        deadline = time.monotonic() + 45
        while len(got) < 5 and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=200).values():
                got.extend(recs)
        assert sorted((r.partition, r.offset, r.value) for r in got) == \
            [(0, o, v) for o, v in produced[0][3:]]
    finally:
        c.close()
    ad = admin(br.bootstrap)
    [g] = [g for g in ad.list_groups() if g["group_id"] == group]
    assert g["group_state"] == "Empty" and g["protocol_type"] == "consumer", g


# ---------------------------------------------------------------------------- 6
def test_kp_group_seek(group_broker, topic):
    b = group_broker.bootstrap
    create_topics(b, {topic: 1})
    base = helpers.now_ms() - 600_000
    produce(b, topic, {0: [f"v{i}".encode() for i in range(20)]},
            timestamps={0: [base + i * 1000 for i in range(20)]})
    tp = TopicPartition(topic, 0)
    c = kp_consumer(b, f"g-{topic}", max_poll_records=1)

    def next_rec(timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=100, max_records=1).values():
                return recs[0]
        raise AssertionError(f"no record within {timeout}s (assignment {c.assignment()})")

    try:
        c.subscribe([topic])
        r = next_rec()
        assert (r.offset, r.value) == (0, b"v0")
        c.seek(tp, 7)
        assert (next_rec().offset, c.position(tp)) == (7, 8)
        c.seek_to_beginning(tp)
        assert next_rec().offset == 0
        ts = c.offsets_for_times({tp: base + 12_000 - 500})[tp]
        assert (ts.offset, ts.timestamp) == (12, base + 12_000)
        c.seek(tp, ts.offset)
        r = next_rec()
        assert (r.offset, r.value, r.timestamp) == (12, b"v12", base + 12_000)
        c.seek_to_end(tp)
        assert c.position(tp) == 20
        assert c.poll(timeout_ms=500) == {}
        produce(b, topic, {0: [b"after-end"]})
        r = next_rec()
        assert (r.offset, r.value) == (20, b"after-end")
        c.commit()
        assert c.committed(tp) == 21
    finally:
        c.close()


# ---------------------------------------------------------------------------- 7
def test_kp_group_admin(group_broker, topic):
    b = group_broker.bootstrap
    create_topics(b, {topic: 3})
    produce(b, topic, values(topic, range(3), 6))
    group = f"g-{topic}"
    ad = admin(b)
    m = ThreadMember("kp-admin", b, group, [topic])
    m.start()
    try:
        helpers.wait_until(lambda: len(m.msgs) >= 18, 45, what=f"18 records: {m}")
        m.commit({TopicPartition(topic, 0): OffsetAndMetadata(6, "x", -1),
                  TopicPartition(topic, 1): OffsetAndMetadata(2, "", -1)})

        assert group in {g["group_id"] for g in ad.list_groups(states_filter=["Stable"])}
        assert group not in {g["group_id"] for g in ad.list_groups(states_filter=["Empty"])}
        d = ad.describe_groups([group])[group]
        assert d["error"] is None and d["group_state"] == "Stable", d
        [mem] = d["members"]
        assert (mem["member_id"], mem["client_id"]) == (m.member_id, "kp-admin"), mem
        assert mem["member_assignment"]["assigned_partitions"] == [{"topic": topic, "partitions": [0, 1, 2]}]

        off = ad.list_group_offsets(group)[group]
        assert {tp.partition: (om.offset, om.metadata) for tp, om in off.items()} == \
            {0: (6, "x"), 1: (2, "")}
        # lag = end offset - committed offset
        ends = groups.end_offsets(b, topic, range(3))
        assert {tp.partition: ends[tp.partition] - om.offset for tp, om in off.items()} == {0: 0, 1: 4}

        assert ad.delete_groups([group]) == {group: "NonEmptyGroupError"}
        res = ad.delete_group_offsets(group, [TopicPartition(topic, 0)])
        assert res == {TopicPartition(topic, 0): GroupSubscribedToTopicError}, res
    finally:
        m.stop()

    helpers.wait_until(lambda: group in {g["group_id"] for g in ad.list_groups(states_filter=["Empty"])},
                       15, what="group Empty after the member left")
    res = ad.delete_group_offsets(group, [TopicPartition(topic, 0)])
    assert res == {TopicPartition(topic, 0): NoError}, res
    off = ad.list_group_offsets(group)[group]
    assert {tp.partition for tp in off} == {1}, off
    assert ad.delete_groups([group, f"missing-{group}"]) == {
        group: "OK", f"missing-{group}": "GroupIdNotFoundError"}
    assert group not in {g["group_id"] for g in ad.list_groups()}
    assert ad.list_group_offsets(group)[group] == {}


# ---------------------------------------------------------------------------- batched LeaveGroup
def test_kp_admin_remove_static_members(group_broker, topic):
    """LeaveGroup v3+ (KIP-345 batch) sent by the admin: remove two static
    members by group.instance.id plus one unknown; the remaining member gets
    every partition after the rebalance."""
    from kafka.admin import MemberToRemove
    from kafka.errors import UnknownMemberIdError

    b = group_broker.bootstrap
    create_topics(b, {topic: 3})
    group = f"g-{topic}"
    ms = [ThreadMember(f"kp-s{i}", b, group, [topic], group_instance_id=f"inst-{i}",
                       session_timeout_ms=30000) for i in range(3)]
    for m in ms:
        m.start()
    ad = admin(b)
    try:
        helpers.wait_until(lambda: all(m.assigned for m in ms) and len({m.generation for m in ms}) == 1
                           and is_disjoint_cover({m.name: m.assigned for m in ms}, [(topic, p) for p in range(3)]),
                           45, what=f"3 static members: {ms}")
        d = ad.describe_groups([group])[group]
        assert sorted(mem["group_instance_id"] for mem in d["members"]) == ["inst-0", "inst-1", "inst-2"], d
        # stop two members first (static members send no LeaveGroup), then remove them
        for m in ms[:2]:
            m.stop()
        res = ad.remove_group_members(group, [MemberToRemove(group_instance_id="inst-0"),
                                              MemberToRemove(group_instance_id="inst-1"),
                                              MemberToRemove(group_instance_id="inst-missing")])
        # kafka-python keys the result by (member_id or group_instance_id) of each
        # response entry; Kafka echoes the request's (empty) member id
        assert res == {"inst-0": NoError, "inst-1": NoError, "inst-missing": UnknownMemberIdError}, res
        helpers.wait_until(lambda: ms[2].assigned == [(topic, p) for p in range(3)], 20,
                           what=f"the remaining member owning all partitions: {ms[2]}")
        d = ad.describe_groups([group])[group]
        assert [mem["group_instance_id"] for mem in d["members"]] == ["inst-2"], d
    finally:
        for m in ms:
            if m.is_alive():
                m.stop()
