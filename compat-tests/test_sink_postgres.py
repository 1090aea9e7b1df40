"""The postgres table destination: a CDC flow keeps tables in another Postgres database equal to
the source tables (through a snapshot, inserts, updates, a primary-key change, an unchanged
TOAST value, deletes, a truncate and a kill -9 of the broker), or keeps every change as a row;
soft deletes, type mappings, the meta table, staging tables resolved on demand; and what
happens when the destination is wrong or goes away."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import helpers
from sink_support import admin, sink_state, wait_caught_up
from table_sink_support import (changes_after_kill, changes_before_kill, create_flow, delete_flow, flow_with,
                                kill_and_restart, psql, seed, source_rows, wait_equal)


def test_a_flow_keeps_postgres_tables_equal_to_the_source_through_a_kill(broker, postgres_cluster, tmp_path):
    source, dest = postgres_cluster.createdb("pgsink_src"), postgres_cluster.createdb("pgsink_dst")
    seed(source)
    flow = flow_with("mirror", source, "public.items,public.notes", {"name": "wh", "type": "postgres", "options": {"dsn": dest}})
    create_flow(broker, tmp_path, flow)
    try:
        wait_equal(lambda: source_rows(source, "items"), lambda: source_rows(dest, "public.items"), what="the snapshot")
        changes_before_kill(source)
        time.sleep(0.3)
        kill_and_restart(broker)
        changes_after_kill(source)
        for table in ("items", "notes"):
            wait_equal(lambda: source_rows(source, table), lambda: source_rows(dest, f"public.{table}"), what=f"{table} equal")
        # The TOASTed value an update did not send is the destination's own, kept.
        assert psql(dest, "SELECT left(blob, 8), name FROM items WHERE id = 1").strip() == "toast-1-|renamed"
        # Exact types: the destination's columns are the source's.
        types = psql(dest, "SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attnum) FROM pg_attribute "
                           "WHERE attrelid = 'public.items'::regclass AND attnum > 0 AND NOT attisdropped")
        assert types.strip().startswith("integer,smallint,bigint,numeric(12,3),numeric,real,double precision,boolean,text,"
                                        "character varying(20),character(3),bytea,date,time without time zone,"
                                        "timestamp without time zone,timestamp with time zone,interval,uuid,json,jsonb,integer[],text[]"), types
        # The meta table has each source row's latest change; the offsets table, the sink's.
        live = int(psql(dest, "SELECT count(*) FROM ductstream_meta.__metadata WHERE source_table = 'items' AND NOT is_deleted"))
        assert live == len(source_rows(source, "items"))
        assert psql(dest, "SELECT op FROM ductstream_meta.__metadata WHERE source_table = 'items' AND key_json = '{\"id\":3}'").strip() == "d"
        offsets = psql(dest, "SELECT topic FROM ductstream_meta.sink_offsets WHERE sink_id = 'mirror.wh' ORDER BY topic").split()
        assert offsets == ["mirror.public.items", "mirror.public.notes"], offsets
        state = wait_caught_up(broker, "mirror.wh")
        assert state["destination"]["options"]["source_dsn"].startswith("postgres://")
    finally:
        delete_flow(broker, "mirror")


def test_append_mode_soft_delete_and_type_mappings(broker, postgres_cluster, tmp_path):
    source, dest = postgres_cluster.createdb("pgmodes_src"), postgres_cluster.createdb("pgmodes_dst")
    psql(source, "CREATE TABLE t (id int PRIMARY KEY, v text, j jsonb); INSERT INTO t VALUES (1, 'a', '{\"x\": 1}'), (2, 'b', null)")
    flow = flow_with("modes", source, "public.t", {"name": "history", "type": "postgres", "options": {
        "dsn": dest, "schema": "history", "write_mode": "append", "meta_enabled": "true", "watermark_source": "lsn"}})
    flow["destinations"].append({"name": "soft", "type": "postgres", "options": {
        "dsn": dest, "schema": "soft", "soft_delete": "true", "meta_watermark": "-",
        "type_mappings": json.dumps({"jsonb": "text"}), "meta_table_enabled": "false"}})
    create_flow(broker, tmp_path, flow)
    try:
        history = lambda: psql(dest, "SELECT coalesce(string_agg(id || ':' || __ds_op || ':' || coalesce(v, '-') || ':' || __ds_is_deleted, ' ' "
                                     "ORDER BY __ds_watermark, id), '') FROM history.t")
        # Changes made before the snapshot would be read by it: wait for the snapshot first.
        helpers.wait_until(lambda: len(history().split()) == 2, timeout=90, what="the snapshot's two rows")
        psql(source, "UPDATE t SET v = 'a2' WHERE id = 1; DELETE FROM t WHERE id = 2; INSERT INTO t VALUES (3, 'c', '[1]')")
        helpers.wait_until(lambda: len(history().split()) == 5, timeout=90, what="five rows of history")
        # A delete carries the old key only (the default replica identity): its other columns are null.
        assert history().split() == ["1:r:a:false", "2:r:b:false", "1:u:a2:false", "2:d:-:true", "3:c:c:false"], history()
        soft = lambda: psql(dest, "SELECT string_agg(id || ':' || v || ':' || __ds_is_deleted || ':' || __ds_op, ' ' ORDER BY id) FROM soft.t")
        helpers.wait_until(lambda: soft().strip() == "1:a2:false:u 2:b:true:d 3:c:false:c", timeout=60, what="soft deletes")
        assert psql(dest, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'soft.t'::regclass AND attname = 'j'").strip() == "text"
        assert psql(dest, "SELECT column_name FROM information_schema.columns WHERE table_schema = 'soft' AND column_name = '__ds_watermark'") == ""
        assert psql(dest, "SELECT to_regclass('ductstream_meta.__metadata') IS NULL OR NOT EXISTS (SELECT 1 FROM ductstream_meta.__metadata "
                          "WHERE flow_id = 'modes' AND source_schema = 'public')").strip() == "t"
    finally:
        delete_flow(broker, "modes")


def test_staging_tables_are_resolved_on_demand(broker, postgres_cluster, tmp_path):
    source, dest = postgres_cluster.createdb("pgstage_src"), postgres_cluster.createdb("pgstage_dst")
    psql(source, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g")
    flow = flow_with("stage", source, "public.t", {"name": "wh", "type": "postgres", "options": {
        "dsn": dest, "batch_mode": "staging", "batch_resolution": "append", "staging_schema": "landing"}})
    create_flow(broker, tmp_path, flow)
    try:
        helpers.wait_until(lambda: psql(dest, "SELECT count(*) FROM landing.t_staging").strip() == "50", timeout=90, what="the snapshot staged")
        psql(source, "UPDATE t SET v = 'new' WHERE id <= 10; DELETE FROM t WHERE id > 45")
        helpers.wait_until(lambda: psql(dest, "SELECT count(*) FROM landing.t_staging").strip() == "65", timeout=90, what="staged rows")
        assert psql(dest, "SELECT count(*) FROM public.t").strip() == "0", "nothing applied before resolving"
        resolved = admin(broker, "flow", "resolve-staging", "stage", "--tables", "public.t")[1]
        assert resolved == [{"sink_id": "stage.wh", "table": "public.t", "rows": 65}], resolved
        assert source_rows(source, "t") == source_rows(dest, "public.t")
        assert psql(dest, "SELECT count(*) FROM landing.t_staging").strip() == "0"
        code, out = admin(broker, "flow", "resolve-staging", "nope", check=False)
        assert code != 0 and "nope" in out, out
        # A truncate and the rows its own transaction wrote after it (one commit LSN).
        psql(source, "BEGIN; TRUNCATE t; INSERT INTO t VALUES (1000, 'after'); COMMIT")
        helpers.wait_until(lambda: psql(dest, "SELECT count(*) FROM landing.t_staging").strip() == "2", timeout=90, what="the truncate staged")
        admin(broker, "flow", "resolve-staging", "stage")
        assert source_rows(dest, "public.t") == [{"id": 1000, "v": "after"}]
    finally:
        delete_flow(broker, "stage")


def test_a_destination_that_refuses_or_does_not_fit_fails_the_sink_clearly(broker, postgres_cluster, tmp_path):
    source, dest = postgres_cluster.createdb("pgbad_src"), postgres_cluster.createdb("pgbad_dst")
    psql(source, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')")
    psql(dest, "CREATE TABLE t (v text)")
    port = postgres_cluster.port
    flow = flow_with("bad", source, "public.t", {"name": "nobody", "type": "postgres", "options": {
        "dsn": f"postgres://nobody:wrong@127.0.0.1:{port}/postgres"}})
    flow["destinations"].append({"name": "misfit", "type": "postgres", "options": {"dsn": dest}})
    flow["destinations"].append({"name": "unmapped", "type": "postgres", "options": {
        "dsn": dest, "schema": "unmapped", "type_mappings": json.dumps({"text": "no_such_type"})}})
    create_flow(broker, tmp_path, flow)
    try:
        def failed(sink_id, text):
            state = sink_state(broker, sink_id)
            return state["state"] == "FAILED" and text in state["last_error"]

        helpers.wait_until(lambda: failed("bad.nobody", 'role "nobody" does not exist'), timeout=60, what="the wrong role refused")
        helpers.wait_until(lambda: failed("bad.misfit", 'has no column "id"'), timeout=60, what="the misfit table refused")
        helpers.wait_until(lambda: failed("bad.unmapped", 'type "no_such_type" does not exist'), timeout=60, what="the unmappable type refused")
        assert "wrong" not in sink_state(broker, "bad.nobody")["destination"]["options"]["dsn"]
        assert psql(dest, "SELECT count(*) FROM t").strip() == "0"
    finally:
        delete_flow(broker, "bad")


def test_lost_connections_mid_load_are_retried_and_nothing_is_applied_twice(broker, postgres_cluster, tmp_path):
    source, dest = postgres_cluster.createdb("pglost_src"), postgres_cluster.createdb("pglost_dst")
    psql(source, "CREATE TABLE t (id int PRIMARY KEY, n int)")
    flow = flow_with("lost", source, "public.t", {"name": "wh", "type": "postgres", "options": {
        "dsn": dest, "write_mode": "append", "meta_enabled": "true", "batch_records": "200"}})
    create_flow(broker, tmp_path, flow)
    dest_db = dest.rsplit("/", 1)[1]
    stop = threading.Event()

    def cut_connections():
        while not stop.is_set():
            psql(source, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{dest_db}' AND pid <> pg_backend_pid()")
            time.sleep(0.4)

    cutter = threading.Thread(target=cut_connections, daemon=True)
    try:
        cutter.start()
        for i in range(20):
            psql(source, f"INSERT INTO t SELECT g, g FROM generate_series({i * 200 + 1}, {(i + 1) * 200}) g")
            time.sleep(0.1)
        stop.set()
        cutter.join(10)
        helpers.wait_until(lambda: psql(dest, "SELECT count(*) FROM t").strip() == "4000", timeout=120, what="4000 appended rows")
        wait_caught_up(broker, "lost.wh")
        assert psql(dest, "SELECT count(DISTINCT id) FROM t").strip() == "4000", "no change appended twice"
    finally:
        stop.set()
        delete_flow(broker, "lost")


def test_a_backfill_worker_resolves_staging_when_it_ends(broker_factory, postgres_cluster, tmp_path):
    """`ductstream-worker --mode backfill --resolve-staging` on the brokers' Postgres store: the
    worker reads the table, the broker's sink stages it, and the worker replaces the target with
    it once the sink has written everything."""
    broker = broker_factory(storage="postgres")
    source, dest = postgres_cluster.createdb("pgbf_src"), postgres_cluster.createdb("pgbf_dst")
    psql(source, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 30) g")
    psql(dest, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (999, 'stale')")
    flow = flow_with("bf", source, "public.t", {"name": "wh", "type": "postgres", "options": {
        "dsn": dest, "batch_mode": "staging", "batch_resolution": "replace"}})
    create_flow(broker, tmp_path, flow, start=False)
    from conftest import broker_binary

    worker = broker_binary().parent / "ductstream-worker"
    # The flags with one dash, as our usage document writes them.
    p = subprocess.run([str(worker), "-flow-id", "bf", "-storage", broker.storage_url, "-data-dir", str(tmp_path / "w"),
                        "-mode", "backfill", "-tables", "public.t", "-resolve-staging", "-max-empty-reads", "3"],
                       capture_output=True, timeout=180)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert b"resolved the staging table" in p.stderr
    assert source_rows(source, "t") == source_rows(dest, "public.t"), "the target replaced by the staged rows"
    delete_flow(broker, "bf")
