//! Change record values in `avro` or `proto` read back as JSON, for people to look at (the web
//! console's message browser): the event's fields as the `json` format names them, each
//! column's JSON text parsed in place. `None` when the bytes are not such a value.

use prost::Message;
use serde_json::{Map, Value};

/// `value` decoded as the wire format `format` (the record's `ductstream.format` header).
pub fn decoded(format: &str, value: &[u8]) -> Option<Value> {
    match format {
        "avro" => from_avro(value),
        "proto" => from_proto(value),
        _ => None,
    }
}

fn event(fields: [(&str, Value); 10]) -> Value {
    Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// A column's JSON text as its value; text that is not JSON stays text.
fn column(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or_else(|_| Value::String(json.to_owned()))
}

fn from_proto(value: &[u8]) -> Option<Value> {
    let e = ductstream_proto::v1::ChangeEvent::decode(value).ok()?;
    let columns = |columns: &[ductstream_proto::v1::Column]| -> Value {
        Value::Object(columns.iter().map(|c| (c.name.clone(), column(&c.json))).collect())
    };
    Some(event([
        ("op", e.op.into()),
        ("schema", e.schema.into()),
        ("table", e.table.into()),
        ("key", if e.key.is_empty() { Value::Null } else { columns(&e.key) }),
        ("before", e.before.as_ref().map_or(Value::Null, |r| columns(&r.columns))),
        ("after", e.after.as_ref().map_or(Value::Null, |r| columns(&r.columns))),
        ("unchanged_toast", e.unchanged_toast.into()),
        ("lsn", e.lsn.into()),
        ("xid", e.xid.map_or(Value::Null, Value::from)),
        ("commit_ts_micros", e.commit_ts_micros.into()),
    ]))
}

fn from_avro(value: &[u8]) -> Option<Value> {
    let mut r = AvroReader(value);
    let (op, schema, table) = (r.string()?, r.string()?, r.string()?);
    let key = r.columns()?;
    let before = r.optional_columns()?;
    let after = r.optional_columns()?;
    let mut toast = Vec::new();
    r.blocks(|r| {
        toast.push(Value::String(r.string()?));
        Some(())
    })?;
    let lsn = r.string()?;
    let xid = match r.long()? {
        0 => Value::Null,
        1 => r.long()?.into(),
        _ => return None,
    };
    let commit_ts_micros = r.long()?;
    if !r.0.is_empty() {
        return None;
    }
    Some(event([
        ("op", op.into()),
        ("schema", schema.into()),
        ("table", table.into()),
        ("key", if key.is_empty() { Value::Null } else { Value::Object(key) }),
        ("before", before.map_or(Value::Null, Value::Object)),
        ("after", after.map_or(Value::Null, Value::Object)),
        ("unchanged_toast", Value::Array(toast)),
        ("lsn", lsn.into()),
        ("xid", xid),
        ("commit_ts_micros", commit_ts_micros.into()),
    ]))
}

/// Avro's binary encoding, as far as the change event's schema needs it.
struct AvroReader<'a>(&'a [u8]);

impl AvroReader<'_> {
    /// A zig-zag varint.
    fn long(&mut self) -> Option<i64> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.0.split_first()?;
            self.0 = rest;
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some((n >> 1) as i64 ^ -((n & 1) as i64));
            }
        }
        None
    }

    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.long()?).ok()?;
        if len > self.0.len() {
            return None;
        }
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8(text.to_vec()).ok()
    }

    /// An array: blocks of items, a negative count followed by the block's size in bytes,
    /// until a zero count.
    fn blocks(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        loop {
            let count = match self.long()? {
                0 => return Some(()),
                n if n < 0 => {
                    self.long()?;
                    n.checked_neg()?
                }
                n => n,
            };
            for _ in 0..count {
                item(self)?;
            }
        }
    }

    /// An array of Column records (name, JSON text) as an object.
    fn columns(&mut self) -> Option<Map<String, Value>> {
        let mut columns = Map::new();
        self.blocks(|r| {
            let (name, json) = (r.string()?, r.string()?);
            columns.insert(name, column(&json));
            Some(())
        })?;
        Some(columns)
    }

    /// The union of null and an array of Column records.
    fn optional_columns(&mut self) -> Option<Option<Map<String, Value>>> {
        match self.long()? {
            0 => Some(None),
            1 => self.columns().map(Some),
            _ => None,
        }
    }
}
