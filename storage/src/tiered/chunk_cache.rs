//! Recently read stretches of remote objects, so that consumers reading the same old data one
//! after another (or one consumer's successive fetches) go to the object store once.
//!
//! Objects are read in aligned chunks of [`CHUNK`] bytes, and the least recently used chunks
//! are dropped once the cache holds more than its capacity. Objects never change once written,
//! so a cached chunk never goes stale.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use bytes::Bytes;

/// The unit of reading and caching.
pub(super) const CHUNK: u64 = 1 << 20;

pub(super) struct ChunkCache {
    capacity: u64,
    inner: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    /// (object, chunk number) → (bytes, last use).
    chunks: HashMap<(String, u64), (Bytes, u64)>,
    /// last use → key, oldest first.
    by_use: BTreeMap<u64, (String, u64)>,
    held: u64,
    clock: u64,
    /// Chunks a prefetch is fetching now.
    fetching: HashSet<(String, u64)>,
}

impl ChunkCache {
    pub fn new(capacity: u64) -> ChunkCache {
        ChunkCache { capacity, inner: Mutex::new(Lru::default()) }
    }

    pub fn get(&self, object: &str, chunk: u64) -> Option<Bytes> {
        let mut lru = self.inner.lock().ok()?;
        let lru = &mut *lru;
        lru.clock += 1;
        let now = lru.clock;
        let (bytes, used) = lru.chunks.get_mut(&(object.to_owned(), chunk))?;
        lru.by_use.remove(used);
        *used = now;
        lru.by_use.insert(now, (object.to_owned(), chunk));
        Some(bytes.clone())
    }

    pub fn put(&self, object: &str, chunk: u64, bytes: Bytes) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut lru) = self.inner.lock() else { return };
        lru.clock += 1;
        let now = lru.clock;
        lru.held += bytes.len() as u64;
        if let Some((old, used)) = lru.chunks.insert((object.to_owned(), chunk), (bytes, now)) {
            lru.held -= old.len() as u64;
            lru.by_use.remove(&used);
        }
        lru.by_use.insert(now, (object.to_owned(), chunk));
        while lru.held > self.capacity {
            let Some((_, key)) = lru.by_use.pop_first() else { break };
            if let Some((gone, _)) = lru.chunks.remove(&key) {
                lru.held -= gone.len() as u64;
            }
        }
    }

    /// Marks a chunk as being fetched; false if a fetch already has it (or caching is off).
    pub fn claim(&self, object: &str, chunk: u64) -> bool {
        self.capacity > 0 && self.inner.lock().is_ok_and(|mut lru| lru.fetching.insert((object.to_owned(), chunk)))
    }

    /// Ends a [`ChunkCache::claim`], whether the chunk arrived or not.
    pub fn release(&self, object: &str, chunk: u64) {
        if let Ok(mut lru) = self.inner.lock() {
            lru.fetching.remove(&(object.to_owned(), chunk));
        }
    }

    /// Forgets every chunk of `object` (it was deleted).
    pub fn forget(&self, object: &str) {
        let Ok(mut lru) = self.inner.lock() else { return };
        let lru = &mut *lru;
        let mut freed = 0;
        lru.chunks.retain(|(name, _), (bytes, used)| {
            let keep = name != object;
            if !keep {
                freed += bytes.len() as u64;
                lru.by_use.remove(used);
            }
            keep
        });
        lru.held -= freed;
    }

    /// Bytes held now.
    pub fn held(&self) -> u64 {
        self.inner.lock().map_or(0, |lru| lru.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_least_recently_used_past_capacity() {
        let cache = ChunkCache::new(10);
        cache.put("a", 0, Bytes::from_static(b"12345"));
        cache.put("a", 1, Bytes::from_static(b"12345"));
        assert!(cache.get("a", 0).is_some()); // now "a"/1 is the oldest
        cache.put("b", 0, Bytes::from_static(b"123"));
        assert!(cache.get("a", 1).is_none());
        assert!(cache.get("a", 0).is_some() && cache.get("b", 0).is_some());
        assert_eq!(cache.held(), 8);
        cache.forget("a");
        assert_eq!(cache.held(), 3);
        assert!(cache.get("a", 0).is_none());
        // One prefetch per chunk at a time.
        assert!(cache.claim("c", 0) && !cache.claim("c", 0));
        cache.release("c", 0);
        assert!(cache.claim("c", 0));
        assert!(!ChunkCache::new(0).claim("c", 0), "no prefetching without a cache to put it in");
    }
}
