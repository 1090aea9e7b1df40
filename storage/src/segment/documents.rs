//! `documents/<kind>/<key>`: one small file per document, replaced whole on each update.
//!
//! Names are hex-encoded so any kind or key is a safe file name. Updates are serialised by one
//! lock and each replaces one small file (a temporary file renamed over it); the contents are
//! cached, since this process alone owns the folder, so an update reads no file. Durable
//! consumers update their document on every pull and ack (a couple of thousand times a second
//! under load): a journal per document would save the rename when that becomes the limit.

use std::path::{Path, PathBuf};

use super::files::{self, io_error};
use crate::{DocumentUpdate, Result};

pub(super) struct DocumentStore {
    dir: PathBuf,
    fsync: bool,
    /// Documents read or written so far (None: known absent). Held from the read to the
    /// write of an update.
    cache: tokio::sync::Mutex<Cache>,
}

/// Contents by (kind, key); `None`: known absent.
type Cache = std::collections::HashMap<(String, String), Option<Vec<u8>>>;

impl DocumentStore {
    pub(super) fn new(data_dir: &Path, fsync: bool) -> DocumentStore {
        DocumentStore { dir: data_dir.join("documents"), fsync, cache: tokio::sync::Mutex::new(Default::default()) }
    }

    pub(super) fn get(&self, kind: &str, key: &str) -> Result<Option<Vec<u8>>> {
        files::read_optional(&self.path(kind, key))
    }

    pub(super) fn list(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let dir = self.dir.join(hex(kind));
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(io_error(&dir))?.path();
            let Some(key) = path.file_name().and_then(|n| n.to_str()).and_then(unhex) else {
                continue; // a temporary file of an interrupted write
            };
            if let Some(bytes) = files::read_optional(&path)? {
                out.push((key, bytes));
            }
        }
        out.sort();
        Ok(out)
    }

    pub(super) async fn update(&self, kind: &str, key: &str, update: &mut DocumentUpdate<'_>) -> Result<Option<Vec<u8>>> {
        let mut cache = self.cache.lock().await;
        let path = self.path(kind, key);
        let id = (kind.to_owned(), key.to_owned());
        let current = match cache.get(&id) {
            Some(cached) => cached.clone(),
            None => files::read_optional(&path)?,
        };
        let next = update(current.as_deref())?;
        let (written, fsync) = (next.clone(), self.fsync);
        // Forget the entry until the write is known to have happened.
        cache.remove(&id);
        tokio::task::spawn_blocking(move || write(&path, written.as_deref(), fsync))
            .await
            .map_err(|e| crate::StorageError::Engine(format!("document write task failed: {e}")))??;
        cache.insert(id, next.clone());
        Ok(next)
    }

    fn path(&self, kind: &str, key: &str) -> PathBuf {
        self.dir.join(hex(kind)).join(hex(key))
    }
}

/// Replaces or removes the file; with `fsync` durably, else so that it survives the process.
fn write(path: &Path, bytes: Option<&[u8]>, fsync: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    match bytes {
        None => match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error(path)(e)),
        },
        Some(bytes) => {
            std::fs::create_dir_all(dir).map_err(io_error(dir))?;
            if fsync {
                return files::write_atomically(path, bytes);
            }
            files::write_replacing(path, bytes)?;
            return Ok(());
        }
    }
    if fsync {
        files::sync_dir(dir)?;
    }
    Ok(())
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(name: &str) -> Option<String> {
    if !name.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..name.len()).step_by(2).map(|i| u8::from_str_radix(name.get(i..i + 2)?, 16).ok()).collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}
