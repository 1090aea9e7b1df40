//! The log cleaner: compaction of topics whose `cleanup.policy` has `compact`, as Kafka's
//! cleaner does it. Every `--log-cleaner-backoff-ms`, each broker looks at the partitions it
//! leads; one whose log is dirty enough (`min.cleanable.dirty.ratio` of its compactable bytes
//! written since the last cleaning), or whose oldest dirty record has waited longer than
//! `max.compaction.lag.ms` however little is dirty, is cleaned:
//!
//! 1. The latest offset of each key is gathered from the dirty part of the log (see
//!    [`latest_offsets`]), up to the first record that is younger than
//!    `min.compaction.lag.ms`, part of a transaction still open (the last stable offset), or
//!    in the part the engine never rewrites (the embedded engine's active segment, the last
//!    batch on Postgres).
//! 2. Every compactable range below there is rewritten without the records a later one of
//!    the same key replaces, records of aborted transactions and records without a key;
//!    tombstones go too once they were cleaned before and are older than
//!    `delete.retention.ms` (see [`rewrite`] for how offsets keep their places).
//! 3. The checkpoint (see [`checkpoint`]) moves to the end of what was gathered, with the time
//!    the first tombstone kept may go: a cleaning is due then even if nothing new was written.
//!
//! Engines replace a range atomically and readers keep the batches they read, so a consumer
//! in the middle of a cleaning sees the log before or after it, never a mix that loses a key.

mod checkpoint;
mod latest_offsets;
mod rewrite;

use std::sync::Arc;
use std::time::Instant;

use ductstream_storage::{Batch, LogRange, StorageError, Topic};

use self::checkpoint::Checkpoint;
use self::latest_offsets::LatestOffsets;
use crate::clock::now_ms;
use crate::records::RawRecord;
use crate::topic_config::{self, DELETE_RETENTION_MS, MAX_COMPACTION_LAG_MS, MIN_CLEANABLE_DIRTY_RATIO, MIN_COMPACTION_LAG_MS};
use crate::transactions::partition::AbortedTxn;
use crate::{Broker, BrokerError, Result};

pub use self::checkpoint::forget_topic;

/// Bytes asked of storage per read while the cleaner walks a range.
const READ_BYTES: usize = 4 << 20;

/// Runs until the broker shuts down, unless the cleaner is turned off.
pub async fn run(broker: Arc<Broker>) {
    if !broker.config.log_cleaner_enable {
        return;
    }
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = tokio::time::sleep(broker.config.log_cleaner_backoff) => {}
        }
        if let Err(e) = clean_all(&broker).await {
            tracing::warn!(error = %e, "log cleaner pass failed; trying again at the next one");
        }
    }
}

/// One pass over the compacted topics' partitions this broker leads.
pub async fn clean_all(broker: &Broker) -> Result<()> {
    for topic in broker.storage().topics().await? {
        if !topic_config::is_compacted(&topic.configs) {
            continue;
        }
        for partition in 0..topic.partitions {
            if !broker.cluster.leads(topic.id, partition) {
                continue;
            }
            match clean_partition(broker, &topic, partition).await {
                Ok(Some(done)) => {
                    broker.metrics.cleaned(done.cleaned_bytes, done.written_bytes, done.elapsed_ms);
                    tracing::info!(
                        topic = %topic.name, partition, cleaned_to = done.cleaned_to, keys = done.keys,
                        cleaned_bytes = done.cleaned_bytes, written_bytes = done.written_bytes, ms = done.elapsed_ms,
                        "compacted"
                    );
                }
                Ok(None) => {}
                // Retention or DeleteRecords moved the log under the cleaner: next pass.
                Err(BrokerError::Storage(StorageError::RangeChanged(reason))) => {
                    tracing::debug!(topic = %topic.name, partition, reason, "log changed while being cleaned");
                }
                Err(BrokerError::Storage(StorageError::UnknownTopic(_) | StorageError::UnknownPartition { .. })) => {}
                Err(e) => tracing::warn!(topic = %topic.name, partition, error = %e, "cannot clean partition"),
            }
        }
    }
    Ok(())
}

/// What one cleaning did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cleaned {
    pub cleaned_to: i64,
    pub keys: usize,
    /// The log the cleaning rewrote (or found nothing to drop in), before.
    pub cleaned_bytes: u64,
    /// The bytes of the ranges it wrote again, after.
    pub written_bytes: u64,
    pub elapsed_ms: u64,
}

/// The topic settings a cleaning follows.
struct Settings {
    now: i64,
    min_dirty_ratio: f64,
    delete_retention_ms: i64,
    /// Records with a timestamp after this are not compacted yet.
    lag_horizon: i64,
    /// A dirty record with a timestamp at or before this makes a cleaning due.
    overdue_horizon: Option<i64>,
}

impl Settings {
    fn of(topic: &Topic, now: i64) -> Settings {
        let ms = |name: &str| topic_config::number(&topic.configs, name) as i64;
        Settings {
            now,
            min_dirty_ratio: topic_config::number(&topic.configs, MIN_CLEANABLE_DIRTY_RATIO),
            delete_retention_ms: ms(DELETE_RETENTION_MS),
            lag_horizon: now.saturating_sub(ms(MIN_COMPACTION_LAG_MS)),
            overdue_horizon: Some(ms(MAX_COMPACTION_LAG_MS)).filter(|lag| *lag < i64::MAX).map(|lag| now.saturating_sub(lag)),
        }
    }

    /// When `tombstone` may go, once a cleaning has passed it.
    fn tombstone_due(&self, tombstone: &RawRecord) -> i64 {
        tombstone.timestamp.saturating_add(self.delete_retention_ms)
    }
}

/// Cleans one partition if it is dirty enough; `None` when there was nothing to do.
pub async fn clean_partition(broker: &Broker, topic: &Topic, partition: i32) -> Result<Option<Cleaned>> {
    let started = Instant::now();
    let storage = broker.storage();
    let settings = Settings::of(topic, now_ms());
    let offsets = broker.log.offsets(topic, partition).await?;
    let (stable, aborted) = broker.log.stable(topic, partition, offsets.log_start).await?;
    let ranges: Vec<LogRange> =
        storage.compactable_ranges(&topic.name, partition).await?.into_iter().take_while(|r| r.end <= stable).collect();
    let Checkpoint { cleaned_to, tombstones_due_ms } = checkpoint::load(storage.as_ref(), topic, partition).await?;
    let total: u64 = ranges.iter().map(|r| r.bytes).sum();
    let dirty: u64 = ranges.iter().map(|r| dirty_bytes(r, cleaned_to)).sum();
    let tombstones_due = tombstones_due_ms.is_some_and(|due| due <= settings.now);
    let dirty_enough = dirty > 0 && (dirty as f64) >= settings.min_dirty_ratio * total as f64;
    if !tombstones_due && !dirty_enough {
        let first_dirty = ranges.iter().find(|r| r.end > cleaned_to);
        let overdue = match (first_dirty, settings.overdue_horizon) {
            (Some(range), Some(horizon)) => {
                let batches = read_range(broker, topic, partition, *range, offsets.log_start).await?;
                batches.iter().find(|b| b.next_offset() > cleaned_to).is_some_and(|b| first_timestamp(b) <= horizon)
            }
            _ => false,
        };
        if !overdue {
            return Ok(None);
        }
    }

    let mut latest = LatestOffsets::new(broker.config.log_cleaner_dedupe_buffer_size);
    let mut gathered_to = cleaned_to;
    for range in ranges.iter().filter(|r| r.end > cleaned_to) {
        if latest.is_full() {
            break;
        }
        let batches = read_range(broker, topic, partition, *range, offsets.log_start).await?;
        if batches.iter().any(|b| b.max_timestamp() > settings.lag_horizon) {
            break;
        }
        for batch in batches.iter().filter(|b| !b.is_control()) {
            for record in crate::records::raw_records(batch)? {
                if let Some(key) = record.key.filter(|_| !is_aborted(batch, record.offset, &aborted)) {
                    latest.insert(key, record.offset);
                }
            }
        }
        gathered_to = range.end;
    }
    if gathered_to <= cleaned_to && !tombstones_due {
        return Ok(None);
    }

    let (mut cleaned_bytes, mut written_bytes) = (0u64, 0u64);
    let mut next_due: Option<i64> = None;
    for range in ranges.iter().filter(|r| r.end <= gathered_to) {
        let batches = read_range(broker, topic, partition, *range, offsets.log_start).await?;
        let before: u64 = batches.iter().map(|b| b.len() as u64).sum();
        let cleaned = rewrite::rewrite(&batches, |batch, record| {
            let kept = keeps(batch, record, &latest, &aborted, cleaned_to, &settings);
            if kept && record.is_tombstone {
                let due = settings.tombstone_due(record);
                next_due = Some(next_due.map_or(due, |d: i64| d.min(due)));
            }
            kept
        })?;
        let after: u64 = cleaned.iter().map(|b| b.len() as u64).sum();
        cleaned_bytes += before;
        if after < before {
            storage.replace_range(&topic.name, partition, *range, cleaned).await?;
            written_bytes += after;
        }
    }
    // A tombstone in the part just gathered counts as cleaned once from now on: it goes at a
    // later cleaning, which its due time starts even if nothing new is written.
    let next_due = next_due.map(|due| due.max(settings.now.saturating_add(1)));
    checkpoint::save(storage.as_ref(), topic, partition, Checkpoint { cleaned_to: gathered_to, tombstones_due_ms: next_due }).await?;
    Ok(Some(Cleaned {
        cleaned_to: gathered_to,
        keys: latest.len(),
        cleaned_bytes,
        written_bytes,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }))
}

/// The bytes of `range` written since the log was clean up to `cleaned_to`; for a range that
/// straddles it (Postgres groups batches by size, not by cleanings), the share of its offsets.
fn dirty_bytes(range: &LogRange, cleaned_to: i64) -> u64 {
    if range.start >= cleaned_to {
        range.bytes
    } else if range.end <= cleaned_to {
        0
    } else {
        let share = (range.end - cleaned_to) as f64 / (range.end - range.start) as f64;
        (range.bytes as f64 * share) as u64
    }
}

/// Whether a cleaning keeps `record` of `batch`.
fn keeps(batch: &Batch, record: &RawRecord, latest: &LatestOffsets, aborted: &[AbortedTxn], cleaned_to: i64, settings: &Settings) -> bool {
    if is_aborted(batch, record.offset, aborted) {
        return false;
    }
    // Kafka's cleaner drops records without a key too: nothing could replace them.
    let Some(key) = &record.key else { return false };
    if latest.get(key).is_some_and(|offset| offset > record.offset) {
        return false;
    }
    // A tombstone stays while consumers may still need to see the delete.
    !(record.is_tombstone && record.offset < cleaned_to && settings.tombstone_due(record) < settings.now)
}

fn is_aborted(batch: &Batch, offset: i64, aborted: &[AbortedTxn]) -> bool {
    batch.is_transactional()
        && aborted.iter().any(|a| a.producer_id == batch.producer_id() && (a.first_offset..=a.last_offset).contains(&offset))
}

/// The batches of `range`, which must tile it.
/// When a batch's first record was written (as its timestamps say).
fn first_timestamp(batch: &Batch) -> i64 {
    if batch.is_log_append_time() { batch.max_timestamp() } else { batch.base_timestamp() }
}

async fn read_range(broker: &Broker, topic: &Topic, partition: i32, range: LogRange, log_start: i64) -> Result<Vec<Batch>> {
    let storage = broker.storage();
    let mut out: Vec<Batch> = Vec::new();
    let mut at = range.start.max(log_start);
    while at < range.end {
        let batches = storage.read(&topic.name, partition, at, READ_BYTES).await?;
        if batches.is_empty() {
            break;
        }
        let before = at;
        for batch in batches.into_iter().take_while(|b| b.base_offset() < range.end) {
            at = batch.next_offset();
            out.push(batch);
        }
        if at == before {
            break;
        }
    }
    if out.first().map(Batch::base_offset) != Some(range.start) || out.last().map(Batch::next_offset) != Some(range.end) {
        return Err(BrokerError::Storage(StorageError::RangeChanged(format!(
            "offsets [{}, {}) no longer read back as one range",
            range.start, range.end
        ))));
    }
    Ok(out)
}
