//! DescribeConfigs (v1–v4): topic configs (overrides and defaults) and the broker's own
//! settings (read-only).

use ductstream_storage::Topic;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{message, Ctx};
use crate::security::acl::{Operation, ResourceType};
use crate::security::not_authorized;
use crate::topic_config::{self, ConfigType, TOPIC_CONFIGS};
use crate::BrokerError;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// One config as described.
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub source: i8,
    pub read_only: bool,
    pub kind: ConfigType,
    pub doc: &'static str,
    /// The value it would have without the topic override.
    pub default: Option<String>,
}

pub async fn handle(ctx: &Ctx, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let mut results = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        // Null or empty both mean every config, as Kafka treats them.
        let keys: Option<Vec<String>> = resource
            .configuration_keys
            .filter(|k| !k.is_empty())
            .map(|k| k.iter().map(|s| s.as_str().to_owned()).collect());
        let result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let entries = match resource.resource_type {
            RESOURCE_TOPIC if !ctx.allowed(Operation::DescribeConfigs, ResourceType::Topic, resource.resource_name.as_str()) => {
                Err(not_authorized(ResourceType::Topic, resource.resource_name.as_str()))
            }
            RESOURCE_BROKER if !ctx.allowed_on_cluster(Operation::DescribeConfigs) => Err(not_authorized(ResourceType::Cluster, "")),
            RESOURCE_TOPIC => match ctx.broker.storage().topic(resource.resource_name.as_str()).await {
                Ok(Some(topic)) => Ok(topic_entries(ctx, &topic, keys.as_deref(), true)),
                Ok(None) => Err(BrokerError::kafka(ResponseError::UnknownTopicOrPartition, "unknown topic")),
                Err(e) => Err(e.into()),
            },
            RESOURCE_BROKER => {
                let name = resource.resource_name.as_str();
                if name.is_empty() || name == ctx.broker.config.node_id.to_string() {
                    Ok(broker_entries(ctx, keys.as_deref()))
                } else {
                    Err(BrokerError::kafka(ResponseError::InvalidRequest, format!("this is broker {}", ctx.broker.config.node_id)))
                }
            }
            other => Err(BrokerError::kafka(ResponseError::InvalidRequest, format!("resource type {other} is not described"))),
        };
        results.push(match entries {
            Ok(entries) => result.with_configs(
                entries.into_iter().map(|e| to_result(ctx, e, request.include_synonyms, request.include_documentation)).collect(),
            ),
            Err(e) => result.with_error_code(ctx.error_code(&e)).with_error_message(message(&e)),
        });
    }
    DescribeConfigsResponse::default().with_results(results)
}

/// Every topic config (or those in `keys`): overrides from the topic, defaults otherwise.
pub fn topic_entries(ctx: &Ctx, topic: &Topic, keys: Option<&[String]>, keep_defaults: bool) -> Vec<ConfigEntry> {
    TOPIC_CONFIGS
        .iter()
        .filter(|d| keys.is_none_or(|k| k.iter().any(|n| n == d.name)))
        .filter_map(|d| {
            let default = topic_config::default_value(d, &ctx.broker.config);
            let entry = |value, source, default| ConfigEntry {
                name: d.name,
                value,
                source,
                read_only: false,
                kind: d.kind,
                doc: d.doc,
                default,
            };
            match topic.configs.get(d.name) {
                Some(value) => Some(entry(value.clone(), SOURCE_TOPIC, Some(default))),
                None if keep_defaults || keys.is_none() => Some(entry(default, SOURCE_DEFAULT, None)),
                None => None,
            }
        })
        .collect()
}

fn broker_entries(ctx: &Ctx, keys: Option<&[String]>) -> Vec<ConfigEntry> {
    let c = &ctx.broker.config;
    let entries = [
        ("broker.id", c.node_id.to_string(), ConfigType::Int, "This broker's node id (--node-id)."),
        ("advertised.listeners", c.me().listeners_text(), ConfigType::String, "--advertised-listeners"),
        ("sasl.enabled.mechanisms", c.sasl_mechanisms.join(","), ConfigType::List, "--sasl-enabled-mechanisms"),
        (
            "connections.max.reauth.ms",
            c.connections_max_reauth.map_or(0, |d| d.as_millis()).to_string(),
            ConfigType::Long,
            "--connections-max-reauth-ms",
        ),
        ("auto.create.topics.enable", c.auto_create_topics.to_string(), ConfigType::Boolean, "--auto-create-topics"),
        ("num.partitions", c.num_partitions.to_string(), ConfigType::Int, "--num-partitions"),
        ("message.max.bytes", c.message_max_bytes.to_string(), ConfigType::Int, "--message-max-bytes"),
        ("socket.request.max.bytes", c.socket_request_max_bytes.to_string(), ConfigType::Int, "--socket-request-max-bytes"),
        ("queued.max.request.bytes", c.queued_max_request_bytes.to_string(), ConfigType::Int, "--queued-max-request-bytes"),
        ("default.replication.factor", "1".to_string(), ConfigType::Int, "One copy of each partition."),
    ];
    entries
        .into_iter()
        .filter(|(name, ..)| keys.is_none_or(|k| k.iter().any(|n| n == name)))
        .map(|(name, value, kind, doc)| ConfigEntry {
            name,
            value,
            source: SOURCE_STATIC_BROKER,
            read_only: true,
            kind,
            doc,
            default: None,
        })
        .collect()
}

/// The broker config that sets a topic config's default: Kafka names a topic config's
/// DEFAULT_CONFIG synonym after it (`cleanup.policy` -> `log.cleanup.policy`), as in its
/// `ServerTopicConfigSynonyms` (the first, preferred synonym of each).
pub fn broker_synonym(topic_config: &'static str) -> &'static str {
    match topic_config {
        "cleanup.policy" => "log.cleanup.policy",
        "delete.retention.ms" => "log.cleaner.delete.retention.ms",
        "file.delete.delay.ms" => "log.segment.delete.delay.ms",
        "flush.messages" => "log.flush.interval.messages",
        "flush.ms" => "log.flush.interval.ms",
        "index.interval.bytes" => "log.index.interval.bytes",
        "local.retention.bytes" => "log.local.retention.bytes",
        "local.retention.ms" => "log.local.retention.ms",
        "max.compaction.lag.ms" => "log.cleaner.max.compaction.lag.ms",
        "max.message.bytes" => "message.max.bytes",
        "message.timestamp.after.max.ms" => "log.message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms" => "log.message.timestamp.before.max.ms",
        "message.timestamp.type" => "log.message.timestamp.type",
        "min.cleanable.dirty.ratio" => "log.cleaner.min.cleanable.ratio",
        "min.compaction.lag.ms" => "log.cleaner.min.compaction.lag.ms",
        "preallocate" => "log.preallocate",
        "retention.bytes" => "log.retention.bytes",
        "retention.ms" => "log.retention.ms",
        "segment.bytes" => "log.segment.bytes",
        "segment.index.bytes" => "log.index.size.max.bytes",
        "segment.jitter.ms" => "log.roll.jitter.ms",
        "segment.ms" => "log.roll.ms",
        // compression.type and its levels, min.insync.replicas, unclean.leader.election.enable:
        // same name
        other => other,
    }
}

/// Topic configs whose default no broker config sets (tiered storage, replication throttles):
/// Kafka lists no synonym for them.
fn has_broker_default(topic_config: &str) -> bool {
    !matches!(
        topic_config,
        "remote.storage.enable"
            | "remote.log.copy.disable"
            | "remote.log.delete.on.disable"
            | "leader.replication.throttled.replicas"
            | "follower.replication.throttled.replicas"
    )
}

fn to_result(ctx: &Ctx, e: ConfigEntry, synonyms: bool, documentation: bool) -> DescribeConfigsResourceResult {
    let mut result = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(e.name))
        .with_value(Some(StrBytes::from_string(e.value.clone())))
        .with_read_only(e.read_only)
        .with_config_source(e.source);
    if synonyms {
        // A topic config's default is named after the broker config that sets it; a topic
        // override and a broker setting keep their own names.
        let own_name = if e.source == SOURCE_DEFAULT { broker_synonym(e.name) } else { e.name };
        let mut list = Vec::new();
        if e.source != SOURCE_DEFAULT || has_broker_default(e.name) {
            list.push(
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_static_str(own_name))
                    .with_value(Some(StrBytes::from_string(e.value)))
                    .with_source(e.source),
            );
        }
        if let Some(default) = e.default.filter(|_| has_broker_default(e.name)) {
            list.push(
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_static_str(broker_synonym(e.name)))
                    .with_value(Some(StrBytes::from_string(default)))
                    .with_source(SOURCE_DEFAULT),
            );
        }
        result = result.with_synonyms(list);
    }
    if ctx.version >= 3 {
        result = result.with_config_type(e.kind as i8);
        if documentation {
            result = result.with_documentation(Some(StrBytes::from_static_str(e.doc)));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_named_after_kafkas_broker_configs() {
        assert_eq!(broker_synonym("cleanup.policy"), "log.cleanup.policy");
        assert_eq!(broker_synonym("max.message.bytes"), "message.max.bytes");
        assert_eq!(broker_synonym("segment.index.bytes"), "log.index.size.max.bytes");
        // Kafka's broker configs of the same name as the topic config
        let same = [
            "compression.type",
            "compression.gzip.level",
            "compression.lz4.level",
            "compression.zstd.level",
            "min.insync.replicas",
            "unclean.leader.election.enable",
        ];
        for def in TOPIC_CONFIGS.iter().filter(|d| has_broker_default(d.name)) {
            let broker = broker_synonym(def.name);
            assert!(broker != def.name || same.contains(&def.name), "{} has no broker synonym", def.name);
        }
    }
}
