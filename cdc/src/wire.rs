//! The wire formats of change record values: `json` (the default, see [`crate::encode`]),
//! `avro` and `proto`. The record header `ductstream.format` names the one used.
//!
//! `avro` and `proto` carry the same event as `json`, with each column's value as its JSON
//! text, so every type keeps the `json` mapping (numeric as a string, int8 exact...):
//! - `avro`: Avro binary encoding with [`AVRO_SCHEMA`] (no container, no registry prefix). The
//!   flow writes the schema to `<prefix>._schemas` when it starts, keyed by its name.
//! - `proto`: the `ductstream.v1.ChangeEvent` message of `proto/ductstream/v1/change.proto`,
//!   which the broker's gRPC reflection also serves.

use prost::Message;
use serde::{Deserialize, Serialize};

use crate::event::{ChangeEvent, ColumnValue, Row};

/// How change record values are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireFormat {
    #[default]
    Json,
    Avro,
    Proto,
}

impl WireFormat {
    pub fn name(self) -> &'static str {
        match self {
            WireFormat::Json => "json",
            WireFormat::Avro => "avro",
            WireFormat::Proto => "proto",
        }
    }
}

/// The full name of the Avro schema, the key of its record on `<prefix>._schemas`.
pub const AVRO_SCHEMA_NAME: &str = "ductstream.v1.ChangeEvent";

/// The Avro schema of change record values.
pub const AVRO_SCHEMA: &str = r#"{"type":"record","name":"ChangeEvent","namespace":"ductstream.v1","fields":[
{"name":"op","type":"string"},
{"name":"schema","type":"string"},
{"name":"table","type":"string"},
{"name":"key","type":{"type":"array","items":{"type":"record","name":"Column","fields":[{"name":"name","type":"string"},{"name":"json","type":"string"}]}}},
{"name":"before","type":["null",{"type":"array","items":"Column"}]},
{"name":"after","type":["null",{"type":"array","items":"Column"}]},
{"name":"unchanged_toast","type":{"type":"array","items":"string"}},
{"name":"lsn","type":"string"},
{"name":"xid","type":["null","long"]},
{"name":"commit_ts_micros","type":{"type":"long","logicalType":"timestamp-micros"}}]}"#;

/// The columns of a row that have a value (unchanged TOAST values are listed apart).
fn columns(row: &Row) -> Vec<(&str, String)> {
    row.0
        .iter()
        .filter_map(|(name, value)| match value {
            ColumnValue::Value(v) => Some((name.as_str(), v.to_string())),
            ColumnValue::UnchangedToast => None,
        })
        .collect()
}

/// The event as an Avro binary datum of [`AVRO_SCHEMA`].
pub fn avro(event: &ChangeEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    avro_string(&mut out, event.op.code());
    avro_string(&mut out, &event.schema);
    avro_string(&mut out, &event.table);
    avro_columns(&mut out, &event.key.as_ref().map(columns).unwrap_or_default());
    for row in [&event.before, &event.after] {
        match row {
            None => avro_long(&mut out, 0),
            Some(row) => {
                avro_long(&mut out, 1);
                avro_columns(&mut out, &columns(row));
            }
        }
    }
    let toast = event.after.as_ref().map(Row::unchanged_toast).unwrap_or_default();
    if !toast.is_empty() {
        avro_long(&mut out, toast.len() as i64);
        for name in &toast {
            avro_string(&mut out, name);
        }
    }
    avro_long(&mut out, 0);
    avro_string(&mut out, &event.lsn.to_string());
    match event.xid {
        None => avro_long(&mut out, 0),
        Some(xid) => {
            avro_long(&mut out, 1);
            avro_long(&mut out, i64::from(xid));
        }
    }
    avro_long(&mut out, event.commit_ts_micros);
    out
}

fn avro_long(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn avro_string(out: &mut Vec<u8>, text: &str) {
    avro_long(out, text.len() as i64);
    out.extend_from_slice(text.as_bytes());
}

/// An array of Column records: one block, then the end marker.
fn avro_columns(out: &mut Vec<u8>, columns: &[(&str, String)]) {
    if !columns.is_empty() {
        avro_long(out, columns.len() as i64);
        for (name, json) in columns {
            avro_string(out, name);
            avro_string(out, json);
        }
    }
    avro_long(out, 0);
}

/// The event as a `ductstream.v1.ChangeEvent` protobuf message.
pub fn proto(event: &ChangeEvent) -> Vec<u8> {
    use ductstream_proto::v1 as pb;
    let pb_columns = |row: &Row| -> Vec<pb::Column> {
        columns(row).into_iter().map(|(name, json)| pb::Column { name: name.to_owned(), json }).collect()
    };
    let message = pb::ChangeEvent {
        op: event.op.code().to_owned(),
        schema: event.schema.clone(),
        table: event.table.clone(),
        key: event.key.as_ref().map(pb_columns).unwrap_or_default(),
        before: event.before.as_ref().map(|r| pb::Row { columns: pb_columns(r) }),
        after: event.after.as_ref().map(|r| pb::Row { columns: pb_columns(r) }),
        unchanged_toast: event.after.as_ref().map(Row::unchanged_toast).unwrap_or_default(),
        lsn: event.lsn.to_string(),
        xid: event.xid,
        commit_ts_micros: event.commit_ts_micros,
    };
    message.encode_to_vec()
}
