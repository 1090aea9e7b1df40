use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::TopicPartition;

/// Where a running sink is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SinkPhase {
    #[default]
    Starting,
    Running,
    /// Retrying a batch the destination could not take for now.
    Retrying,
    Stopped,
    Failed(String),
}

/// One partition's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionLag {
    pub committed: i64,
    pub high_watermark: i64,
}

impl PartitionLag {
    pub fn lag(&self) -> i64 {
        (self.high_watermark - self.committed).max(0)
    }
}

/// A running sink's counters, shared between its runner and whoever shows them (the API,
/// metrics).
#[derive(Debug, Default)]
pub struct SinkStatus {
    records_written: AtomicU64,
    bytes_written: AtomicU64,
    batches_written: AtomicU64,
    retries: AtomicU64,
    dead_letters: AtomicU64,
    flush_micros_total: AtomicU64,
    flush_micros_max: AtomicU64,
    phase: Mutex<SinkPhase>,
    last_error: Mutex<String>,
    partitions: Mutex<BTreeMap<TopicPartition, PartitionLag>>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusSnapshot {
    pub phase: SinkPhase,
    pub records_written: u64,
    pub bytes_written: u64,
    pub batches_written: u64,
    pub retries: u64,
    pub dead_letters: u64,
    /// Mean and largest time to write a batch.
    pub flush_mean: Duration,
    pub flush_max: Duration,
    pub last_error: String,
    pub partitions: BTreeMap<TopicPartition, PartitionLag>,
}

impl SinkStatus {
    pub fn snapshot(&self) -> StatusSnapshot {
        let batches = self.batches_written.load(Ordering::Relaxed);
        let total = self.flush_micros_total.load(Ordering::Relaxed);
        StatusSnapshot {
            phase: self.phase.lock().map(|p| p.clone()).unwrap_or_default(),
            records_written: self.records_written.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            batches_written: batches,
            retries: self.retries.load(Ordering::Relaxed),
            dead_letters: self.dead_letters.load(Ordering::Relaxed),
            flush_mean: Duration::from_micros(total.checked_div(batches).unwrap_or(0)),
            flush_max: Duration::from_micros(self.flush_micros_max.load(Ordering::Relaxed)),
            last_error: self.last_error.lock().map(|e| e.clone()).unwrap_or_default(),
            partitions: self.partitions.lock().map(|p| p.clone()).unwrap_or_default(),
        }
    }

    pub(crate) fn set_phase(&self, phase: SinkPhase) {
        if let Ok(mut p) = self.phase.lock() {
            *p = phase;
        }
    }

    pub(crate) fn set_error(&self, error: &str) {
        if let Ok(mut e) = self.last_error.lock() {
            error.clone_into(&mut e);
        }
    }

    pub(crate) fn written(&self, records: usize, bytes: usize, took: Duration) {
        self.records_written.fetch_add(records as u64, Ordering::Relaxed);
        self.bytes_written.fetch_add(bytes as u64, Ordering::Relaxed);
        self.batches_written.fetch_add(1, Ordering::Relaxed);
        let micros = took.as_micros().min(u64::MAX as u128) as u64;
        self.flush_micros_total.fetch_add(micros, Ordering::Relaxed);
        self.flush_micros_max.fetch_max(micros, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dead_lettered(&self, n: usize) {
        self.dead_letters.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn set_committed(&self, tp: &TopicPartition, committed: i64) {
        if let Ok(mut p) = self.partitions.lock() {
            let entry = p.entry(tp.clone()).or_default();
            entry.committed = committed;
            entry.high_watermark = entry.high_watermark.max(committed);
        }
    }

    pub(crate) fn set_high_watermark(&self, tp: &TopicPartition, high_watermark: i64) {
        if let Ok(mut p) = self.partitions.lock() {
            p.entry(tp.clone()).or_default().high_watermark = high_watermark;
        }
    }
}
