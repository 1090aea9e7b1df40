use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, Int32Builder, Int64Builder, MapBuilder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::ParquetCompression;
use crate::{Result, SinkError, SinkRecord};

/// The records as one Parquet file with columns topic, partition, offset, timestamp (ms, UTC),
/// key, value (binary) and headers (a map of name to binary value).
pub fn encode(records: &[SinkRecord], compression: ParquetCompression) -> Result<Bytes> {
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
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a, _)| a).collect())
        .map_err(|e| SinkError::Encode(e.to_string()))?;
    let codec = match compression {
        ParquetCompression::None => Compression::UNCOMPRESSED,
        ParquetCompression::Snappy => Compression::SNAPPY,
        ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::default()),
    };
    let properties = WriterProperties::builder().set_compression(codec).build();
    let failed = |e: parquet::errors::ParquetError| SinkError::Encode(e.to_string());
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(properties)).map_err(failed)?;
    writer.write(&batch).map_err(failed)?;
    Ok(Bytes::from(writer.into_inner().map_err(failed)?))
}

#[cfg(test)]
mod tests {
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    #[test]
    fn writes_a_readable_file() -> Result<(), Box<dyn std::error::Error>> {
        let records: Vec<SinkRecord> = (0..10)
            .map(|i| SinkRecord {
                topic: "t".into(),
                partition: 0,
                offset: i,
                timestamp: 1_700_000_000_000 + i,
                key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("v{i}"))),
                headers: vec![("h".into(), Some(Bytes::from_static(b"x")))],
            })
            .collect();
        let file = encode(&records, ParquetCompression::Snappy)?;
        let reader = SerializedFileReader::new(file)?;
        assert_eq!(reader.metadata().file_metadata().num_rows(), 10);
        Ok(())
    }
}
