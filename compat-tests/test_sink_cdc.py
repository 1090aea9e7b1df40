"""A CDC flow whose destination is S3 (`wire_format: parquet`): every change of a Postgres
table lands in Parquet objects as the table's typed columns with the change's metadata, read
back by pyarrow."""

from __future__ import annotations

import io
import json
import subprocess

import pyarrow.parquet as pq

import helpers
from sink_support import SeaweedS3, admin, wait_caught_up


def psql(url: str, sql: str):
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], check=True, capture_output=True, timeout=60)


def test_a_flows_s3_destination_writes_typed_columns(broker, postgres_cluster, tmp_path_factory, tmp_path):
    source = postgres_cluster.createdb("cdc_source")
    psql(source, "CREATE TABLE users (id int PRIMARY KEY, name text, score double precision, active boolean);"
                 "INSERT INTO users VALUES (1, 'ada', 1.5, true), (2, 'bob', 2.5, false);")
    s3 = SeaweedS3(tmp_path_factory.mktemp("seaweed-cdc"), buckets=("lake",)).start()
    try:
        flow = {
            "id": "app", "name": "app",
            "source": {"name": "pg", "type": "postgres", "options": {
                "dsn": source, "publication_tables": "public.users", "batch_timeout": "100ms"}},
            "destinations": [
                {"name": "topics", "type": "topics"},
                {"name": "lake", "type": "s3", "options": {
                    "bucket": "lake", "prefix": "cdc", "endpoint": s3.endpoint, "access_key_id": "x",
                    "secret_access_key": "x", "rotate_interval": "300ms"}}],
            # The file format of the flow's sink destinations; the topics hold JSON records.
            "wire_format": "parquet",
        }
        path = tmp_path / "flow.json"
        path.write_text(json.dumps(flow))
        admin(broker, "flow", "create", "-f", str(path))
        admin(broker, "flow", "start", "app")
        helpers.wait_until(lambda: s3.objects("lake", "cdc"), timeout=60, what="the snapshot in S3")
        psql(source, "INSERT INTO users VALUES (3, 'cy', 3.0, true); UPDATE users SET name = 'bo' WHERE id = 2;"
                     "DELETE FROM users WHERE id = 1;")
        rows = []

        def all_changes():
            rows.clear()
            for name in s3.objects("lake", "cdc"):
                rows.extend(pq.read_table(io.BytesIO(s3.read(name))).to_pylist())
            return len(rows) >= 5

        helpers.wait_until(all_changes, timeout=60, what="five changes in S3")
        wait_caught_up(broker, "app.lake")
        names = s3.objects("lake", "cdc")
        assert all(n.startswith("lake/cdc/app.public.users/partition=0/") for n in names), names
        schema = pq.read_schema(io.BytesIO(s3.read(names[-1])))
        assert str(schema.field("id").type) == "int64" and str(schema.field("_op").type) == "string"
        by_op = sorted((r["_op"], r["id"], r["name"]) for r in rows)
        assert by_op == [("c", 3, "cy"), ("d", 1, None), ("r", 1, "ada"), ("r", 2, "bob"), ("u", 2, "bo")], by_op
        scores = {r["id"]: r["score"] for r in rows if r["_op"] == "r"}
        assert scores == {1: 1.5, 2: 2.5}
        assert all(r["_lsn"].count("/") == 1 and r["_key"].startswith('{"id":') for r in rows)
        listed = admin(broker, "sink", "list")[1]
        assert [(s["id"], s["flow_id"]) for s in listed] == [("app.lake", "app")]
        assert listed[0]["destination"]["options"]["format"] == "parquet"
        assert admin(broker, "flow", "get", "app")[1]["wire_format"] == "parquet"
    finally:
        admin(broker, "flow", "stop", "app", check=False)
        s3.stop()


def test_a_flows_destination_secrets_are_hidden_and_kept(broker, postgres_cluster, tmp_path):
    source = postgres_cluster.createdb("cdc_secret")
    psql(source, "CREATE TABLE t (id int PRIMARY KEY)")
    flow = {
        "id": "sec", "name": "sec",
        "source": {"name": "pg", "type": "postgres", "options": {"dsn": source, "publication_tables": "public.t"}},
        "destinations": [{"name": "hooks", "type": "http", "options": {
            "url": "http://127.0.0.1:9/x", "signing_secret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5"}}],
    }
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(flow))
    created = admin(broker, "flow", "create", "-f", str(path))[1]
    assert created["destinations"][0]["options"]["signing_secret"] == "***"
    # Sent back as shown, the secret is kept: the flow's sink still signs with the real one.
    created_file = {k: created[k] for k in ("id", "name", "destinations")}
    created_file["source"] = flow["source"]
    path.write_text(json.dumps(created_file))
    admin(broker, "flow", "update", "-f", str(path))
    helpers.wait_until(lambda: admin(broker, "sink", "list")[1], timeout=30, what="the flow's sink")
    (sink,) = admin(broker, "sink", "list")[1]
    assert sink["destination"]["options"]["signing_secret"] == "***"
    assert sink["state"] == "RUNNING" and "signing_secret" not in sink["last_error"]
