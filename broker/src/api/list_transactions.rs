//! ListTransactions (v0–v1): transactional ids, filtered by state, producer id and (v1) how
//! long their transaction has been open.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::security::acl::{Operation, ResourceType};
use crate::transactions::record::TxnState;
use crate::Result;

const STATES: [TxnState; 6] =
    [TxnState::Empty, TxnState::Ongoing, TxnState::PrepareCommit, TxnState::PrepareAbort, TxnState::CompleteCommit, TxnState::CompleteAbort];

pub async fn handle(ctx: &Ctx, request: ListTransactionsRequest) -> Result<ListTransactionsResponse> {
    let unknown: Vec<StrBytes> = request.state_filters.iter().filter(|f| !STATES.iter().any(|s| s.name() == f.as_str())).cloned().collect();
    let now = crate::clock::now_ms();
    let states = ctx
        .broker
        .txns
        .list()
        .await?
        .into_iter()
        .filter(|r| ctx.allowed(Operation::Describe, ResourceType::TransactionalId, &r.transactional_id))
        .filter(|r| request.state_filters.is_empty() || request.state_filters.iter().any(|f| f.as_str() == r.state.name()))
        .filter(|r| request.producer_id_filters.is_empty() || request.producer_id_filters.contains(&ProducerId(r.producer_id)))
        .filter(|r| request.duration_filter < 0 || (r.state == TxnState::Ongoing && now - r.started_ms >= request.duration_filter))
        .map(|r| {
            TransactionState::default()
                .with_transactional_id(StrBytes::from_string(r.transactional_id).into())
                .with_producer_id(ProducerId(r.producer_id))
                .with_transaction_state(StrBytes::from_static_str(r.state.name()))
        })
        .collect();
    Ok(ListTransactionsResponse::default().with_unknown_state_filters(unknown).with_transaction_states(states))
}
