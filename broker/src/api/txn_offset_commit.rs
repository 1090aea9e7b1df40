//! TxnOffsetCommit (v0–v4): a group's offsets held with a transaction, stored when it commits
//! and dropped when it aborts. From v3 (KIP-447) the committer names its group generation and
//! member, checked as OffsetCommit checks them.

use ductstream_storage::CommittedOffset;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::Ctx;
use crate::security::acl::{Operation, ResourceType};
use crate::transactions::Fenced;
use crate::Result;

/// Kafka's `offset.metadata.max.bytes`.
const MAX_METADATA_BYTES: usize = 4096;

pub async fn handle(ctx: &Ctx, request: TxnOffsetCommitRequest) -> Result<TxnOffsetCommitResponse> {
    let storage = ctx.broker.storage();
    let group = request.group_id.0.as_str();
    // Before v3 the committer is not named; from v3 it is checked as OffsetCommit checks it.
    let member_error = if !ctx.allowed(Operation::Write, ResourceType::TransactionalId, request.transactional_id.0.as_str()) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if let Some(e) = super::group_denied(ctx, Operation::Read, group) {
        Some(e)
    } else if ctx.version >= 3 {
        let instance = request.group_instance_id.as_ref().map(|i| i.as_str());
        super::offset_commit::check_committer(ctx, group, request.member_id.as_str(), instance, request.generation_id).await?
    } else if group.is_empty() {
        Some(ResponseError::InvalidGroupId)
    } else {
        None
    };
    let now = crate::clock::now_ms();
    let mut offsets = Vec::new();
    let mut answers = Vec::new();
    for topic in &request.topics {
        let known = storage.topic(topic.name.0.as_str()).await?;
        let mut partitions = Vec::new();
        for p in &topic.partitions {
            let metadata = p.committed_metadata.as_ref().map_or("", |m| m.as_str()).to_owned();
            let error = if let Some(e) = member_error {
                Some(e)
            } else if !ctx.allowed(Operation::Read, ResourceType::Topic, topic.name.0.as_str()) {
                Some(ResponseError::TopicAuthorizationFailed)
            } else if !known.as_ref().is_some_and(|t| (0..t.partitions).contains(&p.partition_index)) {
                Some(ResponseError::UnknownTopicOrPartition)
            } else if metadata.len() > MAX_METADATA_BYTES {
                Some(ResponseError::OffsetMetadataTooLarge)
            } else {
                offsets.push(CommittedOffset {
                    topic: topic.name.0.to_string(),
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
        answers.push((topic.name.clone(), partitions));
    }
    let held = if offsets.is_empty() {
        Ok(())
    } else {
        let fenced = Fenced(if ctx.version >= 2 { ResponseError::ProducerFenced } else { ResponseError::InvalidProducerEpoch });
        ctx.broker
            .txns
            .commit_offsets(request.transactional_id.0.as_str(), request.producer_id.0, request.producer_epoch, group, offsets, fenced)
            .await
    };
    let held_error = held.err();
    let topics = answers
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, error)| {
                    let code = match (error, &held_error) {
                        (Some(e), _) => ctx.code(e),
                        (None, Some(e)) => ctx.error_code(e),
                        (None, None) => 0,
                    };
                    TxnOffsetCommitResponsePartition::default().with_partition_index(index).with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions)
        })
        .collect();
    Ok(TxnOffsetCommitResponse::default().with_topics(topics))
}
