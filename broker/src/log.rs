//! The partition log: the one path every write takes.
//!
//! It validates idempotent producers' sequences, appends through [`Storage`], hands the write
//! to the group committer, and publishes each partition's durable high watermark so that fetch
//! long polls wake on appends rather than polling.
//!
//! Appends queue per partition in the order their turns were taken (request order). One
//! drain at a time writes what is queued: every batch waiting in line goes to storage in one
//! `append_many`, so while storage is busy with one write the next requests' batches gather
//! and share the next (one COPY on Postgres instead of one write per batch). On stores that
//! write several partitions in one transaction, the [`Gatherer`] joins the partitions' groups.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ductstream_storage::{Batch, PartitionOffsets, PartitionWrite, ProducerState, Storage, Topic};
use kafka_protocol::error::ResponseError;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::committer::{Committer, Durable};
use crate::gatherer::Gatherer;
use crate::idempotence::{self, Sequenced};
use crate::transactions::partition::{self as txn_partition, AbortedTxn, PartitionTxns, TxnEvent};
use crate::{BrokerError, Result};

type PartitionTable = HashMap<(Uuid, i32), Arc<PartitionState>>;

/// Most batches, and bytes, one drain hands to storage at once.
const GROUP_BATCHES: usize = 1_000;
const GROUP_BYTES: usize = 16 << 20;

pub struct Log {
    appender: Arc<Appender>,
    partitions: Mutex<PartitionTable>,
    /// Bumped when bounds learnt from other brokers may have been missed (the Postgres
    /// notifications were lost for a while): each partition then reads its bounds again.
    bounds_epoch: AtomicU64,
}

/// What writing a queued group needs; shared with the turns, which may start a drain.
struct Appender {
    storage: Arc<dyn Storage>,
    /// Bumped when partition leadership may have moved: cached writer state (next offset,
    /// idempotent producers) is then reloaded from storage before the next append.
    leadership_epoch: AtomicU64,
    committer: Arc<Committer>,
    /// For stores that write several partitions in one transaction.
    gatherer: Option<Arc<Gatherer>>,
}

/// What the broker keeps in memory for a partition it serves.
pub struct PartitionState {
    /// The durable high watermark: consumers see offsets below it.
    high_watermark: watch::Sender<i64>,
    /// The log start as last stored or notified, so fetches need not ask storage; it only
    /// grows. Trusted while `bounds_epoch` matches the log's.
    log_start: AtomicI64,
    bounds_epoch: AtomicU64,
    /// Held while a group is written; loaded on first use.
    writer: tokio::sync::Mutex<Option<WriterState>>,
    queue: Mutex<Queue>,
    /// Open and aborted transactions; changed by appends under the writer lock.
    txns: Mutex<PartitionTxns>,
    /// Where this broker's own appends have reached: a notice of a higher high watermark
    /// (a shared store tells every broker of every append) comes from another writer.
    local_end: AtomicI64,
    /// Another writer appended: the writer state is read again before the next append,
    external_append: std::sync::atomic::AtomicBool,
    /// and the transactions before they are next asked for.
    external_txns: std::sync::atomic::AtomicBool,
}

/// Appends in line, by turn number.
#[derive(Default)]
struct Queue {
    next_turn: u64,
    /// The turn the next write starts at.
    next_write: u64,
    /// Batches handed in, by turn; `None` for a turn given up without a batch.
    waiting: BTreeMap<u64, Option<Queued>>,
    /// A drain is running: it will see what is added now.
    draining: bool,
}

struct Queued {
    batch: Batch,
    reply: oneshot::Sender<Result<Appended>>,
}

/// A place in a partition's line of appends, taken in request order. Appends are written in
/// turn order whenever their batches arrive, so a connection can hand the next request to the
/// handler while earlier appends are still with storage.
pub struct Turn {
    appender: Arc<Appender>,
    state: Arc<PartitionState>,
    topic: Topic,
    partition: i32,
    seq: u64,
    used: bool,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if self.used {
            return;
        }
        // Given up: the line must not wait for it.
        if self.state.hand_in(self.seq, None) {
            spawn_drain(self.appender.clone(), self.topic.clone(), self.partition, self.state.clone());
        }
    }
}

struct WriterState {
    leadership_epoch: u64,
    next_offset: i64,
    /// For produce answers; DeleteRecords through this broker keeps it current.
    log_start: i64,
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

    fn raise_log_start(&self, log_start: i64) {
        self.log_start.fetch_max(log_start, Ordering::SeqCst);
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

    /// Puts a turn's batch (or its absence) in line; true when the caller must start a drain.
    fn hand_in(&self, seq: u64, queued: Option<Queued>) -> bool {
        let Ok(mut queue) = self.queue.lock() else { return false };
        queue.waiting.insert(seq, queued);
        !std::mem::replace(&mut queue.draining, true)
    }

    /// The batches whose turn has come, in order, within the group limits; an empty group
    /// ends the drain.
    fn next_group(&self) -> Vec<Queued> {
        let Ok(mut queue) = self.queue.lock() else { return Vec::new() };
        let mut group: Vec<Queued> = Vec::new();
        let mut bytes = 0;
        while group.len() < GROUP_BATCHES && bytes < GROUP_BYTES {
            let turn = queue.next_write;
            let Some(slot) = queue.waiting.remove(&turn) else { break };
            queue.next_write += 1;
            if let Some(queued) = slot {
                bytes += queued.batch.len();
                group.push(queued);
            }
        }
        if group.is_empty() {
            queue.draining = false;
        }
        group
    }
}

fn spawn_drain(appender: Arc<Appender>, topic: Topic, partition: i32, state: Arc<PartitionState>) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move { appender.drain(&topic, partition, &state).await });
        }
        Err(_) => tracing::error!(topic = %topic.name, partition, "no runtime to write queued appends on"),
    }
}

impl Appender {
    /// Writes queued groups until the line is empty or waits for a turn not handed in yet.
    async fn drain(&self, topic: &Topic, partition: i32, state: &Arc<PartitionState>) {
        loop {
            let group = state.next_group();
            if group.is_empty() {
                return;
            }
            self.write_group(topic, partition, state, group).await;
        }
    }

    /// Checks each batch's producer sequence, stores the accepted ones in one `append_many`
    /// and answers every batch.
    async fn write_group(&self, topic: &Topic, partition: i32, state: &Arc<PartitionState>, group: Vec<Queued>) {
        let mut writer = state.writer.lock().await;
        let epoch = self.leadership_epoch.load(Ordering::SeqCst);
        if state.external_append.swap(false, Ordering::SeqCst) {
            *writer = None;
        }
        if writer.as_ref().is_none_or(|w| w.leadership_epoch != epoch) {
            let loaded = match self.load_writer(topic, partition, epoch).await {
                Ok(loaded) => txn_partition::load(self.storage.as_ref(), topic, partition).await.map(|txns| (loaded, txns)),
                Err(e) => Err(e),
            };
            match loaded {
                Ok((loaded, txns)) => {
                    state.publish_high_watermark(loaded.next_offset);
                    state.local_end.fetch_max(loaded.next_offset, Ordering::SeqCst);
                    *writer = Some(loaded);
                    if let Ok(mut held) = state.txns.lock() {
                        *held = txns;
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for q in group {
                        let _ = q.reply.send(Err(BrokerError::kafka(e.code(), message.clone())));
                    }
                    return;
                }
            }
        }
        let Some(w) = writer.as_mut() else { return };

        // Sequence checks against the producers as they will be once the earlier batches of
        // the group are stored.
        let mut predicted = w.next_offset;
        let mut accepted: Vec<(Queued, Option<ProducerState>)> = Vec::with_capacity(group.len());
        let mut duplicates: Vec<(Queued, i64)> = Vec::new();
        for q in group {
            let producer = if q.batch.is_control() {
                // A transaction marker, from the coordinator: no sequence, but a newer epoch
                // (an abort that fences) fences the producer's older one here too.
                let pid = q.batch.producer_id();
                let epoch = q.batch.producer_epoch();
                match w.producers.get(&pid) {
                    Some(current) if current.epoch >= epoch => None,
                    _ => {
                        let fenced = ProducerState { producer_id: pid, epoch, batches: Vec::new() };
                        w.producers.insert(pid, fenced.clone());
                        Some(fenced)
                    }
                }
            } else if q.batch.has_producer_id() {
                match idempotence::check(w.producers.get(&q.batch.producer_id()), &q.batch, predicted) {
                    Err(e) => {
                        let _ = q.reply.send(Err(e));
                        continue;
                    }
                    Ok(Sequenced::Duplicate(base_offset)) => {
                        duplicates.push((q, base_offset));
                        continue;
                    }
                    Ok(Sequenced::Append(next)) => {
                        w.producers.insert(next.producer_id, next.clone());
                        Some(next)
                    }
                }
            } else {
                None
            };
            predicted += i64::from(q.batch.last_offset_delta()) + 1;
            accepted.push((q, producer));
        }

        let batches: Vec<_> = accepted.iter().map(|(q, p)| (q.batch.clone(), p.clone())).collect();
        let outcomes = match (&self.gatherer, accepted.is_empty()) {
            (_, true) => Vec::new(),
            (Some(gatherer), false) => gatherer.write(PartitionWrite { topic: topic.name.clone(), partition, batches }).await,
            (None, false) => self.storage.append_many(&topic.name, partition, batches).await,
        };
        let log_start = w.log_start;
        // Before anything else is awaited: the store's notice of these appends may come soon.
        if let Some(end) = outcomes.iter().filter_map(|o| o.as_ref().ok()).map(|o| o.high_watermark).max() {
            state.local_end.fetch_max(end, Ordering::SeqCst);
        }
        let mut outcomes = outcomes;
        if let Err(e) = self.track_transactions(topic, partition, state, &accepted, &outcomes, log_start).await {
            // The batches are stored, but what they opened or closed is not: answer them as
            // failed (the producer retries; the retry finds them stored) and read it all again.
            tracing::error!(topic = %topic.name, partition, error = %e, "cannot record the partition's transactions");
            let message = e.to_string();
            for outcome in outcomes.iter_mut() {
                *outcome = Err(ductstream_storage::StorageError::Engine(message.clone()));
            }
        }
        let mut failed = false;
        for ((q, _), outcome) in accepted.into_iter().zip(outcomes) {
            match outcome {
                Ok(outcome) => {
                    if outcome.base_offset != w.next_offset {
                        tracing::warn!(
                            topic = %topic.name, partition, expected = w.next_offset, got = outcome.base_offset,
                            "partition was appended to by another writer"
                        );
                    }
                    w.next_offset = outcome.high_watermark;
                    let durable = self.committer.register(state.clone(), outcome.high_watermark);
                    let _ = q.reply.send(Ok(Appended { base_offset: outcome.base_offset, log_start, durable }));
                }
                Err(e) => {
                    failed = true;
                    let _ = q.reply.send(Err(e.into()));
                }
            }
        }
        // Retries of stored batches are durable once what is stored so far is.
        for (q, base_offset) in duplicates {
            let durable = self.committer.register(state.clone(), w.next_offset);
            let _ = q.reply.send(Ok(Appended { base_offset, log_start, durable }));
        }
        if failed {
            // The producers' states and the next offset are unknown now: read them again.
            *writer = None;
        }
    }

    /// Takes the stored transactional batches and markers into the partition's transactions,
    /// and stores those before the appends are answered.
    async fn track_transactions(
        &self,
        topic: &Topic,
        partition: i32,
        state: &PartitionState,
        accepted: &[(Queued, Option<ProducerState>)],
        outcomes: &[ductstream_storage::Result<ductstream_storage::AppendOutcome>],
        log_start: i64,
    ) -> Result<()> {
        let events: Vec<TxnEvent> = accepted
            .iter()
            .zip(outcomes)
            .filter_map(|((q, _), outcome)| outcome.as_ref().ok().and_then(|o| TxnEvent::of(&q.batch, o.base_offset)))
            .collect();
        if events.is_empty() {
            return Ok(());
        }
        let stored = txn_partition::record(self.storage.as_ref(), topic, partition, &events, log_start).await?;
        *state.txns.lock().map_err(|_| BrokerError::kafka(ResponseError::UnknownServerError, "transactions lock poisoned"))? = stored;
        Ok(())
    }

    async fn load_writer(&self, topic: &Topic, partition: i32, epoch: u64) -> Result<WriterState> {
        let offsets = self.storage.offsets(&topic.name, partition).await?;
        let producers = self.storage.producers(&topic.name, partition).await?;
        Ok(WriterState {
            leadership_epoch: epoch,
            next_offset: offsets.high_watermark,
            log_start: offsets.log_start,
            producers: producers.into_iter().map(|p| (p.producer_id, p)).collect(),
        })
    }
}

impl Log {
    pub fn new(storage: Arc<dyn Storage>) -> Log {
        let committer = Committer::start(storage.clone());
        let gatherer = storage.groups_partitions().then(|| Gatherer::new(storage.clone()));
        let appender = Arc::new(Appender { storage, leadership_epoch: AtomicU64::new(0), committer, gatherer });
        Log { appender, partitions: Mutex::new(HashMap::new()), bounds_epoch: AtomicU64::new(0) }
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.appender.storage
    }

    /// The in-memory state of a partition of `topic`, created on first use.
    pub async fn partition(&self, topic: &Topic, partition: i32) -> Result<Arc<PartitionState>> {
        if let Some(state) = self.lock_partitions()?.get(&(topic.id, partition)) {
            return Ok(state.clone());
        }
        // Everything in storage when the partition is first opened has survived a restart.
        let epoch = self.bounds_epoch.load(Ordering::SeqCst);
        let offsets = self.storage().offsets(&topic.name, partition).await?;
        let txns = txn_partition::load(self.storage().as_ref(), topic, partition).await?;
        let state = Arc::new(PartitionState {
            high_watermark: watch::Sender::new(offsets.high_watermark),
            log_start: AtomicI64::new(offsets.log_start),
            bounds_epoch: AtomicU64::new(epoch),
            writer: tokio::sync::Mutex::new(None),
            queue: Mutex::new(Queue::default()),
            txns: Mutex::new(txns),
            local_end: AtomicI64::new(offsets.high_watermark),
            external_append: std::sync::atomic::AtomicBool::new(false),
            external_txns: std::sync::atomic::AtomicBool::new(false),
        });
        Ok(self.lock_partitions()?.entry((topic.id, partition)).or_insert(state).clone())
    }

    /// Another broker may have written to partitions this one now leads.
    pub fn leadership_changed(&self) {
        self.appender.leadership_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Raises a partition's bounds after another broker appended to the shared store or
    /// deleted records; a partition this broker has not opened yet learns its bounds when it
    /// is opened.
    pub fn publish_external(&self, topic_id: Uuid, partition: i32, offsets: PartitionOffsets) {
        let state = match self.partitions.lock() {
            Ok(map) => map.get(&(topic_id, partition)).cloned(),
            Err(_) => None,
        };
        if let Some(state) = state {
            state.raise_log_start(offsets.log_start);
            state.publish_high_watermark(offsets.high_watermark);
            if offsets.high_watermark > state.local_end.load(Ordering::SeqCst) {
                state.external_append.store(true, Ordering::SeqCst);
                state.external_txns.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Bounds published by other brokers may have been missed: every partition reads its
    /// bounds from storage again on next use.
    pub fn resync_bounds(&self) {
        self.bounds_epoch.fetch_add(1, Ordering::SeqCst);
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

    /// Takes the next place in the partition's line of appends.
    pub async fn take_turn(&self, topic: &Topic, partition: i32) -> Result<Turn> {
        let state = self.partition(topic, partition).await?;
        let seq = {
            let mut queue = state
                .queue
                .lock()
                .map_err(|_| BrokerError::kafka(ResponseError::UnknownServerError, "append queue lock poisoned"))?;
            queue.next_turn += 1;
            queue.next_turn - 1
        };
        Ok(Turn { appender: self.appender.clone(), state, topic: topic.clone(), partition, seq, used: false })
    }

    /// Appends one validated batch to `topic`/`partition` in `turn`'s place in line, and
    /// returns once it is stored (not yet durable: see [`Appended::durable`]).
    pub async fn append(&self, batch: Batch, mut turn: Turn) -> Result<Appended> {
        let (reply, answer) = oneshot::channel();
        turn.used = true;
        if turn.state.hand_in(turn.seq, Some(Queued { batch, reply })) {
            spawn_drain(turn.appender.clone(), turn.topic.clone(), turn.partition, turn.state.clone());
        }
        answer.await.map_err(|_| BrokerError::kafka(ResponseError::UnknownServerError, "the append was dropped unanswered"))?
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
        let mut batches = self.storage().read(&topic.name, partition, offset, max_bytes).await?;
        batches.retain(|b| b.base_offset() < offsets.high_watermark);
        Ok(ReadBatches { batches, offsets })
    }

    /// The log start and the durable high watermark, from memory unless bounds may have been
    /// missed since they were last read.
    pub async fn offsets(&self, topic: &Topic, partition: i32) -> Result<PartitionOffsets> {
        let state = self.partition(topic, partition).await?;
        let epoch = self.bounds_epoch.load(Ordering::SeqCst);
        if state.bounds_epoch.load(Ordering::SeqCst) != epoch {
            let stored = self.storage().offsets(&topic.name, partition).await?;
            state.raise_log_start(stored.log_start);
            state.publish_high_watermark(stored.high_watermark);
            state.bounds_epoch.store(epoch, Ordering::SeqCst);
        }
        Ok(PartitionOffsets { log_start: state.log_start.load(Ordering::SeqCst), high_watermark: state.high_watermark() })
    }

    /// The last stable offset (what read_committed consumers may read up to) and the aborted
    /// transactions with records in `[from, last stable offset)`.
    pub async fn stable(&self, topic: &Topic, partition: i32, from: i64) -> Result<(i64, Vec<AbortedTxn>)> {
        let high_watermark = self.offsets(topic, partition).await?.high_watermark;
        let state = self.partition(topic, partition).await?;
        if state.external_txns.swap(false, Ordering::SeqCst) {
            // Another broker may have opened or ended transactions here (a coordinator
            // writes markers to partitions other brokers lead).
            let stored = txn_partition::load(self.storage().as_ref(), topic, partition).await?;
            if let Ok(mut txns) = state.txns.lock() {
                *txns = stored;
            }
        }
        let txns = state.txns.lock().map_err(|_| BrokerError::kafka(ResponseError::UnknownServerError, "transactions lock poisoned"))?;
        let stable = txns.last_stable_offset(high_watermark);
        Ok((stable, if from < stable { txns.aborted_between(from, stable) } else { Vec::new() }))
    }

    /// Makes offsets below `offset` unreadable; `-1` means the high watermark.
    pub async fn delete_records(&self, topic: &Topic, partition: i32, offset: i64) -> Result<i64> {
        let state = self.partition(topic, partition).await?;
        let mut writer = state.writer.lock().await;
        let offset = if offset == -1 { state.high_watermark() } else { offset };
        if offset > state.high_watermark() {
            let stored = self.storage().offsets(&topic.name, partition).await?;
            return Err(BrokerError::Storage(ductstream_storage::StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: stored.log_start,
                high_watermark: state.high_watermark(),
            }));
        }
        let log_start = self.storage().delete_records(&topic.name, partition, offset).await?;
        state.raise_log_start(log_start);
        if let Some(w) = writer.as_mut() {
            w.log_start = log_start;
        }
        self.appender.committer.register(state.clone(), state.high_watermark()).wait().await.map_err(|e| {
            BrokerError::kafka(ResponseError::KafkaStorageError, e)
        })?;
        Ok(log_start)
    }
}
