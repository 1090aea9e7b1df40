//! The transaction coordinator (KIP-98, with KIP-360's epoch bumps): transactional ids, their
//! producer ids and epochs, the partitions and groups of the open transaction, and the end of
//! each transaction: a marker written to every partition it touched (through the partition
//! log, like any append), then the offsets it committed stored, then the outcome recorded.
//!
//! Every step is an atomic update of the id's storage document ([`super::record`]), and the
//! marker-writing phase is recorded before it starts (`PrepareCommit`, `PrepareAbort`), so a
//! broker that dies mid-way leaves a transaction that the next one to look at completes (at
//! start, at the next InitProducerId or EndTxn of the id, or after [`STALLED_PREPARE_MS`]).
//! Writing a marker twice is harmless: the second finds no open transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ductstream_storage::{CommittedOffset, Storage};
use kafka_protocol::error::ResponseError;

use super::record::{TxnRecord, TxnState, KIND};
use crate::clock::now_ms;
use crate::log::Log;
use crate::{batch_builder, documents, BrokerError, Result};

/// Kafka's `transaction.max.timeout.ms` default.
pub const MAX_TIMEOUT_MS: i32 = 900_000;
/// A transaction left preparing this long (its broker died writing markers) is completed by
/// whichever broker looks.
const STALLED_PREPARE_MS: i64 = 10_000;

pub struct TxnCoordinator {
    storage: Arc<dyn Storage>,
    log: Arc<Log>,
    /// The records this broker last read or wrote: produce checks use them before storage.
    cache: Mutex<HashMap<String, TxnRecord>>,
}

/// The error an outdated producer gets: PRODUCER_FENCED for request versions that know it,
/// INVALID_PRODUCER_EPOCH for older ones (as Kafka answers).
#[derive(Debug, Clone, Copy)]
pub struct Fenced(pub ResponseError);

fn error(code: ResponseError, message: impl Into<String>) -> BrokerError {
    BrokerError::kafka(code, message.into())
}

fn check_producer(record: &TxnRecord, producer_id: i64, epoch: i16, fenced: Fenced) -> Result<()> {
    if record.producer_id != producer_id {
        return Err(error(
            ResponseError::InvalidProducerIdMapping,
            format!("transactional id {:?} has producer id {}, not {producer_id}", record.transactional_id, record.producer_id),
        ));
    }
    if record.epoch != epoch {
        return Err(error(fenced.0, format!("producer epoch {epoch} is not the current epoch {} of {:?}", record.epoch, record.transactional_id)));
    }
    Ok(())
}

fn unknown(id: &str) -> BrokerError {
    error(ResponseError::InvalidProducerIdMapping, format!("transactional id {id:?} has no producer id: call InitProducerId first"))
}

impl TxnCoordinator {
    pub fn new(storage: Arc<dyn Storage>, log: Arc<Log>) -> Arc<TxnCoordinator> {
        Arc::new(TxnCoordinator { storage, log, cache: Mutex::new(HashMap::new()) })
    }

    fn remember(&self, record: &TxnRecord) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(record.transactional_id.clone(), record.clone());
        }
    }

    async fn load(&self, id: &str) -> Result<Option<TxnRecord>> {
        let record: Option<TxnRecord> = match self.storage.document(KIND, id).await? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| BrokerError::Storage(e.into()))?,
            None => None,
        };
        if let Some(r) = &record {
            self.remember(r);
        }
        Ok(record)
    }

    /// Changes the id's record atomically; a missing record is INVALID_PRODUCER_ID_MAPPING.
    async fn update<R: Send>(&self, id: &str, mut f: impl FnMut(&mut TxnRecord) -> Result<R> + Send) -> Result<(TxnRecord, R)> {
        let (record, answer) = documents::upsert(self.storage.as_ref(), KIND, id, |slot: &mut Option<TxnRecord>| match slot {
            Some(record) => f(record),
            None => Err(unknown(id)),
        })
        .await?;
        let record = record.ok_or_else(|| unknown(id))?;
        self.remember(&record);
        Ok((record, answer))
    }

    /// InitProducerId with a transactional id: completes or aborts what the id left open
    /// (fencing the producer that left it), then hands out the id's producer id with the next
    /// epoch. `expected` is the producer id and epoch a KIP-360 client re-initialising names.
    pub async fn init_producer_id(&self, id: &str, timeout_ms: i32, expected: Option<(i64, i16)>, fenced: Fenced) -> Result<(i64, i16)> {
        if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(error(
                ResponseError::InvalidTransactionTimeout,
                format!("transaction timeout {timeout_ms} ms is outside 1..={MAX_TIMEOUT_MS} (transaction.max.timeout.ms)"),
            ));
        }
        for _ in 0..10 {
            let Some(current) = self.load(id).await? else {
                let producer_id = self.storage.next_producer_id().await?;
                let now = now_ms();
                let (stored, created) = documents::upsert(self.storage.as_ref(), KIND, id, |slot: &mut Option<TxnRecord>| {
                    if slot.is_some() {
                        return Ok(false);
                    }
                    let mut record = TxnRecord::new(id, producer_id, timeout_ms, now);
                    record.epoch = 0;
                    *slot = Some(record);
                    Ok(true)
                })
                .await?;
                if created && let Some(record) = stored {
                    self.remember(&record);
                    tracing::info!(transactional_id = id, producer_id, "new transactional id");
                    return Ok((record.producer_id, record.epoch));
                }
                continue;
            };
            if current.state.is_preparing() {
                self.finish(current).await?;
                continue;
            }
            if current.state == TxnState::Ongoing {
                self.abort_fenced(&current).await?;
                continue;
            }
            if let Some((producer_id, epoch)) = expected {
                let bumped_by_abort = current.state == TxnState::CompleteAbort && epoch == current.epoch - 1;
                if producer_id != current.producer_id || (epoch != current.epoch && !bumped_by_abort) {
                    return Err(error(fenced.0, format!("producer {producer_id} epoch {epoch} is not the current producer of {id:?}")));
                }
            }
            let allocated = if current.epoch >= i16::MAX - 1 { Some(self.storage.next_producer_id().await?) } else { None };
            let now = now_ms();
            let (record, bumped) = self.update(id, |r| {
                if r.producer_id != current.producer_id || r.epoch != current.epoch || !r.state.is_idle() {
                    return Ok(false);
                }
                match allocated {
                    Some(producer_id) => {
                        r.producer_id = producer_id;
                        r.epoch = 0;
                    }
                    None => r.epoch += 1,
                }
                r.state = TxnState::Empty;
                r.timeout_ms = timeout_ms;
                r.updated_ms = now;
                Ok(true)
            })
            .await?;
            if bumped {
                return Ok((record.producer_id, record.epoch));
            }
        }
        Err(error(ResponseError::ConcurrentTransactions, format!("transactional id {id:?} is changing: retry")))
    }

    /// AddPartitionsToTxn: the partitions join the open transaction (which this begins).
    pub async fn add_partitions(&self, id: &str, producer_id: i64, epoch: i16, partitions: &[(String, i32)], fenced: Fenced) -> Result<()> {
        let now = now_ms();
        self.update(id, |r| {
            check_producer(r, producer_id, epoch, fenced)?;
            if r.state.is_preparing() {
                return Err(error(ResponseError::ConcurrentTransactions, "the last transaction is still ending"));
            }
            r.begin(now);
            r.partitions.extend(partitions.iter().cloned());
            r.updated_ms = now;
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// AddOffsetsToTxn: the group's offsets are committed with the transaction.
    pub async fn add_offsets(&self, id: &str, producer_id: i64, epoch: i16, group: &str, fenced: Fenced) -> Result<()> {
        let now = now_ms();
        self.update(id, |r| {
            check_producer(r, producer_id, epoch, fenced)?;
            if r.state.is_preparing() {
                return Err(error(ResponseError::ConcurrentTransactions, "the last transaction is still ending"));
            }
            r.begin(now);
            r.groups.insert(group.to_owned());
            r.updated_ms = now;
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// TxnOffsetCommit: offsets held with the transaction until it commits (dropped if it
    /// aborts). The group must have been added with AddOffsetsToTxn.
    pub async fn commit_offsets(&self, id: &str, producer_id: i64, epoch: i16, group: &str, offsets: Vec<CommittedOffset>, fenced: Fenced) -> Result<()> {
        let now = now_ms();
        self.update(id, |r| {
            check_producer(r, producer_id, epoch, fenced)?;
            if r.state != TxnState::Ongoing || !r.groups.contains(group) {
                return Err(error(ResponseError::InvalidTxnState, format!("group {group:?} is not in the transaction (AddOffsetsToTxn first)")));
            }
            let pending = r.pending_offsets.entry(group.to_owned()).or_default();
            for offset in &offsets {
                pending.retain(|p| (p.topic.as_str(), p.partition) != (offset.topic.as_str(), offset.partition));
                pending.push(offset.clone());
            }
            r.updated_ms = now;
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// EndTxn: commits or aborts the open transaction. A retry of an end already done
    /// succeeds; ending with nothing open, or the other way than a transaction already ended,
    /// is INVALID_TXN_STATE.
    pub async fn end(&self, id: &str, producer_id: i64, epoch: i16, commit: bool, fenced: Fenced) -> Result<()> {
        let target = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
        let done = if commit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        let now = now_ms();
        let (record, proceed) = self
            .update(id, |r| {
                check_producer(r, producer_id, epoch, fenced)?;
                match r.state {
                    TxnState::Ongoing => {
                        r.state = target;
                        r.updated_ms = now;
                        Ok(true)
                    }
                    state if state == target => Ok(true),
                    state if state == done => Ok(false),
                    state => Err(error(
                        ResponseError::InvalidTxnState,
                        format!("cannot {} transactional id {id:?}: it is {}", if commit { "commit" } else { "abort" }, state.name()),
                    )),
                }
            })
            .await?;
        if proceed {
            self.finish(record).await?;
        }
        Ok(())
    }

    /// Writes the markers of a preparing transaction, stores its offsets if it commits, and
    /// records it complete.
    async fn finish(&self, record: TxnRecord) -> Result<()> {
        let commit = record.state == TxnState::PrepareCommit;
        for (topic, partition) in &record.partitions {
            self.write_marker(topic, *partition, record.producer_id, record.epoch, commit).await?;
        }
        if commit {
            for (group, offsets) in &record.pending_offsets {
                self.storage.commit_offsets(group, offsets.clone()).await?;
            }
        }
        let now = now_ms();
        self.update(&record.transactional_id, |r| {
            if (r.producer_id, r.epoch, r.state) == (record.producer_id, record.epoch, record.state) {
                r.complete(now);
            }
            Ok(())
        })
        .await?;
        tracing::debug!(transactional_id = %record.transactional_id, commit, partitions = record.partitions.len(), "transaction ended");
        Ok(())
    }

    async fn write_marker(&self, topic: &str, partition: i32, producer_id: i64, epoch: i16, commit: bool) -> Result<()> {
        // A topic deleted since has nothing left to mark.
        let Some(topic) = self.storage.topic(topic).await?.filter(|t| (0..t.partitions).contains(&partition)) else {
            return Ok(());
        };
        let marker = batch_builder::transaction_marker(producer_id, epoch, commit, now_ms())?;
        let turn = self.log.take_turn(&topic, partition).await?;
        let appended = self.log.append(marker, turn).await?;
        appended.durable.wait().await.map_err(|e| error(ResponseError::KafkaStorageError, e))
    }

    /// Aborts an open transaction with the next epoch, so its producer is fenced.
    async fn abort_fenced(&self, open: &TxnRecord) -> Result<()> {
        let now = now_ms();
        let (record, aborting) = self
            .update(&open.transactional_id, |r| {
                if (r.producer_id, r.epoch, r.state) != (open.producer_id, open.epoch, TxnState::Ongoing) {
                    return Ok(false);
                }
                r.epoch = r.epoch.saturating_add(1);
                r.state = TxnState::PrepareAbort;
                r.updated_ms = now;
                Ok(true)
            })
            .await?;
        if aborting {
            tracing::info!(transactional_id = %record.transactional_id, epoch = record.epoch, "aborting an open transaction and fencing its producer");
            self.finish(record).await?;
        }
        Ok(())
    }

    /// Aborts transactions past their timeout and completes those a broker left preparing,
    /// among the ids `mine` says this broker coordinates.
    pub async fn expire(&self, mine: impl Fn(&str) -> bool) -> Result<()> {
        let now = now_ms();
        for (id, bytes) in self.storage.documents(KIND).await? {
            if !mine(&id) {
                continue;
            }
            let Ok(Some(record)) = serde_json::from_slice::<Option<TxnRecord>>(&bytes) else { continue };
            if record.state == TxnState::Ongoing && now - record.started_ms > i64::from(record.timeout_ms) {
                tracing::info!(transactional_id = %id, timeout_ms = record.timeout_ms, "transaction timed out");
                self.abort_fenced(&record).await?;
            } else if record.state.is_preparing() && now - record.updated_ms > STALLED_PREPARE_MS {
                self.finish(record).await?;
            }
        }
        Ok(())
    }

    /// Whether a transactional batch may be appended: its producer is the id's current one
    /// and the partition is in the open transaction.
    pub async fn check_produce(&self, id: &str, producer_id: i64, epoch: i16, topic: &str, partition: i32) -> Result<()> {
        let admits = |r: &TxnRecord| {
            r.producer_id == producer_id && r.epoch == epoch && r.state == TxnState::Ongoing && r.partitions.contains(&(topic.to_owned(), partition))
        };
        let cached = self.cache.lock().ok().and_then(|c| c.get(id).cloned());
        if cached.as_ref().is_some_and(admits) {
            return Ok(());
        }
        let record = self.load(id).await?.ok_or_else(|| unknown(id))?;
        if record.producer_id != producer_id {
            return Err(unknown(id));
        }
        if epoch < record.epoch {
            return Err(error(ResponseError::InvalidProducerEpoch, format!("producer epoch {epoch} was fenced by epoch {}", record.epoch)));
        }
        if !admits(&record) {
            return Err(error(
                ResponseError::InvalidTxnState,
                format!("partition {topic}-{partition} is not in an open transaction of {id:?} (AddPartitionsToTxn first)"),
            ));
        }
        Ok(())
    }

    /// The records of these ids (`None` for unknown ones).
    pub async fn describe(&self, ids: &[String]) -> Result<Vec<(String, Option<TxnRecord>)>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push((id.clone(), self.load(id).await?));
        }
        Ok(out)
    }

    /// The partitions whose offsets for `group` an unfinished transaction holds.
    pub async fn pending_offsets(&self, group: &str) -> Result<std::collections::HashSet<(String, i32)>> {
        let mut out = std::collections::HashSet::new();
        for record in self.list().await? {
            if matches!(record.state, TxnState::Ongoing | TxnState::PrepareCommit)
                && let Some(offsets) = record.pending_offsets.get(group)
            {
                out.extend(offsets.iter().map(|o| (o.topic.clone(), o.partition)));
            }
        }
        Ok(out)
    }

    /// Every transactional id's record.
    pub async fn list(&self) -> Result<Vec<TxnRecord>> {
        let documents = self.storage.documents(KIND).await?;
        Ok(documents.into_iter().filter_map(|(_, bytes)| serde_json::from_slice::<Option<TxnRecord>>(&bytes).ok().flatten()).collect())
    }
}

/// Runs [`TxnCoordinator::expire`] every second for the ids this broker coordinates.
pub async fn run(broker: Arc<crate::Broker>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = broker.shutdown.cancelled() => return,
        }
        let cluster = &broker.cluster;
        if let Err(e) = broker.txns.expire(|id| cluster.coordinates(&super::coordinator_key(id))).await {
            tracing::warn!(error = %e, "cannot look for expired transactions");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ductstream_storage::MemoryStorage;
    use ductstream_storage::TopicSpec;

    const FENCED: Fenced = Fenced(ResponseError::ProducerFenced);

    async fn setup() -> Result<(Arc<TxnCoordinator>, Arc<Log>, ductstream_storage::Topic)> {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let topic = storage.create_topic(TopicSpec { name: "t".into(), partitions: 1, configs: Default::default() }).await?;
        let log = Arc::new(Log::new(storage.clone()));
        Ok((TxnCoordinator::new(storage, log.clone()), log, topic))
    }

    /// Moves the id's record back in time, as if its broker had died long ago.
    async fn age(coordinator: &TxnCoordinator, id: &str, state: Option<TxnState>) -> Result<()> {
        coordinator
            .update(id, |r| {
                r.started_ms = 0;
                r.updated_ms = 0;
                if let Some(state) = state {
                    r.state = state;
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }

    #[tokio::test]
    async fn a_transaction_left_preparing_is_completed_and_one_past_its_timeout_aborted() -> Result<()> {
        let (coordinator, log, topic) = setup().await?;
        let (pid, epoch) = coordinator.init_producer_id("a", 60_000, None, FENCED).await?;
        coordinator.add_partitions("a", pid, epoch, &[("t".into(), 0)], FENCED).await?;
        // EndTxn recorded PrepareCommit, then the broker died before the markers.
        age(&coordinator, "a", Some(TxnState::PrepareCommit)).await?;
        coordinator.expire(|_| true).await?;
        let record = coordinator.load("a").await?.ok_or_else(|| unknown("a"))?;
        assert_eq!((record.state, record.epoch), (TxnState::CompleteCommit, epoch));
        assert_eq!(log.offsets(&topic, 0).await?.high_watermark, 1, "the commit marker was written");

        coordinator.add_partitions("a", pid, epoch, &[("t".into(), 0)], FENCED).await?;
        age(&coordinator, "a", None).await?;
        coordinator.expire(|_| true).await?;
        let record = coordinator.load("a").await?.ok_or_else(|| unknown("a"))?;
        assert_eq!((record.state, record.epoch), (TxnState::CompleteAbort, epoch + 1), "aborted with the next epoch");
        assert_eq!(log.offsets(&topic, 0).await?.high_watermark, 2);
        let fenced = coordinator.end("a", pid, epoch, true, FENCED).await.map_err(|e| e.code());
        assert_eq!(fenced.err(), Some(ResponseError::ProducerFenced));
        Ok(())
    }

    #[tokio::test]
    async fn ids_coordinated_elsewhere_are_left_alone() -> Result<()> {
        let (coordinator, _, _) = setup().await?;
        let (pid, epoch) = coordinator.init_producer_id("b", 60_000, None, FENCED).await?;
        coordinator.add_partitions("b", pid, epoch, &[("t".into(), 0)], FENCED).await?;
        age(&coordinator, "b", None).await?;
        coordinator.expire(|_| false).await?;
        let record = coordinator.load("b").await?.ok_or_else(|| unknown("b"))?;
        assert_eq!(record.state, TxnState::Ongoing);
        Ok(())
    }
}
