//! DescribeTransactions (v0): the state of transactional ids, as `kafka-transactions.sh
//! describe` shows it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::security::acl::{Operation, ResourceType};
use crate::Result;

pub async fn handle(ctx: &Ctx, request: DescribeTransactionsRequest) -> Result<DescribeTransactionsResponse> {
    let ids: Vec<String> = request.transactional_ids.iter().map(|t| t.0.to_string()).collect();
    let mut states = Vec::with_capacity(ids.len());
    for (id, record) in ctx.broker.txns.describe(&ids).await? {
        let denied = !ctx.allowed(Operation::Describe, ResourceType::TransactionalId, &id);
        let state = TransactionState::default().with_transactional_id(StrBytes::from_string(id).into());
        states.push(match record {
            _ if denied => state
                .with_error_code(ctx.code(ResponseError::TransactionalIdAuthorizationFailed))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            None => state.with_error_code(ctx.code(ResponseError::TransactionalIdNotFound)).with_producer_id(ProducerId(-1)).with_producer_epoch(-1),
            Some(r) => {
                let mut topics: Vec<TopicData> = Vec::new();
                for (topic, partition) in &r.partitions {
                    match topics.iter_mut().find(|t| t.topic.0.as_str() == topic) {
                        Some(t) => t.partitions.push(*partition),
                        None => topics.push(TopicData::default().with_topic(TopicName(StrBytes::from_string(topic.clone()))).with_partitions(vec![*partition])),
                    }
                }
                // As Kafka: the last transaction's start stays visible after it completes; a
                // producer that never began one has none.
                let began = r.state != crate::transactions::record::TxnState::Empty;
                state
                    .with_transaction_state(StrBytes::from_static_str(r.state.name()))
                    .with_transaction_timeout_ms(r.timeout_ms)
                    .with_transaction_start_time_ms(if began { r.started_ms } else { -1 })
                    .with_producer_id(ProducerId(r.producer_id))
                    .with_producer_epoch(r.epoch)
                    .with_topics(topics)
            }
        });
    }
    Ok(DescribeTransactionsResponse::default().with_transaction_states(states))
}
