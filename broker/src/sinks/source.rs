//! The broker's log as the source sinks read from: durable records only, offsets committed as
//! the sink's consumer group, cuts and dead letters in the same storage.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ductstream_sinks::runtime::{Cut, Read, SinkSource, TopicPartition};
use ductstream_sinks::{SinkError, SinkRecord};
use ductstream_storage::{CommittedOffset, Storage, StorageError, Topic};
use futures::future::select_all;

use super::store;
use crate::batch_builder::{self, NewRecord};
use crate::clock::now_ms;
use crate::log::Log;
use crate::{records, BrokerError};

/// How a worker process, which hears of no appends, polls for them.
const POLL_EVERY: Duration = Duration::from_millis(200);

pub struct LogSource {
    log: Arc<Log>,
    /// In a process that does not hear of other processes' appends (a worker on a shared
    /// store), bounds are read from storage on every read and waits poll.
    polls: bool,
}

impl LogSource {
    /// A source on a broker's log, woken by its appends (and, on Postgres, other brokers').
    pub fn new(log: Arc<Log>) -> LogSource {
        LogSource { log, polls: false }
    }

    /// A source for a process on its own (`ductstream-worker`).
    pub fn polling(log: Arc<Log>) -> LogSource {
        LogSource { log, polls: true }
    }

    fn storage(&self) -> &dyn Storage {
        self.log.storage().as_ref()
    }

    async fn topic(&self, name: &str) -> ductstream_sinks::Result<Topic> {
        self.storage()
            .topic(name)
            .await
            .map_err(source_error)?
            .ok_or_else(|| SinkError::Source(format!("topic {name:?} does not exist")))
    }
}

fn source_error(e: impl Into<BrokerError>) -> SinkError {
    SinkError::Source(e.into().to_string())
}

#[async_trait]
impl SinkSource for LogSource {
    async fn topics(&self) -> ductstream_sinks::Result<Vec<String>> {
        Ok(self.storage().topics().await.map_err(source_error)?.into_iter().map(|t| t.name).collect())
    }

    async fn partitions(&self, topic: &str) -> ductstream_sinks::Result<Option<i32>> {
        Ok(self.storage().topic(topic).await.map_err(source_error)?.map(|t| t.partitions))
    }

    async fn read(&self, topic: &str, partition: i32, offset: i64, max_bytes: usize) -> ductstream_sinks::Result<Read> {
        let topic = self.topic(topic).await?;
        if self.polls {
            self.log.resync_bounds();
        }
        let bounds = self.log.offsets(&topic, partition).await.map_err(source_error)?;
        // Records deleted by retention or DeleteRecords are gone: go on from the log start.
        let offset = offset.max(bounds.log_start);
        let read = self.log.read(&topic, partition, offset, max_bytes).await.map_err(source_error)?;
        let mut out = Read { records: Vec::new(), next_offset: offset, high_watermark: read.offsets.high_watermark };
        for batch in &read.batches {
            out.next_offset = out.next_offset.max(batch.next_offset());
            if batch.is_control() {
                continue;
            }
            // The batch holding `offset` may start before it.
            out.records.extend(sink_records(&topic.name, partition, batch, offset).map_err(source_error)?);
        }
        Ok(out)
    }

    async fn wait(&self, positions: &[(TopicPartition, i64)], timeout: Duration) {
        if self.polls {
            tokio::time::sleep(timeout.min(POLL_EVERY)).await;
            return;
        }
        let mut waits = Vec::with_capacity(positions.len());
        for ((name, partition), offset) in positions {
            let Ok(Some(topic)) = self.storage().topic(name).await else { continue };
            let Ok(state) = self.log.partition(&topic, *partition).await else { continue };
            let mut high_watermark = state.subscribe();
            let offset = *offset;
            waits.push(Box::pin(async move {
                let _ = high_watermark.wait_for(|hw| *hw > offset).await;
            }));
        }
        if waits.is_empty() {
            tokio::time::sleep(timeout).await;
            return;
        }
        let _ = tokio::time::timeout(timeout, select_all(waits)).await;
    }

    async fn committed(&self, group: &str) -> ductstream_sinks::Result<Vec<(TopicPartition, i64)>> {
        let offsets = self.storage().committed_offsets(group).await.map_err(source_error)?;
        Ok(offsets.into_iter().map(|o| ((o.topic, o.partition), o.offset)).collect())
    }

    async fn commit(&self, group: &str, offsets: &[(TopicPartition, i64)]) -> ductstream_sinks::Result<()> {
        let now = now_ms();
        let offsets = offsets
            .iter()
            .map(|((topic, partition), offset)| CommittedOffset {
                topic: topic.clone(),
                partition: *partition,
                offset: *offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: now,
            })
            .collect();
        self.storage().commit_offsets(group, offsets).await.map_err(source_error)
    }

    async fn load_cuts(&self, sink_id: &str) -> ductstream_sinks::Result<Vec<Cut>> {
        store::load_cuts(self.storage(), sink_id).await.map_err(source_error)
    }

    async fn save_cuts(&self, sink_id: &str, cuts: &[Cut]) -> ductstream_sinks::Result<()> {
        store::save_cuts(self.storage(), sink_id, cuts).await.map_err(source_error)
    }

    async fn dead_letter(&self, topic: &str, letters: Vec<SinkRecord>) -> ductstream_sinks::Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        let dlq = crate::durable::dead_letter::dead_letter_topic(self.storage(), topic).await.map_err(source_error)?;
        let now = now_ms();
        let records: Vec<NewRecord> =
            letters.into_iter().map(|r| NewRecord { key: r.key, value: r.value, headers: r.headers.into_iter().map(|(k, v)| (k.into(), v)).collect(), timestamp: now }).collect();
        let batch = batch_builder::build(&records).map_err(source_error)?;
        let turn = self.log.take_turn(&dlq, 0).await.map_err(source_error)?;
        let appended = self.log.append(batch, turn).await.map_err(source_error)?;
        appended.durable.wait().await.map_err(|e| source_error(StorageError::Engine(e)))?;
        Ok(())
    }
}

/// The records of `batch` at or after `from`, as sinks (and the Iceberg tables) receive them.
pub(crate) fn sink_records(topic: &str, partition: i32, batch: &ductstream_storage::Batch, from: i64) -> crate::Result<Vec<SinkRecord>> {
    Ok(records::decode(batch)?
        .into_iter()
        .filter(|r| r.offset >= from)
        .map(|r| SinkRecord {
            topic: topic.to_owned(),
            partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r.headers,
        })
        .collect())
}
