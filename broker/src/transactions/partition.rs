//! What a partition knows of transactions: those open in it (by producer id, from their first
//! offset), which hold back its last stable offset, and those aborted, which read_committed
//! fetches name so that clients drop their records. Kept in a storage document per partition
//! (`txn_partition`, key `<topic id>/<partition>`), written by the append that changes it
//! before that append is answered.

use std::collections::BTreeMap;

use ductstream_storage::{Batch, Storage, Topic};
use serde::{Deserialize, Serialize};

use crate::{BrokerError, Result};

const KIND: &str = "txn_partition";

/// An aborted transaction's range in the partition: its first record and its abort marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionTxns {
    /// Producer id → offset of the transaction's first record here.
    pub open: BTreeMap<i64, i64>,
    /// Oldest first.
    pub aborted: Vec<AbortedTxn>,
}

impl PartitionTxns {
    /// The first offset a read_committed consumer may not read yet: the first record of the
    /// oldest open transaction, or the high watermark.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.open.values().copied().min().map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// Aborted transactions with records in `[from, to)`.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.aborted.iter().filter(|a| a.last_offset >= from && a.first_offset < to).copied().collect()
    }

    /// Takes an appended batch into account; true when something changed.
    pub fn apply(&mut self, event: TxnEvent) -> bool {
        match event {
            TxnEvent::Data { producer_id, offset } => {
                if self.open.contains_key(&producer_id) {
                    return false;
                }
                self.open.insert(producer_id, offset);
                true
            }
            TxnEvent::Marker { producer_id, commit, offset } => {
                let Some(first_offset) = self.open.remove(&producer_id) else { return false };
                if !commit {
                    self.aborted.push(AbortedTxn { producer_id, first_offset, last_offset: offset });
                }
                true
            }
        }
    }

    /// Forgets aborted ranges wholly below the log start.
    pub fn prune(&mut self, log_start: i64) {
        self.aborted.retain(|a| a.last_offset >= log_start);
    }
}

/// What an appended transactional batch means to its partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnEvent {
    /// Records of a transaction, stored at `offset`.
    Data { producer_id: i64, offset: i64 },
    /// The transaction's end, its marker stored at `offset`.
    Marker { producer_id: i64, commit: bool, offset: i64 },
}

impl TxnEvent {
    /// The event of `batch` stored at `base_offset`, if it is transactional.
    pub fn of(batch: &Batch, base_offset: i64) -> Option<TxnEvent> {
        if !batch.is_transactional() {
            return None;
        }
        let producer_id = batch.producer_id();
        Some(if batch.is_control() {
            TxnEvent::Marker { producer_id, commit: is_commit_marker(batch), offset: base_offset }
        } else {
            TxnEvent::Data { producer_id, offset: base_offset }
        })
    }
}

/// Whether a control batch is a commit marker (its record's key is version, type; type 1).
fn is_commit_marker(batch: &Batch) -> bool {
    crate::records::decode(batch)
        .ok()
        .and_then(|records| records.into_iter().next())
        .and_then(|r| r.key)
        .is_some_and(|key| key.len() >= 4 && i16::from_be_bytes([key[2], key[3]]) == 1)
}

fn key(topic: &Topic, partition: i32) -> String {
    format!("{}/{partition}", topic.id)
}

pub async fn load(storage: &dyn Storage, topic: &Topic, partition: i32) -> Result<PartitionTxns> {
    match storage.document(KIND, &key(topic, partition)).await? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| BrokerError::Storage(e.into())),
        None => Ok(PartitionTxns::default()),
    }
}

/// Applies `events` to the stored document atomically (brokers sharing a Postgres store may
/// append to the same partition: a coordinator writes markers where another broker leads) and
/// returns the partition's transactions as now stored.
pub async fn record(storage: &dyn Storage, topic: &Topic, partition: i32, events: &[TxnEvent], log_start: i64) -> Result<PartitionTxns> {
    let mut stored = PartitionTxns::default();
    storage
        .update_document(KIND, &key(topic, partition), &mut |current| {
            let mut txns: PartitionTxns = match current {
                Some(bytes) => serde_json::from_slice(bytes)?,
                None => PartitionTxns::default(),
            };
            for event in events {
                txns.apply(*event);
            }
            txns.prune(log_start);
            stored = txns.clone();
            Ok((txns != PartitionTxns::default()).then(|| serde_json::to_vec(&txns)).transpose()?)
        })
        .await?;
    Ok(stored)
}

/// Forgets a deleted topic's partitions.
pub async fn forget_topic(storage: &dyn Storage, topic: &Topic) -> Result<()> {
    for partition in 0..topic.partitions {
        storage.update_document(KIND, &key(topic, partition), &mut |_| Ok(None)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch_builder::{self, NewRecord};

    fn data(producer_id: i64) -> Batch {
        let record = NewRecord { key: None, value: Some(bytes::Bytes::from_static(b"v")), headers: Vec::new(), timestamp: 0 };
        let plain = batch_builder::build(&[record]).expect("batch");
        // Mark it transactional for this producer, as a client would send it.
        let mut bytes = plain.bytes().to_vec();
        bytes[21..23].copy_from_slice(&0x10i16.to_be_bytes());
        bytes[43..51].copy_from_slice(&producer_id.to_be_bytes());
        Batch::from_stored(bytes.into()).expect("batch")
    }

    #[test]
    fn open_transactions_hold_back_the_stable_offset_and_aborts_are_remembered() {
        let mut txns = PartitionTxns::default();
        let event = |batch: Batch, offset| TxnEvent::of(&batch, offset).expect("transactional");
        let marker = |producer_id, commit| batch_builder::transaction_marker(producer_id, 0, commit, 0).expect("marker");
        assert!(txns.apply(event(data(7), 10)));
        assert!(!txns.apply(event(data(7), 11)), "the first offset stays");
        assert!(txns.apply(event(data(8), 12)));
        assert_eq!(txns.last_stable_offset(20), 10);
        assert!(txns.apply(event(marker(7, false), 13)));
        assert_eq!(txns.last_stable_offset(20), 12);
        assert!(txns.apply(event(marker(8, true), 14)));
        assert_eq!(txns.last_stable_offset(20), 20);
        assert_eq!(txns.aborted, vec![AbortedTxn { producer_id: 7, first_offset: 10, last_offset: 13 }]);
        assert_eq!(txns.aborted_between(14, 20), vec![]);
        assert_eq!(txns.aborted_between(0, 11).len(), 1);
        assert!(!txns.apply(event(marker(8, true), 15)), "a repeated marker changes nothing");
        txns.prune(14);
        assert!(txns.aborted.is_empty());
    }
}
