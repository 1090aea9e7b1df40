//! The embedded default engine, on sled.
//!
//! Layout: a `topics` tree (name → topic JSON), and one tree per partition, named
//! `partition/<topic id>/<index>`, holding under one-letter prefixes
//! - `b` + base offset → the batch bytes,
//! - `t` + running max timestamp → base offset of the batch that raised it (a time index),
//! - `p` + producer id → that producer's recent batches (JSON),
//! - `s` → the log start offset.
//!
//! Groups live in a `groups` tree (group id → state JSON) and an `offsets` tree (group id, NUL,
//! topic, NUL, partition → committed offset JSON); group and topic names cannot contain NUL.
//!
//! Each append writes its batch, its time-index entry and its producer state in one atomic
//! sled batch. Trees carry the topic id, so a deleted and re-created topic starts empty.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use crate::memory::{check_deletable, check_in_range, take_within};
use crate::{
    AppendOutcome, Batch, CommittedOffset, DocumentUpdate, GroupState, PartitionOffsets, ProducerState, Result, Storage,
    StorageError, Topic, TopicSpec,
};

/// Segments of 8 MiB let sled keep values up to 2 MiB inline in its log rather than as one
/// file per value, which covers Kafka's default 1 MiB `max.message.bytes`.
const SEGMENT_SIZE: usize = 8 << 20;

pub struct SledStorage {
    db: sled::Db,
    /// group id → group state (JSON).
    groups_tree: sled::Tree,
    /// group id, 0, topic, 0, partition (big-endian) → committed offset (JSON).
    offsets_tree: sled::Tree,
    /// Documents by `kind \0 key`.
    documents_tree: sled::Tree,
    /// Held from the read to the write of a document update.
    documents_lock: tokio::sync::Mutex<()>,
    /// sled's log file, synced after each flush when `fsync` was asked for.
    fsync_file: Option<std::fs::File>,
    topics_tree: sled::Tree,
    topics: RwLock<HashMap<String, Topic>>,
    partitions: Mutex<HashMap<(Uuid, i32), Arc<SledPartition>>>,
}

struct SledPartition {
    tree: sled::Tree,
    /// Serialises appends and deletes; reads go straight to the tree.
    meta: Mutex<PartitionMeta>,
}

#[derive(Clone, Copy)]
struct PartitionMeta {
    log_start: i64,
    next_offset: i64,
    max_timestamp: Option<i64>,
}

impl SledStorage {
    /// Opens (or creates) the store under `dir`; `sync` pushes writes to the device
    /// (survives a process kill) but does not issue an fsync.
    pub fn open(dir: &Path) -> Result<SledStorage> {
        Self::open_with_fsync(dir, false)
    }

    /// Opens the store; with `fsync`, every `sync` also fsyncs sled's log file, so
    /// acknowledged writes survive a power loss too.
    ///
    /// sled's own flush uses `sync_file_range` on Linux, which writes the data out but neither
    /// flushes the drive's volatile cache nor the file's metadata.
    pub fn open_with_fsync(dir: &Path, fsync: bool) -> Result<SledStorage> {
        let db = sled::Config::new()
            .path(dir)
            .segment_size(SEGMENT_SIZE)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let topics_tree = db.open_tree("topics")?;
        let mut topics = HashMap::new();
        for entry in topics_tree.iter() {
            let (_, value) = entry?;
            let topic: Topic = serde_json::from_slice(&value)?;
            topics.insert(topic.name.clone(), topic);
        }
        let fsync_file = if fsync {
            let log = dir.join("db");
            Some(std::fs::File::open(&log).map_err(|e| StorageError::Engine(format!("cannot open {}: {e}", log.display())))?)
        } else {
            None
        };
        Ok(SledStorage {
            groups_tree: db.open_tree("groups")?,
            offsets_tree: db.open_tree("offsets")?,
            documents_tree: db.open_tree("documents")?,
            documents_lock: tokio::sync::Mutex::new(()),
            db,
            fsync_file,
            topics_tree,
            topics: RwLock::new(topics),
            partitions: Mutex::new(HashMap::new()),
        })
    }

    fn topic_by_name(&self, name: &str) -> Result<Topic> {
        self.topics
            .read()
            .map_err(|_| poisoned())?
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::UnknownTopic(name.to_owned()))
    }

    fn partition(&self, topic: &str, partition: i32) -> Result<Arc<SledPartition>> {
        let t = self.topic_by_name(topic)?;
        if partition < 0 || partition >= t.partitions {
            return Err(StorageError::UnknownPartition { topic: topic.to_owned(), partition });
        }
        let mut open = self.partitions.lock().map_err(|_| poisoned())?;
        if let Some(p) = open.get(&(t.id, partition)) {
            return Ok(p.clone());
        }
        let tree = self.db.open_tree(tree_name(t.id, partition))?;
        let p = Arc::new(SledPartition::load(tree)?);
        open.insert((t.id, partition), p.clone());
        Ok(p)
    }

    fn save_topic(&self, topic: &Topic) -> Result<()> {
        self.topics_tree.insert(topic.name.as_bytes(), serde_json::to_vec(topic)?)?;
        self.topics.write().map_err(|_| poisoned())?.insert(topic.name.clone(), topic.clone());
        Ok(())
    }
}

fn group_prefix(group_id: &str) -> Vec<u8> {
    let mut key = group_id.as_bytes().to_vec();
    key.push(0);
    key
}

fn offset_key(group_id: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut key = group_prefix(group_id);
    key.extend_from_slice(topic.as_bytes());
    key.push(0);
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

fn tree_name(id: Uuid, partition: i32) -> String {
    format!("partition/{id}/{partition}")
}

fn poisoned() -> StorageError {
    StorageError::Engine("sled engine lock poisoned by a panic".into())
}

fn batch_key(offset: i64) -> [u8; 9] {
    prefixed(b'b', offset as u64)
}

/// Timestamps are signed; flipping the sign bit makes their big-endian bytes sort like them.
fn time_key(timestamp: i64) -> [u8; 9] {
    prefixed(b't', (timestamp as u64) ^ (1 << 63))
}

fn producer_key(producer_id: i64) -> [u8; 9] {
    prefixed(b'p', producer_id as u64)
}

const LOG_START_KEY: &[u8] = b"s";

fn prefixed(prefix: u8, value: u64) -> [u8; 9] {
    let mut key = [prefix; 9];
    key[1..].copy_from_slice(&value.to_be_bytes());
    key
}

fn u64_from(bytes: &[u8]) -> Result<u64> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| StorageError::Corrupt(format!("expected 8 bytes, found {}", bytes.len())))?;
    Ok(u64::from_be_bytes(array))
}

fn stored_batch(value: sled::IVec) -> Result<Batch> {
    Batch::from_stored(Bytes::copy_from_slice(&value)).map_err(|e| StorageError::Corrupt(e.to_string()))
}

impl SledPartition {
    fn load(tree: sled::Tree) -> Result<SledPartition> {
        let log_start = match tree.get(LOG_START_KEY)? {
            Some(v) => u64_from(&v)? as i64,
            None => 0,
        };
        let next_offset = match tree.range(batch_key(0)..=batch_key(i64::MAX)).next_back() {
            Some(entry) => stored_batch(entry?.1)?.next_offset(),
            None => log_start,
        };
        let max_timestamp = match tree.range(time_key(i64::MIN)..=time_key(i64::MAX)).next_back() {
            Some(entry) => Some((u64_from(&entry?.0[1..])? ^ (1 << 63)) as i64),
            None => None,
        };
        Ok(SledPartition { tree, meta: Mutex::new(PartitionMeta { log_start, next_offset, max_timestamp }) })
    }

    fn meta(&self) -> Result<PartitionMeta> {
        Ok(*self.meta.lock().map_err(|_| poisoned())?)
    }

    fn offsets(&self) -> Result<PartitionOffsets> {
        let m = self.meta()?;
        Ok(PartitionOffsets { log_start: m.log_start, high_watermark: m.next_offset })
    }

    /// The batch that a time-index entry at or after `key` points to.
    fn indexed_batch(&self, entry: Option<sled::Result<(sled::IVec, sled::IVec)>>) -> Result<Option<Batch>> {
        let Some(entry) = entry else { return Ok(None) };
        let base = u64_from(&entry?.1)? as i64;
        match self.tree.get(batch_key(base))? {
            Some(value) => Ok(Some(stored_batch(value)?)),
            None => Err(StorageError::Corrupt(format!("time index points at missing batch {base}"))),
        }
    }
}

#[async_trait]
impl Storage for SledStorage {
    fn engine(&self) -> &'static str {
        "sled"
    }

    async fn create_topic(&self, spec: TopicSpec) -> Result<Topic> {
        if spec.partitions < 1 {
            return Err(StorageError::InvalidPartitions(format!("{} partitions", spec.partitions)));
        }
        let topic = Topic { id: Uuid::new_v4(), name: spec.name, partitions: spec.partitions, configs: spec.configs };
        let created = self.topics_tree.compare_and_swap(
            topic.name.as_bytes(),
            None as Option<&[u8]>,
            Some(serde_json::to_vec(&topic)?),
        )?;
        if created.is_err() {
            return Err(StorageError::TopicExists(topic.name));
        }
        self.topics.write().map_err(|_| poisoned())?.insert(topic.name.clone(), topic.clone());
        Ok(topic)
    }

    async fn delete_topic(&self, name: &str) -> Result<Topic> {
        let topic = self.topic_by_name(name)?;
        self.topics_tree.remove(name.as_bytes())?;
        self.topics.write().map_err(|_| poisoned())?.remove(name);
        let mut open = self.partitions.lock().map_err(|_| poisoned())?;
        for partition in 0..topic.partitions {
            open.remove(&(topic.id, partition));
            self.db.drop_tree(tree_name(topic.id, partition))?;
        }
        Ok(topic)
    }

    async fn topics(&self) -> Result<Vec<Topic>> {
        let mut topics: Vec<Topic> = self.topics.read().map_err(|_| poisoned())?.values().cloned().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    async fn topic(&self, name: &str) -> Result<Option<Topic>> {
        Ok(self.topics.read().map_err(|_| poisoned())?.get(name).cloned())
    }

    async fn create_partitions(&self, name: &str, partitions: i32) -> Result<Topic> {
        let mut topic = self.topic_by_name(name)?;
        if partitions <= topic.partitions {
            return Err(StorageError::InvalidPartitions(format!(
                "topic {name:?} has {} partitions; it can only grow",
                topic.partitions
            )));
        }
        topic.partitions = partitions;
        self.save_topic(&topic)?;
        Ok(topic)
    }

    async fn set_topic_configs(&self, name: &str, configs: BTreeMap<String, String>) -> Result<Topic> {
        let mut topic = self.topic_by_name(name)?;
        topic.configs = configs;
        self.save_topic(&topic)?;
        Ok(topic)
    }

    async fn append(&self, topic: &str, partition: i32, batch: Batch, producer: Option<ProducerState>) -> Result<AppendOutcome> {
        let p = self.partition(topic, partition)?;
        let mut meta = p.meta.lock().map_err(|_| poisoned())?;
        let batch = batch.with_base_offset(meta.next_offset);
        let base_offset = batch.base_offset();
        let max_ts = batch.max_timestamp();
        let next_offset = batch.next_offset();

        let mut write = sled::Batch::default();
        write.insert(&batch_key(base_offset), batch.bytes().as_ref());
        let raises_max = meta.max_timestamp.is_none_or(|ts| max_ts > ts);
        if raises_max {
            write.insert(&time_key(max_ts), &(base_offset as u64).to_be_bytes());
        }
        if let Some(state) = &producer {
            write.insert(&producer_key(state.producer_id), serde_json::to_vec(state)?);
        }
        p.tree.apply_batch(write)?;

        meta.next_offset = next_offset;
        if raises_max {
            meta.max_timestamp = Some(max_ts);
        }
        Ok(AppendOutcome { base_offset, high_watermark: next_offset })
    }

    async fn read(&self, topic: &str, partition: i32, offset: i64, max_bytes: usize) -> Result<Vec<Batch>> {
        let p = self.partition(topic, partition)?;
        let offsets = p.offsets()?;
        check_in_range(offset, offsets)?;
        if offset == offsets.high_watermark {
            return Ok(Vec::new());
        }
        let mut start = offset;
        if let Some(entry) = p.tree.range(batch_key(0)..=batch_key(offset)).next_back() {
            let (key, value) = entry?;
            if stored_batch(value)?.last_offset() >= offset {
                start = u64_from(&key[1..])? as i64;
            }
        }
        let mut batches = Vec::new();
        let mut error = None;
        let iter = p.tree.range(batch_key(start)..=batch_key(i64::MAX)).map_while(|entry| {
            match entry.map_err(StorageError::from).and_then(|(_, v)| stored_batch(v)) {
                Ok(batch) => Some(batch),
                Err(e) => {
                    error = Some(e);
                    None
                }
            }
        });
        batches.extend(take_within(iter, max_bytes));
        match error {
            Some(e) => Err(e),
            None => Ok(batches),
        }
    }

    async fn offsets(&self, topic: &str, partition: i32) -> Result<PartitionOffsets> {
        self.partition(topic, partition)?.offsets()
    }

    async fn batch_at_time(&self, topic: &str, partition: i32, timestamp: i64) -> Result<Option<Batch>> {
        let p = self.partition(topic, partition)?;
        p.indexed_batch(p.tree.range(time_key(timestamp)..=time_key(i64::MAX)).next())
    }

    async fn batch_with_max_timestamp(&self, topic: &str, partition: i32) -> Result<Option<Batch>> {
        let p = self.partition(topic, partition)?;
        p.indexed_batch(p.tree.range(time_key(i64::MIN)..=time_key(i64::MAX)).next_back())
    }

    async fn delete_records(&self, topic: &str, partition: i32, offset: i64) -> Result<i64> {
        let p = self.partition(topic, partition)?;
        let mut meta = p.meta.lock().map_err(|_| poisoned())?;
        check_deletable(offset, PartitionOffsets { log_start: meta.log_start, high_watermark: meta.next_offset })?;
        if offset <= meta.log_start {
            return Ok(meta.log_start);
        }
        let mut write = sled::Batch::default();
        let mut first_kept = offset;
        for entry in p.tree.range(batch_key(0)..batch_key(offset)) {
            let (key, value) = entry?;
            let batch = stored_batch(value)?;
            if batch.last_offset() < offset {
                write.remove(key);
            } else {
                first_kept = batch.base_offset();
            }
        }
        // Time-index entries of deleted batches go. The running max then starts again from the
        // first batch kept, so the batches before the first surviving entry (which the deleted
        // ones outranked) are indexed again; from that entry on, nothing changes.
        let mut surviving = None;
        for entry in p.tree.range(time_key(i64::MIN)..=time_key(i64::MAX)) {
            let (key, value) = entry?;
            let base = u64_from(&value)? as i64;
            if base >= first_kept {
                surviving = Some(base);
                break;
            }
            write.remove(key);
        }
        let mut max_timestamp = meta.max_timestamp.filter(|_| surviving.is_some());
        let mut raised: Option<i64> = None;
        for entry in p.tree.range(batch_key(first_kept)..batch_key(surviving.unwrap_or(i64::MAX))) {
            let batch = stored_batch(entry?.1)?;
            if raised.is_none_or(|ts| batch.max_timestamp() > ts) {
                raised = Some(batch.max_timestamp());
                write.insert(&time_key(batch.max_timestamp()), &(batch.base_offset() as u64).to_be_bytes());
            }
        }
        if surviving.is_none() {
            max_timestamp = raised;
        }
        write.insert(LOG_START_KEY, &(offset as u64).to_be_bytes());
        p.tree.apply_batch(write)?;
        meta.log_start = offset;
        meta.max_timestamp = max_timestamp;
        Ok(offset)
    }

    async fn producers(&self, topic: &str, partition: i32) -> Result<Vec<ProducerState>> {
        let p = self.partition(topic, partition)?;
        let mut out = Vec::new();
        for entry in p.tree.range(producer_key(0)..=producer_key(i64::MAX)) {
            out.push(serde_json::from_slice(&entry?.1)?);
        }
        Ok(out)
    }

    async fn save_group(&self, group: GroupState) -> Result<()> {
        self.groups_tree.insert(group.group_id.as_bytes(), serde_json::to_vec(&group)?)?;
        self.db.flush_async().await?;
        Ok(())
    }

    async fn load_groups(&self) -> Result<Vec<GroupState>> {
        self.groups_tree.iter().map(|entry| Ok(serde_json::from_slice(&entry?.1)?)).collect()
    }

    async fn delete_group(&self, group_id: &str) -> Result<()> {
        self.groups_tree.remove(group_id.as_bytes())?;
        let mut doomed = sled::Batch::default();
        for entry in self.offsets_tree.scan_prefix(group_prefix(group_id)) {
            doomed.remove(entry?.0);
        }
        self.offsets_tree.apply_batch(doomed)?;
        self.db.flush_async().await?;
        Ok(())
    }

    async fn commit_offsets(&self, group_id: &str, offsets: Vec<CommittedOffset>) -> Result<()> {
        let mut write = sled::Batch::default();
        for offset in &offsets {
            write.insert(offset_key(group_id, &offset.topic, offset.partition), serde_json::to_vec(offset)?);
        }
        self.offsets_tree.apply_batch(write)?;
        self.db.flush_async().await?;
        Ok(())
    }

    async fn committed_offsets(&self, group_id: &str) -> Result<Vec<CommittedOffset>> {
        self.offsets_tree.scan_prefix(group_prefix(group_id)).map(|entry| Ok(serde_json::from_slice(&entry?.1)?)).collect()
    }

    async fn delete_offsets(&self, group_id: &str, partitions: &[(String, i32)]) -> Result<()> {
        let mut doomed = sled::Batch::default();
        for (topic, partition) in partitions {
            doomed.remove(offset_key(group_id, topic, *partition));
        }
        self.offsets_tree.apply_batch(doomed)?;
        self.db.flush_async().await?;
        Ok(())
    }

    async fn groups_with_offsets(&self) -> Result<Vec<String>> {
        let mut groups: Vec<String> = Vec::new();
        for entry in self.offsets_tree.iter() {
            let (key, _) = entry?;
            let end = key.iter().position(|b| *b == 0).unwrap_or(key.len());
            let group = String::from_utf8_lossy(&key[..end]).into_owned();
            if groups.last() != Some(&group) {
                groups.push(group);
            }
        }
        Ok(groups)
    }

    async fn next_producer_id(&self) -> Result<i64> {
        // sled persists its id generator, so ids stay unique across restarts.
        Ok(self.db.generate_id()? as i64)
    }

    async fn document(&self, kind: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.documents_tree.get(document_key(kind, key))?.map(|v| v.to_vec()))
    }

    async fn documents(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = document_key(kind, "");
        self.documents_tree
            .scan_prefix(&prefix)
            .map(|entry| {
                let (k, v) = entry?;
                let key = String::from_utf8(k[prefix.len()..].to_vec())
                    .map_err(|_| StorageError::Corrupt("a document key is not UTF-8".into()))?;
                Ok((key, v.to_vec()))
            })
            .collect()
    }

    async fn update_document(&self, kind: &str, key: &str, update: &mut DocumentUpdate<'_>) -> Result<Option<Vec<u8>>> {
        let _held = self.documents_lock.lock().await;
        let id = document_key(kind, key);
        let current = self.documents_tree.get(&id)?;
        let next = update(current.as_deref())?;
        match &next {
            Some(bytes) => self.documents_tree.insert(id, bytes.as_slice())?,
            None => self.documents_tree.remove(id)?,
        };
        self.sync().await?;
        Ok(next)
    }

    async fn sync(&self) -> Result<()> {
        self.db.flush_async().await?;
        if let Some(file) = &self.fsync_file {
            // fsync on any descriptor of the file flushes the file; block a worker, not the runtime.
            let file = file.try_clone().map_err(|e| StorageError::Engine(format!("fsync: {e}")))?;
            tokio::task::spawn_blocking(move || file.sync_data())
                .await
                .map_err(|e| StorageError::Engine(format!("fsync task: {e}")))?
                .map_err(|e| StorageError::Engine(format!("fsync: {e}")))?;
        }
        Ok(())
    }
}

/// `kind \0 key`: kinds hold no NUL, so one kind's keys form one prefix.
fn document_key(kind: &str, key: &str) -> Vec<u8> {
    let mut id = Vec::with_capacity(kind.len() + 1 + key.len());
    id.extend_from_slice(kind.as_bytes());
    id.push(0);
    id.extend_from_slice(key.as_bytes());
    id
}
