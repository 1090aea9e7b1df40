//! CDC change events as table destinations read them: the JSON records a flow writes to its
//! table topics (see `ductstream_cdc::encode`), parsed once per record.

use serde_json::{Map, Value};

use crate::SinkRecord;

const FORMAT_HEADER: &str = "ductstream.format";

/// What happened to the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
    Truncate,
    /// A row the snapshot read: an upsert.
    Read,
}

impl Op {
    /// The op as change events name it (`c`, `u`, `d`, `t`, `r`).
    pub fn code(self) -> &'static str {
        match self {
            Op::Insert => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Truncate => "t",
            Op::Read => "r",
        }
    }

    fn parse(code: &str) -> Option<Op> {
        Some(match code {
            "c" => Op::Insert,
            "u" => Op::Update,
            "d" => Op::Delete,
            "t" => Op::Truncate,
            "r" => Op::Read,
            _ => return None,
        })
    }
}

/// One change to one row (or, for a truncate, to a table).
#[derive(Debug, Clone, PartialEq)]
pub struct TableChange {
    pub op: Op,
    pub schema: String,
    pub table: String,
    /// The primary key, columns in key order; `None` for truncates and keyless tables.
    pub key: Option<Map<String, Value>>,
    /// The old row or old key (deletes, updates that change the key).
    pub before: Option<Map<String, Value>>,
    /// The new row, without its unchanged TOAST columns.
    pub after: Option<Map<String, Value>>,
    /// Columns whose value did not change and was not sent: the destination keeps its own.
    pub unchanged_toast: Vec<String>,
    /// The commit LSN as a number (for snapshot reads, the snapshot's LSN).
    pub lsn: u64,
    /// Commit time, milliseconds since the epoch.
    pub commit_ms: i64,
    /// The source transaction's id (none for snapshot reads).
    pub xid: Option<i64>,
    /// The record's offset in its partition.
    pub offset: i64,
}

/// What a record is, to a table destination.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Change(TableChange),
    /// A record a table does not hold (a DDL record, an empty-transaction marker): skipped.
    Skip,
    /// A record that is not a JSON change event: refused with this reason.
    Refuse(String),
}

/// Parses one record.
pub fn parse(record: &SinkRecord) -> Parsed {
    let format = record.header(FORMAT_HEADER).map(|f| String::from_utf8_lossy(f).into_owned());
    match format.as_deref() {
        Some("json") => {}
        Some(other) => {
            return Parsed::Refuse(format!(
                "table destinations read JSON change events; this record is {other:?} (set the flow's topic format to json)"
            ));
        }
        None => return Parsed::Refuse("not a change event (no ductstream.format header)".into()),
    }
    let Some(value) = record.value.as_deref() else { return Parsed::Refuse("a change event without a value".into()) };
    let Ok(Value::Object(mut event)) = serde_json::from_slice::<Value>(value) else {
        return Parsed::Refuse("the value is not a JSON object".into());
    };
    let code = event.get("op").and_then(Value::as_str).unwrap_or_default().to_owned();
    let Some(op) = Op::parse(&code) else {
        return match code.as_str() {
            "ddl" | "empty" => Parsed::Skip,
            other => Parsed::Refuse(format!("unknown change op {other:?}")),
        };
    };
    let text = |event: &Map<String, Value>, name: &str| event.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (schema, table) = (text(&event, "schema"), text(&event, "table"));
    if table.is_empty() {
        return Parsed::Refuse("a change event without a table".into());
    }
    let Some(lsn) = parse_lsn(&text(&event, "lsn")) else { return Parsed::Refuse("a change event without a valid lsn".into()) };
    let mut object = |name: &str| match event.remove(name) {
        Some(Value::Object(map)) => Some(map),
        _ => None,
    };
    let (key, before, after) = (object("key"), object("before"), object("after"));
    let unchanged_toast = match event.get("unchanged_toast") {
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    if matches!(op, Op::Insert | Op::Update | Op::Read) && after.is_none() {
        return Parsed::Refuse(format!("a {code:?} change without an after image"));
    }
    Parsed::Change(TableChange {
        op,
        schema,
        table,
        key,
        before,
        after,
        unchanged_toast,
        lsn,
        commit_ms: event.get("ts_ms").and_then(Value::as_i64).unwrap_or(record.timestamp),
        xid: event.get("xid").and_then(Value::as_i64),
        offset: record.offset,
    })
}

/// `X/Y` (hex halves) as one number.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

impl TableChange {
    /// The key of the row before the change: the old key of an update that changed it, else
    /// the key.
    pub fn old_key(&self) -> Option<Map<String, Value>> {
        let key = self.key.as_ref()?;
        let before = self.before.as_ref()?;
        let old: Map<String, Value> = key.keys().map(|k| (k.clone(), before.get(k).cloned().unwrap_or(Value::Null))).collect();
        (old != *key && old.values().any(|v| !v.is_null())).then_some(old)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn record(value: &str) -> SinkRecord {
        SinkRecord {
            topic: "app.public.t".into(),
            partition: 0,
            offset: 7,
            timestamp: 1,
            key: None,
            value: Some(Bytes::from(value.to_owned())),
            headers: vec![("ductstream.format".into(), Some(Bytes::from_static(b"json")))],
        }
    }

    #[test]
    fn parses_an_update_that_changes_the_key() {
        let r = record(
            r#"{"op":"u","schema":"public","table":"t","key":{"id":2},"before":{"id":1},"after":{"id":2,"v":"x"},"unchanged_toast":["big"],"lsn":"1/10","ts_ms":5}"#,
        );
        let Parsed::Change(c) = parse(&r) else { panic!("not a change") };
        assert_eq!((c.op, c.lsn, c.commit_ms, c.offset), (Op::Update, (1 << 32) | 16, 5, 7));
        assert_eq!(c.unchanged_toast, vec!["big".to_string()]);
        assert_eq!(c.old_key().map(Value::Object), Some(serde_json::json!({"id": 1})));
    }

    #[test]
    fn skips_ddl_and_refuses_other_formats() {
        assert_eq!(parse(&record(r#"{"op":"ddl","lsn":"0/1"}"#)), Parsed::Skip);
        let mut avro = record("x");
        avro.headers = vec![("ductstream.format".into(), Some(Bytes::from_static(b"avro")))];
        assert!(matches!(parse(&avro), Parsed::Refuse(reason) if reason.contains("avro")));
        assert!(matches!(parse(&record(r#"{"op":"c","schema":"s","table":"t","lsn":"0/1"}"#)), Parsed::Refuse(_)));
    }
}
