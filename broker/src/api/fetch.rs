//! Fetch (v4–v12): stored batches handed back as they are, with a long poll that wakes when
//! an append makes data durable (never by polling storage on a timer).
//!
//! Fetch sessions (KIP-227) are declined as the KIP allows: every response carries session id
//! 0, so clients keep sending full fetch requests.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ductstream_storage::{Batch, PartitionOffsets, Topic};
use futures::future::select_all;
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tokio::sync::watch;
use tokio::time::Instant;

use super::Ctx;
use crate::Result;

/// The longest a fetch may wait, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub async fn handle(ctx: &Ctx, request: FetchRequest) -> Result<FetchResponse> {
    if request.session_id != 0 {
        return Ok(FetchResponse::default().with_error_code(ctx.code(ResponseError::FetchSessionIdNotFound)));
    }
    let mut topics = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let topic = ctx.broker.storage().topic(wanted.topic.0.as_str()).await?;
        topics.push((wanted, topic));
    }
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = if request.max_bytes <= 0 { usize::MAX } else { request.max_bytes as usize };
    loop {
        let mut wakers = Vec::new();
        let round = read_round(ctx, &topics, max_bytes, &mut wakers).await?;
        let done = round.bytes >= min_bytes || round.has_error || Instant::now() >= deadline || wakers.is_empty();
        if done || !wait_for_append(ctx, wakers, deadline).await {
            return Ok(FetchResponse::default().with_responses(round.responses));
        }
    }
}

struct Round {
    responses: Vec<FetchableTopicResponse>,
    bytes: usize,
    has_error: bool,
}

async fn read_round(
    ctx: &Ctx,
    topics: &[(FetchTopic, Option<Topic>)],
    max_bytes: usize,
    wakers: &mut Vec<watch::Receiver<i64>>,
) -> Result<Round> {
    let mut round = Round { responses: Vec::with_capacity(topics.len()), bytes: 0, has_error: false };
    for (wanted, topic) in topics {
        let mut partitions = Vec::with_capacity(wanted.partitions.len());
        for p in &wanted.partitions {
            let data = PartitionData::default().with_partition_index(p.partition);
            let remaining = max_bytes.saturating_sub(round.bytes);
            let read = match topic {
                Some(topic) if (0..topic.partitions).contains(&p.partition) => {
                    // Once some data is in, a partition past the response budget gets none.
                    let budget = (remaining > 0 || round.bytes == 0).then_some(remaining);
                    read_partition(ctx, topic, p, budget, wakers).await
                }
                _ => Err(crate::BrokerError::kafka(ResponseError::UnknownTopicOrPartition, "no such topic partition")),
            };
            partitions.push(match read {
                Ok((mut batches, offsets)) => {
                    // Only the response's first data may exceed max_bytes (KIP-74).
                    if round.bytes > 0 && batches.first().is_some_and(|b| b.len() > remaining) {
                        batches.clear();
                    }
                    let records = concat(batches.iter().map(|b| b.bytes()));
                    round.bytes += records.len();
                    data.with_high_watermark(offsets.high_watermark)
                        .with_last_stable_offset(offsets.high_watermark)
                        .with_log_start_offset(offsets.log_start)
                        .with_records(Some(records))
                }
                Err(e) => {
                    round.has_error = true;
                    data.with_error_code(ctx.error_code(&e)).with_high_watermark(-1).with_last_stable_offset(-1).with_records(Some(Bytes::new()))
                }
            });
        }
        round.responses.push(FetchableTopicResponse::default().with_topic(wanted.topic.clone()).with_partitions(partitions));
    }
    Ok(round)
}

/// Reads one partition within `budget` bytes (`None`: no data, just its bounds). A topic
/// deleted while the fetch waited shows up here as an error for this partition alone.
async fn read_partition(
    ctx: &Ctx,
    topic: &Topic,
    p: &FetchPartition,
    budget: Option<usize>,
    wakers: &mut Vec<watch::Receiver<i64>>,
) -> Result<(Vec<Batch>, PartitionOffsets)> {
    // Subscribe before reading, so an append right after the read still wakes us.
    wakers.push(ctx.broker.log.partition(topic, p.partition).await?.subscribe());
    let Some(remaining) = budget else {
        return Ok((Vec::new(), ctx.broker.log.offsets(topic, p.partition).await?));
    };
    let limit = (p.partition_max_bytes.max(0) as usize).min(remaining);
    let read = ctx.broker.log.read(topic, p.partition, p.fetch_offset, limit).await?;
    Ok((read.batches, read.offsets))
}

/// Waits until a partition's high watermark moves. False when the deadline passed or the
/// broker is stopping.
async fn wait_for_append(ctx: &Ctx, mut wakers: Vec<watch::Receiver<i64>>, deadline: Instant) -> bool {
    let changed = select_all(wakers.iter_mut().map(|w| w.changed().boxed()));
    tokio::select! {
        _ = changed => true,
        _ = tokio::time::sleep_until(deadline) => false,
        _ = ctx.broker.shutdown.cancelled() => false,
    }
}

fn concat<'a>(parts: impl Iterator<Item = &'a Bytes> + Clone) -> Bytes {
    let mut iter = parts.clone();
    match (iter.next(), iter.next()) {
        (None, _) => Bytes::new(),
        (Some(only), None) => only.clone(),
        _ => {
            let mut out = BytesMut::with_capacity(parts.clone().map(|p| p.len()).sum());
            parts.for_each(|p| out.extend_from_slice(p));
            out.freeze()
        }
    }
}
