//! Sink definitions and their recorded cuts as storage documents.

use ductstream_sinks::runtime::Cut;
use ductstream_storage::{Storage, StorageError};

use super::model::SinkDef;
use crate::{documents, BrokerError, Result};

pub const SINK_KIND: &str = "sink";
pub const CUTS_KIND: &str = "sink_cuts";

pub fn not_found(id: &str) -> BrokerError {
    BrokerError::NotFound(format!("there is no sink {id:?}"))
}

pub async fn load(storage: &dyn Storage, id: &str) -> Result<SinkDef> {
    documents::load(storage, SINK_KIND, id, || not_found(id)).await
}

pub async fn list(storage: &dyn Storage) -> Result<Vec<SinkDef>> {
    documents::list(storage, SINK_KIND).await
}

/// Stores a new sink; ALREADY_EXISTS when the id is taken.
pub async fn insert(storage: &dyn Storage, sink: &SinkDef) -> Result<()> {
    documents::insert(storage, SINK_KIND, &sink.id, sink, || BrokerError::AlreadyExists(format!("sink {:?} already exists", sink.id))).await
}

/// Stores the sink whether or not it exists (flows keep their sinks this way).
pub async fn put(storage: &dyn Storage, sink: &SinkDef) -> Result<()> {
    let bytes = serde_json::to_vec(sink).map_err(StorageError::from)?;
    storage.update_document(SINK_KIND, &sink.id, &mut |_| Ok(Some(bytes.clone()))).await?;
    Ok(())
}

/// Changes a stored sink atomically; an error from `f` changes nothing.
pub async fn update(storage: &dyn Storage, id: &str, f: impl FnMut(&mut SinkDef) -> Result<()> + Send) -> Result<SinkDef> {
    Ok(documents::update(storage, SINK_KIND, id, || not_found(id), f).await?.0)
}

/// Forgets the sink, its cuts and its group's offsets.
pub async fn delete(storage: &dyn Storage, id: &str) -> Result<()> {
    documents::remove(storage, SINK_KIND, id, || not_found(id)).await?;
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
