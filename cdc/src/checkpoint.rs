//! Flow checkpoints: how far a flow got, kept by the caller's store.

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::lsn::Lsn;
use crate::snapshot::Chunk;

/// The saved state of a flow.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last LSN whose changes are durable in the topics and confirmed to the slot.
    pub lsn: Lsn,
    /// Snapshot progress; `None` when the flow took no snapshot.
    pub snapshot: Option<SnapshotProgress>,
}

/// Which parts of the initial snapshot are written.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SnapshotProgress {
    /// The LSN the exported snapshot was consistent at (the slot's starting point).
    pub consistent_point: Lsn,
    /// Every chunk of the plan.
    pub chunks: Vec<Chunk>,
    /// Ids of the chunks whose rows are all durable.
    pub done: BTreeSet<String>,
    /// Every chunk is done.
    pub complete: bool,
}

/// Keeps checkpoints by flow id.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    async fn load(&self, flow_id: &str) -> Result<Option<Checkpoint>>;
    async fn save(&self, flow_id: &str, checkpoint: &Checkpoint) -> Result<()>;
}
