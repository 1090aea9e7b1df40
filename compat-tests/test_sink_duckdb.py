"""The duckdb table destination: a CDC flow keeps tables in a DuckDB file equal to the source
tables (through a snapshot, inserts, updates, a primary-key change, an unchanged TOAST value,
deletes, a truncate and a kill -9 of the broker), or keeps every change as a row; two sinks of
one broker share one file; staging tables resolved on demand; a dsn that is no database fails
the sink, and a file another process holds makes it wait.

DuckDB locks a database file for one process: the test reads the file with the `duckdb`
package only while the sinks that write it are stopped (`sink stop` returns once the sink has
closed it), and starts them again to go on."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal

import duckdb
import pytest

import helpers
from sink_support import admin, create_sink, sink_state
from table_sink_support import (changes_after_kill, changes_before_kill, create_flow, delete_flow, flow_with,
                                kill_and_restart, psql, seed, wait_equal)

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture(autouse=True)
def requires_duckdb(broker, tmp_path):
    """Skips when the broker under test was built without the duckdb feature."""
    code, out = create_sink(broker, tmp_path, {"id": "duckdb-probe", "topics": ["duckdb-probe"], "destination": {
        "name": "d", "type": "duckdb", "options": {"dsn": ":memory:"}}}, check=False)
    if code != 0 and "not in this build" in str(out):
        pytest.skip("the broker was built without the duckdb feature (cargo build --features duckdb)")
    assert code == 0, out
    admin(broker, "sink", "delete", "duckdb-probe")


def query(file, sql: str) -> list[dict]:
    """Rows of `sql` against the file (no sink may have it open), as dicts."""
    with duckdb.connect(str(file), read_only=True) as con:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def stopped(broker, sink_ids, read):
    """`read()` while the sinks are stopped (so the file is free), then starts them again."""
    for sink_id in sink_ids:
        admin(broker, "sink", "stop", sink_id)
    try:
        return read()
    finally:
        for sink_id in sink_ids:
            admin(broker, "sink", "start", sink_id)


def column_types(file, schema: str, table: str) -> dict[str, str]:
    rows = query(file, f"SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = '{schema}' "
                       f"AND table_name = '{table}' ORDER BY column_index")
    return {r["column_name"]: r["data_type"] for r in rows}


def destination_rows(file, schema: str, table: str) -> list[dict]:
    """The table's rows, ordered by id, in the comparable form (see `comparable`). TIMESTAMPTZ
    comes as microseconds since the epoch and INTERVAL as text, so that nothing depends on the
    Python package's conversions (which want pytz)."""
    types = column_types(file, schema, table)
    if not types:
        return []
    replace = [f'epoch_us("{c}") AS "{c}"' for c, t in types.items() if t == "TIMESTAMP WITH TIME ZONE"]
    replace += [f'CAST("{c}" AS VARCHAR) AS "{c}"' for c, t in types.items() if t == "INTERVAL"]
    star = f"* REPLACE ({', '.join(replace)})" if replace else "*"
    rows = query(file, f'SELECT {star} FROM "{schema}"."{table}" ORDER BY id')
    return [{c: comparable(v, types[c]) for c, v in row.items()} for row in rows]


def comparable(value, duckdb_type: str):
    """A DuckDB value as the source's JSON shows it, for the types that differ in form only."""
    if value is None:
        return None
    if duckdb_type == "JSON":
        return json.loads(value, parse_float=Decimal)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if duckdb_type == "UUID":
        return str(value)
    return value


def source_exact_rows(source: str, table: str, types: dict[str, str]) -> list[dict]:
    """The source table's rows (row_to_json of each, numbers exact) in the comparable form:
    bytea's \\x hex as bytes, timestamptz as microseconds since the epoch."""
    text = psql(source, f"SELECT coalesce(json_agg(x ORDER BY id), '[]') FROM {table} x")
    rows = json.loads(text, parse_float=Decimal)
    for row in rows:
        for column, value in row.items():
            kind = types.get(column, "")
            if value is None:
                continue
            if kind == "BLOB":
                row[column] = bytes.fromhex(value[2:])
            elif kind == "TIMESTAMP WITH TIME ZONE":
                row[column] = (datetime.datetime.fromisoformat(value) - EPOCH) // datetime.timedelta(microseconds=1)
            elif isinstance(value, float):
                row[column] = Decimal(repr(value))
    return rows


def test_a_flow_keeps_duckdb_tables_equal_to_the_source_through_a_kill(broker, postgres_cluster, tmp_path):
    source = postgres_cluster.createdb("duck_src")
    file = tmp_path / "warehouse" / "mirror.duckdb"
    seed(source)
    flow = flow_with("mirror", source, "public.items,public.notes", {"name": "wh", "type": "duckdb", "options": {"dsn": str(file)}})
    create_flow(broker, tmp_path, flow)
    sink = "mirror.wh"
    try:
        def compare(table):
            def read():
                types = column_types(file, "public", table)
                return source_exact_rows(source, table, types), destination_rows(file, "public", table)
            return read

        def equal_now(table):
            src, dst = stopped(broker, [sink], compare(table))
            return src == dst

        helpers.wait_until(lambda: equal_now("items"), timeout=120, interval=1, what="the snapshot in DuckDB")
        changes_before_kill(source)
        kill_and_restart(broker)
        changes_after_kill(source)
        for table in ("items", "notes"):
            helpers.wait_until(lambda: equal_now(table), timeout=120, interval=1, what=f"{table} equal in DuckDB")
        admin(broker, "sink", "stop", sink)
        # Stopped for good now: one last comparison, with wait_equal's report of differences.
        for table in ("items", "notes"):
            wait_equal(lambda: compare(table)()[0], lambda: compare(table)()[1], timeout=1, what=f"{table} equal")
        assert sink_state(broker, sink)["state"] == "PAUSED"
        # The TOASTed value an update did not send is the destination's own, kept.
        assert query(file, "SELECT left(blob, 8) AS b, name FROM public.items WHERE id = 1") == [{"b": "toast-1-", "name": "renamed"}]
        types = list(column_types(file, "public", "items").values())
        assert types == ["INTEGER", "SMALLINT", "BIGINT", "DECIMAL(12,3)", "DECIMAL(38,10)", "FLOAT", "DOUBLE", "BOOLEAN",
                         "VARCHAR", "VARCHAR", "VARCHAR", "BLOB", "DATE", "TIME", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE",
                         "INTERVAL", "UUID", "JSON", "JSON", "INTEGER[]", "VARCHAR[]", "VARCHAR"], types
        # The meta table has each source row's latest change; the offsets table, the sink's.
        live = query(file, "SELECT count(*) AS n FROM ductstream_meta.__metadata WHERE source_table = 'items' AND NOT is_deleted")
        assert live[0]["n"] == len(source_exact_rows(source, "items", {}))
        deleted = query(file, "SELECT op FROM ductstream_meta.__metadata WHERE source_table = 'items' AND key_json = '{\"id\":3}'")
        assert deleted == [{"op": "d"}]
        offsets = query(file, "SELECT topic FROM ductstream_meta.sink_offsets WHERE sink_id = 'mirror.wh' ORDER BY topic")
        assert [r["topic"] for r in offsets] == ["mirror.public.items", "mirror.public.notes"], offsets
    finally:
        delete_flow(broker, "mirror")


def test_append_mode_and_soft_deletes_share_one_file(broker, postgres_cluster, tmp_path):
    source = postgres_cluster.createdb("duckmodes_src")
    file = tmp_path / "modes.duckdb"
    psql(source, "CREATE TABLE t (id int PRIMARY KEY, v text, j jsonb); INSERT INTO t VALUES (1, 'a', '{\"x\": 1}'), (2, 'b', null)")
    flow = flow_with("modes", source, "public.t", {"name": "history", "type": "duckdb", "options": {
        "dsn": f"duckdb://{file}", "schema": "history", "write_mode": "append", "meta_enabled": "true", "watermark_source": "lsn"}})
    flow["destinations"].append({"name": "soft", "type": "duckdb", "options": {
        "dsn": str(file), "schema": "soft", "soft_delete": "true", "meta_watermark": "-",
        "type_mappings": json.dumps({"jsonb": "VARCHAR"}), "meta_table_enabled": "false"}})
    create_flow(broker, tmp_path, flow)
    sinks = ["modes.history", "modes.soft"]
    try:
        psql(source, "UPDATE t SET v = 'a2' WHERE id = 1; DELETE FROM t WHERE id = 2; INSERT INTO t VALUES (3, 'c', '[1]')")

        def read():
            history = query(file, "SELECT id, __ds_op AS op, v, __ds_is_deleted AS deleted FROM history.t ORDER BY __ds_watermark, id") \
                if column_types(file, "history", "t") else []
            soft = query(file, "SELECT id, v, __ds_is_deleted AS deleted, __ds_op AS op FROM soft.t ORDER BY id") \
                if column_types(file, "soft", "t") else []
            return [f"{r['id']}:{r['op']}:{r['v'] or '-'}:{str(r['deleted']).lower()}" for r in history], \
                   [f"{r['id']}:{r['v']}:{str(r['deleted']).lower()}:{r['op']}" for r in soft]

        last = {}

        def done():
            last["rows"] = stopped(broker, sinks, read)
            return len(last["rows"][0]) == 5 and len(last["rows"][1]) == 3

        helpers.wait_until(done, timeout=90, interval=1, what=f"five rows of history and three soft ones (last: {last})")
        history, soft = last["rows"]
        # A delete carries the old key only (the default replica identity): its other columns are null.
        assert history == ["1:r:a:false", "2:r:b:false", "1:u:a2:false", "2:d:-:true", "3:c:c:false"], history
        assert soft == ["1:a2:false:u", "2:b:true:d", "3:c:false:c"], soft
        for sink in sinks:
            admin(broker, "sink", "stop", sink)
        soft_types = column_types(file, "soft", "t")
        assert soft_types["j"] == "VARCHAR" and "__ds_watermark" not in soft_types, soft_types
        assert column_types(file, "history", "t")["__ds_watermark"] == "BIGINT"
        assert query(file, "SELECT count(*) AS n FROM ductstream_meta.__metadata WHERE flow_id = 'modes'") == [{"n": 0}]
    finally:
        delete_flow(broker, "modes")


def test_staging_tables_are_resolved_on_demand(broker, postgres_cluster, tmp_path):
    source = postgres_cluster.createdb("duckstage_src")
    file = tmp_path / "stage.duckdb"
    psql(source, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g")
    flow = flow_with("stage", source, "public.t", {"name": "wh", "type": "duckdb", "options": {
        "dsn": str(file), "batch_mode": "staging", "batch_resolution": "append", "staging_schema": "landing"}})
    create_flow(broker, tmp_path, flow)
    sink = "stage.wh"
    try:
        psql(source, "UPDATE t SET v = 'new' WHERE id <= 10; DELETE FROM t WHERE id > 45")

        def counts():
            staged = query(file, "SELECT count(*) AS n FROM landing.t_staging")[0]["n"] if column_types(file, "landing", "t_staging") else 0
            applied = query(file, "SELECT count(*) AS n FROM public.t")[0]["n"] if column_types(file, "public", "t") else 0
            return staged, applied

        helpers.wait_until(lambda: stopped(broker, [sink], counts) == (65, 0), timeout=90, interval=1, what="65 staged rows, none applied")
        # Resolved while the sink runs: they share the broker's one connection to the file.
        resolved = admin(broker, "flow", "resolve-staging", "stage", "--tables", "public.t")[1]
        assert resolved == [{"sink_id": "stage.wh", "table": "public.t", "rows": 65}], resolved
        admin(broker, "sink", "stop", sink)
        assert source_exact_rows(source, "t", {}) == destination_rows(file, "public", "t")
        assert counts() == (0, 45)
    finally:
        delete_flow(broker, "stage")


def test_a_dsn_that_is_no_database_fails_the_sink_and_a_held_file_waits(broker, postgres_cluster, tmp_path):
    source = postgres_cluster.createdb("duckbad_src")
    psql(source, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')")
    (tmp_path / "afile").write_text("a file, not a folder")
    (tmp_path / "notes.duckdb").write_text("hello, not a database")
    held = tmp_path / "held.duckdb"
    holder = duckdb.connect(str(held))
    flow = flow_with("bad", source, "public.t", {"name": "nodir", "type": "duckdb", "options": {"dsn": str(tmp_path / "afile" / "sub" / "x.duckdb")}})
    flow["destinations"].append({"name": "notdb", "type": "duckdb", "options": {"dsn": str(tmp_path / "notes.duckdb")}})
    flow["destinations"].append({"name": "held", "type": "duckdb", "options": {"dsn": str(held)}})
    create_flow(broker, tmp_path, flow)
    try:
        def state_with(sink_id, state, text):
            s = sink_state(broker, sink_id)
            return s["state"] == state and text in s["last_error"]

        helpers.wait_until(lambda: state_with("bad.nodir", "FAILED", "cannot create the folder"), timeout=60, what="the folder refused")
        helpers.wait_until(lambda: state_with("bad.notdb", "FAILED", "not a valid DuckDB database file"), timeout=60, what="the non-database refused")
        # Another process holds the file: the sink retries, and goes on once it is let go.
        helpers.wait_until(lambda: state_with("bad.held", "RUNNING", "Could not set lock"), timeout=60, what="the held file retried")
        holder.close()
        helpers.wait_until(lambda: stopped(broker, ["bad.held"], lambda: column_types(held, "public", "t") and
                                           query(held, "SELECT id, v FROM public.t")) == [{"id": 1, "v": "a"}],
                           timeout=90, interval=1, what="the row once the file was free")
    finally:
        holder.close()
        delete_flow(broker, "bad")
