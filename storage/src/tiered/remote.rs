//! The object store side of the remote tier: objects written whole, read in cached chunks,
//! and batches found in them through their index.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

use super::chunk_cache::{ChunkCache, CHUNK};
use super::manifest::RemoteSegment;
use super::segment_object::{split_batches, SparseIndex};
use crate::{Batch, Result, StorageError};

/// Chunks fetched ahead, in the background, of a consumer reading on through an object.
const READ_AHEAD: u64 = 4;

pub(super) struct Remote {
    store: Arc<dyn ObjectStore>,
    pub prefix: String,
    cache: Arc<ChunkCache>,
}

fn remote_error(object: &str) -> impl Fn(object_store::Error) -> StorageError + '_ {
    move |e| match e {
        object_store::Error::NotFound { .. } => {
            StorageError::Remote(format!("object {object} is missing from the remote tier"))
        }
        e => StorageError::Remote(format!("object {object}: {e}")),
    }
}

impl Remote {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, cache_bytes: u64) -> Remote {
        Remote { store, prefix: prefix.trim_matches('/').to_owned(), cache: Arc::new(ChunkCache::new(cache_bytes)) }
    }

    pub async fn put(&self, object: &str, bytes: Bytes) -> Result<()> {
        self.store.put(&Path::from(object), PutPayload::from_bytes(bytes)).await.map_err(remote_error(object))?;
        Ok(())
    }

    /// Deletes one object; one already gone is fine.
    pub async fn delete(&self, object: &str) -> Result<()> {
        self.cache.forget(object);
        match self.store.delete(&Path::from(object)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(remote_error(object)(e)),
        }
    }

    /// Deletes every object under `prefix` (a topic's folder).
    pub async fn delete_under(&self, prefix: &str) -> Result<usize> {
        let folder = Path::from(prefix.trim_end_matches('/'));
        let objects: Vec<_> = self.store.list(Some(&folder)).try_collect().await.map_err(remote_error(prefix))?;
        for meta in &objects {
            self.delete(meta.location.as_ref()).await?;
        }
        Ok(objects.len())
    }

    /// Bytes `[from, to)` of an object of `total` bytes, from the cache where it has them.
    async fn read_range(&self, object: &str, total: u64, from: u64, to: u64) -> Result<Bytes> {
        let to = to.min(total);
        if from >= to {
            return Ok(Bytes::new());
        }
        let (first, last) = (from / CHUNK, (to - 1) / CHUNK);
        // A consumer reading on through the object: the chunks after these are fetched in the
        // background, so its next fetches find them cached. Not on a first read.
        if first > 0 && self.cache.get(object, first - 1).is_some() {
            self.prefetch(object, total, last + 1, (last + READ_AHEAD).min((total - 1) / CHUNK));
        }
        let wanted = to;
        let mut chunks: Vec<Option<Bytes>> = (first..=last).map(|c| self.cache.get(object, c)).collect();
        // Fetch each run of missing chunks with one ranged GET.
        let mut i = 0;
        while i < chunks.len() {
            if chunks[i].is_some() {
                i += 1;
                continue;
            }
            let run_end = (i..chunks.len()).find(|j| chunks[*j].is_some()).unwrap_or(chunks.len());
            let start = (first + i as u64) * CHUNK;
            let end = ((first + run_end as u64) * CHUNK).min(total);
            let mut got = self.store.get_range(&Path::from(object), start..end).await.map_err(remote_error(object))?;
            if got.len() as u64 != end - start {
                return Err(StorageError::Remote(format!(
                    "object {object}: asked for bytes {start}..{end}, got {} bytes: it is shorter than the manifest says",
                    got.len()
                )));
            }
            for slot in &mut chunks[i..run_end] {
                let piece = got.split_to(got.len().min(CHUNK as usize));
                *slot = Some(piece);
            }
            for (j, slot) in chunks.iter().enumerate().take(run_end).skip(i) {
                if let Some(bytes) = slot {
                    self.cache.put(object, first + j as u64, bytes.clone());
                }
            }
            i = run_end;
        }
        let mut out = BytesMut::with_capacity((wanted - from) as usize);
        for (j, chunk) in chunks.into_iter().enumerate() {
            let chunk = chunk.unwrap_or_default();
            let chunk_start = (first + j as u64) * CHUNK;
            let lo = from.saturating_sub(chunk_start) as usize;
            let hi = (wanted.saturating_sub(chunk_start) as usize).min(chunk.len());
            if lo < hi {
                out.extend_from_slice(&chunk[lo..hi]);
            }
        }
        Ok(out.freeze())
    }

    /// Fetches chunks `[from, to]` of `object` into the cache in a task of their own: those
    /// neither cached nor already being fetched, in one request. A failure only leaves them
    /// for the read that needs them.
    fn prefetch(&self, object: &str, total: u64, from: u64, to: u64) {
        let wanted: Vec<u64> = (from..=to).filter(|c| self.cache.get(object, *c).is_none() && self.cache.claim(object, *c)).collect();
        let (Some(&first), Some(&last)) = (wanted.first(), wanted.last()) else { return };
        let (store, cache, object) = (self.store.clone(), self.cache.clone(), object.to_owned());
        tokio::spawn(async move {
            let range = first * CHUNK..((last + 1) * CHUNK).min(total);
            if let Ok(mut got) = store.get_range(&Path::from(object.as_str()), range.clone()).await
                && got.len() as u64 == range.end - range.start
            {
                for chunk in first..=last {
                    let piece = got.split_to(got.len().min(CHUNK as usize));
                    cache.put(&object, chunk, piece);
                }
            }
            for chunk in wanted {
                cache.release(&object, chunk);
            }
        });
    }

    async fn index(&self, segment: &RemoteSegment) -> Result<SparseIndex> {
        let total = segment.bytes + segment.index_bytes;
        let bytes = self.read_range(&segment.object, total, segment.bytes, total).await?;
        SparseIndex::parse(bytes, segment.bytes, &segment.object)
    }

    /// Whole batches `[from, ...)` of `segment`, reading at least up to `to` and further if the
    /// last batch goes on: `from` must be a batch boundary.
    async fn batches_at(&self, segment: &RemoteSegment, from: u64, mut to: u64) -> Result<Vec<Batch>> {
        let total = segment.bytes + segment.index_bytes;
        loop {
            to = to.min(segment.bytes);
            let bytes = self.read_range(&segment.object, total, from, to).await?;
            let (batches, needs) = split_batches(bytes, &segment.object)?;
            match needs {
                Some(needs) if batches.is_empty() => {
                    if from + needs > segment.bytes || from + needs <= to {
                        return Err(StorageError::Corrupt(format!(
                            "remote object {}: a batch at byte {from} runs past the batches' end",
                            segment.object
                        )));
                    }
                    to = from + needs;
                }
                _ => return Ok(batches),
            }
        }
    }

    /// Batches from the one holding `offset`, whole, within `max_bytes` (the first always).
    pub async fn read(&self, segment: &RemoteSegment, offset: i64, max_bytes: usize) -> Result<Vec<Batch>> {
        let index = self.index(segment).await?;
        let (from, block_end) = index.block_for_offset(offset);
        let mut to = block_end.saturating_add(max_bytes as u64);
        loop {
            let batches = self.batches_at(segment, from, to).await?;
            let reached_end = batches.last().is_some_and(|b| b.next_offset() >= segment.end);
            let mut out: Vec<Batch> = Vec::new();
            let mut taken = 0usize;
            for batch in batches.into_iter().filter(|b| b.last_offset() >= offset) {
                if !out.is_empty() && taken + batch.len() > max_bytes {
                    break;
                }
                taken += batch.len();
                out.push(batch);
            }
            if !out.is_empty() {
                return Ok(out);
            }
            if reached_end || to >= segment.bytes {
                return Err(StorageError::Corrupt(format!(
                    "remote object {} does not hold offset {offset}, which the manifest places there",
                    segment.object
                )));
            }
            // What was read ends before the batch holding `offset`: read on.
            to = to.saturating_add(CHUNK);
        }
    }

    /// The first batch at or after `log_start` whose largest timestamp is at or after
    /// `timestamp`, if this segment has one.
    pub async fn batch_at_time(&self, segment: &RemoteSegment, timestamp: i64, log_start: i64) -> Result<Option<Batch>> {
        let index = self.index(segment).await?;
        let Some((from, _)) = index.block_for_time(timestamp) else { return Ok(None) };
        let from = from.max(index.block_for_offset(log_start).0);
        let mut at = from;
        while at < segment.bytes {
            let batches = self.batches_at(segment, at, at + 4 * super::segment_object::INDEX_INTERVAL).await?;
            if batches.is_empty() {
                break;
            }
            at += batches.iter().map(|b| b.len() as u64).sum::<u64>();
            if let Some(found) = batches.into_iter().find(|b| b.last_offset() >= log_start && b.max_timestamp() >= timestamp) {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Bytes the read cache holds now.
    pub fn cached_bytes(&self) -> u64 {
        self.cache.held()
    }
}
