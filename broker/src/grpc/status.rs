//! Broker errors as gRPC statuses.

use ductstream_storage::StorageError;
use tonic::{Code, Status};

use crate::BrokerError;

pub fn to_status(error: BrokerError) -> Status {
    let code = match &error {
        BrokerError::NotFound(_) => Code::NotFound,
        BrokerError::AlreadyExists(_) => Code::AlreadyExists,
        BrokerError::InvalidArgument(_) | BrokerError::Decode(_) => Code::InvalidArgument,
        BrokerError::OutOfRange(_) => Code::OutOfRange,
        BrokerError::FailedPrecondition(_) => Code::FailedPrecondition,
        BrokerError::Storage(StorageError::UnknownTopic(_) | StorageError::UnknownPartition { .. }) => Code::NotFound,
        BrokerError::Storage(StorageError::OffsetOutOfRange { .. }) => Code::OutOfRange,
        BrokerError::Storage(StorageError::TopicExists(_)) => Code::AlreadyExists,
        BrokerError::Storage(StorageError::Corrupt(_)) => Code::DataLoss,
        // The store is away or failing: worth retrying.
        BrokerError::Storage(_) | BrokerError::Io(_) => Code::Unavailable,
        BrokerError::Kafka { .. } => Code::FailedPrecondition,
        BrokerError::Authentication(_) => Code::Unauthenticated,
        BrokerError::PermissionDenied(_) => Code::PermissionDenied,
        _ => Code::Internal,
    };
    Status::new(code, error.to_string())
}
