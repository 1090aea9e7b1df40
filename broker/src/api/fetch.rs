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
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};
use tokio::sync::watch;
use tokio::time::Instant;

use super::Ctx;
use crate::security::acl::{Operation, ResourceType};
use crate::security::not_authorized;
use crate::transactions::partition::AbortedTxn;
use crate::{BrokerError, Result};

const READ_COMMITTED: i8 = 1;

/// The longest a fetch may wait, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub async fn handle(ctx: &Ctx, request: FetchRequest) -> Result<FetchResponse> {
    if request.session_id != 0 {
        return Ok(FetchResponse::default().with_error_code(ctx.code(ResponseError::FetchSessionIdNotFound)));
    }
    let mut topics = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let name = wanted.topic.0.as_str();
        // A topic the client may not read answers TOPIC_AUTHORIZATION_FAILED, whether it
        // exists or not.
        let topic = match ctx.allowed(Operation::Read, ResourceType::Topic, name) {
            true => Ok(ctx.broker.storage().topic(name).await?),
            false => Err(()),
        };
        topics.push((wanted, topic));
    }
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = if request.max_bytes <= 0 { usize::MAX } else { request.max_bytes as usize };
    loop {
        let mut wakers = Vec::new();
        let round = read_round(ctx, &topics, max_bytes, request.isolation_level == READ_COMMITTED, &mut wakers).await;
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

/// One partition asked for, with its topic as this broker knows it.
struct Wanted<'a> {
    /// Err: the client may not read it.
    topic: Result<Option<&'a Topic>, &'a str>,
    partition: &'a FetchPartition,
}

/// A partition's batches and bounds, with its last stable offset and the aborted
/// transactions among the batches (for read_committed).
struct ReadPartition {
    batches: Vec<Batch>,
    offsets: PartitionOffsets,
    last_stable: i64,
    aborted: Vec<AbortedTxn>,
}

type PartitionRead = Result<ReadPartition>;

/// Reads every partition asked for, within the response's `max_bytes`. Partitions whose limits
/// fit together in what is left of the budget are read at once (on Postgres, each on its own
/// connection), so a consumer of many partitions does not wait for one read after another;
/// their answers are then taken in request order, as if read one by one.
async fn read_round(
    ctx: &Ctx,
    topics: &[(FetchTopic, Result<Option<Topic>, ()>)],
    max_bytes: usize,
    read_committed: bool,
    wakers: &mut Vec<watch::Receiver<i64>>,
) -> Round {
    let wanted: Vec<Wanted<'_>> = topics
        .iter()
        .flat_map(|(fetch, topic)| {
            let topic = topic.as_ref().map(Option::as_ref).map_err(|()| fetch.topic.0.as_str());
            fetch.partitions.iter().map(move |partition| Wanted { topic, partition })
        })
        .collect();
    let mut reads: Vec<PartitionRead> = Vec::with_capacity(wanted.len());
    let mut bytes = 0;
    while reads.len() < wanted.len() {
        let remaining = max_bytes.saturating_sub(bytes);
        // Once some data is in, partitions past the response budget get none, just bounds.
        let budget = (remaining > 0 || bytes == 0).then_some(remaining);
        // A partition joins the group when its whole limit fits beside the others', so it
        // gets what a read after theirs would have given it.
        let mut group = Vec::new();
        let mut promised = 0;
        for w in &wanted[reads.len()..] {
            let limit = budget.map(|budget| partition_limit(w.partition).min(budget));
            if let Some(limit) = limit {
                if !group.is_empty() && promised + limit > remaining {
                    break;
                }
                promised += limit;
            }
            group.push(read_partition(ctx, w, limit, read_committed));
        }
        for (read, waker) in futures::future::join_all(group).await {
            wakers.extend(waker);
            if let Ok(read) = &read {
                bytes += read.batches.iter().map(Batch::len).sum::<usize>();
            }
            reads.push(read);
        }
    }

    let mut round = Round { responses: Vec::with_capacity(topics.len()), bytes: 0, has_error: false };
    let mut reads = reads.into_iter();
    for (fetch, _) in topics {
        let mut partitions = Vec::with_capacity(fetch.partitions.len());
        for p in &fetch.partitions {
            let data = PartitionData::default().with_partition_index(p.partition);
            let read = reads.next().unwrap_or_else(|| Err(BrokerError::kafka(ResponseError::UnknownServerError, "a partition read went missing")));
            partitions.push(match read {
                Ok(ReadPartition { mut batches, offsets, last_stable, aborted }) => {
                    // Only the response's first data may exceed max_bytes (KIP-74).
                    if round.bytes > 0 {
                        let remaining = max_bytes.saturating_sub(round.bytes);
                        let mut taken = 0;
                        batches.retain(|b| {
                            taken += b.len();
                            taken <= remaining
                        });
                    }
                    let records = concat(batches.iter().map(|b| b.bytes()));
                    round.bytes += records.len();
                    let aborted = read_committed.then(|| {
                        aborted
                            .iter()
                            .map(|a| AbortedTransaction::default().with_producer_id(ProducerId(a.producer_id)).with_first_offset(a.first_offset))
                            .collect()
                    });
                    data.with_high_watermark(offsets.high_watermark)
                        .with_last_stable_offset(last_stable)
                        .with_log_start_offset(offsets.log_start)
                        .with_aborted_transactions(aborted)
                        .with_records(Some(records))
                }
                Err(e) => {
                    round.has_error = true;
                    data.with_error_code(ctx.error_code(&e)).with_high_watermark(-1).with_last_stable_offset(-1).with_records(Some(Bytes::new()))
                }
            });
        }
        round.responses.push(FetchableTopicResponse::default().with_topic(fetch.topic.clone()).with_partitions(partitions));
    }
    round
}

fn partition_limit(p: &FetchPartition) -> usize {
    p.partition_max_bytes.max(0) as usize
}

/// Reads one partition within `limit` bytes (`None`: no data, just its bounds), with the
/// receiver that wakes a long poll when it grows. A topic deleted while the fetch waited
/// shows up here as an error for this partition alone. A read_committed read stops at the
/// last stable offset.
async fn read_partition(ctx: &Ctx, wanted: &Wanted<'_>, limit: Option<usize>, read_committed: bool) -> (PartitionRead, Option<watch::Receiver<i64>>) {
    let p = wanted.partition;
    let topic = match wanted.topic {
        Ok(topic) => topic,
        Err(name) => return (Err(not_authorized(ResourceType::Topic, name)), None),
    };
    let Some(topic) = topic.filter(|t| (0..t.partitions).contains(&p.partition)) else {
        return (Err(BrokerError::kafka(ResponseError::UnknownTopicOrPartition, "no such topic partition")), None);
    };
    // Subscribe before reading, so an append right after the read still wakes us.
    let log = &ctx.broker.log;
    let waker = match log.partition(topic, p.partition).await {
        Ok(state) => state.subscribe(),
        Err(e) => return (Err(e), None),
    };
    let read = async {
        let (mut batches, offsets) = match limit {
            None => (Vec::new(), log.offsets(topic, p.partition).await?),
            Some(limit) => {
                let read = log.read(topic, p.partition, p.fetch_offset, limit).await?;
                (read.batches, read.offsets)
            }
        };
        let (last_stable, aborted) = log.stable(topic, p.partition, p.fetch_offset).await?;
        if read_committed {
            batches.retain(|b| b.base_offset() < last_stable);
        }
        Ok(ReadPartition { batches, offsets, last_stable, aborted })
    };
    (read.await, Some(waker))
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
