//! A stretch of a partition's log that compaction rewrites as a whole, and the rule a rewrite
//! keeps: the new batches cover exactly the offsets the old ones did, so offsets never move and
//! every engine keeps its batches back to back.

use crate::{Batch, Result, StorageError};

/// Offsets `[start, end)` of one partition, made of whole batches, and the bytes they take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRange {
    pub start: i64,
    pub end: i64,
    pub bytes: u64,
}

/// About how many bytes of batches one compactable range holds where the engine chooses
/// (Postgres, memory): the cleaner holds a range in memory while it rewrites it.
pub(crate) const RANGE_BYTES: u64 = 8 << 20;

/// Groups consecutive batches, given as (base offset, next offset, bytes), into ranges of about
/// [`RANGE_BYTES`].
pub(crate) fn chunk_ranges(batches: impl Iterator<Item = (i64, i64, u64)>) -> Vec<LogRange> {
    let mut out: Vec<LogRange> = Vec::new();
    for (base, next, bytes) in batches {
        match out.last_mut() {
            Some(last) if last.end == base && last.bytes < RANGE_BYTES => {
                last.end = next;
                last.bytes += bytes;
            }
            _ => out.push(LogRange { start: base, end: next, bytes }),
        }
    }
    out
}

/// Checks that `batches` tile `[range.start, range.end)`: the first starts at `start`, each
/// starts where the one before ends, the last ends at `end`.
pub(crate) fn check_tiling(range: LogRange, batches: &[Batch]) -> Result<()> {
    let mut expected = range.start;
    for batch in batches {
        if batch.base_offset() != expected {
            return Err(StorageError::Rejected(format!(
                "a rewrite of offsets [{}, {}) has a batch at {} where {expected} was expected",
                range.start,
                range.end,
                batch.base_offset()
            )));
        }
        expected = batch.next_offset();
    }
    if expected != range.end || batches.is_empty() {
        return Err(StorageError::Rejected(format!(
            "a rewrite of offsets [{}, {}) ends at {expected}: it must cover the same offsets",
            range.start, range.end
        )));
    }
    Ok(())
}

/// The error for a rewrite of a range the log no longer has as it was (retention or a
/// DeleteRecords moved the log start, the engine regrouped it): the cleaner reads it again.
pub(crate) fn range_changed(range: LogRange) -> StorageError {
    StorageError::RangeChanged(format!("offsets [{}, {}) are no longer one compactable range", range.start, range.end))
}
