"""Client-side assignors the broker only relays: sticky (kafka-python has none; librdkafka's
`cooperative-sticky`) with KIP-429 incremental rebalances, where members keep their partitions
across a rebalance and only the moved ones are revoked."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def test_cooperative_sticky_rebalances_incrementally(group_broker, topic):
    bs = group_broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bs})  # must outlive its futures
    for f in admin.create_topics([NewTopic(topic, 6, 1)]).values():
        f.result(timeout=15)
    p = Producer({"bootstrap.servers": bs})
    sent = {f"v{i}".encode() for i in range(120)}
    for i, v in enumerate(sorted(sent)):
        p.produce(topic, value=v, partition=i % 6)
    assert p.flush(15) == 0

    revoked = {"a": [], "b": []}
    assigned = {"a": [], "b": []}

    def consumer(name):
        c = Consumer({
            "bootstrap.servers": bs,
            "group.id": f"{topic}-coop",
            "partition.assignment.strategy": "cooperative-sticky",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        })
        c.subscribe(
            [topic],
            on_assign=lambda c, ps: assigned[name].append(sorted(tp.partition for tp in ps)),
            on_revoke=lambda c, ps: revoked[name].append(sorted(tp.partition for tp in ps)),
        )
        return c

    a = consumer("a")
    got = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(a.assignment()) < 6:
        m = a.poll(0.1)
        if m is not None and not m.error():
            got.add(m.value())
    assert len(a.assignment()) == 6, "a alone owns all six partitions"
    b = consumer("b")
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            for c in (a, b):
                m = c.poll(0.05)
                if m is not None and not m.error():
                    got.add(m.value())
            if len(a.assignment()) == 3 and len(b.assignment()) == 3 and got == sent:
                break
        owned_a = {tp.partition for tp in a.assignment()}
        owned_b = {tp.partition for tp in b.assignment()}
        assert (len(owned_a), len(owned_b)) == (3, 3) and not owned_a & owned_b, (owned_a, owned_b)
        assert got == sent, f"consumed {len(got)} of {len(sent)}"
        # Incremental: a gave up exactly the three partitions b took, never all six.
        assert all(len(r) < 6 for r in revoked["a"]), revoked
        assert sorted(p for r in revoked["a"] for p in r) == sorted(owned_b), revoked
    finally:
        a.close()
        b.close()
    group_broker.check_alive()
