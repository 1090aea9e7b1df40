use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{BatchLimits, MemoryBudget, TopicPartition};
use crate::SinkRecord;

/// One partition of a sink: where it reads next, what it committed, and the records it holds
/// until they are cut into a batch.
pub(super) struct PartitionCursor {
    pub tp: TopicPartition,
    /// The next offset to read.
    pub next: i64,
    buffer: VecDeque<SinkRecord>,
    buffered_bytes: usize,
    /// When the oldest buffered record arrived.
    oldest: Option<Instant>,
    budget: MemoryBudget,
}

/// Records cut from a cursor: they cover offsets `first..next`.
pub(super) struct Taken {
    pub records: Vec<SinkRecord>,
    pub first: i64,
    pub next: i64,
    pub bytes: usize,
}

impl PartitionCursor {
    pub fn new(tp: TopicPartition, next: i64, budget: MemoryBudget) -> PartitionCursor {
        PartitionCursor { tp, next, buffer: VecDeque::new(), buffered_bytes: 0, oldest: None, budget }
    }

    pub fn wants_more(&self, limits: &BatchLimits) -> bool {
        self.buffer.len() < limits.records && self.buffered_bytes < limits.bytes
    }

    /// Bytes held in the buffer.
    pub fn buffered(&self) -> usize {
        self.buffered_bytes
    }

    pub fn room(&self, limits: &BatchLimits) -> usize {
        limits.bytes.saturating_sub(self.buffered_bytes)
    }

    /// Whether a batch should be cut now: full, or its oldest record waited long enough.
    pub fn ready(&self, limits: &BatchLimits, now: Instant) -> bool {
        !self.buffer.is_empty() && (!self.wants_more(limits) || self.oldest.is_some_and(|t| now.duration_since(t) >= limits.interval))
    }

    /// How long until the oldest buffered record's interval runs out.
    pub fn until_due(&self, limits: &BatchLimits, now: Instant) -> Option<Duration> {
        self.oldest.map(|t| (t + limits.interval).saturating_duration_since(now))
    }

    pub fn push(&mut self, records: Vec<SinkRecord>, next: i64) {
        if !records.is_empty() && self.oldest.is_none() {
            self.oldest = Some(Instant::now());
        }
        for r in records {
            let size = r.size();
            self.budget.hold(size);
            self.buffered_bytes += size;
            self.buffer.push_back(r);
        }
        self.next = self.next.max(next);
    }

    /// Takes the records of one batch within `limits` (at least one). When the buffer empties,
    /// the batch also covers what the reads skipped after its last record (transaction
    /// markers), so committing it moves past them.
    pub fn take(&mut self, limits: &BatchLimits) -> Option<Taken> {
        let first = self.buffer.front()?.offset;
        let mut records = Vec::new();
        let mut bytes = 0;
        while let Some(r) = self.buffer.front() {
            let size = r.size();
            if !records.is_empty() && (records.len() >= limits.records || bytes + size > limits.bytes) {
                break;
            }
            bytes += size;
            records.extend(self.buffer.pop_front());
        }
        let last = records.last().map_or(first, |r| r.offset);
        let next = if self.buffer.is_empty() { self.next.max(last + 1) } else { last + 1 };
        self.buffered_bytes -= bytes;
        self.oldest = if self.buffer.is_empty() { None } else { Some(Instant::now()) };
        Some(Taken { records, first, next, bytes })
    }

    /// Gives back the budget a written batch held.
    pub fn release(&self, bytes: usize) {
        self.budget.release(bytes);
    }
}

impl Drop for PartitionCursor {
    fn drop(&mut self) {
        self.budget.release(self.buffered_bytes);
    }
}
