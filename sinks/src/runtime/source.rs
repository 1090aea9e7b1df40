use std::time::Duration;

use async_trait::async_trait;

use super::Cut;
use crate::{Result, SinkRecord};

/// A topic and partition.
pub type TopicPartition = (String, i32);

/// What one read returned.
#[derive(Debug, Clone, Default)]
pub struct Read {
    /// Data records only (transaction markers are left out), in offset order.
    pub records: Vec<SinkRecord>,
    /// Where the next read starts: past every batch read, markers included.
    pub next_offset: i64,
    pub high_watermark: i64,
}

/// Where sinks read from and keep their progress: the broker's log and storage. Defined here
/// so that this crate does not depend on the broker; the broker implements it.
#[async_trait]
pub trait SinkSource: Send + Sync + 'static {
    /// Every topic's name, for sinks that select topics by pattern.
    async fn topics(&self) -> Result<Vec<String>>;

    /// The topic's partition count; None when it does not exist (yet).
    async fn partitions(&self, topic: &str) -> Result<Option<i32>>;

    /// Durable records from `offset`, about `max_bytes` of them (the first batch always whole).
    /// An offset below the log start reads from the log start.
    async fn read(&self, topic: &str, partition: i32, offset: i64, max_bytes: usize) -> Result<Read>;

    /// Returns when any of the partitions has records at or past its offset, or after `timeout`.
    async fn wait(&self, positions: &[(TopicPartition, i64)], timeout: Duration);

    /// The group's committed offsets.
    async fn committed(&self, group: &str) -> Result<Vec<(TopicPartition, i64)>>;

    /// Commits offsets for the group (durable when this returns).
    async fn commit(&self, group: &str, offsets: &[(TopicPartition, i64)]) -> Result<()>;

    /// The cuts recorded and not yet committed.
    async fn load_cuts(&self, sink_id: &str) -> Result<Vec<Cut>>;

    /// Replaces the recorded cuts (durable when this returns).
    async fn save_cuts(&self, sink_id: &str, cuts: &[Cut]) -> Result<()>;

    /// Appends records to the dead-letter topic (created when missing), durably.
    async fn dead_letter(&self, topic: &str, records: Vec<SinkRecord>) -> Result<()>;
}
