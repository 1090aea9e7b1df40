//! OffsetDelete (v0): forget a group's commits for partitions of topics no active member
//! (classic or KIP-848) subscribes to.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::Ctx;
use crate::security::acl::{Operation, ResourceType};
use crate::Result;

pub async fn handle(ctx: &Ctx, request: OffsetDeleteRequest) -> Result<OffsetDeleteResponse> {
    let group_id = request.group_id.0.as_str();
    if let Some(e) = super::group_denied(ctx, Operation::Delete, group_id) {
        return Ok(OffsetDeleteResponse::default().with_error_code(ctx.code(e)));
    }
    let handle = ctx.broker.groups.group(group_id).await?;
    // KIP-848 groups live in their own table; their members' subscriptions count the same
    let consumer = ctx.broker.groups.consumer_group(group_id).await?;
    let has_offsets = ctx.broker.storage().groups_with_offsets().await?.iter().any(|g| g == group_id);
    if handle.is_none() && consumer.is_none() && !has_offsets {
        return Ok(OffsetDeleteResponse::default().with_error_code(ctx.code(ResponseError::GroupIdNotFound)));
    }
    let mut subscribed = match &handle {
        Some(handle) => handle.group.lock().await.subscribed_topics(),
        None => Vec::new(),
    };
    if let Some(consumer) = &consumer {
        subscribed.extend(consumer.group.lock().await.subscribed_topics(None));
    }
    let mut doomed = Vec::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.as_str().to_owned();
        let known = ctx.broker.storage().topic(&name).await?;
        let partitions = topic
            .partitions
            .into_iter()
            .map(|p| {
                let error = if !ctx.allowed(Operation::Read, ResourceType::Topic, &name) {
                    Some(ResponseError::TopicAuthorizationFailed)
                } else if !known.as_ref().is_some_and(|t| (0..t.partitions).contains(&p.partition_index)) {
                    Some(ResponseError::UnknownTopicOrPartition)
                } else if subscribed.contains(&name) {
                    Some(ResponseError::GroupSubscribedToTopic)
                } else {
                    doomed.push((name.clone(), p.partition_index));
                    None
                };
                OffsetDeleteResponsePartition::default().with_partition_index(p.partition_index).with_error_code(error.map_or(0, |e| ctx.code(e)))
            })
            .collect();
        topics.push(OffsetDeleteResponseTopic::default().with_name(topic.name).with_partitions(partitions));
    }
    ctx.broker.storage().delete_offsets(group_id, &doomed).await?;
    Ok(OffsetDeleteResponse::default().with_topics(topics))
}
