//! The catalog's journal: what makes a catalog write durable without flushing sled.
//!
//! sled makes a write durable only with a flush, which syncs its log (`sync_file_range`) and
//! costs a fraction of a millisecond. Durable consumers write their state on every pull and
//! ack, consumers commit offsets every few seconds, so that cost adds up. Instead, each write
//! the trait promises durable is applied to sled (in memory) and appended as one record to
//! `catalog/journal` with a positioned `write()`: in the page cache, it survives a kill of the
//! process at once; with fsync the journal is fsynced too. Once the journal passes
//! [`CHECKPOINT_BYTES`], sled is flushed and the journal emptied. On open, the records are
//! applied again (they hold final values, so applying one twice changes nothing), sled is
//! flushed and the journal emptied.
//!
//! A record: payload length (u32), CRC-32C of the payload (u32), payload; the payload is a
//! list of writes: tree (u8), key length (u32), key, then 0 for a removal or 1, value length
//! (u32), value. A torn record at the end (a crash mid-append) fails its CRC and is dropped:
//! its write was never acknowledged.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::{Result, StorageError};

/// The journal is emptied (after a sled flush) once it grows past this.
pub(super) const CHECKPOINT_BYTES: u64 = 16 << 20;

const FILE: &str = "journal";

/// One write to a catalog tree: the tree's number, the key, the new value (`None`: removed).
pub(super) type Write = (u8, Vec<u8>, Option<Vec<u8>>);

pub(super) struct Journal {
    path: PathBuf,
    file: File,
    fsync: bool,
    /// Where the next record goes. Held while a write is applied and appended, so the journal
    /// orders writes as sled saw them.
    end: Mutex<u64>,
}

impl Journal {
    /// Opens the journal in `dir` and returns the writes of its whole records, in order.
    pub(super) fn open(dir: &Path, fsync: bool) -> Result<(Journal, Vec<Write>)> {
        let path = dir.join(FILE);
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io(&path))?;
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let (writes, whole) = decode_records(&bytes);
        if whole < bytes.len() {
            tracing::warn!(path = %path.display(), dropped = bytes.len() - whole, "dropping a torn record at the end of the catalog journal");
        }
        let journal = Journal { path, file, fsync, end: Mutex::new(bytes.len() as u64) };
        Ok((journal, writes))
    }

    /// Applies `writes` with `apply` and appends them as one record: durable against a kill
    /// when this returns, against a power loss after [`Journal::sync`]. `checkpoint` runs, with
    /// the journal held, once the journal is long enough: it must make every applied write
    /// durable in sled, after which the journal is emptied.
    pub(super) fn write(
        &self,
        writes: &[Write],
        apply: impl FnOnce(&[Write]) -> Result<()>,
        checkpoint: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let record = encode_record(writes);
        let mut end = self.end.lock().map_err(|_| StorageError::Engine("catalog journal lock poisoned by a panic".into()))?;
        apply(writes)?;
        self.file.write_all_at(&record, *end).map_err(io(&self.path))?;
        *end += record.len() as u64;
        if *end >= CHECKPOINT_BYTES {
            checkpoint()?;
            self.empty(&mut end)?;
        }
        Ok(())
    }

    /// With fsync, fsyncs the journal: every record appended before the call survives a power
    /// loss. Blocking.
    pub(super) fn sync(&self) -> Result<()> {
        if self.fsync {
            self.file.sync_data().map_err(io(&self.path))?;
        }
        Ok(())
    }

    /// [`Journal::sync`] as a task for a blocking thread; `None` when there is nothing to do.
    #[allow(clippy::type_complexity)]
    pub(super) fn sync_handle(&self) -> Result<Option<Box<dyn FnOnce() -> Result<()> + Send + 'static>>> {
        if !self.fsync {
            return Ok(None);
        }
        let (file, path) = (self.file.try_clone().map_err(io(&self.path))?, self.path.clone());
        Ok(Some(Box::new(move || file.sync_data().map_err(|source| StorageError::Io { path: path.display().to_string(), source }))))
    }

    /// Empties the journal once sled holds everything it recorded (after replay, or a flush).
    pub(super) fn truncate(&self) -> Result<()> {
        let mut end = self.end.lock().map_err(|_| StorageError::Engine("catalog journal lock poisoned by a panic".into()))?;
        self.empty(&mut end)
    }

    fn empty(&self, end: &mut u64) -> Result<()> {
        self.file.set_len(0).map_err(io(&self.path))?;
        if self.fsync {
            self.file.sync_all().map_err(io(&self.path))?;
        }
        *end = 0;
        Ok(())
    }
}

fn encode_record(writes: &[Write]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (tree, key, value) in writes {
        payload.push(*tree);
        payload.extend_from_slice(&(key.len() as u32).to_be_bytes());
        payload.extend_from_slice(key);
        match value {
            None => payload.push(0),
            Some(value) => {
                payload.push(1);
                payload.extend_from_slice(&(value.len() as u32).to_be_bytes());
                payload.extend_from_slice(value);
            }
        }
    }
    let mut record = Vec::with_capacity(8 + payload.len());
    record.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    record.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    record.extend_from_slice(&payload);
    record
}

/// The writes of the whole records at the start of `bytes`, and how many bytes they take.
fn decode_records(bytes: &[u8]) -> (Vec<Write>, usize) {
    let mut writes = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else { break };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Some(record) = decode_payload(payload) else { break };
        writes.extend(record);
        at += 8 + len;
    }
    (writes, at)
}

fn decode_payload(mut payload: &[u8]) -> Option<Vec<Write>> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (bytes.get(..n)?, bytes.get(n..)?);
        *bytes = rest;
        Some(head)
    }
    fn take_u32(bytes: &mut &[u8]) -> Option<usize> {
        let b = take(bytes, 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    let mut writes = Vec::new();
    while !payload.is_empty() {
        let tree = take(&mut payload, 1)?[0];
        let key_len = take_u32(&mut payload)?;
        let key = take(&mut payload, key_len)?.to_vec();
        let value = match take(&mut payload, 1)?[0] {
            0 => None,
            1 => {
                let len = take_u32(&mut payload)?;
                Some(take(&mut payload, len)?.to_vec())
            }
            _ => return None,
        };
        writes.push((tree, key, value));
    }
    Some(writes)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.display().to_string(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_order_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first: Vec<Write> = vec![(1, b"a".to_vec(), Some(b"one".to_vec())), (2, b"b".to_vec(), None)];
        let second: Vec<Write> = vec![(1, b"a".to_vec(), Some(b"two".to_vec()))];
        {
            let (journal, replay) = Journal::open(dir.path(), false).expect("open");
            assert!(replay.is_empty());
            for writes in [&first, &second] {
                journal.write(writes, |_| Ok(()), || Ok(())).expect("write");
            }
        }
        let path = dir.path().join(FILE);
        let whole = std::fs::read(&path).expect("read");
        let mut torn = whole.clone();
        torn.extend_from_slice(&encode_record(&first)[..7]);
        std::fs::write(&path, &torn).expect("tear");

        let (journal, replay) = Journal::open(dir.path(), false).expect("reopen");
        assert_eq!(replay, [first.clone(), second].concat());
        journal.truncate().expect("truncate");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 0);

        let mut flipped = whole;
        flipped[10] ^= 1;
        std::fs::write(&path, &flipped).expect("flip");
        assert!(Journal::open(dir.path(), false).expect("reopen").1.is_empty(), "a damaged first record ends the journal");
    }

    #[test]
    fn a_long_journal_checkpoints_and_empties() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (journal, _) = Journal::open(dir.path(), false).expect("open");
        let big: Vec<Write> = vec![(0, b"k".to_vec(), Some(vec![7; (CHECKPOINT_BYTES / 2) as usize]))];
        let mut checkpoints = 0;
        for _ in 0..3 {
            journal.write(&big, |_| Ok(()), || {
                checkpoints += 1;
                Ok(())
            })
            .expect("write");
        }
        assert_eq!(checkpoints, 1);
        assert!(std::fs::metadata(dir.path().join(FILE)).expect("meta").len() < CHECKPOINT_BYTES);
    }
}
