//! Moving messages to the dead-letter topic: append a copy with headers saying why, then mark
//! the original done. A broker that dies between the two leaves the claim to expire, and the
//! next pull moves the message again: a dead letter may repeat, it is never lost.

use std::borrow::Cow;

use bytes::Bytes;
use ductstream_storage::{Storage, StorageError, Topic, TopicSpec};

use super::state::{ConsumerState, Delivery, MessageId};
use super::{now_ms, pull, store};
use crate::batch_builder::{self, NewRecord};
use crate::{Broker, BrokerError, Result};

pub const REASON_HEADER: &str = "ductstream.dlq.reason";
pub const DELIVERIES_HEADER: &str = "ductstream.dlq.deliveries";
pub const STREAM_HEADER: &str = "ductstream.dlq.stream";
pub const PARTITION_HEADER: &str = "ductstream.dlq.partition";
pub const OFFSET_HEADER: &str = "ductstream.dlq.offset";
pub const CONSUMER_HEADER: &str = "ductstream.dlq.consumer";

/// Appends each message to the dead-letter topic, then marks them done.
pub async fn move_all(broker: &Broker, topic: &Topic, state: &ConsumerState, dead: Vec<(MessageId, u32, String)>) -> Result<()> {
    let deliveries: Vec<Delivery> =
        dead.iter().map(|(id, deliveries, _)| Delivery { id: *id, deliveries: *deliveries, visible_at: 0 }).collect();
    let originals = pull::read(broker, topic, &deliveries).await?;
    let dlq = dead_letter_topic(broker.storage().as_ref(), &state.settings.dead_letter_topic).await?;
    let now = now_ms();
    let mut moved = Vec::with_capacity(dead.len());
    for (id, deliveries, reason) in &dead {
        let original = originals.iter().find(|p| p.partition == id.partition && p.record.offset == id.offset);
        let (key, value, mut headers): (_, _, Vec<(Cow<'static, str>, Option<Bytes>)>) = match original {
            Some(p) => (p.record.key.clone(), p.record.value.clone(), p.record.headers.iter().map(|(k, v)| (k.clone().into(), v.clone())).collect()),
            // Deleted from the stream meanwhile: the dead letter still says what happened.
            None => (None, None, Vec::new()),
        };
        let text = |s: String| Some(Bytes::from(s));
        headers.extend([
            (REASON_HEADER.into(), text(reason.clone())),
            (DELIVERIES_HEADER.into(), text(deliveries.to_string())),
            (STREAM_HEADER.into(), text(state.stream.clone())),
            (PARTITION_HEADER.into(), text(id.partition.to_string())),
            (OFFSET_HEADER.into(), text(id.offset.to_string())),
            (CONSUMER_HEADER.into(), text(state.group.clone())),
        ]);
        let record = NewRecord { key, value, headers, timestamp: now };
        let partition = id.partition % dlq.partitions.max(1);
        let batch = batch_builder::build(&[record])?;
        let turn = broker.log.take_turn(&dlq, partition).await?;
        let appended = broker.log.append(batch, turn).await?;
        appended.durable.wait().await.map_err(|e| BrokerError::Storage(StorageError::Engine(e)))?;
        moved.push(*id);
        tracing::info!(stream = %state.stream, group = %state.group, id = %id, reason, dlq = %dlq.name, "dead-lettered");
    }
    store::update(broker, topic, &state.group, |s| {
        s.dead_lettered(&moved);
        Ok(())
    })
    .await?;
    Ok(())
}

/// The dead-letter topic, created with one partition when missing (whatever the broker's
/// auto-create setting: it is the broker's own topic). Sinks dead-letter here too.
pub(crate) async fn dead_letter_topic(storage: &dyn Storage, name: &str) -> Result<Topic> {
    if let Some(topic) = storage.topic(name).await? {
        return Ok(topic);
    }
    crate::topic_config::validate_topic_name(name)?;
    match storage.create_topic(TopicSpec { name: name.to_owned(), partitions: 1, configs: Default::default() }).await {
        Ok(topic) => Ok(topic),
        Err(StorageError::TopicExists(_)) => {
            storage.topic(name).await?.ok_or_else(|| BrokerError::NotFound(format!("dead-letter topic {name:?} vanished")))
        }
        Err(e) => Err(e.into()),
    }
}
