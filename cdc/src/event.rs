//! The change-event model: what happened to which row, in which transaction.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lsn::Lsn;

/// What kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "c")]
    Insert,
    #[serde(rename = "u")]
    Update,
    #[serde(rename = "d")]
    Delete,
    #[serde(rename = "t")]
    Truncate,
    /// A row read by the initial snapshot.
    #[serde(rename = "r")]
    Read,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Insert => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Truncate => "t",
            Op::Read => "r",
        }
    }
}

/// One column's value in a row image.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValue {
    Value(Value),
    /// A TOASTed value that did not change and that the source did not send: the consumer
    /// keeps what it had. Not the same as null.
    UnchangedToast,
}

/// A row image: columns in table order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row(pub Vec<(String, ColumnValue)>);

impl Row {
    pub fn get(&self, column: &str) -> Option<&ColumnValue> {
        self.0.iter().find(|(name, _)| name == column).map(|(_, v)| v)
    }

    /// Names of the columns whose value is an unchanged TOAST value.
    pub fn unchanged_toast(&self) -> Vec<String> {
        self.0.iter().filter(|(_, v)| *v == ColumnValue::UnchangedToast).map(|(n, _)| n.clone()).collect()
    }

    /// The row as a JSON object, leaving out unchanged TOAST columns.
    pub fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        for (name, value) in &self.0 {
            if let ColumnValue::Value(v) = value {
                map.insert(name.clone(), v.clone());
            }
        }
        Value::Object(map)
    }
}

/// A change to one row (or, for truncate, to one table).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub op: Op,
    pub schema: String,
    pub table: String,
    /// Primary key columns and values; `None` for truncate and for tables without a key.
    pub key: Option<Row>,
    /// The old row: whole with REPLICA IDENTITY FULL, the old key otherwise (updates that
    /// change the key, deletes); `None` when the source did not send it.
    pub before: Option<Row>,
    /// The new row (insert, update, snapshot read).
    pub after: Option<Row>,
    /// Commit LSN of the transaction (for snapshot reads: the LSN the snapshot is consistent at).
    pub lsn: Lsn,
    /// Commit time, microseconds since the Unix epoch (snapshot reads: when the read ran).
    pub commit_ts_micros: i64,
    /// Transaction id; `None` for snapshot reads.
    pub xid: Option<u32>,
}

/// A DDL statement captured by the event trigger (see [`crate::ddl`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DdlEvent {
    pub lsn: Lsn,
    pub xid: Option<u32>,
    pub commit_ts_micros: i64,
    /// `ddl_command_end` or `sql_drop`.
    pub event: String,
    /// The command tag, e.g. `ALTER TABLE`.
    pub tag: String,
    /// The statement text as the client sent it (`current_query()`).
    pub query: String,
    /// Objects touched: `object_type`, `schema`, `identity` (and `command_tag`).
    pub objects: Value,
}

// Serialized as a JSON object in column order; unchanged TOAST columns are left out (they are
// listed separately, see `crate::encode`).
impl Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in &self.0 {
            if let ColumnValue::Value(v) = value {
                map.serialize_entry(name, v)?;
            }
        }
        map.end()
    }
}
