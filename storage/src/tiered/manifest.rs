//! What a partition has in the remote tier: its manifest, one document per partition in the
//! store the broker already uses (sled or Postgres), so a restart resumes where uploads
//! stopped and, on Postgres, every broker can serve remote reads.
//!
//! An object is uploaded first and added to the manifest after; a crash in between leaves an
//! object the next upload writes again under the same name, never a duplicate range.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The document kind manifests are stored under.
pub(super) const KIND: &str = "tier.manifest";

/// The manifest's document key.
pub(super) fn key(topic_id: Uuid, partition: i32) -> String {
    format!("{topic_id}/{partition}")
}

/// One partition's remote segments and its log start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The first offset readable anywhere, remote or local: DeleteRecords and retention raise
    /// it, and remote segments wholly below it are deleted.
    pub log_start: i64,
    /// Oldest first, back to back: each starts where the one before ends. The first may start
    /// below the log start (with the batch the log start cuts through).
    pub segments: Vec<RemoteSegment>,
}

/// One uploaded object: the partition's batches `[start, end)` exactly as stored, followed by
/// their sparse index (see `segment_object`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSegment {
    pub start: i64,
    pub end: i64,
    /// Bytes of batches, where the index begins.
    pub bytes: u64,
    /// Bytes of the index after them.
    pub index_bytes: u64,
    pub max_timestamp: i64,
    /// The first batch holding `max_timestamp`.
    pub max_timestamp_offset: i64,
    /// The object's name in the bucket.
    pub object: String,
}

impl Manifest {
    /// Where the next upload must start: the end of the last segment, else the log start.
    pub fn end(&self) -> i64 {
        self.segments.last().map_or(self.log_start, |s| s.end)
    }

    /// The segment holding `offset`, when one does and it is not below the log start.
    pub fn segment_of(&self, offset: i64) -> Option<&RemoteSegment> {
        if offset < self.log_start {
            return None;
        }
        let i = self.segments.partition_point(|s| s.end <= offset);
        self.segments.get(i).filter(|s| s.start <= offset)
    }

    /// Bytes of batches held remotely.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Raises the log start to `offset` and takes out the segments wholly below it, which it
    /// returns for their objects to be deleted.
    pub fn raise_log_start(&mut self, offset: i64) -> Vec<RemoteSegment> {
        if offset <= self.log_start {
            return Vec::new();
        }
        self.log_start = offset;
        let gone = self.segments.partition_point(|s| s.end <= offset);
        self.segments.drain(..gone).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(start: i64, end: i64) -> RemoteSegment {
        RemoteSegment { start, end, bytes: 10, index_bytes: 0, max_timestamp: 0, max_timestamp_offset: start, object: format!("{start}") }
    }

    #[test]
    fn finds_segments_and_drops_them_below_the_log_start() {
        let mut m = Manifest { log_start: 0, segments: vec![segment(0, 10), segment(10, 25)] };
        assert_eq!(m.end(), 25);
        assert_eq!(m.segment_of(9).map(|s| s.start), Some(0));
        assert_eq!(m.segment_of(10).map(|s| s.start), Some(10));
        assert!(m.segment_of(25).is_none());
        assert!(m.raise_log_start(5).is_empty());
        assert!(m.segment_of(4).is_none());
        assert_eq!(m.raise_log_start(12).len(), 1);
        assert_eq!((m.log_start, m.segments.len(), m.end()), (12, 1, 25));
        assert_eq!(m.raise_log_start(40).len(), 1);
        assert_eq!(m.end(), 40);
    }
}
