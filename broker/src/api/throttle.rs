//! Quotas on requests (KIP-13, KIP-124, KIP-219): what a produce brings and what a fetch
//! returns counts against the client's byte rates, and every request's handling time against
//! its `request_percentage`. The response says how long the client is held back
//! (`throttle_time_ms`, the longest of the throttles that apply) while the connection waits
//! that long before reading its next request. Records are served; the wait pays for them.

use std::time::Duration;

use futures::FutureExt;
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceRequest, ResponseKind};

use super::{Ctx, Outcome};
use crate::quotas::model::{CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE};

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
    throttled(outcome, ctx.throttle(PRODUCER_BYTE_RATE, bytes as f64))
}

/// Counts a fetch's records against the quota and puts the throttle in its response.
pub fn fetch(ctx: &Ctx, response: FetchResponse) -> FetchResponse {
    let bytes: usize = response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum();
    let throttle_ms = ctx.throttle(CONSUMER_BYTE_RATE, bytes as f64);
    if throttle_ms == 0 {
        return response;
    }
    response.with_throttle_time_ms(throttle_ms)
}

/// Counts the time a request took to handle (not the time a produce then waits for its
/// sync, as Kafka counts only its handler threads' time) against `request_percentage`.
/// Authentication and version discovery come before there is a user to count them for.
pub fn request_time(ctx: &Ctx, handled_in: Duration, outcome: Outcome) -> Outcome {
    if matches!(ctx.api, ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) || !ctx.broker.quotas.any() {
        return outcome;
    }
    // In percent-seconds: a quota of 50 fills 50 of them each second, half a thread's time.
    throttled(outcome, ctx.throttle(REQUEST_PERCENTAGE, handled_in.as_secs_f64() * 100.0))
}

/// The outcome with `throttle_ms` in its response, now or when it comes.
fn throttled(outcome: Outcome, throttle_ms: i32) -> Outcome {
    if throttle_ms == 0 {
        return outcome;
    }
    match outcome {
        Outcome::Now(response) => Outcome::Now(Box::new(with_throttle(*response, throttle_ms))),
        Outcome::Later(response) => Outcome::Later(response.map(move |r| with_throttle(r, throttle_ms)).boxed()),
        // acks=0 and bare SASL tokens have no field: the held connection is the whole throttle.
        other => other,
    }
}

/// Raises the response's `throttle_time_ms` to at least `throttle_ms` (a version without the
/// field does not encode it; the held connection still throttles).
fn with_throttle(response: ResponseKind, throttle_ms: i32) -> ResponseKind {
    macro_rules! raise {
        ($($kind:ident),* $(,)?) => {
            match response {
                $(ResponseKind::$kind(mut r) => {
                    r.throttle_time_ms = r.throttle_time_ms.max(throttle_ms);
                    ResponseKind::$kind(r)
                })*
                other => other,
            }
        };
    }
    raise!(
        Produce, Fetch, ListOffsets, Metadata, ApiVersions, CreateTopics, DeleteTopics, DeleteRecords, InitProducerId,
        DescribeConfigs, CreatePartitions, IncrementalAlterConfigs, DescribeCluster, FindCoordinator, JoinGroup,
        SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups,
        OffsetDelete, ConsumerGroupHeartbeat, ConsumerGroupDescribe, CreateAcls, DescribeAcls, DeleteAcls,
        DescribeLogDirs, AlterConfigs, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit,
        DescribeTransactions, ListTransactions, DescribeUserScramCredentials, AlterUserScramCredentials,
        DescribeClientQuotas, AlterClientQuotas,
    )
}
