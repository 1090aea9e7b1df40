//! Moving a partition's old data to the remote tier: [`TieredStorage::upload_next`] copies the
//! next sealed stretch of the engine's log into one object, and
//! [`TieredStorage::trim_local`] then lets the engine drop what is both uploaded and past local
//! retention. The broker calls both, for the partitions it leads.

use super::manifest::RemoteSegment;
use super::segment_object::{encode, object_name};
use super::TieredStorage;
use crate::{Batch, Result, StorageError, Topic};

/// Most bytes of batches in one object: an upload holds its object in memory.
const OBJECT_BYTES: u64 = 64 << 20;

/// How much of its log a partition keeps in the engine once uploaded (Kafka's
/// `local.retention.ms` and `local.retention.bytes`, resolved).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalRetention {
    /// Batches whose largest timestamp is older than this (ms since the epoch) may go.
    pub older_than: Option<i64>,
    /// At most this many bytes stay (whole segments, as `retention.bytes` counts).
    pub max_bytes: Option<u64>,
}

impl TieredStorage {
    /// Uploads the next stretch of `partition` that the engine has sealed (a closed segment on
    /// the embedded engine, old whole batches on Postgres) and no object holds yet, and adds it
    /// to the manifest. `None` when there is nothing to upload.
    pub async fn upload_next(&self, topic: &Topic, partition: i32) -> Result<Option<RemoteSegment>> {
        let local = self.inner.offsets(&topic.name, partition).await?;
        let manifest = self.manifest(topic, partition, true).await?;
        let mut start = manifest.as_ref().map_or(local.log_start, |m| m.end());
        if start < local.log_start {
            // Local data went without being uploaded (it predates tiering, or an earlier
            // version trimmed it). With nothing uploaded yet the remote tier starts at the
            // local log start; past a gap the remote tier cannot go on.
            if manifest.as_ref().is_some_and(|m| !m.segments.is_empty()) {
                return Err(StorageError::Remote(format!(
                    "topic {} partition {partition}: the remote tier ends at offset {start} but the local log starts at {}",
                    topic.name, local.log_start
                )));
            }
            start = local.log_start;
        }
        let ranges = self.inner.compactable_ranges(&topic.name, partition).await?;
        let Some(sealed_end) = ranges.iter().map(|r| r.end).find(|end| *end > start) else { return Ok(None) };

        let batches = self.read_local(topic, partition, start, sealed_end).await?;
        let (Some(first), Some(end)) = (batches.first().map(Batch::base_offset), batches.last().map(Batch::next_offset)) else {
            return Ok(None);
        };
        let encoded = encode(&batches);
        drop(batches);
        let object = object_name(&self.remote.prefix, topic, partition, first, end);
        self.remote.put(&object, encoded.object).await?;
        // The first batch may begin below `start`, when the log start cuts through it.
        let segment = RemoteSegment {
            start: first,
            end,
            bytes: encoded.bytes,
            index_bytes: encoded.index_bytes,
            max_timestamp: encoded.max_timestamp,
            max_timestamp_offset: encoded.max_timestamp_offset,
            object,
        };
        let mut added = false;
        let manifest = self
            .update_manifest(topic, partition, start, |m| {
                added = false;
                if m.segments.is_empty() && m.log_start < start {
                    m.log_start = start;
                }
                if m.end() != start {
                    return None;
                }
                m.segments.push(segment.clone());
                added = true;
                Some(())
            })
            .await?;
        if !added {
            // DeleteRecords or retention moved the log start past it meanwhile, or another
            // broker (after a leadership change) uploaded it first.
            tracing::info!(topic = %topic.name, partition, start, remote_end = manifest.end(), "an upload no longer needed was dropped");
            if !manifest.segments.iter().any(|s| s.object == segment.object) {
                self.remote.delete(&segment.object).await?;
            }
            return Ok(None);
        }
        Ok(Some(segment))
    }

    /// The engine's batches from the one holding `start` up to `end` (or fewer, to keep one
    /// object within [`OBJECT_BYTES`]), back to back.
    async fn read_local(&self, topic: &Topic, partition: i32, start: i64, end: i64) -> Result<Vec<Batch>> {
        let mut out: Vec<Batch> = Vec::new();
        let mut bytes = 0u64;
        let mut at = start;
        while at < end && bytes < OBJECT_BYTES {
            let read = self.inner.read(&topic.name, partition, at, 4 << 20).await?;
            if read.is_empty() {
                break;
            }
            for batch in read {
                if batch.base_offset() >= end || bytes >= OBJECT_BYTES {
                    return Ok(out);
                }
                let follows = if out.is_empty() { batch.base_offset() <= at && at <= batch.last_offset() } else { batch.base_offset() == at };
                if !follows {
                    return Err(StorageError::Corrupt(format!(
                        "topic {} partition {partition}: a batch at offset {} where {at} was expected",
                        topic.name,
                        batch.base_offset()
                    )));
                }
                at = batch.next_offset();
                bytes += batch.len() as u64;
                out.push(batch);
            }
        }
        Ok(out)
    }

    /// Lets the engine drop the oldest data that is uploaded and past `retention`; returns the
    /// engine's new log start when it moved. What is not uploaded yet always stays.
    pub async fn trim_local(&self, topic: &Topic, partition: i32, retention: LocalRetention) -> Result<Option<i64>> {
        let Some(manifest) = self.manifest(topic, partition, false).await? else { return Ok(None) };
        if manifest.segments.is_empty() {
            return Ok(None);
        }
        let local = self.inner.offsets(&topic.name, partition).await?;
        let mut cut = local.log_start;
        if let Some(older_than) = retention.older_than {
            cut = cut.max(match self.inner.batch_at_time(&topic.name, partition, older_than).await? {
                Some(batch) => batch.base_offset(),
                None => local.high_watermark,
            });
        }
        if let Some(max_bytes) = retention.max_bytes
            && let Some(size_cut) = self.inner.retention_cut_for_bytes(&topic.name, partition, max_bytes).await?
        {
            cut = cut.max(size_cut);
        }
        let cut = cut.min(manifest.end());
        if cut <= local.log_start {
            return Ok(None);
        }
        self.inner.delete_records(&topic.name, partition, cut).await.map(Some)
    }
}
