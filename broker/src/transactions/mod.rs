//! Kafka transactions: the coordinator of transactional ids ([`coordinator`]) and their state
//! ([`record`]), and what each partition knows of the transactions written to it
//! ([`partition`]): the last stable offset and the aborted ranges read_committed fetches need.

pub mod coordinator;
pub mod partition;
pub mod record;

pub use coordinator::{Fenced, TxnCoordinator};

/// The key a transactional id's coordinator is chosen by (groups use their id).
pub fn coordinator_key(transactional_id: &str) -> String {
    format!("txn:{transactional_id}")
}
