//! Typed storage documents: JSON in `Storage::update_document`, with the broker's errors.
//! Flows and sinks keep their definitions this way.

use ductstream_storage::{Storage, StorageError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{BrokerError, Result};

/// The stored document, or `T::default()` when there is none; `what` names it in the error
/// when it cannot be read.
pub async fn load_or_default<T: DeserializeOwned + Default>(storage: &dyn Storage, kind: &str, key: &str, what: &str) -> Result<T> {
    match storage.document(kind, key).await? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| BrokerError::Config(format!("stored {what} are unreadable: {e}"))),
        None => Ok(T::default()),
    }
}

/// Applies `f` to the stored document, atomically, and stores the result; a missing document
/// is `missing()`, and an error from `f` changes nothing and is returned as it is. `f` must
/// only compute: it may run more than once.
pub async fn update<T, R>(
    storage: &dyn Storage,
    kind: &str,
    key: &str,
    missing: impl Fn() -> BrokerError + Send + Sync,
    f: impl FnMut(&mut T) -> Result<R> + Send,
) -> Result<(T, R)>
where
    T: Serialize + DeserializeOwned + Send,
    R: Send,
{
    change(storage, kind, key, || Err(missing()), f).await
}

/// [`update`], with a missing document starting as `T::default()`.
pub async fn upsert<T, R>(storage: &dyn Storage, kind: &str, key: &str, f: impl FnMut(&mut T) -> Result<R> + Send) -> Result<(T, R)>
where
    T: Serialize + DeserializeOwned + Default + Send,
    R: Send,
{
    change(storage, kind, key, || Ok(T::default()), f).await
}

async fn change<T, R>(
    storage: &dyn Storage,
    kind: &str,
    key: &str,
    start: impl Fn() -> Result<T> + Send + Sync,
    mut f: impl FnMut(&mut T) -> Result<R> + Send,
) -> Result<(T, R)>
where
    T: Serialize + DeserializeOwned + Send,
    R: Send,
{
    let mut outcome: Option<Result<(T, R)>> = None;
    let stored = storage
        .update_document(kind, key, &mut |current| {
            let mut document: T = match current {
                Some(bytes) => serde_json::from_slice(bytes)?,
                None => match start() {
                    Ok(document) => document,
                    Err(e) => {
                        outcome = Some(Err(e));
                        return Err(StorageError::Rejected(format!("no {kind} {key:?}")));
                    }
                },
            };
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

/// The document, or `missing()`.
pub async fn load<T: DeserializeOwned>(storage: &dyn Storage, kind: &str, key: &str, missing: impl Fn() -> BrokerError) -> Result<T> {
    let bytes = storage.document(kind, key).await?.ok_or_else(missing)?;
    Ok(serde_json::from_slice(&bytes).map_err(StorageError::from)?)
}

/// Every document of `kind`, ordered by key.
pub async fn list<T: DeserializeOwned>(storage: &dyn Storage, kind: &str) -> Result<Vec<T>> {
    let documents = storage.documents(kind).await?;
    documents.iter().map(|(_, b)| Ok(serde_json::from_slice(b).map_err(StorageError::from)?)).collect()
}

/// Stores a new document; `exists()` when the key is taken.
pub async fn insert<T: Serialize>(storage: &dyn Storage, kind: &str, key: &str, document: &T, exists: impl Fn() -> BrokerError) -> Result<()> {
    let bytes = serde_json::to_vec(document).map_err(StorageError::from)?;
    let mut taken = false;
    let stored = storage
        .update_document(kind, key, &mut |current| {
            taken = current.is_some();
            if taken {
                return Err(StorageError::Rejected("exists".into()));
            }
            Ok(Some(bytes.clone()))
        })
        .await;
    match stored {
        Ok(_) => Ok(()),
        Err(_) if taken => Err(exists()),
        Err(e) => Err(e.into()),
    }
}

/// Removes the document; `missing()` when there was none.
pub async fn remove(storage: &dyn Storage, kind: &str, key: &str, missing: impl Fn() -> BrokerError) -> Result<()> {
    let mut found = false;
    storage
        .update_document(kind, key, &mut |current| {
            found = current.is_some();
            Ok(None)
        })
        .await?;
    if found { Ok(()) } else { Err(missing()) }
}

/// Checks a flow's or sink's id: 1 to `max` letters, digits, '.', '_' or '-' (it names storage
/// documents, replication slots and consumer groups).
pub fn check_id(what: &str, id: &str, max: usize) -> Result<()> {
    let ok = !id.is_empty() && id.len() <= max && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(BrokerError::InvalidArgument(format!("{what} id {id:?} must be 1 to {max} letters, digits, '.', '_' or '-'")))
    }
}
