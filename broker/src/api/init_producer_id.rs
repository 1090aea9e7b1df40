//! InitProducerId (v0–v4): producer ids for idempotent producers, and for transactional ones
//! through the transaction coordinator (which fences the id's earlier producer and ends what
//! it left open).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::Ctx;
use crate::security::acl::{Operation, ResourceType};
use crate::transactions::Fenced;

pub async fn handle(ctx: &Ctx, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    let (id, epoch) = (request.producer_id.0, request.producer_epoch);
    if let Some(transactional_id) = request.transactional_id.as_ref().filter(|t| !t.0.is_empty()) {
        if !ctx.allowed(Operation::Write, ResourceType::TransactionalId, transactional_id.0.as_str()) {
            return response.with_error_code(ctx.code(ResponseError::TransactionalIdAuthorizationFailed));
        }
        let expected = (id >= 0).then_some((id, epoch));
        let fenced = Fenced(if ctx.version >= 4 { ResponseError::ProducerFenced } else { ResponseError::InvalidProducerEpoch });
        return match ctx.broker.txns.init_producer_id(transactional_id.0.as_str(), request.transaction_timeout_ms, expected, fenced).await {
            Ok((id, epoch)) => response.with_producer_id(ProducerId(id)).with_producer_epoch(epoch),
            Err(e) => {
                tracing::debug!(transactional_id = transactional_id.0.as_str(), error = %e, "InitProducerId refused");
                response.with_error_code(ctx.error_code(&e))
            }
        };
    }
    // An idempotent producer needs IDEMPOTENT_WRITE on the cluster, or WRITE on some topic
    // (KIP-679).
    let may_write_a_topic = || {
        let host = ctx.session.peer.ip().to_string();
        ctx.broker.authorizer.allows_any(&ctx.principal(), &host, Operation::Write, ResourceType::Topic)
    };
    if !ctx.allowed_on_cluster(Operation::IdempotentWrite) && !may_write_a_topic() {
        return response.with_error_code(ctx.code(ResponseError::ClusterAuthorizationFailed));
    }
    // KIP-360: a producer that knows its id asks for a bumped epoch after an error.
    if id >= 0 && (0..i16::MAX - 1).contains(&epoch) {
        return response.with_producer_id(ProducerId(id)).with_producer_epoch(epoch + 1);
    }
    match ctx.broker.storage().next_producer_id().await {
        Ok(id) => response.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            response.with_error_code(ctx.code(ResponseError::CoordinatorNotAvailable))
        }
    }
}
