/// What can go wrong in a sink.
///
/// The runtime decides by kind: `Retriable` is retried with backoff, `Fatal` stops the sink
/// (FAILED, with the reason) until someone fixes the destination and starts it again, and
/// `Config` is refused when the sink is created.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A definition that cannot work: an unknown destination type or option, a bad value.
    #[error("{0}")]
    Config(String),
    /// The destination or the source is away for now: a timeout, a refused connection, a 5xx.
    #[error("{0}")]
    Retriable(String),
    /// The destination refuses the sink itself: a missing bucket, wrong credentials, 410 Gone.
    #[error("{0}")]
    Fatal(String),
    /// Reading the sink's topics or committing its offsets failed.
    #[error("source: {0}")]
    Source(String),
    /// Records that cannot be encoded in the sink's format.
    #[error("encode: {0}")]
    Encode(String),
}

pub type Result<T, E = SinkError> = std::result::Result<T, E>;

impl SinkError {
    /// Whether waiting and trying again may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, SinkError::Retriable(_) | SinkError::Source(_))
    }
}
