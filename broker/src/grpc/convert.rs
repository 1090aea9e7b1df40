//! Between ductstream.v1 messages and the broker's own types.

use ductstream_proto::v1 as pb;
use ductstream_proto::{timestamp_from_ms, timestamp_to_ms};

use crate::durable::{ConsumerView, DeliverPolicy, Pulled, Settings};
use crate::{BrokerError, Result};

/// The config's stream, group and settings.
pub fn settings(config: Option<pb::ConsumerConfig>) -> Result<(String, String, Settings)> {
    let c = config.ok_or_else(|| BrokerError::InvalidArgument("config is required".into()))?;
    let policy = pb::DeliverPolicy::try_from(c.deliver_policy)
        .map_err(|_| BrokerError::InvalidArgument(format!("unknown deliver policy {}", c.deliver_policy)))?;
    let deliver_policy = match policy {
        pb::DeliverPolicy::Unspecified | pb::DeliverPolicy::All => DeliverPolicy::All,
        pb::DeliverPolicy::New => DeliverPolicy::New,
        pb::DeliverPolicy::ByStartOffset => DeliverPolicy::ByStartOffset(c.start_offset),
        pb::DeliverPolicy::ByStartTime => DeliverPolicy::ByStartTime(
            c.start_time
                .as_ref()
                .map(timestamp_to_ms)
                .ok_or_else(|| BrokerError::InvalidArgument("deliver policy BY_START_TIME needs start_time".into()))?,
        ),
        pb::DeliverPolicy::LastPerKey => DeliverPolicy::LastPerKey,
    };
    require("stream", &c.stream)?;
    require("group", &c.group)?;
    let settings = Settings {
        deliver_policy,
        ack_wait_ms: c.ack_wait_ms,
        max_deliver: c.max_deliver,
        backoff_ms: c.backoff_ms,
        max_ack_pending: c.max_ack_pending,
        dead_letter_topic: c.dead_letter_topic,
    };
    Ok((c.stream, c.group, settings))
}

pub fn require(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(BrokerError::InvalidArgument(format!("{what} is required")));
    }
    Ok(())
}

pub fn consumer(view: ConsumerView) -> pb::Consumer {
    let s = &view.state.settings;
    let (policy, start_offset, start_time) = match s.deliver_policy {
        DeliverPolicy::All => (pb::DeliverPolicy::All, 0, None),
        DeliverPolicy::New => (pb::DeliverPolicy::New, 0, None),
        DeliverPolicy::ByStartOffset(o) => (pb::DeliverPolicy::ByStartOffset, o, None),
        DeliverPolicy::ByStartTime(t) => (pb::DeliverPolicy::ByStartTime, 0, Some(timestamp_from_ms(t))),
        DeliverPolicy::LastPerKey => (pb::DeliverPolicy::LastPerKey, 0, None),
    };
    let stats = &view.state.stats;
    pb::Consumer {
        config: Some(pb::ConsumerConfig {
            stream: view.state.stream.clone(),
            group: view.state.group.clone(),
            deliver_policy: policy as i32,
            start_offset,
            start_time,
            ack_wait_ms: s.ack_wait_ms,
            max_deliver: s.max_deliver,
            backoff_ms: s.backoff_ms.clone(),
            max_ack_pending: s.max_ack_pending,
            dead_letter_topic: s.dead_letter_topic.clone(),
        }),
        stats: Some(pb::ConsumerStats {
            pending: view.pending,
            delivered: stats.delivered,
            acked: stats.acked,
            redelivered: stats.redelivered,
            dead_lettered: stats.dead_lettered,
            terminated: stats.terminated,
            lag: view.lag,
        }),
        partitions: view
            .partitions
            .iter()
            .map(|p| pb::PartitionPosition {
                partition: p.partition,
                ack_floor: p.ack_floor,
                next_offset: p.next,
                high_watermark: p.high_watermark,
            })
            .collect(),
        created: Some(timestamp_from_ms(view.state.created_ms)),
    }
}

pub fn message(p: Pulled) -> pb::Message {
    pb::Message {
        id: format!("{}-{}", p.partition, p.record.offset),
        partition: p.partition,
        offset: p.record.offset,
        key: p.record.key.map(|k| k.to_vec()),
        value: p.record.value.map(|v| v.to_vec()),
        headers: p.record.headers.into_iter().map(|(key, value)| pb::Header { key, value: value.map(|v| v.to_vec()) }).collect(),
        timestamp: Some(timestamp_from_ms(p.record.timestamp)),
        delivery_count: p.deliveries,
        visible_at: Some(timestamp_from_ms(p.visible_at)),
    }
}
