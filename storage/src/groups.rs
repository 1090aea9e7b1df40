//! What the broker keeps about consumer groups: their membership as of the last completed
//! rebalance, and the offsets they committed.

use serde::{Deserialize, Serialize};

/// An offset a group committed for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The leader epoch the consumer saw (-1 when unknown).
    pub leader_epoch: i32,
    /// The client's metadata string, returned as given.
    pub metadata: String,
    /// Milliseconds since the epoch when the commit was stored.
    pub commit_timestamp: i64,
}

/// A group's membership, saved whenever a rebalance completes or the group empties, so that a
/// restarted broker knows its groups, generations and assignments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    pub group_id: String,
    /// "consumer" for Kafka consumers; other protocol types pass through unread.
    pub protocol_type: String,
    /// The chosen assignor ("range", "roundrobin", ...) once a rebalance completed.
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: Vec<MemberState>,
}

/// One member of a group as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberState {
    pub member_id: String,
    /// Static membership (KIP-345).
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// The member's subscription metadata for the chosen protocol.
    pub subscription: Vec<u8>,
    /// The assignment the leader gave it.
    pub assignment: Vec<u8>,
}
