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
use crate::{Batch, Result, RECORD_BATCH_OVERHEAD};

const SUFFIX: &str = ".log";

/// Bytes before the batch length field ends: base offset (8) + batch length (4).
const LENGTH_PREFIX: usize = 12;

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

    pub fn open(path: &Path) -> Result<SegmentFile> {
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(io_error(path))?;
        Ok(SegmentFile { path: path.to_owned(), file, dirty: AtomicBool::new(false) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write_at(&self, bytes: &[u8], position: u64) -> Result<()> {
        self.file.write_all_at(bytes, position).map_err(io_error(&self.path))
    }

    pub fn read_at(&self, position: u64, len: usize) -> Result<Bytes> {
        let mut buf = vec![0; len];
        self.file.read_exact_at(&mut buf, position).map_err(io_error(&self.path))?;
        Ok(Bytes::from(buf))
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
            let batch = match Batch::parse(Bytes::from(bytes)) {
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
