//! The memory every connection's in-flight requests may hold at once (Kafka's
//! `queued.max.request.bytes`). A frame's bytes are reserved before they are read and given
//! back once its response is written, so a burst of large requests from many clients waits
//! for memory rather than taking the broker's: a connection that finds the pool spent stops
//! reading (its client sees a slower broker, not an error) until others' responses go out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct RequestMemory {
    pool: Arc<Semaphore>,
    limit: usize,
    waits: AtomicU64,
}

/// Bytes held for one request until it is dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
}

impl RequestMemory {
    /// A pool of `limit` bytes (at least one; at most what a semaphore counts).
    pub fn new(limit: usize) -> RequestMemory {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        RequestMemory { pool: Arc::new(Semaphore::new(limit)), limit, waits: AtomicU64::new(0) }
    }

    /// Reserves `bytes`, waiting while the pool is spent. A request larger than the whole pool
    /// takes the whole pool, so it waits for every other but still runs.
    pub async fn reserve(&self, bytes: usize) -> Reservation {
        let wanted = u32::try_from(bytes.min(self.limit)).unwrap_or(u32::MAX);
        if wanted == 0 {
            return Reservation { _permit: None };
        }
        let permit = match self.pool.clone().try_acquire_many_owned(wanted) {
            Ok(permit) => Some(permit),
            Err(_) => {
                self.waits.fetch_add(1, Ordering::Relaxed);
                // The pool is never closed, so acquiring only ever waits.
                self.pool.clone().acquire_many_owned(wanted).await.ok()
            }
        };
        Reservation { _permit: permit }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes reserved right now.
    pub fn used(&self) -> usize {
        self.limit.saturating_sub(self.pool.available_permits())
    }

    /// How many reservations had to wait for memory.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_spent_pool_makes_the_next_reservation_wait_until_one_is_dropped() {
        let memory = RequestMemory::new(100);
        let first = memory.reserve(60).await;
        assert_eq!(memory.used(), 60);
        let second = memory.reserve(60);
        tokio::pin!(second);
        assert!(futures::poll!(&mut second).is_pending(), "40 bytes are left, not 60");
        drop(first);
        let second = second.await;
        assert_eq!((memory.used(), memory.waits()), (60, 1));
        drop(second);
        assert_eq!(memory.used(), 0);
    }

    #[tokio::test]
    async fn a_request_larger_than_the_pool_takes_all_of_it() {
        let memory = RequestMemory::new(100);
        let huge = memory.reserve(1_000).await;
        assert_eq!(memory.used(), 100);
        drop(huge);
        assert_eq!(memory.used(), 0);
    }
}
