//! Storage for DuctStream: the [`Storage`] trait and its engines.
//!
//! The trait speaks the domain (topics, partitions, record batches, offsets, producer state),
//! never the Kafka wire. Record batches are kept as the bytes the producer sent, with only the
//! base offset rewritten, so a fetch hands stored bytes back unchanged.
//!
//! Engines: [`MemoryStorage`] (tests, ephemeral brokers), [`EmbeddedStorage`] (the default:
//! segment files for the log, sled for the rest) and, with the `postgres` feature,
//! `PostgresStorage` (several brokers on one database); with the `tiered` feature,
//! `TieredStorage` moves old data of any of them to object storage. Every engine
//! passes the same conformance suite in [`testsuite`].

mod batch;
mod embedded;
mod error;
mod groups;
mod log_range;
mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
mod storage;
pub mod testsuite;
#[cfg(feature = "tiered")]
pub mod tiered;
mod types;

pub use batch::{Batch, BatchError, Compression, RECORD_BATCH_OVERHEAD};
pub use embedded::EmbeddedStorage;
pub use error::{Result, StorageError};
pub use groups::{CommittedOffset, GroupState, MemberState};
pub use log_range::LogRange;
pub use memory::MemoryStorage;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStorage;
pub use storage::{DocumentUpdate, Storage};
#[cfg(feature = "tiered")]
pub use tiered::TieredStorage;
pub use types::{
    AppendOutcome, BrokerInfo, Endpoint, PartitionOffsets, PartitionWrite, ProducerBatch, ProducerState, Topic, TopicSpec,
    PRODUCER_BATCHES_KEPT,
};
