//! In-memory [`ChangeWriter`] and [`CheckpointStore`], for tests and examples.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::checkpoint::{Checkpoint, CheckpointStore};
use crate::error::{CdcError, Result};
use crate::writer::{ChangeWriter, OutRecord};

/// Keeps every appended record per topic; appends are "durable" as soon as they return.
#[derive(Debug)]
pub struct MemoryWriter {
    topics: Mutex<BTreeMap<String, Vec<OutRecord>>>,
    changed: watch::Sender<u64>,
    failing: AtomicBool,
}

impl Default for MemoryWriter {
    fn default() -> Self {
        MemoryWriter { topics: Mutex::default(), changed: watch::channel(0).0, failing: AtomicBool::new(false) }
    }
}

impl MemoryWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records of `topic`, in append order.
    pub fn records(&self, topic: &str) -> Vec<OutRecord> {
        self.lock().get(topic).cloned().unwrap_or_default()
    }

    /// Names of the topics created so far.
    pub fn topics(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Records in all topics.
    pub fn total(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// While set, every append fails (to test that a failed write is not confirmed).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Waits until `done` holds for the topics, or `timeout` passes; returns whether it held.
    pub async fn wait_until(&self, timeout: Duration, done: impl Fn(&BTreeMap<String, Vec<OutRecord>>) -> bool) -> bool {
        let mut changes = self.changed.subscribe();
        let wait = async {
            loop {
                if done(&self.lock()) {
                    return;
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok() && done(&self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<OutRecord>>> {
        // A panic while holding the lock cannot leave the map half-updated (one push per record).
        self.topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ChangeWriter for MemoryWriter {
    async fn ensure_topic(&self, name: &str) -> Result<()> {
        self.lock().entry(name.to_string()).or_default();
        self.changed.send_modify(|v| *v += 1);
        Ok(())
    }

    async fn append(&self, topic: &str, records: Vec<OutRecord>) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(CdcError::Writer(format!("memory writer set to fail (topic {topic})")));
        }
        self.lock().entry(topic.to_string()).or_default().extend(records);
        self.changed.send_modify(|v| *v += 1);
        Ok(())
    }
}

/// Checkpoints in a map.
#[derive(Debug, Default)]
pub struct MemoryCheckpointStore {
    saved: Mutex<HashMap<String, Checkpoint>>,
}

impl MemoryCheckpointStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, flow_id: &str) -> Option<Checkpoint> {
        self.saved.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(flow_id).cloned()
    }
}

#[async_trait]
impl CheckpointStore for MemoryCheckpointStore {
    async fn load(&self, flow_id: &str) -> Result<Option<Checkpoint>> {
        Ok(self.get(flow_id))
    }

    async fn save(&self, flow_id: &str, checkpoint: &Checkpoint) -> Result<()> {
        self.saved.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(flow_id.to_string(), checkpoint.clone());
        Ok(())
    }
}
