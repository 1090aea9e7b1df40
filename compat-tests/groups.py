"""Shared helpers for the consumer-group tests (test_groups_*.py): topic setup,
producing known records, the expected output of the range / roundrobin
assignors, member subprocesses (group_member.py), offset-contiguity checks,
and a minimal raw Kafka protocol client for requests the clients won't send
(stale generations, made-up member ids)."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import defaultdict

import helpers
from helpers import HERE

# Kafka error codes used by the group tests
NONE = 0
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
UNKNOWN_MEMBER_ID = 25
REBALANCE_IN_PROGRESS = 27
GROUP_ID_NOT_FOUND = 69
NON_EMPTY_GROUP = 68
MEMBER_ID_REQUIRED = 79
FENCED_INSTANCE_ID = 82

# TODO(KIP-848): these helpers and the test_groups_* files (except
# test_groups_kip848.py) use the classic protocol only; `group.protocol=consumer`
# (ConsumerGroupHeartbeat) with these clients is not covered here.


# ------------------------------------------------------------------ topics / data
def create_topics(bootstrap: str, topics: dict[str, int]):
    """Create topics {name: partitions} with confluent-kafka's AdminClient and
    wait until their metadata shows every partition."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futs = admin.create_topics([NewTopic(t, n, 1) for t, n in topics.items()],
                               operation_timeout=15)
    for f in futs.values():
        f.result(timeout=30)

    def ready():
        md = admin.list_topics(timeout=5)
        return all(t in md.topics and len(md.topics[t].partitions) == n
                   for t, n in topics.items())

    helpers.wait_until(ready, timeout=20, what=f"metadata for {sorted(topics)}")


def produce(bootstrap: str, topic: str, per_partition: dict[int, list[bytes]],
            timestamps: dict[int, list[int]] | None = None) -> dict[int, list[tuple[int, bytes]]]:
    """Produce the given values to explicit partitions (acks=all) and return
    {partition: [(offset, value), ...]} as the broker acknowledged them."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "enable.idempotence": False})
    acked: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    errors = []

    def cb(err, msg):
        if err is not None:
            errors.append((msg.partition(), err))
        else:
            acked[msg.partition()].append((msg.offset(), msg.value()))

    for part, values in per_partition.items():
        for i, v in enumerate(values):
            kw = {}
            if timestamps is not None:
                kw["timestamp"] = timestamps[part][i]
            p.produce(topic, value=v, partition=part, on_delivery=cb, **kw)
    left = p.flush(30)
    assert left == 0 and not errors, f"produce to {topic}: {left} undelivered, errors {errors}"
    return {k: sorted(v) for k, v in acked.items()}


def values(topic: str, partitions, n: int, tag: str = "") -> dict[int, list[bytes]]:
    return {p: [f"{topic}|{p}|{tag}{i}".encode() for i in range(n)] for p in partitions}


def end_offsets(bootstrap: str, topic: str, partitions) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "compat-watermarks",
                  "enable.auto.commit": False})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions}
    finally:
        c.close()


# ------------------------------------------------------------------ assignors
def expected_range(members, subscriptions: dict[str, int]) -> dict[str, list[tuple[str, int]]]:
    """Kafka's RangeAssignor: for each topic, the members (sorted by member id)
    get contiguous ranges; the first (n % members) get one partition more."""
    members = sorted(members)
    out = {m: [] for m in members}
    for topic in sorted(subscriptions):
        n = subscriptions[topic]
        per, extra = divmod(n, len(members))
        for i, m in enumerate(members):
            start = per * i + min(i, extra)
            length = per + (1 if i < extra else 0)
            out[m].extend((topic, p) for p in range(start, start + length))
    return {m: sorted(v) for m, v in out.items()}


def expected_roundrobin(members, subscriptions: dict[str, int]) -> dict[str, list[tuple[str, int]]]:
    """Kafka's RoundRobinAssignor (all members subscribe to every topic): all
    topic-partitions sorted by (topic, partition), dealt in turn to the members
    sorted by member id."""
    members = sorted(members)
    out = {m: [] for m in members}
    tps = sorted((t, p) for t, n in subscriptions.items() for p in range(n))
    for i, tp in enumerate(tps):
        out[members[i % len(members)]].append(tp)
    return {m: sorted(v) for m, v in out.items()}


def is_disjoint_cover(assignments: dict, all_tps) -> bool:
    seen = []
    for parts in assignments.values():
        seen.extend(tuple(x) for x in parts)
    return len(seen) == len(set(seen)) and set(seen) == {tuple(x) for x in all_tps}


# ------------------------------------------------------------------ checks
def check_contiguous(consumed, produced: dict[int, list[tuple[int, bytes]]], start=None):
    """consumed: iterable of (partition, offset, value).  Every produced record
    must have been consumed (at least once) with its exact value, and per
    partition the consumed offsets must be contiguous from `start[p]` (default
    0, the committed start of a fresh group) to the end."""
    by_part = defaultdict(dict)
    problems = []
    for p, o, v in consumed:
        prev = by_part[p].get(o)
        if prev is not None and prev != v:
            problems.append(f"p{p} offset {o} consumed twice with different values {prev!r} / {v!r}")
        by_part[p][o] = v
    for p, recs in sorted(produced.items()):
        first = (start or {}).get(p, 0)
        want = {o: val for o, val in recs if o >= first}
        got = by_part.get(p, {})
        missing = sorted(set(want) - set(got))
        if missing:
            problems.append(f"p{p}: {len(missing)} produced offsets never consumed: {missing[:20]}")
        wrong = [(o, got[o], want[o]) for o in sorted(want) if o in got and got[o] != want[o]]
        if wrong:
            problems.append(f"p{p}: wrong values at {wrong[:5]}")
        offs = sorted(o for o in got if o >= first)
        if offs and offs != list(range(first, offs[-1] + 1)):
            gaps = sorted(set(range(first, offs[-1] + 1)) - set(offs))
            problems.append(f"p{p}: gaps in consumed offsets from {first}: {gaps[:20]}")
        extra = sorted(set(got) - {o for o, _ in recs})
        if extra:
            problems.append(f"p{p}: consumed offsets that were never produced: {extra[:20]}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ member processes
class MemberProc:
    """A group member in a subprocess (group_member.py) that reports JSON events."""

    def __init__(self, client: str, bootstrap: str, group: str, topics, name: str, conf=None):
        self.name = name
        cfg = {"client": client, "bootstrap": bootstrap, "group": group,
               "topics": list(topics), "name": name, "conf": conf or {}}
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "group_member.py"), json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.events: list[dict] = []
        self.stderr: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("{"):
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                ev["_t"] = time.monotonic()
                with self._lock:
                    self.events.append(ev)

    def _read_err(self):
        for raw in iter(self.proc.stderr.readline, b""):
            self.stderr.append(raw.decode("utf-8", "replace").rstrip())

    def evs(self, kind=None) -> list[dict]:
        with self._lock:
            return [e for e in self.events if kind is None or e["ev"] == kind]

    def assignment(self):
        """Current assignment: the last `assigned` unless a later `revoked`."""
        current = None
        for e in self.evs():
            if e["ev"] == "assigned":
                current = sorted(tuple(x) for x in e["parts"])
            elif e["ev"] == "revoked":
                current = []
        return current

    def member_id(self):
        ids = [e.get("member_id") for e in self.evs("assigned")]
        return ids[-1] if ids else None

    def consumed(self):
        return [(e["p"], e["o"], e["v"].encode()) for e in self.evs("msg")]

    def committed(self) -> dict:
        out = {}
        for e in self.evs("committed"):
            for t, p, o in e["offsets"]:
                out[(t, p)] = o
        return out

    def alive(self):
        return self.proc.poll() is None

    def close(self, timeout=30):
        """Ask the member to close() (LeaveGroup) and wait for it to exit."""
        if self.alive():
            try:
                self.proc.stdin.write(b"close\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"{self.name} did not close within {timeout}s\n{self.describe()}")

    def kill(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def describe(self) -> str:
        evs = [{k: v for k, v in e.items() if k != "_t"} for e in self.evs() if e["ev"] != "msg"]
        n = len(self.evs("msg"))
        return (f"--- member {self.name} (rc={self.proc.poll()}, {n} msgs) events: "
                f"{json.dumps(evs)[-3000:]}\n    stderr: {self.stderr[-15:]}")


def merged_commits(members) -> dict:
    """{(topic, partition): offset} of the latest successful commit by any member."""
    evs = sorted((e for m in members for e in m.evs("committed")), key=lambda e: e["_t"])
    out = {}
    for e in evs:
        for t, p, o in e["offsets"]:
            out[(t, p)] = o
    return out


def describe_members(members) -> str:
    return "\n".join(m.describe() for m in members)


def stop_all(members):
    for m in members:
        try:
            m.kill()
        except Exception:  # noqa: BLE001
            pass


# ------------------------------------------------------------------ raw protocol
class Raw:
    """A minimal Kafka protocol client (non-flexible request versions only):
    enough to send Heartbeat / OffsetCommit / JoinGroup / SyncGroup with the
    generation and member id the test chooses."""

    def __init__(self, bootstrap: str, client_id: str = "compat-raw"):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.client_id = client_id.encode()
        self.corr = 0

    def close(self):
        self.sock.close()

    # -- encoding
    @staticmethod
    def s(x: str | None) -> bytes:
        if x is None:
            return struct.pack(">h", -1)
        b = x.encode()
        return struct.pack(">h", len(b)) + b

    @staticmethod
    def by(x: bytes | None) -> bytes:
        if x is None:
            return struct.pack(">i", -1)
        return struct.pack(">i", len(x)) + x

    def request(self, api_key: int, version: int, body: bytes) -> "Reader":
        self.corr += 1
        header = struct.pack(">hhi", api_key, version, self.corr) + self.s(self.client_id.decode())
        payload = header + body
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", self._recv(4))[0]
        r = Reader(self._recv(size))
        corr = r.i32()
        assert corr == self.corr, f"correlation id {corr} != {self.corr}"
        return r

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"broker closed the connection ({len(buf)}/{n} bytes read)")
            buf += chunk
        return buf

    # -- APIs
    def find_coordinator(self, group: str) -> tuple[int, str, int]:
        r = self.request(10, 1, self.s(group) + struct.pack(">b", 0))
        r.i32()  # throttle
        err = r.i16()
        r.string()  # message
        node, host, port = r.i32(), r.string(), r.i32()
        return err, host, port

    def join_group(self, group, member_id="", session_ms=10000, rebalance_ms=10000,
                   protocols=(("range", b""),), instance_id=None, version=5):
        body = self.s(group) + struct.pack(">ii", session_ms, rebalance_ms) + self.s(member_id)
        if version >= 5:
            body += self.s(instance_id)
        body += self.s("consumer") + struct.pack(">i", len(protocols))
        for name, meta in protocols:
            body += self.s(name) + self.by(meta)
        r = self.request(11, version, body)
        r.i32()
        res = dict(error=r.i16(), generation=r.i32(), protocol=r.string(),
                   leader=r.string(), member_id=r.string())
        members = []
        for _ in range(r.i32()):
            mid = r.string()
            if version >= 5:
                r.string()
            members.append((mid, r.bytes_()))
        res["members"] = members
        return res

    def sync_group(self, group, generation, member_id, assignments=(), instance_id=None):
        body = self.s(group) + struct.pack(">i", generation) + self.s(member_id) + self.s(instance_id)
        body += struct.pack(">i", len(assignments))
        for mid, data in assignments:
            body += self.s(mid) + self.by(data)
        r = self.request(14, 3, body)
        r.i32()
        return dict(error=r.i16(), assignment=r.bytes_())

    def heartbeat(self, group, generation, member_id, instance_id=None) -> int:
        body = self.s(group) + struct.pack(">i", generation) + self.s(member_id) + self.s(instance_id)
        r = self.request(12, 3, body)
        r.i32()
        return r.i16()

    def offset_commit(self, group, generation, member_id, offsets: dict, version=2, instance_id=None):
        """offsets: {(topic, partition): (offset, metadata)} -> {(t, p): error}.
        instance_id (a static member's group.instance.id) needs version 7."""
        assert instance_id is None or version >= 7, "group_instance_id is in OffsetCommit v7+"
        body = self.s(group) + struct.pack(">i", generation) + self.s(member_id)
        if version >= 7:
            body += self.s(instance_id)
        if version in (2, 3, 4):
            body += struct.pack(">q", -1)  # retention_time_ms
        by_topic = defaultdict(list)
        for (t, p), (o, meta) in offsets.items():
            by_topic[t].append((p, o, meta))
        body += struct.pack(">i", len(by_topic))
        for t, parts in by_topic.items():
            body += self.s(t) + struct.pack(">i", len(parts))
            for p, o, meta in parts:
                body += struct.pack(">iq", p, o)
                if version >= 6:
                    body += struct.pack(">i", -1)  # committed_leader_epoch
                body += self.s(meta)
        r = self.request(8, version, body)
        if version >= 3:
            r.i32()
        out = {}
        for _ in range(r.i32()):
            t = r.string()
            for _ in range(r.i32()):
                p = r.i32()
                out[(t, p)] = r.i16()
        return out

    def offset_fetch(self, group, topic, partitions):
        body = self.s(group) + struct.pack(">i", 1) + self.s(topic) + struct.pack(">i", len(partitions))
        for p in partitions:
            body += struct.pack(">i", p)
        r = self.request(9, 3, body)
        r.i32()
        out = {}
        for _ in range(r.i32()):
            t = r.string()
            for _ in range(r.i32()):
                p, o = r.i32(), r.i64()
                meta = r.string()
                out[(t, p)] = (o, meta, r.i16())
        return out, r.i16()


class Reader:
    def __init__(self, data: bytes):
        self.d, self.pos = data, 0

    def _take(self, fmt):
        size = struct.calcsize(fmt)
        v = struct.unpack_from(fmt, self.d, self.pos)[0]
        self.pos += size
        return v

    def i16(self):
        return self._take(">h")

    def i32(self):
        return self._take(">i")

    def i64(self):
        return self._take(">q")

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        v = self.d[self.pos:self.pos + n].decode()
        self.pos += n
        return v

    def bytes_(self):
        n = self.i32()
        if n < 0:
            return None
        v = self.d[self.pos:self.pos + n]
        self.pos += n
        return v


def consumer_protocol_subscription(topics) -> bytes:
    """ConsumerProtocolSubscription v0: version, topics, user_data."""
    b = struct.pack(">hi", 0, len(topics))
    for t in topics:
        b += Raw.s(t)
    return b + struct.pack(">i", -1)


def consumer_protocol_assignment(parts: dict[str, list[int]]) -> bytes:
    b = struct.pack(">hi", 0, len(parts))
    for t, ps in parts.items():
        b += Raw.s(t) + struct.pack(">i", len(ps)) + b"".join(struct.pack(">i", p) for p in ps)
    return b + struct.pack(">i", -1)


def raw_join(raw: Raw, group, topics, instance_id=None, session_ms=10000, deadline_s=20, member_id=""):
    """JoinGroup v5 with the KIP-394 retry (MEMBER_ID_REQUIRED) and
    coordinator-loading retries; returns the final response dict."""
    member = member_id
    deadline = time.monotonic() + deadline_s
    meta = consumer_protocol_subscription(topics)
    while True:
        res = raw.join_group(group, member, session_ms=session_ms, rebalance_ms=session_ms,
                             protocols=(("range", meta),), instance_id=instance_id)
        if res["error"] == MEMBER_ID_REQUIRED:
            member = res["member_id"]
        elif res["error"] in (14, 15, 16) and time.monotonic() < deadline:  # loading / not available
            time.sleep(0.1)
        else:
            return res
        assert time.monotonic() < deadline, f"JoinGroup kept failing: {res}"
