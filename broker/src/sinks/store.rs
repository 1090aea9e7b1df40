//! Sink definitions and their recorded cuts as storage documents.

use ductstream_sinks::runtime::Cut;
use ductstream_storage::{Storage, StorageError};

use super::model::SinkDef;
use crate::{BrokerError, Result};

pub const SINK_KIND: &str = "sink";
pub const CUTS_KIND: &str = "sink_cuts";

pub fn not_found(id: &str) -> BrokerError {
    BrokerError::NotFound(format!("there is no sink {id:?}"))
}

pub async fn load(storage: &dyn Storage, id: &str) -> Result<SinkDef> {
    let bytes = storage.document(SINK_KIND, id).await?.ok_or_else(|| not_found(id))?;
    Ok(serde_json::from_slice(&bytes).map_err(StorageError::from)?)
}

pub async fn list(storage: &dyn Storage) -> Result<Vec<SinkDef>> {
    let documents = storage.documents(SINK_KIND).await?;
    documents.iter().map(|(_, b)| Ok(serde_json::from_slice(b).map_err(StorageError::from)?)).collect()
}

/// Stores a new sink; ALREADY_EXISTS when the id is taken.
pub async fn insert(storage: &dyn Storage, sink: &SinkDef) -> Result<()> {
    let bytes = serde_json::to_vec(sink).map_err(StorageError::from)?;
    let mut exists = false;
    storage
        .update_document(SINK_KIND, &sink.id, &mut |current| {
            exists = current.is_some();
            if exists {
                return Err(StorageError::Rejected("exists".into()));
            }
            Ok(Some(bytes.clone()))
        })
        .await
        .map_err(|e| if exists { BrokerError::AlreadyExists(format!("sink {:?} already exists", sink.id)) } else { e.into() })?;
    Ok(())
}

/// Stores the sink whether or not it exists (flows keep their sinks this way).
pub async fn put(storage: &dyn Storage, sink: &SinkDef) -> Result<()> {
    let bytes = serde_json::to_vec(sink).map_err(StorageError::from)?;
    storage.update_document(SINK_KIND, &sink.id, &mut |_| Ok(Some(bytes.clone()))).await?;
    Ok(())
}

/// Changes a stored sink atomically; an error from `f` changes nothing.
pub async fn update(storage: &dyn Storage, id: &str, f: impl FnMut(&mut SinkDef) -> Result<()> + Send) -> Result<SinkDef> {
    Ok(crate::documents::update(storage, SINK_KIND, id, || not_found(id), f).await?.0)
}

/// Forgets the sink, its cuts and its group's offsets.
pub async fn delete(storage: &dyn Storage, id: &str) -> Result<()> {
    let mut found = false;
    storage
        .update_document(SINK_KIND, id, &mut |current| {
            found = current.is_some();
            Ok(None)
        })
        .await?;
    if !found {
        return Err(not_found(id));
    }
    forget_progress(storage, id).await
}

/// Forgets the sink's cuts and committed offsets.
pub async fn forget_progress(storage: &dyn Storage, id: &str) -> Result<()> {
    storage.update_document(CUTS_KIND, id, &mut |_| Ok(None)).await?;
    storage.delete_group(&super::model::group_of(id)).await?;
    Ok(())
}

pub async fn load_cuts(storage: &dyn Storage, id: &str) -> Result<Vec<Cut>> {
    match storage.document(CUTS_KIND, id).await? {
        Some(bytes) => Ok(serde_json::from_slice(&bytes).map_err(StorageError::from)?),
        None => Ok(Vec::new()),
    }
}

pub async fn save_cuts(storage: &dyn Storage, id: &str, cuts: &[Cut]) -> Result<()> {
    let bytes = serde_json::to_vec(cuts).map_err(StorageError::from)?;
    storage.update_document(CUTS_KIND, id, &mut |_| Ok(Some(bytes.clone()))).await?;
    Ok(())
}
