//! The table a topic becomes: one row per record, partitioned by the day of its timestamp.
//!
//! | id | column | type |
//! |---|---|---|
//! | 1 | partition | int |
//! | 2 | offset | long |
//! | 3 | timestamp | timestamptz |
//! | 4 | key | binary, optional |
//! | 5 | value | binary, optional |
//! | 6 | headers | list (element 7) of struct: key string (8), value binary (9, optional) |
//!
//! The Parquet files carry the same ids (`PARQUET:field_id`), so readers map columns by id.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, ListBuilder, StringBuilder, StructBuilder};
use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::{Result, SinkError, SinkRecord};

pub const TABLE_SCHEMA: &str = r#"{"type":"struct","schema-id":0,"identifier-field-ids":[],"fields":[{"id":1,"name":"partition","required":true,"type":"int"},{"id":2,"name":"offset","required":true,"type":"long"},{"id":3,"name":"timestamp","required":true,"type":"timestamptz"},{"id":4,"name":"key","required":false,"type":"binary"},{"id":5,"name":"value","required":false,"type":"binary"},{"id":6,"name":"headers","required":false,"type":{"type":"list","element-id":7,"element-required":true,"element":{"type":"struct","fields":[{"id":8,"name":"key","required":true,"type":"string"},{"id":9,"name":"value","required":false,"type":"binary"}]}}}]}"#;

pub const PARTITION_SPEC: &str = r#"[{"source-id":3,"field-id":1000,"transform":"day","name":"timestamp_day"}]"#;

fn with_id(field: Field, id: u32) -> Field {
    field.with_metadata(HashMap::from([("PARQUET:field_id".to_string(), id.to_string())]))
}

fn header_fields() -> Fields {
    Fields::from(vec![with_id(Field::new("key", DataType::Utf8, false), 8), with_id(Field::new("value", DataType::Binary, true), 9)])
}

fn arrow_schema() -> Schema {
    let element = with_id(Field::new("element", DataType::Struct(header_fields()), false), 7);
    Schema::new(vec![
        with_id(Field::new("partition", DataType::Int32, false), 1),
        with_id(Field::new("offset", DataType::Int64, false), 2),
        with_id(Field::new("timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())), false), 3),
        with_id(Field::new("key", DataType::Binary, true), 4),
        with_id(Field::new("value", DataType::Binary, true), 5),
        with_id(Field::new("headers", DataType::List(Arc::new(element)), true), 6),
    ])
}

/// The days since the epoch of a timestamp in ms, as Iceberg's `day` transform gives them.
pub fn day_of(timestamp_ms: i64) -> i32 {
    timestamp_ms.div_euclid(86_400_000) as i32
}

/// `records` as one Parquet file of the table's columns (zstd).
pub fn parquet_file(records: &[&SinkRecord]) -> Result<Bytes> {
    let failed = |e: &dyn std::fmt::Display| SinkError::Encode(format!("iceberg data file: {e}"));
    let schema = Arc::new(arrow_schema());
    let mut keys = BinaryBuilder::new();
    let mut values = BinaryBuilder::new();
    let element = Field::new("element", DataType::Struct(header_fields()), false);
    let struct_builder = StructBuilder::from_fields(header_fields(), 0);
    let mut headers = ListBuilder::new(struct_builder).with_field(Arc::new(with_id(element, 7)));
    for r in records {
        keys.append_option(r.key.as_deref());
        values.append_option(r.value.as_deref());
        let entries = headers.values();
        for (k, v) in &r.headers {
            entries.field_builder::<StringBuilder>(0).ok_or_else(|| failed(&"header key builder"))?.append_value(k);
            entries.field_builder::<BinaryBuilder>(1).ok_or_else(|| failed(&"header value builder"))?.append_option(v.as_deref());
            entries.append(true);
        }
        headers.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(records.iter().map(|r| r.partition))),
        Arc::new(Int64Array::from_iter_values(records.iter().map(|r| r.offset))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(records.iter().map(|r| r.timestamp.saturating_mul(1000))).with_timezone("+00:00")),
        Arc::new(keys.finish()),
        Arc::new(values.finish()),
        Arc::new(headers.finish()),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| failed(&e))?;
    let properties = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(properties)).map_err(|e| failed(&e))?;
    writer.write(&batch).map_err(|e| failed(&e))?;
    Ok(Bytes::from(writer.into_inner().map_err(|e| failed(&e))?))
}

#[cfg(test)]
mod tests {
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    #[test]
    fn writes_ids_and_days() -> Result<(), Box<dyn std::error::Error>> {
        serde_json::from_str::<serde_json::Value>(TABLE_SCHEMA)?;
        serde_json::from_str::<serde_json::Value>(PARTITION_SPEC)?;
        assert_eq!((day_of(0), day_of(86_399_999), day_of(86_400_000), day_of(-1)), (0, 0, 1, -1));
        let records: Vec<SinkRecord> = (0..3)
            .map(|i| SinkRecord {
                topic: "t".into(),
                partition: 2,
                offset: i,
                timestamp: 1_700_000_000_000 + i,
                key: (i > 0).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("v{i}"))),
                headers: vec![("h".into(), Some(Bytes::from_static(b"x"))), ("n".into(), None)],
            })
            .collect();
        let file = parquet_file(&records.iter().collect::<Vec<_>>())?;
        let reader = SerializedFileReader::new(file)?;
        assert_eq!(reader.metadata().file_metadata().num_rows(), 3);
        let ids: Vec<i32> = reader.metadata().file_metadata().schema_descr().columns().iter().map(|c| c.self_type().get_basic_info().id()).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5, 8, 9]);
        Ok(())
    }
}
