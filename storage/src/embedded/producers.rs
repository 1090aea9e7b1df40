//! Idempotent producer state: rebuilt from the batch headers on open, so it is exactly as
//! durable as the batches it describes.
//!
//! Replaying every batch would make opening as slow as the log is long, and would forget
//! producers whose batches DeleteRecords removed (their next batch would then be refused as out
//! of order after a restart). So the state is saved to the catalog with the offset it covers
//! when a segment is sealed and before segment files are deleted; on open, that snapshot is
//! the starting point and only later batches are replayed.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{Batch, ProducerBatch, ProducerState};

/// The producers of a partition after every batch below `offset`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Snapshot {
    pub offset: i64,
    pub producers: Vec<ProducerState>,
}

impl Snapshot {
    pub fn into_map(self) -> HashMap<i64, ProducerState> {
        self.producers.into_iter().map(|p| (p.producer_id, p)).collect()
    }
}

/// Updates `producers` with a stored batch, by the rule the broker's sequence check uses: a
/// producer's first batch or a new epoch starts afresh, the same epoch remembers one more.
pub(super) fn apply(producers: &mut HashMap<i64, ProducerState>, batch: &Batch) {
    // Transaction markers carry a producer id but no sequence of their own.
    if !batch.has_producer_id() || batch.is_control() {
        return;
    }
    let written = ProducerBatch {
        first_sequence: batch.base_sequence(),
        last_sequence: batch.last_sequence(),
        base_offset: batch.base_offset(),
    };
    let epoch = batch.producer_epoch();
    match producers.get_mut(&batch.producer_id()) {
        Some(state) if state.epoch == epoch => state.remember(written),
        // The broker refuses fenced epochs; a stale batch from another writer changes nothing.
        Some(state) if state.epoch > epoch => {}
        _ => {
            let state = ProducerState { producer_id: batch.producer_id(), epoch, batches: vec![written] };
            producers.insert(state.producer_id, state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsuite::make_batch;

    fn batch(base_offset: i64, epoch: i16, sequence: i32, count: i32) -> Batch {
        Batch::parse(make_batch(count, 0, Some((7, epoch, sequence)))).expect("valid").with_base_offset(base_offset)
    }

    #[test]
    fn rebuilds_like_the_broker_remembers() {
        let mut producers = HashMap::new();
        for i in 0..7 {
            apply(&mut producers, &batch(i * 2, 0, i as i32 * 2, 2));
        }
        let state = &producers[&7];
        assert_eq!(state.batches.len(), crate::PRODUCER_BATCHES_KEPT);
        assert_eq!(state.last_sequence(), Some(13));
        assert_eq!(state.batches[0].base_offset, 4);

        apply(&mut producers, &batch(14, 1, 0, 1));
        assert_eq!(producers[&7].epoch, 1);
        assert_eq!(producers[&7].batches, vec![ProducerBatch { first_sequence: 0, last_sequence: 0, base_offset: 14 }]);
        apply(&mut producers, &batch(15, 0, 14, 1));
        assert_eq!(producers[&7].epoch, 1, "an older epoch does not win");

        let plain = Batch::parse(make_batch(1, 0, None)).expect("valid");
        apply(&mut producers, &plain);
        assert_eq!(producers.len(), 1);
    }
}
