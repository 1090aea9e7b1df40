//! What `sync` must fsync: segment files written and directories given new segments since the
//! last sync. Only kept when the engine was opened with fsync on.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::files;
use super::segment_file::SegmentFile;
use crate::{Result, StorageError};

#[derive(Default)]
pub(super) struct DirtySet {
    inner: Mutex<Dirty>,
}

#[derive(Default)]
struct Dirty {
    files: Vec<Arc<SegmentFile>>,
    dirs: Vec<PathBuf>,
}

impl DirtySet {
    /// Queues `file` after a write, once until its next sync.
    pub fn file_written(&self, file: &Arc<SegmentFile>) -> Result<()> {
        if file.mark_dirty() {
            self.lock()?.files.push(file.clone());
        }
        Ok(())
    }

    /// Queues `dir` after a segment file was created in it: fsyncing the file alone does not
    /// make its directory entry durable.
    pub fn dir_changed(&self, dir: &Path) -> Result<()> {
        let mut dirty = self.lock()?;
        if !dirty.dirs.iter().any(|d| d == dir) {
            dirty.dirs.push(dir.to_owned());
        }
        Ok(())
    }

    /// Fsyncs everything queued so far. Blocking: call it off the async runtime.
    pub fn sync(&self) -> Result<()> {
        let Dirty { files, dirs } = std::mem::take(&mut *self.lock()?);
        for file in files {
            // Cleared before the fsync: a write racing with it queues the file again, so it is
            // synced by the next round at the latest.
            file.mark_clean();
            file.sync()?;
        }
        for dir in dirs {
            match files::sync_dir(&dir) {
                // The topic was deleted meanwhile: nothing left to make durable.
                Err(StorageError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Files and directories waiting for the next sync.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.lock().map(|d| d.files.len() + d.dirs.len()).unwrap_or(0)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Dirty>> {
        self.inner.lock().map_err(|_| StorageError::Engine("segment engine dirty-file lock poisoned by a panic".into()))
    }
}
