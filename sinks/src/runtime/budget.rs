use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One memory budget for the records every sink of a process holds before writing them.
///
/// Past the budget, runners stop fetching (backpressure) until written batches give their
/// share back; a read that starts under the budget may pass it by one read, so a runner never
/// waits on memory its own buffers hold (they flush by size or time and free it).
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    limit: usize,
    used: Arc<AtomicUsize>,
}

impl MemoryBudget {
    pub fn new(limit: usize) -> MemoryBudget {
        MemoryBudget { limit, used: Arc::new(AtomicUsize::new(0)) }
    }

    /// How many more bytes may be fetched now (0 once the budget is spent).
    pub fn available(&self) -> usize {
        self.limit.saturating_sub(self.used.load(Ordering::SeqCst))
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    pub(crate) fn hold(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::SeqCst);
    }

    pub(crate) fn release(&self, bytes: usize) {
        let _ = self.used.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| Some(used.saturating_sub(bytes)));
    }
}
