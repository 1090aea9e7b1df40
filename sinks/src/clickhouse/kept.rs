//! Kept cells: an update that did not carry a column (an unchanged TOAST value) keeps the
//! destination's value, and a row whose key changed keeps the values of its row under the old
//! key. ClickHouse cannot update a row in place, so the sink reads those rows first (only
//! those, `FINAL`, by key) and writes complete rows.
//!
//! A batch may be written twice (a crash before its offset was recorded); the second time a
//! moved row's old key holds a tombstone, so the row under the new key is taken instead when
//! it is this very change's (same version): what the first time wrote.

use std::collections::HashMap;

use serde_json::Value;

use super::encode::{push_token, target};
use super::http::Client;
use super::raw::fields;
use super::rows::Kept;
use super::sql::{ident, qualified, typed_literal};
use crate::table::layout::{ENGINE_DELETED, ENGINE_VERSION};
use crate::table::plan::Upsert;
use crate::table::{Cell, DestTable};
use crate::{Result, SinkError};

/// Keys looked up per statement: the key list is the statement's text, and ClickHouse parses
/// at most 256 KiB of it by default.
const KEYS_PER_READ: usize = 500;

/// A destination row found by key.
struct Found {
    version: u64,
    deleted: bool,
    tokens: Kept,
}

/// For each upsert (by index) that keeps cells, the destination's tokens for them.
pub async fn read(client: &Client, table: &DestTable, types: &HashMap<String, String>, upserts: &[Upsert]) -> Result<HashMap<usize, Kept>> {
    let needing: Vec<usize> = (0..upserts.len()).filter(|i| upserts[*i].cells.contains(&Cell::Keep)).collect();
    if needing.is_empty() {
        return Ok(HashMap::new());
    }
    let key_positions: Vec<usize> = table.key.iter().filter_map(|k| table.columns.iter().position(|c| c.name == *k)).collect();
    let version_position = table.columns.iter().position(|c| c.name == ENGINE_VERSION);
    let mut kept_columns: Vec<&str> = Vec::new();
    for i in &needing {
        for (cell, column) in upserts[*i].cells.iter().zip(&table.columns) {
            if *cell == Cell::Keep && !kept_columns.contains(&column.name.as_str()) {
                kept_columns.push(&column.name);
            }
        }
    }
    // Each upsert's key (and old key) as a literal tuple; the distinct ones are looked up.
    let mut lookups: Vec<(usize, String, Option<String>)> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    for i in needing {
        let upsert = &upserts[i];
        let values: Vec<Value> = key_positions.iter().map(|p| upsert.cells.get(*p).map(|c| c.value().clone()).unwrap_or(Value::Null)).collect();
        let new = key_literal(table, types, &values)?;
        let old = upsert.moved_from.as_ref().map(|from| key_literal(table, types, from)).transpose()?;
        for key in std::iter::once(&new).chain(old.as_ref()) {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        lookups.push((i, new, old));
    }
    let key_expr = match table.key.as_slice() {
        [one] => ident(one),
        many => format!("({})", many.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", ")),
    };
    let selected: Vec<String> = kept_columns.iter().map(|c| ident(c)).collect();
    let mut found: HashMap<String, Found> = HashMap::new();
    for chunk in keys.chunks(KEYS_PER_READ) {
        let list = chunk.join(", ");
        let sql = format!(
            "SELECT indexOf([{list}], {key_expr}) AS __ds_i, {}, {}, {} FROM {} FINAL WHERE {key_expr} IN ({list}) FORMAT JSONEachRow",
            selected.join(", "),
            ident(ENGINE_VERSION),
            ident(ENGINE_DELETED),
            qualified(&table.name)
        );
        let settings = [("output_format_json_quote_64bit_integers", "0"), ("output_format_json_quote_denormals", "1")];
        let answer = client.query(&sql, &settings).await.map_err(|f| f.into_error(&format!("reading kept values of {}", table.name)))?;
        for line in answer.lines().filter(|l| !l.trim().is_empty()) {
            let row = fields(line).ok_or_else(|| SinkError::Retriable(format!("clickhouse destination: cannot read the row {line:?}")))?;
            let mut tokens: Kept = row.iter().map(|(k, v)| (k.clone(), (*v).to_owned())).collect();
            let index: usize = tokens.remove("__ds_i").and_then(|i| i.trim_matches('"').parse().ok()).unwrap_or(0);
            let version = tokens.remove(ENGINE_VERSION).and_then(|v| v.trim_matches('"').parse().ok()).unwrap_or(0);
            let deleted = tokens.remove(ENGINE_DELETED).is_some_and(|d| d.trim_matches('"') != "0");
            if let Some(key) = index.checked_sub(1).and_then(|i| chunk.get(i)) {
                found.insert(key.clone(), Found { version, deleted, tokens });
            }
        }
    }
    let live = |key: &str| found.get(key).filter(|f| !f.deleted);
    let mut kept = HashMap::new();
    for (i, new, old) in lookups {
        let row = match &old {
            Some(old) => {
                let version = version_position.and_then(|p| upserts[i].cells.get(p)).and_then(|c| c.value().as_u64());
                live(&new).filter(|f| Some(f.version) == version).or_else(|| live(old))
            }
            None => live(&new),
        };
        if let Some(row) = row {
            kept.insert(i, row.tokens.clone());
        }
    }
    Ok(kept)
}

/// A key as a constant of the key columns' types: `CAST('7' AS Int32)`, or a tuple of them.
fn key_literal(table: &DestTable, types: &HashMap<String, String>, values: &[Value]) -> Result<String> {
    let mut parts = Vec::with_capacity(values.len());
    for (name, value) in table.key.iter().zip(values) {
        let column = table.column(name).ok_or_else(|| SinkError::Fatal(format!("clickhouse destination: {} has no key column {name:?}", table.name)))?;
        let ty = types.get(name).map(String::as_str).unwrap_or("String");
        let mut token = String::new();
        push_token(&mut token, value, &column.kind, &target(ty)).map_err(|why| SinkError::Fatal(format!("clickhouse destination: {}.{name}: {why}", table.name)))?;
        let text = match serde_json::from_str::<String>(&token) {
            Ok(text) => text,
            Err(_) => token,
        };
        parts.push(typed_literal(&text, ty));
    }
    Ok(match parts.as_slice() {
        [one] => one.clone(),
        many => format!("({})", many.join(", ")),
    })
}
