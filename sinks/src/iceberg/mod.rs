//! Topics as Iceberg tables: records appended as Parquet files, partitioned by day, one
//! snapshot per append, through an Iceberg REST catalog, so that SQL engines (DuckDB, Spark,
//! Trino) query a topic's history.
//!
//! Appends are exactly once without any state of DuctStream's own: each snapshot's summary
//! records, per partition, the offset the table holds records up to
//! (`ductstream.next-offset.<partition>`), and a commit only lands on the snapshot it was made
//! from. A retry after a failure rewrites the same file names and finds the position where it
//! was. DuctStream must be the table's only writer (its manifest lists are read back).
//!
//! A CDC topic's table also has typed columns: the change's metadata and the source row (see
//! `changes`), added to the schema as the source table grows.
//!
//! Snapshots also name the topic by id (`ductstream.topic-id`): a topic deleted and created
//! again under the same name starts its table anew (the old one is dropped), since its offsets
//! start over.

mod avro;
mod catalog;
mod changes;
mod data_file;
mod manifest;
mod schema;
mod values;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, RetryConfig};
use serde_json::json;
use tokio::sync::Mutex;

pub use catalog::CatalogConfig;
use catalog::{Catalog, TableMetadata};
use manifest::{read_manifest_list, write_manifest, write_manifest_list, DataFile, ManifestFile};
use changes::{change_of, row, wanted_columns, Row};
use data_file::parquet_file;
pub use schema::day_of;

use crate::table::shape::SourceShape;
use crate::{Result, SinkError, SinkRecord};

const POSITION: &str = "ductstream.next-offset.";
const TOPIC_ID: &str = "ductstream.topic-id";

/// How to reach the buckets the catalog puts tables in.
#[derive(Debug, Clone, Default)]
pub struct S3Access {
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// A catalog's namespace, whose tables are topics.
pub struct Lake {
    catalog: Catalog,
    s3: S3Access,
    buckets: Mutex<BTreeMap<String, Arc<dyn ObjectStore>>>,
}

/// The table a topic becomes: lower case letters, digits and `_` (what S3 Tables allow).
pub fn table_name(topic: &str) -> String {
    topic.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

impl Lake {
    pub fn new(catalog: CatalogConfig, s3: S3Access) -> Result<Lake> {
        Ok(Lake { catalog: Catalog::new(catalog)?, s3, buckets: Mutex::new(BTreeMap::new()) })
    }

    /// The topic's table, made anew if it holds an earlier topic of the same name.
    async fn table(&self, topic: &str, topic_id: &str) -> Result<TableMetadata> {
        let name = table_name(topic);
        let table = self.catalog.load_or_create(&name).await?;
        match table.summary.get(TOPIC_ID) {
            Some(id) if id != topic_id => {
                tracing::info!(table = %name, old_topic_id = %id, "dropping the Iceberg table of a deleted topic of the same name");
                self.catalog.drop_table(&name).await?;
                self.catalog.load_or_create(&name).await
            }
            _ => Ok(table),
        }
    }

    /// The offset the topic's table holds `partition`'s records up to, if it holds any.
    pub async fn position(&self, topic: &str, topic_id: &str, partition: i32) -> Result<Option<i64>> {
        Ok(position(&self.table(topic, topic_id).await?, partition))
    }

    /// Appends `records` (the partition's records below `next_offset` not in the table yet)
    /// as one snapshot. Nothing happens if the table already holds up to `next_offset`.
    ///
    /// `source` is given for a CDC topic: the source table's shape, whose columns the table
    /// gets as typed columns (with those the changes show and the shape lacks).
    pub async fn append(&self, topic: &str, topic_id: &str, partition: i32, records: &[SinkRecord], next_offset: i64, source: Option<&SourceShape>) -> Result<()> {
        let name = table_name(topic);
        let table = self.table(topic, topic_id).await?;
        let from = position(&table, partition);
        if from.is_some_and(|p| p >= next_offset) {
            return Ok(());
        }
        let records: Vec<&SinkRecord> = records.iter().filter(|r| from.is_none_or(|p| r.offset >= p) && r.offset < next_offset).collect();
        let first = records.first().map_or(next_offset, |r| r.offset);

        let typed = source.is_some() || !table.schema.columns.is_empty();
        let changes: Vec<Option<_>> = records.iter().map(|r| if typed { change_of(r) } else { None }).collect();
        let new_schema = source.and_then(|shape| {
            let mut shape = shape.clone();
            for change in changes.iter().flatten() {
                for image in [&change.after, &change.before, &change.key].into_iter().flatten() {
                    shape.learn(image);
                }
            }
            table.schema.with_columns(&wanted_columns(&shape), table.last_schema_id + 1)
        });
        let schema = new_schema.as_ref().unwrap_or(&table.schema);
        let rows: Vec<Option<Row>> = changes.iter().map(|c| c.as_ref().map(row)).collect();

        let mut by_day: BTreeMap<i32, (Vec<&SinkRecord>, Vec<Option<&Row>>)> = BTreeMap::new();
        for (r, row) in records.iter().zip(&rows) {
            let (day_records, day_rows) = by_day.entry(day_of(r.timestamp)).or_default();
            day_records.push(r);
            day_rows.push(row.as_ref());
        }
        let mut files = Vec::new();
        for (day, (day_records, day_rows)) in &by_day {
            let path = format!("{}/data/timestamp_day={}/{partition}-{first:020}-{next_offset:020}.parquet", table.location, date(*day));
            let bytes = parquet_file(schema, day_records, day_rows)?;
            let size = bytes.len() as i64;
            self.put(&path, bytes).await?;
            files.push(DataFile { path, day: *day, record_count: day_records.len() as i64, size });
        }

        let snapshot_id = snapshot_id(&name, partition, next_offset);
        let sequence_number = table.last_sequence_number + 1;
        let mut manifests = match &table.manifest_list {
            Some(list) => read_manifest_list(self.get(list).await?)?,
            None => Vec::new(),
        };
        if !files.is_empty() {
            let path = format!("{}/metadata/ductstream-{snapshot_id}-m0.avro", table.location);
            let bytes = write_manifest(snapshot_id, &files, schema);
            let length = bytes.len() as i64;
            self.put(&path, bytes).await?;
            manifests.push(ManifestFile {
                path,
                length,
                sequence_number,
                min_sequence_number: sequence_number,
                added_snapshot_id: snapshot_id,
                added_files: files.len() as i32,
                added_rows: records.len() as i64,
            });
        }
        let list = format!("{}/metadata/snap-{snapshot_id}-ductstream.avro", table.location);
        self.put(&list, write_manifest_list(snapshot_id, table.current_snapshot_id, sequence_number, &manifests)).await?;

        let mut summary: BTreeMap<String, String> = table.summary.iter().filter(|(k, _)| k.starts_with(POSITION)).map(|(k, v)| (k.clone(), v.clone())).collect();
        summary.insert(format!("{POSITION}{partition}"), next_offset.to_string());
        summary.insert(TOPIC_ID.into(), topic_id.into());
        summary.insert("operation".into(), "append".into());
        summary.insert("added-data-files".into(), files.len().to_string());
        summary.insert("added-records".into(), records.len().to_string());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let mut snapshot = json!({
            "snapshot-id": snapshot_id,
            "sequence-number": sequence_number,
            "timestamp-ms": now,
            "manifest-list": list,
            "summary": summary,
            "schema-id": schema.id,
        });
        if let Some(parent) = table.current_snapshot_id {
            snapshot["parent-snapshot-id"] = json!(parent);
        }
        self.catalog.commit(&name, table.current_snapshot_id, snapshot, table.schema.id, new_schema.as_ref()).await?;
        Ok(())
    }

    /// The store of an `s3://bucket/...` location, and the key in it.
    async fn locate(&self, location: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
        let rest = location.strip_prefix("s3://").or_else(|| location.strip_prefix("s3a://"));
        let Some((bucket, key)) = rest.and_then(|r| r.split_once('/')) else {
            return Err(SinkError::Fatal(format!("iceberg table location {location:?} is not in S3")));
        };
        let mut buckets = self.buckets.lock().await;
        if let Some(store) = buckets.get(bucket) {
            return Ok((store.clone(), Path::from(key)));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket).with_region(&self.s3.region);
        if let Some(endpoint) = &self.s3.endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://")).with_virtual_hosted_style_request(false);
        }
        if let Some(key) = &self.s3.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &self.s3.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let retry = RetryConfig { max_retries: 2, retry_timeout: std::time::Duration::from_secs(10), ..RetryConfig::default() };
        let store: Arc<dyn ObjectStore> = Arc::new(builder.with_retry(retry).build().map_err(|e| SinkError::Config(format!("iceberg bucket {bucket}: {e}")))?);
        buckets.insert(bucket.to_owned(), store.clone());
        Ok((store, Path::from(key)))
    }

    async fn put(&self, location: &str, bytes: bytes::Bytes) -> Result<()> {
        let (store, path) = self.locate(location).await?;
        store.put(&path, PutPayload::from_bytes(bytes)).await.map_err(|e| SinkError::Retriable(format!("{location}: {e}")))?;
        Ok(())
    }

    async fn get(&self, location: &str) -> Result<bytes::Bytes> {
        let (store, path) = self.locate(location).await?;
        let got = store.get(&path).await.map_err(|e| SinkError::Retriable(format!("{location}: {e}")))?;
        got.bytes().await.map_err(|e| SinkError::Retriable(format!("{location}: {e}")))
    }
}

fn position(table: &TableMetadata, partition: i32) -> Option<i64> {
    table.summary.get(&format!("{POSITION}{partition}")).and_then(|v| v.parse().ok())
}

/// A snapshot id no other append picks: from what the snapshot holds and when it is made.
fn snapshot_id(table: &str, partition: i32, next_offset: i64) -> i64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (table, partition, next_offset, std::time::SystemTime::now()).hash(&mut h);
    (h.finish() >> 1) as i64
}

/// `YYYY-MM-DD` of days since the epoch (the civil calendar, proleptic Gregorian).
fn date(days: i32) -> String {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        assert_eq!(table_name("Orders.v1-EU"), "orders_v1_eu");
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(day_of(1_796_472_000_000)), "2026-12-05");
        assert_eq!(date(-1), "1969-12-31");
        assert_eq!(date(11_016), "2000-02-29");
    }
}
