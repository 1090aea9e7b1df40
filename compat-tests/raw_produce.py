"""Produce v8 as a raw request, of a record batch built by kafka-python's builder: for tests
that must send exactly the same bytes to two brokers, or read the whole partition answer
(KIP-467's record_errors)."""

from __future__ import annotations

import struct
import time

from groups import Raw


def batch(records: list[tuple[bytes | None, bytes]]) -> bytes:
    """A v2 record batch of (key, value) records, built by kafka-python's builder."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 20)
    now = int(time.time() * 1000)
    for offset, (key, value) in enumerate(records):
        builder.append(offset, timestamp=now, key=key, value=value, headers=[])
    return bytes(builder.build())


def produce_v8(raw: Raw, topic: str, partition: int, batch_bytes: bytes) -> dict:
    """Produce v8 (acks=all) of one batch -> the partition's answer."""
    body = (Raw.s(None) + struct.pack(">hi", -1, 15000) + struct.pack(">i", 1) + Raw.s(topic)
            + struct.pack(">i", 1) + struct.pack(">i", partition) + Raw.by(batch_bytes))
    r = raw.request(0, 8, body)
    assert r.i32() == 1
    r.string()
    assert r.i32() == 1
    index, error, base_offset = r.i32(), r.i16(), r.i64()
    r.i64()  # log append time
    r.i64()  # log start offset
    record_errors = [(r.i32(), r.string()) for _ in range(r.i32())]
    return dict(index=index, error=error, base_offset=base_offset, record_errors=record_errors,
                error_message=r.string())


def produce_v8_once_led(raw: Raw, topic: str, partition: int, batch_bytes: bytes, timeout: float = 30) -> dict:
    """produce_v8, retried while the partition has no leader yet (UNKNOWN_TOPIC_OR_PARTITION,
    NOT_LEADER_OR_FOLLOWER): Kafka elects one shortly after CreateTopics returns."""
    deadline = time.monotonic() + timeout
    while True:
        answer = produce_v8(raw, topic, partition, batch_bytes)
        if answer["error"] not in (3, 6) or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)
