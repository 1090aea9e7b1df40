//! Topic configs: the names Kafka knows, their defaults and types, and validation.
//!
//! Every config below is accepted, stored and described. `max.message.bytes`,
//! `message.timestamp.type` and `retention.ms` change the broker's behaviour (README lists
//! this); the rest are kept so tools that set them work and so that later features
//! (size retention, compaction) find them.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use crate::config::BrokerConfig;
use crate::{BrokerError, Result};

/// A config's type as DescribeConfigs v3+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

pub struct TopicConfigDef {
    pub name: &'static str,
    pub default: &'static str,
    pub kind: ConfigType,
    /// For string configs with a fixed set of values.
    pub allowed: &'static [&'static str],
    pub doc: &'static str,
}

const fn def(name: &'static str, default: &'static str, kind: ConfigType, doc: &'static str) -> TopicConfigDef {
    TopicConfigDef { name, default, kind, allowed: &[], doc }
}

pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
pub const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";
pub const RETENTION_MS: &str = "retention.ms";
pub const RETENTION_BYTES: &str = "retention.bytes";

pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "cleanup.policy",
        default: "delete",
        kind: ConfigType::List,
        allowed: &["delete", "compact", "compact,delete", "delete,compact"],
        doc: "Stored; compaction is not performed yet.",
    },
    TopicConfigDef {
        name: "compression.type",
        default: "producer",
        kind: ConfigType::String,
        allowed: &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"],
        doc: "Stored; batches are always kept as the producer compressed them.",
    },
    def("delete.retention.ms", "86400000", ConfigType::Long, "Stored; not enforced yet."),
    def("file.delete.delay.ms", "60000", ConfigType::Long, "Stored; not applicable."),
    def("flush.messages", "9223372036854775807", ConfigType::Long, "Stored; acks>=1 always waits for a sync."),
    def("flush.ms", "9223372036854775807", ConfigType::Long, "Stored; acks>=1 always waits for a sync."),
    def("index.interval.bytes", "4096", ConfigType::Int, "Stored; not applicable."),
    def("max.compaction.lag.ms", "9223372036854775807", ConfigType::Long, "Stored; not enforced yet."),
    def(MAX_MESSAGE_BYTES, "1048588", ConfigType::Int, "Largest record batch accepted (enforced)."),
    TopicConfigDef {
        name: MESSAGE_TIMESTAMP_TYPE,
        default: "CreateTime",
        kind: ConfigType::String,
        allowed: &["CreateTime", "LogAppendTime"],
        doc: "LogAppendTime stamps each batch with the broker's time on append (enforced).",
    },
    def("min.cleanable.dirty.ratio", "0.5", ConfigType::Double, "Stored; not enforced yet."),
    def("min.compaction.lag.ms", "0", ConfigType::Long, "Stored; not enforced yet."),
    def("min.insync.replicas", "1", ConfigType::Int, "Stored; there is one copy of each partition."),
    def("preallocate", "false", ConfigType::Boolean, "Stored; not applicable."),
    def(RETENTION_BYTES, "-1", ConfigType::Long, "Largest size a partition keeps, in whole segments (enforced by the embedded store; -1 keeps all)."),
    def(RETENTION_MS, "604800000", ConfigType::Long, "Records whose batch's largest timestamp is older are deleted (enforced; -1 keeps them)."),
    def("segment.bytes", "134217728", ConfigType::Int, "Segment files roll at this size (enforced by the embedded store)."),
    def("segment.index.bytes", "10485760", ConfigType::Int, "Stored; not applicable."),
    def("segment.jitter.ms", "0", ConfigType::Long, "Stored; not applicable."),
    def("segment.ms", "604800000", ConfigType::Long, "Segment files roll after this long (enforced by the embedded store; a restart starts the clock again)."),
    def("unclean.leader.election.enable", "false", ConfigType::Boolean, "Stored; not applicable."),
];

pub fn lookup(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// The default of `def` on this broker (broker flags override some Kafka defaults).
pub fn default_value(def: &TopicConfigDef, broker: &BrokerConfig) -> String {
    match def.name {
        MAX_MESSAGE_BYTES => broker.message_max_bytes.to_string(),
        RETENTION_MS => broker.log_retention_ms.to_string(),
        _ => def.default.to_string(),
    }
}

/// Checks a name and value a client wants to set.
pub fn validate(name: &str, value: &str) -> Result<()> {
    let def = lookup(name)
        .ok_or_else(|| BrokerError::kafka(ResponseError::InvalidConfig, format!("unknown topic config {name:?}")))?;
    let bad = || BrokerError::kafka(ResponseError::InvalidConfig, format!("invalid value {value:?} for {name}"));
    let ok = match def.kind {
        ConfigType::Boolean => value == "true" || value == "false",
        ConfigType::Int => value.parse::<i32>().is_ok(),
        ConfigType::Long => value.parse::<i64>().is_ok(),
        ConfigType::Double => value.parse::<f64>().is_ok(),
        ConfigType::String | ConfigType::List => def.allowed.is_empty() || def.allowed.contains(&value),
    };
    if !ok {
        return Err(bad());
    }
    if name == MAX_MESSAGE_BYTES && value.parse::<i32>().map_or(true, |v| v < 0) {
        return Err(bad());
    }
    Ok(())
}

/// Validates every entry of a config map.
pub fn validate_all(configs: &BTreeMap<String, String>) -> Result<()> {
    configs.iter().try_for_each(|(k, v)| validate(k, v))
}

/// The largest batch `topic` accepts.
pub fn max_message_bytes(configs: &BTreeMap<String, String>, broker: &BrokerConfig) -> i32 {
    configs.get(MAX_MESSAGE_BYTES).and_then(|v| v.parse().ok()).unwrap_or(broker.message_max_bytes)
}

/// How long `topic` keeps records, in ms; `None`: forever.
pub fn retention_ms(configs: &BTreeMap<String, String>, broker: &BrokerConfig) -> Option<i64> {
    let ms = configs.get(RETENTION_MS).and_then(|v| v.parse().ok()).unwrap_or(broker.log_retention_ms);
    (ms >= 0).then_some(ms)
}

/// The topic's `retention.bytes`, when it limits size.
pub fn retention_bytes(configs: &BTreeMap<String, String>) -> Option<u64> {
    configs.get(RETENTION_BYTES).and_then(|v| v.parse::<i64>().ok()).filter(|b| *b >= 0).map(|b| b as u64)
}

/// True when the topic wants batches stamped with the broker's append time.
pub fn log_append_time(configs: &BTreeMap<String, String>) -> bool {
    configs.get(MESSAGE_TIMESTAMP_TYPE).is_some_and(|v| v == "LogAppendTime")
}

/// Kafka's topic naming rule: 1 to 249 of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let legal = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if legal {
        Ok(())
    } else {
        Err(BrokerError::kafka(
            ResponseError::InvalidTopicException,
            format!("topic name {name:?} is illegal: use 1 to 249 of [a-zA-Z0-9._-], not '.' or '..'"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names_and_values() {
        assert!(validate_topic_name("orders.v1_x-y").is_ok());
        for bad in ["", ".", "..", "has space", "slash/no", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(validate("retention.ms", "1000").is_ok());
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("cleanup.policy", "compact").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("no.such.config", "1").is_err());
        assert!(validate(MAX_MESSAGE_BYTES, "-5").is_err());
    }
}
