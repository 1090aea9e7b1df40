//! Typed storage documents: JSON in `Storage::update_document`, with the broker's errors.

use ductstream_storage::{Storage, StorageError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{BrokerError, Result};

/// Applies `f` to the stored document, atomically, and stores the result; a missing document
/// is `missing()`, and an error from `f` changes nothing and is returned as it is. `f` must
/// only compute: it may run more than once.
pub async fn update<T, R>(
    storage: &dyn Storage,
    kind: &str,
    key: &str,
    missing: impl Fn() -> BrokerError + Send + Sync,
    mut f: impl FnMut(&mut T) -> Result<R> + Send,
) -> Result<(T, R)>
where
    T: Serialize + DeserializeOwned + Send,
    R: Send,
{
    let mut outcome: Option<Result<(T, R)>> = None;
    let stored = storage
        .update_document(kind, key, &mut |current| {
            let Some(bytes) = current else {
                outcome = Some(Err(missing()));
                return Err(StorageError::Rejected(format!("no {kind} {key:?}")));
            };
            let mut document: T = serde_json::from_slice(bytes)?;
            match f(&mut document) {
                Ok(r) => {
                    let bytes = serde_json::to_vec(&document)?;
                    outcome = Some(Ok((document, r)));
                    Ok(Some(bytes))
                }
                Err(e) => {
                    let message = e.to_string();
                    outcome = Some(Err(e));
                    Err(StorageError::Rejected(message))
                }
            }
        })
        .await;
    match (stored, outcome) {
        (Ok(_), Some(Ok(done))) => Ok(done),
        (Err(StorageError::Rejected(_)), Some(Err(refused))) => Err(refused),
        (Err(e), _) => Err(e.into()),
        (Ok(_), _) => Err(BrokerError::Encode(format!("the update of {kind} {key:?} finished without an outcome"))),
    }
}
