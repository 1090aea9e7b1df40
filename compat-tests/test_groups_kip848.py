"""KIP-848 consumer groups (`group.protocol=consumer`) driven by librdkafka 2.16.

The broker assigns partitions itself with its `range` and `uniform` (roundrobin) assignors;
each member's assignment must match the assignor's definition, computed here from the member
ids the broker reports (ConsumerGroupDescribe through the admin client would need a newer
binding, so the member ids come from the consumers themselves)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

FAST = ("--group-consumer-heartbeat-interval-ms", "300")


def make_topics(bs, topics):
    admin = AdminClient({"bootstrap.servers": bs})  # must outlive its futures
    for f in admin.create_topics([NewTopic(t, 3, 1) for t in topics]).values():
        f.result(timeout=15)


def produce(bs, topics, per_partition):
    p = Producer({"bootstrap.servers": bs})
    sent = set()
    for t in topics:
        for part in range(3):
            for i in range(per_partition):
                value = f"{t}-{part}-{i}".encode()
                p.produce(t, value=value, partition=part)
                sent.add(value)
    assert p.flush(15) == 0
    return sent


def consumer(bs, group, assignor):
    return Consumer({
        "bootstrap.servers": bs,
        "group.id": group,
        "group.protocol": "consumer",
        "group.remote.assignor": assignor,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })


def expected(assignor, member_ids, topics):
    """The assignor's definition (see broker/src/groups/assignor.rs)."""
    ids = sorted(member_ids)
    out = {m: set() for m in ids}
    if assignor == "range":
        for t in sorted(topics):
            each, extra = divmod(3, len(ids))
            nxt = 0
            for i, m in enumerate(ids):
                take = each + (1 if i < extra else 0)
                out[m] |= {(t, p) for p in range(nxt, nxt + take)}
                nxt += take
    else:
        turn = 0
        for t in sorted(topics):
            for p in range(3):
                out[ids[turn % len(ids)]].add((t, p))
                turn += 1
    return out


@pytest.mark.parametrize("assignor", ["range", "uniform"])
@pytest.mark.parametrize("members", [2, 3])
def test_kip848_assignment_matches_the_assignor(group_broker_factory, topic, assignor, members):
    broker = group_broker_factory(*FAST)
    bs = broker.bootstrap
    topics = [f"{topic}-a", f"{topic}-b"]
    make_topics(bs, topics)
    sent = produce(bs, topics, 5)
    group = f"{topic}-{assignor}-{members}"
    cs = [consumer(bs, group, assignor) for _ in range(members)]
    received = {}
    try:
        for c in cs:
            c.subscribe(topics)
        deadline = time.monotonic() + 40
        settled = None
        while time.monotonic() < deadline:
            for i, c in enumerate(cs):
                m = c.poll(0.05)
                if m is not None and not m.error():
                    received.setdefault(m.value(), i)
            assignments = [{(tp.topic, tp.partition) for tp in c.assignment()} for c in cs]
            ids = [c.memberid() for c in cs]
            if all(ids) and sum(len(a) for a in assignments) == 6:
                want = expected(assignor, ids, topics)
                if [want[i] for i in ids] == assignments:
                    settled = assignments
                    if set(received) == sent:
                        break
        assert settled is not None, f"assignments never matched {assignor}: {assignments} for members {ids}"
        assert set(received) == sent, f"consumed {len(received)} of {len(sent)}"
        assert set().union(*settled) == {(t, p) for t in topics for p in range(3)}, "every partition assigned once"
    finally:
        for c in cs:
            c.close()
    broker.check_alive()


def test_kip848_member_leaves_and_the_other_takes_over(group_broker_factory, topic):
    broker = group_broker_factory(*FAST)
    bs = broker.bootstrap
    make_topics(bs, [topic])
    a, b = consumer(bs, f"{topic}-g", "range"), consumer(bs, f"{topic}-g", "range")
    try:
        a.subscribe([topic])
        b.subscribe([topic])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            a.poll(0.05)
            b.poll(0.05)
            if len(a.assignment()) + len(b.assignment()) == 3 and a.assignment() and b.assignment():
                break
        assert a.assignment() and b.assignment(), "both members got partitions"
        b.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(a.assignment()) < 3:
            a.poll(0.05)
        assert sorted(tp.partition for tp in a.assignment()) == [0, 1, 2]
        # Commits carry the member epoch (OffsetCommit v9) and are accepted.
        sent = produce(bs, [topic], 2)
        got = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and got < len(sent):
            m = a.poll(0.1)
            if m is not None and not m.error():
                got += 1
                a.commit(m, asynchronous=False)
        assert got == len(sent)
    finally:
        a.close()
    broker.check_alive()


def test_kip848_group_survives_a_broker_restart(group_broker_factory, topic):
    """The group's state is stored: after a restart on the same data dir, a member heartbeating
    at its epoch with what it owns carries on (raw ConsumerGroupHeartbeat v1), rather than
    being told UNKNOWN_MEMBER_ID and losing its partitions."""
    import uuid

    import kip848
    from groups import Raw

    b = group_broker_factory()
    make_topics(b.bootstrap, [topic])
    group, member = f"g-{topic}", str(uuid.uuid4())

    def beat(epoch, **kw):
        raw = Raw(b.bootstrap, "compat-848-restart")
        try:
            return kip848.heartbeat(raw, group, member, epoch, **kw)
        finally:
            raw.close()

    joined = beat(0, topics=[topic])
    assert joined["error"] == 0, joined
    (topic_id, parts), = joined["assignment"].items()
    assert parts == [0, 1, 2]
    assert beat(joined["epoch"], owned={topic_id: parts})["error"] == 0
    b.restart(keep_port=True)
    again = beat(joined["epoch"], owned={topic_id: parts})
    assert (again["error"], again["epoch"]) == (0, joined["epoch"]), again
