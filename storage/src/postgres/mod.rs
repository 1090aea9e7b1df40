//! The Postgres engine: several brokers can share one database.
//!
//! Layout (see `migrations/0001_init.sql`): a row per topic, a row per partition holding its
//! high watermark (`next_offset`), log start and running max timestamp, and a row per record
//! batch holding the producer's bytes (`bytea`) with its offsets, timestamps and producer
//! fields beside them for lookups. Groups, committed offsets and idempotent producers' states
//! have a table each; producer ids come from a sequence.
//!
//! - **Appends** (see `writes.rs`) are one transaction for any number of partitions' batches:
//!   `reserve` moves each partition's `next_offset` forward under its row lock (which
//!   serialises writers, on any connection or broker) and queues a `NOTIFY ductstream_appends`;
//!   a binary `COPY` stores the batches with their base offsets rewritten; the producers'
//!   states are upserted. Durable when it returns, so [`Storage::sync`] has nothing to do.
//! - **Reads** are index lookups: the batch holding the offset by `last_offset`, then a range
//!   over `end_position` (a running byte count) bounded by `max_bytes`.
//! - **Time lookups** use `time_index`, the running max of the batches' max timestamps, which
//!   never decreases in offset order.
//! - **Migrations** in `migrations/` are embedded and applied at open, in one transaction
//!   under an advisory lock, and recorded in `ductstream_schema_migrations`.
//! - **SQL** lives in `queries.sql`, split by `-- name:` markers and prepared per connection.
//!
//! A lost connection gives `StorageError::Engine` ("retriable"); the pool drops it and the
//! next call opens a new one. An append that fails that way may or may not have committed,
//! as with a Kafka produce that times out.

mod backoff;
mod notify;
mod pool;
mod queries;
pub mod testing;
mod topic_cache;
mod writes;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, Json};
use tokio_postgres::{Config, Row};
use uuid::Uuid;

pub use self::notify::PartitionNotice;
use self::pool::{describe, Conn, Pool};
use self::queries::Query;
use self::topic_cache::TopicCache;
use crate::log_range::{check_tiling, range_changed, RANGE_BYTES};
use crate::memory::{check_deletable, check_in_range};
use crate::{
    AppendOutcome, Batch, BrokerInfo, LogRange, CommittedOffset, DocumentUpdate, GroupState, PartitionWrite, PartitionOffsets, ProducerBatch, ProducerState, Result,
    Storage, StorageError, Topic, TopicSpec,
};

/// Connections kept by [`PostgresStorage::connect`].
pub const DEFAULT_POOL_SIZE: usize = 8;

/// Embedded schema migrations: (version, name, SQL), in order.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (2, "brokers", include_str!("migrations/0002_brokers.sql")),
    (3, "offset_metadata_bytes", include_str!("migrations/0003_offset_metadata_bytes.sql")),
    (4, "documents", include_str!("migrations/0004_documents.sql")),
    (5, "broker_listeners", include_str!("migrations/0005_broker_listeners.sql")),
];

/// Reads never ask for more than this many bytes (keeps position arithmetic in range).
const MAX_READ_BYTES: i64 = 1 << 48;

/// A [`Storage`] on a Postgres database, shared safely by several brokers. Cloning is cheap
/// and shares the pool.
#[derive(Clone)]
pub struct PostgresStorage {
    pool: Arc<Pool>,
    topics: Arc<TopicCache>,
}

impl PostgresStorage {
    /// Connects to `url` (`postgres://user:password@host:port/database`, or key=value form),
    /// with a pool of [`DEFAULT_POOL_SIZE`] connections, and brings the schema up to date.
    /// `sslmode` and `sslrootcert` work as with libpq (see `ductstream-pgtls`).
    pub async fn connect(url: &str) -> Result<PostgresStorage> {
        Self::connect_with_pool_size(url, DEFAULT_POOL_SIZE).await
    }

    /// [`PostgresStorage::connect`] with at most `pool_size` connections.
    pub async fn connect_with_pool_size(url: &str, pool_size: usize) -> Result<PostgresStorage> {
        let invalid = |e: &dyn std::fmt::Display| StorageError::Engine(format!("invalid postgres URL: {e}"));
        let (url, tls) = ductstream_pgtls::split_dsn(url).map_err(|e| invalid(&e))?;
        let config: Config = url.parse().map_err(|e| invalid(&e))?;
        let pool = Arc::new(Pool::new(config, tls.connector().map_err(|e| invalid(&e))?, pool_size));
        migrate(&mut *pool.get().await?).await?;
        Ok(PostgresStorage { pool, topics: Arc::default() })
    }

    /// The partitions' new bounds after appends and DeleteRecords by any broker on this
    /// database, from a dedicated connection that LISTENs on `ductstream_appends`.
    ///
    /// Notifications are hints: when the receiver lags by more than the channel holds, newer
    /// ones are dropped (each carries the latest bounds, so the next one catches up). The
    /// channel closes (`recv` gives `None`) when the listening connection is lost; the caller
    /// should then wake all its waiters, subscribe again and re-read what it cached.
    pub async fn subscribe_appends(&self) -> Result<tokio::sync::mpsc::Receiver<PartitionNotice>> {
        notify::subscribe(&self.pool).await
    }
}

/// Applies the embedded migrations not yet recorded, all in one transaction, under an advisory
/// lock so that brokers starting together migrate one after the other.
async fn migrate(conn: &mut Conn) -> Result<()> {
    let failed = |what: &str, e: tokio_postgres::Error| {
        StorageError::Engine(format!("postgres schema migration failed ({what}): {}", describe(&e)))
    };
    let tx = conn.client.transaction().await.map_err(|e| failed("begin", e))?;
    tx.batch_execute(Query::MigrationsLock.sql()).await.map_err(|e| failed("advisory lock", e))?;
    tx.batch_execute(Query::MigrationsTable.sql()).await.map_err(|e| failed("migrations table", e))?;
    let applied: Vec<i32> = tx
        .query(Query::MigrationsApplied.sql(), &[])
        .await
        .map_err(|e| failed("applied versions", e))?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| failed("applied versions", e))?;
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tracing::info!(version, name, "applying postgres schema migration");
        tx.batch_execute(sql).await.map_err(|e| failed(name, e))?;
        tx.execute(Query::MigrationsRecord.sql(), &[version, name]).await.map_err(|e| failed(name, e))?;
    }
    let known = MIGRATIONS.iter().map(|(v, _, _)| *v).max().unwrap_or(0);
    if let Some(newer) = applied.iter().filter(|v| **v > known).max() {
        tracing::warn!(newer, known, "the postgres schema is newer than this build knows");
    }
    tx.commit().await.map_err(|e| failed("commit", e))
}

/// Column `index` of `row`, or `Corrupt` when it has another type.
fn col<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T> {
    row.try_get(index)
        .map_err(|e| StorageError::Corrupt(format!("unexpected postgres column {index}: {e}")))
}

/// A committed offset from the six columns of `row` starting at `first`.
fn committed_offset(row: &Row, first: usize) -> Result<CommittedOffset> {
    Ok(CommittedOffset {
        topic: col(row, first)?,
        partition: col(row, first + 1)?,
        offset: col(row, first + 2)?,
        leader_epoch: col(row, first + 3)?,
        metadata: String::from_utf8(col::<Vec<u8>>(row, first + 4)?).map_err(|e| StorageError::Corrupt(format!("commit metadata is not UTF-8: {e}")))?,
        commit_timestamp: col(row, first + 5)?,
    })
}

fn topic_from(row: &Row) -> Result<Topic> {
    let Json(configs) = col::<Json<BTreeMap<String, String>>>(row, 3)?;
    Ok(Topic { id: col(row, 0)?, name: col(row, 1)?, partitions: col(row, 2)?, configs })
}

fn batch_from(bytes: Vec<u8>) -> Result<Batch> {
    Batch::from_stored(Bytes::from(bytes)).map_err(|e| StorageError::Corrupt(format!("stored batch: {e}")))
}

/// The batch in column `index`, if the column is not NULL.
fn optional_batch(row: &Row, index: usize) -> Result<Option<Batch>> {
    col::<Option<Vec<u8>>>(row, index)?.map(batch_from).transpose()
}

/// Why a lookup of `topic`/`partition` found no partition row.
async fn missing(conn: &mut Conn, topic: &str, partition: i32) -> StorageError {
    match conn.query_opt(Query::TopicPartitions, &[&topic]).await {
        Ok(Some(_)) => StorageError::UnknownPartition { topic: topic.to_owned(), partition },
        Ok(None) => StorageError::UnknownTopic(topic.to_owned()),
        Err(e) => e,
    }
}

#[async_trait]
impl Storage for PostgresStorage {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    async fn create_topic(&self, spec: TopicSpec) -> Result<Topic> {
        if spec.partitions < 1 {
            return Err(StorageError::InvalidPartitions(format!("{} partitions", spec.partitions)));
        }
        let topic = Topic { id: Uuid::new_v4(), name: spec.name, partitions: spec.partitions, configs: spec.configs };
        let mut conn = self.pool.get().await?;
        let statement = conn.statement(Query::CreateTopic).await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&topic.id, &topic.name, &topic.partitions, &Json(&topic.configs)];
        match conn.client.execute(&statement, &params).await {
            Ok(_) => {
                self.topics.put(&topic);
                Ok(topic)
            }
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(StorageError::TopicExists(topic.name)),
            Err(e) => Err(pool::query_error(Query::CreateTopic, e)),
        }
    }

    async fn delete_topic(&self, name: &str) -> Result<Topic> {
        self.topics.forget(name);
        let mut conn = self.pool.get().await?;
        match conn.query_opt(Query::DeleteTopic, &[&name]).await? {
            Some(row) => topic_from(&row),
            None => Err(StorageError::UnknownTopic(name.to_owned())),
        }
    }

    async fn topics(&self) -> Result<Vec<Topic>> {
        let mut conn = self.pool.get().await?;
        conn.query(Query::Topics, &[]).await?.iter().map(topic_from).collect()
    }

    async fn topic(&self, name: &str) -> Result<Option<Topic>> {
        if let Some(topic) = self.topics.get(name) {
            return Ok(Some(topic));
        }
        let mut conn = self.pool.get().await?;
        let topic = conn.query_opt(Query::Topic, &[&name]).await?.as_ref().map(topic_from).transpose()?;
        match &topic {
            Some(topic) => self.topics.put(topic),
            None => self.topics.forget(name),
        }
        Ok(topic)
    }

    async fn create_partitions(&self, name: &str, partitions: i32) -> Result<Topic> {
        self.topics.forget(name);
        let mut conn = self.pool.get().await?;
        let lock = conn.statement(Query::TopicForUpdate).await?;
        let grow = conn.statement(Query::GrowTopic).await?;
        let add = conn.statement(Query::AddPartitions).await?;
        let failed = |query: Query| move |e| pool::query_error(query, e);
        let tx = conn.client.transaction().await.map_err(failed(Query::TopicForUpdate))?;
        let row = tx.query_opt(&lock, &[&name]).await.map_err(failed(Query::TopicForUpdate))?;
        let mut topic = match row {
            Some(row) => topic_from(&row)?,
            None => return Err(StorageError::UnknownTopic(name.to_owned())),
        };
        if partitions <= topic.partitions {
            return Err(StorageError::InvalidPartitions(format!(
                "topic {name:?} has {} partitions; it can only grow",
                topic.partitions
            )));
        }
        tx.execute(&grow, &[&topic.id, &partitions]).await.map_err(failed(Query::GrowTopic))?;
        tx.execute(&add, &[&topic.id, &topic.partitions, &partitions]).await.map_err(failed(Query::AddPartitions))?;
        tx.commit().await.map_err(failed(Query::AddPartitions))?;
        topic.partitions = partitions;
        self.topics.put(&topic);
        Ok(topic)
    }

    async fn set_topic_configs(&self, name: &str, configs: BTreeMap<String, String>) -> Result<Topic> {
        self.topics.forget(name);
        let mut conn = self.pool.get().await?;
        match conn.query_opt(Query::SetTopicConfigs, &[&name, &Json(&configs)]).await? {
            Some(row) => {
                let topic = topic_from(&row)?;
                self.topics.put(&topic);
                Ok(topic)
            }
            None => Err(StorageError::UnknownTopic(name.to_owned())),
        }
    }

    async fn append(
        &self,
        topic: &str,
        partition: i32,
        batch: Batch,
        producer: Option<ProducerState>,
    ) -> Result<AppendOutcome> {
        let write = PartitionWrite { topic: topic.to_owned(), partition, batches: vec![(batch, producer)] };
        let mut conn = self.pool.get().await?;
        let outcomes = writes::append_partitions(&mut conn, std::slice::from_ref(&write)).await?;
        outcomes
            .into_iter()
            .flatten()
            .next()
            .ok_or_else(|| StorageError::Engine("the append returned no outcome".into()))
    }

    async fn append_many(&self, topic: &str, partition: i32, batches: Vec<(Batch, Option<ProducerState>)>) -> Vec<Result<AppendOutcome>> {
        let write = PartitionWrite { topic: topic.to_owned(), partition, batches };
        self.append_partitions(vec![write]).await.into_iter().next().unwrap_or_default()
    }

    fn groups_partitions(&self) -> bool {
        true
    }

    async fn append_partitions(&self, writes: Vec<PartitionWrite>) -> Vec<Vec<Result<AppendOutcome>>> {
        let stored = match self.pool.get().await {
            Ok(mut conn) => writes::append_partitions(&mut conn, &writes).await,
            Err(e) => Err(e),
        };
        match stored {
            Ok(outcomes) => outcomes.into_iter().map(|o| o.into_iter().map(Ok).collect()).collect(),
            Err(e) => {
                // One transaction: none was stored. The first batch gets the error itself.
                let reason = e.to_string();
                let mut first = Some(e);
                writes
                    .iter()
                    .map(|w| {
                        (0..w.batches.len())
                            .map(|_| Err(first.take().unwrap_or_else(|| StorageError::Engine(format!("the write failed: {reason}")))))
                            .collect()
                    })
                    .collect()
            }
        }
    }

    async fn read(&self, topic: &str, partition: i32, offset: i64, max_bytes: usize) -> Result<Vec<Batch>> {
        let max_bytes = i64::try_from(max_bytes).unwrap_or(MAX_READ_BYTES).min(MAX_READ_BYTES);
        let mut conn = self.pool.get().await?;
        let rows = conn.query(Query::Read, &[&topic, &partition, &offset, &max_bytes]).await?;
        let Some(first) = rows.first() else {
            return Err(missing(&mut conn, topic, partition).await);
        };
        check_in_range(offset, PartitionOffsets { log_start: col(first, 0)?, high_watermark: col(first, 1)? })?;
        let mut batches = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(batch) = optional_batch(row, 2)? {
                batches.push(batch);
            }
        }
        Ok(batches)
    }

    async fn offsets(&self, topic: &str, partition: i32) -> Result<PartitionOffsets> {
        let mut conn = self.pool.get().await?;
        match conn.query_opt(Query::Offsets, &[&topic, &partition]).await? {
            Some(row) => Ok(PartitionOffsets { log_start: col(&row, 0)?, high_watermark: col(&row, 1)? }),
            None => Err(missing(&mut conn, topic, partition).await),
        }
    }

    async fn partition_size(&self, topic: &str, partition: i32) -> Result<Option<u64>> {
        let mut conn = self.pool.get().await?;
        match conn.query_opt(Query::PartitionSize, &[&topic, &partition]).await? {
            Some(row) => Ok(Some(col::<i64>(&row, 0)?.max(0) as u64)),
            None => Err(missing(&mut conn, topic, partition).await),
        }
    }

    async fn retention_cut_for_bytes(&self, topic: &str, partition: i32, max_bytes: u64) -> Result<Option<i64>> {
        let mut conn = self.pool.get().await?;
        let max_bytes = i64::try_from(max_bytes).unwrap_or(i64::MAX);
        let Some(row) = conn.query_opt(Query::RetentionCut, &[&topic, &partition, &max_bytes]).await? else {
            return Err(missing(&mut conn, topic, partition).await);
        };
        let (first_kept, last): (Option<i64>, Option<i64>) = (col(&row, 0)?, col(&row, 1)?);
        let Some(last) = last else { return Ok(None) };
        let cut = first_kept.map_or(last, |kept| kept.min(last));
        let log_start = self.offsets(topic, partition).await?.log_start;
        Ok((cut > log_start).then_some(cut))
    }

    async fn batch_at_time(&self, topic: &str, partition: i32, timestamp: i64) -> Result<Option<Batch>> {
        let mut conn = self.pool.get().await?;
        match conn.query_opt(Query::BatchAtTime, &[&topic, &partition, &timestamp]).await? {
            Some(row) => optional_batch(&row, 0),
            None => Err(missing(&mut conn, topic, partition).await),
        }
    }

    async fn batch_with_max_timestamp(&self, topic: &str, partition: i32) -> Result<Option<Batch>> {
        let mut conn = self.pool.get().await?;
        let Some(row) = conn.query_opt(Query::BatchWithMaxTimestamp, &[&topic, &partition]).await? else {
            return Err(missing(&mut conn, topic, partition).await);
        };
        let top: Option<i64> = col(&row, 0)?;
        match (top, optional_batch(&row, 1)?) {
            (_, Some(batch)) => Ok(Some(batch)),
            (None, None) => Ok(None),
            (Some(_), None) => match conn.query_opt(Query::BatchWithMaxTimestampScan, &[&topic, &partition]).await? {
                Some(row) => optional_batch(&row, 0),
                None => Ok(None),
            },
        }
    }

    async fn delete_records(&self, topic: &str, partition: i32, offset: i64) -> Result<i64> {
        let mut conn = self.pool.get().await?;
        // A refusal is re-checked against the current offsets: the high watermark only grows,
        // so an offset found in range there is accepted on the next try.
        for _ in 0..3 {
            if let Some(row) = conn.query_opt(Query::DeleteRecords, &[&topic, &partition, &offset]).await? {
                return col(&row, 0);
            }
            let Some(row) = conn.query_opt(Query::Offsets, &[&topic, &partition]).await? else {
                return Err(missing(&mut conn, topic, partition).await);
            };
            check_deletable(offset, PartitionOffsets { log_start: col(&row, 0)?, high_watermark: col(&row, 1)? })?;
        }
        Err(StorageError::Engine(format!("delete_records on {topic}/{partition} kept failing")))
    }

    async fn compactable_ranges(&self, topic: &str, partition: i32) -> Result<Vec<LogRange>> {
        let mut conn = self.pool.get().await?;
        let chunk = RANGE_BYTES as i64;
        let rows = conn.query(Query::CompactableRanges, &[&topic, &partition, &chunk]).await?;
        rows.iter()
            .map(|row| Ok(LogRange { start: col(row, 0)?, end: col(row, 1)?, bytes: col::<i64>(row, 2)?.max(0) as u64 }))
            .collect()
    }

    async fn replace_range(&self, topic: &str, partition: i32, range: LogRange, batches: Vec<Batch>) -> Result<()> {
        check_tiling(range, &batches)?;
        let mut conn = self.pool.get().await?;
        let take = conn.statement(Query::TakeRange).await?;
        let put = conn.statement(Query::PutRange).await?;
        let failed = |query: Query| move |e| pool::query_error(query, e);
        let tx = conn.client.transaction().await.map_err(failed(Query::TakeRange))?;
        let taken = tx.query(&take, &[&topic, &partition, &range.start, &range.end]).await.map_err(failed(Query::TakeRange))?;
        // (base offset, last offset, end position, bytes, running max timestamp), by offset.
        let mut old: Vec<(i64, i64, i64, i32, i64)> = Vec::with_capacity(taken.len());
        let mut topic_id: Option<Uuid> = None;
        for row in &taken {
            topic_id = Some(col(row, 0)?);
            old.push((col(row, 1)?, col(row, 2)?, col(row, 3)?, col(row, 4)?, col(row, 5)?));
        }
        old.sort_unstable();
        let (Some(topic_id), Some(first), Some(last)) = (topic_id, old.first().copied(), old.last().copied()) else {
            return Err(range_changed(range));
        };
        if first.0 != range.start || last.1 + 1 != range.end {
            return Err(range_changed(range));
        }
        // The new batches take the front of the old ones' place in the byte stream, so
        // positions keep growing with offsets; what they saved is a gap before the next batch.
        let start_position = first.2 - i64::from(first.3);
        let new_bytes: i64 = batches.iter().map(|b| b.len() as i64).sum();
        if new_bytes > last.2 - start_position {
            return Err(StorageError::Rejected(format!(
                "a rewrite of offsets [{}, {}) is larger than the batches it replaces",
                range.start, range.end
            )));
        }
        let mut columns = RangeColumns::default();
        let mut position = start_position;
        for batch in &batches {
            position += batch.len() as i64;
            // The running max timestamp as it stood after the old batches this one covers.
            let time_index = old.iter().take_while(|o| o.1 <= batch.last_offset()).map(|o| o.4).max().unwrap_or(batch.max_timestamp());
            columns.push(batch, time_index, position);
        }
        tx.execute(&put, &columns.params(&topic_id, &partition)).await.map_err(failed(Query::PutRange))?;
        tx.commit().await.map_err(failed(Query::PutRange))?;
        Ok(())
    }

    async fn producers(&self, topic: &str, partition: i32) -> Result<Vec<ProducerState>> {
        let mut conn = self.pool.get().await?;
        let rows = conn.query(Query::Producers, &[&topic, &partition]).await?;
        if rows.is_empty() {
            return Err(missing(&mut conn, topic, partition).await);
        }
        let mut states = Vec::new();
        for row in &rows {
            if let Some(producer_id) = col::<Option<i64>>(row, 0)? {
                let Json(batches) = col::<Json<Vec<ProducerBatch>>>(row, 2)?;
                states.push(ProducerState { producer_id, epoch: col(row, 1)?, batches });
            }
        }
        Ok(states)
    }

    async fn save_group(&self, group: GroupState) -> Result<()> {
        let mut conn = self.pool.get().await?;
        conn.execute(Query::SaveGroup, &[&group.group_id, &Json(&group)]).await?;
        Ok(())
    }

    async fn load_groups(&self) -> Result<Vec<GroupState>> {
        let mut conn = self.pool.get().await?;
        let rows = conn.query(Query::LoadGroups, &[]).await?;
        rows.iter().map(|row| col::<Json<GroupState>>(row, 0).map(|Json(group)| group)).collect()
    }

    async fn delete_group(&self, group_id: &str) -> Result<()> {
        let mut conn = self.pool.get().await?;
        conn.execute(Query::DeleteGroup, &[&group_id]).await?;
        Ok(())
    }

    async fn commit_offsets(&self, group_id: &str, offsets: Vec<CommittedOffset>) -> Result<()> {
        // One row per partition: a later entry for the same partition wins, as in the other engines.
        let mut latest: BTreeMap<(String, i32), CommittedOffset> = BTreeMap::new();
        for offset in offsets {
            latest.insert((offset.topic.clone(), offset.partition), offset);
        }
        if latest.is_empty() {
            return Ok(());
        }
        let offsets: Vec<CommittedOffset> = latest.into_values().collect();
        let topics: Vec<&str> = offsets.iter().map(|o| o.topic.as_str()).collect();
        let partitions: Vec<i32> = offsets.iter().map(|o| o.partition).collect();
        let positions: Vec<i64> = offsets.iter().map(|o| o.offset).collect();
        let epochs: Vec<i32> = offsets.iter().map(|o| o.leader_epoch).collect();
        let metadata: Vec<&[u8]> = offsets.iter().map(|o| o.metadata.as_bytes()).collect();
        let timestamps: Vec<i64> = offsets.iter().map(|o| o.commit_timestamp).collect();
        let mut conn = self.pool.get().await?;
        conn.execute(
            Query::CommitOffsets,
            &[&group_id, &topics, &partitions, &positions, &epochs, &metadata, &timestamps],
        )
        .await?;
        Ok(())
    }

    async fn committed_offsets(&self, group_id: &str) -> Result<Vec<CommittedOffset>> {
        let mut conn = self.pool.get().await?;
        let rows = conn.query(Query::CommittedOffsets, &[&group_id]).await?;
        rows.iter().map(|row| committed_offset(row, 0)).collect()
    }

    async fn delete_offsets(&self, group_id: &str, partitions: &[(String, i32)]) -> Result<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        let topics: Vec<&str> = partitions.iter().map(|(t, _)| t.as_str()).collect();
        let indexes: Vec<i32> = partitions.iter().map(|(_, p)| *p).collect();
        let mut conn = self.pool.get().await?;
        conn.execute(Query::DeleteOffsets, &[&group_id, &topics, &indexes]).await?;
        Ok(())
    }

    async fn groups_with_offsets(&self) -> Result<Vec<String>> {
        let mut conn = self.pool.get().await?;
        conn.query(Query::GroupsWithOffsets, &[]).await?.iter().map(|row| col(row, 0)).collect()
    }

    async fn all_committed_offsets(&self) -> Result<Vec<(String, CommittedOffset)>> {
        let mut conn = self.pool.get().await?;
        let rows = conn.query(Query::AllCommittedOffsets, &[]).await?;
        rows.iter().map(|row| Ok((col(row, 0)?, committed_offset(row, 1)?))).collect()
    }

    async fn next_producer_id(&self) -> Result<i64> {
        let mut conn = self.pool.get().await?;
        match conn.query_opt(Query::NextProducerId, &[]).await? {
            Some(row) => col(&row, 0),
            None => Err(StorageError::Engine("nextval returned no row".into())),
        }
    }

    async fn document(&self, kind: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let mut conn = self.pool.get().await?;
        conn.query_opt(Query::Document, &[&kind, &key]).await?.map(|row| col(&row, 0)).transpose()
    }

    async fn documents(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut conn = self.pool.get().await?;
        let rows = conn.query(Query::Documents, &[&kind]).await?;
        rows.iter().map(|row| Ok((col(row, 0)?, col(row, 1)?))).collect()
    }

    async fn update_document(&self, kind: &str, key: &str, update: &mut DocumentUpdate<'_>) -> Result<Option<Vec<u8>>> {
        let mut conn = self.pool.get().await?;
        // Creating the row commits on its own, so two brokers' first updates both find it.
        conn.execute(Query::DocumentRow, &[&kind, &key]).await?;
        let lock = conn.statement(Query::DocumentForUpdate).await?;
        let write = conn.statement(Query::DocumentWrite).await?;
        let failed = |query: Query| move |e| pool::query_error(query, e);
        let tx = conn.client.transaction().await.map_err(failed(Query::DocumentForUpdate))?;
        let current: Option<Vec<u8>> = match tx.query_opt(&lock, &[&kind, &key]).await.map_err(failed(Query::DocumentForUpdate))? {
            Some(row) => col(&row, 0)?,
            None => None,
        };
        let next = update(current.as_deref())?;
        tx.execute(&write, &[&kind, &key, &next]).await.map_err(failed(Query::DocumentWrite))?;
        tx.commit().await.map_err(failed(Query::DocumentWrite))?;
        Ok(next)
    }

    async fn heartbeat_broker(&self, me: &BrokerInfo, lease: std::time::Duration) -> Result<Vec<BrokerInfo>> {
        let mut conn = self.pool.get().await?;
        let lease_ms = lease.as_millis() as f64;
        let renewed = conn.query_opt(Query::BrokerHeartbeat, &[&me.node_id, &me.host, &me.port, &lease_ms, &me.listeners_text()]).await?;
        if renewed.is_none() {
            let holder = conn.query_opt(Query::BrokerHolding, &[&me.node_id]).await?;
            let at = match holder {
                Some(row) => format!("{}:{}", col::<String>(&row, 0)?, col::<i32>(&row, 1)?),
                None => "another address".to_string(),
            };
            return Err(StorageError::Engine(format!(
                "node id {} is held by a live broker at {at}; give each broker its own --node-id",
                me.node_id
            )));
        }
        conn.query(Query::LiveBrokers, &[])
            .await?
            .iter()
            .map(|row| {
                let listeners: String = col(row, 3)?;
                Ok(BrokerInfo {
                    node_id: col(row, 0)?,
                    host: col(row, 1)?,
                    port: col(row, 2)?,
                    listeners: BrokerInfo::parse_listeners(&listeners),
                })
            })
            .collect()
    }

    /// Every write committed its transaction before returning: nothing to do.
    async fn sync(&self) -> Result<()> {
        Ok(())
    }
}

/// The rewritten batches of a compacted range as the parallel arrays `put_range` takes.
#[derive(Default)]
struct RangeColumns {
    base_offset: Vec<i64>,
    last_offset: Vec<i64>,
    record_count: Vec<i32>,
    max_timestamp: Vec<i64>,
    time_index: Vec<i64>,
    end_position: Vec<i64>,
    byte_size: Vec<i32>,
    producer_id: Vec<i64>,
    producer_epoch: Vec<i16>,
    base_sequence: Vec<i32>,
    data: Vec<Vec<u8>>,
}

impl RangeColumns {
    fn push(&mut self, batch: &Batch, time_index: i64, end_position: i64) {
        self.base_offset.push(batch.base_offset());
        self.last_offset.push(batch.last_offset());
        self.record_count.push(batch.record_count());
        self.max_timestamp.push(batch.max_timestamp());
        self.time_index.push(time_index);
        self.end_position.push(end_position);
        self.byte_size.push(i32::try_from(batch.len()).unwrap_or(i32::MAX));
        self.producer_id.push(batch.producer_id());
        self.producer_epoch.push(batch.producer_epoch());
        self.base_sequence.push(batch.base_sequence());
        self.data.push(batch.bytes().to_vec());
    }

    fn params<'a>(&'a self, topic_id: &'a Uuid, partition: &'a i32) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 13] {
        [
            topic_id,
            partition,
            &self.base_offset,
            &self.last_offset,
            &self.record_count,
            &self.max_timestamp,
            &self.time_index,
            &self.end_position,
            &self.byte_size,
            &self.producer_id,
            &self.producer_epoch,
            &self.base_sequence,
            &self.data,
        ]
    }
}
