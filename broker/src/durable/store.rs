//! Loading and atomically changing a consumer's state document.

use ductstream_storage::{StorageError, Topic};

use super::state::ConsumerState;
use crate::{Broker, BrokerError, Result};

/// The document kind that holds durable consumers.
pub const KIND: &str = "durable_consumer";

/// Topic names hold no '/', so the stream is everything before the first one.
pub fn key(stream: &str, group: &str) -> String {
    format!("{stream}/{group}")
}

pub fn not_found(stream: &str, group: &str) -> BrokerError {
    BrokerError::NotFound(format!("stream {stream:?} has no durable consumer {group:?}"))
}

/// The stream's topic; NOT_FOUND when there is none.
pub async fn topic(broker: &Broker, stream: &str) -> Result<Topic> {
    broker.storage().topic(stream).await?.ok_or_else(|| BrokerError::NotFound(format!("stream {stream:?} does not exist")))
}

pub async fn load(broker: &Broker, stream: &str, group: &str) -> Result<ConsumerState> {
    let bytes = broker.storage().document(KIND, &key(stream, group)).await?.ok_or_else(|| not_found(stream, group))?;
    Ok(serde_json::from_slice(&bytes).map_err(StorageError::from)?)
}

pub async fn load_all(broker: &Broker) -> Result<Vec<ConsumerState>> {
    let documents = broker.storage().documents(KIND).await?;
    documents.iter().map(|(_, bytes)| Ok(serde_json::from_slice(bytes).map_err(StorageError::from)?)).collect()
}

/// Applies `f` to the stored state, atomically, and stores the result; an error from `f`
/// changes nothing. `f` must only compute: it may run more than once.
pub async fn update<R: Send>(
    broker: &Broker,
    topic: &Topic,
    group: &str,
    mut f: impl FnMut(&mut ConsumerState) -> Result<R> + Send,
) -> Result<(ConsumerState, R)> {
    let stream = topic.name.as_str();
    crate::documents::update(broker.storage().as_ref(), KIND, &key(stream, group), || not_found(stream, group), |state: &mut ConsumerState| {
        if state.topic_id != topic.id {
            return Err(BrokerError::NotFound(format!(
                "stream {stream:?} was deleted and created again after consumer {group:?} was made: delete the consumer and create it again"
            )));
        }
        f(state)
    })
    .await
}
