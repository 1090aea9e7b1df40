use bytes::Bytes;

/// One record of a topic, as a sink receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// In the order the producer wrote them.
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl SinkRecord {
    /// Bytes this record holds in memory, for the runtime's budget.
    pub fn size(&self) -> usize {
        let fields = self.key.as_ref().map_or(0, Bytes::len) + self.value.as_ref().map_or(0, Bytes::len);
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len)).sum();
        64 + self.topic.len() + fields + headers
    }

    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        self.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.as_ref())
    }
}
