//! The destination table a source table maps to: its name, its columns with their destination
//! types (the source's columns, then the meta columns, then a staging table's own), its key.

use std::fmt;

use serde_json::Value;

use super::change::{Op, TableChange};
use super::options::{MetaColumns, TableOptions, WatermarkSource};
use super::shape::SourceShape;
use super::types::{destination_type, dialect_type, value_kind, Dialect, ValueKind};

/// `schema.table` (ClickHouse: `database.table`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    pub schema: String,
    pub table: String,
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// Where a column's values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The source column of the same name.
    Column,
    /// When the sink wrote the row.
    SyncedAt,
    /// Whether the row was deleted (soft deletes, append mode).
    Deleted,
    Watermark(WatermarkSource),
    /// The change's op (`c`, `u`, `d`, `t`, `r`).
    Op,
    /// A staging table's own columns: the change's op, LSN and offset, so that resolving
    /// finds the latest change per key.
    StageOp,
    StageLsn,
    StageSeq,
    /// ClickHouse's own columns (see [`ENGINE_VERSION`]): the change's LSN, whether the row
    /// is a delete's tombstone (false here: the store writes the tombstones), and the change's
    /// offset in its partition.
    Version,
    Tombstone,
    Offset,
}

/// The staging columns' names.
pub const STAGE_OP: &str = "__ds_stage_op";
pub const STAGE_LSN: &str = "__ds_stage_lsn";
pub const STAGE_SEQ: &str = "__ds_stage_seq";

/// The columns a ClickHouse table gets, as it has no transactions, no UPDATE and no DELETE
/// without a mutation: a keyed table is a ReplacingMergeTree that keeps the row with the highest
/// [`ENGINE_VERSION`] (the change's LSN) per key, a delete is a row with [`ENGINE_DELETED`] set;
/// a table without a key (append mode, a keyless source) is ordered by the change's position
/// ([`ENGINE_OFFSET`] in its topic partition), so that a batch written again collapses onto
/// the rows it wrote before.
pub const ENGINE_VERSION: &str = "__ds_version";
pub const ENGINE_DELETED: &str = "__ds_deleted";
pub const ENGINE_OFFSET: &str = "__ds_offset";

impl Source {
    /// The value of a computed column for `change`.
    pub fn value(&self, change: &TableChange, deleted: bool, now_ms: i64) -> Value {
        match self {
            Source::Column => Value::Null,
            Source::SyncedAt => Value::String(iso_utc(now_ms)),
            Source::Deleted => Value::Bool(deleted),
            Source::Watermark(WatermarkSource::Lsn) | Source::StageLsn => Value::from(change.lsn),
            Source::Watermark(WatermarkSource::Timestamp) => Value::String(iso_utc(change.commit_ms)),
            Source::Op | Source::StageOp => Value::String(change.op.code().to_owned()),
            Source::StageSeq | Source::Offset => Value::from(change.offset),
            Source::Version => Value::from(change.lsn),
            Source::Tombstone => Value::Bool(false),
        }
    }
}

/// One destination column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestColumn {
    pub name: String,
    /// The destination's type, as its SQL spells it.
    pub ty: String,
    /// What the change event's values for it are.
    pub kind: ValueKind,
    pub source: Source,
}

/// A destination table, as the sink writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestTable {
    pub name: TableName,
    /// The source table, `schema.table`, for messages and the meta table.
    pub source: TableName,
    pub columns: Vec<DestColumn>,
    /// Primary key columns (empty for keyless tables, append and staging tables).
    pub key: Vec<String>,
}

impl DestTable {
    /// The table for `shape` in `dialect`, named `name`, with the meta columns `meta` asks for,
    /// keyed unless `keyed` is false (append mode).
    pub fn new(dialect: Dialect, name: TableName, source: TableName, shape: &SourceShape, options: &TableOptions, keyed: bool) -> DestTable {
        let mut columns: Vec<DestColumn> = shape
            .columns
            .iter()
            .map(|c| DestColumn {
                name: c.name.clone(),
                ty: destination_type(dialect, c, &options.type_mappings),
                kind: if c.is_builtin() { value_kind(&c.type_text) } else { ValueKind::Other },
                source: Source::Column,
            })
            .collect();
        if let Some(meta) = &options.meta {
            columns.extend(meta_columns(dialect, meta));
        }
        let key = if keyed { shape.key.clone() } else { Vec::new() };
        if dialect == Dialect::ClickHouse {
            columns.extend(engine_columns(key.is_empty()));
        }
        DestTable { name, source, columns, key }
    }

    /// The staging table of this table: its columns plus the staging columns, no key.
    pub fn staging(&self, dialect: Dialect, name: TableName) -> DestTable {
        let mut columns = self.columns.clone();
        for (column, ty, source) in [(STAGE_OP, "text", Source::StageOp), (STAGE_LSN, "bigint", Source::StageLsn), (STAGE_SEQ, "bigint", Source::StageSeq)] {
            columns.push(DestColumn { name: column.into(), ty: dialect_type(dialect, ty), kind: value_kind(ty), source });
        }
        DestTable { name, source: self.source.clone(), columns, key: Vec::new() }
    }

    pub fn column(&self, name: &str) -> Option<&DestColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The meta table's row for `change` to the row keyed `key_json`.
    pub fn meta_row(&self, change: &TableChange, key_json: &str, deleted: bool, now_ms: i64) -> MetaRow {
        MetaRow {
            source: self.source.clone(),
            key_json: key_json.to_owned(),
            op: change.op,
            lsn: change.lsn,
            synced_at: iso_utc(now_ms),
            deleted,
        }
    }
}

/// The meta columns, in the order they are added.
fn meta_columns(dialect: Dialect, meta: &MetaColumns) -> Vec<DestColumn> {
    let watermark_type = match meta.watermark_source {
        WatermarkSource::Lsn => "bigint",
        WatermarkSource::Timestamp => "timestamp with time zone",
    };
    let mut columns = vec![
        (meta.synced_at.clone(), "timestamp with time zone", Source::SyncedAt),
        (meta.deleted.clone(), "boolean", Source::Deleted),
    ];
    if let Some(watermark) = &meta.watermark {
        columns.push((watermark.clone(), watermark_type, Source::Watermark(meta.watermark_source)));
    }
    columns.push((meta.op.clone(), "text", Source::Op));
    columns.into_iter().map(|(name, ty, source)| DestColumn { name, ty: dialect_type(dialect, ty), kind: value_kind(ty), source }).collect()
}

/// ClickHouse's own columns of a table with a key, or without one.
fn engine_columns(keyless: bool) -> Vec<DestColumn> {
    let column = |name: &str, ty: &str, kind: ValueKind, source: Source| DestColumn { name: name.into(), ty: ty.into(), kind, source };
    let mut columns = vec![column(ENGINE_VERSION, "UInt64", ValueKind::Int, Source::Version)];
    columns.push(match keyless {
        true => column(ENGINE_OFFSET, "Int64", ValueKind::Int, Source::Offset),
        false => column(ENGINE_DELETED, "UInt8", ValueKind::Bool, Source::Tombstone),
    });
    columns
}

/// One row of the meta table: a source row's latest change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaRow {
    pub source: TableName,
    pub key_json: String,
    pub op: Op,
    pub lsn: u64,
    pub synced_at: String,
    pub deleted: bool,
}

/// Milliseconds since the epoch as ISO 8601 in UTC, with microseconds.
pub fn iso_utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_else(|| "1970-01-01T00:00:00.000000Z".to_owned())
}
