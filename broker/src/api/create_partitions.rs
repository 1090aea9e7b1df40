//! CreatePartitions (v0–v3): grow a topic; partitions can never be removed.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::{message, Ctx};
use crate::security::acl::{Operation, ResourceType};
use crate::security::not_authorized;
use crate::{BrokerError, Result};

pub async fn handle(ctx: &Ctx, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let result = CreatePartitionsTopicResult::default().with_name(wanted.name.clone());
        results.push(match grow(ctx, wanted, request.validate_only).await {
            Ok(()) => result,
            Err(e) => result.with_error_code(ctx.error_code(&e)).with_error_message(message(&e)),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

async fn grow(ctx: &Ctx, wanted: CreatePartitionsTopic, validate_only: bool) -> Result<()> {
    let storage = ctx.broker.storage();
    let name = wanted.name.0.as_str();
    if !ctx.allowed(Operation::Alter, ResourceType::Topic, name) {
        return Err(not_authorized(ResourceType::Topic, name));
    }
    let topic = storage
        .topic(name)
        .await?
        .ok_or_else(|| BrokerError::kafka(ResponseError::UnknownTopicOrPartition, format!("topic {name:?} does not exist")))?;
    if wanted.count <= topic.partitions {
        return Err(BrokerError::kafka(
            ResponseError::InvalidPartitions,
            format!("topic has {} partitions; the new count must be larger, not {}", topic.partitions, wanted.count),
        ));
    }
    let node = ctx.broker.config.node_id;
    if let Some(assignments) = wanted.assignments.as_ref().filter(|a| !a.is_empty()) {
        let added = (wanted.count - topic.partitions) as usize;
        if assignments.len() != added || assignments.iter().any(|a| a.broker_ids.iter().any(|b| b.0 != node)) {
            return Err(BrokerError::kafka(ResponseError::InvalidReplicaAssignment, format!("only broker {node} exists")));
        }
    }
    if !validate_only {
        storage.create_partitions(name, wanted.count).await?;
        tracing::info!(topic = name, partitions = wanted.count, "added partitions");
    }
    Ok(())
}
