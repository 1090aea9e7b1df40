//! IncrementalAlterConfigs (v0–v1): set, delete, append to and subtract from topic configs.
//! Broker settings are command-line flags and cannot be altered at run time.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::security::acl::{Operation, ResourceType};
use crate::security::not_authorized;
use super::{message, Ctx};
use crate::{topic_config, BrokerError, Result};

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub async fn handle(ctx: &Ctx, request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
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
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

async fn alter(ctx: &Ctx, resource: AlterConfigsResource, validate_only: bool) -> Result<()> {
    check_alterable(resource.resource_type)?;
    change_topic_configs(ctx, resource.resource_name.as_str(), validate_only, |current| apply(ctx, current.clone(), &resource)).await
}

/// Only topics' configs can be altered (this API and AlterConfigs): broker settings are
/// command-line flags.
pub(super) fn check_alterable(resource_type: i8) -> Result<()> {
    match resource_type {
        RESOURCE_TOPIC => Ok(()),
        RESOURCE_BROKER => Err(BrokerError::kafka(ResponseError::InvalidRequest, "broker settings are read-only; restart with other flags")),
        other => Err(BrokerError::kafka(ResponseError::InvalidRequest, format!("resource type {other} cannot be altered"))),
    }
}

/// Stores what `change` makes of the topic's configs, unless `validate_only` or nothing changed.
pub(super) async fn change_topic_configs(
    ctx: &Ctx,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>>,
) -> Result<()> {
    if !ctx.allowed(Operation::AlterConfigs, ResourceType::Topic, name) {
        return Err(not_authorized(ResourceType::Topic, name));
    }
    let storage = ctx.broker.storage();
    let topic = storage
        .topic(name)
        .await?
        .ok_or_else(|| BrokerError::kafka(ResponseError::UnknownTopicOrPartition, format!("topic {name:?} does not exist")))?;
    let configs = change(&topic.configs)?;
    if !validate_only && configs != topic.configs {
        storage.set_topic_configs(name, configs).await?;
        tracing::info!(topic = name, "changed topic configs");
    }
    Ok(())
}

/// The topic's configs after `resource`'s operations, all validated.
fn apply(ctx: &Ctx, mut configs: BTreeMap<String, String>, resource: &AlterConfigsResource) -> Result<BTreeMap<String, String>> {
    for op in &resource.configs {
        let name = op.name.as_str();
        let def = topic_config::lookup(name)
            .ok_or_else(|| BrokerError::kafka(ResponseError::InvalidConfig, format!("unknown topic config {name:?}")))?;
        let value = op.value.as_ref().map(|v| v.as_str().to_owned());
        match (op.config_operation, value) {
            (SET, Some(value)) => {
                configs.insert(name.to_owned(), value);
            }
            (DELETE, _) => {
                configs.remove(name);
            }
            (APPEND | SUBTRACT, Some(value)) if def.kind == topic_config::ConfigType::List => {
                let current = configs.get(name).cloned().unwrap_or_else(|| topic_config::default_value(def, &ctx.broker.config));
                let mut items: Vec<String> = current.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect();
                for item in value.split(',').filter(|s| !s.is_empty()) {
                    if op.config_operation == APPEND {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_owned());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                configs.insert(name.to_owned(), items.join(","));
            }
            (APPEND | SUBTRACT, _) => {
                return Err(BrokerError::kafka(ResponseError::InvalidConfig, format!("{name} is not a list config")));
            }
            (SET, None) => return Err(BrokerError::kafka(ResponseError::InvalidConfig, format!("no value to set for {name}"))),
            (other, _) => return Err(BrokerError::kafka(ResponseError::InvalidRequest, format!("unknown config operation {other}"))),
        }
    }
    topic_config::validate_all(&configs, &ctx.broker.config)?;
    Ok(configs)
}
