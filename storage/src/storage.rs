use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::{AppendOutcome, Batch, PartitionOffsets, ProducerState, Result, Topic, TopicSpec};

/// Where topics, partitions and their batches live.
///
/// Offsets are assigned here, by `append`, so that every writer (the Kafka produce path, CDC,
/// several brokers on one database) shares one rule: a batch gets the partition's high
/// watermark as its base offset. Callers serialise appends to one partition themselves (the
/// broker's partition log holds a lock); engines stay correct without it, but retries are only
/// answered faithfully under it.
///
/// Writes become visible to `read` at once but are only guaranteed to survive a crash after
/// `sync` returns.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// A short name for logs and metrics ("memory", "sled").
    fn engine(&self) -> &'static str;

    async fn create_topic(&self, spec: TopicSpec) -> Result<Topic>;
    async fn delete_topic(&self, name: &str) -> Result<Topic>;
    async fn topics(&self) -> Result<Vec<Topic>>;
    async fn topic(&self, name: &str) -> Result<Option<Topic>>;
    /// Grows a topic to `partitions` partitions in total.
    async fn create_partitions(&self, name: &str, partitions: i32) -> Result<Topic>;
    /// Replaces the topic's config overrides.
    async fn set_topic_configs(&self, name: &str, configs: BTreeMap<String, String>) -> Result<Topic>;

    /// Stores `batch` at the end of the partition, with its base offset rewritten, and
    /// atomically with it the producer's new state when the batch came from an idempotent
    /// producer.
    async fn append(
        &self,
        topic: &str,
        partition: i32,
        batch: Batch,
        producer: Option<ProducerState>,
    ) -> Result<AppendOutcome>;

    /// Batches from the one holding `offset` onwards, whole, until `max_bytes` would be passed;
    /// the first batch is returned even if it alone is larger. `offset == high_watermark` gives
    /// nothing; an offset outside `[log_start, high_watermark]` is `OffsetOutOfRange`.
    async fn read(&self, topic: &str, partition: i32, offset: i64, max_bytes: usize) -> Result<Vec<Batch>>;

    async fn offsets(&self, topic: &str, partition: i32) -> Result<PartitionOffsets>;

    /// The first batch whose max timestamp is at or after `timestamp`, if any.
    async fn batch_at_time(&self, topic: &str, partition: i32, timestamp: i64) -> Result<Option<Batch>>;

    /// The batch holding the partition's largest timestamp (the first such batch), if any.
    async fn batch_with_max_timestamp(&self, topic: &str, partition: i32) -> Result<Option<Batch>>;

    /// Makes offsets below `offset` unreadable and frees whole batches below it. Returns the
    /// new log start offset. `offset` may not exceed the high watermark.
    async fn delete_records(&self, topic: &str, partition: i32, offset: i64) -> Result<i64>;

    /// The idempotent producers this partition remembers.
    async fn producers(&self, topic: &str, partition: i32) -> Result<Vec<ProducerState>>;

    /// A producer id never handed out before by this store, for idempotent producers.
    async fn next_producer_id(&self) -> Result<i64>;

    /// Returns once every write that returned before this call survives a crash.
    async fn sync(&self) -> Result<()>;
}
