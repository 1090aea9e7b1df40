//! Pull: claim messages for a visibility timeout and hand them out, waiting for some when the
//! pull allows.

use std::collections::BTreeMap;
use std::time::Duration;

use ductstream_storage::Topic;
use futures::FutureExt;

use super::settings::{check_duration, MAX_PULL_MESSAGES, MAX_PULL_WAIT_MS};
use super::state::{Bounds, Delivery, PullAsk};
use super::{dead_letter, now_ms, store};
use crate::records::{self, Record};
use crate::{Broker, BrokerError, Result};

/// What a worker asks for.
#[derive(Debug, Clone)]
pub struct Pull {
    pub stream: String,
    pub group: String,
    pub max_messages: u32,
    /// None: the consumer's ack wait.
    pub visibility_ms: Option<u64>,
    pub max_wait_ms: u64,
    pub consumer_id: String,
}

/// One message handed out.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub partition: i32,
    pub record: Record,
    pub deliveries: u32,
    pub visible_at: i64,
}

pub async fn pull(broker: &Broker, ask: Pull) -> Result<Vec<Pulled>> {
    if let Some(ms) = ask.visibility_ms {
        check_duration("visibility timeout", ms)?;
    }
    if ask.max_wait_ms > MAX_PULL_WAIT_MS {
        return Err(BrokerError::InvalidArgument(format!(
            "max wait of {} ms is more than the {MAX_PULL_WAIT_MS} ms a pull may wait",
            ask.max_wait_ms
        )));
    }
    if ask.max_messages > MAX_PULL_MESSAGES {
        return Err(BrokerError::InvalidArgument(format!(
            "a pull hands out at most {MAX_PULL_MESSAGES} messages, not {}",
            ask.max_messages
        )));
    }
    let max = ask.max_messages.max(1) as usize;
    let topic = store::topic(broker, &ask.stream).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ask.max_wait_ms);
    loop {
        // Watch first, so an append between the claim and the wait still wakes this pull.
        let mut watches = Vec::with_capacity(topic.partitions as usize);
        let mut bounds = BTreeMap::new();
        for partition in 0..topic.partitions {
            watches.push(broker.log.partition(&topic, partition).await?.subscribe());
            let offsets = broker.log.offsets(&topic, partition).await?;
            bounds.insert(partition, Bounds { log_start: offsets.log_start, high_watermark: offsets.high_watermark });
        }
        let now = now_ms();
        let (state, claimed) = store::update(broker, &topic, &ask.group, |state| {
            let visibility_ms = ask.visibility_ms.unwrap_or(state.settings.ack_wait_ms);
            Ok(state.claim(&bounds, PullAsk { max, visibility_ms, now }))
        })
        .await?;
        if !claimed.dead.is_empty() {
            dead_letter::move_all(broker, &topic, &state, claimed.dead).await?;
        }
        if !claimed.deliveries.is_empty() {
            tracing::debug!(stream = %ask.stream, group = %ask.group, consumer = %ask.consumer_id, n = claimed.deliveries.len(), "pulled");
            return read(broker, &topic, &claimed.deliveries).await;
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Vec::new());
        }
        let wake = match claimed.next_expiry {
            Some(at) => deadline.min(tokio::time::Instant::now() + Duration::from_millis((at - now).max(1) as u64)),
            None => deadline,
        };
        let appended = futures::future::select_all(watches.iter_mut().map(|w| w.changed().boxed()));
        tokio::select! {
            _ = appended => {}
            _ = tokio::time::sleep_until(wake) => {}
            _ = broker.shutdown.cancelled() => return Ok(Vec::new()),
        }
    }
}

/// Bytes read per storage call while collecting claimed records: about a pull's worth of
/// small messages, so a pull of 100 does not decode a megabyte (later reads continue from
/// where this one ended).
const READ_BYTES: usize = 128 << 10;

/// The claimed records, in claim order. A record deleted since the claim is left out.
pub(super) async fn read(broker: &Broker, topic: &Topic, deliveries: &[Delivery]) -> Result<Vec<Pulled>> {
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for d in deliveries {
        by_partition.entry(d.id.partition).or_default().push(d.id.offset);
    }
    let mut found: BTreeMap<(i32, i64), Record> = BTreeMap::new();
    for (partition, mut offsets) in by_partition {
        offsets.sort_unstable();
        let mut i = 0;
        while let Some(&at) = offsets.get(i) {
            let batches = match broker.log.read(topic, partition, at, READ_BYTES).await {
                Ok(read) => read.batches,
                Err(BrokerError::Storage(ductstream_storage::StorageError::OffsetOutOfRange { .. })) => Vec::new(),
                Err(e) => return Err(e),
            };
            let Some(end) = batches.last().map(|b| b.next_offset()) else {
                i += 1;
                continue;
            };
            for batch in &batches {
                for record in records::decode(batch)? {
                    if offsets.binary_search(&record.offset).is_ok() {
                        found.insert((partition, record.offset), record);
                    }
                }
            }
            while offsets.get(i).is_some_and(|&o| o < end) {
                i += 1;
            }
        }
    }
    Ok(deliveries
        .iter()
        .filter_map(|d| {
            let record = found.remove(&(d.id.partition, d.id.offset))?;
            Some(Pulled { partition: d.id.partition, record, deliveries: d.deliveries, visible_at: d.visible_at })
        })
        .collect())
}
