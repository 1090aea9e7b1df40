//! DeleteRecords (v0–v2): move a partition's log start forward; `-1` means the high watermark.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::Ctx;
use crate::security::acl::{Operation, ResourceType};
use crate::security::not_authorized;
use crate::BrokerError;

pub async fn handle(ctx: &Ctx, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let name = wanted.name.0.as_str();
        let allowed = ctx.allowed(Operation::Delete, ResourceType::Topic, name);
        let topic = if allowed { ctx.broker.storage().topic(name).await } else { Ok(None) };
        let mut partitions = Vec::with_capacity(wanted.partitions.len());
        for p in wanted.partitions {
            let result = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            let deleted = match &topic {
                _ if !allowed => Err(not_authorized(ResourceType::Topic, name)),
                Ok(Some(topic)) if (0..topic.partitions).contains(&p.partition_index) => {
                    ctx.broker.log.delete_records(topic, p.partition_index, p.offset).await
                }
                Ok(_) => Err(BrokerError::kafka(ResponseError::UnknownTopicOrPartition, "unknown topic or partition")),
                Err(e) => Err(BrokerError::kafka(ResponseError::KafkaStorageError, e.to_string())),
            };
            partitions.push(match deleted {
                Ok(low_watermark) => result.with_low_watermark(low_watermark),
                Err(e) => result.with_error_code(ctx.error_code(&e)).with_low_watermark(-1),
            });
        }
        topics.push(DeleteRecordsTopicResult::default().with_name(wanted.name).with_partitions(partitions));
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
