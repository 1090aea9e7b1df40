//! Data folders written by earlier versions, imported on open so nothing is lost:
//!
//! - the all-sled store (the default before this engine): sled's files at the top of the data
//!   folder. Its batches are copied into segment files and its state into the catalog; then
//!   its files move to `sled-imported/`, which the operator may delete once satisfied.
//! - the all-segment store: the same segment files, with the state in JSON files
//!   (`topics.json`, `groups.json`, `offsets.json`, `producer-ids`, `documents/`, and per
//!   partition `log-start` and `producers.json`). The state moves into the catalog and the
//!   JSON files go.
//!
//! Both imports are idempotent: a crash part way leaves the old files in place, and the next
//! open imports again.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use super::catalog::Catalog;
use super::files::{self, io_error};
use super::producers::Snapshot;
use super::segment_file::SegmentFile;
use super::{partition_dir, EmbeddedStorage};
use crate::{Batch, CommittedOffset, GroupState, ProducerState, Result, StorageError, Topic};

/// What the all-segment store kept in the data folder.
const TOPICS_FILE: &str = "topics.json";
const GROUPS_FILE: &str = "groups.json";
const OFFSETS_FILE: &str = "offsets.json";
const PRODUCER_IDS_FILE: &str = "producer-ids";
const DOCUMENTS_DIR: &str = "documents";
const LOG_START_FILE: &str = "log-start";
const PRODUCERS_FILE: &str = "producers.json";

/// Where the all-sled store's files go once imported.
const SLED_IMPORTED: &str = "sled-imported";

pub(super) fn earlier_layouts(dir: &Path, catalog: &Catalog) -> Result<()> {
    if dir.join("conf").is_file() && dir.join("db").is_file() {
        tracing::warn!(dir = %dir.display(), "importing a store written by the sled engine of an earlier version");
        import_sled(dir, catalog)?;
    }
    if dir.join(TOPICS_FILE).is_file() {
        tracing::warn!(dir = %dir.display(), "importing the state of a store written by the segment engine of an earlier version");
        import_segment_state(dir, catalog)?;
    }
    Ok(())
}

// -- the all-segment store --------------------------------------------------------------------

#[derive(Deserialize)]
struct Manifest {
    version: u32,
    topics: Vec<Topic>,
}

fn import_segment_state(dir: &Path, catalog: &Catalog) -> Result<()> {
    let manifest: Manifest = read_json(&dir.join(TOPICS_FILE))?.unwrap_or(Manifest { version: 1, topics: Vec::new() });
    if manifest.version != 1 {
        return Err(StorageError::Corrupt(format!(
            "{} has version {}; this build imports version 1",
            dir.join(TOPICS_FILE).display(),
            manifest.version
        )));
    }
    let mut leftovers: Vec<PathBuf> = Vec::new();
    for topic in &manifest.topics {
        catalog.save_topic(topic)?;
        for p in 0..topic.partitions {
            let folder = partition_dir(dir, topic.id, p);
            let (start_file, producers_file) = (folder.join(LOG_START_FILE), folder.join(PRODUCERS_FILE));
            let snapshot: Option<Snapshot> = read_json(&producers_file)?;
            if let Some(log_start) = files::read_i64(&start_file)? {
                catalog.save_log_start(topic.id, p, log_start, snapshot.as_ref())?;
            } else if let Some(snapshot) = &snapshot {
                catalog.save_producer_snapshot(topic.id, p, snapshot)?;
            }
            leftovers.extend([start_file, producers_file]);
        }
    }
    let groups: Vec<GroupState> = read_json(&dir.join(GROUPS_FILE))?.unwrap_or_default();
    for group in &groups {
        catalog.save_group(group)?;
    }
    let offsets: BTreeMap<String, Vec<CommittedOffset>> = read_json(&dir.join(OFFSETS_FILE))?.unwrap_or_default();
    for (group, list) in &offsets {
        catalog.commit(group, list)?;
    }
    if let Some(end) = files::read_i64(&dir.join(PRODUCER_IDS_FILE))? {
        catalog.reserve_producer_ids_below(end)?;
    }
    import_documents(&dir.join(DOCUMENTS_DIR), catalog)?;
    catalog.flush()?;

    for path in leftovers.iter().chain([&dir.join(GROUPS_FILE), &dir.join(OFFSETS_FILE), &dir.join(PRODUCER_IDS_FILE)]) {
        remove_if_present(path)?;
    }
    match std::fs::remove_dir_all(dir.join(DOCUMENTS_DIR)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_error(&dir.join(DOCUMENTS_DIR))(e)),
        _ => {}
    }
    // Last: while it exists, the next open imports again.
    remove_if_present(&dir.join(TOPICS_FILE))?;
    files::sync_dir(dir)
}

/// `documents/<hex kind>/<hex key>`, one file per document.
fn import_documents(root: &Path, catalog: &Catalog) -> Result<()> {
    let kinds = match std::fs::read_dir(root) {
        Ok(kinds) => kinds,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(root)(e)),
    };
    for kind in kinds {
        let kind = kind.map_err(io_error(root))?.path();
        let Some(kind_name) = file_name(&kind).and_then(unhex) else { continue };
        for doc in std::fs::read_dir(&kind).map_err(io_error(&kind))? {
            let doc = doc.map_err(io_error(&kind))?.path();
            // Temporary files of an interrupted write do not decode.
            let Some(key) = file_name(&doc).and_then(unhex) else { continue };
            if let Some(bytes) = files::read_optional(&doc)? {
                catalog.put_document(&kind_name, &key, &bytes)?;
            }
        }
    }
    Ok(())
}

// -- the all-sled store -----------------------------------------------------------------------

fn import_sled(dir: &Path, catalog: &Catalog) -> Result<()> {
    let old = sled::Config::new()
        .path(dir)
        .open()
        .map_err(|e| StorageError::Engine(format!("cannot open the earlier sled store in {} to import it: {e}", dir.display())))?;
    for entry in old.open_tree("topics")?.iter() {
        let topic: Topic = serde_json::from_slice(&entry?.1)?;
        for p in 0..topic.partitions {
            let tree = old.open_tree(format!("partition/{}/{p}", topic.id))?;
            import_sled_partition(dir, &topic, p, &tree, catalog)?;
        }
        catalog.save_topic(&topic)?;
    }
    for entry in old.open_tree("groups")?.iter() {
        let group: GroupState = serde_json::from_slice(&entry?.1)?;
        catalog.save_group(&group)?;
    }
    for entry in old.open_tree("offsets")?.iter() {
        let (key, value) = entry?;
        let offset: CommittedOffset = serde_json::from_slice(&value)?;
        let group = key.split(|b| *b == 0).next().unwrap_or_default();
        catalog.commit(&String::from_utf8_lossy(group), std::slice::from_ref(&offset))?;
    }
    for entry in old.open_tree("documents")?.iter() {
        let (key, value) = entry?;
        let mut parts = key.splitn(2, |b| *b == 0);
        let (kind, doc) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        catalog.put_document(&String::from_utf8_lossy(kind), &String::from_utf8_lossy(doc), &value)?;
    }
    // sled's id generator handed out the earlier producer ids.
    catalog.reserve_producer_ids_below(old.generate_id()? as i64 + 1)?;
    old.flush()?;
    drop(old);
    catalog.flush()?;
    files::sync_dir(dir)?;
    move_sled_files_aside(dir)
}

/// Copies one partition's batches into segment files and its log start and producers into
/// the catalog.
fn import_sled_partition(dir: &Path, topic: &Topic, p: i32, tree: &sled::Tree, catalog: &Catalog) -> Result<()> {
    let folder = partition_dir(dir, topic.id, p);
    std::fs::create_dir_all(&folder).map_err(io_error(&folder))?;
    let mut writer: Option<(std::fs::File, PathBuf, u64)> = None;
    let mut next_offset: Option<i64> = None;
    for entry in tree.scan_prefix([b'b']) {
        let (_, value) = entry?;
        let batch = Batch::from_stored(bytes::Bytes::copy_from_slice(&value)).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        if next_offset.is_some_and(|next| next != batch.base_offset()) {
            return Err(StorageError::Corrupt(format!("sled store: batch {} of {}-{p} leaves a gap", batch.base_offset(), topic.name)));
        }
        let full = writer.as_ref().is_some_and(|(_, _, size)| *size + batch.len() as u64 > EmbeddedStorage::DEFAULT_SEGMENT_BYTES);
        if writer.is_none() || full {
            finish_segment(writer.take())?;
            let path = folder.join(SegmentFile::name(batch.base_offset()));
            let file = std::fs::File::create(&path).map_err(io_error(&path))?;
            writer = Some((file, path, 0));
        }
        if let Some((file, path, size)) = writer.as_mut() {
            file.write_all(batch.bytes()).map_err(io_error(path))?;
            *size += batch.len() as u64;
        }
        next_offset = Some(batch.next_offset());
    }
    finish_segment(writer)?;
    files::sync_dir(&folder)?;

    let log_start = match tree.get(b"s")? {
        Some(v) => i64::from_be_bytes(v.as_ref().try_into().map_err(|_| StorageError::Corrupt("sled store: a log start is not 8 bytes".into()))?),
        None => 0,
    };
    let producers = tree
        .scan_prefix([b'p'])
        .map(|entry| Ok(serde_json::from_slice::<ProducerState>(&entry?.1)?))
        .collect::<Result<Vec<_>>>()?;
    let snapshot = Snapshot { offset: next_offset.unwrap_or(log_start), producers };
    catalog.save_log_start(topic.id, p, log_start, Some(&snapshot))
}

fn finish_segment(writer: Option<(std::fs::File, PathBuf, u64)>) -> Result<()> {
    if let Some((file, path, _)) = writer {
        file.sync_all().map_err(io_error(&path))?;
    }
    Ok(())
}

/// Moves sled's files (`conf`, `db`, `blobs/`, `snap.*`) into `sled-imported/`.
fn move_sled_files_aside(dir: &Path) -> Result<()> {
    let aside = dir.join(SLED_IMPORTED);
    std::fs::create_dir_all(&aside).map_err(io_error(&aside))?;
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        let Some(name) = file_name(&path) else { continue };
        if name == "conf" || name == "db" || name == "blobs" || name.starts_with("snap.") {
            std::fs::rename(&path, aside.join(&name)).map_err(io_error(&path))?;
        }
    }
    files::sync_dir(dir)?;
    tracing::warn!(dir = %aside.display(), "the earlier sled store was imported; its files are kept here until you delete them");
    Ok(())
}

// -- helpers ----------------------------------------------------------------------------------

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let Some(bytes) = files::read_optional(path)? else { return Ok(None) };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| StorageError::Corrupt(format!("{}: {e}", path.display())))
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path)(e)),
    }
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name().and_then(|n| n.to_str()).map(str::to_owned)
}

fn unhex(name: String) -> Option<String> {
    if !name.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..name.len()).step_by(2).map(|i| u8::from_str_radix(name.get(i..i + 2)?, 16).ok()).collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}
