//! Backfills: tables marked in a stopped flow's checkpoint to be read again. The flow reads
//! unfinished snapshot chunks before it streams, in new transactions, so their current rows
//! come as op `r` (changes made meanwhile come too, as changes).

use std::collections::BTreeSet;

use ductstream_cdc::publication::TableName;
use ductstream_cdc::{Checkpoint, FlowSourceOptions, SnapshotProgress};

use crate::{BrokerError, Result};

/// Plans `tables` (`schema.table`, `public` when no schema is named) into `checkpoint`. An
/// unfinished snapshot keeps its other chunks; a table planned again is read again whole.
/// Returns the number of chunks planned.
pub async fn plan(options: &FlowSourceOptions, tables: &[String], checkpoint: &mut Checkpoint) -> Result<usize> {
    if tables.is_empty() {
        return Err(BrokerError::InvalidArgument("a backfill needs tables (schema.table[,...])".into()));
    }
    let unavailable = |e: ductstream_cdc::CdcError| BrokerError::FailedPrecondition(format!("source: {e}"));
    let source = ductstream_cdc::SourceConfig::parse(&options.dsn).map_err(|e| BrokerError::InvalidArgument(e.to_string()))?;
    let client = source.connect().await.map_err(unavailable)?;
    let names: Vec<TableName> = tables.iter().map(|t| TableName::parse(t)).collect();
    let planned = ductstream_cdc::snapshot::plan(&client, &names, options).await.map_err(unavailable)?;
    let count = planned.len();
    let replanned: BTreeSet<(String, String)> = planned.iter().map(|c| (c.schema.clone(), c.table.clone())).collect();
    let mut progress = match checkpoint.snapshot.take() {
        Some(p) if !p.complete => p,
        _ => SnapshotProgress { consistent_point: checkpoint.lsn, ..Default::default() },
    };
    progress.chunks.retain(|c| !replanned.contains(&(c.schema.clone(), c.table.clone())));
    let kept: BTreeSet<&String> = progress.chunks.iter().map(|c| &c.id).collect();
    progress.done = progress.done.iter().filter(|id| kept.contains(id)).cloned().collect();
    progress.chunks.extend(planned);
    progress.complete = false;
    checkpoint.snapshot = Some(progress);
    tracing::info!(flow = %options.flow_id, tables = ?tables, chunks = count, "backfill planned");
    Ok(count)
}
