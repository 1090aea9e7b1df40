//! Iceberg's manifests (format version 2): a manifest lists data files, a manifest list lists
//! a snapshot's manifests. Schemas as the Iceberg spec gives them, field ids included; optional
//! statistics are written as null.

use bytes::Bytes;

use super::avro::{read_file, write_file, Decoder, Encoder};
use super::schema::{TableSchema, PARTITION_SPEC};
use crate::Result;

/// One Parquet file added to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    pub path: String,
    /// Days since the epoch of its records' timestamps (the partition value).
    pub day: i32,
    pub record_count: i64,
    pub size: i64,
}

/// One manifest of a snapshot, as the manifest list records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    pub path: String,
    pub length: i64,
    pub sequence_number: i64,
    pub min_sequence_number: i64,
    pub added_snapshot_id: i64,
    pub added_files: i32,
    pub added_rows: i64,
}

const STAT_MAP: &str = r#"["null", {"type": "array", "items": {"type": "record", "name": "kK_vV", "fields": [{"name": "key", "type": "int", "field-id": K}, {"name": "value", "type": "T", "field-id": V}]}, "logicalType": "map"}]"#;

fn stat_map(id: u32, key: u32, value: u32, kind: &str) -> String {
    let ty = STAT_MAP.replace("kK_vV", &format!("k{key}_v{value}")).replace("\"field-id\": K", &format!("\"field-id\": {key}"));
    let ty = ty.replace("\"field-id\": V", &format!("\"field-id\": {value}")).replace("\"T\"", &format!("\"{kind}\""));
    format!(r#"{{"name": "{}", "field-id": {id}, "type": {ty}, "default": null}}"#, stat_name(id))
}

fn stat_name(id: u32) -> &'static str {
    match id {
        108 => "column_sizes",
        109 => "value_counts",
        110 => "null_value_counts",
        137 => "nan_value_counts",
        125 => "lower_bounds",
        _ => "upper_bounds",
    }
}

/// The manifest entry schema, with this table's partition tuple (one day field).
fn entry_schema() -> String {
    let stats = [stat_map(108, 117, 118, "long"), stat_map(109, 119, 120, "long"), stat_map(110, 121, 122, "long"),
        stat_map(137, 138, 139, "long"), stat_map(125, 126, 127, "bytes"), stat_map(128, 129, 130, "bytes")]
    .join(", ");
    format!(
        r#"{{"type": "record", "name": "manifest_entry", "fields": [
{{"name": "status", "field-id": 0, "type": "int"}},
{{"name": "snapshot_id", "field-id": 1, "type": ["null", "long"], "default": null}},
{{"name": "sequence_number", "field-id": 3, "type": ["null", "long"], "default": null}},
{{"name": "file_sequence_number", "field-id": 4, "type": ["null", "long"], "default": null}},
{{"name": "data_file", "field-id": 2, "type": {{"type": "record", "name": "r2", "fields": [
  {{"name": "content", "field-id": 134, "type": "int"}},
  {{"name": "file_path", "field-id": 100, "type": "string"}},
  {{"name": "file_format", "field-id": 101, "type": "string"}},
  {{"name": "partition", "field-id": 102, "type": {{"type": "record", "name": "r102", "fields": [
    {{"name": "timestamp_day", "field-id": 1000, "type": {{"type": "int", "logicalType": "date"}}}}]}}}},
  {{"name": "record_count", "field-id": 103, "type": "long"}},
  {{"name": "file_size_in_bytes", "field-id": 104, "type": "long"}},
  {stats},
  {{"name": "key_metadata", "field-id": 131, "type": ["null", "bytes"], "default": null}},
  {{"name": "split_offsets", "field-id": 132, "type": ["null", {{"type": "array", "element-id": 133, "items": "long"}}], "default": null}},
  {{"name": "equality_ids", "field-id": 135, "type": ["null", {{"type": "array", "element-id": 136, "items": "int"}}], "default": null}},
  {{"name": "sort_order_id", "field-id": 140, "type": ["null", "int"], "default": null}}]}}}}]}}"#
    )
}

const LIST_SCHEMA: &str = r#"{"type": "record", "name": "manifest_file", "fields": [
{"name": "manifest_path", "field-id": 500, "type": "string"},
{"name": "manifest_length", "field-id": 501, "type": "long"},
{"name": "partition_spec_id", "field-id": 502, "type": "int"},
{"name": "content", "field-id": 517, "type": "int"},
{"name": "sequence_number", "field-id": 515, "type": "long"},
{"name": "min_sequence_number", "field-id": 516, "type": "long"},
{"name": "added_snapshot_id", "field-id": 503, "type": "long"},
{"name": "added_files_count", "field-id": 504, "type": "int"},
{"name": "existing_files_count", "field-id": 505, "type": "int"},
{"name": "deleted_files_count", "field-id": 506, "type": "int"},
{"name": "added_rows_count", "field-id": 512, "type": "long"},
{"name": "existing_rows_count", "field-id": 513, "type": "long"},
{"name": "deleted_rows_count", "field-id": 514, "type": "long"},
{"name": "partitions", "field-id": 507, "type": ["null", {"type": "array", "element-id": 508, "items": {"type": "record", "name": "r508", "fields": [
  {"name": "contains_null", "field-id": 509, "type": "boolean"},
  {"name": "contains_nan", "field-id": 518, "type": ["null", "boolean"], "default": null},
  {"name": "lower_bound", "field-id": 510, "type": ["null", "bytes"], "default": null},
  {"name": "upper_bound", "field-id": 511, "type": ["null", "bytes"], "default": null}]}}], "default": null},
{"name": "key_metadata", "field-id": 519, "type": ["null", "bytes"], "default": null}]}"#;

/// A manifest adding `files`, written with `schema`, in snapshot `snapshot_id` (their sequence
/// numbers inherited from the snapshot, as for any newly added file).
pub fn write_manifest(snapshot_id: i64, files: &[DataFile], schema: &TableSchema) -> Bytes {
    let records: Vec<Bytes> = files
        .iter()
        .map(|f| {
            let mut e = Encoder::default();
            e.int(1).some().long(snapshot_id).null().null();
            e.int(0).string(&f.path).string("PARQUET").int(f.day).long(f.record_count).long(f.size);
            for _ in 0..6 {
                e.null(); // the column statistics
            }
            e.null().null().null().null(); // key metadata, split offsets, equality ids, sort order
            e.finish()
        })
        .collect();
    let metadata = [
        ("schema", schema.to_json().to_string()),
        ("schema-id", schema.id.to_string()),
        ("partition-spec", PARTITION_SPEC.to_string()),
        ("partition-spec-id", "0".into()),
        ("format-version", "2".into()),
        ("content", "data".into()),
    ];
    write_file(&entry_schema(), &metadata, &records)
}

/// A manifest list of `manifests`.
pub fn write_manifest_list(snapshot_id: i64, parent: Option<i64>, sequence_number: i64, manifests: &[ManifestFile]) -> Bytes {
    let records: Vec<Bytes> = manifests
        .iter()
        .map(|m| {
            let mut e = Encoder::default();
            e.string(&m.path).long(m.length).int(0).int(0).long(m.sequence_number).long(m.min_sequence_number);
            e.long(m.added_snapshot_id).int(m.added_files).int(0).int(0).long(m.added_rows).long(0).long(0);
            e.null().null();
            e.finish()
        })
        .collect();
    let mut metadata = vec![
        ("snapshot-id", snapshot_id.to_string()),
        ("sequence-number", sequence_number.to_string()),
        ("format-version", "2".into()),
    ];
    if let Some(parent) = parent {
        metadata.push(("parent-snapshot-id", parent.to_string()));
    }
    write_file(LIST_SCHEMA, &metadata, &records)
}

/// The manifests of a manifest list this module wrote.
pub fn read_manifest_list(file: Bytes) -> Result<Vec<ManifestFile>> {
    let (_, mut d) = read_file(file)?;
    let mut out = Vec::new();
    while !d.is_empty() {
        let path = d.string()?;
        let length = d.long()?;
        let (_spec, _content) = (d.int()?, d.int()?);
        let (sequence_number, min_sequence_number, added_snapshot_id) = (d.long()?, d.long()?, d.long()?);
        let added_files = d.int()?;
        let (_existing, _deleted) = (d.int()?, d.int()?);
        let added_rows = d.long()?;
        let (_existing_rows, _deleted_rows) = (d.long()?, d.long()?);
        skip_partitions(&mut d)?;
        if d.some()? {
            d.bytes()?;
        }
        out.push(ManifestFile { path, length, sequence_number, min_sequence_number, added_snapshot_id, added_files, added_rows });
    }
    Ok(out)
}

fn skip_partitions(d: &mut Decoder) -> Result<()> {
    if !d.some()? {
        return Ok(());
    }
    loop {
        let count = d.long()?;
        if count == 0 {
            return Ok(());
        }
        if count < 0 {
            d.long()?;
        }
        for _ in 0..count.unsigned_abs() {
            d.boolean()?;
            for _ in 0..3 {
                if d.some()? {
                    // contains_nan is a boolean, the bounds are bytes
                    return Err(crate::SinkError::Fatal("a manifest list with partition summaries: another writer changed the table".into()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_json_and_lists_round_trip() -> Result<(), Box<dyn std::error::Error>> {
        serde_json::from_str::<serde_json::Value>(&entry_schema())?;
        serde_json::from_str::<serde_json::Value>(LIST_SCHEMA)?;
        let manifests = vec![
            ManifestFile { path: "s3://b/t/metadata/a-m0.avro".into(), length: 10, sequence_number: 1, min_sequence_number: 1, added_snapshot_id: 7, added_files: 2, added_rows: 30 },
            ManifestFile { path: "s3://b/t/metadata/b-m0.avro".into(), length: 11, sequence_number: 2, min_sequence_number: 2, added_snapshot_id: 8, added_files: 1, added_rows: 5 },
        ];
        let list = write_manifest_list(8, Some(7), 2, &manifests);
        assert_eq!(read_manifest_list(list)?, manifests);
        let manifest = write_manifest(8, &[DataFile { path: "s3://b/t/data/x.parquet".into(), day: 20_000, record_count: 5, size: 100 }], &TableSchema::records_only());
        assert!(manifest.len() > 100);
        Ok(())
    }
}
