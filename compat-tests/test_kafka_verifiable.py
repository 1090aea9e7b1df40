"""Kafka's VerifiableProducer and VerifiableConsumer (kafka-tools 4.1.2, what Kafka's own
system tests drive) across a kill -9 of the DuctStream broker: every record the producer saw
acknowledged is consumed afterwards, at the offset it was acknowledged with, with its value.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import helpers
from conftest import _finish_broker, _make_broker, group_args, require_group_support, broker_snapshot

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "kafka"))
import reference_kafka as ref  # noqa: E402

sys.path.remove(str(HERE / "kafka"))

RECORDS = 3000
THROUGHPUT = 600  # records/s: the run lasts about 5 s, the kill lands in the middle


def events(path: Path) -> list[dict]:
    out = []
    for line in path.read_text("utf-8", "replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line cut short by the kill
    return out


@pytest.fixture
def embedded_broker(request, tmp_path_factory):
    require_group_support(broker_snapshot(tmp_path_factory))
    b = _make_broker(request, tmp_path_factory, "embedded", group_args())
    yield b
    _finish_broker(b)


@pytest.mark.timeout(300)
def test_verifiable_producer_consumer_across_kill_9(embedded_broker, tmp_path):
    b = embedded_broker
    topic = helpers.unique_topic("verifiable").replace("_", "-")
    created = ref.run_tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", b.bootstrap,
                           "--create", "--topic", topic, "--partitions", "2")
    assert created.returncode == 0, created.stderr

    out = tmp_path / "producer.out"
    err = tmp_path / "producer.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        producer = subprocess.Popen(
            ref.tool_command("org.apache.kafka.tools.VerifiableProducer",
                             "--bootstrap-server", b.bootstrap, "--topic", topic,
                             "--max-messages", str(RECORDS), "--throughput", str(THROUGHPUT),
                             "--acks", "-1",
                             "--producer.config", str(_write(tmp_path / "producer.properties",
                                                             "delivery.timeout.ms=120000\n"
                                                             "reconnect.backoff.max.ms=200\n"))),
            stdin=subprocess.DEVNULL, stdout=fo, stderr=fe)
    try:
        helpers.wait_until(
            lambda: sum(e["name"] == "producer_send_success" for e in events(out)) >= RECORDS // 3,
            timeout=60, what="a third of the records acknowledged")
        b.proc.kill()  # kill -9, in the middle of the stream
        b.proc.wait(timeout=10)
        b.restart(keep_port=True)
        producer.wait(timeout=180)
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait()
    evs = events(out)
    acked = {(e["partition"], e["offset"]): e["value"] for e in evs if e["name"] == "producer_send_success"}
    failed = [e for e in evs if e["name"] == "producer_send_error"]
    summary = [e for e in evs if e["name"] == "tool_data"]
    assert summary, f"producer did not finish:\n{err.read_text()[-3000:]}"
    assert len(acked) >= RECORDS // 3
    assert len(acked) + len(failed) == RECORDS, (len(acked), len(failed), failed[:3])

    # Every partition's log: what a consumer group reads after the restart.
    end = {}
    for line in ref.run_tool("org.apache.kafka.tools.GetOffsetShell", "--bootstrap-server",
                             b.bootstrap, "--topic", topic).stdout.split():
        _, p, o = line.rsplit(":", 2)
        end[int(p)] = int(o)
    total = sum(end.values())
    assert total >= len(acked)
    print(f"acknowledged {len(acked)}, failed {len(failed)}, in the log {total}", file=sys.stderr)

    consumer = ref.run_tool("org.apache.kafka.tools.VerifiableConsumer", "--bootstrap-server",
                            b.bootstrap, "--topic", topic, "--group-id", f"g-{topic}",
                            "--max-messages", str(total), timeout=120)
    consumed: dict[int, list[tuple[int, int]]] = {}
    count = 0
    for line in consumer.stdout.splitlines():
        if not line.startswith("{"):
            continue
        e = json.loads(line)
        if e["name"] == "records_consumed":
            count += e["count"]
            for p in e["partitions"]:
                consumed.setdefault(p["partition"], []).append((p["minOffset"], p["maxOffset"]))
    assert count == total, f"consumed {count} of {total}\n{consumer.stderr[-3000:]}"
    for (p, off) in acked:
        assert any(lo <= off <= hi for lo, hi in consumed.get(p, [])), f"acknowledged {p}/{off} not consumed"

    # and each acknowledged offset holds the value acknowledged there
    for p in end:
        records, _ = helpers.kafka_python_read(b.bootstrap, topic, end[p], partition=p)
        by_offset = {r.offset: r.value for r in records}
        for (ap, off), value in acked.items():
            if ap == p:
                assert by_offset.get(off) == value.encode(), (p, off, value, by_offset.get(off))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
