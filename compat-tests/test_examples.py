"""Every example in examples/ run against the real broker, as its doc comment says to run it:
the Rust programs (`cargo build --workspace --all-targets` builds them beside the broker
binary), the flow files, examples/grpc/create_flow.sh and the stream consumers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import helpers
from conftest import broker_binary
from sink_support import WebhookServer, admin, admin_binary
from test_sink_cdc import psql

EXAMPLES = broker_binary().parent / "examples"


def example(name: str) -> str:
    path = EXAMPLES / name
    if not path.exists():
        pytest.fail(f"{path} is missing: build with `cargo build --workspace --all-targets`", pytrace=False)
    return str(path)


def test_produce_consume(broker, topic):
    run = subprocess.run([example("produce_consume"), "--bootstrap", broker.bootstrap, "--topic", topic, "--count", "3"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"created topic {topic}"
    assert lines[1:4] == [f"produced order-{i} at partition 0 offset {i}" for i in range(3)]
    assert lines[4:] == [
        f'consumed offset {i} key order-{i} value {{"order":{i},"total":{i * 10}}} header source=example' for i in range(3)
    ]


# -- the flow files, scripts and consumers of examples/ ------------------------------------------
REPO = Path(__file__).resolve().parent.parent
GRPCURL = Path(os.environ.get("DUCTSTREAM_COMPAT_BIN", Path.home() / ".cache" / "ductstream" / "compat-bin")) / "grpcurl"


def flow_file(name: str, tmp_path: Path, dsn: str, **destination_options) -> Path:
    """examples/flows/<name> as written, with the test's source database (and, for a
    destination named in `destination_options`, its options) put in."""
    flow = json.loads((REPO / "examples" / "flows" / name).read_text())
    flow["source"]["options"]["dsn"] = dsn
    flow["source"]["options"]["batch_timeout"] = "100ms"
    for d in flow["destinations"]:
        d.setdefault("options", {}).update(destination_options.get(d["name"], {}))
    path = tmp_path / name
    path.write_text(json.dumps(flow))
    return path


def test_flow_examples_consumers_and_grpc_script(broker, postgres_cluster, tmp_path):
    source = postgres_cluster.createdb("examples_source")
    psql(source, "CREATE TABLE users (id int PRIMARY KEY, name text); CREATE TABLE orders (id int PRIMARY KEY, total int);"
                 "INSERT INTO users VALUES (1, 'ada'); INSERT INTO orders VALUES (7, 70), (8, 80);")
    hook = WebhookServer()
    try:
        # postgres_to_topics.json through the gRPC API with grpcurl, as examples/grpc/create_flow.sh does.
        env = {**os.environ, "GRPCURL": str(GRPCURL), "DUCTSTREAM_GRPC": broker.grpc}
        run = subprocess.run([str(REPO / "examples" / "grpc" / "create_flow.sh"), str(flow_file("postgres_to_topics.json", tmp_path, source))],
                             capture_output=True, text=True, env=env, timeout=60)
        assert run.returncode == 0, run.stderr
        created = json.loads(run.stdout)
        assert (created["id"], created["state"]) == ("app", "FLOW_STATE_CREATED"), created

        # postgres_to_pgstream.json and postgres_to_webhook.json with the CLI.
        admin(broker, "flow", "create", "-f", str(flow_file("postgres_to_pgstream.json", tmp_path, source)))
        admin(broker, "flow", "create", "-f", str(flow_file("postgres_to_webhook.json", tmp_path, source, api={"url": hook.url})))
        for flow in ("app", "orders", "hooks"):
            admin(broker, "flow", "start", flow)

        # The stream's consumers: the bash one and the Python one, each its own group.
        consumers = {
            "bash": [str(REPO / "examples" / "stream_consumer.sh"), "-endpoint", broker.grpc, "-stream", "orders",
                     "-group", "bash", "-idle-exit", "3"],
            "python": [sys.executable, str(REPO / "examples" / "stream_consumer.py"), "--endpoint", broker.grpc,
                       "--stream", "orders", "--group", "python", "--idle-exit", "3"],
            # examples/go, built by setup.sh (as `cd examples/go && go run ./stream_consumer` would).
            "go": [str(GRPCURL.parent / "stream-consumer-go"), "-endpoint", broker.grpc, "-stream", "orders",
                   "-group", "go", "-idle-exit", "3"],
        }
        env = {**os.environ, "DUCTSTREAM_ADMIN": str(admin_binary(broker))}
        helpers.wait_until(lambda: admin(broker, "stream", "pull", "--stream", "orders", "--group", "probe", check=False)[0] == 0,
                           timeout=60, what="the orders stream")
        psql(source, "INSERT INTO orders VALUES (9, 90); UPDATE users SET name = 'ad' WHERE id = 1;")
        for name, cmd in consumers.items():
            seen: list[str] = []

            def three_orders() -> bool:
                run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
                assert run.returncode == 0, f"{name}: {run.stderr}"
                seen.extend(run.stdout.splitlines())
                return len(seen) >= 3

            helpers.wait_until(three_orders, timeout=90, what=f"the {name} consumer's three orders")
            events = [json.loads(line.split(" ", 1)[1]) for line in seen]
            changes = sorted((e.get("op"), (e.get("after") or {}).get("id")) for e in events)
            assert changes == [("c", 9), ("r", 7), ("r", 8)], (name, seen)

        # The webhook got the orders; the topics flow has both tables' topics.
        helpers.wait_until(lambda: len(hook.delivered()) >= 3, timeout=60, what="three webhook deliveries")
        # Each request is one record: topic, partition, offset, key, value (the change event).
        hooked = sorted(json.loads(r["body"])["value"]["after"]["id"] for r in hook.delivered()[:3])
        assert hooked == [7, 8, 9], hooked
        topics = admin_topics(broker)
        assert {"app.public.users", "app.public.orders", "orders", "hooks.public.orders"} <= topics, topics
    finally:
        # Deleting a flow drops its replication slot: slots are per cluster, and the session's
        # Postgres cluster is shared with other tests.
        for flow in ("app", "orders", "hooks"):
            admin(broker, "flow", "delete", flow, check=False)
        hook.close()


def admin_topics(broker) -> set[str]:
    from confluent_kafka.admin import AdminClient

    return set(AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics)


def test_flow_example_into_a_postgres_warehouse(broker, postgres_cluster, tmp_path):
    """examples/flows/postgres_to_postgres.json: the source tables mirrored in another database,
    deletes kept as flagged rows (soft_delete) with the meta columns."""
    source, warehouse = postgres_cluster.createdb("examples_wh_src"), postgres_cluster.createdb("examples_wh")
    psql(source, "CREATE TABLE users (id int PRIMARY KEY, name text); CREATE TABLE orders (id int PRIMARY KEY, total int);"
                 "INSERT INTO users VALUES (1, 'ada'), (2, 'bob'); INSERT INTO orders VALUES (7, 70);")
    admin(broker, "flow", "create", "-f", str(flow_file("postgres_to_postgres.json", tmp_path, source, analytics={"dsn": warehouse})))
    try:
        admin(broker, "flow", "start", "warehouse")
        psql(source, "UPDATE users SET name = 'ad' WHERE id = 1; DELETE FROM users WHERE id = 2; INSERT INTO orders VALUES (8, 80);")

        def mirrored() -> str:
            return subprocess.run(["psql", warehouse, "-At", "-c",
                                   "SELECT string_agg(id || ':' || name || ':' || __ds_is_deleted, ' ' ORDER BY id) FROM app.users"],
                                  capture_output=True, text=True, timeout=30).stdout.strip()

        helpers.wait_until(lambda: mirrored() == "1:ad:false 2:bob:true", timeout=60, what="users mirrored with a soft delete")
        orders = ["psql", warehouse, "-At", "-c", "SELECT string_agg(id || ':' || total, ' ' ORDER BY id) FROM app.orders"]
        helpers.wait_until(lambda: subprocess.run(orders, capture_output=True, text=True, timeout=30).stdout.strip() == "7:70 8:80",
                           timeout=60, what="both orders")
    finally:
        admin(broker, "flow", "delete", "warehouse", check=False)


def test_the_documents_one_dash_flags_work_as_written(broker, topic):
    """Our usage document writes Go-style flags: `stream pull -stream orders -group search -max 10
    -visibility 30`, then `stream ack -stream orders -group search -ids 1,2,3`."""
    from sink_support import produce

    produce(broker.bootstrap, topic, [(b"k", b"v1", 0), (b"k", b"v2", 0)])
    code, pulled = admin(broker, "stream", "pull", "-stream", topic, "-group", "search", "-max", "10", "-visibility", "30")
    assert code == 0 and [m["value"] for m in pulled] == ["v1", "v2"], pulled
    ids = ",".join(m["id"] for m in pulled)
    code, acked = admin(broker, "stream", "ack", "-stream", topic, "-group", "search", "-ids", ids)
    assert code == 0, acked
    code, again = admin(broker, "stream", "pull", "-stream", topic, "-group", "search", "-max", "10")
    assert code == 0 and again == [], again


def test_flow_examples_into_duckdb_and_clickhouse(broker, postgres_cluster, tmp_path, tmp_path_factory):
    """examples/flows/postgres_to_duckdb.json and postgres_to_clickhouse.json, as written but for
    the source, the DuckDB file and the ClickHouse server."""
    from clickhouse_support import ClickHouseServer, clickhouse_binary

    if clickhouse_binary() is None:
        pytest.skip("clickhouse-server is not installed (compat-tests/setup.sh installs it)")
    source = postgres_cluster.createdb("examples_olap_src")
    psql(source, "CREATE TABLE users (id int PRIMARY KEY, name text); CREATE TABLE orders (id int PRIMARY KEY, total int);"
                 "INSERT INTO users VALUES (1, 'ada'), (2, 'bob'); INSERT INTO orders VALUES (7, 70);")
    clickhouse = ClickHouseServer(tmp_path_factory.mktemp("examples-clickhouse")).start()
    duck_file = tmp_path / "warehouse.duckdb"
    try:
        admin(broker, "flow", "create", "-f", str(flow_file("postgres_to_clickhouse.json", tmp_path, source,
                                                             ch={"dsn": f"http://default@127.0.0.1:{clickhouse.http_port}"})))
        code, out = admin(broker, "flow", "create", "-f", str(flow_file("postgres_to_duckdb.json", tmp_path, source,
                                                                        duck={"dsn": str(duck_file)})), check=False)
        with_duckdb = code == 0 or "not in this build" not in str(out)
        assert code == 0 or not with_duckdb, out
        for flow in ("olap", "lake") if with_duckdb else ("olap",):
            admin(broker, "flow", "start", flow)
        psql(source, "UPDATE users SET name = 'ad' WHERE id = 1; DELETE FROM users WHERE id = 2; INSERT INTO orders VALUES (8, 80);")

        def clickhouse_users() -> str:
            return clickhouse.query("SELECT groupArray(concat(toString(id), ':', name)) FROM "
                                    "(SELECT id, name FROM analytics.users FINAL WHERE __ds_deleted = 0 ORDER BY id) FORMAT TSV").strip()

        helpers.wait_until(lambda: clickhouse_users() == "['1:ad']", timeout=60, what="users in ClickHouse")
        if with_duckdb:
            import duckdb

            from sink_support import wait_caught_up

            wait_caught_up(broker, "lake.duck")
            admin(broker, "sink", "stop", "lake.duck")
            with duckdb.connect(str(duck_file), read_only=True) as con:
                users = con.execute("SELECT id, name FROM app.users ORDER BY id").fetchall()
                orders = con.execute("SELECT id, total FROM app.orders ORDER BY id").fetchall()
            assert users == [(1, "ad")] and orders == [(7, 70), (8, 80)], (users, orders)
    finally:
        for flow in ("olap", "lake"):
            admin(broker, "flow", "delete", flow, check=False)
        clickhouse.stop()


def test_flow_examples_into_s3_and_kafka(broker_factory, postgres_cluster, tmp_path, tmp_path_factory):
    """examples/flows/postgres_to_s3.json (Parquet objects in SeaweedFS) and
    postgres_to_kafka.json (the changes copied to another Kafka-compatible cluster: a second
    broker), as written but for the source and the two endpoints."""
    import io

    import pyarrow.parquet as pq
    from confluent_kafka import Consumer

    from sink_support import SeaweedS3

    broker, target = broker_factory(), broker_factory()
    source = postgres_cluster.createdb("examples_s3_kafka_src")
    psql(source, "CREATE TABLE users (id int PRIMARY KEY, name text); CREATE TABLE orders (id int PRIMARY KEY, total int);"
                 "INSERT INTO users VALUES (1, 'ada'); INSERT INTO orders VALUES (7, 70);")
    s3 = SeaweedS3(tmp_path_factory.mktemp("examples-seaweed"), buckets=("lake",)).start()
    try:
        admin(broker, "flow", "create", "-f", str(flow_file("postgres_to_s3.json", tmp_path, source, lake={
            "endpoint": s3.endpoint, "rotate_interval": "300ms"})))
        admin(broker, "flow", "create", "-f", str(flow_file("postgres_to_kafka.json", tmp_path, source, kafka={
            "brokers": target.bootstrap})))
        for flow in ("archive", "mirror"):
            admin(broker, "flow", "start", flow)
        psql(source, "INSERT INTO orders VALUES (8, 80); UPDATE users SET name = 'ad' WHERE id = 1;")

        rows = []

        def parquet_rows() -> bool:
            rows.clear()
            for name in s3.objects("lake", "cdc"):
                rows.extend(pq.read_table(io.BytesIO(s3.read(name))).to_pylist())
            return len(rows) >= 4

        helpers.wait_until(parquet_rows, timeout=90, what="four changes as Parquet in S3")
        assert sorted((r["_op"], r["id"]) for r in rows) == [("c", 8), ("r", 1), ("r", 7), ("u", 1)], rows

        consumer = Consumer({"bootstrap.servers": target.bootstrap, "group.id": "examples", "auto.offset.reset": "earliest"})
        consumer.subscribe(["cdc.mirror.public.orders"])
        got = []
        try:
            helpers.wait_until(lambda: got.extend(m for m in consumer.consume(100, 0.5) if not m.error()) or len(got) >= 2,
                               timeout=90, what="two orders in the other cluster")
        finally:
            consumer.close()
        changes = sorted((json.loads(m.value())["op"], json.loads(m.value())["after"]["id"]) for m in got)
        assert changes == [("c", 8), ("r", 7)], changes
    finally:
        for flow in ("archive", "mirror"):
            admin(broker, "flow", "delete", flow, check=False)
        s3.stop()
