//! Opening the store `--storage` names, for the broker and the worker.

use std::path::Path;
use std::sync::Arc;

#[cfg(feature = "postgres")]
use ductstream_storage::PostgresStorage;
use ductstream_storage::{EmbeddedStorage, MemoryStorage, Storage, TieredStorage};

use crate::tiering::TierArgs;
use crate::{BrokerError, Result};

/// Opens the embedded engine in `--data-dir`; a folder an earlier version wrote (the `sled` or
/// `segment` engines) is imported on the way.
fn open_embedded(data_dir: &Path, fsync: bool) -> Result<Opened> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| BrokerError::Config(format!("cannot create the embedded store's folder {}: {e}", data_dir.display())))?;
    let storage = EmbeddedStorage::open(data_dir, fsync).map_err(|e| {
        BrokerError::Config(format!("cannot open the embedded store in {}: {e}", data_dir.display()))
    })?;
    Ok(Opened { storage: Arc::new(storage), #[cfg(feature = "postgres")] postgres: None, tier: None })
}

/// Opens `--storage`: `embedded` in `data_dir`, `memory`, or a `postgres://` URL.
pub async fn open_storage(storage: &str, data_dir: &Path, fsync: bool) -> Result<Opened> {
    match storage {
        "embedded" => open_embedded(data_dir, fsync),
        // The two embedded engines of earlier versions, now one; their folders are imported.
        "sled" | "segment" => {
            tracing::warn!(storage, "--storage {storage} is now --storage embedded (the default); opening that");
            open_embedded(data_dir, fsync)
        }
        "memory" => Ok(Opened { storage: Arc::new(MemoryStorage::new()), #[cfg(feature = "postgres")] postgres: None, tier: None }),
        #[cfg(feature = "postgres")]
        url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let storage = Arc::new(PostgresStorage::connect(url).await.map_err(|e| {
                BrokerError::Config(format!("cannot open Postgres storage at {}: {e}", redact(url)))
            })?);
            Ok(Opened { storage: storage.clone(), postgres: Some(storage), tier: None })
        }
        #[cfg(not(feature = "postgres"))]
        url if url.starts_with("postgres://") || url.starts_with("postgresql://") => Err(BrokerError::Config(
            "this build has no Postgres storage: build with the `postgres` feature".into(),
        )),
        other => Err(BrokerError::Config(format!("unknown storage {other:?}: use embedded, memory or a postgres:// URL"))),
    }
}

/// The opened store, and the Postgres engine when it is one (for its append notifications).
pub struct Opened {
    pub storage: Arc<dyn Storage>,
    #[cfg(feature = "postgres")]
    pub postgres: Option<Arc<PostgresStorage>>,
    /// The remote tier over the store, when `--tier-s3-bucket` names one.
    pub tier: Option<Arc<TieredStorage>>,
}

/// Puts the remote tier `args` describe under the opened store, if they name a bucket. The
/// bucket is listed once so that a wrong name or credentials show at start; the broker starts
/// anyway (uploads and remote reads retry), as S3 may only be out for a while.
pub async fn with_tier(opened: Opened, args: &TierArgs) -> Result<Opened> {
    let Some(store) = args.object_store()? else { return Ok(opened) };
    let prefix = object_store::path::Path::from(args.tier_s3_prefix.trim_matches('/'));
    if let Err(e) = store.list_with_delimiter(Some(&prefix)).await {
        tracing::error!(bucket = ?args.tier_s3_bucket, error = %e, "cannot list the remote tier's bucket; uploads and remote reads fail until it can");
    }
    let tier = Arc::new(TieredStorage::new(opened.storage, store, &args.tier_s3_prefix, args.tier_cache_bytes));
    Ok(Opened { storage: tier.clone(), tier: Some(tier), ..opened })
}

/// A connection string without its password, for messages and the API:
/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, and `password=***` in
/// key=value form.
pub fn redact(dsn: &str) -> String {
    ductstream_sinks::redact_dsn(dsn)
}

