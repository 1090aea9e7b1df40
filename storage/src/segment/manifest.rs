//! `topics.json`: every topic's id, name, partition count and configs, rewritten whole and
//! atomically on each change (topic changes are rare and the file is small).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::files;
use crate::{Result, StorageError, Topic};

pub(super) const FILE: &str = "topics.json";

#[derive(Serialize, Deserialize)]
struct Manifest {
    /// Bumped if the layout ever changes incompatibly.
    version: u32,
    topics: Vec<Topic>,
}

const VERSION: u32 = 1;

/// The topics stored under `dir`; none when the store is new.
pub(super) fn load(dir: &Path) -> Result<Vec<Topic>> {
    let path = dir.join(FILE);
    let Some(bytes) = files::read_optional(&path)? else { return Ok(Vec::new()) };
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| StorageError::Corrupt(format!("{}: {e}", path.display())))?;
    if manifest.version != VERSION {
        return Err(StorageError::Corrupt(format!(
            "{} has version {}; this build reads version {VERSION}",
            path.display(),
            manifest.version
        )));
    }
    Ok(manifest.topics)
}

pub(super) fn save<'a>(dir: &Path, topics: impl Iterator<Item = &'a Topic>) -> Result<()> {
    let manifest = Manifest { version: VERSION, topics: topics.cloned().collect() };
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| StorageError::Engine(format!("cannot encode topics: {e}")))?;
    files::write_atomically(&dir.join(FILE), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(load(dir.path()).expect("empty").is_empty());
        let topic = Topic { id: uuid::Uuid::new_v4(), name: "t".into(), partitions: 2, configs: Default::default() };
        save(dir.path(), [&topic].into_iter()).expect("save");
        assert_eq!(load(dir.path()).expect("load"), vec![topic]);
    }
}
