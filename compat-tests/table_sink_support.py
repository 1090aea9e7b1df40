"""What the table destinations' tests (postgres, duckdb, clickhouse) share: a source table with
every common built-in type, a workload of snapshot, inserts, updates (one changing the primary
key, one leaving a TOASTed column unchanged), deletes and a truncate, and a CDC flow to run it
through."""

from __future__ import annotations

import json
import signal
import subprocess

import helpers
from sink_support import admin

ALL_TYPES = """
CREATE TABLE items (
    id integer PRIMARY KEY,
    small smallint, big bigint, amount numeric(12,3), ratio numeric, r real, d double precision,
    flag boolean, name text, code varchar(20), letter char(3), payload bytea,
    day date, at_time time, at timestamp, at_tz timestamptz, span interval, uid uuid,
    doc json, docb jsonb, nums integer[], tags text[],
    blob text
);
ALTER TABLE items ALTER COLUMN blob SET STORAGE EXTERNAL;
CREATE TABLE notes (id integer PRIMARY KEY, body text);
"""

ROW = ("({id}, {id}, {id}000000000, {id}.125, 1{id}.5, 1.5, 2.25, {flag}, 'name {id}', 'c{id}', 'ab', '\\x00ff{hexbyte:02x}',"
       " '2024-01-0{day}', '12:34:56', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.5+02', '1 day 02:03:04',"
       " '00000000-0000-0000-0000-00000000000{day}', '{{\"a\": {id}}}', '{{\"b\": [{id}, \"x\"]}}', '{{{id},NULL,3}}',"
       " '{{\"t\\\"q\",NULL}}', repeat('toast-{id}-', 400))")


def psql(url: str, sql: str) -> str:
    p = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-q", "-At", "-c", sql], capture_output=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError(f"psql failed: {p.stderr.decode()[:500]}\n{sql[:300]}")
    return p.stdout.decode()


def insert_items(source: str, ids) -> None:
    values = ",".join(ROW.format(id=i, flag="true" if i % 2 else "false", day=i % 9 + 1, hexbyte=i % 256) for i in ids)
    psql(source, f"INSERT INTO items VALUES {values}")


def seed(source: str) -> None:
    """The rows the snapshot reads."""
    psql(source, ALL_TYPES)
    insert_items(source, range(1, 6))
    psql(source, "INSERT INTO notes VALUES (1, 'a'), (2, 'b')")


def changes_before_kill(source: str) -> None:
    insert_items(source, range(6, 9))
    # The TOASTed blob is not sent for this update: the destination keeps its own.
    psql(source, "UPDATE items SET name = 'renamed', amount = NULL WHERE id = 1")
    # A primary-key change: delete of key 2, insert of key 20.
    psql(source, "UPDATE items SET id = 20 WHERE id = 2")
    psql(source, "DELETE FROM items WHERE id = 3")
    psql(source, "TRUNCATE notes; INSERT INTO notes VALUES (3, 'c')")


def changes_after_kill(source: str) -> None:
    insert_items(source, range(100, 400))
    psql(source, "UPDATE items SET small = small + 1 WHERE id >= 100 AND id % 3 = 0")
    psql(source, "DELETE FROM items WHERE id >= 100 AND id % 5 = 0")
    psql(source, "UPDATE items SET blob = 'short now', tags = '{}' WHERE id = 4")
    psql(source, "INSERT INTO notes VALUES (4, 'd')")


def source_rows(source: str, table: str) -> list[dict]:
    """The table's rows as JSON objects, ordered by id."""
    text = psql(source, f"SELECT coalesce(json_agg(x ORDER BY id), '[]') FROM {table} x")
    return json.loads(text)


def flow_with(flow_id: str, source: str, tables: str, destination: dict) -> dict:
    return {
        "id": flow_id, "name": flow_id,
        "source": {"name": "pg", "type": "postgres", "options": {
            "dsn": source, "publication_tables": tables, "batch_timeout": "100ms"}},
        "destinations": [{"name": "topics", "type": "topics"}, destination],
    }


def create_flow(broker, tmp_path, flow: dict, start: bool = True) -> None:
    path = tmp_path / f"flow-{flow['id']}.json"
    path.write_text(json.dumps(flow))
    admin(broker, "flow", "create", "-f", str(path))
    if start:
        admin(broker, "flow", "start", flow["id"])


def delete_flow(broker, flow_id: str) -> None:
    admin(broker, "flow", "delete", flow_id, check=False)


def kill_and_restart(broker) -> None:
    """kill -9, then the broker starts again on its data: flows and sinks resume."""
    broker.proc.send_signal(signal.SIGKILL)
    broker.proc.wait(10)
    broker.expected_exit = True
    broker.restart()
    broker.expected_exit = False


def wait_equal(read_source, read_destination, timeout: float = 120.0, what: str = "the destination equal to the source"):
    last = {}

    def equal():
        last["source"], last["destination"] = read_source(), read_destination()
        return last["source"] == last["destination"]

    try:
        helpers.wait_until(equal, timeout=timeout, interval=0.5, what=what)
    except AssertionError:
        src, dst = last.get("source") or [], last.get("destination") or []
        diff = [(s.get("id"), k, str(v)[:60], str(d.get(k))[:60]) for s, d in zip(src, dst) for k, v in s.items() if d.get(k) != v][:6]
        raise AssertionError(f"{what}: {len(src)} source rows, {len(dst)} destination rows; "
                             f"first differences (id, column, source, destination): {diff}")
