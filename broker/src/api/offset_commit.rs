//! OffsetCommit (v2–v9): stores a group's consumed positions, with their metadata strings.
//! Members must name the current generation; a standalone consumer (generation -1, no member
//! id) may commit for a group that has no members.

use ductstream_storage::CommittedOffset;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};

use super::Ctx;
use crate::security::acl::{Operation, ResourceType};
use crate::Result;

/// A partition and why its commit was refused, if it was.
type PartitionAnswer = (i32, Option<ResponseError>);

/// Kafka's `offset.metadata.max.bytes`.
const MAX_METADATA_BYTES: usize = 4096;

pub async fn handle(ctx: &Ctx, request: OffsetCommitRequest) -> Result<OffsetCommitResponse> {
    let group_error = check_member(ctx, &request).await?;
    let now = crate::clock::now_ms();
    let storage = ctx.broker.storage();
    let mut to_store = Vec::new();
    let mut answers: Vec<(TopicName, Vec<PartitionAnswer>)> = Vec::new();
    for topic in request.topics {
        let known = match group_error {
            Some(_) => None,
            None => storage.topic(topic.name.0.as_str()).await?,
        };
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let metadata = p.committed_metadata.as_ref().map_or("", |m| m.as_str()).to_owned();
            let error = if let Some(e) = group_error {
                Some(e)
            } else if !ctx.allowed(Operation::Read, ResourceType::Topic, topic.name.0.as_str()) {
                Some(ResponseError::TopicAuthorizationFailed)
            } else if !known.as_ref().is_some_and(|t| (0..t.partitions).contains(&p.partition_index)) {
                Some(ResponseError::UnknownTopicOrPartition)
            } else if metadata.len() > MAX_METADATA_BYTES {
                Some(ResponseError::OffsetMetadataTooLarge)
            } else {
                to_store.push(CommittedOffset {
                    topic: topic.name.0.as_str().to_owned(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata,
                    commit_timestamp: now,
                });
                None
            };
            partitions.push((p.partition_index, error));
        }
        answers.push((topic.name, partitions));
    }
    let stored = if to_store.is_empty() {
        Ok(())
    } else {
        storage.commit_offsets(request.group_id.0.as_str(), to_store).await
    };
    if let Err(e) = &stored {
        tracing::error!(group = request.group_id.0.as_str(), error = %e, "offset commit failed");
    }
    let topics = answers
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, error)| {
                    let error = error.or(stored.as_ref().err().map(|_| ResponseError::CoordinatorNotAvailable));
                    OffsetCommitResponsePartition::default().with_partition_index(index).with_error_code(error.map_or(0, |e| ctx.code(e)))
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions)
        })
        .collect();
    Ok(OffsetCommitResponse::default().with_topics(topics))
}

/// Why this committer may not commit for the group, if it may not.
async fn check_member(ctx: &Ctx, request: &OffsetCommitRequest) -> Result<Option<ResponseError>> {
    let instance = request.group_instance_id.as_ref().map(|i| i.as_str());
    check_committer(ctx, request.group_id.0.as_str(), request.member_id.as_str(), instance, request.generation_id_or_member_epoch).await
}

/// Why a member (or a standalone committer: generation -1, no member id) may not commit for
/// `group_id`, if it may not. TxnOffsetCommit checks its committer the same way.
pub(super) async fn check_committer(
    ctx: &Ctx,
    group_id: &str,
    member_id: &str,
    instance: Option<&str>,
    generation: i32,
) -> Result<Option<ResponseError>> {
    if group_id.is_empty() {
        return Ok(Some(ResponseError::InvalidGroupId));
    }
    if let Some(e) = super::group_denied(ctx, Operation::Read, group_id) {
        return Ok(Some(e));
    }
    if let Some(e) = super::not_coordinator(ctx, group_id) {
        return Ok(Some(e));
    }
    // KIP-848 groups: commits carry the member epoch.
    if let Some(handle) = ctx.broker.groups.consumer_group(group_id).await? {
        let group = handle.group.lock().await;
        if !group.members.is_empty() || generation >= 0 {
            return Ok(group.check_commit(member_id, generation).err());
        }
    }
    let Some(handle) = ctx.broker.groups.group(group_id).await? else {
        return Ok((generation >= 0).then_some(ResponseError::IllegalGeneration));
    };
    let group = handle.group.lock().await;
    Ok(group.check_commit(member_id, instance, generation).err())
}
