//! The catalog: everything but the record batches, in one sled database under `catalog/`.
//!
//! Trees:
//! - `topics`: topic name → topic (JSON);
//! - `partitions`: `l` or `s`, topic id, partition (big-endian) → the log start offset, or the
//!   latest producer snapshot (JSON; see [`super::producers`]);
//! - `groups`: group id → membership (JSON);
//! - `offsets`: group id, NUL, topic, NUL, partition (big-endian) → committed offset (JSON);
//! - `documents`: kind, NUL, key → the document's bytes;
//! - `meta`: the end of the last reserved block of producer ids, and the catalog's version.
//!
//! Group and topic names and document kinds cannot contain NUL, so each group's offsets and
//! each kind's documents form one key prefix. Writes the `Storage` trait promises durable
//! (commits, groups, documents, topic changes, log starts) go through the [`Journal`]; callers
//! then wait for [`Catalog::durable`]. Producer snapshots are written to sled alone: losing
//! one only makes the next open replay more.

use std::path::Path;

use serde::{de::DeserializeOwned, Serialize};
use uuid::Uuid;

use super::journal::{Journal, Write};
use super::producers::Snapshot;
use crate::{CommittedOffset, GroupState, Result, StorageError, Topic};

/// The folder of the sled database, under the data directory.
pub(super) const FOLDER: &str = "catalog";

const VERSION_KEY: &[u8] = b"version";
const VERSION: u64 = 1;
const PRODUCER_IDS_KEY: &[u8] = b"producer-ids-reserved";
/// Producer ids are reserved this many at a time: one durable write per block.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// The trees, by the number the journal records them under.
const TOPICS: u8 = 0;
const PARTITIONS: u8 = 1;
const GROUPS: u8 = 2;
const OFFSETS: u8 = 3;
const DOCUMENTS: u8 = 4;
const META: u8 = 5;
const TREE_NAMES: [&str; 6] = ["topics", "partitions", "groups", "offsets", "documents", "meta"];

pub(super) struct Catalog {
    /// Created by this open: a data folder with partitions but a new catalog lost its catalog.
    pub(super) is_new: bool,
    db: sled::Db,
    trees: Vec<sled::Tree>,
    journal: Journal,
    /// sled's log file, fsynced after each flush when the engine fsyncs: sled's own flush uses
    /// `sync_file_range`, which neither flushes the drive's cache nor the file's metadata.
    fsync_file: Option<std::fs::File>,
    /// Held from the read to the write of a document update.
    documents_lock: tokio::sync::Mutex<()>,
    producer_ids: std::sync::Mutex<ProducerIds>,
}

/// The ids this run may hand out: `next` up to `reserved_end`, which is durable.
struct ProducerIds {
    next: i64,
    reserved_end: i64,
}

impl Catalog {
    pub(super) fn open(data_dir: &Path, fsync: bool) -> Result<Catalog> {
        let dir = data_dir.join(FOLDER);
        // sled opens a damaged or emptied database as a new, empty one; a catalog that had
        // been created before must therefore still hold its version.
        let existed = dir.join("db").exists() || dir.join("conf").exists();
        let db = open_db(&dir)?;
        let trees = TREE_NAMES.iter().map(|name| db.open_tree(name)).collect::<sled::Result<Vec<_>>>()?;
        let meta = &trees[META as usize];
        let is_new = match meta.get(VERSION_KEY)? {
            None if existed => {
                return Err(StorageError::Corrupt(format!(
                    "the catalog in {} is damaged: it opens without its contents. Nothing was changed. \
                     Restore that folder from a backup, or move the data folder aside to start with an empty store \
                     (if this store never held data, deleting {} is enough)",
                    dir.display(),
                    dir.display()
                )))
            }
            None => {
                meta.insert(VERSION_KEY, &VERSION.to_be_bytes())?;
                db.flush()?;
                true
            }
            Some(v) if v.as_ref() == VERSION.to_be_bytes() => false,
            Some(v) => {
                return Err(StorageError::Corrupt(format!(
                    "{} holds catalog version {:?}; this build reads version {VERSION}",
                    dir.display(),
                    v.as_ref()
                )))
            }
        };
        let fsync_file = if fsync {
            let log = dir.join("db");
            Some(std::fs::File::open(&log).map_err(|e| StorageError::Io { path: log.display().to_string(), source: e })?)
        } else {
            None
        };
        let (journal, replay) = Journal::open(&dir, fsync)?;
        let catalog = Catalog {
            is_new,
            db,
            trees,
            journal,
            fsync_file,
            documents_lock: tokio::sync::Mutex::new(()),
            producer_ids: std::sync::Mutex::new(ProducerIds { next: 0, reserved_end: 0 }),
        };
        // What the last run journaled but sled may not have flushed.
        catalog.apply(&replay)?;
        catalog.flush()?;
        catalog.journal.truncate()?;
        let reserved = match catalog.trees[META as usize].get(PRODUCER_IDS_KEY)? {
            Some(v) => i64_from(&v, "the producer id reservation")?,
            None => 0,
        };
        if let Ok(mut ids) = catalog.producer_ids.lock() {
            *ids = ProducerIds { next: reserved, reserved_end: reserved };
        }
        Ok(catalog)
    }

    fn tree(&self, tree: u8) -> &sled::Tree {
        &self.trees[tree as usize]
    }

    /// Applies writes to the trees, one sled batch per tree.
    fn apply(&self, writes: &[Write]) -> Result<()> {
        for (number, tree) in self.trees.iter().enumerate() {
            let mut batch = sled::Batch::default();
            let mut any = false;
            for (_, key, value) in writes.iter().filter(|(t, ..)| *t as usize == number) {
                match value {
                    Some(value) => batch.insert(key.as_slice(), value.as_slice()),
                    None => batch.remove(key.as_slice()),
                }
                any = true;
            }
            if any {
                tree.apply_batch(batch)?;
            }
        }
        Ok(())
    }

    /// Applies `writes` and journals them; [`Catalog::durable`] then makes them durable.
    fn write(&self, writes: Vec<Write>) -> Result<()> {
        self.journal.write(&writes, |w| self.apply(w), || self.flush())
    }

    /// Makes every write journaled so far durable: it already survives a kill of the process;
    /// with fsync this fsyncs the journal. Blocking: call it off the async runtime.
    pub(super) fn durable(&self) -> Result<()> {
        self.journal.sync()
    }

    /// [`Catalog::durable`] from async code: the fsync, if any, on a worker thread.
    pub(super) async fn durable_async(&self) -> Result<()> {
        match self.journal.sync_handle()? {
            None => Ok(()),
            Some(sync) => tokio::task::spawn_blocking(sync).await.map_err(|e| StorageError::Engine(format!("fsync task: {e}")))?,
        }
    }

    /// Empties the journal (tests: the state after a checkpoint).
    #[cfg(test)]
    pub(super) fn truncate_journal(&self) -> Result<()> {
        self.journal.truncate()
    }

    /// Makes sled itself durable: its flush, and with fsync an fsync of its log. Blocking.
    pub(super) fn flush(&self) -> Result<()> {
        self.db.flush()?;
        if let Some(file) = &self.fsync_file {
            file.sync_data().map_err(|e| StorageError::Engine(format!("fsync of the catalog: {e}")))?;
        }
        Ok(())
    }

    // -- topics and partitions ----------------------------------------------------------------

    pub(super) fn topics(&self) -> Result<Vec<Topic>> {
        self.tree(TOPICS).iter().map(|entry| decode(&entry?.1, "a topic")).collect()
    }

    pub(super) fn save_topic(&self, topic: &Topic) -> Result<()> {
        self.write(vec![(TOPICS, topic.name.as_bytes().to_vec(), Some(encode(topic)?))])
    }

    /// Forgets a topic and what its partitions kept here.
    pub(super) fn remove_topic(&self, topic: &Topic) -> Result<()> {
        let mut writes: Vec<Write> = vec![(TOPICS, topic.name.as_bytes().to_vec(), None)];
        for kind in [LOG_START, SNAPSHOT] {
            let mut prefix = vec![kind];
            prefix.extend_from_slice(topic.id.as_bytes());
            for entry in self.tree(PARTITIONS).scan_prefix(prefix) {
                writes.push((PARTITIONS, entry?.0.to_vec(), None));
            }
        }
        self.write(writes)
    }

    pub(super) fn log_start(&self, topic: Uuid, partition: i32) -> Result<Option<i64>> {
        self.tree(PARTITIONS).get(partition_key(LOG_START, topic, partition))?.map(|v| i64_from(&v, "a log start")).transpose()
    }

    pub(super) fn producer_snapshot(&self, topic: Uuid, partition: i32) -> Result<Option<Snapshot>> {
        self.tree(PARTITIONS).get(partition_key(SNAPSHOT, topic, partition))?.map(|v| decode(&v, "a producer snapshot")).transpose()
    }

    /// Saves a producer snapshot, not yet durable: a lost snapshot only means a longer replay.
    pub(super) fn save_producer_snapshot(&self, topic: Uuid, partition: i32, snapshot: &Snapshot) -> Result<()> {
        self.tree(PARTITIONS).insert(partition_key(SNAPSHOT, topic, partition), encode(snapshot)?)?;
        Ok(())
    }

    /// Moves the log start and, with it, the producer snapshot that stands in for the batches
    /// about to be deleted, in one journal record. Durable after [`Catalog::durable`].
    pub(super) fn save_log_start(&self, topic: Uuid, partition: i32, log_start: i64, snapshot: Option<&Snapshot>) -> Result<()> {
        let mut writes: Vec<Write> = vec![(PARTITIONS, partition_key(LOG_START, topic, partition).to_vec(), Some(log_start.to_be_bytes().to_vec()))];
        if let Some(snapshot) = snapshot {
            writes.push((PARTITIONS, partition_key(SNAPSHOT, topic, partition).to_vec(), Some(encode(snapshot)?)));
        }
        self.write(writes)
    }

    // -- groups and committed offsets ---------------------------------------------------------

    pub(super) fn save_group(&self, group: &GroupState) -> Result<()> {
        self.write(vec![(GROUPS, group.group_id.as_bytes().to_vec(), Some(encode(group)?))])
    }

    pub(super) fn groups(&self) -> Result<Vec<GroupState>> {
        self.tree(GROUPS).iter().map(|entry| decode(&entry?.1, "a group")).collect()
    }

    pub(super) fn delete_group(&self, group_id: &str) -> Result<()> {
        let mut writes: Vec<Write> = vec![(GROUPS, group_id.as_bytes().to_vec(), None)];
        for entry in self.tree(OFFSETS).scan_prefix(group_prefix(group_id)) {
            writes.push((OFFSETS, entry?.0.to_vec(), None));
        }
        self.write(writes)
    }

    pub(super) fn commit(&self, group_id: &str, offsets: &[CommittedOffset]) -> Result<()> {
        let writes = offsets
            .iter()
            .map(|o| Ok((OFFSETS, offset_key(group_id, &o.topic, o.partition), Some(encode(o)?))))
            .collect::<Result<Vec<Write>>>()?;
        self.write(writes)
    }

    pub(super) fn committed(&self, group_id: &str) -> Result<Vec<CommittedOffset>> {
        self.tree(OFFSETS).scan_prefix(group_prefix(group_id)).map(|entry| decode(&entry?.1, "a committed offset")).collect()
    }

    pub(super) fn delete_offsets(&self, group_id: &str, partitions: &[(String, i32)]) -> Result<()> {
        self.write(partitions.iter().map(|(topic, partition)| (OFFSETS, offset_key(group_id, topic, *partition), None)).collect())
    }

    pub(super) fn groups_with_offsets(&self) -> Result<Vec<String>> {
        let mut groups: Vec<String> = Vec::new();
        for entry in self.tree(OFFSETS).iter() {
            let (key, _) = entry?;
            let end = key.iter().position(|b| *b == 0).unwrap_or(key.len());
            let group = String::from_utf8_lossy(&key[..end]).into_owned();
            if groups.last() != Some(&group) {
                groups.push(group);
            }
        }
        Ok(groups)
    }

    // -- producer ids -------------------------------------------------------------------------

    /// The next producer id; every thousandth call reserves a block durably first.
    pub(super) fn next_producer_id(&self) -> Result<i64> {
        let mut ids = self.producer_ids.lock().map_err(|_| StorageError::Engine("producer id lock poisoned by a panic".into()))?;
        if ids.next >= ids.reserved_end {
            let end = ids.next.checked_add(PRODUCER_ID_BLOCK).ok_or_else(|| StorageError::Engine("producer ids exhausted".into()))?;
            self.write(vec![(META, PRODUCER_IDS_KEY.to_vec(), Some(end.to_be_bytes().to_vec()))])?;
            self.durable()?;
            ids.reserved_end = end;
        }
        let id = ids.next;
        ids.next += 1;
        Ok(id)
    }

    /// Makes sure ids below `floor` are never handed out (ids an imported store used).
    pub(super) fn reserve_producer_ids_below(&self, floor: i64) -> Result<()> {
        let mut ids = self.producer_ids.lock().map_err(|_| StorageError::Engine("producer id lock poisoned by a panic".into()))?;
        if ids.reserved_end < floor {
            self.write(vec![(META, PRODUCER_IDS_KEY.to_vec(), Some(floor.to_be_bytes().to_vec()))])?;
            *ids = ProducerIds { next: floor, reserved_end: floor };
        }
        Ok(())
    }

    // -- documents ----------------------------------------------------------------------------

    pub(super) fn document(&self, kind: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.tree(DOCUMENTS).get(document_key(kind, key))?.map(|v| v.to_vec()))
    }

    pub(super) fn documents(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = document_key(kind, "");
        self.tree(DOCUMENTS)
            .scan_prefix(&prefix)
            .map(|entry| {
                let (k, v) = entry?;
                let key = String::from_utf8(k[prefix.len()..].to_vec())
                    .map_err(|_| StorageError::Corrupt("a document key is not UTF-8".into()))?;
                Ok((key, v.to_vec()))
            })
            .collect()
    }

    /// Writes a document without the update protocol: for imports.
    pub(super) fn put_document(&self, kind: &str, key: &str, bytes: &[u8]) -> Result<()> {
        self.write(vec![(DOCUMENTS, document_key(kind, key), Some(bytes.to_vec()))])
    }

    pub(super) async fn update_document(
        &self,
        kind: &str,
        key: &str,
        update: &mut crate::DocumentUpdate<'_>,
    ) -> Result<Option<Vec<u8>>> {
        let _held = self.documents_lock.lock().await;
        let id = document_key(kind, key);
        let current = self.tree(DOCUMENTS).get(&id)?;
        let next = update(current.as_deref())?;
        self.write(vec![(DOCUMENTS, id, next.clone())])?;
        self.durable_async().await?;
        Ok(next)
    }
}

/// Opens the sled database. sled releases its lock from a background thread after the last
/// handle of an earlier open in this process drops, so a reopen (tests do it) waits briefly.
fn open_db(dir: &Path) -> Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).open() {
            Ok(db) => return Ok(db),
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(StorageError::Engine(format!("cannot open the catalog in {}: {e}", dir.display()))),
        }
    }
}

const LOG_START: u8 = b'l';
const SNAPSHOT: u8 = b's';

fn partition_key(kind: u8, topic: Uuid, partition: i32) -> [u8; 21] {
    let mut key = [0u8; 21];
    key[0] = kind;
    key[1..17].copy_from_slice(topic.as_bytes());
    key[17..].copy_from_slice(&partition.to_be_bytes());
    key
}

fn group_prefix(group_id: &str) -> Vec<u8> {
    let mut key = group_id.as_bytes().to_vec();
    key.push(0);
    key
}

fn offset_key(group_id: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut key = group_prefix(group_id);
    key.extend_from_slice(topic.as_bytes());
    key.push(0);
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

/// `kind \0 key`: kinds hold no NUL, so one kind's keys form one prefix.
fn document_key(kind: &str, key: &str) -> Vec<u8> {
    let mut id = Vec::with_capacity(kind.len() + 1 + key.len());
    id.extend_from_slice(kind.as_bytes());
    id.push(0);
    id.extend_from_slice(key.as_bytes());
    id
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StorageError::Engine(format!("cannot encode a catalog entry: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::Corrupt(format!("{what} in the catalog: {e}")))
}

fn i64_from(bytes: &[u8], what: &str) -> Result<i64> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| StorageError::Corrupt(format!("{what} in the catalog is not 8 bytes")))?;
    Ok(i64::from_be_bytes(array))
}
