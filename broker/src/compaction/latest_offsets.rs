//! The latest offset of each key in the part of the log being cleaned (Kafka's offset map).
//!
//! Keys are kept whole, not hashed: a hash collision would make the cleaner drop a live
//! record. The map counts the memory it holds so a pass stops growing it at the broker's
//! `--log-cleaner-dedupe-buffer-size` and cleans up to there; the rest waits for the next pass.

use std::collections::HashMap;

use bytes::Bytes;

/// Bytes a map entry costs beyond its key: the offset, the hash table's slot and its
/// `Bytes` handle, roughly.
const ENTRY_OVERHEAD: usize = 48;

pub struct LatestOffsets {
    offsets: HashMap<Bytes, i64>,
    bytes: usize,
    limit: usize,
}

impl LatestOffsets {
    pub fn new(limit: usize) -> LatestOffsets {
        LatestOffsets { offsets: HashMap::new(), bytes: 0, limit }
    }

    /// Records `key` at `offset`; offsets come in increasing order, so the last one wins.
    pub fn insert(&mut self, key: Bytes, offset: i64) {
        let len = key.len();
        if self.offsets.insert(key, offset).is_none() {
            self.bytes += len + ENTRY_OVERHEAD;
        }
    }

    /// The latest offset seen for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.offsets.get(key).copied()
    }

    /// True once the map holds as much as it may.
    pub fn is_full(&self) -> bool {
        self.bytes >= self.limit
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }
}
