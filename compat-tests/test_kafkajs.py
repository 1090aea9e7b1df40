"""kafkajs against DuctStream. kafkajs has no consumer without a consumer
group, so node/kafkajs_test.js does admin + produce (plain gzip and
idempotent) and the messages are read back here with kafka-python and kcat."""

from __future__ import annotations

import base64
import json
import os
import shutil

import pytest

import helpers
from helpers import HERE, Rec, run

SCRIPT = HERE / "node" / "kafkajs_test.js"


def run_kafkajs(bootstrap, topic, base_ts):
    node = shutil.which("node")
    assert node, "node not installed (run compat-tests/setup.sh)"
    assert (HERE / "node" / "node_modules" / "kafkajs").exists(), "run compat-tests/setup.sh"
    proc = run([node, str(SCRIPT), bootstrap, topic, str(base_ts)], timeout=180, check=False)
    lines = [l for l in proc.stdout.decode().splitlines() if l.startswith("{")]
    assert proc.returncode == 0 and lines, (
        f"kafkajs driver failed rc={proc.returncode}\nstdout:\n{proc.stdout.decode()}\n"
        f"stderr:\n{proc.stderr.decode()}"
    )
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def kafkajs_run(module_broker):
    """Run the node driver once per module; every test asserts on one part."""
    topic = helpers.unique_topic("kafkajs")
    base_ts = helpers.now_ms() - 3_600_000
    out = run_kafkajs(module_broker.bootstrap, topic, base_ts)
    return module_broker, topic, base_ts, out


def ok(out, name):
    s = out["steps"].get(name)
    assert s is not None, f"step {name} did not run: {sorted(out['steps'])}"
    assert s["ok"], f"kafkajs step {name} failed: {json.dumps(s['error'])}"
    return s.get("value")


def test_kafkajs_admin_create_and_metadata(kafkajs_run):
    _, topic, _, out = kafkajs_run
    assert ok(out, "admin_connect") is None
    assert ok(out, "create_topics") is True
    assert ok(out, "create_topics_again") is False  # already exists -> false, no throw
    assert topic in ok(out, "list_topics")
    md = ok(out, "fetch_topic_metadata")
    [t] = md["topics"]
    assert t["name"] == topic
    assert sorted(p["partitionId"] for p in t["partitions"]) == [0, 1]
    assert all(p["partitionErrorCode"] == 0 for p in t["partitions"]), t


def test_kafkajs_describe_cluster_and_configs(kafkajs_run):
    broker, topic, _, out = kafkajs_run
    cluster = ok(out, "describe_cluster")
    assert len(cluster["brokers"]) == 1, cluster
    host, port = broker.bootstrap.rsplit(":", 1)
    b = cluster["brokers"][0]
    assert (b["host"], b["port"]) == (host, int(port)), cluster
    assert cluster["controller"] == b["nodeId"], cluster
    assert cluster["clusterId"], cluster
    cfg = ok(out, "describe_configs")
    assert cfg["errorCode"] == 0 and cfg["resourceName"] == topic, cfg
    assert cfg["configs"].get("retention.ms") == "3600000", cfg


def test_kafkajs_produce_results(kafkajs_run):
    _, topic, _, out = kafkajs_run
    ok(out, "producer_connect")
    res = ok(out, "send_gzip")
    assert [(r["topicName"], r["partition"], r["errorCode"], r["baseOffset"]) for r in res] == [
        (topic, 0, 0, "0")
    ], res
    ok(out, "idempotent_connect")
    res = ok(out, "send_idempotent")
    assert [(r["topicName"], r["partition"], r["errorCode"], r["baseOffset"]) for r in res] == [
        (topic, 1, 0, "0")
    ], res


def test_kafkajs_fetch_topic_offsets(kafkajs_run):
    _, _, base_ts, out = kafkajs_run
    offs = sorted(ok(out, "fetch_topic_offsets"), key=lambda o: o["partition"])
    assert [(o["partition"], o["low"], o["high"], o["offset"]) for o in offs] == [
        (0, "0", "5", "5"), (1, "0", "3", "3"),
    ], offs
    by_ts = sorted(ok(out, "fetch_topic_offsets_by_timestamp"), key=lambda o: o["partition"])
    # p0 timestamps are base+0..4 -> first >= base+3 is offset 3;
    # p1 timestamps are base+100.. -> offset 0
    assert [(o["partition"], o["offset"]) for o in by_ts] == [(0, "3"), (1, "0")], by_ts


def test_kafkajs_create_partitions_delete_records_delete_topic(kafkajs_run):
    _, topic, _, out = kafkajs_run
    assert ok(out, "create_partitions") is None
    md = ok(out, "fetch_topic_metadata_after_create_partitions")
    assert sorted(p["partitionId"] for p in md["topics"][0]["partitions"]) == [0, 1, 2]
    assert ok(out, "create_del_topic") is True
    ok(out, "del_topic_produce")
    ok(out, "delete_topic_records")
    [o] = ok(out, "fetch_offsets_after_delete_records")
    assert (o["low"], o["high"]) == ("2", "4"), o
    ok(out, "delete_topics")
    assert f"{topic}-del" not in ok(out, "list_topics_after_delete")


def _expected_from_js(produced, partition):
    msgs = [m for m in produced if m["partition"] == partition]
    out = []
    for i, m in enumerate(msgs):
        headers = []
        for k, v in m["headers"].items():
            for one in v if isinstance(v, list) else [v]:
                headers.append((k, one.encode()))
        out.append(Rec(i, m["key"].encode() if m["key"] is not None else None,
                       base64.b64decode(m["value_b64"]), tuple(headers), m["timestamp"]))
    return out


def test_kafkajs_messages_read_back(kafkajs_run):
    """What kafkajs produced, read back exactly by kafka-python and kcat."""
    broker, topic, _, out = kafkajs_run
    ok(out, "send_gzip")
    ok(out, "send_idempotent")
    for partition, n in ((0, 5), (1, 3)):
        expected = _expected_from_js(out["produced"], partition)
        got, _ = helpers.kafka_python_read(broker.bootstrap, topic, n, partition=partition)
        helpers.assert_records(got, expected)
    kc = helpers.kcat_read_json(broker.bootstrap, topic, 5, partition=0)
    assert [(r["offset"], r["key"], r["payload"], r["ts"]) for r in kc] == [
        (e.offset, e.key.decode() if e.key is not None else None, e.value.decode(), e.timestamp)
        for e in _expected_from_js(out["produced"], 0)
    ]
