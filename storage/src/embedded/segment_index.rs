//! A segment's sparse index, and its `<base offset>.index` file.
//!
//! Like Kafka's offset and time indexes, the index holds one entry per
//! [`INDEX_INTERVAL_BYTES`] of batches rather than one per batch, so memory grows with the
//! bytes stored, not with the number of batches: a read starts at the entry at or before its
//! offset and walks batch headers from there. Each entry also carries the largest timestamp of
//! the batches before it, which serves lookups by time the same way.
//!
//! A segment's index is written to its file when the segment is sealed (a newer one becomes
//! active), so opening the store reads index files instead of scanning sealed segments. The
//! file is only trusted when its checksum holds, it names the segment's base offset and
//! length, and the last batch it names is whole and valid; otherwise the segment is scanned.

use std::path::{Path, PathBuf};

use super::segment_file::BatchHeader;
use crate::{Result, StorageError};

/// Bytes of batches between two index entries (Kafka's `index.interval.bytes` default).
pub(super) const INDEX_INTERVAL_BYTES: u64 = 4096;

const SUFFIX: &str = ".index";
const MAGIC: &[u8; 4] = b"DSX1";
/// magic, base offset, end offset, size, max timestamp, its offset, last position, count.
const HEADER_LEN: usize = 4 + 8 * 7 + 4;
const ENTRY_LEN: usize = 8 + 4 + 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IndexEntry {
    pub base_offset: i64,
    pub position: u32,
    /// The largest max timestamp of the segment's batches before this one (`i64::MIN`: none).
    pub max_timestamp_before: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SegmentIndex {
    pub entries: Vec<IndexEntry>,
    /// The largest batch max timestamp in the segment, `i64::MIN` while it is empty.
    pub max_timestamp: i64,
    /// Base offset of the first batch holding `max_timestamp`.
    pub max_timestamp_offset: i64,
    /// Where the last batch starts.
    pub last_position: u64,
    bytes_since_entry: u64,
}

impl Default for SegmentIndex {
    fn default() -> Self {
        SegmentIndex { entries: Vec::new(), max_timestamp: i64::MIN, max_timestamp_offset: -1, last_position: 0, bytes_since_entry: 0 }
    }
}

/// What an index file says about its sealed segment.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct IndexFile {
    pub base_offset: i64,
    pub end_offset: i64,
    pub size: u64,
    pub index: SegmentIndex,
}

impl SegmentIndex {
    /// Accounts for the batch `header` stored at `position`, after every earlier batch.
    pub fn add(&mut self, header: &BatchHeader, position: u64) -> Result<()> {
        if self.entries.is_empty() || self.bytes_since_entry >= INDEX_INTERVAL_BYTES {
            let position = u32::try_from(position)
                .map_err(|_| StorageError::Engine(format!("segment position {position} past 4 GiB")))?;
            self.entries.push(IndexEntry { base_offset: header.base_offset, position, max_timestamp_before: self.max_timestamp });
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += u64::from(header.len);
        if header.max_timestamp > self.max_timestamp || self.max_timestamp_offset < 0 {
            self.max_timestamp = header.max_timestamp;
            self.max_timestamp_offset = header.base_offset;
        }
        self.last_position = position;
        Ok(())
    }

    /// Where to start walking for the batch holding `offset`: the last entry at or before it.
    pub fn position_for_offset(&self, offset: i64) -> u64 {
        let i = self.entries.partition_point(|e| e.base_offset <= offset);
        i.checked_sub(1).map_or(0, |i| u64::from(self.entries[i].position))
    }

    /// Where to start walking for the first batch whose max timestamp reaches `timestamp`:
    /// every batch before the returned position has a smaller one.
    pub fn position_for_time(&self, timestamp: i64) -> u64 {
        let i = self.entries.partition_point(|e| e.max_timestamp_before < timestamp);
        i.checked_sub(1).map_or(0, |i| u64::from(self.entries[i].position))
    }
}

pub(super) fn path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}{SUFFIX}"))
}

pub(super) fn encode(file: &IndexFile) -> Vec<u8> {
    let ix = &file.index;
    let mut out = Vec::with_capacity(HEADER_LEN + ix.entries.len() * ENTRY_LEN + 4);
    out.extend_from_slice(MAGIC);
    for v in [file.base_offset, file.end_offset, file.size as i64, ix.max_timestamp, ix.max_timestamp_offset, ix.last_position as i64] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&(ix.bytes_since_entry as i64).to_be_bytes());
    out.extend_from_slice(&(ix.entries.len() as u32).to_be_bytes());
    for e in &ix.entries {
        out.extend_from_slice(&e.base_offset.to_be_bytes());
        out.extend_from_slice(&e.position.to_be_bytes());
        out.extend_from_slice(&e.max_timestamp_before.to_be_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Reads an index file; `Err` says why it cannot be trusted.
pub(super) fn decode(bytes: &[u8]) -> std::result::Result<IndexFile, String> {
    if bytes.len() < HEADER_LEN + 4 {
        return Err(format!("{} bytes are too few for an index", bytes.len()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err("checksum mismatch".into());
    }
    if &body[..4] != MAGIC {
        return Err("not an index file of this version".into());
    }
    let i64_at = |at: usize| i64::from_be_bytes(body[at..at + 8].try_into().unwrap_or([0; 8]));
    let count = u32::from_be_bytes(body[HEADER_LEN - 4..HEADER_LEN].try_into().unwrap_or([0; 4])) as usize;
    if body.len() != HEADER_LEN + count * ENTRY_LEN {
        return Err(format!("{count} entries declared in {} bytes", body.len()));
    }
    let entries = body[HEADER_LEN..]
        .chunks_exact(ENTRY_LEN)
        .map(|c| IndexEntry {
            base_offset: i64::from_be_bytes(c[..8].try_into().unwrap_or([0; 8])),
            position: u32::from_be_bytes(c[8..12].try_into().unwrap_or([0; 4])),
            max_timestamp_before: i64::from_be_bytes(c[12..20].try_into().unwrap_or([0; 8])),
        })
        .collect();
    let (size, last_position, bytes_since_entry) = (i64_at(20), i64_at(44), i64_at(52));
    if size < 0 || last_position < 0 || bytes_since_entry < 0 {
        return Err("negative sizes".into());
    }
    Ok(IndexFile {
        base_offset: i64_at(4),
        end_offset: i64_at(12),
        size: size as u64,
        index: SegmentIndex {
            entries,
            max_timestamp: i64_at(28),
            max_timestamp_offset: i64_at(36),
            last_position: last_position as u64,
            bytes_since_entry: bytes_since_entry as u64,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(base_offset: i64, len: u32, max_timestamp: i64) -> BatchHeader {
        BatchHeader { base_offset, last_offset: base_offset + 9, max_timestamp, len }
    }

    fn sample() -> SegmentIndex {
        let mut ix = SegmentIndex::default();
        let mut position = 0;
        for (i, ts) in [50, 10, 70, 70, 20, 90].into_iter().enumerate() {
            ix.add(&header(100 + i as i64 * 10, 3000, ts), position).expect("add");
            position += 3000;
        }
        ix
    }

    #[test]
    fn entries_are_sparse_and_find_their_batches() {
        let ix = sample();
        // 3000-byte batches with a 4096-byte interval: an entry every second batch.
        assert_eq!(ix.entries.iter().map(|e| e.base_offset).collect::<Vec<_>>(), vec![100, 120, 140]);
        assert_eq!((ix.max_timestamp, ix.max_timestamp_offset, ix.last_position), (90, 150, 15000));
        assert_eq!(ix.position_for_offset(100), 0);
        assert_eq!(ix.position_for_offset(135), 6000);
        assert_eq!(ix.position_for_offset(99), 0);
        assert_eq!(ix.position_for_time(60), 6000, "batches before 120 all stay below 60");
        assert_eq!(ix.position_for_time(50), 0, "the first batch reaches 50");
        assert_eq!(ix.position_for_time(80), 12000);
    }

    #[test]
    fn files_round_trip_and_damage_is_detected() {
        let file = IndexFile { base_offset: 100, end_offset: 160, size: 18000, index: sample() };
        let bytes = encode(&file);
        assert_eq!(decode(&bytes).expect("decode"), file);
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        assert!(decode(&flipped).expect_err("damaged").contains("checksum"));
        assert!(decode(&bytes[..bytes.len() - 5]).is_err());
        assert!(decode(b"").is_err());
    }
}
