//! A transactional id's state, as the coordinator keeps it: one storage document per id
//! (`txn`, key the transactional id), changed only through atomic document updates, so that
//! any broker on the same store can carry on a transaction another one began.

use std::collections::{BTreeMap, BTreeSet};

use ductstream_storage::CommittedOffset;
use serde::{Deserialize, Serialize};

pub const KIND: &str = "txn";

/// Kafka's transaction states (as DescribeTransactions and ListTransactions name them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// Markers are being written: the transaction is neither open nor over.
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// A new transaction may begin.
    pub fn is_idle(self) -> bool {
        matches!(self, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnRecord {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
    pub state: TxnState,
    pub timeout_ms: i32,
    /// When the current (or last) transaction began.
    pub started_ms: i64,
    pub updated_ms: i64,
    /// Partitions written in the transaction (`topic`, `partition`).
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups whose offsets the transaction commits.
    pub groups: BTreeSet<String>,
    /// Offsets committed in the transaction, by group: stored when it commits.
    pub pending_offsets: BTreeMap<String, Vec<CommittedOffset>>,
}

impl TxnRecord {
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now: i64) -> TxnRecord {
        TxnRecord {
            transactional_id: transactional_id.to_owned(),
            producer_id,
            epoch: -1,
            state: TxnState::Empty,
            timeout_ms,
            started_ms: now,
            updated_ms: now,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            pending_offsets: BTreeMap::new(),
        }
    }

    /// Starts a transaction when none is open.
    pub fn begin(&mut self, now: i64) {
        if self.state != TxnState::Ongoing {
            self.state = TxnState::Ongoing;
            self.started_ms = now;
            self.partitions.clear();
            self.groups.clear();
            self.pending_offsets.clear();
        }
    }

    /// The transaction is over: nothing of it is kept but its outcome.
    pub fn complete(&mut self, now: i64) {
        self.state = if self.state == TxnState::PrepareCommit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        self.partitions.clear();
        self.groups.clear();
        self.pending_offsets.clear();
        self.updated_ms = now;
    }
}
