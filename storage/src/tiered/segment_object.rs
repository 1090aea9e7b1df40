//! The format of one remote object: a range of the partition's batches exactly as the log
//! stores them (so a fetch from the remote tier returns the bytes a local fetch returned), then
//! a sparse index to find a batch by offset or time without reading the whole object.
//!
//! Index: `DSTI`, a version (u32), then entries of 24 bytes, big-endian: a batch's base offset,
//! its position, and the largest timestamp of the batches from it to the next entry. One entry
//! every [`INDEX_INTERVAL`] bytes of batches, and always one for the first batch.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{Batch, Result, StorageError, Topic};

const MAGIC: &[u8; 4] = b"DSTI";
const VERSION: u32 = 1;
const HEADER: usize = 8;
const ENTRY: usize = 24;
/// Batch bytes between index entries: a lookup reads at most this much before its batch.
pub(super) const INDEX_INTERVAL: u64 = 32 << 10;

/// An object ready to upload, and what the manifest records about it.
pub(super) struct Encoded {
    pub object: Bytes,
    pub bytes: u64,
    pub index_bytes: u64,
    pub max_timestamp: i64,
    pub max_timestamp_offset: i64,
}

/// Lays `batches` (back to back offsets, at least one) out as one object.
pub(super) fn encode(batches: &[Batch]) -> Encoded {
    let bytes: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let mut out = BytesMut::with_capacity(bytes as usize + HEADER + ENTRY * (1 + (bytes / INDEX_INTERVAL) as usize));
    let mut entries: Vec<Entry> = Vec::new();
    let (mut max_timestamp, mut max_timestamp_offset) = (i64::MIN, batches.first().map_or(0, Batch::base_offset));
    let mut last_indexed: Option<u64> = None;
    for batch in batches {
        let position = out.len() as u64;
        if last_indexed.is_none_or(|at| position - at >= INDEX_INTERVAL) {
            entries.push(Entry { base_offset: batch.base_offset(), position, max_timestamp: i64::MIN });
            last_indexed = Some(position);
        }
        if let Some(entry) = entries.last_mut() {
            entry.max_timestamp = entry.max_timestamp.max(batch.max_timestamp());
        }
        if batch.max_timestamp() > max_timestamp {
            (max_timestamp, max_timestamp_offset) = (batch.max_timestamp(), batch.base_offset());
        }
        out.put_slice(batch.bytes());
    }
    out.put_slice(MAGIC);
    out.put_u32(VERSION);
    for e in &entries {
        out.put_i64(e.base_offset);
        out.put_u64(e.position);
        out.put_i64(e.max_timestamp);
    }
    let index_bytes = out.len() as u64 - bytes;
    Encoded { object: out.freeze(), bytes, index_bytes, max_timestamp, max_timestamp_offset }
}

/// The object a partition's batches `[start, end)` go to: under the topic's name and id (a
/// topic created again under the same name gets other objects), named by the offsets it holds.
pub(super) fn object_name(prefix: &str, topic: &Topic, partition: i32, start: i64, end: i64) -> String {
    let prefix = prefix.trim_matches('/');
    let name = format!("{}-{}/{partition}/{start:020}-{end:020}.batches", topic.name, topic.id);
    if prefix.is_empty() { name } else { format!("{prefix}/{name}") }
}

/// Where every object of a topic lives.
pub(super) fn topic_prefix(prefix: &str, topic: &Topic) -> String {
    let prefix = prefix.trim_matches('/');
    let name = format!("{}-{}/", topic.name, topic.id);
    if prefix.is_empty() { name } else { format!("{prefix}/{name}") }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    base_offset: i64,
    position: u64,
    max_timestamp: i64,
}

/// A parsed index.
#[derive(Debug, Clone)]
pub(super) struct SparseIndex {
    entries: Vec<Entry>,
    /// Bytes of batches the index describes.
    bytes: u64,
}

impl SparseIndex {
    pub fn parse(mut index: Bytes, bytes: u64, object: &str) -> Result<SparseIndex> {
        let corrupt = |what: &str| StorageError::Corrupt(format!("remote object {object}: {what}"));
        if index.len() < HEADER || &index[..4] != MAGIC {
            return Err(corrupt("no index where the manifest says it starts"));
        }
        index.advance(4);
        let version = index.get_u32();
        if version != VERSION {
            return Err(corrupt(&format!("index version {version}, this broker reads {VERSION}")));
        }
        if index.is_empty() || !index.len().is_multiple_of(ENTRY) {
            return Err(corrupt(&format!("an index of {} bytes is not whole entries", index.len())));
        }
        let mut entries = Vec::with_capacity(index.len() / ENTRY);
        while index.has_remaining() {
            let entry = Entry { base_offset: index.get_i64(), position: index.get_u64(), max_timestamp: index.get_i64() };
            if entry.position >= bytes || entries.last().is_some_and(|e: &Entry| e.position >= entry.position) {
                return Err(corrupt("index positions out of order"));
            }
            entries.push(entry);
        }
        Ok(SparseIndex { entries, bytes })
    }

    /// The stretch of batch bytes `[from, to)` where the batch holding `offset` starts: from
    /// the last entry at or before it to the next entry.
    pub fn block_for_offset(&self, offset: i64) -> (u64, u64) {
        let i = self.entries.partition_point(|e| e.base_offset <= offset).saturating_sub(1);
        self.block(i)
    }

    /// The first stretch holding a batch whose largest timestamp is at or after `timestamp`.
    pub fn block_for_time(&self, timestamp: i64) -> Option<(u64, u64)> {
        self.entries.iter().position(|e| e.max_timestamp >= timestamp).map(|i| self.block(i))
    }

    fn block(&self, i: usize) -> (u64, u64) {
        let from = self.entries.get(i).map_or(0, |e| e.position);
        let to = self.entries.get(i + 1).map_or(self.bytes, |e| e.position);
        (from, to)
    }
}

/// Splits bytes read at a batch boundary into whole batches, checking each one's CRC (the
/// bytes crossed a network and another system) and that offsets follow on. A batch cut off at
/// the end is left out: the second value is the bytes it needs in all, counted from the start.
pub(super) fn split_batches(mut bytes: Bytes, object: &str) -> Result<(Vec<Batch>, Option<u64>)> {
    let mut out: Vec<Batch> = Vec::new();
    let mut consumed = 0u64;
    while !bytes.is_empty() {
        if bytes.len() < 12 {
            return Ok((out, Some(consumed + crate::RECORD_BATCH_OVERHEAD as u64)));
        }
        let declared = i64::from(i32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]])) + 12;
        if declared < crate::RECORD_BATCH_OVERHEAD as i64 {
            return Err(StorageError::Corrupt(format!("remote object {object}: a batch declares {declared} bytes")));
        }
        if declared as usize > bytes.len() {
            return Ok((out, Some(consumed + declared as u64)));
        }
        let batch = Batch::parse_stored(bytes.split_to(declared as usize))
            .map_err(|e| StorageError::Corrupt(format!("remote object {object} at byte {consumed}: {e}")))?;
        if let Some(before) = out.last()
            && batch.base_offset() != before.next_offset()
        {
            return Err(StorageError::Corrupt(format!(
                "remote object {object}: a batch at offset {} follows one ending at {}",
                batch.base_offset(),
                before.next_offset()
            )));
        }
        consumed += declared as u64;
        out.push(batch);
    }
    Ok((out, None))
}
