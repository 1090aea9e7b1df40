//! What each table destination implements: its SQL. Everything else (parsing changes,
//! planning batches, creating and widening tables) is [`super::TableSink`]'s.

use async_trait::async_trait;

use super::layout::{DestColumn, DestTable, TableName};
use super::options::Resolution;
use super::plan::{Cell, TargetPlan};
use super::types::Dialect;
use crate::runtime::TopicPartition;
use crate::Result;

/// What one batch does to one destination table.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Mirror the source: truncate, deletes, upserts (target mode).
    Target(TargetPlan),
    /// Add these rows (append mode, staging tables).
    Insert(Vec<Vec<Cell>>),
}

/// A table and what to do to it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableWrite {
    pub table: DestTable,
    pub write: Write,
}

/// Where the sink is once a batch is applied: the next offset of its partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub sink_id: String,
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
}

#[async_trait]
pub trait TableStore: Send + Sync {
    fn dialect(&self) -> Dialect;

    /// Connects, and creates the sink's bookkeeping (its offsets table; the meta table).
    async fn open(&mut self) -> Result<()>;

    /// The table's column names, `None` when it does not exist.
    async fn columns(&mut self, table: &TableName) -> Result<Option<Vec<String>>>;

    /// Creates the table (and its schema or database), keyed by `table.key` when it has one.
    async fn create(&mut self, table: &DestTable) -> Result<()>;

    /// Adds columns the table lacks.
    async fn add_columns(&mut self, table: &TableName, columns: &[DestColumn]) -> Result<()>;

    /// Applies the writes and records `position` (and the meta table's rows) as one unit: all
    /// or nothing where the destination has transactions, idempotent on replay where it has
    /// not.
    async fn apply(&mut self, writes: &[TableWrite], position: &Position) -> Result<()>;

    /// The next offsets the destination recorded for these partitions.
    async fn committed(&mut self, sink_id: &str, partitions: &[TopicPartition]) -> Result<Vec<(TopicPartition, i64)>>;

    /// Applies a staging table to its target as `resolution` says and empties it; the number
    /// of staged rows it resolved.
    async fn resolve(&mut self, staging: &DestTable, target: &DestTable, resolution: Resolution) -> Result<u64>;

    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}
