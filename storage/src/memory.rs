//! An engine that keeps everything in process memory: for tests and throwaway brokers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use uuid::Uuid;

use crate::log_range::{check_tiling, chunk_ranges, range_changed};
use crate::{
    AppendOutcome, Batch, LogRange, CommittedOffset, DocumentUpdate, GroupState, PartitionOffsets, ProducerState, Result, Storage,
    StorageError, Topic, TopicSpec,
};

#[derive(Default)]
pub struct MemoryStorage {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    topics: BTreeMap<String, (Topic, Vec<Partition>)>,
    next_producer_id: i64,
    groups: BTreeMap<String, GroupState>,
    offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
    documents: BTreeMap<(String, String), Vec<u8>>,
}

/// (max timestamp, base offset) of each batch that raises the running max, in offset order.
fn running_max_index<'a>(batches: impl Iterator<Item = &'a Batch>) -> Vec<(i64, i64)> {
    let mut index: Vec<(i64, i64)> = Vec::new();
    for batch in batches {
        if index.last().is_none_or(|(ts, _)| batch.max_timestamp() > *ts) {
            index.push((batch.max_timestamp(), batch.base_offset()));
        }
    }
    index
}

#[derive(Default)]
struct Partition {
    batches: BTreeMap<i64, Batch>,
    log_start: i64,
    next_offset: i64,
    producers: HashMap<i64, ProducerState>,
    /// (running max timestamp, base offset of the batch that raised it): both columns increase.
    time_index: Vec<(i64, i64)>,
}

impl MemoryStorage {
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    fn with_partition<T>(
        &self,
        topic: &str,
        partition: i32,
        f: impl FnOnce(&mut Partition) -> Result<T>,
    ) -> Result<T> {
        let mut inner = self.inner.lock().map_err(|_| poisoned())?;
        let (_, partitions) = inner
            .topics
            .get_mut(topic)
            .ok_or_else(|| StorageError::UnknownTopic(topic.to_owned()))?;
        let p = usize::try_from(partition)
            .ok()
            .and_then(|i| partitions.get_mut(i))
            .ok_or_else(|| StorageError::UnknownPartition { topic: topic.to_owned(), partition })?;
        f(p)
    }

    fn with_topic(&self, name: &str, f: impl FnOnce(&mut Topic, &mut Vec<Partition>) -> Result<()>) -> Result<Topic> {
        let mut inner = self.inner.lock().map_err(|_| poisoned())?;
        let (topic, partitions) = inner
            .topics
            .get_mut(name)
            .ok_or_else(|| StorageError::UnknownTopic(name.to_owned()))?;
        f(topic, partitions)?;
        Ok(topic.clone())
    }
}

fn poisoned() -> StorageError {
    StorageError::Engine("memory engine lock poisoned by a panic".into())
}

impl Partition {
    fn offsets(&self) -> PartitionOffsets {
        PartitionOffsets { log_start: self.log_start, high_watermark: self.next_offset }
    }

    fn first_batch_from(&self, index: usize) -> Option<Batch> {
        let (_, base) = *self.time_index.get(index)?;
        let batch = self.batches.get(&base).cloned()?;
        // Entries for deleted batches are dropped by delete_records; a hole here would be a bug.
        Some(batch)
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    fn engine(&self) -> &'static str {
        "memory"
    }

    async fn create_topic(&self, spec: TopicSpec) -> Result<Topic> {
        if spec.partitions < 1 {
            return Err(StorageError::InvalidPartitions(format!("{} partitions", spec.partitions)));
        }
        let mut inner = self.inner.lock().map_err(|_| poisoned())?;
        if inner.topics.contains_key(&spec.name) {
            return Err(StorageError::TopicExists(spec.name));
        }
        let topic = Topic { id: Uuid::new_v4(), name: spec.name.clone(), partitions: spec.partitions, configs: spec.configs };
        let partitions = (0..spec.partitions).map(|_| Partition::default()).collect();
        inner.topics.insert(spec.name, (topic.clone(), partitions));
        Ok(topic)
    }

    async fn delete_topic(&self, name: &str) -> Result<Topic> {
        let mut inner = self.inner.lock().map_err(|_| poisoned())?;
        inner.topics.remove(name).map(|(t, _)| t).ok_or_else(|| StorageError::UnknownTopic(name.to_owned()))
    }

    async fn topics(&self) -> Result<Vec<Topic>> {
        let inner = self.inner.lock().map_err(|_| poisoned())?;
        Ok(inner.topics.values().map(|(t, _)| t.clone()).collect())
    }

    async fn topic(&self, name: &str) -> Result<Option<Topic>> {
        let inner = self.inner.lock().map_err(|_| poisoned())?;
        Ok(inner.topics.get(name).map(|(t, _)| t.clone()))
    }

    async fn create_partitions(&self, name: &str, partitions: i32) -> Result<Topic> {
        self.with_topic(name, |topic, parts| {
            if partitions <= topic.partitions {
                return Err(StorageError::InvalidPartitions(format!(
                    "topic {name:?} has {} partitions; it can only grow",
                    topic.partitions
                )));
            }
            parts.resize_with(partitions as usize, Partition::default);
            topic.partitions = partitions;
            Ok(())
        })
    }

    async fn set_topic_configs(&self, name: &str, configs: BTreeMap<String, String>) -> Result<Topic> {
        self.with_topic(name, |topic, _| {
            topic.configs = configs;
            Ok(())
        })
    }

    async fn append(&self, topic: &str, partition: i32, batch: Batch, producer: Option<ProducerState>) -> Result<AppendOutcome> {
        self.with_partition(topic, partition, |p| {
            let batch = batch.with_base_offset(p.next_offset);
            let base_offset = batch.base_offset();
            let max_ts = batch.max_timestamp();
            if p.time_index.last().is_none_or(|(ts, _)| max_ts > *ts) {
                p.time_index.push((max_ts, base_offset));
            }
            p.next_offset = batch.next_offset();
            p.batches.insert(base_offset, batch);
            if let Some(state) = producer {
                p.producers.insert(state.producer_id, state);
            }
            Ok(AppendOutcome { base_offset, high_watermark: p.next_offset })
        })
    }

    async fn read(&self, topic: &str, partition: i32, offset: i64, max_bytes: usize) -> Result<Vec<Batch>> {
        self.with_partition(topic, partition, |p| {
            check_in_range(offset, p.offsets())?;
            let start = p
                .batches
                .range(..=offset)
                .next_back()
                .filter(|(_, b)| b.last_offset() >= offset)
                .map_or(offset, |(base, _)| *base);
            Ok(take_within(p.batches.range(start..).map(|(_, b)| b.clone()), max_bytes))
        })
    }

    async fn offsets(&self, topic: &str, partition: i32) -> Result<PartitionOffsets> {
        self.with_partition(topic, partition, |p| Ok(p.offsets()))
    }

    async fn batch_at_time(&self, topic: &str, partition: i32, timestamp: i64) -> Result<Option<Batch>> {
        self.with_partition(topic, partition, |p| {
            let index = p.time_index.partition_point(|(ts, _)| *ts < timestamp);
            Ok(p.first_batch_from(index))
        })
    }

    async fn batch_with_max_timestamp(&self, topic: &str, partition: i32) -> Result<Option<Batch>> {
        self.with_partition(topic, partition, |p| Ok(p.time_index.len().checked_sub(1).and_then(|i| p.first_batch_from(i))))
    }

    async fn delete_records(&self, topic: &str, partition: i32, offset: i64) -> Result<i64> {
        self.with_partition(topic, partition, |p| {
            check_deletable(offset, p.offsets())?;
            if offset <= p.log_start {
                return Ok(p.log_start);
            }
            p.log_start = offset;
            let doomed: Vec<i64> = p.batches.range(..offset).filter(|(_, b)| b.last_offset() < offset).map(|(k, _)| *k).collect();
            for base in doomed {
                p.batches.remove(&base);
            }
            // The running max starts again from the first batch kept: a batch the deleted ones
            // outranked may raise it now.
            p.time_index = running_max_index(p.batches.values());
            Ok(offset)
        })
    }

    async fn compactable_ranges(&self, topic: &str, partition: i32) -> Result<Vec<LogRange>> {
        self.with_partition(topic, partition, |p| {
            // Every batch but the last, in chunks, as Postgres groups them.
            let before_last = p.batches.len().saturating_sub(1);
            Ok(chunk_ranges(p.batches.values().take(before_last).map(|b| (b.base_offset(), b.next_offset(), b.len() as u64))))
        })
    }

    async fn replace_range(&self, topic: &str, partition: i32, range: LogRange, batches: Vec<Batch>) -> Result<()> {
        check_tiling(range, &batches)?;
        self.with_partition(topic, partition, |p| {
            let old: Vec<i64> = p.batches.range(range.start..range.end).map(|(base, _)| *base).collect();
            let last_end = old.last().and_then(|base| p.batches.get(base)).map(Batch::next_offset);
            if old.first() != Some(&range.start) || last_end != Some(range.end) || p.next_offset == range.end {
                return Err(range_changed(range));
            }
            for base in old {
                p.batches.remove(&base);
            }
            for batch in batches {
                p.batches.insert(batch.base_offset(), batch);
            }
            p.time_index = running_max_index(p.batches.values());
            Ok(())
        })
    }

    async fn producers(&self, topic: &str, partition: i32) -> Result<Vec<ProducerState>> {
        self.with_partition(topic, partition, |p| Ok(p.producers.values().cloned().collect()))
    }

    async fn save_group(&self, group: GroupState) -> Result<()> {
        let mut inner = self.inner.lock().map_err(|_| poisoned())?;
        inner.groups.insert(group.group_id.clone(), group);
        Ok(())
    }

    async fn load_groups(&self) -> Result<Vec<GroupState>> {
        let inner = self.inner.lock().map_err(|_| poisoned())?;
        Ok(inner.groups.values().cloned().collect())
    }

    async fn delete_group(&self, group_id: &str) -> Result<()> {
        let mut inner = self.inner.lock().map_err(|_| poisoned())?;
        inner.groups.remove(group_id);
        inner.offsets.remove(group_id);
        Ok(())
    }

    async fn commit_offsets(&self, group_id: &str, offsets: Vec<CommittedOffset>) -> Result<()> {
        let mut inner = self.inner.lock().map_err(|_| poisoned())?;
        let stored = inner.offsets.entry(group_id.to_owned()).or_default();
        for offset in offsets {
            stored.insert((offset.topic.clone(), offset.partition), offset);
        }
        Ok(())
    }

    async fn committed_offsets(&self, group_id: &str) -> Result<Vec<CommittedOffset>> {
        let inner = self.inner.lock().map_err(|_| poisoned())?;
        Ok(inner.offsets.get(group_id).map(|o| o.values().cloned().collect()).unwrap_or_default())
    }

    async fn delete_offsets(&self, group_id: &str, partitions: &[(String, i32)]) -> Result<()> {
        let mut inner = self.inner.lock().map_err(|_| poisoned())?;
        if let Some(stored) = inner.offsets.get_mut(group_id) {
            for key in partitions {
                stored.remove(key);
            }
            if stored.is_empty() {
                inner.offsets.remove(group_id);
            }
        }
        Ok(())
    }

    async fn groups_with_offsets(&self) -> Result<Vec<String>> {
        let inner = self.inner.lock().map_err(|_| poisoned())?;
        Ok(inner.offsets.keys().cloned().collect())
    }

    async fn next_producer_id(&self) -> Result<i64> {
        let mut inner = self.inner.lock().map_err(|_| poisoned())?;
        let id = inner.next_producer_id;
        inner.next_producer_id += 1;
        Ok(id)
    }

    async fn document(&self, kind: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.lock().map_err(|_| poisoned())?.documents.get(&(kind.to_owned(), key.to_owned())).cloned())
    }

    async fn documents(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let inner = self.inner.lock().map_err(|_| poisoned())?;
        Ok(inner.documents.iter().filter(|((k, _), _)| k == kind).map(|((_, key), v)| (key.clone(), v.clone())).collect())
    }

    async fn update_document(&self, kind: &str, key: &str, update: &mut DocumentUpdate<'_>) -> Result<Option<Vec<u8>>> {
        let mut inner = self.inner.lock().map_err(|_| poisoned())?;
        let id = (kind.to_owned(), key.to_owned());
        let next = update(inner.documents.get(&id).map(Vec::as_slice))?;
        match &next {
            Some(bytes) => inner.documents.insert(id, bytes.clone()),
            None => inner.documents.remove(&id),
        };
        Ok(next)
    }

    async fn sync(&self) -> Result<()> {
        Ok(())
    }
}

/// Errs unless `offset` lies in `[log_start, high_watermark]`.
pub(crate) fn check_in_range(offset: i64, offsets: PartitionOffsets) -> Result<()> {
    if offset < offsets.log_start || offset > offsets.high_watermark {
        return Err(StorageError::OffsetOutOfRange {
            requested: offset,
            log_start: offsets.log_start,
            high_watermark: offsets.high_watermark,
        });
    }
    Ok(())
}

/// Errs when `offset` lies past the high watermark (or is negative): a delete below the log
/// start is a no-op, as in Kafka.
pub(crate) fn check_deletable(offset: i64, offsets: PartitionOffsets) -> Result<()> {
    if offset < 0 || offset > offsets.high_watermark {
        return Err(StorageError::OffsetOutOfRange {
            requested: offset,
            log_start: offsets.log_start,
            high_watermark: offsets.high_watermark,
        });
    }
    Ok(())
}

/// Takes batches while they fit in `max_bytes`, and always the first one.
pub(crate) fn take_within(batches: impl Iterator<Item = Batch>, max_bytes: usize) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut total = 0usize;
    for batch in batches {
        if !out.is_empty() && total + batch.len() > max_bytes {
            break;
        }
        total += batch.len();
        out.push(batch);
    }
    out
}
