//! The remote tier: old parts of a partition's log moved to object storage (S3), read back
//! transparently.
//!
//! [`TieredStorage`] wraps the engine the broker runs on (embedded or Postgres) and is itself a
//! [`Storage`]. The engine keeps the recent log and everything else; the wrapper keeps, per
//! partition, a [`Manifest`] of the objects uploaded (a document in the engine) and answers for
//! offsets below the engine's own log start from them:
//!
//! - `read` asks the engine first, so reading recent data costs nothing more; only an offset
//!   the engine no longer holds goes to the object store;
//! - `offsets` reports the manifest's log start, so clients see one log from the oldest
//!   remote offset to the high watermark;
//! - `delete_records` (DeleteRecords, retention) moves that log start and deletes the objects
//!   wholly below it, then trims the engine if the cut reaches it;
//! - deleting a topic deletes its objects.
//!
//! Uploading and local retention are driven from outside, by the broker, for the partitions it
//! leads and the topics that ask for it ([`TieredStorage::upload_next`],
//! [`TieredStorage::trim_local`]). Compacted topics are not tiered (the broker refuses the
//! config, as Kafka does): compaction rewrites what an object would already hold.

mod chunk_cache;
mod manifest;
mod remote;
mod segment_object;
mod upload;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use object_store::ObjectStore;
use uuid::Uuid;

pub use manifest::{Manifest, RemoteSegment};
pub use upload::LocalRetention;

use self::remote::Remote;
use crate::{
    AppendOutcome, Batch, BrokerInfo, CommittedOffset, DocumentUpdate, GroupState, LogRange, PartitionOffsets, PartitionWrite, ProducerState,
    Result, Storage, StorageError, Topic, TopicSpec,
};

/// How long a manifest read from the store is trusted before it is read again: other brokers
/// on the same Postgres upload and delete too.
const MANIFEST_TTL: Duration = Duration::from_secs(5);

/// Manifests by topic id and partition, each with when it was read (`None`: the partition has
/// none).
type ManifestCache = HashMap<(Uuid, i32), (Option<Manifest>, Instant)>;

/// An engine with a remote tier under it.
pub struct TieredStorage {
    inner: Arc<dyn Storage>,
    remote: Remote,
    manifests: Mutex<ManifestCache>,
    /// When a failed remote read was last logged: consumers retry such reads every few
    /// milliseconds, and one line every [`WARN_EVERY`] says enough.
    last_warning: Mutex<Option<Instant>>,
}

const WARN_EVERY: Duration = Duration::from_secs(5);

impl TieredStorage {
    /// Wraps `inner`, keeping objects in `store` under `prefix`, with `cache_bytes` of
    /// recently read remote data kept in memory.
    pub fn new(inner: Arc<dyn Storage>, store: Arc<dyn ObjectStore>, prefix: &str, cache_bytes: u64) -> TieredStorage {
        TieredStorage {
            inner,
            remote: Remote::new(store, prefix, cache_bytes),
            manifests: Mutex::new(HashMap::new()),
            last_warning: Mutex::new(None),
        }
    }

    /// The wrapped engine.
    pub fn inner(&self) -> &Arc<dyn Storage> {
        &self.inner
    }

    /// Bytes of remote data the read cache holds.
    pub fn cached_bytes(&self) -> u64 {
        self.remote.cached_bytes()
    }

    async fn topic_named(&self, name: &str) -> Result<Topic> {
        self.inner.topic(name).await?.ok_or_else(|| StorageError::UnknownTopic(name.to_owned()))
    }

    /// The partition's manifest: from memory unless older than [`MANIFEST_TTL`] or `fresh`.
    pub async fn manifest(&self, topic: &Topic, partition: i32, fresh: bool) -> Result<Option<Manifest>> {
        let key = (topic.id, partition);
        if !fresh
            && let Some((manifest, loaded)) = self.lock_manifests()?.get(&key)
            && loaded.elapsed() < MANIFEST_TTL
        {
            return Ok(manifest.clone());
        }
        let stored = self.inner.document(manifest::KIND, &manifest::key(topic.id, partition)).await?;
        let manifest = stored.map(|bytes| serde_json::from_slice::<Manifest>(&bytes)).transpose()?;
        self.lock_manifests()?.insert(key, (manifest.clone(), Instant::now()));
        Ok(manifest)
    }

    /// Replaces the manifest with what `change` makes of it (the current one, or an empty one
    /// starting at `empty_start` when there is none); `None` from `change` leaves it as it is.
    async fn update_manifest(
        &self,
        topic: &Topic,
        partition: i32,
        empty_start: i64,
        mut change: impl FnMut(&mut Manifest) -> Option<()> + Send,
    ) -> Result<Manifest> {
        let key = manifest::key(topic.id, partition);
        let stored = self
            .inner
            .update_document(manifest::KIND, &key, &mut |current| {
                let mut m = match current {
                    Some(bytes) => serde_json::from_slice::<Manifest>(bytes)?,
                    None => Manifest { log_start: empty_start, segments: Vec::new() },
                };
                match change(&mut m) {
                    Some(()) => Ok(Some(serde_json::to_vec(&m)?)),
                    None => Ok(current.map(<[u8]>::to_vec)),
                }
            })
            .await?;
        let manifest = match stored {
            Some(bytes) => serde_json::from_slice::<Manifest>(&bytes)?,
            None => Manifest { log_start: empty_start, segments: Vec::new() },
        };
        self.lock_manifests()?.insert((topic.id, partition), (Some(manifest.clone()), Instant::now()));
        Ok(manifest)
    }

    fn lock_manifests(&self) -> Result<std::sync::MutexGuard<'_, ManifestCache>> {
        self.manifests.lock().map_err(|_| StorageError::Engine("remote tier manifest lock poisoned by a panic".into()))
    }

    /// Reads `offset` from the remote tier: the engine no longer holds it.
    async fn read_remote(&self, topic: &Topic, partition: i32, offset: i64, max_bytes: usize, local: PartitionOffsets) -> Result<Vec<Batch>> {
        let out_of_range = |log_start: i64| StorageError::OffsetOutOfRange { requested: offset, log_start, high_watermark: local.high_watermark };
        let mut fresh = false;
        loop {
            let Some(manifest) = self.manifest(topic, partition, fresh).await? else { return Err(out_of_range(local.log_start)) };
            let Some(segment) = manifest.segment_of(offset).cloned() else {
                if fresh {
                    return Err(out_of_range(manifest.log_start.min(local.log_start)));
                }
                fresh = true;
                continue;
            };
            match self.remote.read(&segment, offset, max_bytes).await {
                Ok(batches) => return Ok(batches),
                // Retention or DeleteRecords on another broker may have deleted it: ask again.
                Err(e) if !fresh => {
                    tracing::debug!(error = %e, "remote read failed; reading the manifest again");
                    fresh = true;
                }
                Err(e) => {
                    self.warn(topic, partition, offset, &e);
                    return Err(e);
                }
            }
        }
    }

    /// Logs a failed remote read, at most once every [`WARN_EVERY`].
    fn warn(&self, topic: &Topic, partition: i32, offset: i64, error: &StorageError) {
        let Ok(mut last) = self.last_warning.lock() else { return };
        if last.is_some_and(|at| at.elapsed() < WARN_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        tracing::warn!(topic = %topic.name, partition, offset, error = %error, "a read from the remote tier failed; the client is told to retry");
    }
}

#[async_trait]
impl Storage for TieredStorage {
    fn engine(&self) -> &'static str {
        self.inner.engine()
    }

    async fn create_topic(&self, spec: TopicSpec) -> Result<Topic> {
        self.inner.create_topic(spec).await
    }

    /// Deletes the topic, then its manifests and objects; objects that cannot be deleted now
    /// are logged, and stay under the deleted topic's id where nothing reads them.
    async fn delete_topic(&self, name: &str) -> Result<Topic> {
        let topic = self.inner.delete_topic(name).await?;
        for partition in 0..topic.partitions {
            let key = manifest::key(topic.id, partition);
            if let Err(e) = self.inner.update_document(manifest::KIND, &key, &mut |_| Ok(None)).await {
                tracing::warn!(topic = %topic.name, partition, error = %e, "cannot delete a remote tier manifest");
            }
        }
        if let Ok(mut manifests) = self.manifests.lock() {
            manifests.retain(|(id, _), _| *id != topic.id);
        }
        match self.remote.delete_under(&segment_object::topic_prefix(&self.remote.prefix, &topic)).await {
            Ok(n) if n > 0 => tracing::info!(topic = %topic.name, objects = n, "deleted the topic's remote objects"),
            Ok(_) => {}
            Err(e) => tracing::warn!(topic = %topic.name, error = %e, "cannot delete the topic's remote objects"),
        }
        Ok(topic)
    }

    async fn topics(&self) -> Result<Vec<Topic>> {
        self.inner.topics().await
    }

    async fn topic(&self, name: &str) -> Result<Option<Topic>> {
        self.inner.topic(name).await
    }

    async fn create_partitions(&self, name: &str, partitions: i32) -> Result<Topic> {
        self.inner.create_partitions(name, partitions).await
    }

    async fn set_topic_configs(&self, name: &str, configs: BTreeMap<String, String>) -> Result<Topic> {
        self.inner.set_topic_configs(name, configs).await
    }

    async fn append(&self, topic: &str, partition: i32, batch: Batch, producer: Option<ProducerState>) -> Result<AppendOutcome> {
        self.inner.append(topic, partition, batch, producer).await
    }

    async fn append_many(&self, topic: &str, partition: i32, batches: Vec<(Batch, Option<ProducerState>)>) -> Vec<Result<AppendOutcome>> {
        self.inner.append_many(topic, partition, batches).await
    }

    fn groups_partitions(&self) -> bool {
        self.inner.groups_partitions()
    }

    async fn append_partitions(&self, writes: Vec<PartitionWrite>) -> Vec<Vec<Result<AppendOutcome>>> {
        self.inner.append_partitions(writes).await
    }

    async fn read(&self, topic: &str, partition: i32, offset: i64, max_bytes: usize) -> Result<Vec<Batch>> {
        match self.inner.read(topic, partition, offset, max_bytes).await {
            Err(StorageError::OffsetOutOfRange { log_start, high_watermark, .. }) if offset < log_start => {
                let local = PartitionOffsets { log_start, high_watermark };
                let topic = self.topic_named(topic).await?;
                self.read_remote(&topic, partition, offset, max_bytes, local).await
            }
            other => other,
        }
    }

    async fn offsets(&self, topic: &str, partition: i32) -> Result<PartitionOffsets> {
        let local = self.inner.offsets(topic, partition).await?;
        let topic = self.topic_named(topic).await?;
        Ok(match self.manifest(&topic, partition, false).await? {
            Some(m) => PartitionOffsets { log_start: m.log_start.min(local.log_start), ..local },
            None => local,
        })
    }

    async fn batch_at_time(&self, topic: &str, partition: i32, timestamp: i64) -> Result<Option<Batch>> {
        let t = self.topic_named(topic).await?;
        if let Some(m) = self.manifest(&t, partition, false).await? {
            for segment in m.segments.iter().filter(|s| s.end > m.log_start && s.max_timestamp >= timestamp) {
                if let Some(batch) = self.remote.batch_at_time(segment, timestamp, m.log_start).await? {
                    return Ok(Some(batch));
                }
            }
        }
        self.inner.batch_at_time(topic, partition, timestamp).await
    }

    async fn batch_with_max_timestamp(&self, topic: &str, partition: i32) -> Result<Option<Batch>> {
        let local = self.inner.batch_with_max_timestamp(topic, partition).await?;
        let t = self.topic_named(topic).await?;
        let Some(m) = self.manifest(&t, partition, false).await? else { return Ok(local) };
        // The remote segment with the largest timestamp whose batch is still readable; an
        // earlier batch wins a tie, and remote batches come before local ones.
        let best = m.segments.iter().filter(|s| s.max_timestamp_offset >= m.log_start).fold(None::<&RemoteSegment>, |best, s| match best {
            Some(b) if b.max_timestamp >= s.max_timestamp => Some(b),
            _ => Some(s),
        });
        match best {
            Some(segment) if local.as_ref().is_none_or(|l| segment.max_timestamp >= l.max_timestamp()) => {
                let batches = self.remote.read(segment, segment.max_timestamp_offset, 1).await?;
                Ok(batches.into_iter().next().or(local))
            }
            _ => Ok(local),
        }
    }

    async fn delete_records(&self, topic: &str, partition: i32, offset: i64) -> Result<i64> {
        let t = self.topic_named(topic).await?;
        let local = self.inner.offsets(topic, partition).await?;
        if offset > local.high_watermark {
            return Err(StorageError::OffsetOutOfRange { requested: offset, log_start: local.log_start, high_watermark: local.high_watermark });
        }
        // The manifest moves first, created if need be: an upload running meanwhile then finds
        // its range below the log start and drops it, instead of recording data now deleted.
        let before = self.manifest(&t, partition, true).await?.map_or(local.log_start, |m| m.log_start);
        let mut gone = Vec::new();
        let after = self
            .update_manifest(&t, partition, local.log_start, |m| {
                let raised = offset > m.log_start;
                gone = m.raise_log_start(offset);
                raised.then_some(())
            })
            .await?;
        for segment in gone {
            if let Err(e) = self.remote.delete(&segment.object).await {
                tracing::warn!(object = %segment.object, error = %e, "cannot delete a remote object below the log start; it stays unread");
            }
        }
        if offset > local.log_start {
            self.inner.delete_records(topic, partition, offset).await?;
        }
        Ok(after.log_start.max(before))
    }

    async fn retention_cut_for_bytes(&self, topic: &str, partition: i32, max_bytes: u64) -> Result<Option<i64>> {
        let t = self.topic_named(topic).await?;
        let local_cut = self.inner.retention_cut_for_bytes(topic, partition, max_bytes).await?;
        let Some(m) = self.manifest(&t, partition, false).await? else { return Ok(local_cut) };
        let local = self.inner.offsets(topic, partition).await?;
        let local_bytes = self.inner.partition_size(topic, partition).await?.unwrap_or(0);
        // Remote segments the engine no longer holds count on top of the engine's bytes.
        let remote_only: Vec<&RemoteSegment> = m.segments.iter().filter(|s| s.end <= local.log_start).collect();
        let mut total = local_bytes + remote_only.iter().map(|s| s.bytes).sum::<u64>();
        let mut cut = None;
        for segment in remote_only {
            if total <= max_bytes {
                return Ok(cut);
            }
            total -= segment.bytes;
            cut = Some(segment.end);
        }
        if total <= max_bytes {
            return Ok(cut.filter(|c| *c > m.log_start));
        }
        Ok(local_cut.or(cut).filter(|c| *c > m.log_start))
    }

    async fn partition_size(&self, topic: &str, partition: i32) -> Result<Option<u64>> {
        self.inner.partition_size(topic, partition).await
    }

    async fn compactable_ranges(&self, topic: &str, partition: i32) -> Result<Vec<LogRange>> {
        self.inner.compactable_ranges(topic, partition).await
    }

    async fn replace_range(&self, topic: &str, partition: i32, range: LogRange, batches: Vec<Batch>) -> Result<()> {
        self.inner.replace_range(topic, partition, range, batches).await
    }

    async fn producers(&self, topic: &str, partition: i32) -> Result<Vec<ProducerState>> {
        self.inner.producers(topic, partition).await
    }

    async fn save_group(&self, group: GroupState) -> Result<()> {
        self.inner.save_group(group).await
    }

    async fn load_groups(&self) -> Result<Vec<GroupState>> {
        self.inner.load_groups().await
    }

    async fn delete_group(&self, group_id: &str) -> Result<()> {
        self.inner.delete_group(group_id).await
    }

    async fn commit_offsets(&self, group_id: &str, offsets: Vec<CommittedOffset>) -> Result<()> {
        self.inner.commit_offsets(group_id, offsets).await
    }

    async fn committed_offsets(&self, group_id: &str) -> Result<Vec<CommittedOffset>> {
        self.inner.committed_offsets(group_id).await
    }

    async fn delete_offsets(&self, group_id: &str, partitions: &[(String, i32)]) -> Result<()> {
        self.inner.delete_offsets(group_id, partitions).await
    }

    async fn groups_with_offsets(&self) -> Result<Vec<String>> {
        self.inner.groups_with_offsets().await
    }

    async fn all_committed_offsets(&self) -> Result<Vec<(String, CommittedOffset)>> {
        self.inner.all_committed_offsets().await
    }

    async fn next_producer_id(&self) -> Result<i64> {
        self.inner.next_producer_id().await
    }

    async fn heartbeat_broker(&self, me: &BrokerInfo, lease: Duration) -> Result<Vec<BrokerInfo>> {
        self.inner.heartbeat_broker(me, lease).await
    }

    async fn document(&self, kind: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.document(kind, key).await
    }

    async fn documents(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.inner.documents(kind).await
    }

    async fn update_document(&self, kind: &str, key: &str, update: &mut DocumentUpdate<'_>) -> Result<Option<Vec<u8>>> {
        self.inner.update_document(kind, key, update).await
    }

    async fn sync(&self) -> Result<()> {
        self.inner.sync().await
    }
}
