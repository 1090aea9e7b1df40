//! Identifiers and the statements that do not depend on a batch.

use crate::table::{DestColumn, DestTable, TableName};

/// `"name"`, with inner quotes doubled.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub fn qualified(table: &TableName) -> String {
    format!("{}.{}", ident(&table.schema), ident(&table.table))
}

/// The column list `"a", "b"`.
pub fn column_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names.into_iter().map(ident).collect::<Vec<_>>().join(", ")
}

/// `a."k" = b."k" AND …` over the key.
pub fn key_match(key: &[String], a: &str, b: &str) -> String {
    key.iter().map(|k| format!("{a}.{0} = {b}.{0}", ident(k))).collect::<Vec<_>>().join(" AND ")
}

pub fn create_table(table: &DestTable) -> String {
    let mut parts: Vec<String> = table.columns.iter().map(column_definition).collect();
    if !table.key.is_empty() {
        parts.push(format!("PRIMARY KEY ({})", column_list(table.key.iter().map(String::as_str))));
    }
    format!("CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE IF NOT EXISTS {} ({})", ident(&table.name.schema), qualified(&table.name), parts.join(", "))
}

/// One statement per column: DuckDB's ALTER TABLE takes one change at a time.
pub fn add_columns(table: &TableName, columns: &[DestColumn]) -> String {
    columns.iter().map(|c| format!("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {};", qualified(table), column_definition(c))).collect()
}

fn column_definition(column: &DestColumn) -> String {
    format!("{} {}", ident(&column.name), column.ty)
}

/// The sink's offsets: the next offset per sink, topic and partition.
pub fn create_offsets(schema: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {0}; CREATE TABLE IF NOT EXISTS {0}.sink_offsets (sink_id VARCHAR NOT NULL, topic VARCHAR NOT NULL, \
         \"partition\" INTEGER NOT NULL, next_offset BIGINT NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now(), \
         PRIMARY KEY (sink_id, topic, \"partition\"))",
        ident(schema)
    )
}

/// The meta table: a source row's latest change, per flow. Without a primary key: DuckDB keeps
/// one as an index that makes each batch's upsert of the meta rows some ten times slower (3 s
/// for 50,000 rows), and the sink's delete-then-insert keeps one row per key anyway (one
/// connection per file writes it). `meta_pk_prefix` names nothing here.
pub fn create_meta(schema: &str, table: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {0}; CREATE TABLE IF NOT EXISTS {0}.{1} (flow_id VARCHAR NOT NULL, source_schema VARCHAR NOT NULL, \
         source_table VARCHAR NOT NULL, key_json VARCHAR NOT NULL, op VARCHAR NOT NULL, lsn BIGINT NOT NULL, synced_at TIMESTAMPTZ NOT NULL, \
         is_deleted BOOLEAN NOT NULL)",
        ident(schema),
        ident(table)
    )
}
