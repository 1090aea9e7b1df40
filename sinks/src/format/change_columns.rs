//! CDC change events as typed columns. A batch whose records are all JSON change events (the
//! `ductstream.format: json` header, an object value with `op` and a row image) is written as
//! metadata columns `_op`, `_lsn`, `_commit_ts` (ms, UTC), `_xid`, `_key` (the primary key as
//! JSON), `_topic`, `_partition`, `_offset`, then the table's columns: from `after`, or from
//! `before` for deletes. Each table column's type comes from its values in the batch: whole
//! numbers are int64, other numbers float64, booleans bool, strings utf8, objects and arrays
//! their JSON text (as are columns whose values disagree). A column a row lacks (an unchanged
//! TOAST value, a column added later) is null.

use std::sync::Arc;

use arrow_array::builder::{Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{Field, Schema};
use serde_json::{Map, Value};

use crate::{Result, SinkError, SinkRecord};

const FORMAT_HEADER: &str = "ductstream.format";

/// One change event, parsed.
pub struct Change {
    op: String,
    lsn: String,
    commit_ms: Option<i64>,
    xid: Option<i64>,
    key: Option<String>,
    row: Map<String, Value>,
}

/// The records' change events, if every record is one.
pub fn changes(records: &[SinkRecord]) -> Option<Vec<Change>> {
    records.iter().map(change).collect()
}

fn change(record: &SinkRecord) -> Option<Change> {
    if record.header(FORMAT_HEADER).map(|f| f.as_ref()) != Some(b"json".as_slice()) {
        return None;
    }
    let Value::Object(mut event) = serde_json::from_slice(record.value.as_deref()?).ok()? else { return None };
    let op = event.get("op")?.as_str()?.to_owned();
    let image = if op == "d" { event.remove("before") } else { event.remove("after") };
    let row = match image {
        Some(Value::Object(row)) => row,
        _ => Map::new(),
    };
    Some(Change {
        lsn: event.get("lsn").and_then(Value::as_str).unwrap_or_default().to_owned(),
        commit_ms: event.get("ts_ms").and_then(Value::as_i64),
        xid: event.get("xid").and_then(Value::as_i64),
        key: event.get("key").filter(|k| !k.is_null()).map(Value::to_string),
        op,
        row,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unknown,
    Int,
    Float,
    Bool,
    Text,
    Json,
}

fn kind_of(value: &Value) -> Kind {
    match value {
        Value::Null => Kind::Unknown,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_i64() => Kind::Int,
        Value::Number(_) => Kind::Float,
        Value::String(_) => Kind::Text,
        Value::Array(_) | Value::Object(_) => Kind::Json,
    }
}

fn merge(a: Kind, b: Kind) -> Kind {
    match (a, b) {
        (Kind::Unknown, k) | (k, Kind::Unknown) => k,
        (a, b) if a == b => a,
        (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Kind::Float,
        _ => Kind::Json,
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The records as one batch of typed columns; `changes` are their parsed events.
pub fn batch(records: &[SinkRecord], changes: &[Change]) -> Result<RecordBatch> {
    let mut names: Vec<String> = Vec::new();
    let mut kinds: Vec<Kind> = Vec::new();
    for c in changes {
        for (name, value) in &c.row {
            match names.iter().position(|n| n == name) {
                Some(i) => kinds[i] = merge(kinds[i], kind_of(value)),
                None => {
                    names.push(name.clone());
                    kinds.push(kind_of(value));
                }
            }
        }
    }
    let n = records.len();
    let mut op = StringBuilder::new();
    let mut lsn = StringBuilder::new();
    let mut commit = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut xid = Int64Builder::with_capacity(n);
    let mut key = StringBuilder::new();
    let mut topic = StringBuilder::new();
    let mut partition = Int32Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    for (r, c) in records.iter().zip(changes) {
        op.append_value(&c.op);
        lsn.append_value(&c.lsn);
        commit.append_option(c.commit_ms);
        xid.append_option(c.xid);
        key.append_option(c.key.as_deref());
        topic.append_value(&r.topic);
        partition.append_value(r.partition);
        offset.append_value(r.offset);
    }
    let mut columns: Vec<(String, ArrayRef, bool)> = vec![
        ("_op".into(), Arc::new(op.finish()), false),
        ("_lsn".into(), Arc::new(lsn.finish()), false),
        ("_commit_ts".into(), Arc::new(commit.finish()), true),
        ("_xid".into(), Arc::new(xid.finish()), true),
        ("_key".into(), Arc::new(key.finish()), true),
        ("_topic".into(), Arc::new(topic.finish()), false),
        ("_partition".into(), Arc::new(partition.finish()), false),
        ("_offset".into(), Arc::new(offset.finish()), false),
    ];
    for (name, kind) in names.iter().zip(&kinds) {
        let values = changes.iter().map(|c| c.row.get(name).filter(|v| !v.is_null()));
        let array: ArrayRef = match kind {
            Kind::Int => Arc::new(values.map(|v| v.and_then(Value::as_i64)).collect::<Int64Array>()),
            Kind::Float => Arc::new(values.map(|v| v.and_then(Value::as_f64)).collect::<Float64Array>()),
            Kind::Bool => Arc::new(values.map(|v| v.and_then(Value::as_bool)).collect::<BooleanArray>()),
            Kind::Text | Kind::Json | Kind::Unknown => {
                let mut b = StringBuilder::new();
                for v in values {
                    b.append_option(v.map(text_of));
                }
                Arc::new(b.finish())
            }
        };
        columns.push((name.clone(), array, true));
    }
    let schema = Arc::new(Schema::new(
        columns.iter().map(|(name, array, nullable)| Field::new(name, array.data_type().clone(), *nullable)).collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(schema, columns.into_iter().map(|(_, a, _)| a).collect()).map_err(|e| SinkError::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use arrow_array::Array;
    use bytes::Bytes;

    use super::*;

    fn event(offset: i64, value: &str) -> SinkRecord {
        SinkRecord {
            topic: "app.public.users".into(),
            partition: 0,
            offset,
            timestamp: 0,
            key: None,
            value: Some(Bytes::from(value.to_owned())),
            headers: vec![(FORMAT_HEADER.into(), Some(Bytes::from_static(b"json")))],
        }
    }

    #[test]
    fn rows_become_typed_columns() -> Result<()> {
        let records = vec![
            event(0, r#"{"op":"c","key":{"id":1},"after":{"id":1,"name":"ada","score":1.5,"ok":true},"lsn":"0/1","xid":7,"ts_ms":1000}"#),
            event(1, r#"{"op":"u","key":{"id":1},"after":{"id":1,"name":"bo","score":2,"ok":false,"tags":["x"]},"lsn":"0/2","xid":8,"ts_ms":2000}"#),
            event(2, r#"{"op":"d","key":{"id":1},"before":{"id":1},"after":null,"lsn":"0/3","xid":9,"ts_ms":3000}"#),
        ];
        let changes = changes(&records).ok_or_else(|| SinkError::Encode("not changes".into()))?;
        let b = batch(&records, &changes)?;
        let schema = b.schema();
        let types: Vec<String> = schema.fields().iter().map(|f| format!("{}:{}", f.name(), f.data_type())).collect();
        assert!(types.contains(&"id:Int64".to_string()), "{types:?}");
        assert!(types.contains(&"score:Float64".to_string()), "{types:?}");
        assert!(types.contains(&"ok:Boolean".to_string()), "{types:?}");
        assert!(types.contains(&"name:Utf8".to_string()), "{types:?}");
        assert!(types.contains(&"tags:Utf8".to_string()), "{types:?}");
        assert_eq!(b.num_rows(), 3);
        let name = b.column_by_name("name").ok_or_else(|| SinkError::Encode("no name".into()))?;
        assert!(name.is_null(2), "a delete's before image has only the key");
        // A record that is not a change event keeps the batch in the generic columns.
        let mut mixed = records.clone();
        mixed.push(SinkRecord { headers: vec![], ..event(3, "{}") });
        assert!(super::changes(&mixed).is_none());
        Ok(())
    }
}
