//! Snapshot progress published where the source option `snapshot_state_backend` says, for those
//! who watch a snapshot from outside the broker: `postgres` (a row per chunk in
//! `<snapshot_state_schema>.<snapshot_state_table>` of the source, default
//! `ductstream.snapshot_state`), `file` (a JSON document at `snapshot_state_path`, replaced
//! whole at each step) or `none`.
//!
//! A resume reads the flow's checkpoint, which keeps the same progress in the broker's store in
//! every case, so a lost or stale published copy never skips a row. The source table is created
//! before the DDL capture is installed (as the source-state table is) and its changes are never
//! streamed; a source user who may not create it gets a warning. An unwritable file fails the
//! flow: the file was asked for by name.

use std::path::Path;

use serde_json::json;
use tokio_postgres::Client;

use crate::checkpoint::SnapshotProgress;
use crate::error::{CdcError, Result};
use crate::options::{FlowSourceOptions, SnapshotStateBackend};
use crate::publication::TableName;
use crate::replication::quote_ident;

/// The source table of the `postgres` backend.
pub fn table(options: &FlowSourceOptions) -> TableName {
    TableName { schema: options.snapshot_state_schema.clone(), name: options.snapshot_state_table.clone() }
}

/// Whether `schema.table` is the flow's snapshot-state table (its changes are not streamed).
pub fn is_state_table(options: &FlowSourceOptions, schema: &str, name: &str) -> bool {
    options.snapshot_state_backend == SnapshotStateBackend::Postgres
        && schema == options.snapshot_state_schema
        && name == options.snapshot_state_table
}

/// Creates the source table when it is missing (before the DDL capture is installed).
pub async fn prepare(client: &Client, options: &FlowSourceOptions) {
    if options.snapshot_state_backend != SnapshotStateBackend::Postgres || !options.snapshot {
        return;
    }
    let name = table(options).quoted();
    let exists = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name]).await.map(|r| r.get::<_, bool>(0));
    let create = format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; CREATE TABLE IF NOT EXISTS {name} (flow_id text NOT NULL, chunk_id text NOT NULL, \
         table_name text NOT NULL, predicate text, consistent_point pg_lsn, done_at timestamptz, \
         updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (flow_id, chunk_id))",
        schema = quote_ident(&options.snapshot_state_schema)
    );
    let created = match exists {
        Ok(true) => Ok(()),
        Ok(false) => client.batch_execute(&create).await,
        Err(e) => Err(e),
    };
    if let Err(e) = created {
        tracing::warn!(flow = %options.flow_id, table = %name, error = %e, "cannot keep the snapshot-state table; the snapshot goes on without it");
    }
}

/// Opens the connection the `postgres` backend publishes through (none for the others, or
/// when the source refuses one: the snapshot goes on unpublished).
pub async fn connect(source: &crate::SourceConfig, options: &FlowSourceOptions) -> Option<Client> {
    if options.snapshot_state_backend != SnapshotStateBackend::Postgres {
        return None;
    }
    match source.connect().await {
        Ok(client) => Some(client),
        Err(e) => {
            tracing::warn!(flow = %options.flow_id, error = %e, "cannot connect to publish snapshot progress");
            None
        }
    }
}

/// Publishes the whole plan (at the start of a snapshot or a backfill).
pub async fn planned(client: Option<&Client>, options: &FlowSourceOptions, progress: &SnapshotProgress) -> Result<()> {
    match options.snapshot_state_backend {
        SnapshotStateBackend::None => Ok(()),
        SnapshotStateBackend::File => write_file(options, progress),
        SnapshotStateBackend::Postgres => {
            let Some(client) = client else { return Ok(()) };
            let name = table(options).quoted();
            let sql = format!(
                "INSERT INTO {name} (flow_id, chunk_id, table_name, predicate, consistent_point, done_at) \
                 SELECT $1, c.id, c.tbl, c.pred, $2::text::pg_lsn, CASE WHEN c.done THEN now() END \
                 FROM unnest($3::text[], $4::text[], $5::text[], $6::bool[]) AS c(id, tbl, pred, done) \
                 ON CONFLICT (flow_id, chunk_id) DO UPDATE SET table_name = EXCLUDED.table_name, predicate = EXCLUDED.predicate, \
                 consistent_point = EXCLUDED.consistent_point, done_at = EXCLUDED.done_at, updated_at = now()"
            );
            let ids: Vec<&str> = progress.chunks.iter().map(|c| c.id.as_str()).collect();
            let tables: Vec<String> = progress.chunks.iter().map(|c| format!("{}.{}", c.schema, c.table)).collect();
            let predicates: Vec<Option<&str>> = progress.chunks.iter().map(|c| c.predicate.as_deref()).collect();
            let done: Vec<bool> = progress.chunks.iter().map(|c| progress.done.contains(&c.id)).collect();
            let point = progress.consistent_point.to_string();
            let published = async {
                client.execute(&format!("DELETE FROM {name} WHERE flow_id = $1"), &[&options.flow_id]).await?;
                client.execute(&sql, &[&options.flow_id, &point, &ids, &tables, &predicates, &done]).await
            };
            if let Err(e) = published.await {
                tracing::warn!(flow = %options.flow_id, table = %name, error = %e, "cannot publish the snapshot plan");
            }
            Ok(())
        }
    }
}

/// Publishes that chunk `id` is written.
pub async fn chunk_done(client: Option<&Client>, options: &FlowSourceOptions, progress: &SnapshotProgress, id: &str) -> Result<()> {
    match options.snapshot_state_backend {
        SnapshotStateBackend::None => Ok(()),
        SnapshotStateBackend::File => write_file(options, progress),
        SnapshotStateBackend::Postgres => {
            let Some(client) = client else { return Ok(()) };
            let sql = format!("UPDATE {} SET done_at = now(), updated_at = now() WHERE flow_id = $1 AND chunk_id = $2", table(options).quoted());
            if let Err(e) = client.execute(&sql, &[&options.flow_id, &id]).await {
                tracing::debug!(flow = %options.flow_id, error = %e, "cannot publish a finished snapshot chunk");
            }
            Ok(())
        }
    }
}

/// Publishes that the snapshot is complete (the file says so; table rows all have `done_at`).
pub fn complete(options: &FlowSourceOptions, progress: &SnapshotProgress) -> Result<()> {
    match options.snapshot_state_backend {
        SnapshotStateBackend::File => write_file(options, progress),
        _ => Ok(()),
    }
}

/// Forgets the flow's rows (it is deleted).
pub async fn forget(client: &Client, options: &FlowSourceOptions) {
    if options.snapshot_state_backend != SnapshotStateBackend::Postgres {
        return;
    }
    let name = table(options).quoted();
    let exists = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name]).await.map(|r| r.get::<_, bool>(0));
    if let Ok(true) = exists
        && let Err(e) = client.execute(&format!("DELETE FROM {name} WHERE flow_id = $1"), &[&options.flow_id]).await
    {
        tracing::warn!(flow = %options.flow_id, error = %e, "cannot remove the flow's rows from the snapshot-state table");
    }
}

/// Replaces the file whole (written beside it, then renamed, so a reader never sees half).
fn write_file(options: &FlowSourceOptions, progress: &SnapshotProgress) -> Result<()> {
    let path = Path::new(&options.snapshot_state_path);
    let chunks: Vec<_> = progress
        .chunks
        .iter()
        .map(|c| json!({"id": c.id, "table": format!("{}.{}", c.schema, c.table), "predicate": c.predicate, "done": progress.done.contains(&c.id)}))
        .collect();
    let document = json!({
        "flow_id": options.flow_id,
        "consistent_point": progress.consistent_point.to_string(),
        "chunks_total": progress.chunks.len(),
        "chunks_done": progress.done.len(),
        "complete": progress.complete,
        "updated_at_ms": crate::time::now_unix_micros().div_euclid(1000),
        "chunks": chunks,
    });
    let failed = |e: std::io::Error| CdcError::option("snapshot_state_path", format!("cannot write {}: {e}", path.display()));
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let bytes = serde_json::to_vec_pretty(&document).map_err(|e| CdcError::option("snapshot_state_path", e.to_string()))?;
    std::fs::write(&temporary, bytes).map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}
