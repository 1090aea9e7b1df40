"""`ensure_state` (default true): a flow keeps a row in `ductstream.source_state` of its source
(its slot, publication, start and stop), never streams that table's own changes even when the
publication holds every table, and drops the row when the flow is deleted with its slot."""

from __future__ import annotations

import helpers
from sink_support import admin
from table_sink_support import create_flow, psql

STATE = "SELECT slot || '|' || publication || '|' || (stopped_at IS NULL) || '|' || (confirmed_lsn IS NULL) FROM ductstream.source_state WHERE flow_id = '{}'"


def topics(broker) -> set[str]:
    from confluent_kafka.admin import AdminClient

    return set(AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics)


def test_a_flow_keeps_its_row_in_the_source_state_table(broker, postgres_cluster, tmp_path):
    source = postgres_cluster.createdb("state_src")
    psql(source, "CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION everything FOR ALL TABLES")
    flow = {"id": "st", "name": "st", "destinations": [{"name": "topics", "type": "topics"}],
            "source": {"name": "pg", "type": "postgres", "options": {"dsn": source, "publication": "everything", "batch_timeout": "100ms"}}}
    create_flow(broker, tmp_path, flow)
    try:
        helpers.wait_until(lambda: psql(source, STATE.format("st")).strip() == "ductstream_st|everything|true|true",
                           timeout=60, what="the flow's row")
        psql(source, "INSERT INTO t VALUES (1)")
        helpers.wait_until(lambda: "st.public.t" in topics(broker), timeout=60, what="the table's topic")
        assert not any("source_state" in t for t in topics(broker)), "the state table is not streamed"
        admin(broker, "flow", "stop", "st")
        helpers.wait_until(lambda: psql(source, STATE.format("st")).strip() == "ductstream_st|everything|false|false",
                           timeout=60, what="the stop recorded")
    finally:
        admin(broker, "flow", "delete", "st", check=False)
    assert psql(source, STATE.format("st")).strip() == "", "the row goes with the flow and its slot"


def test_ensure_state_false_leaves_the_source_alone(broker, postgres_cluster, tmp_path):
    source = postgres_cluster.createdb("state_off")
    psql(source, "CREATE TABLE t (id int PRIMARY KEY)")
    flow = {"id": "nost", "name": "nost", "destinations": [{"name": "topics", "type": "topics"}],
            "source": {"name": "pg", "type": "postgres", "options": {
                "dsn": source, "publication_tables": "public.t", "ensure_state": "false", "batch_timeout": "100ms"}}}
    create_flow(broker, tmp_path, flow)
    try:
        psql(source, "INSERT INTO t VALUES (1)")
        helpers.wait_until(lambda: "nost.public.t" in topics(broker), timeout=60, what="the table's topic")
        assert psql(source, "SELECT to_regclass('ductstream.source_state') IS NULL").strip() == "t"
    finally:
        admin(broker, "flow", "delete", "nost", check=False)
