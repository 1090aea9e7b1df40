//! AddOffsetsToTxn (v0–v4): a transactional producer will commit a group's offsets with its
//! transaction (TxnOffsetCommit follows).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::Ctx;
use crate::security::acl::{Operation, ResourceType};
use crate::transactions::Fenced;

pub async fn handle(ctx: &Ctx, request: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    if !ctx.allowed(Operation::Write, ResourceType::TransactionalId, request.transactional_id.0.as_str()) {
        return AddOffsetsToTxnResponse::default().with_error_code(ctx.code(ResponseError::TransactionalIdAuthorizationFailed));
    }
    if let Some(e) = super::group_denied(ctx, Operation::Read, request.group_id.0.as_str()) {
        return AddOffsetsToTxnResponse::default().with_error_code(ctx.code(e));
    }
    let fenced = Fenced(if ctx.version >= 2 { ResponseError::ProducerFenced } else { ResponseError::InvalidProducerEpoch });
    let added = ctx
        .broker
        .txns
        .add_offsets(request.transactional_id.0.as_str(), request.producer_id.0, request.producer_epoch, request.group_id.0.as_str(), fenced)
        .await;
    AddOffsetsToTxnResponse::default().with_error_code(added.err().map_or(0, |e| ctx.error_code(&e)))
}
