//! DeleteTopics (v1–v6): by name, or by topic id from v6.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{message, Ctx};
use crate::security::acl::{Operation, ResourceType};
use crate::security::not_authorized;
use crate::{BrokerError, Result};

pub async fn handle(ctx: &Ctx, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let wanted: Vec<(Option<TopicName>, Uuid)> = if ctx.version >= 6 {
        request.topics.into_iter().map(|t| (t.name, t.topic_id)).collect()
    } else {
        request.topic_names.into_iter().map(|n| (Some(n), Uuid::nil())).collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let result = DeletableTopicResult::default().with_name(name.clone()).with_topic_id(id);
        responses.push(match delete(ctx, name, id).await {
            Ok((name, id)) => result.with_name(Some(TopicName(StrBytes::from_string(name)))).with_topic_id(id),
            Err(e) => result.with_error_code(ctx.error_code(&e)).with_error_message(message(&e)),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

async fn delete(ctx: &Ctx, name: Option<TopicName>, id: Uuid) -> Result<(String, Uuid)> {
    let storage = ctx.broker.storage();
    let name = match name {
        Some(name) => name.0.as_str().to_owned(),
        None => storage
            .topics()
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .map(|t| t.name)
            .ok_or_else(|| BrokerError::kafka(ResponseError::UnknownTopicId, "no topic with that id"))?,
    };
    if !ctx.allowed(Operation::Delete, ResourceType::Topic, &name) {
        return Err(not_authorized(ResourceType::Topic, &name));
    }
    let topic = storage.delete_topic(&name).await?;
    ctx.broker.log.forget_topic(&topic)?;
    if let Err(e) = crate::transactions::partition::forget_topic(storage.as_ref(), &topic).await {
        tracing::warn!(topic = %name, error = %e, "cannot forget the deleted topic's transactions");
    }
    if let Err(e) = crate::compaction::forget_topic(storage.as_ref(), &topic).await {
        tracing::warn!(topic = %name, error = %e, "cannot forget the deleted topic's cleaner checkpoints");
    }
    tracing::info!(topic = %name, "deleted topic");
    Ok((topic.name, topic.id))
}
