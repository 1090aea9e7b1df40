//! Flow definitions and CDC checkpoints as storage documents.

use std::sync::Arc;

use async_trait::async_trait;
use ductstream_cdc::{CdcError, Checkpoint, CheckpointStore};
use ductstream_storage::Storage;

use super::model::FlowDef;
use crate::{documents, BrokerError, Result};

pub const FLOW_KIND: &str = "flow";
pub const CHECKPOINT_KIND: &str = "cdc_checkpoint";

pub fn not_found(id: &str) -> BrokerError {
    BrokerError::NotFound(format!("there is no flow {id:?}"))
}

pub async fn load(storage: &dyn Storage, id: &str) -> Result<FlowDef> {
    documents::load(storage, FLOW_KIND, id, || not_found(id)).await
}

pub async fn list(storage: &dyn Storage) -> Result<Vec<FlowDef>> {
    documents::list(storage, FLOW_KIND).await
}

/// Stores a new flow; ALREADY_EXISTS when the id is taken.
pub async fn insert(storage: &dyn Storage, flow: &FlowDef) -> Result<()> {
    documents::insert(storage, FLOW_KIND, &flow.id, flow, || BrokerError::AlreadyExists(format!("flow {:?} already exists", flow.id))).await
}

/// Changes a stored flow atomically; an error from `f` changes nothing.
pub async fn update(storage: &dyn Storage, id: &str, f: impl FnMut(&mut FlowDef) -> Result<()> + Send) -> Result<FlowDef> {
    Ok(documents::update(storage, FLOW_KIND, id, || not_found(id), f).await?.0)
}

pub async fn delete(storage: &dyn Storage, id: &str) -> Result<()> {
    documents::remove(storage, FLOW_KIND, id, || not_found(id)).await?;
    storage.update_document(CHECKPOINT_KIND, id, &mut |_| Ok(None)).await?;
    Ok(())
}

/// CDC checkpoints in the broker's storage: they survive restarts and, on Postgres, move
/// with the flow to another broker.
pub struct StorageCheckpoints(pub Arc<dyn Storage>);

#[async_trait]
impl CheckpointStore for StorageCheckpoints {
    async fn load(&self, flow_id: &str) -> ductstream_cdc::Result<Option<Checkpoint>> {
        let failed = |e: String| CdcError::Checkpoint(e);
        match self.0.document(CHECKPOINT_KIND, flow_id).await.map_err(|e| failed(e.to_string()))? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| failed(e.to_string())),
            None => Ok(None),
        }
    }

    async fn save(&self, flow_id: &str, checkpoint: &Checkpoint) -> ductstream_cdc::Result<()> {
        let bytes = serde_json::to_vec(checkpoint).map_err(|e| CdcError::Checkpoint(e.to_string()))?;
        self.0
            .update_document(CHECKPOINT_KIND, flow_id, &mut |_| Ok(Some(bytes.clone())))
            .await
            .map(|_| ())
            .map_err(|e| CdcError::Checkpoint(e.to_string()))
    }
}
