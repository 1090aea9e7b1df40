"""Group requests the clients will not send on purpose: commits and heartbeats
with made-up member ids and stale generations, sent with the small raw
protocol client in groups.Raw (non-flexible request versions: JoinGroup v5,
SyncGroup v3, Heartbeat v3, OffsetCommit v2, OffsetFetch v3).  Error codes are
those Apache Kafka returns for these versions.

TODO(KIP-848): raw ConsumerGroupHeartbeat requests (stale member epochs,
FENCED_MEMBER_EPOCH / UNKNOWN_MEMBER_ID) are not covered here.
"""

from __future__ import annotations

import threading

import pytest
from kafka import KafkaAdminClient, TopicPartition

import groups
import helpers
from groups import (
    ILLEGAL_GENERATION, MEMBER_ID_REQUIRED, NONE, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
    Raw, consumer_protocol_assignment, consumer_protocol_subscription, create_topics, raw_join,
)


@pytest.fixture
def raw(group_broker):
    r = Raw(group_broker.bootstrap)
    yield r
    r.close()


def test_raw_find_coordinator_names_the_broker(group_broker, raw, topic):
    err, host, port = raw.find_coordinator(f"g-{topic}")
    assert (err, f"{host}:{port}") == (NONE, group_broker.bootstrap)


def test_raw_commit_to_unknown_group(group_broker, raw, topic):
    create_topics(group_broker.bootstrap, {topic: 2})
    group = f"g-{topic}"
    # a made-up generation and member for a group that does not exist
    res = raw.offset_commit(group, 5, "made-up-member", {(topic, 0): (3, "m")})
    assert res == {(topic, 0): ILLEGAL_GENERATION}, res
    fetched, err = raw.offset_fetch(group, topic, [0])
    assert err == NONE and fetched[(topic, 0)][0] == -1, fetched
    # generation -1 and no member id: a "simple" group commit, accepted
    res = raw.offset_commit(group, -1, "", {(topic, 0): (3, "simple"), (topic, 1): (7, None)})
    assert res == {(topic, 0): NONE, (topic, 1): NONE}, res
    fetched, err = raw.offset_fetch(group, topic, [0, 1])
    assert err == NONE
    assert fetched[(topic, 0)] == (3, "simple", NONE), fetched
    assert fetched[(topic, 1)][:1] == (7,) and fetched[(topic, 1)][2] == NONE, fetched
    # with offsets but no members, a made-up member/generation is still refused
    res = raw.offset_commit(group, 1, "made-up-member", {(topic, 0): (9, "")})
    assert res[(topic, 0)] in (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID), res
    assert raw.offset_fetch(group, topic, [0])[0][(topic, 0)][0] == 3


@pytest.mark.parametrize("storage", ["embedded", "postgres"])
def test_raw_commit_metadata_with_nul(group_broker_factory, topic, storage):
    """Kafka's commit metadata is a protocol STRING: U+0000 is valid in it, and
    confluent-kafka-python sends one in every metadata it commits (it sets
    metadata_size = strlen + 1). It must be stored and read back unchanged."""
    br = group_broker_factory(storage=storage)
    create_topics(br.bootstrap, {topic: 1})
    group = f"g-{topic}"
    r = Raw(br.bootstrap)
    try:
        res = r.offset_commit(group, -1, "", {(topic, 0): (2, "meta\x00")})
        assert res == {(topic, 0): NONE}, f"OffsetCommit v2 with metadata 'meta\\x00': {res}"
        fetched, err = r.offset_fetch(group, topic, [0])
        assert (err, fetched[(topic, 0)]) == (NONE, (2, "meta\x00", NONE)), fetched
    finally:
        r.close()


def test_raw_member_errors(group_broker, raw, topic):
    b = group_broker.bootstrap
    create_topics(b, {topic: 2})
    group = f"g-{topic}"
    meta = consumer_protocol_subscription([topic])

    # KIP-394: JoinGroup v4+ without a member id is answered MEMBER_ID_REQUIRED
    first = raw.join_group(group, "", protocols=(("range", meta),))
    assert first["error"] == MEMBER_ID_REQUIRED and first["member_id"], first
    j = raw_join(raw, group, [topic])
    assert j["error"] == NONE and j["leader"] == j["member_id"], j
    gen, me = j["generation"], j["member_id"]
    assert [m for m, _ in j["members"]] == [me]
    s = raw.sync_group(group, gen, me, [(me, consumer_protocol_assignment({topic: [0, 1]}))])
    assert s["error"] == NONE and s["assignment"] == consumer_protocol_assignment({topic: [0, 1]}), s

    assert raw.heartbeat(group, gen, me) == NONE
    assert raw.heartbeat(group, gen + 1, me) == ILLEGAL_GENERATION
    assert raw.heartbeat(group, gen - 1, me) == ILLEGAL_GENERATION
    assert raw.heartbeat(group, gen, "made-up-member") == UNKNOWN_MEMBER_ID
    assert raw.offset_commit(group, gen + 3, me, {(topic, 0): (1, "")}) == {(topic, 0): ILLEGAL_GENERATION}
    assert raw.offset_commit(group, gen, "made-up-member", {(topic, 0): (1, "")}) == \
        {(topic, 0): UNKNOWN_MEMBER_ID}
    assert raw.offset_commit(group, gen, me, {(topic, 0): (2, "ok")}) == {(topic, 0): NONE}

    # a second member joins: the group rebalances; the first member's
    # heartbeat says REBALANCE_IN_PROGRESS until it rejoins
    other = Raw(b)
    joined = {}
    t = threading.Thread(target=lambda: joined.update(raw_join(other, group, [topic])), daemon=True)
    t.start()
    try:
        helpers.wait_until(lambda: raw.heartbeat(group, gen, me) == REBALANCE_IN_PROGRESS,
                                  timeout=10, what="REBALANCE_IN_PROGRESS heartbeat")
        j2 = raw_join(raw, group, [topic], member_id=me)
        t.join(timeout=15)
        assert j2["error"] == NONE and joined.get("error") == NONE, (j2, joined)
        assert j2["generation"] == gen + 1 == joined["generation"], (j2, joined)
        assert j2["member_id"] == me
        # complete the rebalance (the leader assigns), then the old generation is stale
        leader, follower = (raw, other) if j2["leader"] == me else (other, raw)
        jl, jf = (j2, joined) if j2["leader"] == me else (joined, j2)
        synced = {}
        t = threading.Thread(target=lambda: synced.update(
            f=follower.sync_group(group, jf["generation"], jf["member_id"])), daemon=True)
        t.start()
        synced["l"] = leader.sync_group(group, jl["generation"], jl["member_id"], [
            (jl["member_id"], consumer_protocol_assignment({topic: [0]})),
            (jf["member_id"], consumer_protocol_assignment({topic: [1]}))])
        t.join(timeout=15)
        assert synced["l"]["error"] == NONE and synced.get("f", {}).get("error") == NONE, synced
        assert raw.heartbeat(group, gen + 1, me) == NONE
        assert raw.heartbeat(group, gen, me) == ILLEGAL_GENERATION
        assert raw.offset_commit(group, gen, me, {(topic, 0): (3, "")}) == {(topic, 0): ILLEGAL_GENERATION}
    finally:
        other.close()


@pytest.mark.parametrize("restarted", ["leader", "follower"])
def test_raw_static_member_rejoin_keeps_generation(group_broker, topic, restarted):
    """KIP-345 at the protocol level: a static member that rejoins (new
    connection, empty member id, same group.instance.id and subscription) while
    the group is Stable gets the current generation and its old assignment
    back, the other member's heartbeats stay NONE, and the old member id is
    fenced.  Apache Kafka answers the rejoined member with the *previous*
    leader id (so a restarted leader does not think it must assign again;
    `GroupCoordinator.updateStaticMemberAndRebalance`)."""
    b = group_broker.bootstrap
    create_topics(b, {topic: 2})
    group = f"g-{topic}"
    conns = {n: Raw(b) for n in ("a", "b")}
    try:
        ja = raw_join(conns["a"], group, [topic], instance_id="a")  # alone: a is the leader
        sa = conns["a"].sync_group(group, ja["generation"], ja["member_id"],
                                   [(ja["member_id"], consumer_protocol_assignment({topic: [0, 1]}))], "a")
        assert sa["error"] == NONE
        res = {}
        tb = threading.Thread(target=lambda: res.update(b=raw_join(conns["b"], group, [topic], instance_id="b")),
                              daemon=True)
        tb.start()
        helpers.wait_until(lambda: conns["a"].heartbeat(group, ja["generation"], ja["member_id"], "a")
                                  == REBALANCE_IN_PROGRESS, 10, what="rebalance for b")
        res["a"] = raw_join(conns["a"], group, [topic], instance_id="a", member_id=ja["member_id"])
        tb.join(timeout=15)
        ja, jb = res["a"], res["b"]
        assert ja["leader"] == ja["member_id"] and ja["generation"] == jb["generation"], (ja, jb)
        gen = ja["generation"]
        assign = {ja["member_id"]: consumer_protocol_assignment({topic: [0]}),
                  jb["member_id"]: consumer_protocol_assignment({topic: [1]})}
        syncs = {}
        t = threading.Thread(target=lambda: syncs.update(
            b=conns["b"].sync_group(group, gen, jb["member_id"], [], "b")), daemon=True)
        t.start()
        syncs["a"] = conns["a"].sync_group(group, gen, ja["member_id"], list(assign.items()), "a")
        t.join(timeout=15)
        assert syncs["a"]["assignment"] == assign[ja["member_id"]], syncs
        assert syncs["b"]["assignment"] == assign[jb["member_id"]], syncs

        name, j_old = ("a", ja) if restarted == "leader" else ("b", jb)
        other_name, j_other = ("b", jb) if restarted == "leader" else ("a", ja)
        new = Raw(b)
        try:
            j_new = raw_join(new, group, [topic], instance_id=name)
            assert j_new["error"] == NONE and j_new["generation"] == gen, j_new
            assert j_new["member_id"] != j_old["member_id"]
            assert conns[other_name].heartbeat(group, gen, j_other["member_id"], other_name) == NONE
            if restarted == "leader":
                assert j_new["leader"] != j_new["member_id"], (
                    "the restarted static leader is told it is the leader (with "
                    f"{len(j_new['members'])} members to assign); Kafka returns the old leader id: {j_new}")
            s = new.sync_group(group, gen, j_new["member_id"], [], name)
            assert s == {"error": NONE, "assignment": assign[j_old["member_id"]]}, s
            assert conns[other_name].heartbeat(group, gen, j_other["member_id"], other_name) == NONE
            # the old incarnation is fenced (as Kafka answers it: librdkafka's 0102 wants the fatal
            # FENCED_INSTANCE_ID; UNKNOWN_MEMBER_ID would make it rejoin and fence the new one)
            assert conns[name].heartbeat(group, gen, j_old["member_id"], name) == groups.FENCED_INSTANCE_ID
        finally:
            new.close()
    finally:
        for c in conns.values():
            c.close()


def test_offset_fetch_v8_many_groups(group_broker, raw, topic):
    """kafka-python's admin sends one OffsetFetch v8 for several groups."""
    b = group_broker.bootstrap
    create_topics(b, {topic: 2})
    names = [f"g{i}-{topic}" for i in range(3)]
    for i, g in enumerate(names[:2]):
        assert raw.offset_commit(g, -1, "", {(topic, 0): (10 + i, f"m{i}"), (topic, 1): (20 + i, "")}) == \
            {(topic, 0): NONE, (topic, 1): NONE}
    ad = KafkaAdminClient(bootstrap_servers=b, request_timeout_ms=20000)
    try:
        res = ad.list_group_offsets(names)
        assert {g: {(tp.topic, tp.partition): (om.offset, om.metadata) for tp, om in offs.items()}
                for g, offs in res.items()} == {
            names[0]: {(topic, 0): (10, "m0"), (topic, 1): (20, "")},
            names[1]: {(topic, 0): (11, "m1"), (topic, 1): (21, "")},
            names[2]: {},
        }
        res = ad.list_group_offsets({names[0]: [TopicPartition(topic, 1)], names[1]: None})
        assert {tp.partition for tp in res[names[0]]} == {1}
        assert {tp.partition for tp in res[names[1]]} == {0, 1}
    finally:
        ad.close()
