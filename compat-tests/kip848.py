"""ConsumerGroupHeartbeat v1 (KIP-848) as raw requests: the flexible encoding, and a
heartbeat that reports the member's epoch and assignment, for tests that must choose the
member id, the epoch and what the member says it owns."""

from __future__ import annotations

import struct
import uuid

import groups
from groups import Raw


def uvarint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def cstr(x: str | None) -> bytes:
    """COMPACT_(NULLABLE_)STRING."""
    if x is None:
        return uvarint(0)
    b = x.encode()
    return uvarint(len(b) + 1) + b


def carr(items: list[bytes] | None) -> bytes:
    if items is None:
        return uvarint(0)
    return uvarint(len(items) + 1) + b"".join(items)


class FlexReader(groups.Reader):
    def uvarint(self) -> int:
        shift = n = 0
        while True:
            b = self.d[self.pos]
            self.pos += 1
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7

    def cstr(self):
        n = self.uvarint()
        if n == 0:
            return None
        v = self.d[self.pos:self.pos + n - 1].decode()
        self.pos += n - 1
        return v

    def uuid(self) -> uuid.UUID:
        v = uuid.UUID(bytes=bytes(self.d[self.pos:self.pos + 16]))
        self.pos += 16
        return v

    def skip_tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.pos += self.uvarint()


def heartbeat(raw: Raw, group: str, member_id: str, epoch: int, topics: list[str] | None = None,
              owned: dict[uuid.UUID, list[int]] | None = None, instance_id: str | None = None) -> dict:
    """One ConsumerGroupHeartbeat v1 -> {error, message, member_id, epoch, assignment}; the
    assignment is {topic id: sorted partitions}, or None when the answer carries none."""
    raw.corr += 1
    header = struct.pack(">hhi", 68, 1, raw.corr) + Raw.s(raw.client_id.decode()) + uvarint(0)
    if owned is None and epoch == 0:
        owned = {}  # Kafka wants an empty list when joining
    owned_bytes = None if owned is None else [
        t.bytes + carr([struct.pack(">i", p) for p in sorted(ps)]) + uvarint(0) for t, ps in owned.items()]
    body = (cstr(group) + cstr(member_id) + struct.pack(">i", epoch) + cstr(instance_id) + cstr(None)
            + struct.pack(">i", 30000)
            + (carr([cstr(t) for t in topics]) if topics is not None else carr(None))
            + cstr(None)  # subscribed topic regex (v1)
            + cstr(None)  # server assignor
            + carr(owned_bytes) + uvarint(0))
    payload = header + body
    raw.sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", raw._recv(4))[0]
    r = FlexReader(raw._recv(size))
    assert r.i32() == raw.corr
    r.skip_tags()  # response header
    r.i32()  # throttle
    out = dict(error=r.i16(), message=r.cstr(), member_id=r.cstr(), epoch=r.i32())
    r.i32()  # heartbeat interval
    assignment = None
    if struct.unpack_from(">b", r.d, r.pos)[0] >= 0:
        r.pos += 1
        assignment = {}
        for _ in range(r.uvarint() - 1):
            topic = r.uuid()
            assignment[topic] = sorted(r.i32() for _ in range(r.uvarint() - 1))
            r.skip_tags()
        r.skip_tags()
    else:
        r.pos += 1
    out["assignment"] = assignment
    return out
