//! AlterConfigs (v0–v2), the older, non-incremental config API (sarama's `AlterConfig`,
//! librdkafka's `rd_kafka_AlterConfigs`): a topic's configs become exactly the ones given, every
//! other one back to its default, as in Kafka. Broker settings are command-line flags and
//! cannot be altered at run time (see `incremental_alter_configs`).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{message, Ctx};
use crate::{topic_config, BrokerError, Result};

pub async fn handle(ctx: &Ctx, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        responses.push(match alter(ctx, resource, request.validate_only).await {
            Ok(()) => response,
            Err(e) => response.with_error_code(ctx.error_code(&e)).with_error_message(message(&e)),
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}

async fn alter(ctx: &Ctx, resource: AlterConfigsResource, validate_only: bool) -> Result<()> {
    match resource.resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => {
            return Err(BrokerError::kafka(ResponseError::InvalidRequest, "broker settings are read-only; restart with other flags"));
        }
        other => return Err(BrokerError::kafka(ResponseError::InvalidRequest, format!("resource type {other} cannot be altered"))),
    }
    let mut configs = BTreeMap::new();
    for entry in &resource.configs {
        let name = entry.name.as_str();
        let Some(value) = &entry.value else {
            return Err(BrokerError::kafka(ResponseError::InvalidRequest, format!("Null value not supported for topic configs: {name}")));
        };
        configs.insert(name.to_owned(), value.as_str().to_owned());
    }
    topic_config::validate_all(&configs)?;
    let storage = ctx.broker.storage();
    let name = resource.resource_name.as_str();
    let topic = storage
        .topic(name)
        .await?
        .ok_or_else(|| BrokerError::kafka(ResponseError::UnknownTopicOrPartition, format!("topic {name:?} does not exist")))?;
    if !validate_only && configs != topic.configs {
        storage.set_topic_configs(name, configs).await?;
        tracing::info!(topic = name, "replaced topic configs");
    }
    Ok(())
}
