"""The throwaway ClickHouse server of clickhouse_support: it starts, answers queries, takes a
JSONEachRow insert, and tells a right password from a wrong one."""

from __future__ import annotations

import pytest

from clickhouse_support import ClickHouseError, ClickHouseServer, clickhouse_binary


@pytest.fixture
def clickhouse(tmp_path):
    assert clickhouse_binary(), "clickhouse-server is not installed; run compat-tests/setup.sh"
    server = ClickHouseServer(tmp_path / "clickhouse").start()
    yield server
    server.stop()


def test_server_queries_and_users(clickhouse):
    assert clickhouse.query("SELECT 1 + 1").strip() == "2"

    clickhouse.query("CREATE DATABASE IF NOT EXISTS sink")
    clickhouse.query("CREATE TABLE sink.t (id UInt64, name String, _version UInt64) "
                     "ENGINE = ReplacingMergeTree(_version) ORDER BY id", user="writer", password="secret")
    rows = b'{"id":1,"name":"a","_version":1}\n{"id":1,"name":"b","_version":2}\n'
    clickhouse.query("INSERT INTO sink.t FORMAT JSONEachRow", user="writer", password="secret", data=rows)
    assert clickhouse.query("SELECT id, name FROM sink.t FINAL FORMAT TSV") == "1\tb\n"
    # 18.16 has no currentUser(); the query's own row in system.processes names its user
    assert clickhouse.query("SELECT user FROM system.processes LIMIT 1", user="writer", password="secret").strip() == "writer"

    with pytest.raises(ClickHouseError) as wrong:
        clickhouse.query("SELECT 1", user="writer", password="wrong")
    assert wrong.value.status == 401
    assert "Wrong password for user writer" in wrong.value.text
