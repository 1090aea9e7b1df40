//! Flow definitions and CDC checkpoints as storage documents.

use std::sync::Arc;

use async_trait::async_trait;
use ductstream_cdc::{CdcError, Checkpoint, CheckpointStore};
use ductstream_storage::{Storage, StorageError};

use super::model::FlowDef;
use crate::{BrokerError, Result};

pub const FLOW_KIND: &str = "flow";
pub const CHECKPOINT_KIND: &str = "cdc_checkpoint";

pub fn not_found(id: &str) -> BrokerError {
    BrokerError::NotFound(format!("there is no flow {id:?}"))
}

pub async fn load(storage: &dyn Storage, id: &str) -> Result<FlowDef> {
    let bytes = storage.document(FLOW_KIND, id).await?.ok_or_else(|| not_found(id))?;
    Ok(serde_json::from_slice(&bytes).map_err(StorageError::from)?)
}

pub async fn list(storage: &dyn Storage) -> Result<Vec<FlowDef>> {
    let documents = storage.documents(FLOW_KIND).await?;
    documents.iter().map(|(_, b)| Ok(serde_json::from_slice(b).map_err(StorageError::from)?)).collect()
}

/// Stores a new flow; ALREADY_EXISTS when the id is taken.
pub async fn insert(storage: &dyn Storage, flow: &FlowDef) -> Result<()> {
    let bytes = serde_json::to_vec(flow).map_err(StorageError::from)?;
    let mut exists = false;
    storage
        .update_document(FLOW_KIND, &flow.id, &mut |current| {
            exists = current.is_some();
            if exists {
                return Err(StorageError::Rejected("exists".into()));
            }
            Ok(Some(bytes.clone()))
        })
        .await
        .map_err(|e| if exists { BrokerError::AlreadyExists(format!("flow {:?} already exists", flow.id)) } else { e.into() })?;
    Ok(())
}

/// Changes a stored flow atomically; an error from `f` changes nothing.
pub async fn update(storage: &dyn Storage, id: &str, f: impl FnMut(&mut FlowDef) -> Result<()> + Send) -> Result<FlowDef> {
    Ok(crate::documents::update(storage, FLOW_KIND, id, || not_found(id), f).await?.0)
}

pub async fn delete(storage: &dyn Storage, id: &str) -> Result<()> {
    let mut found = false;
    storage
        .update_document(FLOW_KIND, id, &mut |current| {
            found = current.is_some();
            Ok(None)
        })
        .await?;
    if !found {
        return Err(not_found(id));
    }
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
