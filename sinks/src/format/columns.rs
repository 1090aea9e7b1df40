//! The columns the columnar formats write: topic, partition, offset, timestamp (ms, UTC), key,
//! value (binary) and headers (a map of name to binary value); CDC change events as the
//! table's typed columns instead ([`super::change_columns`]).

use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, Int32Builder, Int64Builder, MapBuilder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};

use crate::{Result, SinkError, SinkRecord};

/// The records as one Arrow record batch.
pub fn batch(records: &[SinkRecord]) -> Result<RecordBatch> {
    if let Some(changes) = super::change_columns::changes(records) {
        return super::change_columns::batch(records, &changes);
    }
    let mut topic = StringBuilder::new();
    let mut partition = Int32Builder::with_capacity(records.len());
    let mut offset = Int64Builder::with_capacity(records.len());
    let mut timestamp = TimestampMillisecondBuilder::with_capacity(records.len()).with_timezone("UTC");
    let mut key = BinaryBuilder::new();
    let mut value = BinaryBuilder::new();
    let mut headers = MapBuilder::new(None, StringBuilder::new(), BinaryBuilder::new());
    for r in records {
        topic.append_value(&r.topic);
        partition.append_value(r.partition);
        offset.append_value(r.offset);
        timestamp.append_value(r.timestamp);
        key.append_option(r.key.as_deref());
        value.append_option(r.value.as_deref());
        for (name, v) in &r.headers {
            headers.keys().append_value(name);
            headers.values().append_option(v.as_deref());
        }
        headers.append(true).map_err(|e| SinkError::Encode(e.to_string()))?;
    }
    let columns: Vec<(&str, ArrayRef, bool)> = vec![
        ("topic", Arc::new(topic.finish()), false),
        ("partition", Arc::new(partition.finish()), false),
        ("offset", Arc::new(offset.finish()), false),
        ("timestamp", Arc::new(timestamp.finish()), false),
        ("key", Arc::new(key.finish()), true),
        ("value", Arc::new(value.finish()), true),
        ("headers", Arc::new(headers.finish()), false),
    ];
    let schema = Arc::new(Schema::new(
        columns.iter().map(|(name, array, nullable)| Field::new(*name, array.data_type().clone(), *nullable)).collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(schema, columns.into_iter().map(|(_, a, _)| a).collect()).map_err(|e| SinkError::Encode(e.to_string()))
}
