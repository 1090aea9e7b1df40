"""A KIP-848 consumer group (group.protocol=consumer) moves with its coordinator, on two
brokers sharing ONE Postgres database (node ids 1 and 2, --broker-lease-ms 2000).

The group is coordinated by node 2. Node 2 is killed with SIGKILL: once its lease runs out,
node 1 coordinates the group, restores it from storage, and its member goes on at the epoch
and with the partitions it had (not UNKNOWN_MEMBER_ID, which would make it rejoin and lose
them). A second member joins on node 1. Node 2 comes back: the group moves back to it (the
coordinator is a hash of the group id over the live brokers), node 1 hands it over, and node 2
restores it with the move node 1 had started: the first member is told to let half of its
partitions go before the second one gets them.
"""

from __future__ import annotations

import time
import uuid

import kip848
from groups import Raw, create_topics
from test_postgres_cluster import brokers_seen, coordinator, wait

LEASE_MS = 2000
NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE = 16, 15


def beat(bootstrap: str, group: str, member: str, epoch: int, **kw) -> dict:
    """A heartbeat to `bootstrap`, retried while the broker does not coordinate the group yet."""
    deadline = time.monotonic() + 30
    while True:
        raw = Raw(bootstrap, "compat-848-move")
        try:
            answer = kip848.heartbeat(raw, group, member, epoch, **kw)
        finally:
            raw.close()
        if answer["error"] not in (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE):
            return answer
        assert time.monotonic() < deadline, f"{bootstrap} never took the group over: {answer}"
        time.sleep(0.2)


def two_brokers_and_a_group_on_node_2(postgres_cluster, group_broker_factory, topic, db):
    """Two brokers on one fresh Postgres database, both seeing each other, `topic` with four
    partitions, and a group id that node 2 coordinates."""
    url = postgres_cluster.createdb(db)
    common = ("--broker-lease-ms", str(LEASE_MS))
    b1 = group_broker_factory("--node-id", "1", *common, storage="postgres", storage_url=url)
    b2 = group_broker_factory("--node-id", "2", *common, storage="postgres", storage_url=url)
    admins: dict = {}
    for b in (b1, b2):
        wait(lambda b=b: len(brokers_seen(b.bootstrap, admins)) == 2, 15, f"{b.bootstrap} to list both brokers")
    create_topics(b1.bootstrap, {topic: 4})
    group = next(g for g in (f"g{k}-{topic}" for k in range(50)) if coordinator(b1.bootstrap, g) == 2)
    return b1, b2, group


def test_kip848_group_moves_with_its_coordinator(postgres_cluster, group_broker_factory, topic):
    b1, b2, group = two_brokers_and_a_group_on_node_2(postgres_cluster, group_broker_factory, topic, "kip848move")
    m1, m2 = str(uuid.uuid4()), str(uuid.uuid4())

    # On node 2: m1 joins and owns all four partitions.
    joined = beat(b2.bootstrap, group, m1, 0, topics=[topic])
    assert joined["error"] == 0, joined
    (topic_id, parts), = joined["assignment"].items()
    assert parts == [0, 1, 2, 3], joined
    e1 = joined["epoch"]
    owned_all = {topic_id: [0, 1, 2, 3]}
    assert beat(b2.bootstrap, group, m1, e1, owned=owned_all)["error"] == 0

    # Node 2 dies; node 1 takes the group over from storage.
    b2.expected_exit = True
    b2.proc.kill()
    b2.proc.wait(timeout=10)
    wait(lambda: coordinator(b1.bootstrap, group) == 1, 30, "node 1 to coordinate the group")
    after_kill = beat(b1.bootstrap, group, m1, e1, owned=owned_all)
    assert (after_kill["error"], after_kill["epoch"]) == (0, e1), (
        f"node 1 did not restore the group: {after_kill}")

    # m2 joins on node 1: the target splits the partitions, all still owned by m1.
    second = beat(b1.bootstrap, group, m2, 0, topics=[topic])
    assert second["error"] == 0 and second["epoch"] > e1, second
    assert second["assignment"] in ({}, {topic_id: []}), f"partitions m1 still owns were given away: {second}"

    # Node 2 comes back and the group moves back to it; node 1 hands it over.
    b2.expected_exit = False
    b2.restart()
    wait(lambda: coordinator(b1.bootstrap, group) == 2, 30, "the group to move back to node 2")
    told = beat(b2.bootstrap, group, m1, e1, owned=owned_all)
    assert told["error"] == 0 and told["epoch"] == e1, f"node 2 lost the move in progress: {told}"
    kept = told["assignment"][topic_id]
    assert len(kept) == 2, f"m1 should keep half and let half go: {told}"
    moved = sorted(set(range(4)) - set(kept))
    done = beat(b2.bootstrap, group, m1, e1, owned={topic_id: kept})
    assert done["error"] == 0 and done["epoch"] == second["epoch"], done
    got = beat(b2.bootstrap, group, m2, second["epoch"], owned={})
    assert got["error"] == 0 and got["assignment"] == {topic_id: moved}, got


def test_kip848_consumer_keeps_its_partitions_when_the_coordinator_dies(postgres_cluster, group_broker_factory, topic):
    """The same move seen by a real client: a confluent-kafka consumer with
    group.protocol=consumer, whose coordinator is killed, keeps its partitions (no lost or
    revoked callback) and goes on consuming from the broker that takes the group over."""
    from confluent_kafka import Consumer, Producer

    b1, b2, group = two_brokers_and_a_group_on_node_2(postgres_cluster, group_broker_factory, topic, "kip848client")
    events: list[str] = []
    c = Consumer({"bootstrap.servers": f"{b1.bootstrap},{b2.bootstrap}", "group.id": group,
                  "group.protocol": "consumer", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic], on_assign=lambda _c, ps: events.append(f"assign {len(ps)}"),
                on_revoke=lambda _c, ps: events.append(f"revoke {len(ps)}"),
                on_lost=lambda _c, ps: events.append(f"lost {len(ps)}"))
    seen: set[bytes] = set()

    def consume_until(done, what, timeout=60):
        def step():
            m = c.poll(0.2)
            if m is not None and not m.error():
                seen.add(m.value())
            return done()
        wait(step, timeout, what, interval=0)

    p = Producer({"bootstrap.servers": f"{b1.bootstrap},{b2.bootstrap}", "linger.ms": 0,
                  "message.timeout.ms": 60000, "topic.metadata.refresh.interval.ms": 1000})
    try:
        consume_until(lambda: len(c.assignment()) == 4, "the consumer to own all four partitions")
        before = [f"before-{i}".encode() for i in range(8)]
        for i, v in enumerate(before):
            p.produce(topic, value=v, partition=i % 4)
        assert p.flush(30) == 0
        consume_until(lambda: set(before) <= seen, "the records produced before the kill")
        events_before = list(events)
        b2.expected_exit = True
        b2.proc.kill()
        b2.proc.wait(timeout=10)
        wait(lambda: coordinator(b1.bootstrap, group) == 1, 30, "node 1 to coordinate the group")
        after = [f"after-{i}".encode() for i in range(8)]
        for i, v in enumerate(after):
            p.produce(topic, value=v, partition=i % 4)
        assert p.flush(60) == 0
        consume_until(lambda: set(after) <= seen, "the records produced after the kill")
        assert events == events_before, f"the consumer's partitions moved: {events[len(events_before):]}"
        assert len(c.assignment()) == 4
    finally:
        c.close()
