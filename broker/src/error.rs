use ductstream_storage::StorageError;
use kafka_protocol::error::ResponseError;

/// Everything that can go wrong inside the broker.
///
/// Handlers map these to Kafka error codes with [`BrokerError::code`] at the edge; connection
/// level failures (framing, decoding) close the connection instead.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("request of {size} bytes exceeds socket.request.max.bytes ({max})")]
    FrameTooLarge { size: u64, max: usize },
    #[error("invalid frame length {0}")]
    InvalidFrameLength(i32),
    #[error("cannot decode request: {0}")]
    Decode(String),
    #[error("cannot encode response: {0}")]
    Encode(String),
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("{api:?} version {version} is not supported")]
    UnsupportedVersion { api: kafka_protocol::messages::ApiKey, version: i16 },
    #[error("{code}: {message}")]
    Kafka { code: ResponseError, message: String },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("configuration: {0}")]
    Config(String),
    /// A named thing (durable consumer, stream) that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Creating something that exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// A request argument outside what the API accepts.
    #[error("{0}")]
    InvalidArgument(String),
    /// A change the current state does not allow (starting a running flow).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A position outside the log.
    #[error("{0}")]
    OutOfRange(String),
    /// An authenticated principal that may not do what it asked.
    #[error("{0}")]
    PermissionDenied(String),
    /// A connection that failed or skipped authentication (it is closed).
    #[error("authentication: {0}")]
    Authentication(String),
}

pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

impl BrokerError {
    /// A Kafka error with a message for the client (where the response has a message field).
    pub fn kafka(code: ResponseError, message: impl Into<String>) -> BrokerError {
        BrokerError::Kafka { code, message: message.into() }
    }

    /// The Kafka error code a client should see for this failure.
    pub fn code(&self) -> ResponseError {
        match self {
            BrokerError::Kafka { code, .. } => *code,
            BrokerError::Storage(e) => storage_code(e),
            BrokerError::UnsupportedVersion { .. } => ResponseError::UnsupportedVersion,
            BrokerError::FrameTooLarge { .. } | BrokerError::InvalidFrameLength(_) | BrokerError::Decode(_) => {
                ResponseError::InvalidRequest
            }
            BrokerError::UnknownApiKey(_) => ResponseError::InvalidRequest,
            BrokerError::Encode(_) | BrokerError::Io(_) | BrokerError::Config(_) => ResponseError::UnknownServerError,
            BrokerError::NotFound(_) => ResponseError::UnknownTopicOrPartition,
            BrokerError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
            BrokerError::InvalidArgument(_) => ResponseError::InvalidRequest,
            BrokerError::OutOfRange(_) => ResponseError::OffsetOutOfRange,
            BrokerError::FailedPrecondition(_) => ResponseError::InvalidRequest,
            BrokerError::Authentication(_) => ResponseError::SaslAuthenticationFailed,
            BrokerError::PermissionDenied(_) => ResponseError::ClusterAuthorizationFailed,
        }
    }
}

fn storage_code(e: &StorageError) -> ResponseError {
    match e {
        StorageError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        StorageError::UnknownTopic(_) | StorageError::UnknownPartition { .. } => ResponseError::UnknownTopicOrPartition,
        StorageError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::InvalidBatch(_) => ResponseError::CorruptMessage,
        _ => ResponseError::KafkaStorageError,
    }
}
