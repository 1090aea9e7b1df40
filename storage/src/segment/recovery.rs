//! Opening a partition: every segment is scanned and each batch checked (length, header,
//! CRC, contiguous offsets), which rebuilds the index, the time index and the producers.
//!
//! A crash mid-write leaves a torn batch at the end of the active segment. It was never
//! acknowledged, so the file is cut back to the last whole batch and the partition opens. If
//! a damaged batch turns up before the end of the log, the log ends there too: the rest of
//! that segment is cut, and later segments are renamed to `*.log.dropped` (kept for
//! inspection, never read) because offsets must stay contiguous.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::files::{self, io_error};
use super::partition::{self, Entry, Partition, Segment, State, LOG_START_FILE};
use super::producers;
use super::segment_file::SegmentFile;
use super::Shared;
use crate::Result;

pub(super) fn open_partition(dir: &Path, shared: Arc<Shared>) -> Result<Partition> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let log_start = files::read_i64(&dir.join(LOG_START_FILE))?.unwrap_or(0);
    let snapshot = producers::load_snapshot(dir)?;
    let replay_from = snapshot.as_ref().map_or(i64::MIN, |s| s.offset);
    // Two rebuilds side by side: from the snapshot on (the normal case), and from the batches
    // alone, used when the log turns out to end before the snapshot (it was damaged). The
    // second is only needed when there is a snapshot.
    let mut from_snapshot = snapshot.map(|s| s.into_map()).unwrap_or_default();
    let mut from_batches = HashMap::new();

    let mut segments: Vec<Segment> = Vec::new();
    let mut index: Vec<Entry> = Vec::new();
    let mut log_end: Option<i64> = None;
    let mut damaged = false;
    for (base_offset, path) in segment_files(dir)? {
        if damaged {
            set_aside(&path)?;
            continue;
        }
        if let Some(end) = log_end {
            // A gap is only fine below the log start, where nothing is readable anyway.
            if base_offset != end && !(base_offset > end && base_offset <= log_start) {
                tracing::warn!(path = %path.display(), expected = end, "segment does not continue the log");
                damaged = true;
                set_aside(&path)?;
                continue;
            }
        }
        let file = SegmentFile::open(&path)?;
        let position_in_list = segments.len();
        let mut next = base_offset;
        let mut entry_error = None;
        let scan = file.scan(|position, batch| {
            if batch.base_offset() != next {
                return Err(format!("batch has base offset {}, expected {next}", batch.base_offset()));
            }
            next = batch.next_offset();
            if batch.base_offset() >= replay_from {
                producers::apply(&mut from_snapshot, batch);
            }
            if replay_from != i64::MIN {
                producers::apply(&mut from_batches, batch);
            }
            if batch.last_offset() >= log_start {
                match Entry::new(batch, position_in_list, position) {
                    Ok(entry) => index.push(entry),
                    Err(e) => entry_error = Some(e),
                }
            }
            Ok(())
        })?;
        if let Some(e) = entry_error {
            return Err(e);
        }
        if let Some(problem) = scan.problem {
            tracing::warn!(
                path = %path.display(),
                kept = scan.valid_len,
                dropped = scan.file_len - scan.valid_len,
                %problem,
                "cutting a segment back to its last whole batch"
            );
            file.truncate(scan.valid_len)?;
            damaged = true;
        } else if shared.fsync {
            // The last run may have written batches it never synced; they are served from now
            // on, so make them durable first (cheap when they already are).
            file.sync()?;
        }
        segments.push(Segment { file: Arc::new(file), end_offset: next, size: scan.valid_len });
        log_end = Some(next);
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
    let producers = if replay_from <= next_offset {
        from_snapshot
    } else {
        tracing::warn!(dir = %dir.display(), snapshot = replay_from, log_end = next_offset, "producer snapshot is ahead of the log; rebuilding from batches");
        from_batches
    };
    let state = State {
        time_index: partition::time_index(&index),
        segments,
        index,
        next_offset,
        log_start,
        producers,
        closed: false,
        broken: None,
    };
    Ok(Partition { dir: dir.to_owned(), shared, state: Mutex::new(state), trim: Mutex::new(()) })
}

/// The segment files in `dir`, by base offset.
fn segment_files(dir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        if let Some(base) = entry.file_name().to_str().and_then(SegmentFile::parse_name) {
            found.push((base, entry.path()));
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// Renames a segment the log can no longer reach, so it is neither read nor overwritten.
fn set_aside(path: &Path) -> Result<()> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".dropped");
    std::fs::rename(path, &aside).map_err(io_error(path))?;
    tracing::warn!(path = %path.display(), "segment after a damaged one set aside as *.dropped");
    Ok(())
}
