//! Change data capture from Postgres into DuctStream topics.
//!
//! This crate will hold the logical-replication client and pgoutput decoding, snapshots and
//! backfills, LSN checkpoints, DDL capture and the change-event model with its wire formats.
//! It appends through a small writer trait that the broker implements, so it never depends on
//! the broker itself. Nothing is implemented yet: see the CDC issue.
