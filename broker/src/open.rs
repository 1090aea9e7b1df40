//! Opening the store `--storage` names, for the broker and the worker.

use std::path::Path;
use std::sync::Arc;

#[cfg(feature = "postgres")]
use ductstream_storage::PostgresStorage;
use ductstream_storage::{MemoryStorage, SegmentStorage, SledStorage, Storage};

use crate::{BrokerError, Result};

/// Files that show a data folder belongs to an engine, so one engine never opens another's.
const ENGINE_MARKERS: &[(&str, &str)] = &[("sled", "conf"), ("segment", "lock")];

fn check_data_dir_engine(data_dir: &Path, engine: &str) -> Result<()> {
    for (other, marker) in ENGINE_MARKERS.iter().filter(|(name, _)| *name != engine) {
        if data_dir.join(marker).exists() {
            return Err(BrokerError::Config(format!(
                "{} holds a {other} store; start with --storage {other}, or use another --data-dir for {engine}",
                data_dir.display()
            )));
        }
    }
    Ok(())
}

/// Opens an embedded engine in `--data-dir`, refusing a folder that holds another engine's store.
fn open_embedded<S: Storage>(
    data_dir: &Path,
    fsync: bool,
    engine: &str,
    open: impl FnOnce(&Path, bool) -> ductstream_storage::Result<S>,
) -> Result<Opened> {
    std::fs::create_dir_all(data_dir)?;
    check_data_dir_engine(data_dir, engine)?;
    let storage = open(data_dir, fsync).map_err(|e| {
        BrokerError::Config(format!("cannot open the {engine} store in {}: {e}", data_dir.display()))
    })?;
    Ok(Opened { storage: Arc::new(storage), #[cfg(feature = "postgres")] postgres: None })
}

/// Opens `--storage`: `sled` or `segment` in `data_dir`, `memory`, or a `postgres://` URL.
pub async fn open_storage(storage: &str, data_dir: &Path, fsync: bool) -> Result<Opened> {
    match storage {
        "sled" => open_embedded(data_dir, fsync, "sled", SledStorage::open_with_fsync),
        "segment" => open_embedded(data_dir, fsync, "segment", SegmentStorage::open),
        "memory" => Ok(Opened { storage: Arc::new(MemoryStorage::new()), #[cfg(feature = "postgres")] postgres: None }),
        #[cfg(feature = "postgres")]
        url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let storage = Arc::new(PostgresStorage::connect(url).await.map_err(|e| {
                BrokerError::Config(format!("cannot open Postgres storage at {}: {e}", redact(url)))
            })?);
            Ok(Opened { storage: storage.clone(), postgres: Some(storage) })
        }
        #[cfg(not(feature = "postgres"))]
        url if url.starts_with("postgres://") || url.starts_with("postgresql://") => Err(BrokerError::Config(
            "this build has no Postgres storage: build with the `postgres` feature".into(),
        )),
        other => Err(BrokerError::Config(format!("unknown storage {other:?}: use sled, segment, memory or a postgres:// URL"))),
    }
}

/// The opened store, and the Postgres engine when it is one (for its append notifications).
pub struct Opened {
    pub storage: Arc<dyn Storage>,
    #[cfg(feature = "postgres")]
    pub postgres: Option<Arc<PostgresStorage>>,
}

/// A connection string without its password, for messages and the API:
/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, and `password=***` in
/// key=value form.
pub fn redact(dsn: &str) -> String {
    if let (Some(scheme), Some(at)) = (dsn.find("://"), dsn.rfind('@'))
        && at > scheme
        && let Some((user, _)) = dsn[scheme + 3..at].split_once(':')
    {
        return format!("{}{user}:***{}", &dsn[..scheme + 3], &dsn[at..]);
    }
    dsn.split_whitespace()
        .map(|part| if part.starts_with("password=") { "password=***".to_string() } else { part.to_string() })
        .collect::<Vec<_>>()
        .join(" ")
}

