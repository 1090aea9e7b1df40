//! Where change records go. The broker implements [`ChangeWriter`] over its log; this crate
//! never depends on the broker.

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;

/// One record for a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct OutRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// Names are the `ductstream.*` constants.
    pub headers: Vec<(&'static str, Bytes)>,
    /// Milliseconds since the Unix epoch (the commit time).
    pub timestamp: i64,
}

impl OutRecord {
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// Appends records to topics.
#[async_trait]
pub trait ChangeWriter: Send + Sync {
    /// Creates the topic when it does not exist; called before the first append to it.
    async fn ensure_topic(&self, name: &str) -> Result<()>;

    /// Appends `records` in order. Returns only once they are durable: the flow confirms the
    /// source position right after, and the source may then discard the changes.
    /// Implementations map their failures to [`crate::CdcError::Writer`].
    async fn append(&self, topic: &str, records: Vec<OutRecord>) -> Result<()>;
}
