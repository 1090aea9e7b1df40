//! [`TableSink`]: any [`TableStore`] as a sink. It parses a batch's change events, groups
//! them by source table, makes sure each destination table exists with every column the
//! changes carry (creating it from the source's shape, adding columns the source added),
//! plans the batch and hands it to the store with the partition's next offset.

use std::collections::HashMap;

use async_trait::async_trait;
use indexmap::IndexMap;

use super::change::{parse, Parsed, TableChange};
use super::layout::{DestTable, TableName};
use super::options::{BatchMode, TableOptions, WriteMode};
use super::plan::{append_rows, target_plan};
use super::shape::{read_source_shape, SourceShape};
use super::store::{Position, TableStore, TableWrite, Write};
use crate::runtime::TopicPartition;
use crate::{Refusal, Result, Sink, SinkBatch, SinkError};

/// A destination table, and its staging table in staging mode.
#[derive(Debug, Clone)]
struct Known {
    target: DestTable,
    staging: Option<DestTable>,
}

pub struct TableSink<S: TableStore> {
    store: S,
    options: TableOptions,
    sink_id: String,
    /// By source table.
    known: HashMap<TableName, Known>,
}

impl<S: TableStore> TableSink<S> {
    pub fn new(store: S, options: TableOptions, sink_id: &str) -> TableSink<S> {
        TableSink { store, options, sink_id: sink_id.to_owned(), known: HashMap::new() }
    }

    /// The destination table's name for a source table.
    fn target_name(&self, source: &TableName) -> TableName {
        TableName {
            schema: self.options.schema.clone().unwrap_or_else(|| source.schema.clone()),
            table: self.options.table.clone().unwrap_or_else(|| source.table.clone()),
        }
    }

    fn staging_name(&self, target: &TableName) -> TableName {
        TableName {
            schema: self.options.staging_schema.clone().unwrap_or_else(|| target.schema.clone()),
            table: self.options.staging_table.clone().unwrap_or_else(|| format!("{}{}", target.table, self.options.staging_suffix)),
        }
    }

    /// The source table's shape: from the source's catalog when the sink knows the source,
    /// widened by whatever the changes carry (a column dropped at the source since).
    async fn shape(&self, source: &TableName, changes: &[&TableChange]) -> Result<SourceShape> {
        let mut shape = match &self.options.source_dsn {
            Some(dsn) => read_source_shape(dsn, &source.schema, &source.table).await?.unwrap_or_default(),
            None => SourceShape::default(),
        };
        let inferred = SourceShape::infer(changes.iter().copied());
        if shape.key.is_empty() {
            shape.key = inferred.key.clone();
        }
        for column in inferred.columns {
            if shape.column(&column.name).is_none() {
                shape.columns.push(column);
            }
        }
        Ok(shape)
    }

    /// The destination tables for `source`, created or widened so that every column the
    /// changes carry exists.
    async fn ensure(&mut self, source: &TableName, changes: &[&TableChange]) -> Result<Known> {
        if let Some(known) = self.known.get(source) {
            let columns: std::collections::HashSet<&str> = known.target.columns.iter().map(|c| c.name.as_str()).collect();
            let fits = changes.iter().all(|c| {
                [&c.after, &c.before].into_iter().flatten().all(|image| image.keys().all(|k| columns.contains(k.as_str())))
            });
            if fits {
                return Ok(known.clone());
            }
        }
        let shape = self.shape(source, changes).await?;
        let dialect = self.store.dialect();
        let keyed = self.options.write_mode == WriteMode::Target;
        let target = DestTable::new(dialect, self.target_name(source), source.clone(), &shape, &self.options, keyed);
        let staging = (self.options.batch_mode == BatchMode::Staging).then(|| target.staging(dialect, self.staging_name(&target.name)));
        for table in std::iter::once(&target).chain(staging.as_ref()) {
            self.fit(table).await?;
        }
        let known = Known { target, staging };
        self.known.insert(source.clone(), known.clone());
        Ok(known)
    }

    /// Creates `table`, or adds the columns it lacks; refuses one whose key columns are missing.
    async fn fit(&mut self, table: &DestTable) -> Result<()> {
        match self.store.columns(&table.name).await? {
            None => {
                self.store.create(table).await?;
                tracing::info!(sink = %self.sink_id, table = %table.name, "created the destination table");
            }
            Some(existing) => {
                if let Some(key) = table.key.iter().find(|k| !existing.contains(k)) {
                    return Err(SinkError::Fatal(format!(
                        "destination table {} has no column {key:?}, a primary key column of {}: it does not fit; drop it or name another table",
                        table.name, table.source
                    )));
                }
                let missing: Vec<_> = table.columns.iter().filter(|c| !existing.contains(&c.name)).cloned().collect();
                if !missing.is_empty() {
                    self.store.add_columns(&table.name, &missing).await?;
                    let names: Vec<&str> = missing.iter().map(|c| c.name.as_str()).collect();
                    tracing::info!(sink = %self.sink_id, table = %table.name, columns = ?names, "added columns to the destination table");
                }
            }
        }
        Ok(())
    }

    /// Applies the staging tables of `tables` (source tables) to their targets; the rows
    /// resolved per table.
    pub async fn resolve_staging(&mut self, tables: &[TableName]) -> Result<Vec<(TableName, u64)>> {
        if self.options.batch_mode != BatchMode::Staging {
            return Err(SinkError::Config("this destination does not stage (batch_mode is not staging)".into()));
        }
        self.store.open().await?;
        let mut resolved = Vec::new();
        for source in tables {
            let known = self.ensure(source, &[]).await?;
            let Some(staging) = &known.staging else { continue };
            if known.target.key.is_empty() && self.options.write_mode == WriteMode::Target {
                return Err(SinkError::Fatal(format!("{source}: the source table's primary key is unknown, so staged rows cannot be resolved")));
            }
            let rows = self.store.resolve(staging, &known.target, self.options.resolution).await?;
            resolved.push((source.clone(), rows));
        }
        Ok(resolved)
    }
}

#[async_trait]
impl<S: TableStore> Sink for TableSink<S> {
    async fn open(&mut self) -> Result<()> {
        self.store.open().await
    }

    async fn write(&mut self, batch: &SinkBatch) -> Result<Vec<Refusal>> {
        let mut refusals = Vec::new();
        let mut by_table: IndexMap<TableName, Vec<TableChange>> = IndexMap::new();
        for record in &batch.records {
            match parse(record) {
                Parsed::Change(change) => {
                    let source = TableName { schema: change.schema.clone(), table: change.table.clone() };
                    by_table.entry(source).or_default().push(change);
                }
                Parsed::Skip => {}
                Parsed::Refuse(reason) => refusals.push(Refusal { offset: record.offset, reason }),
            }
        }
        let now_ms = super::now_ms();
        let mut writes = Vec::new();
        for (source, changes) in &by_table {
            let changes: Vec<&TableChange> = changes.iter().collect();
            let known = self.ensure(source, &changes).await?;
            match (&known.staging, self.options.write_mode) {
                (Some(staging), _) => writes.push(TableWrite { write: Write::Insert(append_rows(staging, &changes, now_ms)), table: staging.clone() }),
                (None, WriteMode::Append) => {
                    writes.push(TableWrite { write: Write::Insert(append_rows(&known.target, &changes, now_ms)), table: known.target.clone() });
                }
                (None, WriteMode::Target) => {
                    let (plan, refused) = target_plan(&known.target, &changes, self.options.soft_delete, now_ms);
                    refusals.extend(refused.into_iter().map(|(offset, reason)| Refusal { offset, reason }));
                    writes.push(TableWrite { write: Write::Target(plan), table: known.target.clone() });
                }
            }
        }
        let position = Position { sink_id: self.sink_id.clone(), topic: batch.topic.clone(), partition: batch.partition, next_offset: batch.last_offset + 1 };
        self.store.apply(&writes, &position).await?;
        Ok(refusals)
    }

    async fn committed(&mut self, partitions: &[TopicPartition]) -> Result<Vec<(TopicPartition, i64)>> {
        self.store.committed(&self.sink_id, partitions).await
    }

    async fn close(&mut self) -> Result<()> {
        self.store.close().await
    }
}
