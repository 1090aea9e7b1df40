//! AddPartitionsToTxn (v0–v3): a transactional producer names the partitions it is about to
//! write. Unknown partitions fail alone (UNKNOWN_TOPIC_OR_PARTITION) and the others of the
//! request are not added (OPERATION_NOT_ATTEMPTED), as Kafka answers.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use super::Ctx;
use crate::security::acl::{Operation, ResourceType};
use crate::BrokerError;
use crate::transactions::Fenced;
use crate::Result;

pub async fn handle(ctx: &Ctx, request: AddPartitionsToTxnRequest) -> Result<AddPartitionsToTxnResponse> {
    let storage = ctx.broker.storage();
    let mut wanted = Vec::new();
    let mut unknown = false;
    let mut checked = Vec::new();
    let id = request.v3_and_below_transactional_id.0.as_str();
    let txn_allowed = ctx.allowed(Operation::Write, ResourceType::TransactionalId, id);
    let mut denied = false;
    for topic in &request.v3_and_below_topics {
        let allowed = ctx.allowed(Operation::Write, ResourceType::Topic, topic.name.0.as_str());
        denied |= !allowed;
        let known = if allowed { storage.topic(topic.name.0.as_str()).await? } else { None };
        for &partition in &topic.partitions {
            let exists = known.as_ref().is_some_and(|t| (0..t.partitions).contains(&partition));
            unknown |= !exists;
            checked.push((topic.name.clone(), partition, exists, allowed));
            wanted.push((topic.name.0.to_string(), partition));
        }
    }
    let outcome = if !txn_allowed {
        Err(Some(BrokerError::kafka(ResponseError::TransactionalIdAuthorizationFailed, "Transactional Id authorization failed.")))
    } else if unknown || denied {
        Err(None)
    } else {
        let fenced = Fenced(if ctx.version >= 2 { ResponseError::ProducerFenced } else { ResponseError::InvalidProducerEpoch });
        ctx.broker
            .txns
            .add_partitions(id, request.v3_and_below_producer_id.0, request.v3_and_below_producer_epoch, &wanted, fenced)
            .await
            .map_err(Some)
    };
    // A partition the client may not write fails alone; so does an unknown one; the rest are
    // not attempted.
    let code_for = |exists: bool, allowed: bool| -> i16 {
        match &outcome {
            Ok(()) => 0,
            Err(None) if !allowed => ctx.code(ResponseError::TopicAuthorizationFailed),
            Err(None) if exists => ctx.code(ResponseError::OperationNotAttempted),
            Err(None) => ctx.code(ResponseError::UnknownTopicOrPartition),
            Err(Some(e)) => ctx.error_code(e),
        }
    };
    let mut topics: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for (name, partition, exists, allowed) in checked {
        let code = code_for(exists, allowed);
        let result = AddPartitionsToTxnPartitionResult::default().with_partition_index(partition).with_partition_error_code(code);
        match topics.iter_mut().find(|t| t.name == name) {
            Some(topic) => topic.results_by_partition.push(result),
            None => topics.push(AddPartitionsToTxnTopicResult::default().with_name(name).with_results_by_partition(vec![result])),
        }
    }
    Ok(AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics))
}
