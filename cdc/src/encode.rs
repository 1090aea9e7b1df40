//! Change records, their JSON wire format (the default; `avro` and `proto` are in
//! [`crate::wire`]) and topic names. DDL records and empty-transaction markers are JSON in
//! every format.
//!
//! A change record's value:
//! `{"op":"u","schema":"public","table":"t","key":{"id":1},"before":null,"after":{...},
//!   "unchanged_toast":["big"],"lsn":"0/16B3748","xid":750,"commit_ts":"2024-...Z","ts_ms":1700000000000}`
//! Its key is the primary key as a JSON object (`{"id":1}`); truncates and tables without a
//! key have no record key. Headers: `ductstream.lsn` ("X/Y"), `ductstream.xid`,
//! `ductstream.format` ("json"), `ductstream.op`.
//!
//! Unchanged TOAST values are left out of `after` and named in `unchanged_toast`, so they are
//! never mistaken for null. Number choices: int2/int4/int8 are JSON numbers (serde_json writes
//! i64 exactly; JavaScript consumers need a big-int-aware parser for values beyond 2^53),
//! numeric is a JSON string (no precision is lost), float NaN/Infinity are strings.

use bytes::Bytes;
use serde::Serialize;

use crate::event::{ChangeEvent, DdlEvent, Row};
use crate::time::format_unix_micros;
use crate::wire::{self, WireFormat};
use crate::writer::OutRecord;

pub const HEADER_LSN: &str = "ductstream.lsn";
pub const HEADER_XID: &str = "ductstream.xid";
pub const HEADER_FORMAT: &str = "ductstream.format";
pub const HEADER_OP: &str = "ductstream.op";

/// `<prefix>.<schema>.<table>`.
pub fn table_topic(prefix: &str, schema: &str, table: &str) -> String {
    format!("{prefix}.{schema}.{table}")
}

/// `<prefix>._ddl`: captured DDL statements.
pub fn ddl_topic(prefix: &str) -> String {
    format!("{prefix}._ddl")
}

/// `<prefix>._transactions`: markers for transactions without row changes (`emit_empty`).
pub fn transactions_topic(prefix: &str) -> String {
    format!("{prefix}._transactions")
}

#[derive(Serialize)]
struct ChangeValue<'a> {
    op: &'static str,
    schema: &'a str,
    table: &'a str,
    key: Option<&'a Row>,
    before: Option<&'a Row>,
    after: Option<&'a Row>,
    unchanged_toast: Vec<String>,
    lsn: &'a str,
    xid: Option<u32>,
    commit_ts: String,
    ts_ms: i64,
}

/// The record for a change event, its value in `format`. The key is the primary key as JSON
/// in every format.
pub fn encode_change(event: &ChangeEvent, format: WireFormat) -> OutRecord {
    let lsn = event.lsn.to_string();
    let value = match format {
        WireFormat::Json => json_change(event, &lsn),
        WireFormat::Avro => Bytes::from(wire::avro(event)),
        WireFormat::Proto => Bytes::from(wire::proto(event)),
    };
    OutRecord {
        key: event.key.as_ref().map(to_bytes),
        value: Some(value),
        headers: headers(&lsn, event.xid, event.op.code(), format),
        timestamp: event.commit_ts_micros.div_euclid(1000),
    }
}

thread_local! {
    /// The last commit time formatted: a transaction's changes share it.
    static LAST_COMMIT_TS: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
}

/// `format_unix_micros`, formatted once per commit time rather than once per change.
fn commit_ts_text(micros: i64) -> String {
    LAST_COMMIT_TS.with_borrow_mut(|(last, text)| {
        if *last != micros {
            *last = micros;
            *text = format_unix_micros(micros);
        }
        text.clone()
    })
}

/// `<prefix>._schemas`: the Avro schema of change values, keyed by its name.
pub fn schemas_topic(prefix: &str) -> String {
    format!("{prefix}._schemas")
}

/// The record that publishes [`wire::AVRO_SCHEMA`].
pub fn avro_schema_record(now_ms: i64) -> OutRecord {
    OutRecord {
        key: Some(Bytes::from_static(wire::AVRO_SCHEMA_NAME.as_bytes())),
        value: Some(Bytes::from_static(wire::AVRO_SCHEMA.as_bytes())),
        headers: vec![(HEADER_FORMAT, Bytes::from_static(b"avro-schema"))],
        timestamp: now_ms,
    }
}

fn json_change(event: &ChangeEvent, lsn: &str) -> Bytes {
    let value = ChangeValue {
        op: event.op.code(),
        schema: &event.schema,
        table: &event.table,
        key: event.key.as_ref(),
        before: event.before.as_ref(),
        after: event.after.as_ref(),
        unchanged_toast: event.after.as_ref().map(Row::unchanged_toast).unwrap_or_default(),
        lsn,
        xid: event.xid,
        commit_ts: commit_ts_text(event.commit_ts_micros),
        ts_ms: event.commit_ts_micros.div_euclid(1000),
    };
    // Sized up front: growing the buffer while a wide row is written costs more than the
    // estimate.
    let mut out = Vec::with_capacity(estimated_len(event));
    // Serializing maps with string keys and JSON values cannot fail.
    let _ = serde_json::to_writer(&mut out, &value);
    Bytes::from(out)
}

/// About the length of the event's JSON: its row images' names and values, and the fields.
fn estimated_len(event: &ChangeEvent) -> usize {
    let row_len = |row: &Option<Row>| -> usize {
        row.as_ref().map_or(4, |r| {
            r.0.iter()
                .map(|(name, value)| {
                    name.len()
                        + 4
                        + match value {
                            crate::event::ColumnValue::Value(serde_json::Value::String(s)) => s.len() + 2,
                            _ => 24,
                        }
                })
                .sum()
        })
    };
    256 + event.schema.len() + event.table.len() + row_len(&event.key) + row_len(&event.before) + row_len(&event.after)
}

#[derive(Serialize)]
struct DdlValue<'a> {
    op: &'static str,
    event: &'a str,
    tag: &'a str,
    query: &'a str,
    objects: &'a serde_json::Value,
    lsn: String,
    xid: Option<u32>,
    commit_ts: String,
    ts_ms: i64,
}

/// The record for a DDL event (op `ddl`), keyed by nothing: order is the topic's order.
pub fn encode_ddl(event: &DdlEvent) -> OutRecord {
    let value = DdlValue {
        op: "ddl",
        event: &event.event,
        tag: &event.tag,
        query: &event.query,
        objects: &event.objects,
        lsn: event.lsn.to_string(),
        xid: event.xid,
        commit_ts: format_unix_micros(event.commit_ts_micros),
        ts_ms: event.commit_ts_micros.div_euclid(1000),
    };
    OutRecord {
        key: None,
        value: Some(to_bytes(&value)),
        headers: headers(&event.lsn.to_string(), event.xid, "ddl", WireFormat::Json),
        timestamp: event.commit_ts_micros.div_euclid(1000),
    }
}

/// The record for a transaction without row changes (`emit_empty`).
pub fn encode_empty_transaction(lsn: crate::Lsn, xid: u32, commit_ts_micros: i64) -> OutRecord {
    let value = serde_json::json!({
        "op": "empty",
        "lsn": lsn.to_string(),
        "xid": xid,
        "commit_ts": format_unix_micros(commit_ts_micros),
        "ts_ms": commit_ts_micros.div_euclid(1000),
    });
    OutRecord {
        key: None,
        value: Some(to_bytes(&value)),
        headers: headers(&lsn.to_string(), Some(xid), "empty", WireFormat::Json),
        timestamp: commit_ts_micros.div_euclid(1000),
    }
}

fn headers(lsn: &str, xid: Option<u32>, op: &'static str, format: WireFormat) -> Vec<(&'static str, Bytes)> {
    let mut headers = Vec::with_capacity(4);
    headers.push((HEADER_LSN, Bytes::from(lsn.to_string())));
    if let Some(xid) = xid {
        headers.push((HEADER_XID, Bytes::from(xid.to_string())));
    }
    headers.push((HEADER_FORMAT, Bytes::from_static(format.name().as_bytes())));
    headers.push((HEADER_OP, Bytes::from_static(op.as_bytes())));
    headers
}

fn to_bytes<T: Serialize>(value: &T) -> Bytes {
    // Serializing maps with string keys and JSON values cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}
