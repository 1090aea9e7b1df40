//! A table's data file: records as one Parquet file (zstd) of the schema's columns.

use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, ListBuilder, StringBuilder, StructBuilder};
use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::Value;

use super::changes::Row;
use super::schema::{header_element, header_fields, TableSchema};
use super::values::array;
use crate::{Result, SinkError, SinkRecord};

/// `records` as one Parquet file of `schema`; `rows` holds each record's typed values by
/// column name (none for a record without, or for a table without typed columns).
pub fn parquet_file(schema: &TableSchema, records: &[&SinkRecord], rows: &[Option<&Row>]) -> Result<Bytes> {
    let failed = |e: &dyn std::fmt::Display| SinkError::Encode(format!("iceberg data file: {e}"));
    let arrow_schema = Arc::new(schema.arrow_schema());
    let mut keys = BinaryBuilder::new();
    let mut values = BinaryBuilder::new();
    let mut headers = ListBuilder::new(StructBuilder::from_fields(header_fields(), 0)).with_field(Arc::new(header_element()));
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
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(records.iter().map(|r| r.partition))),
        Arc::new(Int64Array::from_iter_values(records.iter().map(|r| r.offset))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(records.iter().map(|r| r.timestamp.saturating_mul(1000))).with_timezone("+00:00")),
        Arc::new(keys.finish()),
        Arc::new(values.finish()),
        Arc::new(headers.finish()),
    ];
    for column in &schema.columns {
        let cells: Vec<Option<&Value>> = (0..records.len())
            .map(|i| rows.get(i).copied().flatten().and_then(|row| row.get(&column.name)).filter(|v| !v.is_null()))
            .collect();
        columns.push(array(&column.ty, &cells).map_err(|e| failed(&format!("column {}: {e}", column.name)))?);
    }
    let batch = RecordBatch::try_new(arrow_schema.clone(), columns).map_err(|e| failed(&e))?;
    let properties = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
    let mut writer = ArrowWriter::try_new(Vec::new(), arrow_schema, Some(properties)).map_err(|e| failed(&e))?;
    writer.write(&batch).map_err(|e| failed(&e))?;
    Ok(Bytes::from(writer.into_inner().map_err(|e| failed(&e))?))
}

#[cfg(test)]
mod tests {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use serde_json::json;

    use super::super::schema::ColumnType;
    use super::*;

    #[test]
    fn writes_ids_and_typed_columns() -> Result<(), Box<dyn std::error::Error>> {
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
        let refs: Vec<&SinkRecord> = records.iter().collect();
        let file = parquet_file(&TableSchema::records_only(), &refs, &[])?;
        let reader = SerializedFileReader::new(file)?;
        assert_eq!(reader.metadata().file_metadata().num_rows(), 3);
        let ids: Vec<i32> = reader.metadata().file_metadata().schema_descr().columns().iter().map(|c| c.self_type().get_basic_info().id()).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5, 8, 9]);

        let wanted = [("id".to_string(), ColumnType::Int), ("tags".to_string(), ColumnType::List { element_id: 0, element: Box::new(ColumnType::String) })];
        let typed = TableSchema::records_only().with_columns(&wanted, 1).ok_or("no columns")?;
        let row = json!({"id": 7, "tags": ["a", null]});
        let rows = [row.as_object(), None, row.as_object()];
        let reader = SerializedFileReader::new(parquet_file(&typed, &refs, &rows)?)?;
        let ids: Vec<i32> = reader.metadata().file_metadata().schema_descr().columns().iter().map(|c| c.self_type().get_basic_info().id()).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5, 8, 9, 10, 12]);
        Ok(())
    }
}
