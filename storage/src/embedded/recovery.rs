//! Opening a partition in time bounded by recent data.
//!
//! Sealed segments open from their index files (see [`segment_index`]) when they lie wholly
//! before the partition's producer snapshot; the rest (always the active segment) are scanned,
//! each batch checked (length, header, CRC, contiguous offsets), which rebuilds their indexes
//! and replays the producers from the snapshot on.
//!
//! A crash mid-write leaves a torn batch at the end of the active segment. It was never
//! acknowledged, so the file is cut back to the last whole batch and the partition opens. If
//! a damaged batch turns up before the end of the log, the log ends there too: the rest of
//! that segment is cut, and later segments are renamed to `*.log.dropped` (kept for
//! inspection, never read) because offsets must stay contiguous.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use uuid::Uuid;

use super::files::{self, io_error};
use super::partition::{Partition, RollPolicy, Segment, State};
use super::producers::{self, Snapshot};
use super::segment_file::{BatchHeader, SegmentFile};
use super::segment_index::{self, IndexFile, SegmentIndex};
use super::Shared;
use crate::{Batch, ProducerState, Result};

pub(super) fn open_partition(dir: &Path, topic_id: Uuid, number: i32, roll: RollPolicy, shared: Arc<Shared>) -> Result<Partition> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let log_start = shared.catalog.log_start(topic_id, number)?.unwrap_or(0);
    let snapshot = shared.catalog.producer_snapshot(topic_id, number)?;
    let recovered = match recover(dir, log_start, snapshot.as_ref(), &shared)? {
        Some(recovered) => recovered,
        None => {
            // Only after losing unsynced data to a power loss: the snapshot was durable, the
            // batches it covers not. Rebuild the producers from the batches alone.
            tracing::warn!(dir = %dir.display(), "producer snapshot is ahead of the log; rebuilding from batches");
            recover(dir, log_start, None, &shared)?.unwrap_or_default()
        }
    };
    if recovered.scanned_sealed {
        // So the next open can skip what this one scanned.
        let snapshot = Snapshot { offset: recovered.next_offset, producers: recovered.producers.values().cloned().collect() };
        shared.catalog.save_producer_snapshot(topic_id, number, &snapshot)?;
    }
    let state = State {
        segments: recovered.segments,
        next_offset: recovered.next_offset,
        log_start,
        producers: recovered.producers,
        roll,
        closed: false,
        broken: None,
    };
    Ok(Partition { dir: dir.to_owned(), topic_id, number, shared, state: Mutex::new(state), trim: Mutex::new(()) })
}

#[derive(Default)]
struct Recovered {
    segments: Vec<Segment>,
    next_offset: i64,
    producers: HashMap<i64, ProducerState>,
    /// A sealed segment had to be scanned (no trusted index, or after the snapshot).
    scanned_sealed: bool,
}

/// Opens the segments; `None` when `snapshot` turns out to be ahead of the log.
fn recover(dir: &Path, log_start: i64, snapshot: Option<&Snapshot>, shared: &Shared) -> Result<Option<Recovered>> {
    let replay_from = snapshot.map_or(i64::MIN, |s| s.offset);
    let mut producers = snapshot.map(|s| s.clone().into_map()).unwrap_or_default();
    let found = segment_files(dir)?;
    let mut segments: Vec<Segment> = Vec::new();
    let mut log_end: Option<i64> = None;
    let mut damaged = false;
    let mut scanned_sealed = false;
    for (i, (base_offset, path)) in found.iter().enumerate() {
        let (base_offset, sealed) = (*base_offset, i + 1 < found.len());
        if damaged {
            set_aside(dir, base_offset, path)?;
            continue;
        }
        if let Some(end) = log_end {
            // A gap is only fine below the log start, where nothing is readable anyway.
            if base_offset != end && !(base_offset > end && base_offset <= log_start) {
                tracing::warn!(path = %path.display(), expected = end, "segment does not continue the log");
                damaged = true;
                set_aside(dir, base_offset, path)?;
                continue;
            }
        }
        let file = SegmentFile::open(path)?;
        if sealed
            && snapshot.is_some()
            && let Some(ix) = trusted_index(dir, base_offset, &file).filter(|ix| ix.end_offset <= replay_from)
        {
            log_end = Some(ix.end_offset);
            segments.push(Segment {
                file: Arc::new(file),
                base_offset,
                end_offset: ix.end_offset,
                size: ix.size,
                index: ix.index,
                since: Instant::now(),
            });
            continue;
        }
        scanned_sealed |= sealed;
        let (segment, intact) = scan(file, base_offset, replay_from, &mut producers, shared)?;
        if !intact {
            damaged = true;
        } else if sealed {
            let index_path = segment_index::path(dir, base_offset);
            let index = IndexFile { base_offset, end_offset: segment.end_offset, size: segment.size, index: segment.index.clone() };
            if let Err(e) = files::write_replacing(&index_path, &segment_index::encode(&index)) {
                tracing::warn!(path = %index_path.display(), error = %e, "cannot write a segment index");
            }
        }
        log_end = Some(segment.end_offset);
        segments.push(segment);
    }

    if damaged {
        // Make the cut and the renames durable before anything is appended after them.
        files::sync_dir(dir)?;
    }
    let mut next_offset = log_end.unwrap_or(log_start);
    if next_offset < log_start {
        // Only after losing unsynced data to a power loss: the log start was durable, the
        // batches below it not. Appends continue at the log start, in a new segment.
        tracing::warn!(dir = %dir.display(), log_end = next_offset, log_start, "log ends before its start offset");
        next_offset = log_start;
    }
    if replay_from > next_offset {
        return Ok(None);
    }
    Ok(Some(Recovered { segments, next_offset, producers, scanned_sealed }))
}

/// Reads every batch of a segment, cutting it back to its last whole batch if one is damaged;
/// the flag says whether it was intact.
fn scan(
    file: SegmentFile,
    base_offset: i64,
    replay_from: i64,
    producers: &mut HashMap<i64, ProducerState>,
    shared: &Shared,
) -> Result<(Segment, bool)> {
    let mut index = SegmentIndex::default();
    let mut next = base_offset;
    let mut index_error = None;
    let scan = file.scan(|position, batch| {
        if batch.base_offset() != next {
            return Err(format!("batch has base offset {}, expected {next}", batch.base_offset()));
        }
        next = batch.next_offset();
        if batch.base_offset() >= replay_from {
            producers::apply(producers, batch);
        }
        if let Err(e) = index.add(&BatchHeader::of(batch), position) {
            index_error = Some(e);
        }
        Ok(())
    })?;
    if let Some(e) = index_error {
        return Err(e);
    }
    let intact = match &scan.problem {
        Some(problem) => {
            tracing::warn!(
                path = %file.path().display(),
                kept = scan.valid_len,
                dropped = scan.file_len - scan.valid_len,
                %problem,
                "cutting a segment back to its last whole batch"
            );
            file.truncate(scan.valid_len)?;
            false
        }
        None => {
            if shared.fsync {
                // The last run may have written batches it never synced; they are served from
                // now on, so make them durable first (cheap when they already are).
                file.sync()?;
            }
            true
        }
    };
    let segment = Segment { file: Arc::new(file), base_offset, end_offset: next, size: scan.valid_len, index, since: Instant::now() };
    Ok((segment, intact))
}

/// The segment's index file, if it matches the segment as it is on disk: checksum, base
/// offset, length, and a whole valid last batch ending where the index says.
fn trusted_index(dir: &Path, base_offset: i64, file: &SegmentFile) -> Option<IndexFile> {
    let path = segment_index::path(dir, base_offset);
    let bytes = match files::read_optional(&path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read a segment index; scanning the segment");
            return None;
        }
    };
    let problem = match segment_index::decode(&bytes) {
        Err(problem) => problem,
        Ok(ix) => match check_against_segment(&ix, base_offset, file) {
            Ok(()) => return Some(ix),
            Err(problem) => problem,
        },
    };
    tracing::warn!(path = %path.display(), %problem, "segment index does not match its segment; scanning the segment");
    None
}

fn check_against_segment(ix: &IndexFile, base_offset: i64, file: &SegmentFile) -> std::result::Result<(), String> {
    if ix.base_offset != base_offset {
        return Err(format!("index names base offset {}", ix.base_offset));
    }
    let len = file.len().map_err(|e| e.to_string())?;
    if ix.size != len || len == 0 {
        return Err(format!("index says {} bytes, the segment has {len}", ix.size));
    }
    let header = file.header_at(ix.index.last_position, len).map_err(|e| e.to_string())?;
    let bytes = file.read_at(ix.index.last_position, header.len as usize).map_err(|e| e.to_string())?;
    let last = Batch::parse_stored(bytes).map_err(|e| format!("last batch: {e}"))?;
    if ix.index.last_position + last.len() as u64 != len || last.next_offset() != ix.end_offset {
        return Err("the last batch does not end the segment where the index says".into());
    }
    Ok(())
}

/// The segment files in `dir`, by base offset.
fn segment_files(dir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        if entry.file_name().to_str().is_some_and(|n| n.ends_with(super::partition::CLEANED_SUFFIX)) {
            // A compaction cut off before its rename: the segment it would have replaced is whole.
            std::fs::remove_file(entry.path()).map_err(io_error(&entry.path()))?;
            continue;
        }
        if let Some(base) = entry.file_name().to_str().and_then(SegmentFile::parse_name) {
            found.push((base, entry.path()));
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// Renames a segment the log can no longer reach, so it is neither read nor overwritten; its
/// index goes.
fn set_aside(dir: &Path, base_offset: i64, path: &Path) -> Result<()> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".dropped");
    std::fs::rename(path, &aside).map_err(io_error(path))?;
    let index = segment_index::path(dir, base_offset);
    if let Err(e) = std::fs::remove_file(&index)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(io_error(&index)(e));
    }
    tracing::warn!(path = %path.display(), "segment after a damaged one set aside as *.dropped");
    Ok(())
}
