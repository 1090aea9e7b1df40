//! Producer ids that never repeat across restarts, at the cost of one small atomic write per
//! block of ids: the file `producer-ids` holds the end of the last reserved block, written
//! before the first id of that block is handed out. A restart skips what is left of the block.

use std::path::{Path, PathBuf};

use super::files;
use crate::{Result, StorageError};

pub(super) const FILE: &str = "producer-ids";

const BLOCK: i64 = 1000;

pub(super) struct ProducerIds {
    path: PathBuf,
    next: i64,
    /// Ids below this may have been handed out by this or an earlier run.
    reserved_end: i64,
}

impl ProducerIds {
    pub fn load(dir: &Path) -> Result<ProducerIds> {
        let path = dir.join(FILE);
        let end = files::read_i64(&path)?.unwrap_or(0);
        if end < 0 {
            return Err(StorageError::Corrupt(format!("{} holds a negative id {end}", path.display())));
        }
        Ok(ProducerIds { path, next: end, reserved_end: end })
    }

    pub fn next(&mut self) -> Result<i64> {
        if self.next >= self.reserved_end {
            let end = self.next.checked_add(BLOCK).ok_or_else(|| StorageError::Engine("producer ids exhausted".into()))?;
            files::write_atomically(&self.path, end.to_string().as_bytes())?;
            self.reserved_end = end;
        }
        let id = self.next;
        self.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_increasing_across_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ids = ProducerIds::load(dir.path()).expect("load");
        let first: Vec<i64> = (0..3).map(|_| ids.next().expect("id")).collect();
        assert_eq!(first, vec![0, 1, 2]);
        let mut again = ProducerIds::load(dir.path()).expect("reload");
        assert_eq!(again.next().expect("id"), BLOCK);
        for _ in 0..BLOCK {
            again.next().expect("id");
        }
        assert_eq!(ProducerIds::load(dir.path()).expect("reload").next().expect("id"), 3 * BLOCK);
    }
}
