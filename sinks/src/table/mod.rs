//! Table destinations (`postgres`, `duckdb`, `clickhouse`): CDC change events applied to
//! tables that mirror the source tables (or, in append mode, keep every change as a row).
//!
//! The shared part lives here: [`change`] parses the events, [`shape`] learns a source table's
//! columns and key, [`types`] maps Postgres types per dialect, [`layout`] is the destination
//! table, [`plan`] reduces a batch to what the destination must do, [`TableSink`] drives it all.
//! A destination implements [`TableStore`]: its SQL and nothing else.

pub mod change;
pub mod connect;
pub mod layout;
pub mod options;
pub mod plan;
pub mod shape;
mod sink;
mod store;
pub mod types;

pub use layout::{DestColumn, DestTable, MetaRow, Source, TableName};
pub use options::{BatchMode, Resolution, TableOptions, WriteMode};
pub use plan::{Cell, TargetPlan};
pub use sink::TableSink;
pub use store::{Position, TableStore, TableWrite, Write};
pub use types::{Dialect, ValueKind};

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
