use crate::batch::BatchError;

/// Everything a storage engine can refuse or fail at.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("offset {requested} is outside the log [{log_start}, {high_watermark}]")]
    OffsetOutOfRange { requested: i64, log_start: i64, high_watermark: i64 },
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A document update refused the document's contents (see `Storage::update_document`).
    #[error("{0}")]
    Rejected(String),
    /// A compaction rewrite found its range changed since it was read (see
    /// `Storage::replace_range`); nothing was written.
    #[error("{0}")]
    RangeChanged(String),
    #[error("storage engine failed: {0}")]
    Engine(String),
    /// The remote tier (object storage) failed or lacks an object; retrying may succeed.
    #[error("remote tier: {0}")]
    Remote(String),
    #[error("I/O on {path} failed: {source}")]
    Io { path: String, source: std::io::Error },
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl From<sled::Error> for StorageError {
    fn from(e: sled::Error) -> Self {
        StorageError::Engine(e.to_string())
    }
}

impl From<serde_json::Error> for StorageError {
    fn from(e: serde_json::Error) -> Self {
        StorageError::Corrupt(e.to_string())
    }
}
