"""Two brokers on ONE Postgres database (node ids 1 and 2, --broker-lease-ms 2000).

A confluent-kafka idempotent producer (acks=all) bootstrapped with both addresses
produces N records to a 6-partition topic while a consumer group reads them; in the
middle of producing one broker is killed with SIGKILL. Its lease runs out after
2 s, its partitions (and groups) move to the survivor, which the producer learns
from NOT_LEADER_OR_FOLLOWER / a failed connection plus a metadata refresh; it
retries what was not acknowledged (message.timeout.ms 60 s). Every acknowledged
record must then be in the log at the offset the producer was told, each
partition's log contiguous from 0, without duplicates (idempotence), in
production order, and the group must have consumed all of them.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from groups import Raw, create_topics

N = 3000
PARTITIONS = 6
KILL_AT = 1000          # produce() calls before the SIGKILL
LEASE_MS = 2000


def wait(pred, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - reported below
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f" (last error: {last!r})" if last else ""))


def brokers_seen(bootstrap: str, admin_cache: dict) -> dict[int, str]:
    admin = admin_cache.setdefault(bootstrap, AdminClient({"bootstrap.servers": bootstrap}))
    md = admin.list_topics(timeout=5)
    return {b.id: f"{b.host}:{b.port}" for b in md.brokers.values()}


def leaders(bootstrap: str, topic: str, admin_cache: dict) -> dict[int, int]:
    admin = admin_cache.setdefault(bootstrap, AdminClient({"bootstrap.servers": bootstrap}))
    md = admin.list_topics(topic, timeout=5)
    return {p: pm.leader for p, pm in md.topics[topic].partitions.items()}


def coordinator(bootstrap: str, group: str) -> int | None:
    """The node id FindCoordinator (v1, raw) names for `group`; None on an error code."""
    raw = Raw(bootstrap)
    try:
        r = raw.request(10, 1, Raw.s(group) + b"\x00")
        r.i32()  # throttle
        err = r.i16()
        r.string()
        node = r.i32()
        return node if err == 0 else None
    finally:
        raw.close()


class GroupReader(threading.Thread):
    """A group member polled in its own thread; records (partition, offset, value)."""

    def __init__(self, bootstrap: str, group: str, topic: str):
        super().__init__(daemon=True)
        self.c = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 500,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        })
        self.c.subscribe([topic], on_assign=self._on_assign)
        self.seen: set[tuple[int, int, bytes]] = set()
        self.assigns: list[list[int]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def _on_assign(self, c, parts):
        self.assigns.append(sorted(p.partition for p in parts))

    def run(self):
        try:
            while not self.stop.is_set():
                m = self.c.poll(0.1)
                if m is None:
                    continue
                if m.error():
                    # transient errors (a broker gone) are expected; keep them for the report
                    self.errors.append(str(m.error()))
                    continue
                self.seen.add((m.partition(), m.offset(), m.value()))
        finally:
            self.c.close()


def read_all(bootstrap: str, topic: str, ends: dict[int, int], timeout: float):
    """Every record of every partition up to `ends`, by assignment."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{topic}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    got: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    deadline = time.monotonic() + timeout
    try:
        while any(len(got[p]) < ends[p] for p in range(PARTITIONS)):
            assert time.monotonic() < deadline, (
                f"read back only {[len(got[p]) for p in range(PARTITIONS)]} of {ends} within {timeout}s")
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError(f"consume error: {m.error()}")
            got[m.partition()].append((m.offset(), m.value()))
    finally:
        c.close()
    return got


def test_postgres_two_brokers_survive_kill_9(postgres_cluster, group_broker_factory, topic):
    url = postgres_cluster.createdb("cluster")
    common = ("--broker-lease-ms", str(LEASE_MS), "--num-partitions", str(PARTITIONS))
    b1 = group_broker_factory("--node-id", "1", *common, storage="postgres", storage_url=url)
    b2 = group_broker_factory("--node-id", "2", *common, storage="postgres", storage_url=url)
    admins: dict = {}

    # Both brokers see each other (each renews its lease every LEASE_MS/3).
    for b in (b1, b2):
        wait(lambda b=b: len(brokers_seen(b.bootstrap, admins)) == 2, 15,
             f"broker {b.bootstrap} to list both brokers: last {brokers_seen(b.bootstrap, admins)}")
    create_topics(b1.bootstrap, {topic: PARTITIONS})
    by_node = {1: b1, 2: b2}
    lead = wait(lambda: (ls := leaders(b1.bootstrap, topic, admins)) == leaders(b2.bootstrap, topic, admins)
                and ls, 15, "both brokers to agree on the partition leaders")
    # Kill a broker that leads partitions (node 2 unless it leads none).
    victim_id = 2 if 2 in lead.values() else 1
    victim, survivor = by_node[victim_id], by_node[3 - victim_id]
    victim_parts = sorted(p for p, n in lead.items() if n == victim_id)
    assert victim_parts, f"node {victim_id} leads nothing: {lead}"

    # A group coordinated by the victim, so the kill moves the group too (the
    # coordinator is a hash of the group id over the live brokers: try a few names).
    group = f"g-{topic}"
    for k in range(20):
        if coordinator(survivor.bootstrap, f"g{k}-{topic}") == victim_id:
            group = f"g{k}-{topic}"
            break
    coord_before = coordinator(survivor.bootstrap, group)
    reader = GroupReader(survivor.bootstrap, group, topic)
    reader.start()
    wait(lambda: reader.assigns, 30, "the group member's first assignment")

    acked: dict[int, dict[int, bytes]] = defaultdict(dict)   # partition -> offset -> value
    failed: list[str] = []
    lock = threading.Lock()

    def on_delivery(err, msg):
        with lock:
            if err is not None:
                failed.append(f"{msg.partition()}:{msg.value()!r}: {err}")
            else:
                assert msg.offset() not in acked[msg.partition()], \
                    f"offset {msg.offset()} of partition {msg.partition()} acknowledged twice"
                acked[msg.partition()][msg.offset()] = msg.value()

    p = Producer({
        "bootstrap.servers": f"{b1.bootstrap},{b2.bootstrap}",
        "enable.idempotence": True,
        "acks": "all",
        "message.timeout.ms": 60000,
        "linger.ms": 5,
        "retry.backoff.ms": 100,
        "retry.backoff.max.ms": 1000,
        "reconnect.backoff.max.ms": 1000,
        "topic.metadata.refresh.interval.ms": 1000,
    })
    killed_at = None
    t0 = time.monotonic()
    try:
        for i in range(N):
            part = i % PARTITIONS
            while True:
                try:
                    p.produce(topic, value=f"{part}:{i}".encode(), partition=part, on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
            if i == KILL_AT:
                victim.expected_exit = True
                victim.proc.kill()          # SIGKILL: no lease release, in-flight requests lost
                victim.proc.wait(timeout=10)
                killed_at = time.monotonic() - t0
            time.sleep(0.001)            # spread production over the lease expiry
            assert time.monotonic() - t0 < 60, f"producing {N} records took over 60 s (at {i})"
        remaining = p.flush(90)
        produce_s = time.monotonic() - t0
        assert remaining == 0, f"{remaining} records still undelivered after flush(90)"
        assert not failed, f"{len(failed)} deliveries failed, first: {failed[:5]}"
        total = sum(len(v) for v in acked.values())
        assert total == N, f"{total} of {N} acknowledged"

        # The survivor leads everything now.
        wait(lambda: set(leaders(survivor.bootstrap, topic, admins).values()) == {3 - victim_id}, 15,
             "the survivor to lead every partition")

        # Every acknowledged record is in the log at its offset; each partition's log
        # is contiguous from 0 and holds no duplicates, in production order.
        ends = {q: len(acked[q]) for q in range(PARTITIONS)}
        for q in range(PARTITIONS):
            assert sorted(acked[q]) == list(range(ends[q])), \
                f"partition {q}: acknowledged offsets are not 0..{ends[q] - 1}: gaps at " \
                f"{sorted(set(range(max(acked[q]) + 1)) - set(acked[q]))[:10]}"
        got = read_all(survivor.bootstrap, topic, ends, 60)
        for q in range(PARTITIONS):
            offsets = [o for o, _ in got[q]]
            assert offsets == list(range(ends[q])), f"partition {q}: offsets {offsets[:5]}..., gaps or duplicates"
            assert dict(got[q]) == acked[q], f"partition {q}: records differ from the acknowledged ones"
            ids = [int(v.split(b":")[1]) for _, v in got[q]]
            assert ids == sorted(ids) and len(set(ids)) == len(ids), \
                f"partition {q}: out of order or duplicated: {ids[:20]}"
            assert ids == list(range(q, N, PARTITIONS)), f"partition {q}: records missing"

        # The group (bootstrapped on the survivor) read every acknowledged record.
        want = {(q, o, v) for q, recs in acked.items() for o, v in recs.items()}
        wait(lambda: want <= reader.seen, 90,
             f"the group to read all {len(want)} records (has {len(want & reader.seen)}; "
             f"assignments {reader.assigns}; errors {reader.errors[-5:]})", interval=0.5)
        assert reader.seen <= want, f"the group read records never acknowledged: {sorted(reader.seen - want)[:5]}"
        coord_after = wait(lambda: coordinator(survivor.bootstrap, group), 15, "the group's coordinator")
        assert coord_after == 3 - victim_id, f"the group is still coordinated by node {coord_after}"
        print(f"killed node {victim_id} (led {victim_parts}, coordinator of the group: "
              f"{coord_before == victim_id}) at {killed_at:.2f}s; all {N} acknowledged after "
              f"{produce_s:.1f}s; group assignments {reader.assigns}; consumer errors {reader.errors[:3]}")
    finally:
        p.flush(1)
        reader.stop.set()
        reader.join(15)
