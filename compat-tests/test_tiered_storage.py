"""The remote tier against SeaweedFS, on the embedded store and on Postgres: a topic with a
tiny local retention moves its sealed segments to S3 and its local log shrinks, yet every
client reads every record from offset 0, offsets by time below the local start resolve, a
durable consumer starts at offset 0 and replays from a time below the local start, and
DeleteRecords, retention and topic deletion remove objects. An S3 outage mid-read is a
retriable error and the read then completes; a missing object is a clear error, never other
data; a kill -9 mid-upload resumes without duplicate ranges; with two brokers on one Postgres,
the survivor of a kill -9 serves what the other uploaded. Uploaded records are appended to an
Iceberg table per topic, read back with pyiceberg; a CDC flow's table topic also gets typed
columns, one per source column, which grow when the source table does."""

from __future__ import annotations

import datetime
import json
import re
import signal
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import helpers
from sink_support import SeaweedS3, admin
from table_sink_support import create_flow, delete_flow, insert_items, psql, seed
from test_compaction import READERS

BUCKET = "tier"
# Segments of 16 KiB: a few thousand records make a dozen sealed segments to upload.
TIERED = {"remote.storage.enable": "true", "segment.bytes": "16384", "local.retention.ms": "0"}
OBJECT = re.compile(r"/(\d+)/(\d{20})-(\d{20})\.batches$")
# An hour ago: within the default retention, and old enough for retention.ms=1000 to delete.
BASE_TS = (int(time.time()) - 3600) * 1000


@pytest.fixture
def s3(tmp_path_factory):
    store = SeaweedS3(tmp_path_factory.mktemp("seaweed"), buckets=(BUCKET,)).start()
    yield store
    store.stop()


def tier_args(s3) -> list[str]:
    return ["--tier-s3-bucket", BUCKET, "--tier-s3-endpoint", s3.endpoint, "--tier-s3-prefix", "cluster-a",
            "--tier-s3-access-key-id", "any", "--tier-s3-secret-access-key", "any", "--tier-interval-ms", "200",
            "--log-retention-check-interval-ms", "200"]


@pytest.fixture(params=["embedded", "postgres"])
def tier_broker(request, broker_factory, s3):
    return broker_factory(*tier_args(s3), storage=request.param)


def create(bootstrap: str, topic: str, partitions: int = 1, **configs: str):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1, config={**TIERED, **configs})], operation_timeout=15)[topic].result(timeout=30)


def produce(bootstrap: str, topic: str, n: int, start: int = 0, partition: int = 0) -> list[tuple[int, bytes, bytes]]:
    """n records with a timestamp a second apart, in small batches; (offset, key, value) each."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 4096})
    for i in range(start, start + n):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}-".encode() + b"x" * 100, partition=partition, timestamp=BASE_TS + 1000 * i)
    assert p.flush(60) == 0
    return [(i, f"k{i}".encode(), f"v{i}-".encode() + b"x" * 100) for i in range(start, start + n)]


def local_log_start(broker, s3, topic: str) -> int:
    """Where the store's own copy of partition 0 starts now (0 before any upload)."""
    if broker.storage == "postgres":
        sql = ("SELECT p.log_start FROM ductstream_partitions p JOIN ductstream_topics t ON t.id = p.topic_id "
               f"WHERE t.name = '{topic}' AND p.partition = 0")
        return int(psql(broker.storage_url, sql) or 0)
    names = [name for _, _, name in objects(s3, topic)]
    if not names:
        return 0
    # Objects sit under `<topic>-<topic id>/`, and the store's partition folder is `<topic id>-0`.
    topic_id = names[0].split(f"/{topic}-", 1)[1].split("/", 1)[0]
    return min(int(f.stem) for f in (Path(broker.data_dir) / f"{topic_id}-0").glob("*.log"))


def objects(s3, topic: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of every object of the topic's partition 0, by start."""
    out = []
    for name in s3.objects(BUCKET, "cluster-a"):
        m = OBJECT.search(name)
        if m and f"/{topic}-" in name and m.group(1) == "0":
            out.append((int(m.group(2)), int(m.group(3)), name))
    return sorted(out)


def wait_tiered(broker, s3, topic: str, below: int):
    """Until objects cover offsets [0, below) and the local log starts at or after `below`."""
    def done():
        objs = objects(s3, topic)
        return objs and objs[0][0] == 0 and objs[-1][1] >= below and local_log_start(broker, s3, topic) >= below
    helpers.wait_until(done, timeout=90, interval=0.3, what=f"offsets below {below} uploaded and trimmed locally")


def watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=15)
    finally:
        c.close()


def test_clients_read_every_record_from_the_remote_tier(tier_broker, s3, topic):
    create(tier_broker.bootstrap, topic)
    sent = produce(tier_broker.bootstrap, topic, 3000)
    wait_tiered(tier_broker, s3, topic, 1000)
    assert watermarks(tier_broker.bootstrap, topic) == (0, 3000), "clients see one log from offset 0"
    for name, read in READERS:
        got = read(tier_broker.bootstrap, topic)
        assert got == sent, f"{name} read {len(got)} records, not the 3000 produced, in order"

    # Offsets by time below the local start: the first record at or after each time.
    c = Consumer({"bootstrap.servers": tier_broker.bootstrap, "group.id": "unused"})
    try:
        for i in (0, 1, 250, 999):
            [found] = c.offsets_for_times([TopicPartition(topic, 0, BASE_TS + 1000 * i - 500)], timeout=15)
            assert found.offset == i, f"time of record {i} gave offset {found.offset}"
    finally:
        c.close()

    # A durable consumer starts at the log start, and replays from a time below the local start.
    pull = ("stream", "pull", "--stream", topic, "--group", "replayer", "--max", "50")
    code, pulled = admin(tier_broker, *pull)
    assert code == 0 and [m["value"] for m in pulled] == [v.decode() for _, _, v in sent[:50]], pulled
    since = datetime.datetime.fromtimestamp((BASE_TS + 500_000) / 1000, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    admin(tier_broker, "stream", "replay", "--stream", topic, "--group", "replayer", "--since", since)
    code, pulled = admin(tier_broker, *pull)
    assert code == 0 and [m["value"] for m in pulled] == [v.decode() for _, _, v in sent[500:550]], pulled


def test_delete_records_and_retention_delete_remote_objects(tier_broker, s3, topic):
    create(tier_broker.bootstrap, topic)
    produce(tier_broker.bootstrap, topic, 3000)
    wait_tiered(tier_broker, s3, topic, 1000)
    first = objects(s3, topic)[0]
    admin = AdminClient({"bootstrap.servers": tier_broker.bootstrap})
    cut = first[1] + 3
    [result] = admin.delete_records([TopicPartition(topic, 0, cut)]).values()
    assert result.result(timeout=30).low_watermark == cut
    assert watermarks(tier_broker.bootstrap, topic)[0] == cut
    helpers.wait_until(lambda: first not in objects(s3, topic), timeout=30, what="the first object deleted")

    # retention.ms: every record is years old, so retention takes all but the active segment's.
    admin.incremental_alter_configs([_set(topic, "retention.ms", "1000")])[_res(topic)].result(timeout=30)
    helpers.wait_until(lambda: len(objects(s3, topic)) == 0, timeout=60, what="retention to delete every object")

    # Deleting the topic deletes its objects.
    admin.incremental_alter_configs([_set(topic, "retention.ms", "604800000")])[_res(topic)].result(timeout=30)
    produce(tier_broker.bootstrap, topic, 500, start=3000)
    helpers.wait_until(lambda: len(objects(s3, topic)) > 0, timeout=60, what="new uploads")
    admin.delete_topics([topic], operation_timeout=30)[topic].result(timeout=30)
    helpers.wait_until(lambda: len(objects(s3, topic)) == 0, timeout=30, what="the topic's objects deleted")


def _res(topic: str):
    from confluent_kafka.admin import ConfigResource, ResourceType

    return ConfigResource(ResourceType.TOPIC, topic)


def _set(topic: str, name: str, value: str):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

    res = _res(topic)
    res.add_incremental_config(ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET))
    return res


def read_in_background(bootstrap: str, topic: str, n: int):
    """Reads from offset 0 with librdkafka until n records or 120 s; (records, errors)."""
    got, errors = [], []

    def run():
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.time() + 120
        try:
            while len(got) < n and time.time() < deadline:
                m = c.poll(0.5)
                if m is None:
                    continue
                if m.error():
                    errors.append(m.error())
                    continue
                got.append((m.offset(), m.key(), m.value()))
        finally:
            c.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, got, errors


# Without a read cache: retention's time lookups read the first objects, which a cache would
# then serve through the outage or after the deletion.
NO_CACHE = ("--tier-cache-bytes", "0")


def test_an_s3_outage_mid_read_is_retried_then_the_read_completes(broker_factory, s3, topic):
    broker = broker_factory(*tier_args(s3), *NO_CACHE)
    create(broker.bootstrap, topic)
    sent = produce(broker.bootstrap, topic, 2000)
    wait_tiered(broker, s3, topic, 800)
    s3.stop()
    reader, got, errors = read_in_background(broker.bootstrap, topic, len(sent))
    time.sleep(4)
    assert got == [], "nothing to read while the object store is down"
    assert broker.proc.poll() is None
    s3.start()
    reader.join(150)
    assert got == sent
    assert not [e for e in errors if e.fatal()], errors
    assert "remote tier" in broker.stderr_text()


def test_a_missing_object_is_an_error_never_other_data(broker_factory, s3, topic):
    broker = broker_factory(*tier_args(s3), *NO_CACHE)
    create(broker.bootstrap, topic)
    sent = produce(broker.bootstrap, topic, 2000)
    wait_tiered(broker, s3, topic, 800)
    start, end, name = objects(s3, topic)[0]
    s3.filesystem().delete_file(name)
    reader, got, _ = read_in_background(broker.bootstrap, topic, len(sent))
    time.sleep(5)
    assert got == [], f"records {got[:1]} came from somewhere other than the missing object"
    helpers.wait_until(lambda: "is missing from the remote tier" in broker.stderr_text(), timeout=15, what="the broker to name the missing object")
    # Past the missing object, the rest still reads.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    c.assign([TopicPartition(topic, 0, end)])
    try:
        m = None
        deadline = time.time() + 30
        while m is None and time.time() < deadline:
            m = c.poll(0.5)
        assert m is not None and not m.error() and (m.offset(), m.key(), m.value()) == sent[end]
    finally:
        c.close()
    reader.join(1)


def test_a_kill_during_uploads_resumes_without_duplicate_ranges(broker_factory, s3, topic):
    broker = broker_factory(*tier_args(s3))
    create(broker.bootstrap, topic)
    sent = produce(broker.bootstrap, topic, 4000)
    helpers.wait_until(lambda: len(objects(s3, topic)) >= 2, timeout=60, what="the first uploads")
    broker.proc.send_signal(signal.SIGKILL)
    broker.proc.wait(10)
    broker.expected_exit = True
    broker.restart()
    broker.expected_exit = False
    wait_tiered(broker, s3, topic, 3000)
    ranges = [(s, e) for s, e, _ in objects(s3, topic)]
    for (s1, e1), (s2, e2) in zip(ranges, ranges[1:]):
        assert e1 == s2, f"objects overlap or leave a gap: {ranges}"
    for name, read in READERS[:2]:
        assert read(broker.bootstrap, topic) == sent, name


def test_remote_storage_configs_are_checked(broker_factory, s3, topic):
    plain = broker_factory()
    admin = AdminClient({"bootstrap.servers": plain.bootstrap})
    fut = admin.create_topics([NewTopic(topic, 1, 1, config={"remote.storage.enable": "true"})], operation_timeout=15)[topic]
    with pytest.raises(Exception, match="Tiered Storage functionality is disabled"):
        fut.result(timeout=30)
    tiered = broker_factory(*tier_args(s3))
    admin = AdminClient({"bootstrap.servers": tiered.bootstrap})
    for bad, why in [({"cleanup.policy": "compact"}, "cleanup.policy=delete"),
                     ({"retention.ms": "1000", "local.retention.ms": "5000"}, "must not be more than")]:
        fut = admin.create_topics([NewTopic(topic, 1, 1, config={"remote.storage.enable": "true", **bad})], operation_timeout=15)[topic]
        with pytest.raises(Exception, match=re.escape(why)):
            fut.result(timeout=30)
    assert topic not in admin.list_topics(timeout=15).topics


def read_partition(bootstrap: str, topic: str, partition: int, n: int, timeout: float = 60) -> list[tuple[int, bytes, bytes]]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, 0)])
    got = []
    deadline = time.time() + timeout
    try:
        while len(got) < n and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    return got


def test_another_broker_on_the_same_postgres_serves_what_the_first_uploaded(broker_factory, postgres_cluster, s3, topic):
    url = postgres_cluster.createdb("tiered_cluster")
    common = (*tier_args(s3), "--broker-lease-ms", "2000")
    first = broker_factory("--node-id", "1", *common, storage="postgres", storage_url=url)
    second = broker_factory("--node-id", "2", *common, storage="postgres", storage_url=url)
    helpers.wait_until(lambda: len(AdminClient({"bootstrap.servers": first.bootstrap}).list_topics(timeout=10).brokers) == 2,
                       timeout=30, what="both brokers in the cluster")
    create(first.bootstrap, topic, partitions=2)
    sent = {p: produce(first.bootstrap, topic, 1500, partition=p) for p in (0, 1)}

    def tiered(p):
        sql = ("SELECT p.log_start FROM ductstream_partitions p JOIN ductstream_topics t ON t.id = p.topic_id "
               f"WHERE t.name = '{topic}' AND p.partition = {p}")
        return int(psql(url, sql) or 0) >= 500
    helpers.wait_until(lambda: tiered(0) and tiered(1), timeout=90, interval=0.5, what="both partitions uploaded and trimmed")
    # Whichever broker uploaded a partition, the other one serves it once the first is gone.
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    first.expected_exit = True
    for p in (0, 1):
        assert read_partition(second.bootstrap, topic, p, 1500) == sent[p], f"partition {p}"


ICEBERG_KEYS = ("dsaccess", "dssecret")


@pytest.fixture
def lake_s3(tmp_path_factory):
    store = SeaweedS3(tmp_path_factory.mktemp("seaweed"), buckets=(BUCKET,), credentials=ICEBERG_KEYS, table_buckets=("lake",)).start()
    yield store
    store.stop()


def iceberg_catalog(s3):
    from pyiceberg.catalog import load_catalog

    return load_catalog("lake", **{
        "type": "rest", "uri": s3.iceberg_url, "warehouse": "lake", "credential": ":".join(ICEBERG_KEYS),
        # Files are read with the keys below, not with credentials the catalog would vend.
        "header.X-Iceberg-Access-Delegation": "",
        "s3.endpoint": s3.endpoint, "s3.access-key-id": ICEBERG_KEYS[0], "s3.secret-access-key": ICEBERG_KEYS[1],
        "s3.region": "us-east-1"})


def lake_args(s3) -> list[str]:
    return ["--tier-s3-bucket", BUCKET, "--tier-s3-endpoint", s3.endpoint, "--tier-s3-prefix", "cluster-a",
            "--tier-s3-access-key-id", ICEBERG_KEYS[0], "--tier-s3-secret-access-key", ICEBERG_KEYS[1],
            "--tier-interval-ms", "200", "--tier-iceberg-catalog-url", s3.iceberg_url, "--tier-iceberg-warehouse", "lake"]


def table_rows(s3, topic: str) -> list[dict]:
    table = iceberg_catalog(s3).load_table("ductstream." + re.sub(r"[^a-z0-9]", "_", topic.lower()))
    return table.scan().to_arrow().sort_by("offset").to_pylist()


def test_uploaded_records_land_in_an_iceberg_table_per_topic(broker_factory, lake_s3, topic):
    args = ["--tier-s3-bucket", BUCKET, "--tier-s3-endpoint", lake_s3.endpoint, "--tier-s3-prefix", "cluster-a",
            "--tier-s3-access-key-id", ICEBERG_KEYS[0], "--tier-s3-secret-access-key", ICEBERG_KEYS[1],
            "--tier-interval-ms", "200", "--tier-iceberg-catalog-url", lake_s3.iceberg_url, "--tier-iceberg-warehouse", "lake"]
    broker = broker_factory(*args)
    create(broker.bootstrap, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "batch.size": 4096})
    sent = []
    for i in range(3000):
        key = None if i % 7 == 0 else f"k{i}".encode()
        headers = [("n", str(i).encode()), ("empty", None)] if i % 2 else []
        p.produce(topic, key=key, value=f"v{i}-".encode() + b"x" * 100, partition=0, timestamp=BASE_TS + 1000 * i, headers=headers)
        sent.append((0, i, BASE_TS + 1000 * i, key, f"v{i}-".encode() + b"x" * 100, [(k, v) for k, v in headers]))
    assert p.flush(60) == 0
    wait_tiered(broker, lake_s3, topic, 1000)

    catalog = iceberg_catalog(lake_s3)
    table_name = "ductstream." + re.sub(r"[^a-z0-9]", "_", topic.lower())

    def rows():
        table = catalog.load_table(table_name)
        return table.scan().to_arrow().sort_by("offset").to_pylist()

    helpers.wait_until(lambda: len(rows()) >= 1000, timeout=60, interval=1, what="the Iceberg table to hold the uploaded records")
    got = rows()
    uploaded_end = objects(lake_s3, topic)[-1][1]
    assert len(got) >= min(uploaded_end, 1000)
    for row in got:
        part, offset, ts, key, value, headers = sent[row["offset"]]
        assert (row["partition"], row["key"], row["value"]) == (part, key, value), row["offset"]
        assert int(row["timestamp"].timestamp() * 1000) == ts
        assert [(h["key"], h["value"]) for h in row["headers"]] == headers
    assert [r["offset"] for r in got] == list(range(len(got))), "each record once, in order"

    # The data files are plain Parquet, partitioned by day, for any reader (DuckDB here).
    import duckdb

    table = catalog.load_table(table_name)
    files = [task.file.file_path for task in table.scan().plan_files()]
    assert files and all("/data/timestamp_day=" in f for f in files), files
    local = Path(broker.data_dir).parent / "lake.parquet"
    local.write_bytes(lake_s3.read(files[0].removeprefix("s3://")))
    count = duckdb.sql(f"SELECT count(*), min(\"offset\") FROM read_parquet('{local}')").fetchone()
    assert count[0] > 0 and count[1] >= 0


def test_the_iceberg_table_holds_committed_records_only(broker_factory, lake_s3, topic):
    broker = broker_factory(*lake_args(lake_s3))
    create(broker.bootstrap, topic)
    produce(broker.bootstrap, topic, 300)
    txn = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": f"tx-{topic}"})
    txn.init_transactions(30)
    for outcome in ("commit", "abort"):
        txn.begin_transaction()
        for i in range(100):
            txn.produce(topic, value=f"{outcome}-{i}".encode() + b"x" * 100, partition=0)
        (txn.commit_transaction if outcome == "commit" else txn.abort_transaction)(30)
    produce(broker.bootstrap, topic, 1500, start=600)
    helpers.wait_until(lambda: len(table_rows(lake_s3, topic)) >= 1000, timeout=90, interval=1, what="the table to fill")
    values = [r["value"].split(b"x")[0].decode() for r in table_rows(lake_s3, topic)]
    assert [v for v in values if v.startswith("commit-")] == [f"commit-{i}" for i in range(100)]
    assert not [v for v in values if v.startswith("abort-")], "records of an aborted transaction"

    # A topic deleted and created again under the same name gets a table of its own records.
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.delete_topics([topic], operation_timeout=30)[topic].result(timeout=30)
    create(broker.bootstrap, topic)
    produce(broker.bootstrap, topic, 1200, start=5000)
    def fresh_table():
        rows = table_rows(lake_s3, topic)
        return rows and rows[0]["offset"] == 0 and rows[0]["value"].startswith(b"v5000-")
    helpers.wait_until(fresh_table, timeout=90, interval=1, what="the recreated topic's own table")
    assert not [r for r in table_rows(lake_s3, topic) if r["value"].startswith((b"commit-", b"abort-"))]


def test_a_cdc_topic_gets_typed_columns_in_its_iceberg_table(broker_factory, lake_s3, postgres_cluster, tmp_path):
    source = postgres_cluster.createdb("lake_src")
    seed(source)
    broker = broker_factory(*lake_args(lake_s3))
    # The flow writes to the table topic it finds, tiered here with small segments.
    topic = "lakeflow.public.items"
    create(broker.bootstrap, topic)
    create_flow(broker, tmp_path, {
        "id": "lakeflow", "name": "lakeflow",
        "source": {"name": "pg", "type": "postgres", "options": {
            "dsn": source, "publication_tables": "public.items", "batch_timeout": "100ms"}},
        "destinations": [{"name": "topics", "type": "topics"}]})
    try:
        psql(source, "DELETE FROM items WHERE id = 3")
        insert_items(source, range(100, 130))

        def row_of(op: str, id_: int):
            return next((r for r in table_rows(lake_s3, topic) if r["_op"] == op and r["id"] == id_), None)

        def until_appended(predicate, what: str):
            # A segment is sealed (then uploaded) when a later write rolls it: keep writing.
            def poke():
                psql(source, "UPDATE items SET r = r WHERE id = 1")
                return predicate()
            helpers.wait_until(poke, timeout=120, interval=1, what=what)

        until_appended(lambda: row_of("c", 129), "the inserts in the Iceberg table")
        table = iceberg_catalog(lake_s3).load_table("ductstream.lakeflow_public_items")
        types = {f.name: str(f.field_type) for f in table.schema().fields}
        assert types == {
            "partition": "int", "offset": "long", "timestamp": "timestamptz", "key": "binary", "value": "binary",
            "headers": types["headers"], "_op": "string", "_lsn": "long", "_commit_ts": "timestamptz", "_xid": "long",
            "id": "int", "small": "int", "big": "long", "amount": "decimal(12, 3)", "ratio": "string", "r": "float",
            "d": "double", "flag": "boolean", "name": "string", "code": "string", "letter": "string", "payload": "binary",
            "day": "date", "at_time": "time", "at": "timestamp", "at_tz": "timestamptz", "span": "string", "uid": "string",
            "doc": "string", "docb": "string", "nums": "list<int>", "tags": "list<string>", "blob": "string"}, types

        snapshot = row_of("r", 1)
        utc = datetime.timezone.utc
        expected = {
            "id": 1, "small": 1, "big": 1000000000, "amount": Decimal("1.125"), "ratio": "11.5", "r": 1.5, "d": 2.25,
            "flag": True, "name": "name 1", "code": "c1", "letter": "ab ", "payload": b"\x00\xff\x01",
            "day": datetime.date(2024, 1, 2), "at_time": datetime.time(12, 34, 56),
            "at": datetime.datetime(2024, 1, 2, 3, 4, 5, 123456),
            "at_tz": datetime.datetime(2024, 1, 2, 1, 4, 5, 500000, tzinfo=utc),
            "uid": "00000000-0000-0000-0000-000000000002", "nums": [1, None, 3], "tags": ['t"q', None]}
        assert {k: snapshot[k] for k in expected} == expected
        assert json.loads(snapshot["docb"]) == {"b": [1, "x"]} and snapshot["blob"].startswith("toast-1-")
        assert snapshot["_xid"] is None and snapshot["_lsn"] > 0
        insert = row_of("c", 100)
        event = json.loads(insert["value"])
        assert (insert["_xid"], insert["_lsn"]) == (event["xid"], int(event["lsn"].split("/")[0], 16) << 32 | int(event["lsn"].split("/")[1], 16))
        assert insert["_commit_ts"] == datetime.datetime.fromtimestamp(event["ts_ms"] / 1000, utc)
        assert insert["amount"] == Decimal("100.125") and insert["day"] == datetime.date(2024, 1, 2)
        deleted = row_of("d", 3)
        assert deleted["name"] is None, "a delete carries the old key only (replica identity default)"

        # The source grows a column: the table's schema does, and earlier files still read.
        psql(source, "ALTER TABLE items ADD COLUMN extra numeric(5,1)")
        insert_items(source, range(200, 230))
        psql(source, "UPDATE items SET extra = 2.5 WHERE id >= 200")
        until_appended(lambda: (r := row_of("u", 229)) and r["extra"] == Decimal("2.5"), "the new column in the Iceberg table")
        table = iceberg_catalog(lake_s3).load_table("ductstream.lakeflow_public_items")
        assert str(table.schema().find_field("extra").field_type) == "decimal(5, 1)"
        assert len(table.schemas()) == 3
        assert row_of("r", 1)["extra"] is None
        rows = table_rows(lake_s3, topic)
        assert [r["offset"] for r in rows] == list(range(len(rows))), "each record once, in order"
    finally:
        delete_flow(broker, "lakeflow")
