//! Avro object container files: one record per Kafka record, with the schema [`SCHEMA`] in the
//! file's header, so any Avro reader needs nothing else.

use apache_avro::types::Value;
use apache_avro::{Codec, DeflateSettings, Schema, Writer};
use bytes::Bytes;

use super::AvroCompression;
use crate::{Result, SinkError, SinkRecord};

/// The schema of every file: the record's coordinates, key, value and headers.
pub const SCHEMA: &str = r#"{"type": "record", "name": "SinkRecord", "namespace": "ductstream.v1", "fields": [
  {"name": "topic", "type": "string"},
  {"name": "partition", "type": "int"},
  {"name": "offset", "type": "long"},
  {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "key", "type": ["null", "bytes"]},
  {"name": "value", "type": ["null", "bytes"]},
  {"name": "headers", "type": {"type": "array", "items": {"type": "record", "name": "Header", "fields": [
    {"name": "key", "type": "string"}, {"name": "value", "type": ["null", "bytes"]}]}}}]}"#;

fn optional(bytes: Option<&Bytes>) -> Value {
    match bytes {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(b) => Value::Union(1, Box::new(Value::Bytes(b.to_vec()))),
    }
}

pub fn encode(records: &[SinkRecord], compression: AvroCompression) -> Result<Bytes> {
    let failed = |e: apache_avro::Error| SinkError::Encode(e.to_string());
    let schema = Schema::parse_str(SCHEMA).map_err(failed)?;
    let codec = match compression {
        AvroCompression::None => Codec::Null,
        AvroCompression::Deflate => Codec::Deflate(DeflateSettings::default()),
        AvroCompression::Snappy => Codec::Snappy,
    };
    let mut writer = Writer::with_codec(&schema, Vec::new(), codec);
    for r in records {
        let headers = r
            .headers
            .iter()
            .map(|(k, v)| Value::Record(vec![("key".into(), Value::String(k.clone())), ("value".into(), optional(v.as_ref()))]))
            .collect();
        let value = Value::Record(vec![
            ("topic".into(), Value::String(r.topic.clone())),
            ("partition".into(), Value::Int(r.partition)),
            ("offset".into(), Value::Long(r.offset)),
            ("timestamp".into(), Value::TimestampMillis(r.timestamp)),
            ("key".into(), optional(r.key.as_ref())),
            ("value".into(), optional(r.value.as_ref())),
            ("headers".into(), Value::Array(headers)),
        ]);
        writer.append(value).map_err(failed)?;
    }
    Ok(Bytes::from(writer.into_inner().map_err(failed)?))
}

#[cfg(test)]
mod tests {
    use apache_avro::Reader;

    use super::*;

    #[test]
    fn writes_a_readable_file() -> Result<(), Box<dyn std::error::Error>> {
        let records: Vec<SinkRecord> = (0..4)
            .map(|i| SinkRecord {
                topic: "t".into(),
                partition: 2,
                offset: i,
                timestamp: 1_700_000_000_000,
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: vec![("h".into(), None)],
            })
            .collect();
        let file = encode(&records, AvroCompression::Snappy)?;
        let read: Vec<_> = Reader::new(&file[..])?.collect::<Result<_, _>>()?;
        assert_eq!(read.len(), 4);
        Ok(())
    }
}
