//! A batch applied inside one transaction (the caller's): rows appended as text to a temporary
//! table, cast into a second one shaped like the target, then applied set-wise (kept cells
//! filled from the destination, every batch key deleted, the new rows inserted); the meta
//! table's rows and the sink's next offset written alongside.

use duckdb::{appender_params_from_iter, params, Connection};

use super::batch::{Prepared, Rows, TargetRows};
use super::error::duckdb_error;
use super::sql::{column_list, ident, key_match, qualified};
use super::text::cast;
use crate::table::options::MetaTable;
use crate::table::{DestTable, MetaRow, Position, TableName};
use crate::Result;

/// The temporary tables of a batch: its rows as text, then cast.
const RAW: &str = "temp.main.__ds_raw";
const BATCH: &str = "temp.main.__ds_batch";
const META_RAW: &str = "temp.main.__ds_meta_raw";
/// The batch table's own columns: whether a row is a delete, which keep-set it keeps, and
/// (`__ds_from_<i>`) the key a moved row has in the destination.
const DELETE_FLAG: &str = "__ds_delete";
const KEEP_SET: &str = "__ds_keep";

/// Runs `sql`; a failure names the table it was for.
pub fn execute(conn: &Connection, table: &str, sql: &str) -> Result<()> {
    conn.execute_batch(sql).map_err(|e| duckdb_error(&e, &format!("{table}: {sql}")))
}

/// Everything a batch writes, and the sink's position: the caller commits.
pub fn apply_batch(conn: &Connection, writes: &[Prepared], meta: Option<&MetaTable>, flow_id: &str, offsets_schema: &str, position: &Position) -> Result<()> {
    for write in writes {
        match &write.rows {
            Rows::Insert(rows) => insert_rows(conn, &write.table, rows)?,
            Rows::Target(rows) => {
                apply_target(conn, &write.table, rows)?;
                if let Some(meta) = meta {
                    let name = TableName { schema: meta.schema.clone(), table: meta.table.clone() };
                    apply_meta(conn, &name, flow_id, &write.table.source, rows.truncate, &rows.meta)?;
                }
            }
        }
    }
    let sql = format!(
        "INSERT INTO {}.sink_offsets (sink_id, topic, \"partition\", next_offset, updated_at) VALUES (?, ?, ?, ?, now()) \
         ON CONFLICT (sink_id, topic, \"partition\") DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = EXCLUDED.updated_at",
        ident(offsets_schema)
    );
    conn.execute(&sql, params![position.sink_id, position.topic, position.partition, position.next_offset])
        .map_err(|e| duckdb_error(&e, &sql))?;
    Ok(())
}

/// A temporary table of VARCHAR columns named `columns`, holding `rows`. (Named as the
/// destination's, so that a value its cast refuses is reported by its column's name.)
fn load_text<'a>(conn: &Connection, table: &str, name: &str, columns: &[&str], rows: impl Iterator<Item = Vec<Option<&'a str>>>) -> Result<()> {
    let short = name.trim_start_matches("temp.main.");
    let definitions: Vec<String> = columns.iter().map(|c| format!("{} VARCHAR", ident(c))).collect();
    execute(conn, table, &format!("CREATE OR REPLACE TEMP TABLE {short} ({})", definitions.join(", ")))?;
    let appending = |e: duckdb::Error| duckdb_error(&e, &format!("{table}: appending to {short}"));
    let mut appender = conn.appender_to_catalog_and_db(short, "temp", "main").map_err(appending)?;
    for row in rows {
        appender.append_row(appender_params_from_iter(row)).map_err(appending)?;
    }
    appender.flush().map_err(appending)
}

/// The casts of the text columns into the table's columns.
fn casts(table: &DestTable) -> Vec<String> {
    table.columns.iter().map(|c| format!("{} AS {}", cast(&ident(&c.name), &c.kind, &c.ty), ident(&c.name))).collect()
}

fn names(table: &DestTable) -> Vec<&str> {
    table.columns.iter().map(|c| c.name.as_str()).collect()
}

/// Append mode and staging tables: the rows added as they are.
fn insert_rows(conn: &Connection, table: &DestTable, rows: &[Vec<Option<String>>]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let name = table.name.to_string();
    load_text(conn, &name, RAW, &names(table), rows.iter().map(|r| r.iter().map(Option::as_deref).collect()))?;
    let list = column_list(table.columns.iter().map(|c| c.name.as_str()));
    let sql = format!("INSERT INTO {} ({list}) SELECT {} FROM {RAW}; DROP TABLE {RAW}", qualified(&table.name), casts(table).join(", "));
    execute(conn, &name, &sql)
}

/// Truncate, deletes, upserts.
fn apply_target(conn: &Connection, table: &DestTable, batch: &TargetRows) -> Result<()> {
    let name = table.name.to_string();
    let target = qualified(&table.name);
    if batch.truncate {
        execute(conn, &name, &format!("DELETE FROM {target}"))?;
    }
    if batch.rows.is_empty() {
        return Ok(());
    }
    let width = table.columns.len();
    let keys = table.key.len();
    // The columns, then the delete flag, the keep-set, the moved row's old key.
    let keep_ids: Vec<String> = (0..=batch.keep_sets.len()).map(|i| i.to_string()).collect();
    let rows = batch.rows.iter().map(|r| {
        let mut cells: Vec<Option<&str>> = Vec::with_capacity(width + 2 + keys);
        cells.extend(r.cells.iter().map(Option::as_deref));
        cells.push(Some(if r.delete { "true" } else { "false" }));
        cells.push(r.keep.and_then(|k| keep_ids.get(k)).map(String::as_str));
        match &r.moved_from {
            Some(key) => cells.extend(key.iter().map(Option::as_deref)),
            None => cells.extend(std::iter::repeat_n(None, keys)),
        }
        cells
    });
    let from: Vec<String> = (0..keys).map(|i| format!("__ds_from_{i}")).collect();
    let mut columns = names(table);
    columns.extend([DELETE_FLAG, KEEP_SET]);
    columns.extend(from.iter().map(String::as_str));
    load_text(conn, &name, RAW, &columns, rows)?;
    let key_columns: Vec<_> = table.key.iter().filter_map(|k| table.column(k)).collect();
    let from_casts: String = key_columns.iter().zip(&from).map(|(c, f)| format!(", {} AS {f}", cast(f, &c.kind, &c.ty))).collect();
    let create = format!(
        "CREATE OR REPLACE TEMP TABLE __ds_batch AS SELECT {}, CAST({DELETE_FLAG} AS BOOLEAN) AS {DELETE_FLAG}, CAST({KEEP_SET} AS INTEGER) AS {KEEP_SET}{from_casts} \
         FROM {RAW}; DROP TABLE {RAW}",
        casts(table).join(", ")
    );
    execute(conn, &name, &create)?;
    let names = names(table);
    let list = column_list(names.iter().copied());
    let mut sql = Vec::new();
    if !batch.keep_sets.is_empty() && !table.key.is_empty() {
        // Kept cells take the destination's values: from the row's old key when it moved,
        // else from its own. (A row the destination lacks keeps nulls.)
        let sets: Vec<String> = names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let ids: Vec<String> = batch.keep_sets.iter().enumerate().filter(|(_, set)| set.contains(&i)).map(|(id, _)| (id + 1).to_string()).collect();
                (!ids.is_empty()).then(|| format!("{0} = CASE WHEN b.{KEEP_SET} IN ({1}) THEN t.{0} ELSE b.{0} END", ident(n), ids.join(", ")))
            })
            .collect();
        let matches: Vec<String> = table.key.iter().zip(&from).map(|(k, f)| format!("t.{0} = coalesce(b.{f}, b.{0})", ident(k))).collect();
        sql.push(format!("UPDATE {BATCH} b SET {} FROM {target} t WHERE b.{KEEP_SET} IS NOT NULL AND {}", sets.join(", "), matches.join(" AND ")));
    }
    if !table.key.is_empty() {
        // Upserts as a delete and an insert: DuckDB's ON CONFLICT DO UPDATE takes seconds
        // where this takes a tenth (50,000 rows into 2 million), and a batch has each key once.
        sql.push(format!("DELETE FROM {target} t USING {BATCH} b WHERE {}", key_match(&table.key, "t", "b")));
    }
    sql.push(format!("INSERT INTO {target} ({list}) SELECT {list} FROM {BATCH} WHERE NOT {DELETE_FLAG}"));
    sql.push(format!("DROP TABLE {BATCH}"));
    for statement in sql {
        execute(conn, &name, &statement)?;
    }
    Ok(())
}

/// The meta table's rows for a table: its latest change per key (all of the table's rows
/// dropped first when the batch truncated it).
fn apply_meta(conn: &Connection, meta: &TableName, flow_id: &str, source: &TableName, truncate: bool, rows: &[MetaRow]) -> Result<()> {
    let name = qualified(meta);
    let label = meta.to_string();
    if truncate {
        let sql = format!("DELETE FROM {name} WHERE flow_id = ? AND source_schema = ? AND source_table = ?");
        conn.execute(&sql, params![flow_id, source.schema, source.table]).map_err(|e| duckdb_error(&e, &format!("{label}: {sql}")))?;
    }
    if rows.is_empty() {
        return Ok(());
    }
    let lsns: Vec<String> = rows.iter().map(|r| r.lsn.to_string()).collect();
    let text = rows.iter().zip(&lsns).map(|(r, lsn)| {
        let deleted = if r.deleted { "true" } else { "false" };
        vec![Some(flow_id), Some(r.source.schema.as_str()), Some(r.source.table.as_str()), Some(r.key_json.as_str()), Some(r.op.code()), Some(lsn.as_str()), Some(r.synced_at.as_str()), Some(deleted)]
    });
    let columns = ["flow_id", "source_schema", "source_table", "key_json", "op", "lsn", "synced_at", "is_deleted"];
    load_text(conn, &label, META_RAW, &columns, text)?;
    // An upsert as a delete and an insert, as for the tables (see [`apply_target`]).
    let matched = ["flow_id", "source_schema", "source_table", "key_json"].map(|c| format!("m.{c} = r.{c}")).join(" AND ");
    let sql = format!(
        "DELETE FROM {name} m USING {META_RAW} r WHERE {matched}; \
         INSERT INTO {name} SELECT flow_id, source_schema, source_table, key_json, op, CAST(lsn AS BIGINT), CAST(synced_at AS TIMESTAMPTZ), \
         CAST(is_deleted AS BOOLEAN) FROM {META_RAW}; DROP TABLE {META_RAW}"
    );
    execute(conn, &label, &sql)
}
