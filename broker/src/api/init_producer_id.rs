//! InitProducerId (v0–v4): producer ids for idempotent producers. Transactions are not
//! supported, so a transactional id is refused.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::Ctx;

pub async fn handle(ctx: &Ctx, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    if request.transactional_id.as_ref().is_some_and(|id| !id.0.is_empty()) {
        tracing::warn!("InitProducerId with a transactional id: transactions are not supported");
        return response.with_error_code(ctx.code(ResponseError::InvalidRequest));
    }
    // KIP-360: a producer that knows its id asks for a bumped epoch after an error.
    let (id, epoch) = (request.producer_id.0, request.producer_epoch);
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
