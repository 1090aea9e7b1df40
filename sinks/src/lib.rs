//! Sink connectors: consumers that move topic data into other systems.
//!
//! This crate will hold the `Sink` trait, the runtime that drives a sink from a consumer group
//! (committing offsets only after the destination has the data) and one module per destination
//! (S3, DuckDB, ClickHouse, HTTP webhooks, Kafka, pgstream). Heavy destinations sit behind cargo
//! features. Nothing is implemented yet.
