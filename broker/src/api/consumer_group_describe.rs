//! ConsumerGroupDescribe (v0–v1): a KIP-848 group's epochs, assignor and members, with each
//! member's current and target assignment.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{Assignment, DescribedGroup, Member, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::Ctx;
use crate::security::acl::{Operation, ResourceType};
use crate::groups::consumer_group::TopicPartition;
use crate::Result;

pub async fn handle(ctx: &Ctx, request: ConsumerGroupDescribeRequest) -> Result<ConsumerGroupDescribeResponse> {
    let names: BTreeMap<Uuid, String> = ctx.broker.storage().topics().await?.into_iter().map(|t| (t.id, t.name)).collect();
    let assignment = |set: &BTreeSet<TopicPartition>| {
        let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in set {
            by_topic.entry(*topic).or_default().push(*partition);
        }
        Assignment::default().with_topic_partitions(
            by_topic
                .into_iter()
                .map(|(id, partitions)| {
                    let name = names.get(&id).cloned().unwrap_or_default();
                    TopicPartitions::default().with_topic_id(id).with_topic_name(TopicName(StrBytes::from_string(name))).with_partitions(partitions)
                })
                .collect(),
        )
    };
    let mut groups = Vec::with_capacity(request.group_ids.len());
    for id in request.group_ids {
        let described = DescribedGroup::default().with_group_id(id.clone());
        if let Some(e) = super::group_denied(ctx, Operation::Describe, id.0.as_str()) {
            groups.push(described.with_error_code(ctx.code(e)));
            continue;
        }
        let Some(handle) = ctx.broker.groups.consumer_group(id.0.as_str()).await? else {
            groups.push(
                described
                    .with_error_code(ctx.code(ResponseError::GroupIdNotFound))
                    .with_error_message(Some(StrBytes::from_static_str("no consumer group with that id"))),
            );
            continue;
        };
        let group = handle.group.lock().await;
        let members = group
            .members
            .values()
            .map(|m| {
                Member::default()
                    .with_member_id(StrBytes::from_string(m.id.clone()))
                    .with_instance_id(m.instance_id.clone().map(StrBytes::from_string))
                    .with_rack_id(m.rack_id.clone().map(StrBytes::from_string))
                    .with_member_epoch(m.epoch)
                    .with_client_id(StrBytes::from_string(m.client_id.clone()))
                    .with_client_host(StrBytes::from_string(m.client_host.clone()))
                    .with_subscribed_topic_names(m.subscribed.iter().map(|t| TopicName(StrBytes::from_string(t.clone()))).collect())
                    .with_assignment(assignment(&m.assigned))
                    .with_target_assignment(assignment(&group.target.get(&m.id).cloned().unwrap_or_default()))
            })
            .collect();
        let operations = match request.include_authorized_operations {
            true => ctx.authorized_operations(ResourceType::Group, &group.id),
            false => i32::MIN,
        };
        groups.push(
            described
                .with_authorized_operations(operations)
                .with_group_state(StrBytes::from_static_str(group.state()))
                .with_group_epoch(group.epoch)
                .with_assignment_epoch(group.assignment_epoch)
                .with_assignor_name(StrBytes::from_static_str(group.assignor.name()))
                .with_members(members),
        );
    }
    Ok(ConsumerGroupDescribeResponse::default().with_groups(groups))
}
