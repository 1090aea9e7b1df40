//! [`DuckDbStore`]: the DuckDB table destination's side of [`TableStore`]. DuckDB's API blocks,
//! so every call runs on tokio's blocking threads, with the database's one connection.

use std::sync::Arc;

use async_trait::async_trait;
use duckdb::Connection;

use super::apply::{apply_batch, execute};
use super::batch::prepare;
use super::error::{duckdb_error, invalidated, join_error};
use super::registry::Lease;
use super::resolve::resolve;
use super::sql::{add_columns, create_meta, create_offsets, create_table, ident};
use super::Target;
use crate::runtime::TopicPartition;
use crate::table::{DestColumn, DestTable, Dialect, Position, Resolution, TableName, TableOptions, TableStore, TableWrite};
use crate::Result;

pub struct DuckDbStore {
    target: Target,
    options: TableOptions,
    lease: Option<Arc<Lease>>,
}

impl DuckDbStore {
    pub fn new(target: Target, options: TableOptions) -> DuckDbStore {
        DuckDbStore { target, options, lease: None }
    }

    /// Runs `work` with the connection on a blocking thread, opening the database first.
    async fn run<T, F>(&mut self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let lease = match &self.lease {
            Some(lease) => lease.clone(),
            None => {
                let target = self.target.clone();
                let lease = Arc::new(tokio::task::spawn_blocking(move || Lease::open(&target)).await.map_err(join_error)??);
                self.lease = Some(lease.clone());
                lease
            }
        };
        let outcome = tokio::task::spawn_blocking(move || work(&mut *lease.connection()?)).await.map_err(join_error)?;
        if let Err(e) = &outcome
            && invalidated(e)
        {
            // DuckDB refuses everything until the database is opened again: let go of it, so
            // that it closes once every sink of the file has, and the next call opens it anew.
            self.release().await;
        }
        outcome
    }

    /// Lets go of the database (closing it, if this was its last sink) off the async threads.
    async fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            let _ = tokio::task::spawn_blocking(move || drop(lease)).await;
        }
    }
}

/// Runs `work` in a transaction, committed when it succeeds.
fn in_transaction<T>(conn: &mut Connection, work: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    let tx = conn.transaction().map_err(|e| duckdb_error(&e, "BEGIN"))?;
    let value = work(&tx)?;
    tx.commit().map_err(|e| duckdb_error(&e, "COMMIT"))?;
    Ok(value)
}

#[async_trait]
impl TableStore for DuckDbStore {
    fn dialect(&self) -> Dialect {
        Dialect::DuckDb
    }

    async fn open(&mut self) -> Result<()> {
        let mut sql = create_offsets(&self.options.meta_schema);
        if let Some(meta) = &self.options.meta_table {
            sql.push_str("; ");
            sql.push_str(&create_meta(&meta.schema, &meta.table));
        }
        self.run(move |conn| execute(conn, "the sink's bookkeeping", &sql)).await
    }

    async fn columns(&mut self, table: &TableName) -> Result<Option<Vec<String>>> {
        let table = table.clone();
        self.run(move |conn| {
            // DuckDB's names are case-insensitive: so is the lookup.
            let sql = "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() \
                       AND lower(schema_name) = lower(?) AND lower(table_name) = lower(?) ORDER BY column_index";
            let failed = |e: duckdb::Error| duckdb_error(&e, &format!("{table}: reading its columns"));
            let mut statement = conn.prepare(sql).map_err(failed)?;
            let names = statement
                .query_map([&table.schema, &table.table], |r| r.get::<_, String>(0))
                .map_err(failed)?
                .collect::<duckdb::Result<Vec<String>>>()
                .map_err(failed)?;
            // Every table has a column: none means no table.
            Ok((!names.is_empty()).then_some(names))
        })
        .await
    }

    async fn create(&mut self, table: &DestTable) -> Result<()> {
        let (name, sql) = (table.name.to_string(), create_table(table));
        self.run(move |conn| in_transaction(conn, |tx| execute(tx, &name, &sql))).await
    }

    async fn add_columns(&mut self, table: &TableName, columns: &[DestColumn]) -> Result<()> {
        let (name, sql) = (table.to_string(), add_columns(table, columns));
        self.run(move |conn| in_transaction(conn, |tx| execute(tx, &name, &sql))).await
    }

    async fn apply(&mut self, writes: &[TableWrite], position: &Position) -> Result<()> {
        let prepared = prepare(writes)?;
        let meta = self.options.meta_table.clone();
        let flow_id = self.options.flow_id.clone();
        let offsets_schema = self.options.meta_schema.clone();
        let position = position.clone();
        self.run(move |conn| in_transaction(conn, |tx| apply_batch(tx, &prepared, meta.as_ref(), &flow_id, &offsets_schema, &position))).await
    }

    async fn committed(&mut self, sink_id: &str, partitions: &[TopicPartition]) -> Result<Vec<(TopicPartition, i64)>> {
        let sql = format!("SELECT topic, \"partition\", next_offset FROM {}.sink_offsets WHERE sink_id = ?", ident(&self.options.meta_schema));
        let sink_id = sink_id.to_owned();
        let rows = self
            .run(move |conn| {
                let failed = |e: duckdb::Error| duckdb_error(&e, &sql);
                let mut statement = conn.prepare(&sql).map_err(failed)?;
                let rows = statement
                    .query_map([&sink_id], |r| Ok(((r.get::<_, String>(0)?, r.get::<_, i32>(1)?), r.get::<_, i64>(2)?)))
                    .map_err(failed)?
                    .collect::<duckdb::Result<Vec<_>>>()
                    .map_err(failed)?;
                Ok(rows)
            })
            .await?;
        Ok(rows.into_iter().filter(|(tp, _)| partitions.contains(tp)).collect())
    }

    async fn resolve(&mut self, staging: &DestTable, target: &DestTable, resolution: Resolution) -> Result<u64> {
        let (staging, target) = (staging.clone(), target.clone());
        // One connection per file: the sink's own writes wait while this holds it.
        self.run(move |conn| in_transaction(conn, |tx| resolve(tx, &staging, &target, resolution))).await
    }

    async fn close(&mut self) -> Result<()> {
        self.release().await;
        Ok(())
    }
}
