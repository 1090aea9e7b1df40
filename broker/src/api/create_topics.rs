//! CreateTopics (v2–v7): partitions, a replication factor of 1 (one broker holds every
//! partition), validated configs, and `validate_only`.

use std::collections::{BTreeMap, HashSet};

use ductstream_storage::{Topic, TopicSpec};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{message, Ctx};
use crate::security::acl::{Operation, ResourceType};
use crate::security::not_authorized;
use crate::api::describe_configs::{topic_entries, ConfigEntry};
use crate::{topic_config, BrokerError, Result};

pub async fn handle(ctx: &Ctx, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicated: HashSet<String> =
        request.topics.iter().map(|t| t.name.0.as_str().to_owned()).filter(|n| !seen.insert(n.clone())).collect();
    let mut results = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let name = wanted.name.clone();
        let result = CreatableTopicResult::default().with_name(name.clone());
        let created = if duplicated.contains(name.0.as_str()) {
            Err(BrokerError::kafka(ResponseError::InvalidRequest, "topic named more than once in one request"))
        } else {
            create(ctx, wanted, request.validate_only).await
        };
        results.push(match created {
            Ok(topic) => describe(ctx, result, &topic),
            Err(e) => result
                .with_error_code(ctx.error_code(&e))
                .with_error_message(message(&e))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

async fn create(ctx: &Ctx, wanted: CreatableTopic, validate_only: bool) -> Result<Topic> {
    let broker = &ctx.broker;
    let name = wanted.name.0.as_str().to_owned();
    if !ctx.allowed_on_cluster(Operation::Create) && !ctx.allowed(Operation::Create, ResourceType::Topic, &name) {
        return Err(not_authorized(ResourceType::Topic, &name));
    }
    topic_config::validate_topic_name(&name)?;
    let node = broker.config.node_id;
    let partitions = if !wanted.assignments.is_empty() {
        if wanted.num_partitions != -1 || wanted.replication_factor != -1 {
            return Err(BrokerError::kafka(
                ResponseError::InvalidRequest,
                "give either assignments or partitions and replication factor",
            ));
        }
        if wanted.assignments.iter().any(|a| a.broker_ids.iter().any(|b| b.0 != node) || a.broker_ids.len() != 1) {
            return Err(BrokerError::kafka(ResponseError::InvalidReplicaAssignment, format!("only broker {node} exists")));
        }
        wanted.assignments.len() as i32
    } else if wanted.num_partitions == -1 {
        broker.config.num_partitions
    } else {
        wanted.num_partitions
    };
    if partitions < 1 {
        return Err(BrokerError::kafka(ResponseError::InvalidPartitions, "a topic needs at least one partition"));
    }
    if !matches!(wanted.replication_factor, -1 | 1) {
        return Err(BrokerError::kafka(
            ResponseError::InvalidReplicationFactor,
            format!("replication factor {} is larger than the 1 broker available", wanted.replication_factor),
        ));
    }
    let mut configs = BTreeMap::new();
    for config in wanted.configs {
        if let Some(value) = config.value {
            configs.insert(config.name.as_str().to_owned(), value.as_str().to_owned());
        }
    }
    topic_config::validate_all(&configs, &broker.config)?;
    if broker.storage().topic(&name).await?.is_some() {
        return Err(BrokerError::kafka(ResponseError::TopicAlreadyExists, format!("Topic '{name}' already exists.")));
    }
    let spec = TopicSpec { name, partitions, configs };
    if validate_only {
        return Ok(Topic { id: uuid::Uuid::nil(), name: spec.name, partitions: spec.partitions, configs: spec.configs });
    }
    let topic = broker.storage().create_topic(spec).await?;
    tracing::info!(topic = %topic.name, partitions = topic.partitions, "created topic");
    Ok(topic)
}

fn describe(ctx: &Ctx, result: CreatableTopicResult, topic: &Topic) -> CreatableTopicResult {
    let configs = topic_entries(ctx, topic, None, false)
        .into_iter()
        .map(|ConfigEntry { name, value, source, .. }| {
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(name))
                .with_value(Some(StrBytes::from_string(value)))
                .with_config_source(source)
        })
        .collect();
    result
        .with_topic_id(topic.id)
        .with_num_partitions(topic.partitions)
        .with_replication_factor(1)
        .with_configs(Some(configs))
}
