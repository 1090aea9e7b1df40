//! The DuctStream broker: the Kafka wire protocol over a pluggable [`Storage`].
//!
//! `server` accepts connections; `connection` turns bytes into frames and answers requests in
//! order; `api` holds one file per Kafka request; `log` is the partition log every write goes
//! through; `committer` groups fsyncs.
//!
//! [`Storage`]: ductstream_storage::Storage

pub mod api;
pub mod batch_builder;
mod broker;
mod clock;
pub mod cluster;
mod committer;
pub mod compaction;
pub mod config;
pub mod dash_flags;
pub mod console;
mod connection;
mod connection_limits;
mod documents;
pub mod enum_names;
pub mod durable;
mod error;
pub mod flows;
mod gatherer;
mod frame;
pub mod fuzzing;
pub mod grpc;
pub mod groups;
mod idempotence;
pub mod log;
mod metrics;
pub mod open;
pub mod quotas;
mod records;
mod reconcile;
pub mod request;
mod request_memory;
mod record_checks;
pub mod retention;
pub mod security;
pub mod server;
pub mod sinks;
mod topic_config;
pub mod tiering;
pub mod transactions;

pub use broker::Broker;
pub use error::{BrokerError, Result};
