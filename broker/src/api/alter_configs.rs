//! AlterConfigs (v0–v2), the older, non-incremental config API (sarama's `AlterConfig`,
//! librdkafka's `rd_kafka_AlterConfigs`): a topic's configs become exactly the ones given, every
//! other one back to its default, as in Kafka. Broker settings are command-line flags and
//! cannot be altered at run time (see `incremental_alter_configs`).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::incremental_alter_configs::{change_topic_configs, check_alterable};
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
    check_alterable(resource.resource_type)?;
    let mut configs = BTreeMap::new();
    for entry in &resource.configs {
        let name = entry.name.as_str();
        let Some(value) = &entry.value else {
            return Err(BrokerError::kafka(ResponseError::InvalidRequest, format!("Null value not supported for topic configs: {name}")));
        };
        configs.insert(name.to_owned(), value.as_str().to_owned());
    }
    // Validated before the topic is looked up: a bad config is reported before an unknown topic.
    topic_config::validate_all(&configs, &ctx.broker.config)?;
    change_topic_configs(ctx, resource.resource_name.as_str(), validate_only, |_| Ok(configs)).await
}
