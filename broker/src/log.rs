//! The partition log: the one path every write takes.
//!
//! It validates idempotent producers' sequences, appends through [`Storage`], hands the write
//! to the group committer, and publishes each partition's durable high watermark so that fetch
//! long polls wake on appends rather than polling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ductstream_storage::{Batch, PartitionOffsets, ProducerState, Storage, Topic};
use kafka_protocol::error::ResponseError;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::committer::{Committer, Durable};
use crate::idempotence::{self, Sequenced};
use crate::{BrokerError, Result};

type PartitionTable = HashMap<(Uuid, i32), Arc<PartitionState>>;

pub struct Log {
    storage: Arc<dyn Storage>,
    /// Bumped when partition leadership may have moved: cached writer state (next offset,
    /// idempotent producers) is then reloaded from storage before the next append.
    leadership_epoch: std::sync::atomic::AtomicU64,
    committer: Arc<Committer>,
    partitions: Mutex<PartitionTable>,
}

/// What the broker keeps in memory for a partition it serves.
pub struct PartitionState {
    /// The durable high watermark: consumers see offsets below it.
    high_watermark: watch::Sender<i64>,
    /// Held for the whole of an append; loaded on first use.
    writer: tokio::sync::Mutex<Option<WriterState>>,
    /// The turn of the latest queued append: the next one waits for it (see [`Turn`]).
    last_turn: Mutex<Option<oneshot::Receiver<()>>>,
}

/// A place in a partition's queue of appends, taken in request order. Appends wait for the
/// turn before theirs, so a connection can hand the next request to the handler while earlier
/// appends are still with storage, and batches still land in the order they were sent.
pub struct Turn {
    previous: Option<oneshot::Receiver<()>>,
    /// Dropped when this append is over, which lets the next one go.
    _done: oneshot::Sender<()>,
}

struct WriterState {
    leadership_epoch: u64,
    next_offset: i64,
    producers: HashMap<i64, ProducerState>,
}

/// The outcome of an append.
pub struct Appended {
    pub base_offset: i64,
    pub log_start: i64,
    pub durable: Durable,
}

/// Batches read from a partition, with its bounds at the time of reading.
pub struct ReadBatches {
    pub batches: Vec<Batch>,
    pub offsets: PartitionOffsets,
}

impl PartitionState {
    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    pub(crate) fn publish_high_watermark(&self, high_watermark: i64) {
        self.high_watermark.send_if_modified(|hw| {
            let raised = high_watermark > *hw;
            if raised {
                *hw = high_watermark;
            }
            raised
        });
    }
}

impl Log {
    pub fn new(storage: Arc<dyn Storage>) -> Log {
        let committer = Committer::start(storage.clone());
        Log { storage, leadership_epoch: Default::default(), committer, partitions: Mutex::new(HashMap::new()) }
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The in-memory state of a partition of `topic`, created on first use.
    pub async fn partition(&self, topic: &Topic, partition: i32) -> Result<Arc<PartitionState>> {
        if let Some(state) = self.lock_partitions()?.get(&(topic.id, partition)) {
            return Ok(state.clone());
        }
        // Everything in storage when the partition is first opened has survived a restart.
        let offsets = self.storage.offsets(&topic.name, partition).await?;
        let state = Arc::new(PartitionState {
            high_watermark: watch::Sender::new(offsets.high_watermark),
            writer: tokio::sync::Mutex::new(None),
            last_turn: Mutex::new(None),
        });
        Ok(self.lock_partitions()?.entry((topic.id, partition)).or_insert(state).clone())
    }

    /// Another broker may have written to partitions this one now leads.
    pub fn leadership_changed(&self) {
        self.leadership_epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Raises a partition's high watermark after another broker appended to the shared store;
    /// a partition this broker has not opened yet learns its bounds when it is opened.
    pub fn publish_external(&self, topic_id: Uuid, partition: i32, high_watermark: i64) {
        let state = match self.partitions.lock() {
            Ok(map) => map.get(&(topic_id, partition)).cloned(),
            Err(_) => None,
        };
        if let Some(state) = state {
            state.publish_high_watermark(high_watermark);
        }
    }

    /// Forgets the in-memory state of a deleted topic.
    pub fn forget_topic(&self, topic: &Topic) -> Result<()> {
        self.lock_partitions()?.retain(|(id, _), _| *id != topic.id);
        Ok(())
    }

    /// The durable high watermarks of every open partition, for metrics.
    pub fn open_partitions(&self) -> Vec<((Uuid, i32), i64)> {
        match self.partitions.lock() {
            Ok(map) => map.iter().map(|(k, v)| (*k, v.high_watermark())).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn lock_partitions(&self) -> Result<std::sync::MutexGuard<'_, PartitionTable>> {
        self.partitions.lock().map_err(|_| BrokerError::kafka(ResponseError::UnknownServerError, "partition table lock poisoned"))
    }

    /// Takes the next place in the partition's queue of appends.
    pub async fn take_turn(&self, topic: &Topic, partition: i32) -> Result<Turn> {
        let state = self.partition(topic, partition).await?;
        let (done, next) = oneshot::channel();
        let previous = state
            .last_turn
            .lock()
            .map_err(|_| BrokerError::kafka(ResponseError::UnknownServerError, "append queue lock poisoned"))?
            .replace(next);
        Ok(Turn { previous, _done: done })
    }

    /// Appends one validated batch to `topic`/`partition` once the appends queued before
    /// `turn` are over.
    pub async fn append(&self, topic: &Topic, partition: i32, batch: Batch, turn: Turn) -> Result<Appended> {
        if let Some(previous) = turn.previous {
            // Resolves (with an error) when the earlier append's turn is dropped: it is over.
            let _ = previous.await;
        }
        let state = self.partition(topic, partition).await?;
        let mut writer = state.writer.lock().await;
        let epoch = self.leadership_epoch.load(std::sync::atomic::Ordering::SeqCst);
        if writer.as_ref().is_none_or(|w| w.leadership_epoch != epoch) {
            let offsets = self.storage.offsets(&topic.name, partition).await?;
            let producers = self.storage.producers(&topic.name, partition).await?;
            state.publish_high_watermark(offsets.high_watermark);
            *writer = Some(WriterState {
                leadership_epoch: epoch,
                next_offset: offsets.high_watermark,
                producers: producers.into_iter().map(|p| (p.producer_id, p)).collect(),
            });
        }
        let Some(w) = writer.as_mut() else {
            return Err(BrokerError::kafka(ResponseError::UnknownServerError, "partition writer not loaded"));
        };

        let producer = if batch.has_producer_id() {
            match idempotence::check(w.producers.get(&batch.producer_id()), &batch, w.next_offset)? {
                Sequenced::Duplicate(base_offset) => {
                    let offsets = self.storage.offsets(&topic.name, partition).await?;
                    let durable = self.committer.register(state.clone(), w.next_offset);
                    return Ok(Appended { base_offset, log_start: offsets.log_start, durable });
                }
                Sequenced::Append(next) => Some(next),
            }
        } else {
            None
        };

        let outcome = self.storage.append(&topic.name, partition, batch, producer.clone()).await?;
        if outcome.base_offset != w.next_offset {
            tracing::warn!(
                topic = %topic.name, partition, expected = w.next_offset, got = outcome.base_offset,
                "partition was appended to by another writer"
            );
        }
        w.next_offset = outcome.high_watermark;
        if let Some(p) = producer {
            w.producers.insert(p.producer_id, p);
        }
        let durable = self.committer.register(state.clone(), outcome.high_watermark);
        let offsets = self.storage.offsets(&topic.name, partition).await?;
        Ok(Appended { base_offset: outcome.base_offset, log_start: offsets.log_start, durable })
    }

    /// Durable batches from the one holding `offset`, within `max_bytes` (the first batch
    /// always comes whole).
    pub async fn read(&self, topic: &Topic, partition: i32, offset: i64, max_bytes: usize) -> Result<ReadBatches> {
        let offsets = self.offsets(topic, partition).await?;
        if offset < offsets.log_start || offset > offsets.high_watermark {
            return Err(BrokerError::Storage(ductstream_storage::StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: offsets.log_start,
                high_watermark: offsets.high_watermark,
            }));
        }
        if offset == offsets.high_watermark {
            return Ok(ReadBatches { batches: Vec::new(), offsets });
        }
        let mut batches = self.storage.read(&topic.name, partition, offset, max_bytes).await?;
        batches.retain(|b| b.base_offset() < offsets.high_watermark);
        Ok(ReadBatches { batches, offsets })
    }

    /// The log start and the durable high watermark.
    pub async fn offsets(&self, topic: &Topic, partition: i32) -> Result<PartitionOffsets> {
        let state = self.partition(topic, partition).await?;
        let stored = self.storage.offsets(&topic.name, partition).await?;
        Ok(PartitionOffsets { log_start: stored.log_start, high_watermark: state.high_watermark() })
    }

    /// Makes offsets below `offset` unreadable; `-1` means the high watermark.
    pub async fn delete_records(&self, topic: &Topic, partition: i32, offset: i64) -> Result<i64> {
        let state = self.partition(topic, partition).await?;
        let _writer = state.writer.lock().await;
        let offset = if offset == -1 { state.high_watermark() } else { offset };
        if offset > state.high_watermark() {
            let stored = self.storage.offsets(&topic.name, partition).await?;
            return Err(BrokerError::Storage(ductstream_storage::StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: stored.log_start,
                high_watermark: state.high_watermark(),
            }));
        }
        let log_start = self.storage.delete_records(&topic.name, partition, offset).await?;
        self.committer.register(state.clone(), state.high_watermark()).wait().await.map_err(|e| {
            BrokerError::kafka(ResponseError::KafkaStorageError, e)
        })?;
        Ok(log_start)
    }
}
