use async_trait::async_trait;

use crate::runtime::TopicPartition;
use crate::{Result, SinkRecord};

/// A run of consecutive records of one partition, cut by the runtime. The same cut (topic,
/// partition, first and last offset) is handed again after a crash, with the same records, so
/// a destination that names what it writes after the cut overwrites instead of duplicating.
#[derive(Debug, Clone)]
pub struct SinkBatch {
    pub topic: String,
    pub partition: i32,
    /// The first and last offset the cut covers (records deleted meanwhile may be missing).
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: Vec<SinkRecord>,
}

/// A record the destination refused for good (the runtime dead-letters it, or pauses the
/// sink, as the sink's `on_error` option says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub offset: i64,
    pub reason: String,
}

/// A destination: it encodes and writes; batching, retries, offsets and dead letters are the
/// runtime's.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Connects and checks that the destination is there (the bucket exists, the credentials
    /// work), so that a bad destination fails the sink with a clear reason at once.
    async fn open(&mut self) -> Result<()>;

    /// Writes the batch; when this returns Ok the destination has every record except the
    /// refused ones. It may be called again with the same batch after an error or a crash.
    async fn write(&mut self, batch: &SinkBatch) -> Result<Vec<Refusal>>;

    /// Offsets the destination itself keeps for these partitions (a transactional destination
    /// commits them with the data). The runtime starts past whichever is further, the broker's
    /// or the destination's, so a batch the destination has is not written again even when
    /// the broker died before it committed.
    async fn committed(&mut self, partitions: &[TopicPartition]) -> Result<Vec<(TopicPartition, i64)>> {
        let _ = partitions;
        Ok(Vec::new())
    }

    /// Releases connections; nothing unwritten is left behind by `write`, so this loses
    /// nothing.
    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}
