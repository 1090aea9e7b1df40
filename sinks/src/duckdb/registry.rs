//! One open database per file per process. DuckDB locks a database file for the process that
//! opens it, and two instances of one file in one process would each believe they own it (the
//! lock is the process's, and closing either drops it): so every sink of this process that
//! names a file leases the same connection, and the last lease to go closes the file.
//!
//! All of this blocks (opening reads the file, closing checkpoints it): callers run it on
//! tokio's blocking threads.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use duckdb::{Config, Connection};

use super::error::{classify_open, duckdb_error};
use super::Target;
use crate::{Result, SinkError};

/// The open databases, by canonical path (`:memory:` for the in-memory one).
static OPEN: LazyLock<Mutex<HashMap<PathBuf, Entry>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

struct Entry {
    connection: Arc<Mutex<Connection>>,
    leases: usize,
}

fn open_databases() -> MutexGuard<'static, HashMap<PathBuf, Entry>> {
    // A panic while the map was held leaves it consistent: every change to it is one step.
    OPEN.lock().unwrap_or_else(|e| e.into_inner())
}

/// A share of one database's connection; the database closes when the last lease drops.
/// (Sinks hold it in an `Arc`, so that the blocking tasks they start keep it alive.)
pub struct Lease {
    key: PathBuf,
    connection: Option<Arc<Mutex<Connection>>>,
}

impl Lease {
    /// Leases the database at `target`, opening it (and creating its folder) if no sink of
    /// this process has it open.
    pub fn open(target: &Target) -> Result<Lease> {
        let key = match target {
            Target::Memory => PathBuf::from(":memory:"),
            Target::File(path) => canonical(path)?,
        };
        let mut open = open_databases();
        if let Some(entry) = open.get_mut(&key) {
            entry.leases += 1;
            return Ok(Lease { key, connection: Some(entry.connection.clone()) });
        }
        // Opened while holding the map, so that no second instance of the file can start.
        let connection = Arc::new(Mutex::new(connect(target, &key)?));
        open.insert(key.clone(), Entry { connection: connection.clone(), leases: 1 });
        Ok(Lease { key, connection: Some(connection) })
    }

    /// The connection, for one unit of work: other leases of the database wait meanwhile.
    pub fn connection(&self) -> Result<MutexGuard<'_, Connection>> {
        let connection = self.connection.as_ref().ok_or_else(|| SinkError::Retriable("duckdb destination: the database is closed".into()))?;
        // A panic mid-transaction leaves it open: the next unit's BEGIN fails, and the
        // transaction guard of the panicking unit rolled it back on unwinding anyway.
        Ok(connection.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else { return };
        let mut open = open_databases();
        let last = match open.get_mut(&self.key) {
            Some(entry) => {
                entry.leases = entry.leases.saturating_sub(1);
                entry.leases == 0
            }
            None => false,
        };
        if last {
            // Closed while holding the map: a sink opening the file meanwhile waits for it
            // to be closed (and checkpointed) rather than opening a second instance.
            let entry = open.remove(&self.key);
            drop(connection);
            drop(entry);
        }
    }
}

/// The path's canonical form (its folder created first), so that two spellings of one file
/// share one database.
fn canonical(path: &std::path::Path) -> Result<PathBuf> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let fatal = |what: &str, e: std::io::Error| SinkError::Fatal(format!("duckdb destination: {what} {}: {e}", folder.display()));
    std::fs::create_dir_all(&folder).map_err(|e| fatal("cannot create the folder", e))?;
    let folder = folder.canonicalize().map_err(|e| fatal("cannot resolve the folder", e))?;
    let name = path.file_name().ok_or_else(|| SinkError::Config(format!("duckdb destination: dsn {}: names no file", path.display())))?;
    Ok(folder.join(name))
}

/// A connection in UTC that never fetches extensions (the library has json, icu and parquet
/// built in).
fn connect(target: &Target, key: &std::path::Path) -> Result<Connection> {
    let setup = |e: duckdb::Error| duckdb_error(&e, "opening the database");
    let config = Config::default()
        .enable_autoload_extension(false)
        .and_then(|c| c.with("autoinstall_known_extensions", "false"))
        .map_err(setup)?;
    let connection = match target {
        Target::Memory => Connection::open_in_memory_with_flags(config),
        Target::File(_) => Connection::open_with_flags(key, config),
    }
    .map_err(|e| classify_open(&e, key))?;
    connection.execute_batch("SET TimeZone = 'UTC'").map_err(setup)?;
    Ok(connection)
}

/// Whether this process has the database at `path` open.
#[cfg(test)]
pub fn is_open(path: &std::path::Path) -> bool {
    canonical(path).is_ok_and(|key| open_databases().contains_key(&key))
}
