//! Sequence checks for idempotent producers (KIP-98), per producer id, epoch and partition.
//!
//! A batch whose sequences match one of the producer's last five batches is a retry: it gets
//! that batch's offset back and is not stored again. A batch that does not follow the last
//! sequence is out of order. A new epoch starts again at sequence 0.

use ductstream_storage::{Batch, ProducerBatch, ProducerState};
use kafka_protocol::error::ResponseError;

use crate::{BrokerError, Result};

/// What to do with a batch from an idempotent producer.
#[derive(Debug, PartialEq, Eq)]
pub enum Sequenced {
    /// Store it; this is the producer's state once it is stored at `base_offset`.
    Append(ProducerState),
    /// Already stored at this base offset: answer with it.
    Duplicate(i64),
}

/// Checks `batch` against what the partition knows of its producer, assuming it will be stored
/// at `base_offset`.
pub fn check(current: Option<&ProducerState>, batch: &Batch, base_offset: i64) -> Result<Sequenced> {
    let (epoch, first, last) = (batch.producer_epoch(), batch.base_sequence(), batch.last_sequence());
    let written = ProducerBatch { first_sequence: first, last_sequence: last, base_offset };
    let fresh = |epoch| {
        let mut state = ProducerState { producer_id: batch.producer_id(), epoch, batches: Vec::new() };
        state.remember(written);
        state
    };
    let Some(current) = current else {
        if first != 0 {
            return Err(out_of_order(format!("first batch of a producer must start at sequence 0, not {first}")));
        }
        return Ok(Sequenced::Append(fresh(epoch)));
    };
    if epoch < current.epoch {
        return Err(BrokerError::kafka(
            ResponseError::InvalidProducerEpoch,
            format!("producer epoch {epoch} is older than the current epoch {}", current.epoch),
        ));
    }
    if epoch > current.epoch {
        if first != 0 {
            return Err(out_of_order(format!("a new epoch must start at sequence 0, not {first}")));
        }
        return Ok(Sequenced::Append(fresh(epoch)));
    }
    if let Some(done) = current.batches.iter().find(|b| b.first_sequence == first && b.last_sequence == last) {
        return Ok(Sequenced::Duplicate(done.base_offset));
    }
    let expected = current.last_sequence().map_or(0, next_sequence);
    if first != expected {
        return Err(out_of_order(format!("expected sequence {expected}, got {first}")));
    }
    let mut state = current.clone();
    state.remember(written);
    Ok(Sequenced::Append(state))
}

fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX { 0 } else { sequence + 1 }
}

fn out_of_order(message: String) -> BrokerError {
    BrokerError::kafka(ResponseError::OutOfOrderSequenceNumber, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ductstream_storage::testsuite::make_batch;

    fn batch(count: i32, epoch: i16, sequence: i32) -> Batch {
        Batch::parse(make_batch(count, 0, Some((9, epoch, sequence)))).expect("valid batch")
    }

    fn appended(result: Result<Sequenced>) -> ProducerState {
        match result {
            Ok(Sequenced::Append(state)) => state,
            other => panic!("expected an append, got {other:?}"),
        }
    }

    #[test]
    fn accepts_in_order_and_answers_retries_with_the_first_offset() {
        let s1 = appended(check(None, &batch(3, 0, 0), 100));
        let s2 = appended(check(Some(&s1), &batch(2, 0, 3), 103));
        assert_eq!(check(Some(&s2), &batch(3, 0, 0), 105).ok(), Some(Sequenced::Duplicate(100)));
        assert_eq!(check(Some(&s2), &batch(2, 0, 3), 105).ok(), Some(Sequenced::Duplicate(103)));
    }

    #[test]
    fn refuses_gaps_old_epochs_and_nonzero_starts() {
        let s1 = appended(check(None, &batch(3, 1, 0), 0));
        let gap = check(Some(&s1), &batch(1, 1, 5), 3).map_err(|e| e.code());
        assert_eq!(gap.err(), Some(ResponseError::OutOfOrderSequenceNumber));
        let old = check(Some(&s1), &batch(1, 0, 3), 3).map_err(|e| e.code());
        assert_eq!(old.err(), Some(ResponseError::InvalidProducerEpoch));
        let unknown = check(None, &batch(1, 0, 4), 0).map_err(|e| e.code());
        assert_eq!(unknown.err(), Some(ResponseError::OutOfOrderSequenceNumber));
        let bumped = appended(check(Some(&s1), &batch(1, 2, 0), 3));
        assert_eq!((bumped.epoch, bumped.batches.len()), (2, 1));
    }

    #[test]
    fn remembers_only_the_last_five_batches() {
        let mut state = appended(check(None, &batch(1, 0, 0), 0));
        for seq in 1..7 {
            state = appended(check(Some(&state), &batch(1, 0, seq), seq as i64));
        }
        assert_eq!(state.batches.len(), 5);
        assert!(check(Some(&state), &batch(1, 0, 0), 7).is_err(), "too old to be recognised");
    }
}
