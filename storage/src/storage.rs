use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::{
    AppendOutcome, Batch, LogRange, PartitionWrite, BrokerInfo, CommittedOffset, GroupState, PartitionOffsets, ProducerState, Result, Topic, TopicSpec,
};

/// What [`Storage::update_document`] runs on a document's current contents.
pub type DocumentUpdate<'a> = dyn FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>> + Send + 'a;

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

    /// Appends several batches to the end of the partition, in order, as [`Storage::append`]
    /// would one after another; engines that can store them in one write (Postgres: one
    /// transaction) do. One result per batch: after a failure, the batches that follow it are
    /// not stored and fail too.
    async fn append_many(&self, topic: &str, partition: i32, batches: Vec<(Batch, Option<ProducerState>)>) -> Vec<Result<AppendOutcome>> {
        let mut out = Vec::with_capacity(batches.len());
        let mut failed: Option<String> = None;
        for (batch, producer) in batches {
            if let Some(reason) = &failed {
                out.push(Err(crate::StorageError::Engine(format!("an earlier batch of the same write failed: {reason}"))));
                continue;
            }
            let outcome = self.append(topic, partition, batch, producer).await;
            if let Err(e) = &outcome {
                failed = Some(e.to_string());
            }
            out.push(outcome);
        }
        out
    }

    /// Whether [`Storage::append_partitions`] stores several partitions' writes together
    /// (cheaper than one by one): the broker then gathers the writes of all partitions.
    fn groups_partitions(&self) -> bool {
        false
    }

    /// Several partitions' [`Storage::append_many`] at once; engines that can make them one
    /// transaction do (Postgres: one commit). One result list per write, in order.
    async fn append_partitions(&self, writes: Vec<PartitionWrite>) -> Vec<Vec<Result<AppendOutcome>>> {
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            out.push(self.append_many(&w.topic, w.partition, w.batches).await);
        }
        out
    }

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

    /// Where size retention would cut the log so that at most `max_bytes` of batches stay: the
    /// new log start, or `None` when nothing needs to go. The embedded engine counts whole
    /// segments and never the active one, as Kafka's `retention.bytes` does; Postgres counts
    /// whole batches and never the last one; engines that do not track sizes (memory) answer
    /// `None`.
    async fn retention_cut_for_bytes(&self, topic: &str, partition: i32, max_bytes: u64) -> Result<Option<i64>> {
        let _ = (topic, partition, max_bytes);
        Ok(None)
    }

    /// The bytes a partition's log takes, when the engine keeps the count: the embedded
    /// engine's segment files (a partly deleted segment counts whole, as Kafka counts). `None`
    /// from engines that would have to read the batches to know.
    async fn partition_size(&self, topic: &str, partition: i32) -> Result<Option<u64>> {
        let _ = (topic, partition);
        Ok(None)
    }

    /// The parts of the log compaction may rewrite, oldest first, each replaced as a whole by
    /// [`Storage::replace_range`]: the embedded engine's sealed segments (never the active one,
    /// nor one the log start cuts through), chunks of whole batches on Postgres and in memory
    /// (never the last batch). Empty from an engine that cannot rewrite its log.
    async fn compactable_ranges(&self, topic: &str, partition: i32) -> Result<Vec<LogRange>> {
        let _ = (topic, partition);
        Ok(Vec::new())
    }

    /// Replaces the batches of `range`, which [`Storage::compactable_ranges`] gave, with
    /// `batches` covering exactly the same offsets (the first starts at `range.start`, each
    /// where the one before ends, the last ends at `range.end`). Offsets, the high watermark
    /// and the log start do not move, and a reader in the middle of a read keeps the batches it
    /// had. `StorageError::RangeChanged` when the log no longer has `range` as it was; then
    /// nothing changed.
    async fn replace_range(&self, topic: &str, partition: i32, range: LogRange, batches: Vec<Batch>) -> Result<()> {
        let _ = (topic, partition, batches);
        Err(crate::log_range::range_changed(range))
    }

    /// The idempotent producers this partition remembers.
    async fn producers(&self, topic: &str, partition: i32) -> Result<Vec<ProducerState>>;

    /// Saves a group's membership, replacing what was saved before.
    async fn save_group(&self, group: GroupState) -> Result<()>;

    /// Every saved group.
    async fn load_groups(&self) -> Result<Vec<GroupState>>;

    /// Forgets a group: its membership and all its committed offsets.
    async fn delete_group(&self, group_id: &str) -> Result<()>;

    /// Stores offsets for `group_id`, replacing earlier commits of the same partitions; all of
    /// them or none. Durable when this returns.
    async fn commit_offsets(&self, group_id: &str, offsets: Vec<CommittedOffset>) -> Result<()>;

    /// Every offset `group_id` committed, ordered by topic and partition.
    async fn committed_offsets(&self, group_id: &str) -> Result<Vec<CommittedOffset>>;

    /// Forgets the committed offsets of these partitions.
    async fn delete_offsets(&self, group_id: &str, partitions: &[(String, i32)]) -> Result<()>;

    /// The ids of groups that have committed offsets (with or without saved membership).
    async fn groups_with_offsets(&self) -> Result<Vec<String>>;

    /// Every group's committed offsets, as (group id, offset), by group, topic and partition:
    /// for a caller that looks at all groups at once (the console's lag charts). Stores that
    /// can answer in one query do.
    async fn all_committed_offsets(&self) -> Result<Vec<(String, CommittedOffset)>> {
        let mut groups = self.groups_with_offsets().await?;
        groups.sort();
        let mut all = Vec::new();
        for group in groups {
            for offset in self.committed_offsets(&group).await? {
                all.push((group.clone(), offset));
            }
        }
        Ok(all)
    }

    /// A producer id never handed out before by this store, for idempotent producers.
    async fn next_producer_id(&self) -> Result<i64>;

    /// Takes or renews `me`'s lease for `lease` and returns the brokers whose leases are live,
    /// `me` included, by node id. Stores that several brokers share (Postgres) keep the
    /// leases; an embedded store serves one broker, which is the whole cluster.
    async fn heartbeat_broker(&self, me: &BrokerInfo, lease: std::time::Duration) -> Result<Vec<BrokerInfo>> {
        let _ = lease;
        Ok(vec![me.clone()])
    }

    /// A small document stored under (`kind`, `key`): durable consumers' state, flows,
    /// checkpoints. None when there is none.
    async fn document(&self, kind: &str, key: &str) -> Result<Option<Vec<u8>>>;

    /// Every document of `kind`, ordered by key.
    async fn documents(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>>;

    /// Replaces a document with what `update` makes of its current contents (`None` when
    /// absent; returning `None` deletes it) and returns the new contents. The read, `update`
    /// and the write are atomic against every other `update_document` of the same document,
    /// with several brokers on one database too. An error from `update` changes nothing and is
    /// returned as it is. `update` may be called more than once, so it must only compute.
    /// Durable when this returns.
    async fn update_document(&self, kind: &str, key: &str, update: &mut DocumentUpdate<'_>) -> Result<Option<Vec<u8>>>;

    /// Returns once every write that returned before this call survives a crash.
    async fn sync(&self) -> Result<()>;
}
