"""Shared helpers for the compatibility tests: unique names, bounded waits,
reading a partition back with an independent client (kafka-python or kcat),
and a canonical record shape for exact comparisons."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path.home() / ".cache" / "ductstream"
COMPAT_BIN = Path(os.environ.get("DUCTSTREAM_COMPAT_BIN", str(CACHE / "compat-bin")))

# CreateTime / LogAppendTime as the clients report them
CREATE_TIME = 0
LOG_APPEND_TIME = 1


def unique_topic(hint: str = "t") -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", hint).strip("-.")[:60] or "t"
    return f"{base}-{uuid.uuid4().hex[:8]}"


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.1, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported below
            last_exc = exc
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}"
                + (f" (last error: {last_exc!r})" if last_exc else "")
            )
        time.sleep(interval)


@dataclass(frozen=True)
class Rec:
    """Canonical record for exact comparison across clients."""

    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple = field(default_factory=tuple)  # ((str, bytes|None), ...)
    timestamp: int | None = None  # ms; None = don't compare

    def without_timestamp(self) -> "Rec":
        return Rec(self.offset, self.key, self.value, self.headers, None)


def _b(x):
    if x is None or isinstance(x, bytes):
        return x
    if isinstance(x, str):
        return x.encode()
    return bytes(x)


def norm_headers(headers) -> tuple:
    return tuple((k if isinstance(k, str) else k.decode(), _b(v)) for k, v in (headers or []))


def kafka_python_read(
    bootstrap: str,
    topic: str,
    n: int,
    partition: int = 0,
    start_offset: int | None = None,
    timeout: float = 20.0,
):
    """Read exactly `n` records (or fail at the deadline) using kafka-python
    with manual assignment (no consumer group). Returns (records, raw)."""
    from kafka import KafkaConsumer, TopicPartition

    tp = TopicPartition(topic, partition)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="compat-verifier",
        request_timeout_ms=15000,
        fetch_max_wait_ms=200,
    )
    try:
        consumer.assign([tp])
        if start_offset is None:
            consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, start_offset)
        raw = []
        deadline = time.monotonic() + timeout
        while len(raw) < n and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=250)
            for recs in batch.values():
                raw.extend(recs)
        assert len(raw) >= n, (
            f"kafka-python read only {len(raw)} of {n} records from {topic}[{partition}] "
            f"within {timeout}s: {raw}"
        )
        recs = [
            Rec(r.offset, r.key, r.value, norm_headers(r.headers), r.timestamp) for r in raw
        ]
        return recs, raw
    finally:
        consumer.close()


def kcat_bin() -> str:
    path = shutil.which("kcat") or shutil.which("kafkacat")
    assert path, "kcat not installed (run compat-tests/setup.sh)"
    return path


def run(cmd, *, input: bytes | None = None, timeout: float = 60.0, check: bool = True, env=None):
    proc = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed with exit code {proc.returncode}: {cmd}\n"
            f"stdout:\n{proc.stdout.decode(errors='replace')}\n"
            f"stderr:\n{proc.stderr.decode(errors='replace')}"
        )
    return proc


def kcat_read_json(bootstrap: str, topic: str, n: int, partition: int = 0, offset="beginning"):
    """Read n records with `kcat -C -J` (JSON envelope) and return the dicts."""
    proc = run(
        [kcat_bin(), "-C", "-b", bootstrap, "-t", topic, "-p", str(partition),
         "-o", str(offset), "-c", str(n), "-e", "-J", "-q",
         "-X", "api.version.request=true"],
        timeout=60,
    )
    lines = [l for l in proc.stdout.decode().splitlines() if l.strip()]
    return [json.loads(l) for l in lines]


def assert_records(actual, expected, *, compare_timestamps=True):
    """Exact comparison of two lists of Rec, with a readable diff."""
    if not compare_timestamps:
        actual = [r.without_timestamp() for r in actual]
        expected = [r.without_timestamp() for r in expected]
    if list(actual) != list(expected):
        lines = [f"record mismatch: got {len(actual)} records, expected {len(expected)}"]
        shown = 0
        for i in range(max(len(actual), len(expected))):
            a = actual[i] if i < len(actual) else None
            e = expected[i] if i < len(expected) else None
            if a == e:
                continue
            shown += 1
            if shown > 6:
                lines.append("   ... (more mismatches not shown)")
                break
            lines.append(f"!! [{i}] got      {a}")
            lines.append(f"!! [{i}] expected {e}")
        raise AssertionError("\n".join(lines))
