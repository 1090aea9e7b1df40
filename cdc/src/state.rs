//! The source-state table (`ensure_state`): a row per flow in the source database,
//! `<state_schema>.<state_table>` (default `ductstream.source_state`), naming the slot and the
//! publication the flow holds there, when it last started and stopped, and the position it had
//! confirmed. It is for the source's owners: what to clean up, and who reads their WAL.
//!
//! The flow never streams the table's own changes (a `FOR ALL TABLES` publication holds it), and
//! creates it only when it is missing, before the DDL capture is installed, so that capture does
//! not see it on later starts. A source user who may not create it gets a warning; the flow
//! runs on without it.

use tokio_postgres::Client;

use crate::lsn::Lsn;
use crate::options::FlowSourceOptions;
use crate::publication::TableName;
use crate::replication::quote_ident;

/// The table's name, as the options give it.
pub fn state_table(options: &FlowSourceOptions) -> TableName {
    TableName { schema: options.state_schema.clone(), name: options.state_table.clone() }
}

/// Whether `schema.table` is one of the flow's own tables in the source (the source-state and
/// snapshot-state tables): their changes are not streamed, nor their rows snapshotted.
pub fn is_own_table(options: &FlowSourceOptions, schema: &str, table: &str) -> bool {
    (options.ensure_state && schema == options.state_schema && table == options.state_table)
        || crate::snapshot_state::is_state_table(options, schema, table)
}

/// Creates the table when it is missing and records that the flow starts.
pub async fn record_start(client: &Client, options: &FlowSourceOptions) {
    if !options.ensure_state {
        return;
    }
    let table = state_table(options).quoted();
    let exists = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table]).await.map(|r| r.get::<_, bool>(0));
    let create = format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; CREATE TABLE IF NOT EXISTS {table} (flow_id text PRIMARY KEY, slot text NOT NULL, \
         publication text NOT NULL, started_at timestamptz, stopped_at timestamptz, confirmed_lsn pg_lsn, updated_at timestamptz NOT NULL DEFAULT now())",
        schema = quote_ident(&options.state_schema)
    );
    let created = match exists {
        Ok(true) => Ok(()),
        Ok(false) => client.batch_execute(&create).await,
        Err(e) => Err(e),
    };
    let upsert = format!(
        "INSERT INTO {table} (flow_id, slot, publication, started_at, stopped_at, updated_at) VALUES ($1, $2, $3, now(), NULL, now()) \
         ON CONFLICT (flow_id) DO UPDATE SET slot = EXCLUDED.slot, publication = EXCLUDED.publication, started_at = now(), stopped_at = NULL, updated_at = now()"
    );
    let recorded = match created {
        Ok(()) => client.execute(&upsert, &[&options.flow_id, &options.slot, &options.publication]).await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = recorded {
        tracing::warn!(flow = %options.flow_id, table = %table, error = %e, "cannot keep the source-state table (ensure_state); the flow runs on without it");
    }
}

/// Records that the flow stopped, at `confirmed`.
pub async fn record_stop(client: &Client, options: &FlowSourceOptions, confirmed: Lsn) {
    if !options.ensure_state {
        return;
    }
    let sql = format!(
        "UPDATE {} SET stopped_at = now(), confirmed_lsn = $2::text::pg_lsn, updated_at = now() WHERE flow_id = $1",
        state_table(options).quoted()
    );
    if let Err(e) = client.execute(&sql, &[&options.flow_id, &confirmed.to_string()]).await {
        tracing::debug!(flow = %options.flow_id, error = %e, "cannot record the stop in the source-state table");
    }
}

/// Forgets the flow (it is deleted, with its slot).
pub async fn forget(client: &Client, options: &FlowSourceOptions) {
    if !options.ensure_state {
        return;
    }
    let sql = format!("DELETE FROM {} WHERE flow_id = $1", state_table(options).quoted());
    let table_exists = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&state_table(options).quoted()]).await.map(|r| r.get::<_, bool>(0));
    if let Ok(true) = table_exists && let Err(e) = client.execute(&sql, &[&options.flow_id]).await {
        tracing::warn!(flow = %options.flow_id, error = %e, "cannot remove the flow's row from the source-state table");
    }
}
