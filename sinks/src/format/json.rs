use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::SinkRecord;

/// A record as a JSON object: `topic`, `partition`, `offset`, `timestamp` (ms), `key`, `value`
/// and `headers` (an object of header name to value; a repeated name keeps its last value).
///
/// A key, value or header that is JSON text is embedded as JSON (CDC change events stay
/// objects); other UTF-8 text is a string; anything else is base64 in a `{"base64": "…"}`
/// object; a null stays null.
pub fn record_json(record: &SinkRecord) -> Value {
    let mut headers = Map::new();
    for (name, value) in &record.headers {
        headers.insert(name.clone(), field(value.as_ref()));
    }
    json!({
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": field(record.key.as_ref()),
        "value": field(record.value.as_ref()),
        "headers": headers,
    })
}

fn field(bytes: Option<&Bytes>) -> Value {
    let Some(bytes) = bytes else { return Value::Null };
    if let Ok(text) = std::str::from_utf8(bytes) {
        let looks_structured = text.trim_start().starts_with(['{', '[']);
        if looks_structured && let Ok(v) = serde_json::from_str::<Value>(text) {
            return v;
        }
        return Value::String(text.to_owned());
    }
    json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) })
}

/// Newline-delimited JSON: one [`record_json`] object per line.
pub struct JsonLines;

impl JsonLines {
    pub fn encode(records: &[SinkRecord]) -> Bytes {
        let mut out = Vec::with_capacity(records.len() * 128);
        for r in records {
            // Serialising a Value into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, &record_json(r));
            out.push(b'\n');
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_json_and_binary_fields() {
        let r = SinkRecord {
            topic: "t".into(),
            partition: 1,
            offset: 7,
            timestamp: 1000,
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(br#"{"a":1}"#)),
            headers: vec![("h".into(), Some(Bytes::from_static(&[0xff, 0x00])))],
        };
        let v = record_json(&r);
        assert_eq!(v["key"], "k1");
        assert_eq!(v["value"]["a"], 1);
        assert_eq!(v["headers"]["h"]["base64"], "/wA=");
        assert_eq!(v["offset"], 7);
        let lines = JsonLines::encode(&[r.clone(), r]);
        assert_eq!(lines.iter().filter(|b| **b == b'\n').count(), 2);
    }
}
