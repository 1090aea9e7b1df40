//! Byte-rate quotas on the two requests that carry records: what a produce brings and what a
//! fetch returns is counted against the client's quota, and the response says how long the
//! client is held back (`throttle_time_ms`) while the connection waits that long before
//! reading its next request (KIP-219). Records are served; the wait pays for them.

use futures::FutureExt;
use kafka_protocol::messages::{FetchResponse, ProduceRequest, ResponseKind};

use super::{Ctx, Outcome};
use crate::quotas::model::{CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE};

/// The record bytes a produce request carries.
pub fn produced_bytes(request: &ProduceRequest) -> usize {
    request
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum()
}

/// Counts a produce against the quota; its response (now or later) carries the throttle.
pub fn produce(ctx: &Ctx, bytes: usize, outcome: Outcome) -> Outcome {
    let throttle_ms = ctx.throttle(PRODUCER_BYTE_RATE, bytes);
    if throttle_ms == 0 {
        return outcome;
    }
    let throttled = move |response: ResponseKind| match response {
        ResponseKind::Produce(r) => ResponseKind::Produce(r.with_throttle_time_ms(throttle_ms)),
        other => other,
    };
    match outcome {
        Outcome::Now(response) => Outcome::Now(Box::new(throttled(*response))),
        Outcome::Later(response) => Outcome::Later(response.map(throttled).boxed()),
        // acks=0 has no response: the held connection is the whole throttle.
        other => other,
    }
}

/// Counts a fetch's records against the quota and puts the throttle in its response.
pub fn fetch(ctx: &Ctx, response: FetchResponse) -> FetchResponse {
    let bytes: usize = response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum();
    let throttle_ms = ctx.throttle(CONSUMER_BYTE_RATE, bytes);
    if throttle_ms == 0 {
        return response;
    }
    response.with_throttle_time_ms(throttle_ms)
}
