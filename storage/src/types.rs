use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Batch;
use uuid::Uuid;

/// What a caller asks for when creating a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// Topic-level configs that differ from the broker defaults (Kafka names, string values).
    pub configs: BTreeMap<String, String>,
}

/// A topic as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub id: Uuid,
    pub name: String,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

/// The bounds of one partition's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionOffsets {
    /// The first offset still readable (raised by DeleteRecords).
    pub log_start: i64,
    /// One past the last stored offset: the offset the next batch gets.
    pub high_watermark: i64,
}

/// How many recent batches are remembered per producer to answer retries, as in Kafka.
pub const PRODUCER_BATCHES_KEPT: usize = 5;

/// One batch an idempotent producer wrote, remembered so a retry gets its first answer back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerBatch {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
}

/// What an idempotent producer has written to one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerState {
    pub producer_id: i64,
    pub epoch: i16,
    /// The most recent batches, oldest first, at most [`PRODUCER_BATCHES_KEPT`].
    pub batches: Vec<ProducerBatch>,
}

impl ProducerState {
    /// The sequence the next batch from this producer must start with.
    pub fn last_sequence(&self) -> Option<i32> {
        self.batches.last().map(|b| b.last_sequence)
    }

    /// Records a batch, forgetting the oldest past [`PRODUCER_BATCHES_KEPT`].
    pub fn remember(&mut self, batch: ProducerBatch) {
        self.batches.push(batch);
        if self.batches.len() > PRODUCER_BATCHES_KEPT {
            self.batches.remove(0);
        }
    }
}

/// One partition's batches for [`crate::Storage::append_partitions`], each with its producer's
/// new state when it came from an idempotent producer.
#[derive(Debug, Clone)]
pub struct PartitionWrite {
    pub topic: String,
    pub partition: i32,
    pub batches: Vec<(Batch, Option<ProducerState>)>,
}

/// What [`crate::Storage::append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The offset the batch's first record got.
    pub base_offset: i64,
    /// The partition's new high watermark.
    pub high_watermark: i64,
}

/// A broker as the cluster knows it: its first advertised listener's address, and every
/// listener's by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub listeners: Vec<Endpoint>,
}

/// Where clients reach a broker through one named listener (`SSL://broker1:9093`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub listener: String,
    pub host: String,
    pub port: i32,
}

impl BrokerInfo {
    /// A broker with one listener.
    pub fn single(node_id: i32, listener: &str, host: &str, port: i32) -> BrokerInfo {
        let endpoint = Endpoint { listener: listener.to_string(), host: host.to_string(), port };
        BrokerInfo { node_id, host: host.to_string(), port, listeners: vec![endpoint] }
    }

    /// The address behind `listener`; a broker that names no listeners (registered by an older
    /// version) is reached at its one address.
    pub fn endpoint(&self, listener: &str) -> Option<(&str, i32)> {
        if self.listeners.is_empty() {
            return Some((&self.host, self.port));
        }
        self.listeners.iter().find(|e| e.listener == listener).map(|e| (e.host.as_str(), e.port))
    }

    /// The listeners as Kafka writes `advertised.listeners`: `NAME://host:port,...`.
    pub fn listeners_text(&self) -> String {
        let one = |e: &Endpoint| {
            if e.host.contains(':') {
                format!("{}://[{}]:{}", e.listener, e.host, e.port)
            } else {
                format!("{}://{}:{}", e.listener, e.host, e.port)
            }
        };
        self.listeners.iter().map(one).collect::<Vec<_>>().join(",")
    }

    /// Parses [`BrokerInfo::listeners_text`]; entries it cannot read are skipped.
    pub fn parse_listeners(text: &str) -> Vec<Endpoint> {
        text.split(',')
            .filter_map(|entry| {
                let (listener, address) = entry.trim().split_once("://")?;
                let (host, port) = address.rsplit_once(':')?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                Some(Endpoint { listener: listener.to_string(), host: host.to_string(), port: port.parse().ok()? })
            })
            .collect()
    }
}
