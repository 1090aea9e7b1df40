//! CDC's writer: change records appended through the broker's partition log, the same path
//! produce takes (offsets, wake-ups of fetches and pulls, group commit).

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use ductstream_cdc::{CdcError, ChangeWriter, OutRecord};
use ductstream_storage::{StorageError, Topic, TopicSpec};

use crate::batch_builder::{self, NewRecord};
use crate::log::Log;

/// Records per appended batch, so one batch stays well under max.message.bytes.
const RECORDS_PER_BATCH: usize = 500;

pub struct TopicWriter {
    log: Arc<Log>,
    /// Partitions of topics the writer creates.
    partitions: i32,
}

impl TopicWriter {
    pub fn new(log: Arc<Log>, partitions: i32) -> TopicWriter {
        TopicWriter { log, partitions: partitions.max(1) }
    }

    async fn topic(&self, name: &str) -> Result<Topic, CdcError> {
        self.log
            .storage()
            .topic(name)
            .await
            .map_err(writer_error)?
            .ok_or_else(|| CdcError::Writer(format!("topic {name:?} does not exist")))
    }
}

fn writer_error(e: impl std::fmt::Display) -> CdcError {
    CdcError::Writer(e.to_string())
}

/// A key's partition: the same key always lands in the same partition, so a row's changes
/// stay in commit order. Keyless records go to partition 0.
fn partition_for(key: Option<&Bytes>, partitions: i32) -> i32 {
    let Some(key) = key else { return 0 };
    // FNV-1a: stable across processes and versions.
    let hash = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    (hash % partitions.max(1) as u64) as i32
}

#[async_trait]
impl ChangeWriter for TopicWriter {
    async fn ensure_topic(&self, name: &str) -> ductstream_cdc::Result<()> {
        let storage = self.log.storage();
        if storage.topic(name).await.map_err(writer_error)?.is_some() {
            return Ok(());
        }
        crate::topic_config::validate_topic_name(name).map_err(writer_error)?;
        let spec = TopicSpec { name: name.to_owned(), partitions: self.partitions, configs: Default::default() };
        match storage.create_topic(spec).await {
            Ok(_) | Err(StorageError::TopicExists(_)) => Ok(()),
            Err(e) => Err(writer_error(e)),
        }
    }

    async fn append(&self, topic: &str, records: Vec<OutRecord>) -> ductstream_cdc::Result<()> {
        let topic = self.topic(topic).await?;
        let mut by_partition: Vec<Vec<NewRecord>> = vec![Vec::new(); topic.partitions.max(1) as usize];
        for r in records {
            let partition = partition_for(r.key.as_ref(), topic.partitions) as usize;
            let headers = r.headers.into_iter().map(|(k, v)| (Cow::Borrowed(k), Some(v))).collect();
            if let Some(list) = by_partition.get_mut(partition) {
                list.push(NewRecord { key: r.key, value: r.value, headers, timestamp: r.timestamp });
            }
        }
        let mut durable = Vec::new();
        for (partition, records) in by_partition.iter().enumerate() {
            for chunk in records.chunks(RECORDS_PER_BATCH) {
                let batch = batch_builder::build(chunk).map_err(writer_error)?;
                let turn = self.log.take_turn(&topic, partition as i32).await.map_err(writer_error)?;
                let appended = self.log.append(batch, turn).await.map_err(writer_error)?;
                durable.push(appended.durable);
            }
        }
        for d in durable {
            d.wait().await.map_err(CdcError::Writer)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_partition() {
        let key = Bytes::from_static(b"{\"id\":1}");
        assert_eq!(partition_for(Some(&key), 8), partition_for(Some(&key), 8));
        assert_eq!(partition_for(None, 8), 0);
        assert_eq!(partition_for(Some(&key), 1), 0);
    }
}
