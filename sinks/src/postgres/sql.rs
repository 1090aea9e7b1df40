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

pub fn create_table(table: &DestTable) -> String {
    let mut parts: Vec<String> = table.columns.iter().map(column_definition).collect();
    if !table.key.is_empty() {
        parts.push(format!("PRIMARY KEY ({})", column_list(table.key.iter().map(String::as_str))));
    }
    format!("CREATE TABLE IF NOT EXISTS {} ({})", qualified(&table.name), parts.join(", "))
}

pub fn add_columns(table: &TableName, columns: &[DestColumn]) -> String {
    let adds: Vec<String> = columns.iter().map(|c| format!("ADD COLUMN IF NOT EXISTS {}", column_definition(c))).collect();
    format!("ALTER TABLE {} {}", qualified(table), adds.join(", "))
}

fn column_definition(column: &DestColumn) -> String {
    format!("{} {}", ident(&column.name), column.ty)
}

/// The sink's offsets: the next offset per sink, topic and partition.
pub fn create_offsets(schema: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}.sink_offsets (sink_id text NOT NULL, topic text NOT NULL, partition integer NOT NULL, \
         next_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (sink_id, topic, partition))",
        ident(schema)
    )
}

/// The meta table: a source row's latest change, per flow.
pub fn create_meta(schema: &str, table: &str, pk_prefix: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}.{} (flow_id text NOT NULL, source_schema text NOT NULL, source_table text NOT NULL, \
         key_json text NOT NULL, op text NOT NULL, lsn bigint NOT NULL, synced_at timestamptz NOT NULL, is_deleted boolean NOT NULL, \
         CONSTRAINT {} PRIMARY KEY (flow_id, source_schema, source_table, key_json))",
        ident(schema),
        ident(table),
        ident(&format!("{pk_prefix}{table}"))
    )
}

/// `a."k" = b."k" AND …` over the key.
pub fn key_match(key: &[String], a: &str, b: &str) -> String {
    key.iter().map(|k| format!("{a}.{0} = {b}.{0}", ident(k))).collect::<Vec<_>>().join(" AND ")
}
