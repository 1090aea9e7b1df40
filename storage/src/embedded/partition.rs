//! One partition: its segment files, each with a sparse index, and the producers.
//!
//! The state sits behind one mutex that is only held for bookkeeping: reads copy the file
//! handles and positions they need and do their `pread`s after releasing it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use uuid::Uuid;

use super::files;
use super::producers::Snapshot;
use super::segment_file::{BatchHeader, SegmentFile};
use super::segment_index::{self, IndexFile, SegmentIndex};
use super::Shared;
use crate::memory::{check_deletable, check_in_range};
use crate::log_range::{check_tiling, range_changed};
use crate::{AppendOutcome, Batch, LogRange, PartitionOffsets, ProducerState, Result, StorageError};

/// The topic configs that roll segments, as Kafka names them.
const SEGMENT_BYTES: &str = "segment.bytes";
const SEGMENT_MS: &str = "segment.ms";
/// Kafka's default `segment.ms`: a quiet partition still rolls weekly, so retention by time
/// can delete what it holds.
const DEFAULT_SEGMENT_MS: u64 = 7 * 24 * 60 * 60 * 1000;

pub(super) struct Partition {
    pub(super) dir: PathBuf,
    pub(super) topic_id: Uuid,
    pub(super) number: i32,
    pub(super) shared: Arc<Shared>,
    pub(super) state: Mutex<State>,
    /// Serialises `delete_records`, which does its slow file work without holding `state`.
    pub(super) trim: Mutex<()>,
}

pub(super) struct State {
    /// Oldest first; the last one is the active segment appends go to.
    pub segments: Vec<Segment>,
    pub next_offset: i64,
    pub log_start: i64,
    pub producers: HashMap<i64, ProducerState>,
    pub roll: RollPolicy,
    /// Set when the topic is deleted: late appends must not recreate files.
    pub closed: bool,
    /// Set when a failed write could not be undone: the file end is unknown, so no more appends.
    pub broken: Option<String>,
}

/// Added to a segment file's name while its compacted replacement is written.
pub(super) const CLEANED_SUFFIX: &str = ".cleaned";

/// When the active segment is sealed and a new one started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RollPolicy {
    pub segment_bytes: u64,
    pub segment_ms: u64,
}

impl RollPolicy {
    /// The topic's `segment.bytes` and `segment.ms`, else the engine's defaults. Segments stay
    /// under 2 GiB, as in Kafka: index positions are 32-bit.
    pub fn of(configs: &BTreeMap<String, String>, default_bytes: u64) -> RollPolicy {
        let bytes = configs.get(SEGMENT_BYTES).and_then(|v| v.parse::<u64>().ok()).unwrap_or(default_bytes);
        let ms = configs.get(SEGMENT_MS).and_then(|v| v.parse::<u64>().ok()).unwrap_or(DEFAULT_SEGMENT_MS);
        RollPolicy { segment_bytes: bytes.clamp(1, i32::MAX as u64), segment_ms: ms.max(1) }
    }
}

pub(super) struct Segment {
    /// Named by its base offset.
    pub file: Arc<SegmentFile>,
    pub base_offset: i64,
    /// One past the last offset stored in this segment.
    pub end_offset: i64,
    /// Bytes of whole batches, where the next append goes.
    pub size: u64,
    pub index: SegmentIndex,
    /// When it became active, or the store was opened: `segment.ms` counts from here, so a
    /// restart starts the clock again.
    pub since: Instant,
}

impl Segment {
    fn index_file(&self) -> IndexFile {
        IndexFile { base_offset: self.base_offset, end_offset: self.end_offset, size: self.size, index: self.index.clone() }
    }
}

/// Part of one segment a reader will look at: batches from `start` up to `end`.
struct Stretch {
    file: Arc<SegmentFile>,
    start: u64,
    end: u64,
}

fn poisoned() -> StorageError {
    StorageError::Engine("embedded engine partition lock poisoned by a panic".into())
}

impl State {
    pub fn offsets(&self) -> PartitionOffsets {
        PartitionOffsets { log_start: self.log_start, high_watermark: self.next_offset }
    }

    /// The segment that holds `offset`, if any still does.
    fn segment_of(&self, offset: i64) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.end_offset <= offset);
        (i < self.segments.len() && self.segments[i].base_offset <= offset).then_some(i)
    }

    fn stretch(&self, i: usize, start: u64) -> Stretch {
        let s = &self.segments[i];
        Stretch { file: s.file.clone(), start, end: s.size }
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

    /// Bytes of the partition's segment files.
    pub fn size(&self) -> Result<u64> {
        Ok(self.lock()?.segments.iter().map(|s| s.size).sum())
    }

    /// The end of the oldest segments to delete so that at most `max_bytes` stay; whole sealed
    /// segments only.
    pub fn retention_cut_for_bytes(&self, max_bytes: u64) -> Result<Option<i64>> {
        let st = self.lock()?;
        let mut size: u64 = st.segments.iter().map(|s| s.size).sum();
        let mut cut = None;
        for segment in st.segments.iter().take(st.segments.len().saturating_sub(1)) {
            if size <= max_bytes {
                break;
            }
            size -= segment.size;
            cut = Some(segment.end_offset.max(st.log_start));
        }
        Ok(cut.filter(|c| *c > st.log_start))
    }

    /// The sealed segments wholly at or after the log start: what compaction may rewrite.
    pub fn compactable_ranges(&self) -> Result<Vec<LogRange>> {
        let st = self.lock()?;
        let sealed = st.segments.len().saturating_sub(1);
        Ok(st.segments[..sealed]
            .iter()
            .filter(|s| s.base_offset >= st.log_start && s.size > 0)
            .map(|s| LogRange { start: s.base_offset, end: s.end_offset, bytes: s.size })
            .collect())
    }

    /// Replaces the sealed segment that is `range` with a file of `batches`.
    /// Blocking (fsyncs): call it off the async runtime.
    ///
    /// The new file is written beside the old one and made durable, then renamed over it, so a
    /// crash leaves the old segment or the new one, whole. Its index file goes first and comes
    /// back after, so an old index never describes the new file (without one, the next open
    /// scans it). Readers that hold the old file keep reading it until they let go.
    pub fn replace_range(&self, range: LogRange, batches: Vec<Batch>) -> Result<()> {
        check_tiling(range, &batches)?;
        let _trim = self.trim.lock().map_err(|_| poisoned())?;
        let is_the_segment = |st: &State| {
            let sealed = st.segments.len().saturating_sub(1);
            st.segments[..sealed]
                .iter()
                .position(|s| s.base_offset == range.start && s.end_offset == range.end && s.base_offset >= st.log_start)
        };
        let path = {
            let st = self.lock()?;
            let Some(i) = is_the_segment(&st).filter(|_| !st.closed) else { return Err(range_changed(range)) };
            st.segments[i].file.path().to_owned()
        };
        let mut cleaned_path = path.as_os_str().to_owned();
        cleaned_path.push(CLEANED_SUFFIX);
        let cleaned_path = PathBuf::from(cleaned_path);
        match std::fs::remove_file(&cleaned_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(files::io_error(&cleaned_path)(e)),
        }
        let cleaned = SegmentFile::create_at(&cleaned_path)?;
        let mut index = SegmentIndex::default();
        let mut size = 0u64;
        let written = (|| {
            for batch in &batches {
                cleaned.write_at(batch.bytes(), size)?;
                index.add(&BatchHeader::of(batch), size)?;
                size += batch.len() as u64;
            }
            // Always durable before the rename, fsync or not: the rename replaces data that was.
            cleaned.sync()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&cleaned_path);
            return Err(e);
        }
        let index_path = segment_index::path(&self.dir, range.start);
        match std::fs::remove_file(&index_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let _ = std::fs::remove_file(&cleaned_path);
                return Err(files::io_error(&index_path)(e));
            }
        }
        let mut st = self.lock()?;
        let Some(i) = is_the_segment(&st).filter(|_| !st.closed) else {
            let _ = std::fs::remove_file(&cleaned_path);
            return Err(range_changed(range));
        };
        std::fs::rename(&cleaned_path, &path).map_err(files::io_error(&path))?;
        let segment = &mut st.segments[i];
        segment.file = Arc::new(cleaned.renamed(path));
        segment.size = size;
        segment.index = index;
        let index_file = segment_index::encode(&segment.index_file());
        // Readers and appends need not wait for the directory sync or the index write.
        drop(st);
        files::sync_dir(&self.dir)?;
        if let Err(e) = files::write_replacing(&index_path, &index_file) {
            tracing::warn!(path = %index_path.display(), error = %e, "cannot write a compacted segment's index; the next open scans the segment");
        }
        Ok(())
    }

    /// Stops appends for good (the topic is being deleted).
    pub fn close(&self) -> Result<()> {
        self.lock()?.closed = true;
        Ok(())
    }

    pub fn set_roll_policy(&self, roll: RollPolicy) -> Result<()> {
        self.lock()?.roll = roll;
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
            Some(active) => {
                active.end_offset != st.next_offset
                    || (active.size > 0
                        && (active.size + len > st.roll.segment_bytes
                            || active.since.elapsed() >= Duration::from_millis(st.roll.segment_ms)))
            }
        };
        if roll {
            self.roll(&mut st)?;
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
        active.index.add(&BatchHeader::of(&batch), active.size)?;
        active.size += len;
        active.end_offset = batch.next_offset();
        st.next_offset = batch.next_offset();
        if let Some(state) = producer {
            st.producers.insert(state.producer_id, state);
        }
        Ok(AppendOutcome { base_offset: batch.base_offset(), high_watermark: st.next_offset })
    }

    /// Seals the active segment and starts a new one at `next_offset`. The sealed segment's
    /// index file and a producer snapshot let the next open skip scanning it; both are only
    /// shortcuts, so failing to write them costs a longer open, never data.
    fn roll(&self, st: &mut State) -> Result<()> {
        if let Some(sealed) = st.segments.last().filter(|s| s.size > 0) {
            let path = segment_index::path(&self.dir, sealed.base_offset);
            if let Err(e) = files::write_replacing(&path, &segment_index::encode(&sealed.index_file())) {
                tracing::warn!(path = %path.display(), error = %e, "cannot write a segment index; the next open scans the segment");
            }
            let snapshot = Snapshot { offset: st.next_offset, producers: st.producers.values().cloned().collect() };
            if let Err(e) = self.shared.catalog.save_producer_snapshot(self.topic_id, self.number, &snapshot) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot save a producer snapshot; the next open replays more");
            }
        }
        let file = Arc::new(SegmentFile::create(&self.dir, st.next_offset)?);
        if self.shared.fsync {
            self.shared.dirty.dir_changed(&self.dir)?;
        }
        st.segments.push(Segment {
            file,
            base_offset: st.next_offset,
            end_offset: st.next_offset,
            size: 0,
            index: SegmentIndex::default(),
            since: Instant::now(),
        });
        Ok(())
    }

    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<Batch>> {
        let stretches = {
            let st = self.lock()?;
            check_in_range(offset, st.offsets())?;
            let Some(first) = st.segment_of(offset) else { return Ok(Vec::new()) };
            let mut stretches = vec![st.stretch(first, st.segments[first].index.position_for_offset(offset))];
            let mut planned = st.segments[first].size - stretches[0].start;
            for i in first + 1..st.segments.len() {
                if planned >= max_bytes as u64 {
                    break;
                }
                planned += st.segments[i].size;
                stretches.push(st.stretch(i, 0));
            }
            stretches
        };
        let mut batches: Vec<Batch> = Vec::new();
        let mut total = 0usize;
        for stretch in stretches {
            let start = if batches.is_empty() {
                // The batch holding `offset` is at most one index interval (and a batch) on.
                match stretch.file.walk(stretch.start, stretch.end, |h| h.last_offset >= offset)? {
                    Some((position, _)) => position,
                    None => continue,
                }
            } else {
                stretch.start
            };
            if start >= stretch.end {
                continue;
            }
            let first_len = stretch.file.header_at(start, stretch.end)?.len as usize;
            // Whole batches within max_bytes, and always the first one.
            let budget = if batches.is_empty() { max_bytes.max(first_len) } else { max_bytes.saturating_sub(total) };
            if first_len > budget {
                break;
            }
            let want = (stretch.end - start).min(budget as u64) as usize;
            let read = split_batches(&stretch.file, start, stretch.file.read_at(start, want)?, batches.last())?;
            total += read.iter().map(Batch::len).sum::<usize>();
            let reached_end = start + read.iter().map(|b| b.len() as u64).sum::<u64>() >= stretch.end;
            batches.extend(read);
            if !reached_end {
                break;
            }
        }
        Ok(batches)
    }

    pub fn batch_at_time(&self, timestamp: i64) -> Result<Option<Batch>> {
        let (log_start, stretches) = {
            let st = self.lock()?;
            let stretches: Vec<Stretch> = st
                .segments
                .iter()
                .enumerate()
                .filter(|(_, s)| s.end_offset > st.log_start && s.index.max_timestamp >= timestamp)
                .map(|(i, s)| st.stretch(i, s.index.position_for_time(timestamp).max(s.index.position_for_offset(st.log_start))))
                .collect();
            (st.log_start, stretches)
        };
        for stretch in stretches {
            let found = stretch.file.walk(stretch.start, stretch.end, |h| h.last_offset >= log_start && h.max_timestamp >= timestamp)?;
            if let Some((position, header)) = found {
                return read_one(&stretch.file, position, header).map(Some);
            }
        }
        Ok(None)
    }

    pub fn batch_with_max_timestamp(&self) -> Result<Option<Batch>> {
        let (log_start, candidates) = {
            let st = self.lock()?;
            let candidates: Vec<(Stretch, i64, i64)> = st
                .segments
                .iter()
                .enumerate()
                .filter(|(_, s)| s.end_offset > st.log_start && s.size > 0)
                .map(|(i, s)| (st.stretch(i, s.index.position_for_offset(st.log_start)), s.index.max_timestamp, s.index.max_timestamp_offset))
                .collect();
            (st.log_start, candidates)
        };
        // (timestamp, file, position, header) of the best batch so far; the earliest wins ties.
        let mut best: Option<(i64, Arc<SegmentFile>, u64, BatchHeader)> = None;
        for (stretch, max_timestamp, max_offset) in candidates {
            if best.as_ref().is_some_and(|(ts, ..)| max_timestamp <= *ts) {
                continue;
            }
            let found = if max_offset >= log_start {
                // The index knows the batch: find it from the entry before it.
                stretch.file.walk(stretch.start, stretch.end, |h| h.base_offset >= max_offset)?
            } else {
                // Its batch was deleted (the segment straddles the log start): walk what is left.
                let mut seen: Option<(u64, BatchHeader)> = None;
                let mut position = stretch.start;
                stretch.file.walk(stretch.start, stretch.end, |h| {
                    if h.last_offset >= log_start && seen.is_none_or(|(_, s)| h.max_timestamp > s.max_timestamp) {
                        seen = Some((position, *h));
                    }
                    position += u64::from(h.len);
                    false
                })?;
                seen
            };
            if let Some((position, header)) = found
                && best.as_ref().is_none_or(|(ts, ..)| header.max_timestamp > *ts)
            {
                best = Some((header.max_timestamp, stretch.file.clone(), position, header));
            }
        }
        best.map(|(_, file, position, header)| read_one(&file, position, header)).transpose()
    }

    /// Moves the log start to `offset` and deletes the segment files wholly below it.
    /// Blocking (fsyncs): call it off the async runtime.
    ///
    /// Order matters for crashes: the surviving data, then the log start with the producer
    /// snapshot in one catalog write, then the files; a crash at any point reopens to the old
    /// or the new state.
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
        if doomed > 0 && self.shared.fsync {
            // The snapshot stands in for the deleted batches' producer history; the batches it
            // also covers in the surviving segments must be durable before it is, or a power
            // loss could leave a snapshot ahead of the log.
            for file in &survivors {
                file.sync()?;
            }
        }
        let catalog = &self.shared.catalog;
        catalog.save_log_start(self.topic_id, self.number, offset, (doomed > 0).then_some(&snapshot))?;
        catalog.durable()?;

        let removed: Vec<Segment> = {
            let mut st = self.lock()?;
            st.log_start = offset;
            st.segments.drain(..doomed).collect()
        };
        for segment in removed {
            // Readers holding the file keep reading it; the names go now.
            for path in [segment.file.path().to_owned(), segment_index::path(&self.dir, segment.base_offset)] {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot delete a trimmed segment file"),
                }
            }
        }
        Ok(offset)
    }
}

/// Splits bytes read from `position` into whole batches, dropping a batch cut off at the end.
/// Each must continue the offsets of the one before (`previous`, from an earlier segment).
fn split_batches(file: &SegmentFile, position: u64, mut bytes: Bytes, previous: Option<&Batch>) -> Result<Vec<Batch>> {
    let mut out: Vec<Batch> = Vec::new();
    let mut at = position;
    let mut expected = previous.map(Batch::next_offset);
    while bytes.len() >= 12 {
        let declared = i32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as i64 + 12;
        if declared < crate::RECORD_BATCH_OVERHEAD as i64 {
            return Err(file.corrupt(at, &format!("a batch declares {declared} bytes")));
        }
        if declared as usize > bytes.len() {
            break;
        }
        let batch = Batch::from_stored(bytes.split_to(declared as usize)).map_err(|e| file.corrupt(at, &e.to_string()))?;
        if expected.is_some_and(|next| batch.base_offset() != next) {
            return Err(file.corrupt(at, &format!("batch has base offset {}, expected {expected:?}", batch.base_offset())));
        }
        expected = Some(batch.next_offset());
        at += declared as u64;
        out.push(batch);
    }
    Ok(out)
}

fn read_one(file: &SegmentFile, position: u64, header: BatchHeader) -> Result<Batch> {
    let bytes = file.read_at(position, header.len as usize)?;
    Batch::from_stored(bytes).map_err(|e| file.corrupt(position, &e.to_string()))
}
