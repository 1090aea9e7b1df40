//! ConsumerGroupHeartbeat (v0–v1): KIP-848 groups, where the broker assigns partitions with its
//! own assignors (`range`, or `uniform`/`roundrobin`). Members join with epoch 0, leave with -1
//! (or -2 as a static member), and otherwise report what they own and get their assignment.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::security::acl::{Operation, ResourceType};
use crate::groups::consumer_group::{Heartbeat, Topics};
use crate::Result;

pub async fn handle(ctx: &Ctx, request: ConsumerGroupHeartbeatRequest) -> Result<ConsumerGroupHeartbeatResponse> {
    let group_id = request.group_id.0.as_str().to_owned();
    let error = |code: ResponseError, message: String| {
        tracing::info!(group = %group_id, error = ?code, message = %message, "consumer group heartbeat refused");
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ctx.code(code))
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    if group_id.is_empty() {
        return Ok(error(ResponseError::InvalidRequest, "the group id is empty".into()));
    }
    if let Some(e) = super::group_denied(ctx, Operation::Read, &group_id) {
        return Ok(error(e, format!("Not authorized to access group: {group_id}")));
    }
    let denied_topics: Vec<&str> = request
        .subscribed_topic_names
        .iter()
        .flatten()
        .map(|n| n.0.as_str())
        .filter(|n| !ctx.allowed(Operation::Describe, ResourceType::Topic, n))
        .collect();
    if !denied_topics.is_empty() {
        let message = format!("Not authorized to access topics: [{}]", denied_topics.join(", "));
        return Ok(error(ResponseError::TopicAuthorizationFailed, message));
    }
    if let Some(e) = super::not_coordinator(ctx, &group_id) {
        return Ok(error(e, "another broker coordinates this group".into()));
    }
    // Clients send an empty regex when they subscribe by name.
    if request.subscribed_topic_regex.as_ref().is_some_and(|r| !r.is_empty()) {
        return Ok(error(ResponseError::InvalidRequest, "regular-expression subscriptions are not supported; name the topics".into()));
    }
    if let Some(classic) = ctx.broker.groups.group(&group_id).await?
        && !classic.group.lock().await.is_empty()
    {
        return Ok(error(ResponseError::GroupIdNotFound, format!("{group_id} is a classic group with members")));
    }
    let subscribed: Option<Vec<String>> =
        request.subscribed_topic_names.map(|names| names.into_iter().map(|n| n.0.as_str().to_owned()).collect());
    let heartbeat = Heartbeat {
        member_id: request.member_id.as_str().to_owned(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|i| i.as_str().to_owned()),
        rack_id: request.rack_id.map(|r| r.as_str().to_owned()),
        subscribed: subscribed.clone(),
        server_assignor: request.server_assignor.map(|a| a.as_str().to_owned()),
        owned: request.topic_partitions.map(|tps| tps.into_iter().flat_map(|tp| tp.partitions.into_iter().map(move |p| (tp.topic_id, p))).collect()),
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host.clone(),
    };
    let handle = ctx.broker.groups.consumer_group_or_create(&group_id).await?;
    let mut group = handle.group.lock().await;
    let wanted = group.subscribed_topics(subscribed.as_deref());
    let topics: Topics = ctx
        .broker
        .storage()
        .topics()
        .await?
        .into_iter()
        .filter(|t| wanted.contains(&t.name))
        .map(|t| (t.name, (t.id, t.partitions)))
        .collect();
    let reply = group.heartbeat(heartbeat, topics, tokio::time::Instant::now());
    // Saved before the member hears of its new epoch or assignment, so that a coordinator
    // taking over the group knows what the member was told.
    ctx.broker.groups.save_consumer_group_if_changed(&mut group).await;
    drop(group);
    handle.changed();
    let reply = match reply {
        Ok(reply) => reply,
        Err((code, message)) => return Ok(error(code, message)),
    };
    let assignment = reply.assignment.map(|set| {
        let mut by_topic: BTreeMap<uuid::Uuid, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in set {
            by_topic.entry(topic).or_default().push(partition);
        }
        Assignment::default().with_topic_partitions(
            by_topic.into_iter().map(|(id, partitions)| TopicPartitions::default().with_topic_id(id).with_partitions(partitions)).collect(),
        )
    });
    Ok(ConsumerGroupHeartbeatResponse::default()
        .with_member_id(Some(StrBytes::from_string(reply.member_id)))
        .with_member_epoch(reply.member_epoch)
        .with_heartbeat_interval_ms(ctx.broker.groups.config.consumer_heartbeat_interval.as_millis() as i32)
        .with_assignment(assignment))
}
