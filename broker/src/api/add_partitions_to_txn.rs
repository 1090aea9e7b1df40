//! AddPartitionsToTxn (v0–v3): a transactional producer names the partitions it is about to
//! write. Unknown partitions fail alone (UNKNOWN_TOPIC_OR_PARTITION) and the others of the
//! request are not added (OPERATION_NOT_ATTEMPTED), as Kafka answers.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use super::Ctx;
use crate::transactions::Fenced;
use crate::Result;

pub async fn handle(ctx: &Ctx, request: AddPartitionsToTxnRequest) -> Result<AddPartitionsToTxnResponse> {
    let storage = ctx.broker.storage();
    let mut wanted = Vec::new();
    let mut unknown = false;
    let mut checked = Vec::new();
    for topic in &request.v3_and_below_topics {
        let known = storage.topic(topic.name.0.as_str()).await?;
        for &partition in &topic.partitions {
            let exists = known.as_ref().is_some_and(|t| (0..t.partitions).contains(&partition));
            unknown |= !exists;
            checked.push((topic.name.clone(), partition, exists));
            wanted.push((topic.name.0.to_string(), partition));
        }
    }
    let outcome = if unknown {
        Err(None)
    } else {
        let fenced = Fenced(if ctx.version >= 2 { ResponseError::ProducerFenced } else { ResponseError::InvalidProducerEpoch });
        let id = request.v3_and_below_transactional_id.0.as_str();
        ctx.broker
            .txns
            .add_partitions(id, request.v3_and_below_producer_id.0, request.v3_and_below_producer_epoch, &wanted, fenced)
            .await
            .map_err(Some)
    };
    let code_for = |exists: bool| -> i16 {
        match &outcome {
            Ok(()) => 0,
            Err(None) if exists => ctx.code(ResponseError::OperationNotAttempted),
            Err(None) => ctx.code(ResponseError::UnknownTopicOrPartition),
            Err(Some(e)) => ctx.error_code(e),
        }
    };
    let mut topics: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for (name, partition, exists) in checked {
        let result = AddPartitionsToTxnPartitionResult::default().with_partition_index(partition).with_partition_error_code(code_for(exists));
        match topics.iter_mut().find(|t| t.name == name) {
            Some(topic) => topic.results_by_partition.push(result),
            None => topics.push(AddPartitionsToTxnTopicResult::default().with_name(name).with_results_by_partition(vec![result])),
        }
    }
    Ok(AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics))
}
