//! ListOffsets (v1–v7): earliest, latest, the first offset at or after a time, and the offset
//! of the largest timestamp (KIP-734).

use ductstream_storage::Topic;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::Ctx;
use crate::security::acl::{Operation, ResourceType};
use crate::security::not_authorized;
use crate::records::{self, RecordPosition};
use crate::{BrokerError, Result};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const READ_COMMITTED: i8 = 1;

pub async fn handle(ctx: &Ctx, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let name = wanted.name.0.as_str();
        let allowed = ctx.allowed(Operation::Describe, ResourceType::Topic, name);
        let topic = if allowed { ctx.broker.storage().topic(name).await } else { Ok(None) };
        let mut partitions = Vec::with_capacity(wanted.partitions.len());
        for p in wanted.partitions {
            let response = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            let found = match &topic {
                _ if !allowed => Err(not_authorized(ResourceType::Topic, name)),
                Ok(Some(topic)) => lookup(ctx, topic, p.partition_index, p.timestamp, request.isolation_level == READ_COMMITTED).await,
                Ok(None) => Err(BrokerError::kafka(ResponseError::UnknownTopicOrPartition, "unknown topic")),
                Err(e) => Err(BrokerError::kafka(ResponseError::KafkaStorageError, e.to_string())),
            };
            partitions.push(match found {
                Ok(position) => {
                    let found = response
                        .with_offset(position.map_or(-1, |p| p.offset))
                        .with_timestamp(position.map_or(-1, |p| p.timestamp));
                    if ctx.version >= 4 { found.with_leader_epoch(0) } else { found }
                }
                Err(e) => response.with_error_code(ctx.error_code(&e)).with_offset(-1).with_timestamp(-1),
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(wanted.name).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// Latest, for a read_committed consumer, is the last stable offset.
async fn lookup(ctx: &Ctx, topic: &Topic, partition: i32, timestamp: i64, read_committed: bool) -> Result<Option<RecordPosition>> {
    if !(0..topic.partitions).contains(&partition) {
        return Err(BrokerError::kafka(ResponseError::UnknownTopicOrPartition, "unknown partition"));
    }
    let log = &ctx.broker.log;
    let storage = ctx.broker.storage();
    let offsets = log.offsets(topic, partition).await?;
    let at = |offset| Some(RecordPosition { offset, timestamp: -1 });
    let found = match timestamp {
        LATEST if read_committed => return Ok(at(log.stable(topic, partition, offsets.high_watermark).await?.0)),
        LATEST => return Ok(at(offsets.high_watermark)),
        EARLIEST => return Ok(at(offsets.log_start)),
        MAX_TIMESTAMP => match storage.batch_with_max_timestamp(&topic.name, partition).await? {
            Some(batch) => records::max_timestamp(&batch)?,
            None => None,
        },
        t if t >= 0 => match storage.batch_at_time(&topic.name, partition, t).await? {
            Some(batch) => records::first_at_or_after(&batch, t)?,
            None => None,
        },
        other => {
            return Err(BrokerError::kafka(ResponseError::InvalidRequest, format!("unknown special timestamp {other}")));
        }
    };
    // Not yet durable, or already deleted: not visible to consumers.
    Ok(found
        .filter(|p| p.offset < offsets.high_watermark)
        .map(|p| RecordPosition { offset: p.offset.max(offsets.log_start), ..p }))
}
