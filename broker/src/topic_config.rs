//! Topic configs: the names Kafka knows, their defaults and types, and validation.
//!
//! Every config below is accepted, stored and described, with Kafka 4.1's defaults and
//! validation. `max.message.bytes`, `message.timestamp.type`, the timestamp bounds,
//! `retention.ms` and `cleanup.policy` (keys on compacted topics) change the broker's behaviour
//! (README lists this); the rest are kept so tools that set them, or copy a Kafka topic's
//! configs, work, and so that later features (size retention, compaction) find them.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use crate::config::BrokerConfig;
use crate::tiering::{LOCAL_RETENTION_BYTES, LOCAL_RETENTION_MS, REMOTE_STORAGE_ENABLE};
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
pub const TIMESTAMP_BEFORE_MAX_MS: &str = "message.timestamp.before.max.ms";
pub const TIMESTAMP_AFTER_MAX_MS: &str = "message.timestamp.after.max.ms";
pub const CLEANUP_POLICY: &str = "cleanup.policy";
pub const DELETE_RETENTION_MS: &str = "delete.retention.ms";
pub const MIN_CLEANABLE_DIRTY_RATIO: &str = "min.cleanable.dirty.ratio";
pub const MIN_COMPACTION_LAG_MS: &str = "min.compaction.lag.ms";
pub const MAX_COMPACTION_LAG_MS: &str = "max.compaction.lag.ms";

pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: CLEANUP_POLICY,
        default: "delete",
        kind: ConfigType::List,
        allowed: &["delete", "compact", "compact,delete", "delete,compact"],
        doc: "compact keeps the latest record of each key (the log cleaner); delete removes records past retention.ms and retention.bytes; both do both (enforced).",
    },
    def("compression.gzip.level", "-1", ConfigType::Int, "Stored (-1 or 1 to 9); batches are kept as the producer compressed them."),
    def("compression.lz4.level", "9", ConfigType::Int, "Stored (1 to 17); batches are kept as the producer compressed them."),
    TopicConfigDef {
        name: "compression.type",
        default: "producer",
        kind: ConfigType::String,
        allowed: &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"],
        doc: "Stored; batches are always kept as the producer compressed them.",
    },
    def("compression.zstd.level", "3", ConfigType::Int, "Stored (-131072 to 22); batches are kept as the producer compressed them."),
    def(DELETE_RETENTION_MS, "86400000", ConfigType::Long, "How long a compacted topic keeps a key's tombstone after the cleaner first passed it (enforced)."),
    def("file.delete.delay.ms", "60000", ConfigType::Long, "Stored; not applicable."),
    def("flush.messages", "9223372036854775807", ConfigType::Long, "Stored; acks>=1 always waits for a sync."),
    def("flush.ms", "9223372036854775807", ConfigType::Long, "Stored; acks>=1 always waits for a sync."),
    def("follower.replication.throttled.replicas", "", ConfigType::List, "Stored; there is one copy of each partition."),
    def("index.interval.bytes", "4096", ConfigType::Int, "Stored; not applicable."),
    def("leader.replication.throttled.replicas", "", ConfigType::List, "Stored; there is one copy of each partition."),
    def(LOCAL_RETENTION_BYTES, "-2", ConfigType::Long, "With remote storage, bytes of uploaded segments also kept locally (enforced; -2: as retention.bytes, -1: all)."),
    def(LOCAL_RETENTION_MS, "-2", ConfigType::Long, "With remote storage, how long uploaded records are also kept locally (enforced; -2: as retention.ms, -1: forever)."),
    def(
        MAX_COMPACTION_LAG_MS,
        "9223372036854775807",
        ConfigType::Long,
        "A partition whose oldest uncleaned record is older than this is cleaned whatever its dirty ratio (enforced).",
    ),
    def(MAX_MESSAGE_BYTES, "1048588", ConfigType::Int, "Largest record batch accepted (enforced)."),
    def(
        TIMESTAMP_AFTER_MAX_MS,
        "3600000",
        ConfigType::Long,
        "With CreateTime, records more than this many ms ahead of the broker's clock are refused (enforced).",
    ),
    def(
        TIMESTAMP_BEFORE_MAX_MS,
        "9223372036854775807",
        ConfigType::Long,
        "With CreateTime, records more than this many ms behind the broker's clock are refused (enforced).",
    ),
    TopicConfigDef {
        name: MESSAGE_TIMESTAMP_TYPE,
        default: "CreateTime",
        kind: ConfigType::String,
        allowed: &["CreateTime", "LogAppendTime"],
        doc: "LogAppendTime stamps each batch with the broker's time on append (enforced).",
    },
    def(MIN_CLEANABLE_DIRTY_RATIO, "0.5", ConfigType::Double, "The share of a compacted log not yet cleaned that starts a cleaning (enforced)."),
    def(MIN_COMPACTION_LAG_MS, "0", ConfigType::Long, "Records younger than this are not compacted yet (enforced)."),
    def("min.insync.replicas", "1", ConfigType::Int, "Stored; there is one copy of each partition."),
    def("preallocate", "false", ConfigType::Boolean, "Stored; not applicable."),
    def("remote.log.copy.disable", "false", ConfigType::Boolean, "Stored; there is no tiered storage."),
    def("remote.log.delete.on.disable", "false", ConfigType::Boolean, "Stored; there is no tiered storage."),
    def(REMOTE_STORAGE_ENABLE, "false", ConfigType::Boolean, "Sealed segments move to the remote tier (--tier-s3-bucket) and are read back from it (enforced; not with cleanup.policy=compact)."),
    def(RETENTION_BYTES, "-1", ConfigType::Long, "Largest size a partition keeps: whole segments go on the embedded store, whole batches on Postgres (enforced; -1 keeps all)."),
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
        REMOTE_STORAGE_ENABLE => broker.tier.remote_storage_enable.to_string(),
        LOCAL_RETENTION_MS => broker.tier.local_retention_ms.to_string(),
        LOCAL_RETENTION_BYTES => broker.tier.local_retention_bytes.to_string(),
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
    // Kafka's ranges for the configs that have one.
    let within = |low: i64, high: i64| value.parse::<i64>().is_ok_and(|v| (low..=high).contains(&v));
    let ok = match name {
        "compression.gzip.level" => value == "-1" || within(1, 9),
        "compression.lz4.level" => within(1, 17),
        "compression.zstd.level" => within(-131_072, 22),
        TIMESTAMP_BEFORE_MAX_MS | TIMESTAMP_AFTER_MAX_MS => within(0, i64::MAX),
        LOCAL_RETENTION_MS | LOCAL_RETENTION_BYTES => within(-2, i64::MAX),
        DELETE_RETENTION_MS | MIN_COMPACTION_LAG_MS => within(0, i64::MAX),
        MAX_COMPACTION_LAG_MS => within(1, i64::MAX),
        MIN_CLEANABLE_DIRTY_RATIO => value.parse::<f64>().is_ok_and(|v| (0.0..=1.0).contains(&v)),
        "leader.replication.throttled.replicas" | "follower.replication.throttled.replicas" => throttled_replicas(value),
        _ => true,
    };
    if !ok {
        return Err(bad());
    }
    Ok(())
}

/// Kafka's throttled-replica list: `*`, or `partition:broker` entries separated by commas.
fn throttled_replicas(value: &str) -> bool {
    let value = value.trim();
    if value == "*" || value.is_empty() {
        return true;
    }
    value.split(',').all(|entry| {
        entry.trim().split_once(':').is_some_and(|(p, b)| {
            !p.is_empty() && !b.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit())
        })
    })
}

/// The accepted range of CreateTime timestamps relative to the broker's clock: how far
/// behind and how far ahead, in ms (Kafka's `message.timestamp.before.max.ms` and
/// `message.timestamp.after.max.ms`).
pub fn timestamp_bounds(configs: &BTreeMap<String, String>) -> (i64, i64) {
    // Kafka 4.1's defaults (as in TOPIC_CONFIGS): any time behind, an hour ahead.
    let get = |name: &str, default: i64| configs.get(name).and_then(|v| v.parse().ok()).unwrap_or(default);
    (get(TIMESTAMP_BEFORE_MAX_MS, i64::MAX), get(TIMESTAMP_AFTER_MAX_MS, 3_600_000))
}

/// Validates every entry of a topic's config map, then the entries that go together.
pub fn validate_all(configs: &BTreeMap<String, String>, broker: &BrokerConfig) -> Result<()> {
    configs.iter().try_for_each(|(k, v)| validate(k, v))?;
    let invalid = |message: &str| Err(BrokerError::kafka(ResponseError::InvalidConfig, message));
    if configs.get(REMOTE_STORAGE_ENABLE).is_some_and(|v| v == "true") {
        if !broker.tier.configured {
            // Kafka's answer when its brokers have tiered storage off.
            return invalid("Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage.");
        }
        if is_compacted(configs) {
            return invalid("Remote log storage is only supported for topics with cleanup.policy=delete");
        }
    }
    // Local retention cannot exceed retention (-2 means "as retention"; -1 is unbounded).
    for (local, whole) in [(LOCAL_RETENTION_MS, RETENTION_MS), (LOCAL_RETENTION_BYTES, RETENTION_BYTES)] {
        let get = |name: &str| configs.get(name).and_then(|v| v.parse::<i64>().ok());
        if let (Some(l), Some(w)) = (get(local), get(whole))
            && w >= 0
            && (l == -1 || l > w)
        {
            return invalid(&format!("{local} {l} must not be more than {whole} {w}"));
        }
    }
    Ok(())
}

/// The largest batch `topic` accepts.
pub fn max_message_bytes(configs: &BTreeMap<String, String>, broker: &BrokerConfig) -> i32 {
    configs.get(MAX_MESSAGE_BYTES).and_then(|v| v.parse().ok()).unwrap_or(broker.message_max_bytes)
}

/// True when the topic is compacted (`compact` or `compact,delete`).
pub fn is_compacted(configs: &BTreeMap<String, String>) -> bool {
    policy(configs).any(|v| v == "compact")
}

/// True when retention deletes the topic's old records (`delete`, the default, or
/// `compact,delete`); a topic that is only compacted keeps every key's latest record however
/// old, as Kafka does.
pub fn deletes(configs: &BTreeMap<String, String>) -> bool {
    policy(configs).any(|v| v == "delete")
}

fn policy(configs: &BTreeMap<String, String>) -> impl Iterator<Item = &str> {
    configs.get(CLEANUP_POLICY).map_or("delete", String::as_str).split(',').map(str::trim)
}

/// A config of Kafka type long or double, or its default from [`TOPIC_CONFIGS`].
pub fn number(configs: &BTreeMap<String, String>, name: &str) -> f64 {
    let parse = |v: &str| v.parse::<f64>().ok();
    configs.get(name).and_then(|v| parse(v)).or_else(|| lookup(name).and_then(|d| parse(d.default))).unwrap_or(0.0)
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
        assert!(validate("compression.gzip.level", "-1").is_ok() && validate("compression.gzip.level", "0").is_err());
        assert!(validate("compression.zstd.level", "-7").is_ok() && validate("compression.zstd.level", "23").is_err());
        assert!(validate("compression.lz4.level", "17").is_ok() && validate("compression.lz4.level", "18").is_err());
        assert!(validate(TIMESTAMP_AFTER_MAX_MS, "0").is_ok() && validate(TIMESTAMP_AFTER_MAX_MS, "-1").is_err());
        assert!(validate("local.retention.ms", "-2").is_ok() && validate("local.retention.ms", "-3").is_err());
        assert!(validate("leader.replication.throttled.replicas", "0:1, 1:1").is_ok());
        assert!(validate("leader.replication.throttled.replicas", "*").is_ok());
        assert!(validate("leader.replication.throttled.replicas", "0-1").is_err());
        assert!(validate("remote.storage.enable", "false").is_ok() && validate("remote.storage.enable", "yes").is_err());
        // the bounds' defaults are the ones described
        let defaults = [TIMESTAMP_BEFORE_MAX_MS, TIMESTAMP_AFTER_MAX_MS].map(|n| lookup(n).map(|d| d.default.parse::<i64>().ok()));
        let (before, after) = timestamp_bounds(&BTreeMap::new());
        assert_eq!(defaults, [Some(Some(before)), Some(Some(after))]);
    }
}
