//! OffsetFetch (v1–v9): a group's committed offsets; one group per request before v8, several
//! from v8. Partitions without a commit get offset -1. With `require_stable` (v7+, KIP-447), a
//! partition whose offsets an open transaction is about to commit gets UNSTABLE_OFFSET_COMMIT
//! (the client asks again), so a consumer taking it over does not start before them.

use std::collections::HashSet;

use ductstream_storage::CommittedOffset;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::security::acl::{Operation, ResourceType};
use crate::Result;

/// One answered partition: (topic, partition, offset, leader epoch, metadata, error).
type Answer = (String, i32, i64, i32, String, Option<ResponseError>);

pub async fn handle(ctx: &Ctx, request: OffsetFetchRequest) -> Result<OffsetFetchResponse> {
    if ctx.version >= 8 {
        let mut groups = Vec::with_capacity(request.groups.len());
        for group in request.groups {
            let wanted = group.topics.map(|t| t.into_iter().map(|t| (t.name.0.as_str().to_owned(), t.partition_indexes)).collect());
            let Some(answers) = fetch(ctx, group.group_id.0.as_str(), wanted, request.require_stable).await? else {
                let denied = OffsetFetchResponseGroup::default().with_group_id(group.group_id);
                groups.push(denied.with_error_code(ctx.code(ResponseError::GroupAuthorizationFailed)));
                continue;
            };
            groups.push(OffsetFetchResponseGroup::default().with_group_id(group.group_id).with_topics(by_topic(answers, |name, partitions| {
                OffsetFetchResponseTopics::default().with_name(name).with_partitions(
                    partitions
                        .into_iter()
                        .map(|(_, p, offset, epoch, metadata, error)| {
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(StrBytes::from_string(metadata)))
                                .with_error_code(error.map_or(0, |e| ctx.code(e)))
                        })
                        .collect(),
                )
            })));
        }
        return Ok(OffsetFetchResponse::default().with_groups(groups));
    }
    let wanted = request.topics.map(|t| t.into_iter().map(|t| (t.name.0.as_str().to_owned(), t.partition_indexes)).collect());
    let Some(answers) = fetch(ctx, request.group_id.0.as_str(), wanted, ctx.version >= 7 && request.require_stable).await? else {
        return Ok(OffsetFetchResponse::default().with_error_code(ctx.code(ResponseError::GroupAuthorizationFailed)));
    };
    let topics = by_topic(answers, |name, partitions| {
        OffsetFetchResponseTopic::default().with_name(name).with_partitions(
            partitions
                .into_iter()
                .map(|(_, p, offset, epoch, metadata, error)| {
                    let partition = OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(offset)
                        .with_metadata(Some(StrBytes::from_string(metadata)))
                        .with_error_code(error.map_or(0, |e| ctx.code(e)));
                    if ctx.version >= 5 { partition.with_committed_leader_epoch(epoch) } else { partition }
                })
                .collect(),
        )
    });
    Ok(OffsetFetchResponse::default().with_topics(topics))
}

/// The group's commits for `wanted` partitions (all commits when `None`, of the topics the
/// client may describe); with `stable`, those an open transaction holds offsets for are
/// UNSTABLE_OFFSET_COMMIT. None: the client may not describe the group.
async fn fetch(ctx: &Ctx, group_id: &str, wanted: Option<Vec<(String, Vec<i32>)>>, stable: bool) -> Result<Option<Vec<Answer>>> {
    if super::group_denied(ctx, Operation::Describe, group_id).is_some() {
        return Ok(None);
    }
    let may_describe = |topic: &str| ctx.allowed(Operation::Describe, ResourceType::Topic, topic);
    let mut committed = ctx.broker.storage().committed_offsets(group_id).await?;
    committed.retain(|c| may_describe(&c.topic));
    let pending: HashSet<(String, i32)> = if stable { ctx.broker.txns.pending_offsets(group_id).await? } else { HashSet::new() };
    let unstable = |topic: &str, p: i32| pending.contains(&(topic.to_owned(), p)).then_some(ResponseError::UnstableOffsetCommit);
    let answer = |c: &CommittedOffset| match unstable(&c.topic, c.partition) {
        Some(e) => (c.topic.clone(), c.partition, -1, -1, String::new(), Some(e)),
        None => (c.topic.clone(), c.partition, c.offset, c.leader_epoch, c.metadata.clone(), None),
    };
    Ok(Some(match wanted {
        None => committed.iter().map(answer).collect(),
        Some(topics) => topics
            .into_iter()
            .flat_map(|(topic, partitions)| partitions.into_iter().map(move |p| (topic.clone(), p)))
            .map(|(topic, p)| {
                committed
                    .iter()
                    .find(|c| c.topic == topic && c.partition == p)
                    .map(answer)
                    .unwrap_or_else(|| {
                        let error = match may_describe(&topic) {
                            true => unstable(&topic, p),
                            false => Some(ResponseError::TopicAuthorizationFailed),
                        };
                        (topic, p, -1, -1, String::new(), error)
                    })
            })
            .collect(),
    }))
}

/// Groups answers by topic, in first-seen order.
fn by_topic<T>(answers: Vec<Answer>, build: impl Fn(TopicName, Vec<Answer>) -> T) -> Vec<T> {
    let mut topics: Vec<(String, Vec<Answer>)> = Vec::new();
    for a in answers {
        match topics.iter_mut().find(|(t, _)| *t == a.0) {
            Some((_, list)) => list.push(a),
            None => topics.push((a.0.clone(), vec![a])),
        }
    }
    topics.into_iter().map(|(t, list)| build(TopicName(StrBytes::from_string(t)), list)).collect()
}
