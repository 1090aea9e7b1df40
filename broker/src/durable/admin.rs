//! Creating, changing, describing and deleting durable consumers.

use ductstream_storage::{StorageError, Topic};

use super::replay::{self, ReplayFrom};
use super::settings::{DeliverPolicy, Settings};
use super::state::ConsumerState;
use super::{now_ms, store};
use crate::{Broker, BrokerError, Result};

/// A consumer with its partitions' positions against their high watermarks.
#[derive(Debug, Clone)]
pub struct ConsumerView {
    pub state: ConsumerState,
    pub partitions: Vec<PartitionView>,
    pub pending: u64,
    /// Not yet acked, from the ack floor to the high watermark, over all partitions.
    pub lag: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct PartitionView {
    pub partition: i32,
    pub ack_floor: i64,
    pub next: i64,
    pub high_watermark: i64,
}

pub async fn create(broker: &Broker, stream: &str, group: &str, settings: Settings) -> Result<ConsumerView> {
    check_group(group)?;
    let topic = store::topic(broker, stream).await?;
    let settings = settings.normalized(stream)?;
    let from = match settings.deliver_policy {
        DeliverPolicy::All | DeliverPolicy::LastPerKey => ReplayFrom::Start,
        DeliverPolicy::New => ReplayFrom::End,
        DeliverPolicy::ByStartOffset(offset) => ReplayFrom::Offset(offset),
        DeliverPolicy::ByStartTime(time) => ReplayFrom::Time(time),
    };
    let starts = replay::starts(broker, &topic, from).await?;
    let mut state = ConsumerState::new(stream, group, topic.id, settings, now_ms(), starts);
    if state.settings.deliver_policy == DeliverPolicy::LastPerKey {
        for (partition, replaced) in replay::replaced_by_key(broker, &topic).await? {
            state.skip(partition, replaced);
        }
    }
    let bytes = serde_json::to_vec(&state).map_err(StorageError::from)?;
    let mut exists = false;
    broker
        .storage()
        .update_document(store::KIND, &store::key(stream, group), &mut |current| match current {
            Some(_) => {
                exists = true;
                Err(StorageError::Rejected("exists".into()))
            }
            None => Ok(Some(bytes.clone())),
        })
        .await
        .map_err(|e| match (exists, e) {
            (true, _) => BrokerError::AlreadyExists(format!("stream {stream:?} already has a durable consumer {group:?}")),
            (false, e) => e.into(),
        })?;
    tracing::info!(stream, group, "created durable consumer");
    view(broker, &topic, state).await
}

/// Creates the group with the default settings unless it exists; true when this call made it.
/// A pull starts a group this way, as a group's delivery state starts with its first pull.
pub async fn ensure(broker: &Broker, stream: &str, group: &str) -> Result<bool> {
    match store::load(broker, stream, group).await {
        Ok(_) => Ok(false),
        Err(BrokerError::NotFound(_)) => match create(broker, stream, group, Settings::defaults()).await {
            Ok(_) => Ok(true),
            // Another pull made it meanwhile.
            Err(BrokerError::AlreadyExists(_)) => Ok(false),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Replaces the settings; positions and claims stay. The deliver policy only applies at
/// creation, so it is kept as it was.
pub async fn update(broker: &Broker, stream: &str, group: &str, settings: Settings) -> Result<ConsumerView> {
    let topic = store::topic(broker, stream).await?;
    let settings = settings.normalized(stream)?;
    let (state, ()) = store::update(broker, &topic, group, |state| {
        state.settings = Settings { deliver_policy: state.settings.deliver_policy, ..settings.clone() };
        Ok(())
    })
    .await?;
    view(broker, &topic, state).await
}

pub async fn get(broker: &Broker, stream: &str, group: &str) -> Result<ConsumerView> {
    let state = store::load(broker, stream, group).await?;
    let topic = store::topic(broker, stream).await?;
    view(broker, &topic, state).await
}

/// Every consumer of `stream`, or of every stream when it is empty.
pub async fn list(broker: &Broker, stream: &str) -> Result<Vec<ConsumerView>> {
    let mut out = Vec::new();
    for state in store::load_all(broker).await? {
        if !stream.is_empty() && state.stream != stream {
            continue;
        }
        // A consumer of a deleted stream is listed without positions.
        match broker.storage().topic(&state.stream).await? {
            Some(topic) if topic.id == state.topic_id => out.push(view(broker, &topic, state).await?),
            _ => out.push(ConsumerView { pending: state.pending(), state, partitions: Vec::new(), lag: 0 }),
        }
    }
    Ok(out)
}

pub async fn delete(broker: &Broker, stream: &str, group: &str) -> Result<()> {
    let mut found = false;
    broker
        .storage()
        .update_document(store::KIND, &store::key(stream, group), &mut |current| {
            found = current.is_some();
            Ok(None)
        })
        .await?;
    if !found {
        return Err(store::not_found(stream, group));
    }
    tracing::info!(stream, group, "deleted durable consumer");
    Ok(())
}

pub(super) async fn view(broker: &Broker, topic: &Topic, state: ConsumerState) -> Result<ConsumerView> {
    let mut partitions = Vec::new();
    let mut lag = 0;
    for partition in 0..topic.partitions {
        let bounds = broker.log.offsets(topic, partition).await?;
        let (ack_floor, next) = state
            .partitions
            .get(&partition)
            .map_or((bounds.log_start, bounds.log_start), |c| (c.ack_floor.max(bounds.log_start), c.next.max(bounds.log_start)));
        lag += (bounds.high_watermark - ack_floor).max(0);
        partitions.push(PartitionView { partition, ack_floor, next, high_watermark: bounds.high_watermark });
    }
    Ok(ConsumerView { pending: state.pending(), state, partitions, lag })
}

/// Consumer names are free text but for what would make them unreadable in ids and logs.
fn check_group(group: &str) -> Result<()> {
    if group.is_empty() || group.len() > 249 || group.chars().any(char::is_control) {
        return Err(BrokerError::InvalidArgument(format!(
            "consumer name {group:?} must be 1 to 249 characters without control characters"
        )));
    }
    Ok(())
}
