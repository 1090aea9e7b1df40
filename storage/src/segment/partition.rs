//! One partition: its segment files, an in-memory index of every batch, the time index and
//! the producers.
//!
//! The state sits behind one mutex that is only held for bookkeeping: reads copy the file
//! positions they need and do the `pread`s after releasing it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::files;
use super::producers::{self, Snapshot};
use super::segment_file::SegmentFile;
use super::Shared;
use crate::memory::{check_deletable, check_in_range};
use crate::{AppendOutcome, Batch, PartitionOffsets, ProducerState, Result, StorageError};

/// Holds the log start offset once DeleteRecords has moved it.
pub(super) const LOG_START_FILE: &str = "log-start";

pub(super) struct Partition {
    pub(super) dir: PathBuf,
    pub(super) shared: Arc<Shared>,
    pub(super) state: Mutex<State>,
    /// Serialises `delete_records`, which does its slow file work without holding `state`.
    pub(super) trim: Mutex<()>,
}

pub(super) struct State {
    /// Oldest first; the last one is the active segment appends go to.
    pub segments: Vec<Segment>,
    /// Every readable batch (last offset at or past the log start), by base offset.
    pub index: Vec<Entry>,
    /// (running max timestamp, base offset of the batch that raised it): both increase.
    pub time_index: Vec<(i64, i64)>,
    pub next_offset: i64,
    pub log_start: i64,
    pub producers: HashMap<i64, ProducerState>,
    /// Set when the topic is deleted: late appends must not recreate files.
    pub closed: bool,
    /// Set when a failed write could not be undone: the file end is unknown, so no more appends.
    pub broken: Option<String>,
}

pub(super) struct Segment {
    /// Named by its base offset.
    pub file: Arc<SegmentFile>,
    /// One past the last offset stored in this segment.
    pub end_offset: i64,
    /// Bytes of whole batches, where the next append goes.
    pub size: u64,
}

/// Where one batch lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    /// Position in `State::segments`.
    pub segment: u32,
    pub len: u32,
    pub position: u64,
}

/// A run of consecutive batches in one segment, read with one `pread`.
struct Span {
    file: Arc<SegmentFile>,
    position: u64,
    entries: Vec<Entry>,
}

impl Entry {
    pub fn new(batch: &Batch, segment: usize, position: u64) -> Result<Entry> {
        Ok(Entry {
            base_offset: batch.base_offset(),
            last_offset: batch.last_offset(),
            max_timestamp: batch.max_timestamp(),
            segment: u32::try_from(segment).map_err(|_| StorageError::Engine("too many segments in one partition".into()))?,
            len: u32::try_from(batch.len()).map_err(|_| StorageError::Engine(format!("batch of {} bytes", batch.len())))?,
            position,
        })
    }
}

/// The time index of `index`: an entry for each batch that raises the running max timestamp.
pub(super) fn time_index(index: &[Entry]) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for entry in index {
        if out.last().is_none_or(|(ts, _)| entry.max_timestamp > *ts) {
            out.push((entry.max_timestamp, entry.base_offset));
        }
    }
    out
}

fn poisoned() -> StorageError {
    StorageError::Engine("segment engine partition lock poisoned by a panic".into())
}

impl State {
    pub fn offsets(&self) -> PartitionOffsets {
        PartitionOffsets { log_start: self.log_start, high_watermark: self.next_offset }
    }

    fn span_of(&self, entry: Entry) -> Result<Span> {
        let segment = self
            .segments
            .get(entry.segment as usize)
            .ok_or_else(|| StorageError::Corrupt(format!("batch {} points at a missing segment", entry.base_offset)))?;
        Ok(Span { file: segment.file.clone(), position: entry.position, entries: vec![entry] })
    }

    fn entry_at(&self, base_offset: i64) -> Result<Entry> {
        match self.index.binary_search_by_key(&base_offset, |e| e.base_offset) {
            Ok(i) => Ok(self.index[i]),
            Err(_) => Err(StorageError::Corrupt(format!("time index points at missing batch {base_offset}"))),
        }
    }

    /// Starts a new active segment at `next_offset`.
    fn roll(&mut self, dir: &Path, shared: &Shared) -> Result<()> {
        let file = Arc::new(SegmentFile::create(dir, self.next_offset)?);
        if shared.fsync {
            shared.dirty.dir_changed(dir)?;
        }
        self.segments.push(Segment { file, end_offset: self.next_offset, size: 0 });
        Ok(())
    }
}

impl Partition {
    pub(super) fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| poisoned())
    }

    pub fn offsets(&self) -> Result<PartitionOffsets> {
        Ok(self.lock()?.offsets())
    }

    pub fn producers(&self) -> Result<Vec<ProducerState>> {
        Ok(self.lock()?.producers.values().cloned().collect())
    }

    /// Stops appends for good (the topic is being deleted).
    pub fn close(&self) -> Result<()> {
        self.lock()?.closed = true;
        Ok(())
    }

    pub fn append(&self, topic: &str, batch: Batch, producer: Option<ProducerState>) -> Result<AppendOutcome> {
        let mut st = self.lock()?;
        if st.closed {
            return Err(StorageError::UnknownTopic(topic.to_owned()));
        }
        if let Some(reason) = &st.broken {
            return Err(StorageError::Engine(format!("partition in {} refuses appends: {reason}", self.dir.display())));
        }
        let batch = batch.with_base_offset(st.next_offset);
        let len = batch.len() as u64;
        let roll = match st.segments.last() {
            None => true,
            // A segment holds contiguous offsets; after a gap (log start past the data) start anew.
            Some(active) => active.end_offset != st.next_offset || (active.size > 0 && active.size + len > self.shared.segment_bytes),
        };
        if roll {
            st.roll(&self.dir, &self.shared)?;
        }
        let segment = st.segments.len() - 1;
        let active = &mut st.segments[segment];
        if let Err(e) = active.file.write_at(batch.bytes(), active.size) {
            // Cut off whatever part of the batch reached the file, so the next append (and the
            // next open) finds the file ending at a batch boundary.
            if let Err(undo) = active.file.truncate(active.size) {
                st.broken = Some(format!("a failed write ({e}) could not be cut off: {undo}"));
            }
            return Err(e);
        }
        if self.shared.fsync {
            self.shared.dirty.file_written(&active.file)?;
        }
        let entry = Entry::new(&batch, segment, active.size)?;
        active.size += len;
        active.end_offset = batch.next_offset();
        st.next_offset = batch.next_offset();
        if st.time_index.last().is_none_or(|(ts, _)| entry.max_timestamp > *ts) {
            st.time_index.push((entry.max_timestamp, entry.base_offset));
        }
        st.index.push(entry);
        if let Some(state) = producer {
            st.producers.insert(state.producer_id, state);
        }
        Ok(AppendOutcome { base_offset: entry.base_offset, high_watermark: st.next_offset })
    }

    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<Batch>> {
        let spans = {
            let st = self.lock()?;
            check_in_range(offset, st.offsets())?;
            let first = st.index.partition_point(|e| e.last_offset < offset);
            let mut spans: Vec<Span> = Vec::new();
            let mut total = 0usize;
            for entry in &st.index[first..] {
                // Same rule as `take_within`: whole batches within max_bytes, and always the first.
                if total > 0 && total + entry.len as usize > max_bytes {
                    break;
                }
                total += entry.len as usize;
                match spans.last_mut() {
                    Some(span) if span.entries.last().is_some_and(|prev| prev.segment == entry.segment) => {
                        span.entries.push(*entry)
                    }
                    _ => spans.push(st.span_of(*entry)?),
                }
            }
            spans
        };
        let mut batches = Vec::new();
        for span in spans {
            batches.extend(read_span(span)?);
        }
        Ok(batches)
    }

    pub fn batch_at_time(&self, timestamp: i64) -> Result<Option<Batch>> {
        let span = {
            let st = self.lock()?;
            let i = st.time_index.partition_point(|(ts, _)| *ts < timestamp);
            match st.time_index.get(i) {
                Some(&(_, base)) => st.span_of(st.entry_at(base)?)?,
                None => return Ok(None),
            }
        };
        Ok(read_span(span)?.pop())
    }

    pub fn batch_with_max_timestamp(&self) -> Result<Option<Batch>> {
        let span = {
            let st = self.lock()?;
            match st.time_index.last() {
                Some(&(_, base)) => st.span_of(st.entry_at(base)?)?,
                None => return Ok(None),
            }
        };
        Ok(read_span(span)?.pop())
    }

    /// Moves the log start to `offset` and deletes the segment files wholly below it.
    /// Blocking (fsyncs): call it off the async runtime.
    ///
    /// Order matters for crashes: producer snapshot, then log start, then file deletion; a
    /// crash at any point leaves files that reopen to the old or the new state.
    pub fn delete_records(&self, offset: i64) -> Result<i64> {
        let _trim = self.trim.lock().map_err(|_| poisoned())?;
        let (doomed, survivors, snapshot) = {
            let st = self.lock()?;
            check_deletable(offset, st.offsets())?;
            if offset <= st.log_start {
                return Ok(st.log_start);
            }
            // Never the active segment: appends go on there.
            let sealed = st.segments.len().saturating_sub(1);
            let doomed = st.segments[..sealed].iter().take_while(|s| s.end_offset <= offset).count();
            let survivors: Vec<Arc<SegmentFile>> = st.segments[doomed..].iter().map(|s| s.file.clone()).collect();
            let snapshot = Snapshot { offset: st.next_offset, producers: st.producers.values().cloned().collect() };
            (doomed, survivors, snapshot)
        };
        if doomed > 0 {
            // The snapshot stands in for the deleted batches' producer history; the batches it
            // also covers in the surviving segments must be durable before it is, or a power
            // loss could leave a snapshot ahead of the log.
            for file in &survivors {
                file.sync()?;
            }
            producers::save_snapshot(&self.dir, &snapshot)?;
        }
        files::write_atomically(&self.dir.join(LOG_START_FILE), offset.to_string().as_bytes())?;

        let removed: Vec<Segment> = {
            let mut st = self.lock()?;
            st.log_start = offset;
            let keep_from = st.index.partition_point(|e| e.last_offset < offset);
            st.index.drain(..keep_from);
            let removed: Vec<Segment> = st.segments.drain(..doomed).collect();
            let shift = doomed as u32;
            for entry in st.index.iter_mut() {
                // Entries left all sit in surviving segments (a doomed one ends at or below `offset`).
                entry.segment = entry.segment.checked_sub(shift).ok_or_else(|| {
                    StorageError::Corrupt(format!("batch {} sits in a deleted segment", entry.base_offset))
                })?;
            }
            // Rebuilt rather than trimmed, so the batches left are all findable by time even
            // when the batch that held the max timestamp is gone.
            st.time_index = time_index(&st.index);
            removed
        };
        for segment in removed {
            // Readers holding the file keep reading it; the name goes now.
            if let Err(e) = std::fs::remove_file(segment.file.path()) {
                tracing::warn!(path = %segment.file.path().display(), error = %e, "cannot delete a trimmed segment");
            }
        }
        Ok(offset)
    }
}

/// Reads a span's batches with one positioned read and splits them by the index lengths.
fn read_span(span: Span) -> Result<Vec<Batch>> {
    let total: usize = span.entries.iter().map(|e| e.len as usize).sum();
    let mut bytes = span.file.read_at(span.position, total)?;
    let mut out = Vec::with_capacity(span.entries.len());
    for entry in span.entries {
        let batch = Batch::from_stored(bytes.split_to(entry.len as usize))
            .map_err(|e| StorageError::Corrupt(format!("{} at {}: {e}", span.file.path().display(), entry.position)))?;
        if batch.base_offset() != entry.base_offset {
            return Err(StorageError::Corrupt(format!(
                "{} at {}: batch has base offset {}, index says {}",
                span.file.path().display(),
                entry.position,
                batch.base_offset(),
                entry.base_offset
            )));
        }
        out.push(batch);
    }
    Ok(out)
}
