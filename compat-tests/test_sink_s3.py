"""The S3 sink against SeaweedFS: objects read back by pyarrow, every record exactly once
across a kill -9 of the broker and across a restart of the object store, idle partitions
flushed by time, rotation limits kept, a missing bucket refused at create time."""

from __future__ import annotations

import io
import json
import re
import signal

import pyarrow.parquet as pq
import pytest

import helpers
from sink_support import SeaweedS3, admin, create_sink, create_topic, produce, sink_state, wait_caught_up

NAME = re.compile(r"partition=(\d+)/(?:.*/)?(\d{20})-(\d{20})\.(parquet|jsonl)$")


@pytest.fixture
def s3(tmp_path_factory):
    store = SeaweedS3(tmp_path_factory.mktemp("seaweed"), buckets=("lake",)).start()
    yield store
    store.stop()


def s3_sink(sink_id, topic, s3, **options):
    base = {"bucket": "lake", "prefix": sink_id, "endpoint": s3.endpoint, "access_key_id": "any", "secret_access_key": "any"}
    base.update({k: str(v) for k, v in options.items()})
    return {"id": sink_id, "topics": [topic], "destination": {"name": "lake", "type": "s3", "options": base}}


def parquet_rows(s3, prefix):
    """(partition, offset, value) of every row of every object, and the object names."""
    rows, names = [], s3.objects("lake", prefix)
    for name in names:
        table = pq.read_table(io.BytesIO(s3.read(name)))
        m = NAME.search(name)
        assert m, name
        first, last = int(m.group(2)), int(m.group(3))
        for p, o, v in zip(table["partition"].to_pylist(), table["offset"].to_pylist(), table["value"].to_pylist()):
            assert first <= o <= last, f"{name} holds offset {o}"
            rows.append((p, o, v))
    return rows, names


def test_parquet_exactly_once_across_a_broker_kill(broker, s3, tmp_path, topic):
    create_topic(broker.bootstrap, topic, 2)
    n = 6000
    produce(broker.bootstrap, topic, [(f"k{i}".encode(), f"v{i}".encode(), i % 2) for i in range(n)])
    create_sink(broker, tmp_path, s3_sink("lake1", topic, s3, rotate_records=500, rotate_interval="1s"))
    helpers.wait_until(lambda: len(s3.objects("lake", "lake1")) >= 3, timeout=60, what="first objects")
    broker.proc.send_signal(signal.SIGKILL)
    broker.proc.wait(10)
    broker.expected_exit = True
    broker.restart()
    broker.expected_exit = False
    produce(broker.bootstrap, topic, [(f"k{i}".encode(), f"v{i}".encode(), i % 2) for i in range(n, n + 1000)])
    state = wait_caught_up(broker, "lake1", timeout=120)
    assert sum(p["high_watermark"] for p in state["partitions"]) == n + 1000
    rows, names = parquet_rows(s3, "lake1")
    offsets = [(p, o) for p, o, _ in rows]
    assert len(offsets) == len(set(offsets)), "no record twice"
    assert sorted(v.decode() for _, _, v in rows) == sorted(f"v{i}" for i in range(n + 1000)), "every record"
    per_object = [pq.read_metadata(io.BytesIO(s3.read(name))).num_rows for name in names]
    assert max(per_object) <= 500, "rotation by records"
    assert all(name.startswith("lake/lake1/" + topic + "/partition=") for name in names)


def test_idle_partition_flushes_by_time_and_json_partitioned_by_day(broker, s3, tmp_path, topic):
    produce(broker.bootstrap, topic, [(b"a", json.dumps({"n": i}).encode(), None) for i in range(5)])
    create_sink(broker, tmp_path, s3_sink("lake2", topic, s3, format="json", rotate_interval="500ms", partition_by="timestamp:day"))
    helpers.wait_until(lambda: s3.objects("lake", "lake2"), timeout=30, what="an object for 5 records")
    (name,) = s3.objects("lake", "lake2")
    assert re.search(r"/partition=0/year=\d{4}/month=\d\d/day=\d\d/0{20}-0{19}4\.jsonl$", name), name
    lines = [json.loads(line) for line in s3.read(name).decode().splitlines()]
    assert [l["value"]["n"] for l in lines] == list(range(5))
    assert lines[0]["key"] == "a" and lines[0]["topic"] == topic


def test_store_restart_loses_and_repeats_nothing(broker, s3, tmp_path, topic):
    produce(broker.bootstrap, topic, [(None, f"v{i}".encode(), None) for i in range(1000)])
    create_sink(broker, tmp_path, s3_sink("lake3", topic, s3, rotate_records=200, rotate_interval="300ms"))
    wait_caught_up(broker, "lake3", timeout=60)
    s3.stop()
    produce(broker.bootstrap, topic, [(None, f"v{i}".encode(), None) for i in range(1000, 2000)])
    helpers.wait_until(lambda: "retrying" in sink_state(broker, "lake3")["last_error"], timeout=60, what="the sink to see the store gone")
    assert sink_state(broker, "lake3")["state"] == "RUNNING"
    s3.start()
    wait_caught_up(broker, "lake3", timeout=120)
    rows, _ = parquet_rows(s3, "lake3")
    assert sorted(o for _, o, _ in rows) == list(range(2000))


def test_missing_bucket_is_refused_at_create_time(broker, s3, tmp_path, topic):
    definition = s3_sink("nobucket", topic, s3)
    definition["destination"]["options"]["bucket"] = "no-such-bucket"
    code, out = create_sink(broker, tmp_path, definition, check=False)
    assert code == 1 and "FailedPrecondition" in out and "does not exist" in out, out
    assert admin(broker, "sink", "list")[1] == []


def test_stop_reset_and_delete(broker, s3, tmp_path, topic):
    produce(broker.bootstrap, topic, [(None, f"v{i}".encode(), None) for i in range(10)])
    create_sink(broker, tmp_path, s3_sink("lake4", topic, s3, rotate_interval="300ms", format="json"))
    wait_caught_up(broker, "lake4")
    code, out = admin(broker, "sink", "reset", "lake4", check=False)
    assert code == 1 and "stop it" in out
    assert admin(broker, "sink", "stop", "lake4")[1]["state"] == "PAUSED"
    assert admin(broker, "sink", "reset", "lake4", "--to", "earliest")[1]["partitions"][0]["committed"] == -1
    admin(broker, "sink", "start", "lake4")
    wait_caught_up(broker, "lake4")
    # The same cut written again: the same object, overwritten.
    assert len(s3.objects("lake", "lake4")) == 1
    admin(broker, "sink", "delete", "lake4")
    assert admin(broker, "sink", "list")[1] == []


def test_wrong_credentials_are_refused_at_create_time(broker, tmp_path_factory, tmp_path, topic):
    store = SeaweedS3(tmp_path_factory.mktemp("seaweed-auth"), buckets=("lake",), credentials=("right-key", "right-secret")).start()
    try:
        wrong = s3_sink("wrong", topic, store, access_key_id="right-key", secret_access_key="not-the-secret")
        code, out = create_sink(broker, tmp_path, wrong, check=False)
        assert code == 1 and "FailedPrecondition" in out and "SignatureDoesNotMatch" in out, out
        unknown = s3_sink("unknown", topic, store, access_key_id="nobody", secret_access_key="x")
        code, out = create_sink(broker, tmp_path, unknown, check=False)
        assert code == 1 and "FailedPrecondition" in out and "InvalidAccessKeyId" in out, out
        produce(broker.bootstrap, topic, [(None, b"v", None)])
        right = s3_sink("right", topic, store, access_key_id="right-key", secret_access_key="right-secret", rotate_interval="300ms")
        create_sink(broker, tmp_path, right)
        wait_caught_up(broker, "right")
        assert admin(broker, "sink", "get", "right")[1]["destination"]["options"]["secret_access_key"] == "***"
    finally:
        store.stop()


def test_arrow_ipc_files_read_back_by_pyarrow(broker, s3, tmp_path, topic):
    import pyarrow.ipc as ipc

    produce(broker.bootstrap, topic, [(f"k{i}".encode(), f"v{i}".encode(), None) for i in range(50)])
    create_sink(broker, tmp_path, s3_sink("lake5", topic, s3, format="arrow", rotate_records=20, rotate_interval="300ms"))
    wait_caught_up(broker, "lake5")
    names = s3.objects("lake", "lake5")
    assert len(names) == 3 and all(n.endswith(".arrow") for n in names), names
    values = []
    for name in names:
        table = ipc.open_file(io.BytesIO(s3.read(name))).read_all()
        assert table.column_names == ["topic", "partition", "offset", "timestamp", "key", "value", "headers"]
        values += table["value"].to_pylist()
    assert sorted(values) == sorted(f"v{i}".encode() for i in range(50))


def test_avro_container_files_read_back_by_fastavro(broker, s3, tmp_path, topic):
    import fastavro

    produce(broker.bootstrap, topic, [(f"k{i}".encode() if i % 2 else None, f"v{i}".encode(), None) for i in range(30)])
    create_sink(broker, tmp_path, s3_sink("lake6", topic, s3, format="avro", compression="deflate", rotate_records=10, rotate_interval="300ms"))
    wait_caught_up(broker, "lake6")
    names = s3.objects("lake", "lake6")
    assert len(names) == 3 and all(n.endswith(".avro") for n in names), names
    rows = []
    for name in names:
        reader = fastavro.reader(io.BytesIO(s3.read(name)))
        assert reader.codec == "deflate"
        rows += list(reader)
    assert sorted(r["offset"] for r in rows) == list(range(30))
    assert {r["offset"]: r["key"] for r in rows}[0] is None
    assert {r["offset"]: r["key"] for r in rows}[1] == b"k1"
    assert all(r["topic"] == topic and r["value"] == f"v{r['offset']}".encode() for r in rows)


def test_proto_files_decoded_with_the_schema_from_reflection(broker, s3, tmp_path, topic):
    """Each object is ductstream.v1.SinkRecord messages, each after its varint length; the
    message type comes from the broker's gRPC reflection, not from the sink's code."""
    from google.protobuf import message_factory
    from google.protobuf.internal.decoder import _DecodeVarint32

    from test_grpc_reflection import ReflectedClient

    produce(broker.bootstrap, topic, [(None if i == 0 else f"k{i}".encode(), f"v{i}".encode(), None) for i in range(12)])
    create_sink(broker, tmp_path, s3_sink("lake7", topic, s3, format="proto", rotate_records=5, rotate_interval="300ms"))
    wait_caught_up(broker, "lake7")
    client = ReflectedClient(broker.grpc)
    client._load_symbol("ductstream.v1.SinkRecord")
    SinkRecord = message_factory.GetMessageClass(client.pool.FindMessageTypeByName("ductstream.v1.SinkRecord"))
    names = s3.objects("lake", "lake7")
    assert len(names) == 3 and all(n.endswith(".binpb") for n in names), names
    decoded = []
    for name in names:
        data, at = s3.read(name), 0
        while at < len(data):
            length, at = _DecodeVarint32(data, at)
            decoded.append(SinkRecord.FromString(data[at:at + length]))
            at += length
    assert [m.offset for m in decoded] == list(range(12))
    assert not decoded[0].HasField("key") and decoded[1].key == b"k1"
    assert all(m.topic == topic and m.value == f"v{m.offset}".encode() for m in decoded)
