use serde::{Deserialize, Serialize};

/// Where the runtime cut a batch, recorded before the batch is written: after a crash the same
/// offsets are read and written again as one batch, so the destination sees the same batch
/// (the same object name, the same transaction, the same idempotency keys) and never a second,
/// differently cut copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cut {
    pub topic: String,
    pub partition: i32,
    /// The batch covers offsets `first..next`.
    pub first: i64,
    pub next: i64,
}
