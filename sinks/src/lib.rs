//! Sink connectors: consumers that move topic data into other systems.
//!
//! A destination only encodes and writes ([`Sink`]); one runtime ([`runtime::SinkRunner`])
//! drives every sink: it reads the sink's topics from a [`runtime::SinkSource`] (the broker's
//! log), cuts batches at boundaries it records before writing them (so a replay after a crash
//! rewrites the same objects, never a second copy), retries what can be retried, dead-letters
//! what the destination refuses for good, holds every sink inside one memory budget, and
//! commits offsets only once the destination has the data.
//!
//! Destinations: `http` (webhooks, always built), `s3` (feature `s3`), `kafka` and its alias
//! `bufstream` (feature `kafka`), and the table destinations that apply CDC changes
//! ([`table`]): `postgres` (feature `postgres`), `duckdb` (feature `duckdb`, linked to a prebuilt
//! libduckdb.so) and `clickhouse` (feature `clickhouse`). File formats: json (always), parquet
//! (feature `parquet`).

mod destination;
mod error;
pub mod format;
mod options;
mod record;
pub mod retry;
pub mod runtime;
mod sink;

pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "iceberg")]
pub mod iceberg;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "tables")]
pub mod table;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "duckdb")]
pub mod duckdb;
#[cfg(feature = "clickhouse")]
pub mod clickhouse;

pub use destination::{hide_secrets, keep_hidden_secrets, open_sink, redact_dsn, Destination, DESTINATION_TYPES, DSN_OPTIONS, HIDDEN, SECRET_OPTIONS};
#[cfg(feature = "tables")]
pub use destination::resolve_staging;
pub use error::{Result, SinkError};
pub use options::Options;
pub use record::SinkRecord;
pub use sink::{Refusal, Sink, SinkBatch};
