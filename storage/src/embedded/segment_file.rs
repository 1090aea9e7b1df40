//! One append-only segment file: the stored batches of a partition, back to back, from the
//! base offset in its name on.
//!
//! Writes and reads are positioned (`pwrite`/`pread`), so the file has no shared cursor and
//! readers never wait for the appender.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use super::files::io_error;
use crate::{Batch, Result, StorageError, RECORD_BATCH_OVERHEAD};

const SUFFIX: &str = ".log";

/// Bytes before the batch length field ends: base offset (8) + batch length (4).
const LENGTH_PREFIX: usize = 12;

/// What the index needs of a stored batch, read from its header alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BatchHeader {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    /// The whole batch, header included.
    pub len: u32,
}

impl BatchHeader {
    pub fn of(batch: &Batch) -> BatchHeader {
        BatchHeader {
            base_offset: batch.base_offset(),
            last_offset: batch.last_offset(),
            max_timestamp: batch.max_timestamp(),
            len: batch.len() as u32,
        }
    }

    /// Reads the fields from the first [`RECORD_BATCH_OVERHEAD`] bytes of a stored batch.
    fn parse(bytes: &[u8; RECORD_BATCH_OVERHEAD]) -> BatchHeader {
        let i64_at = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
        let i32_at = |at: usize| i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
        let base_offset = i64_at(0);
        BatchHeader {
            base_offset,
            last_offset: base_offset + i64::from(i32_at(23)),
            max_timestamp: i64_at(35),
            len: (i64::from(i32_at(8)) + LENGTH_PREFIX as i64).clamp(0, i64::from(u32::MAX)) as u32,
        }
    }
}

pub(super) struct SegmentFile {
    path: PathBuf,
    file: File,
    /// Written since the last fsync; only tracked when the engine fsyncs.
    dirty: AtomicBool,
}

/// Where a scan of a segment stopped.
pub(super) struct ScanEnd {
    /// Bytes from the start that hold whole, valid batches.
    pub valid_len: u64,
    pub file_len: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub problem: Option<String>,
}

impl SegmentFile {
    /// The file name of the segment starting at `base_offset`; 20 digits sort like the offsets.
    pub fn name(base_offset: i64) -> String {
        format!("{base_offset:020}{SUFFIX}")
    }

    /// The base offset a segment file name stands for, if it is one.
    pub fn parse_name(name: &str) -> Option<i64> {
        let digits = name.strip_suffix(SUFFIX)?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// Creates the empty segment starting at `base_offset` in `dir`.
    pub fn create(dir: &Path, base_offset: i64) -> Result<SegmentFile> {
        let path = dir.join(Self::name(base_offset));
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(io_error(&path))?;
        Ok(SegmentFile { path, file, dirty: AtomicBool::new(false) })
    }

    /// Creates a new, empty file at `path` (a compacted segment being written).
    pub fn create_at(path: &Path) -> Result<SegmentFile> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path).map_err(io_error(path))?;
        Ok(SegmentFile { path: path.to_owned(), file, dirty: AtomicBool::new(false) })
    }

    /// The same open file, known by the name it was renamed to.
    pub fn renamed(self, path: PathBuf) -> SegmentFile {
        SegmentFile { path, ..self }
    }

    pub fn open(path: &Path) -> Result<SegmentFile> {
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(io_error(path))?;
        Ok(SegmentFile { path: path.to_owned(), file, dirty: AtomicBool::new(false) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length in bytes.
    pub fn len(&self) -> Result<u64> {
        Ok(self.file.metadata().map_err(io_error(&self.path))?.len())
    }

    pub fn write_at(&self, bytes: &[u8], position: u64) -> Result<()> {
        self.file.write_all_at(bytes, position).map_err(io_error(&self.path))
    }

    pub fn read_at(&self, position: u64, len: usize) -> Result<Bytes> {
        let mut buf = vec![0; len];
        self.file.read_exact_at(&mut buf, position).map_err(io_error(&self.path))?;
        Ok(Bytes::from(buf))
    }

    /// The header of the batch at `position`, which must lie within the first `end` bytes.
    pub fn header_at(&self, position: u64, end: u64) -> Result<BatchHeader> {
        let mut bytes = [0u8; RECORD_BATCH_OVERHEAD];
        if position + RECORD_BATCH_OVERHEAD as u64 > end {
            return Err(self.corrupt(position, "a batch header runs past the end of the data"));
        }
        self.file.read_exact_at(&mut bytes, position).map_err(io_error(&self.path))?;
        let header = BatchHeader::parse(&bytes);
        if (header.len as usize) < RECORD_BATCH_OVERHEAD || position + u64::from(header.len) > end {
            return Err(self.corrupt(position, &format!("a batch of {} bytes runs past the end of the data", header.len)));
        }
        Ok(header)
    }

    /// Walks batch headers from `position` (a batch boundary) up to `end`, until `stop` says so;
    /// returns the position and header of the batch it stopped at, if any.
    pub fn walk(&self, mut position: u64, end: u64, mut stop: impl FnMut(&BatchHeader) -> bool) -> Result<Option<(u64, BatchHeader)>> {
        while position < end {
            let header = self.header_at(position, end)?;
            if stop(&header) {
                return Ok(Some((position, header)));
            }
            position += u64::from(header.len);
        }
        Ok(None)
    }

    pub fn corrupt(&self, position: u64, what: &str) -> StorageError {
        StorageError::Corrupt(format!("{} at {position}: {what}", self.path.display()))
    }

    /// Cuts the file to `len` bytes and makes the new length durable.
    pub fn truncate(&self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(io_error(&self.path))?;
        self.file.sync_all().map_err(io_error(&self.path))
    }

    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(io_error(&self.path))
    }

    /// Marks the file written; true when it was clean, i.e. the caller must queue it for sync.
    pub fn mark_dirty(&self) -> bool {
        !self.dirty.swap(true, Ordering::AcqRel)
    }

    /// Called just before an fsync: writes after this point mark the file dirty again.
    pub fn mark_clean(&self) {
        self.dirty.store(false, Ordering::Release);
    }

    /// Walks the batches from the start of the file, checking each one's length, header and
    /// CRC, and hands each to `visit` with its position. Stops at the first batch that is cut
    /// off, invalid, or refused by `visit`.
    pub fn scan(&self, mut visit: impl FnMut(u64, &Batch) -> Result<(), String>) -> Result<ScanEnd> {
        let file_len = self.file.metadata().map_err(io_error(&self.path))?.len();
        let mut cursor = &self.file;
        cursor.seek(SeekFrom::Start(0)).map_err(io_error(&self.path))?;
        let mut reader = BufReader::with_capacity(1 << 20, cursor);
        let mut position = 0u64;
        let problem = loop {
            let remaining = file_len - position;
            if remaining == 0 {
                break None;
            }
            if remaining < LENGTH_PREFIX as u64 {
                break Some(format!("{remaining} bytes at the end are too few for a batch header"));
            }
            let mut prefix = [0u8; LENGTH_PREFIX];
            reader.read_exact(&mut prefix).map_err(io_error(&self.path))?;
            let declared = i32::from_be_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as i64 + LENGTH_PREFIX as i64;
            if declared < RECORD_BATCH_OVERHEAD as i64 || declared as u64 > remaining {
                break Some(format!("batch of {declared} bytes declared with {remaining} bytes left"));
            }
            let mut bytes = vec![0u8; declared as usize];
            bytes[..LENGTH_PREFIX].copy_from_slice(&prefix);
            reader.read_exact(&mut bytes[LENGTH_PREFIX..]).map_err(io_error(&self.path))?;
            let batch = match Batch::parse_stored(Bytes::from(bytes)) {
                Ok(batch) => batch,
                Err(e) => break Some(e.to_string()),
            };
            if let Err(reason) = visit(position, &batch) {
                break Some(reason);
            }
            position += declared as u64;
        };
        Ok(ScanEnd { valid_len: position, file_len, problem })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsuite::make_batch;

    #[test]
    fn names_sort_like_offsets_and_parse_back() {
        assert_eq!(SegmentFile::name(42), "00000000000000000042.log");
        assert_eq!(SegmentFile::parse_name("00000000000000000042.log"), Some(42));
        assert_eq!(SegmentFile::parse_name("42.log"), None);
        assert_eq!(SegmentFile::parse_name("00000000000000000042.log.tmp"), None);
        assert!(SegmentFile::name(9) < SegmentFile::name(10));
    }

    #[test]
    fn scan_stops_at_a_cut_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let segment = SegmentFile::create(dir.path(), 0).expect("create");
        let one = make_batch(2, 0, None);
        segment.write_at(&one, 0).expect("write");
        let two = Batch::parse(make_batch(3, 0, None)).expect("valid").with_base_offset(2);
        segment.write_at(&two.bytes()[..20], one.len() as u64).expect("write half");
        let mut seen = Vec::new();
        let end = segment.scan(|position, batch| {
            seen.push((position, batch.base_offset()));
            Ok(())
        });
        let end = end.expect("scan");
        assert_eq!(seen, vec![(0, 0)]);
        assert_eq!(end.valid_len, one.len() as u64);
        assert_eq!(end.file_len, one.len() as u64 + 20);
        assert!(end.problem.is_some());
    }
}
