"""Current IBM/sarama (the version sarama-modern/go.mod pins, fetched through the Go module
proxy by setup.sh) against DuctStream and against the reference Apache Kafka 4.1.2, with
`config.Version = V4_1_0_0`: ClusterAdmin, an idempotent SyncProducer in every codec with keys
and headers, partition consumers from the oldest offset, and a consumer group of two members
(round robin) that commits what it consumed. The driver, sarama-modern/main.go, prints one
JSON line per step; each test asserts on some of them. Debian's sarama 1.22 keeps its own
tests (test_sarama.py, test_groups_sarama.py)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

import helpers
from helpers import COMPAT_BIN, run

SARAMA_BIN = Path(os.environ.get("DUCTSTREAM_SARAMA_MODERN_BIN", str(COMPAT_BIN / "sarama-modern-compat")))
CODECS = ["gzip", "lz4", "none", "snappy", "zstd"]
PER_CODEC, PARTITIONS = 20, 3


@pytest.fixture(scope="module")
def ds_broker(module_group_broker):
    return module_group_broker


@pytest.fixture(scope="module", params=["ductstream", "kafka"])
def steps(request):
    """The driver's steps against one target."""
    assert SARAMA_BIN.exists(), f"{SARAMA_BIN} missing: run compat-tests/setup.sh"
    if request.param == "ductstream":
        bootstrap = request.getfixturevalue("ds_broker").bootstrap
    else:
        bootstrap = request.getfixturevalue("reference_kafka").bootstrap
    proc = run([str(SARAMA_BIN), bootstrap, helpers.unique_topic("sarama-modern")], timeout=240, check=False)
    out = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.startswith("{")]
    assert out and out[-1]["step"] == "done", (
        f"sarama driver did not finish (rc={proc.returncode}): {out[-3:]}\nstderr:\n{proc.stderr.decode()[-3000:]}")
    return out


def one(steps, name, **match):
    found = [s for s in steps if s["step"] == name and all(s.get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"step {name} {match}: {found}; steps run: {[s['step'] for s in steps]}"
    assert found[0]["ok"], f"sarama step {name} {match} failed: {found[0].get('error')}"
    return found[0]


def produced(steps) -> dict[tuple[int, int], tuple[str, str, str]]:
    """(partition, offset) -> (key, value, codec header) of every record the producer wrote."""
    out = {}
    for codec in CODECS:
        s = one(steps, "produce", codec=codec)
        assert s["count"] == PER_CODEC
        for i, offset in enumerate(s["offsets"]):
            out[(i % PARTITIONS, offset)] = (f"{codec}-k{i}", f"{codec}-v{i}", codec)
    return out


def test_sarama_modern_admin(steps):
    assert one(steps, "done")
    one(steps, "create_topic")
    assert one(steps, "create_topic_again")["already_exists"] is True
    described = one(steps, "describe_topics")
    assert (described["partitions"], described["error_code"]) == (PARTITIONS, 0)
    assert one(steps, "describe_config")["values"] == {"retention.ms": "3600000"}


def test_sarama_modern_idempotent_producer_in_every_codec(steps):
    records = produced(steps)
    assert len(records) == PER_CODEC * len(CODECS), "an offset was given twice"
    by_partition = defaultdict(list)
    for p, o in records:
        by_partition[p].append(o)
    for p, offsets in by_partition.items():
        assert sorted(offsets) == list(range(len(offsets))), f"partition {p}: offsets not dense: {sorted(offsets)}"


def test_sarama_modern_partition_consumer(steps):
    got = {(r["partition"], r["offset"]): (r["key"], r["value"], r["header"]) for r in one(steps, "consume")["records"]}
    assert got == produced(steps)


def test_sarama_modern_consumer_group(steps):
    records = produced(steps)
    group = one(steps, "group")
    consumed = {(r["partition"], r["offset"]) for m in "ab" for r in group[f"consumed_{m}"]}
    assert consumed == set(records), "the group did not read every record exactly"
    # both members were given partitions, and at the end they shared all three
    assert group["claims_a"] and group["claims_b"], group
    assert sorted(group["claims_a"][-1] + group["claims_b"][-1]) == list(range(PARTITIONS))
    ends = defaultdict(int)
    for p, o in records:
        ends[str(p)] = max(ends[str(p)], o + 1)
    assert one(steps, "group_offsets")["committed"] == dict(ends)
    assert one(steps, "describe_group")["state"] == "Empty"
