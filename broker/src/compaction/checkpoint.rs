//! How far each partition's log is clean: everything below `cleaned_to` was compacted against
//! the latest value of every key up to there. Kept as a storage document per partition
//! (`log_cleaner`, key `<topic id>/<partition>`) so a restart, or another broker taking the
//! partition over on Postgres, does not clean the same records again, and so tombstones count
//! as cleaned once (`delete.retention.ms` runs from there).

use ductstream_storage::{Storage, Topic};
use serde::{Deserialize, Serialize};

use crate::{BrokerError, Result};

const KIND: &str = "log_cleaner";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub cleaned_to: i64,
    /// When the first tombstone the last cleaning kept may go (its timestamp plus
    /// `delete.retention.ms`): a cleaning is due then even with nothing new written.
    #[serde(default)]
    pub tombstones_due_ms: Option<i64>,
}

fn key(topic: &Topic, partition: i32) -> String {
    format!("{}/{partition}", topic.id)
}

pub async fn load(storage: &dyn Storage, topic: &Topic, partition: i32) -> Result<Checkpoint> {
    match storage.document(KIND, &key(topic, partition)).await? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| BrokerError::Storage(e.into())),
        None => Ok(Checkpoint::default()),
    }
}

pub async fn save(storage: &dyn Storage, topic: &Topic, partition: i32, checkpoint: Checkpoint) -> Result<()> {
    let bytes = serde_json::to_vec(&checkpoint).map_err(|e| BrokerError::Storage(e.into()))?;
    storage.update_document(KIND, &key(topic, partition), &mut |_| Ok(Some(bytes.clone()))).await?;
    Ok(())
}

/// Forgets a deleted topic's checkpoints.
pub async fn forget_topic(storage: &dyn Storage, topic: &Topic) -> Result<()> {
    for partition in 0..topic.partitions {
        storage.update_document(KIND, &key(topic, partition), &mut |_| Ok(None)).await?;
    }
    Ok(())
}
