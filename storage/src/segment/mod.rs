//! An append-only segment log, laid out like Kafka's: the fast persistent engine.
//!
//! Layout under the data directory:
//! - `topics.json`: every topic (id, name, partitions, configs), replaced atomically;
//! - `producer-ids`: the end of the last reserved block of producer ids;
//! - `lock`: held (`flock`) while a process has the store open;
//! - `<topic id>-<partition>/`: one folder per partition, holding segment files named by their
//!   base offset (`00000000000000000000.log`), each the stored batches back to back; plus
//!   `log-start` once DeleteRecords moved the log start, and `producers.json` once
//!   DeleteRecords deleted segment files (see [`producers`]).
//!
//! An append is one positioned `write()` into the page cache: it survives a kill of the
//! process as soon as it returns. Power-loss durability is what `fsync` adds: `sync` then
//! fsyncs every file written since the last `sync`, which makes it the group commit point.
//! The index of batches, the time index and the producers live in memory and are rebuilt
//! from the segments on open (see [`recovery`]).

mod dirty;
mod documents;
mod files;
mod groups;
mod ids;
mod manifest;
mod partition;
mod producers;
mod recovery;
mod segment_file;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use uuid::Uuid;

use self::dirty::DirtySet;
use self::documents::DocumentStore;
use self::files::io_error;
use self::groups::GroupStore;
use self::ids::ProducerIds;
use self::partition::Partition;
use crate::{
    AppendOutcome, Batch, CommittedOffset, DocumentUpdate, GroupState, PartitionOffsets, ProducerState, Result, Storage, StorageError,
    Topic, TopicSpec,
};

const LOCK_FILE: &str = "lock";

/// The segment log engine. Cheap to share: all state sits behind one `Arc`.
pub struct SegmentStorage {
    engine: Arc<Engine>,
}

/// What every partition needs from the engine.
struct Shared {
    fsync: bool,
    segment_bytes: u64,
    dirty: DirtySet,
}

struct Engine {
    dir: PathBuf,
    shared: Arc<Shared>,
    topics: RwLock<BTreeMap<String, OpenTopic>>,
    /// Serialises topic changes, each of which rewrites `topics.json`.
    admin: Mutex<()>,
    ids: Mutex<ProducerIds>,
    groups: Mutex<GroupStore>,
    documents: DocumentStore,
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

impl SegmentStorage {
    /// A new segment is started once the active one would grow past this.
    pub const DEFAULT_SEGMENT_BYTES: u64 = 128 << 20;

    /// Opens (or creates) the store under `dir`, recovering every partition. With `fsync`,
    /// `sync` makes writes survive a power loss; without, they survive a crash of the process.
    pub fn open(dir: &Path, fsync: bool) -> Result<SegmentStorage> {
        Self::open_with_segment_bytes(dir, fsync, Self::DEFAULT_SEGMENT_BYTES)
    }

    /// [`SegmentStorage::open`] with another segment size (tests use small ones to roll often).
    pub fn open_with_segment_bytes(dir: &Path, fsync: bool, segment_bytes: u64) -> Result<SegmentStorage> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let lock = lock_dir(dir)?;
        let shared = Arc::new(Shared { fsync, segment_bytes: segment_bytes.max(1), dirty: DirtySet::default() });
        let stored = manifest::load(dir)?;
        remove_stale_partitions(dir, &stored)?;
        let mut topics = BTreeMap::new();
        for topic in stored {
            let partitions = (0..topic.partitions)
                .map(|p| recovery::open_partition(&partition_dir(dir, topic.id, p), shared.clone()).map(Arc::new))
                .collect::<Result<Vec<_>>>()?;
            topics.insert(topic.name.clone(), OpenTopic { topic, partitions });
        }
        // Partition folders that were missing have just been created.
        files::sync_dir(dir)?;
        let engine = Engine {
            dir: dir.to_owned(),
            ids: Mutex::new(ProducerIds::load(dir)?),
            shared,
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            groups: Mutex::new(GroupStore::load(dir)?),
            documents: DocumentStore::new(dir, fsync),
            sync_failure: tokio::sync::Mutex::new(None),
            _lock: lock,
        };
        Ok(SegmentStorage { engine: Arc::new(engine) })
    }

    /// Runs `f` on a blocking thread: for work that fsyncs, which can take milliseconds.
    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Engine) -> Result<T> + Send + 'static) -> Result<T> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|e| StorageError::Engine(format!("segment engine task failed: {e}")))?
    }
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

fn parse_partition_dir(name: &str) -> Option<(Uuid, i32)> {
    let (id, partition) = name.rsplit_once('-')?;
    Some((Uuid::parse_str(id).ok()?, partition.parse().ok().filter(|p| *p >= 0)?))
}

fn poisoned() -> StorageError {
    StorageError::Engine("segment engine lock poisoned by a panic".into())
}

impl Engine {
    fn groups(&self) -> Result<std::sync::MutexGuard<'_, GroupStore>> {
        self.groups.lock().map_err(|_| poisoned())
    }

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

    /// Writes `topics.json` as the current topics with `name` replaced by `replacement`
    /// (or removed when `None`). Callers hold `admin`.
    fn save_manifest(&self, name: &str, replacement: Option<&Topic>) -> Result<()> {
        let topics = self.topics()?;
        let others = topics.values().map(|t| &t.topic).filter(|t| t.name != name);
        manifest::save(&self.dir, others.chain(replacement))
    }

    /// Creates (or reopens, after an earlier failed attempt) the folders of new partitions.
    fn open_partitions(&self, topic: Uuid, range: std::ops::Range<i32>) -> Result<Vec<Arc<Partition>>> {
        let partitions = range
            .map(|p| recovery::open_partition(&partition_dir(&self.dir, topic, p), self.shared.clone()).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        files::sync_dir(&self.dir)?;
        Ok(partitions)
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
        let partitions = self.open_partitions(topic.id, 0..topic.partitions)?;
        self.save_manifest(&topic.name, Some(&topic))?;
        self.topics_mut()?.insert(topic.name.clone(), OpenTopic { topic: topic.clone(), partitions });
        Ok(topic)
    }

    fn delete_topic(&self, name: &str) -> Result<Topic> {
        let _admin = self.admin.lock().map_err(|_| poisoned())?;
        self.topic(name)?;
        // The manifest first: once it is replaced the topic is gone, whatever happens next;
        // folders left behind by a crash are removed on the next open.
        self.save_manifest(name, None)?;
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
        let added = self.open_partitions(topic.id, topic.partitions..count)?;
        topic.partitions = count;
        self.save_manifest(name, Some(&topic))?;
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
        self.save_manifest(name, Some(&topic))?;
        let mut topics = self.topics_mut()?;
        let open = topics.get_mut(name).ok_or_else(|| StorageError::UnknownTopic(name.to_owned()))?;
        open.topic = topic.clone();
        Ok(topic)
    }
}

#[async_trait]
impl Storage for SegmentStorage {
    fn engine(&self) -> &'static str {
        "segment"
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

    async fn producers(&self, topic: &str, partition: i32) -> Result<Vec<ProducerState>> {
        self.engine.partition(topic, partition)?.producers()
    }

    async fn save_group(&self, group: GroupState) -> Result<()> {
        self.blocking(move |e| e.groups()?.save_group(group)).await
    }

    async fn load_groups(&self) -> Result<Vec<GroupState>> {
        Ok(self.engine.groups()?.groups())
    }

    async fn delete_group(&self, group_id: &str) -> Result<()> {
        let group_id = group_id.to_owned();
        self.blocking(move |e| e.groups()?.delete_group(&group_id)).await
    }

    async fn commit_offsets(&self, group_id: &str, offsets: Vec<CommittedOffset>) -> Result<()> {
        let group_id = group_id.to_owned();
        self.blocking(move |e| e.groups()?.commit(&group_id, offsets)).await
    }

    async fn committed_offsets(&self, group_id: &str) -> Result<Vec<CommittedOffset>> {
        Ok(self.engine.groups()?.committed(group_id))
    }

    async fn delete_offsets(&self, group_id: &str, partitions: &[(String, i32)]) -> Result<()> {
        let (group_id, partitions) = (group_id.to_owned(), partitions.to_vec());
        self.blocking(move |e| e.groups()?.delete_offsets(&group_id, &partitions)).await
    }

    async fn groups_with_offsets(&self) -> Result<Vec<String>> {
        Ok(self.engine.groups()?.groups_with_offsets())
    }

    async fn next_producer_id(&self) -> Result<i64> {
        // Every thousandth id writes and fsyncs the next block's end.
        self.blocking(|e| e.ids.lock().map_err(|_| poisoned())?.next()).await
    }

    async fn document(&self, kind: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.engine.documents.get(kind, key)
    }

    async fn documents(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.engine.documents.list(kind)
    }

    async fn update_document(&self, kind: &str, key: &str, update: &mut DocumentUpdate<'_>) -> Result<Option<Vec<u8>>> {
        self.engine.documents.update(kind, key, update).await
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
