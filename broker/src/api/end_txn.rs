//! EndTxn (v0–v4): commits or aborts a producer's transaction. Answered once every marker is
//! durable and, for a commit, the transaction's offsets are stored.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::Ctx;
use crate::security::acl::{Operation, ResourceType};
use crate::transactions::Fenced;

pub async fn handle(ctx: &Ctx, request: EndTxnRequest) -> EndTxnResponse {
    let fenced = Fenced(if ctx.version >= 2 { ResponseError::ProducerFenced } else { ResponseError::InvalidProducerEpoch });
    let id = request.transactional_id.0.as_str();
    if !ctx.allowed(Operation::Write, ResourceType::TransactionalId, id) {
        return EndTxnResponse::default().with_error_code(ctx.code(ResponseError::TransactionalIdAuthorizationFailed));
    }
    let ended = ctx.broker.txns.end(id, request.producer_id.0, request.producer_epoch, request.committed, fenced).await;
    if let Err(e) = &ended {
        tracing::debug!(transactional_id = id, error = %e, "EndTxn refused");
    }
    EndTxnResponse::default().with_error_code(ended.err().map_or(0, |e| ctx.error_code(&e)))
}
