//! The embedded default engine: record batches in append-only segment files, laid out like
//! Kafka's, and everything else in a sled database (the [`catalog`]).
//!
//! Layout under the data directory:
//! - `catalog/`: the sled database: topics, log start offsets, producer snapshots, groups,
//!   committed offsets, documents and producer ids;
//! - `lock`: held (`flock`) while a process has the store open;
//! - `<topic id>-<partition>/`: one folder per partition, holding segment files named by their
//!   base offset (`00000000000000000000.log`), each the stored batches back to back, and the
//!   sparse index of each sealed segment (`00000000000000000000.index`).
//!
//! An append is one positioned `write()` into the page cache: it survives a kill of the
//! process as soon as it returns. Power-loss durability is what `fsync` adds: `sync` then
//! fsyncs every file written since the last `sync`, which makes it the group commit point.
//! Catalog writes the trait promises durable (commits, groups, documents, topic changes) are
//! journaled before they return (see [`journal`]), and fsynced too with `fsync`.
//!
//! Segments suit the log: each batch is written once, where a B-tree rewrites whole pages.
//! sled suits the small state: a document update is one tree write, where a file per
//! document would be a rename.

mod catalog;
mod dirty;
mod files;
mod import;
mod journal;
mod partition;
mod producers;
mod recovery;
mod segment_file;
mod segment_index;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use uuid::Uuid;

use self::catalog::Catalog;
use self::dirty::DirtySet;
use self::files::io_error;
use self::partition::{Partition, RollPolicy};
use crate::{
    AppendOutcome, Batch, CommittedOffset, DocumentUpdate, GroupState, LogRange, PartitionOffsets, ProducerState, Result, Storage, StorageError,
    Topic, TopicSpec,
};

const LOCK_FILE: &str = "lock";

/// The embedded engine. Cheap to share: all state sits behind one `Arc`.
pub struct EmbeddedStorage {
    engine: Arc<Engine>,
}

/// What every partition needs from the engine.
struct Shared {
    fsync: bool,
    /// `segment.bytes` for topics that do not set it.
    segment_bytes: u64,
    dirty: DirtySet,
    catalog: Catalog,
}

struct Engine {
    dir: PathBuf,
    shared: Arc<Shared>,
    topics: RwLock<BTreeMap<String, OpenTopic>>,
    /// Serialises topic changes.
    admin: Mutex<()>,
    /// Serialises syncs: a sync must not return while an earlier one is still fsyncing writes
    /// it covers. Holds the error of a failed fsync: after one, the kernel may have dropped the
    /// unwritten pages and a retry could wrongly succeed, so every later sync fails too.
    sync_failure: tokio::sync::Mutex<Option<String>>,
    /// Kept open for its `flock`, so two processes never share the store.
    _lock: File,
}

struct OpenTopic {
    topic: Topic,
    partitions: Vec<Arc<Partition>>,
}

impl EmbeddedStorage {
    /// A new segment is started once the active one would grow past this, unless the topic
    /// sets `segment.bytes`.
    pub const DEFAULT_SEGMENT_BYTES: u64 = 128 << 20;

    /// Opens (or creates) the store under `dir`, recovering every partition; a folder an
    /// earlier version wrote is imported first (see [`import`]). With `fsync`, `sync` makes
    /// writes survive a power loss; without, they survive a crash of the process.
    pub fn open(dir: &Path, fsync: bool) -> Result<EmbeddedStorage> {
        Self::open_with_segment_bytes(dir, fsync, Self::DEFAULT_SEGMENT_BYTES)
    }

    /// [`EmbeddedStorage::open`] with another default segment size (tests use small ones).
    pub fn open_with_segment_bytes(dir: &Path, fsync: bool, segment_bytes: u64) -> Result<EmbeddedStorage> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let lock = lock_dir(dir)?;
        let catalog = Catalog::open(dir, fsync)?;
        import::earlier_layouts(dir, &catalog)?;
        let shared = Arc::new(Shared { fsync, segment_bytes: segment_bytes.max(1), dirty: DirtySet::default(), catalog });
        let stored = shared.catalog.topics()?;
        if shared.catalog.is_new && stored.is_empty() && holds_partitions(dir)? {
            return Err(StorageError::Corrupt(format!(
                "{} holds partition folders but no catalog/: the catalog was lost. Nothing was changed. \
                 Restore catalog/ from a backup, or move the partition folders aside to start with an empty store",
                dir.display()
            )));
        }
        remove_stale_partitions(dir, &stored)?;
        let mut topics = BTreeMap::new();
        for topic in stored {
            let partitions = open_partitions(dir, &topic, 0..topic.partitions, &shared)?;
            topics.insert(topic.name.clone(), OpenTopic { topic, partitions });
        }
        // Partition folders that were missing have just been created; snapshots were saved.
        files::sync_dir(dir)?;
        shared.catalog.flush()?;
        let engine = Engine {
            dir: dir.to_owned(),
            shared,
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            sync_failure: tokio::sync::Mutex::new(None),
            _lock: lock,
        };
        Ok(EmbeddedStorage { engine: Arc::new(engine) })
    }

    /// Runs `f` on a blocking thread: for work that fsyncs, which can take milliseconds.
    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Engine) -> Result<T> + Send + 'static) -> Result<T> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|e| StorageError::Engine(format!("embedded engine task failed: {e}")))?
    }
}

fn open_partitions(dir: &Path, topic: &Topic, range: std::ops::Range<i32>, shared: &Arc<Shared>) -> Result<Vec<Arc<Partition>>> {
    let roll = RollPolicy::of(&topic.configs, shared.segment_bytes);
    range
        .map(|p| recovery::open_partition(&partition_dir(dir, topic.id, p), topic.id, p, roll, shared.clone()).map(Arc::new))
        .collect()
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(io_error(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => {
            Err(StorageError::Engine(format!("{} is in use by another process", dir.display())))
        }
        Err(TryLockError::Error(e)) => Err(io_error(&path)(e)),
    }
}

fn partition_dir(root: &Path, topic: Uuid, partition: i32) -> PathBuf {
    root.join(format!("{topic}-{partition}"))
}

/// Deletes partition folders no topic owns: left by a deleted topic whose folders could not
/// all be removed, or by a topic change that crashed before `topics.json` was replaced.
fn remove_stale_partitions(dir: &Path, topics: &[Topic]) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some((id, partition)) = name.to_str().and_then(parse_partition_dir) else { continue };
        if !entry.file_type().map_err(io_error(&entry.path()))?.is_dir() {
            continue;
        }
        if topics.iter().any(|t| t.id == id && partition < t.partitions) {
            continue;
        }
        let path = entry.path();
        tracing::info!(path = %path.display(), "removing the folder of a deleted partition");
        std::fs::remove_dir_all(&path).map_err(io_error(&path))?;
    }
    Ok(())
}

/// Whether `dir` has any partition folder.
fn holds_partitions(dir: &Path) -> Result<bool> {
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        if entry.file_name().to_str().and_then(parse_partition_dir).is_some() && entry.path().is_dir() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn parse_partition_dir(name: &str) -> Option<(Uuid, i32)> {
    let (id, partition) = name.rsplit_once('-')?;
    Some((Uuid::parse_str(id).ok()?, partition.parse().ok().filter(|p| *p >= 0)?))
}

fn poisoned() -> StorageError {
    StorageError::Engine("embedded engine lock poisoned by a panic".into())
}

impl Engine {
    fn topics(&self) -> Result<std::sync::RwLockReadGuard<'_, BTreeMap<String, OpenTopic>>> {
        self.topics.read().map_err(|_| poisoned())
    }

    fn topics_mut(&self) -> Result<std::sync::RwLockWriteGuard<'_, BTreeMap<String, OpenTopic>>> {
        self.topics.write().map_err(|_| poisoned())
    }

    fn partition(&self, topic: &str, partition: i32) -> Result<Arc<Partition>> {
        let topics = self.topics()?;
        let open = topics.get(topic).ok_or_else(|| StorageError::UnknownTopic(topic.to_owned()))?;
        usize::try_from(partition)
            .ok()
            .and_then(|i| open.partitions.get(i))
            .cloned()
            .ok_or_else(|| StorageError::UnknownPartition { topic: topic.to_owned(), partition })
    }

    fn topic(&self, name: &str) -> Result<Topic> {
        self.topics()?.get(name).map(|t| t.topic.clone()).ok_or_else(|| StorageError::UnknownTopic(name.to_owned()))
    }

    /// Creates (or reopens, after an earlier failed attempt) the folders of new partitions.
    fn open_partitions(&self, topic: &Topic, range: std::ops::Range<i32>) -> Result<Vec<Arc<Partition>>> {
        let partitions = open_partitions(&self.dir, topic, range, &self.shared)?;
        files::sync_dir(&self.dir)?;
        Ok(partitions)
    }

    /// Stores a topic's new description durably. Callers hold `admin`.
    fn save_topic(&self, topic: &Topic) -> Result<()> {
        self.shared.catalog.save_topic(topic)?;
        self.shared.catalog.durable()
    }

    fn create_topic(&self, spec: TopicSpec) -> Result<Topic> {
        if spec.partitions < 1 {
            return Err(StorageError::InvalidPartitions(format!("{} partitions", spec.partitions)));
        }
        let _admin = self.admin.lock().map_err(|_| poisoned())?;
        if self.topics()?.contains_key(&spec.name) {
            return Err(StorageError::TopicExists(spec.name));
        }
        let topic = Topic { id: Uuid::new_v4(), name: spec.name, partitions: spec.partitions, configs: spec.configs };
        let partitions = self.open_partitions(&topic, 0..topic.partitions)?;
        self.save_topic(&topic)?;
        self.topics_mut()?.insert(topic.name.clone(), OpenTopic { topic: topic.clone(), partitions });
        Ok(topic)
    }

    fn delete_topic(&self, name: &str) -> Result<Topic> {
        let _admin = self.admin.lock().map_err(|_| poisoned())?;
        let topic = self.topic(name)?;
        // The catalog first: once the topic is gone from it, it is gone whatever happens next;
        // folders left behind by a crash are removed on the next open.
        self.shared.catalog.remove_topic(&topic)?;
        self.shared.catalog.durable()?;
        let Some(open) = self.topics_mut()?.remove(name) else {
            return Err(StorageError::UnknownTopic(name.to_owned()));
        };
        for partition in &open.partitions {
            partition.close()?;
        }
        for partition in &open.partitions {
            if let Err(e) = std::fs::remove_dir_all(&partition.dir) {
                tracing::warn!(path = %partition.dir.display(), error = %e, "cannot remove a deleted partition; retried on the next open");
            }
        }
        Ok(open.topic)
    }

    fn create_partitions(&self, name: &str, count: i32) -> Result<Topic> {
        let _admin = self.admin.lock().map_err(|_| poisoned())?;
        let mut topic = self.topic(name)?;
        if count <= topic.partitions {
            return Err(StorageError::InvalidPartitions(format!(
                "topic {name:?} has {} partitions; it can only grow",
                topic.partitions
            )));
        }
        let added = self.open_partitions(&topic, topic.partitions..count)?;
        topic.partitions = count;
        self.save_topic(&topic)?;
        let mut topics = self.topics_mut()?;
        let open = topics.get_mut(name).ok_or_else(|| StorageError::UnknownTopic(name.to_owned()))?;
        open.partitions.extend(added);
        open.topic = topic.clone();
        Ok(topic)
    }

    fn set_topic_configs(&self, name: &str, configs: BTreeMap<String, String>) -> Result<Topic> {
        let _admin = self.admin.lock().map_err(|_| poisoned())?;
        let mut topic = self.topic(name)?;
        topic.configs = configs;
        self.save_topic(&topic)?;
        let roll = RollPolicy::of(&topic.configs, self.shared.segment_bytes);
        let mut topics = self.topics_mut()?;
        let open = topics.get_mut(name).ok_or_else(|| StorageError::UnknownTopic(name.to_owned()))?;
        for partition in &open.partitions {
            partition.set_roll_policy(roll)?;
        }
        open.topic = topic.clone();
        Ok(topic)
    }
}

#[async_trait]
impl Storage for EmbeddedStorage {
    fn engine(&self) -> &'static str {
        "embedded"
    }

    async fn create_topic(&self, spec: TopicSpec) -> Result<Topic> {
        self.blocking(move |e| e.create_topic(spec)).await
    }

    async fn delete_topic(&self, name: &str) -> Result<Topic> {
        let name = name.to_owned();
        self.blocking(move |e| e.delete_topic(&name)).await
    }

    async fn topics(&self) -> Result<Vec<Topic>> {
        Ok(self.engine.topics()?.values().map(|t| t.topic.clone()).collect())
    }

    async fn topic(&self, name: &str) -> Result<Option<Topic>> {
        Ok(self.engine.topics()?.get(name).map(|t| t.topic.clone()))
    }

    async fn create_partitions(&self, name: &str, partitions: i32) -> Result<Topic> {
        let name = name.to_owned();
        self.blocking(move |e| e.create_partitions(&name, partitions)).await
    }

    async fn set_topic_configs(&self, name: &str, configs: BTreeMap<String, String>) -> Result<Topic> {
        let name = name.to_owned();
        self.blocking(move |e| e.set_topic_configs(&name, configs)).await
    }

    async fn append(&self, topic: &str, partition: i32, batch: Batch, producer: Option<ProducerState>) -> Result<AppendOutcome> {
        // A write into the page cache: inline, like a memory copy.
        self.engine.partition(topic, partition)?.append(topic, batch, producer)
    }

    async fn read(&self, topic: &str, partition: i32, offset: i64, max_bytes: usize) -> Result<Vec<Batch>> {
        self.engine.partition(topic, partition)?.read(offset, max_bytes)
    }

    async fn offsets(&self, topic: &str, partition: i32) -> Result<PartitionOffsets> {
        self.engine.partition(topic, partition)?.offsets()
    }

    async fn batch_at_time(&self, topic: &str, partition: i32, timestamp: i64) -> Result<Option<Batch>> {
        self.engine.partition(topic, partition)?.batch_at_time(timestamp)
    }

    async fn batch_with_max_timestamp(&self, topic: &str, partition: i32) -> Result<Option<Batch>> {
        self.engine.partition(topic, partition)?.batch_with_max_timestamp()
    }

    async fn delete_records(&self, topic: &str, partition: i32, offset: i64) -> Result<i64> {
        let p = self.engine.partition(topic, partition)?;
        self.blocking(move |_| p.delete_records(offset)).await
    }

    async fn compactable_ranges(&self, topic: &str, partition: i32) -> Result<Vec<LogRange>> {
        self.engine.partition(topic, partition)?.compactable_ranges()
    }

    async fn replace_range(&self, topic: &str, partition: i32, range: LogRange, batches: Vec<Batch>) -> Result<()> {
        let p = self.engine.partition(topic, partition)?;
        self.blocking(move |_| p.replace_range(range, batches)).await
    }

    async fn partition_size(&self, topic: &str, partition: i32) -> Result<Option<u64>> {
        self.engine.partition(topic, partition)?.size().map(Some)
    }

    async fn retention_cut_for_bytes(&self, topic: &str, partition: i32, max_bytes: u64) -> Result<Option<i64>> {
        self.engine.partition(topic, partition)?.retention_cut_for_bytes(max_bytes)
    }

    async fn producers(&self, topic: &str, partition: i32) -> Result<Vec<ProducerState>> {
        self.engine.partition(topic, partition)?.producers()
    }

    async fn save_group(&self, group: GroupState) -> Result<()> {
        self.engine.shared.catalog.save_group(&group)?;
        self.engine.shared.catalog.durable_async().await
    }

    async fn load_groups(&self) -> Result<Vec<GroupState>> {
        self.engine.shared.catalog.groups()
    }

    async fn delete_group(&self, group_id: &str) -> Result<()> {
        self.engine.shared.catalog.delete_group(group_id)?;
        self.engine.shared.catalog.durable_async().await
    }

    async fn commit_offsets(&self, group_id: &str, offsets: Vec<CommittedOffset>) -> Result<()> {
        self.engine.shared.catalog.commit(group_id, &offsets)?;
        self.engine.shared.catalog.durable_async().await
    }

    async fn committed_offsets(&self, group_id: &str) -> Result<Vec<CommittedOffset>> {
        self.engine.shared.catalog.committed(group_id)
    }

    async fn delete_offsets(&self, group_id: &str, partitions: &[(String, i32)]) -> Result<()> {
        self.engine.shared.catalog.delete_offsets(group_id, partitions)?;
        self.engine.shared.catalog.durable_async().await
    }

    async fn groups_with_offsets(&self) -> Result<Vec<String>> {
        self.engine.shared.catalog.groups_with_offsets()
    }

    async fn next_producer_id(&self) -> Result<i64> {
        // Every thousandth id flushes the next block's end.
        self.blocking(|e| e.shared.catalog.next_producer_id()).await
    }

    async fn document(&self, kind: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.engine.shared.catalog.document(kind, key)
    }

    async fn documents(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.engine.shared.catalog.documents(kind)
    }

    async fn update_document(&self, kind: &str, key: &str, update: &mut DocumentUpdate<'_>) -> Result<Option<Vec<u8>>> {
        self.engine.shared.catalog.update_document(kind, key, update).await
    }

    async fn sync(&self) -> Result<()> {
        if !self.engine.shared.fsync {
            // Every write already reached the page cache, which outlives the process.
            return Ok(());
        }
        let mut failure = self.engine.sync_failure.lock().await;
        if let Some(reason) = failure.as_ref() {
            return Err(StorageError::Engine(format!(
                "an earlier fsync failed, so writes can no longer be promised durable until a restart: {reason}"
            )));
        }
        let result = self.blocking(|e| e.shared.dirty.sync()).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "fsync failed; every later sync will fail too");
            *failure = Some(e.to_string());
        }
        result
    }
}
