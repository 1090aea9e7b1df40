"""The clickhouse table destination, against a real (throwaway) clickhouse-server: a CDC flow
keeps ReplacingMergeTree tables equal to the source tables, read `FINAL WHERE __ds_deleted = 0`
(through a snapshot, inserts, updates, a primary-key change, an unchanged TOAST value, deletes,
a truncate and a kill -9 of the broker); append mode and soft deletes; staging tables resolved
on demand; a batch written twice collapses; a wrong password fails the sink with ClickHouse's message; the server stopped in the
middle of a load and started again leaves every row exactly once."""

from __future__ import annotations

import json
import time
from datetime import datetime
from decimal import Decimal

import pytest

import helpers
from clickhouse_support import ClickHouseServer, clickhouse_binary
from sink_support import admin, sink_state, wait_caught_up
from table_sink_support import (changes_after_kill, changes_before_kill, create_flow, delete_flow, flow_with,
                                kill_and_restart, psql, seed, wait_equal)

# Reads whose numbers Python parses exactly: 64-bit integers as numbers, NaN and infinities as
# strings, decimals (below) as Decimal.
READ = {"output_format_json_quote_64bit_integers": 0, "output_format_json_quote_denormals": 1}


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory):
    if clickhouse_binary() is None:
        pytest.skip("clickhouse-server is not installed (compat-tests/setup.sh installs Debian's clickhouse-server)")
    server = ClickHouseServer(tmp_path_factory.mktemp("clickhouse")).start()
    yield server
    server.stop()


def dsn(clickhouse, database: str, password: str = "secret") -> str:
    return f"clickhouse://writer:{password}@127.0.0.1:{clickhouse.http_port}/{database}"


def ch_rows(clickhouse, sql: str) -> list[dict]:
    text = clickhouse.query(f"{sql} FORMAT JSONEachRow", **READ)
    return [json.loads(line, parse_float=Decimal) for line in text.splitlines() if line.strip()]


def ch_value(clickhouse, sql: str) -> str:
    return clickhouse.query(f"{sql} FORMAT TSV").strip()


def source_rows(source: str, table: str) -> list[dict]:
    """The source rows as JSON, intervals in ISO 8601 (as change events carry them) and
    timestamps with time zone in UTC."""
    text = psql(source, f"SET intervalstyle = iso_8601; SET timezone = 'UTC'; "
                        f"SELECT coalesce(json_agg(x ORDER BY id), '[]') FROM {table} x")
    return json.loads(text, parse_float=Decimal)


# How ClickHouse holds what the source's JSON shows: booleans as UInt8, json as its text,
# timestamps with time zone as the change event's ISO text (`...Z`, String on 18.16), decimals
# with the column's scale (Decimal compares by value). Nothing else is converted.
def normal_source(row: dict) -> dict:
    out = dict(row)
    for key, value in row.items():
        if key == "at_tz" and value is not None:
            out[key] = datetime.fromisoformat(value)
    return out


def normal_clickhouse(row: dict) -> dict:
    out = dict(row)
    for key, value in row.items():
        if key == "flag" and value is not None:
            out[key] = bool(value)
        elif key in ("doc", "docb") and value is not None:
            out[key] = json.loads(value, parse_float=Decimal)
        elif key == "at_tz" and value is not None:
            out[key] = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return out


def mirror_rows(clickhouse, table: str, columns: list[str]) -> list[dict]:
    names = ", ".join(f"`{c}`" for c in columns)
    return [normal_clickhouse(r) for r in ch_rows(clickhouse, f"SELECT {names} FROM {table} FINAL WHERE __ds_deleted = 0 ORDER BY id")]


def wait_mirrored(source: str, clickhouse, source_table: str, table: str, what: str):
    columns = list((source_rows(source, source_table) or [{"id": 0}])[0].keys())
    wait_equal(lambda: [normal_source(r) for r in source_rows(source, source_table)],
               lambda: mirror_rows(clickhouse, table, columns), what=what)


def test_a_flow_keeps_clickhouse_tables_equal_to_the_source_through_a_kill(broker, postgres_cluster, clickhouse, tmp_path):
    source = postgres_cluster.createdb("chsink_src")
    seed(source)
    flow = flow_with("chmirror", source, "public.items,public.notes",
                     {"name": "ch", "type": "clickhouse", "options": {"dsn": dsn(clickhouse, "mirror")}})
    create_flow(broker, tmp_path, flow)
    try:
        wait_mirrored(source, clickhouse, "items", "mirror.items", "the snapshot")
        changes_before_kill(source)
        time.sleep(0.3)
        kill_and_restart(broker)
        changes_after_kill(source)
        wait_mirrored(source, clickhouse, "items", "mirror.items", "items equal")
        wait_mirrored(source, clickhouse, "notes", "mirror.notes", "notes equal")
        # The TOASTed value an update did not send is the destination's own, kept.
        assert ch_value(clickhouse, "SELECT substring(blob, 1, 8), name FROM mirror.items FINAL WHERE id = 1 AND __ds_deleted = 0") == "toast-1-\trenamed"
        # Deletes are tombstones with the deleting change's version.
        assert ch_value(clickhouse, "SELECT __ds_deleted, __ds_version > 0 FROM mirror.items FINAL WHERE id = 3") == "1\t1"
        columns = ch_value(clickhouse, "SELECT name, type FROM system.columns WHERE database = 'mirror' AND table = 'items'")
        types = dict(line.split("\t") for line in columns.splitlines())
        assert types["id"] == "Int32" and types["amount"] == "Nullable(Decimal(12, 3))" and types["ratio"] == "Nullable(Decimal(38, 10))", types
        assert types["nums"] == "Array(Nullable(Int32))" and types["uid"] == "Nullable(UUID)" and types["day"] == "Nullable(Date)", types
        # 18.16 has no DateTime64: timestamps are the exact ISO text.
        assert types["at"] == "Nullable(String)" and types["__ds_version"] == "UInt64" and types["__ds_deleted"] == "UInt8", types
        engine = ch_value(clickhouse, "SELECT engine_full FROM system.tables WHERE database = 'mirror' AND name = 'items'")
        assert engine.startswith("ReplacingMergeTree(__ds_version) ORDER BY id"), engine
        # The meta table: the latest change per key; the offsets table: the sink's partitions.
        latest = ("SELECT key_json, op, is_deleted FROM ductstream_meta.__metadata WHERE flow_id = 'chmirror' AND source_table = 'items' "
                  "ORDER BY lsn DESC LIMIT 1 BY key_json")
        meta = {r["key_json"]: r for r in ch_rows(clickhouse, latest)}
        assert sum(1 for r in meta.values() if not r["is_deleted"]) == len(source_rows(source, "items"))
        assert meta['{"id":3}']["op"] == "d"
        topics = ch_value(clickhouse, "SELECT topic FROM ductstream_meta.sink_offsets FINAL WHERE sink_id = 'chmirror.ch' ORDER BY topic").split()
        assert topics == ["chmirror.public.items", "chmirror.public.notes"], topics
        state = wait_caught_up(broker, "chmirror.ch")
        assert "secret" not in state["destination"]["options"]["dsn"]
    finally:
        delete_flow(broker, "chmirror")


def test_append_mode_and_soft_deletes(broker, postgres_cluster, clickhouse, tmp_path):
    source = postgres_cluster.createdb("chmodes_src")
    psql(source, "CREATE TABLE t (id int PRIMARY KEY, v text, j jsonb); INSERT INTO t VALUES (1, 'a', '{\"x\": 1}'), (2, 'b', null)")
    flow = flow_with("chmodes", source, "public.t", {"name": "history", "type": "clickhouse", "options": {
        "dsn": dsn(clickhouse, "history"), "write_mode": "append", "meta_enabled": "true", "watermark_source": "lsn"}})
    flow["destinations"].append({"name": "soft", "type": "clickhouse", "options": {
        "dsn": dsn(clickhouse, "soft"), "soft_delete": "true", "meta_watermark": "-", "meta_table_enabled": "false"}})
    create_flow(broker, tmp_path, flow)

    def history():
        rows = ch_rows(clickhouse, "SELECT id, __ds_op, v, __ds_is_deleted FROM history.t FINAL ORDER BY __ds_watermark, id")
        return [f"{r['id']}:{r['__ds_op']}:{r['v'] or '-'}:{r['__ds_is_deleted']}" for r in rows]

    try:
        # The changes come after the snapshot (made before it, they would be part of it).
        helpers.wait_until(lambda: len(history()) == 2, timeout=90, what="the snapshot")
        psql(source, "UPDATE t SET v = 'a2' WHERE id = 1; DELETE FROM t WHERE id = 2; INSERT INTO t VALUES (3, 'c', '[1]')")
        helpers.wait_until(lambda: len(history()) == 5, timeout=90, what="five rows of history")
        # A delete carries the old key only (the default replica identity): its other columns are null.
        assert history() == ["1:r:a:0", "2:r:b:0", "1:u:a2:0", "2:d:-:1", "3:c:c:0"], history()
        engine = ch_value(clickhouse, "SELECT engine_full FROM system.tables WHERE database = 'history' AND name = 't'")
        assert engine.startswith("ReplacingMergeTree ORDER BY (__ds_topic, __ds_partition, __ds_offset)"), engine

        def soft():
            rows = ch_rows(clickhouse, "SELECT id, v, __ds_is_deleted, __ds_op FROM soft.t FINAL WHERE __ds_deleted = 0 ORDER BY id")
            return " ".join(f"{r['id']}:{r['v']}:{r['__ds_is_deleted']}:{r['__ds_op']}" for r in rows)

        # The soft-deleted row keeps its values (read from the destination: the delete sent the key only).
        helpers.wait_until(lambda: soft() == "1:a2:0:u 2:b:1:d 3:c:0:c", timeout=60, what="soft deletes")
        assert ch_value(clickhouse, "SELECT count() FROM system.columns WHERE database = 'soft' AND name = '__ds_watermark'") == "0"
    finally:
        delete_flow(broker, "chmodes")


def test_staging_tables_are_resolved_on_demand(broker, postgres_cluster, clickhouse, tmp_path):
    source = postgres_cluster.createdb("chstage_src")
    psql(source, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g")
    flow = flow_with("chstage", source, "public.t", {"name": "wh", "type": "clickhouse", "options": {
        "dsn": dsn(clickhouse, "stage"), "batch_mode": "staging", "batch_resolution": "append", "staging_schema": "landing"}})
    create_flow(broker, tmp_path, flow)
    staged = lambda: ch_value(clickhouse, "SELECT count() FROM landing.t_staging FINAL")
    try:
        helpers.wait_until(lambda: staged() == "50", timeout=90, what="the snapshot staged")
        psql(source, "UPDATE t SET v = 'new' WHERE id <= 10; DELETE FROM t WHERE id > 45")
        helpers.wait_until(lambda: staged() == "65", timeout=90, what="staged rows")
        assert ch_value(clickhouse, "SELECT count() FROM stage.t") == "0", "nothing applied before resolving"
        resolved = admin(broker, "flow", "resolve-staging", "chstage", "--tables", "public.t")[1]
        assert resolved == [{"sink_id": "chstage.wh", "table": "public.t", "rows": 65}], resolved
        assert source_rows(source, "t") == mirror_rows(clickhouse, "stage.t", ["id", "v"])
        assert staged() == "0"
        # The sink goes on staging into the staging table the resolution made anew.
        psql(source, "UPDATE t SET v = 'newer' WHERE id BETWEEN 5 AND 15; DELETE FROM t WHERE id = 1; INSERT INTO t VALUES (99, 'x')")
        helpers.wait_until(lambda: staged() == "13", timeout=90, what="a second round of staged rows")
        assert admin(broker, "flow", "resolve-staging", "chstage", "--tables", "public.t")[1][0]["rows"] == 13
        assert source_rows(source, "t") == mirror_rows(clickhouse, "stage.t", ["id", "v"])
        code, out = admin(broker, "flow", "resolve-staging", "nope", check=False)
        assert code != 0 and "nope" in out, out
    finally:
        delete_flow(broker, "chstage")


def test_a_batch_written_again_collapses_onto_what_it_wrote(broker, postgres_cluster, clickhouse, tmp_path):
    """The offsets table detached, a batch's rows land but its offset cannot be recorded and the
    sink fails; started again, it writes the same batch again. The row whose key changed kept
    its unchanged TOAST value from its old key the first time; the second time that key holds
    a tombstone, and the value comes from the row's own first write. FINAL shows each row once."""
    source = postgres_cluster.createdb("chreplay_src")
    psql(source, "CREATE TABLE r (id int PRIMARY KEY, v text, blob text); ALTER TABLE r ALTER COLUMN blob SET STORAGE EXTERNAL; "
                 "INSERT INTO r VALUES (1, 'a', repeat('toast-1-', 500)), (2, 'b', repeat('toast-2-', 500))")
    flow = flow_with("chreplay", source, "public.r", {"name": "ch", "type": "clickhouse", "options": {
        "dsn": dsn(clickhouse, "replay"), "meta_schema": "replay_meta"}})
    create_flow(broker, tmp_path, flow)
    mirror = lambda: mirror_rows(clickhouse, "replay.r", ["id", "v", "blob"])
    try:
        wait_equal(lambda: source_rows(source, "r"), mirror, what="the snapshot")
        # Merges would collapse the second write before it can be counted.
        clickhouse.query("SYSTEM STOP MERGES replay.r")
        clickhouse.query("DETACH TABLE replay_meta.sink_offsets")
        psql(source, "UPDATE r SET id = 10, v = 'moved' WHERE id = 1; UPDATE r SET v = 'kept' WHERE id = 2")
        helpers.wait_until(lambda: sink_state(broker, "chreplay.ch")["state"] == "FAILED", timeout=60, what="the sink failed")
        assert "sink_offsets" in sink_state(broker, "chreplay.ch")["last_error"]
        assert source_rows(source, "r") == mirror(), "the batch's rows landed before its offset"
        clickhouse.query("ATTACH TABLE replay_meta.sink_offsets")
        admin(broker, "sink", "start", "chreplay.ch")
        helpers.wait_until(lambda: ch_value(clickhouse, "SELECT count() FROM replay.r WHERE id = 10") == "2", timeout=60,
                           what="the batch written a second time")
        wait_caught_up(broker, "chreplay.ch")
        assert source_rows(source, "r") == mirror()
        assert ch_value(clickhouse, "SELECT id, __ds_deleted FROM replay.r FINAL ORDER BY id") == "1\t1\n2\t0\n10\t0"
    finally:
        delete_flow(broker, "chreplay")


def test_a_wrong_password_fails_the_sink_with_clickhouses_message(broker, postgres_cluster, clickhouse, tmp_path):
    source = postgres_cluster.createdb("chbad_src")
    psql(source, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')")
    flow = flow_with("chbad", source, "public.t", {"name": "wrong", "type": "clickhouse", "options": {
        "dsn": dsn(clickhouse, "bad", password="nope")}})
    create_flow(broker, tmp_path, flow)
    try:
        def failed():
            state = sink_state(broker, "chbad.wrong")
            return state["state"] == "FAILED" and "Wrong password for user writer" in state["last_error"]

        helpers.wait_until(failed, timeout=60, what="the wrong password refused")
        assert "nope" not in sink_state(broker, "chbad.wrong")["destination"]["options"]["dsn"]
        assert ch_value(clickhouse, "SELECT count() FROM system.databases WHERE name = 'bad'") == "0"
    finally:
        delete_flow(broker, "chbad")


def test_the_server_stopped_mid_load_and_started_again_leaves_every_row_once(broker, postgres_cluster, clickhouse, tmp_path):
    source = postgres_cluster.createdb("chlost_src")
    psql(source, "CREATE TABLE t (id int PRIMARY KEY, n int)")
    flow = flow_with("chlost", source, "public.t", {"name": "exact", "type": "clickhouse", "options": {
        "dsn": dsn(clickhouse, "exact"), "batch_records": "200", "batch_interval": "100ms"}})
    flow["destinations"].append({"name": "log", "type": "clickhouse", "options": {
        "dsn": dsn(clickhouse, "log"), "write_mode": "append", "meta_enabled": "true", "batch_records": "200", "batch_interval": "100ms"}})
    create_flow(broker, tmp_path, flow)
    try:
        for i in range(20):
            psql(source, f"INSERT INTO t SELECT g, g FROM generate_series({i * 200 + 1}, {(i + 1) * 200}) g")
            if i == 6:
                helpers.wait_until(lambda: ch_value(clickhouse, "SELECT count() FROM exact.t FINAL") not in ("", "0"),
                                   timeout=60, what="the load under way")
                clickhouse.stop()
            time.sleep(0.1)
        psql(source, "UPDATE t SET n = n + 1 WHERE id % 7 = 0; DELETE FROM t WHERE id % 11 = 0")
        # The sinks fail for now and retry; the server comes back on the same port.
        helpers.wait_until(lambda: "clickhouse destination" in sink_state(broker, "chlost.exact")["last_error"],
                           timeout=60, what="the sink retrying")
        assert sink_state(broker, "chlost.exact")["state"] != "FAILED"
        clickhouse.start()
        wait_equal(lambda: source_rows(source, "t"), lambda: mirror_rows(clickhouse, "exact.t", ["id", "n"]), what="the exact mirror")
        changes = 4000 + 4000 // 7 + 4000 // 11
        helpers.wait_until(lambda: ch_value(clickhouse, "SELECT count() FROM log.t FINAL") == str(changes), timeout=120,
                           what=f"{changes} changes in the log")
        wait_caught_up(broker, "chlost.log")
        assert ch_value(clickhouse, "SELECT count() FROM (SELECT DISTINCT __ds_partition, __ds_offset FROM log.t)") == str(changes)
        # Rows inserted before the flow's slot existed come from the snapshot ('r').
        assert ch_value(clickhouse, "SELECT count() FROM log.t FINAL WHERE __ds_op IN ('c', 'r')") == "4000"
    finally:
        delete_flow(broker, "chlost")
