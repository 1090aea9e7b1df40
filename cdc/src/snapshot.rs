//! The initial snapshot: existing rows read as op `r` records, in parallel connections that
//! share the slot's exported snapshot, so snapshot and stream meet exactly at the slot's
//! consistent point (no row missing, none twice).
//!
//! Resuming: an exported snapshot lives only as long as the slot-creating connection stays
//! idle, so after a crash mid-snapshot it is gone. The slot, however, still stands at the
//! consistent point (nothing is confirmed during the snapshot). The flow then keeps the slot
//! and reads the unfinished chunks again in fresh REPEATABLE READ transactions; the stream
//! still starts at the consistent point, so every change made since is replayed after the
//! re-read rows. Nothing is lost; rows changed in between appear in a re-read `r` record and
//! again as stream changes (those carry the LSN, so consumers can tell which is newer).
//! Dropping and recreating the slot instead would lose the changes made since the first
//! snapshot to the chunks already done.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::encode::encode_change;
use crate::error::{CdcError, Result};
use crate::event::{ChangeEvent, Op};
use crate::lsn::Lsn;
use crate::options::FlowSourceOptions;
use crate::pgoutput::TupleValue;
use crate::publication::TableName;
use crate::relation::{TableInfo, load_table};
use crate::replication::quote_ident;
use crate::source::SourceConfig;
use crate::time::now_unix_micros;
use crate::types::TypeRegistry;
use crate::writer::ChangeWriter;

/// A part of a table read by one worker: the whole table, or a range of `partition_column`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// `schema.table#index`.
    pub id: String,
    pub schema: String,
    pub table: String,
    /// SQL condition selecting the chunk's rows; `None` for the whole table.
    pub predicate: Option<String>,
}

/// Integer types a table can be split by.
const SPLITTABLE: &[u32] = &[20, 21, 23];

/// Splits each table into chunks: `partition_count` ranges of `partition_column` (rows with a
/// NULL there go to the first range) when the table has that integer column, else one chunk.
pub async fn plan(client: &Client, tables: &[TableName], options: &FlowSourceOptions) -> Result<Vec<Chunk>> {
    let mut chunks = Vec::new();
    for table in tables {
        let info = load_table(client, &table.schema, &table.name).await?;
        let column = info
            .columns
            .iter()
            .find(|c| !options.partition_column.is_empty() && c.name == options.partition_column && SPLITTABLE.contains(&c.type_oid));
        let whole = |chunks: &mut Vec<Chunk>| {
            chunks.push(Chunk { id: format!("{table}#0"), schema: table.schema.clone(), table: table.name.clone(), predicate: None })
        };
        let Some(column) = column.filter(|_| options.partition_count > 1) else {
            whole(&mut chunks);
            continue;
        };
        let col = quote_ident(&column.name);
        let row = client
            .query_one(&format!("SELECT min({col})::int8, max({col})::int8 FROM {}", table.quoted()), &[])
            .await
            .map_err(|e| CdcError::from_pg(e, ""))?;
        let (Some(min), Some(max)) = (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1)) else {
            whole(&mut chunks);
            continue;
        };
        let count = options.partition_count as i128;
        let span = i128::from(max) - i128::from(min) + 1;
        let step = ((span + count - 1) / count).max(1);
        let bounds: Vec<i128> = (1..count).map(|i| i128::from(min) + i * step).filter(|b| *b <= i128::from(max)).collect();
        for i in 0..=bounds.len() {
            let lower = (i > 0).then(|| bounds[i - 1]);
            let upper = bounds.get(i).copied();
            let predicate = match (lower, upper) {
                (None, Some(u)) => format!("({col} < {u} OR {col} IS NULL)"),
                (Some(l), Some(u)) => format!("({col} >= {l} AND {col} < {u})"),
                (Some(l), None) => format!("{col} >= {l}"),
                (None, None) => "true".to_string(),
            };
            chunks.push(Chunk {
                id: format!("{table}#{i}"),
                schema: table.schema.clone(),
                table: table.name.clone(),
                predicate: Some(predicate),
            });
        }
    }
    Ok(chunks)
}

/// Everything the snapshot workers share.
pub(crate) struct SnapshotJob {
    pub source: SourceConfig,
    pub options: FlowSourceOptions,
    pub writer: Arc<dyn ChangeWriter>,
    /// The exported snapshot to import; `None` when resuming (see the module docs).
    pub snapshot_name: Option<String>,
    /// LSN carried by the records (the consistent point).
    pub lsn: Lsn,
}

/// Reads `chunks` with `snapshot_workers` connections; sends each chunk id on `done` once its
/// rows are durable. Returns when every chunk is done or on the first error.
pub(crate) async fn run(job: SnapshotJob, chunks: Vec<Chunk>, done: mpsc::UnboundedSender<String>) -> Result<()> {
    if chunks.is_empty() {
        return Ok(());
    }
    let workers = job.options.snapshot_workers.min(chunks.len());
    let queue = Arc::new(Mutex::new(chunks.into_iter().collect::<VecDeque<_>>()));
    let job = Arc::new(job);
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let (job, queue, done) = (job.clone(), queue.clone(), done.clone());
        set.spawn(async move { worker(&job, &queue, &done).await });
    }
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(CdcError::protocol(format!("snapshot worker failed: {e}"))),
        }
    }
    Ok(())
}

async fn worker(job: &SnapshotJob, queue: &Mutex<VecDeque<Chunk>>, done: &mpsc::UnboundedSender<String>) -> Result<()> {
    let client = job.source.connect().await?;
    let pg = |e| CdcError::from_pg(e, job.source.user());
    client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await.map_err(pg)?;
    if let Some(name) = &job.snapshot_name {
        client
            .batch_execute(&format!("SET TRANSACTION SNAPSHOT '{}'", name.replace('\'', "''")))
            .await
            .map_err(pg)?;
    }
    let mut registry = TypeRegistry::new(job.options.resolve_types);
    let mut tables: HashMap<(String, String), TableInfo> = HashMap::new();
    loop {
        let next = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop_front();
        let Some(chunk) = next else { break };
        let key = (chunk.schema.clone(), chunk.table.clone());
        if !tables.contains_key(&key) {
            let info = load_table(&client, &chunk.schema, &chunk.table).await?;
            for column in &info.columns {
                registry.ensure(&client, column.type_oid).await?;
            }
            job.writer.ensure_topic(&job.options.table_topic(&info.schema, &info.name)).await?;
            tables.insert(key.clone(), info);
        }
        let Some(info) = tables.get(&key) else { continue };
        read_chunk(job, &client, &registry, info, &chunk).await?;
        let _ = done.send(chunk.id);
    }
    client.batch_execute("COMMIT").await.map_err(pg)?;
    Ok(())
}

async fn read_chunk(job: &SnapshotJob, client: &Client, registry: &TypeRegistry, info: &TableInfo, chunk: &Chunk) -> Result<()> {
    let pg = |e| CdcError::from_pg(e, job.source.user());
    let columns = info.columns.iter().map(|c| quote_ident(&c.name)).collect::<Vec<_>>().join(", ");
    let filter = chunk.predicate.as_ref().map(|p| format!(" WHERE {p}")).unwrap_or_default();
    client
        .batch_execute(&format!("DECLARE ductstream_snapshot NO SCROLL CURSOR FOR SELECT {columns} FROM {}{filter}", info.quoted()))
        .await
        .map_err(pg)?;
    let topic = job.options.table_topic(&info.schema, &info.name);
    let fetch = format!("FETCH {} FROM ductstream_snapshot", job.options.batch_size.max(500));
    loop {
        let messages = client.simple_query(&fetch).await.map_err(pg)?;
        let ts = now_unix_micros();
        let mut records = Vec::new();
        for message in messages {
            let SimpleQueryMessage::Row(row) = message else { continue };
            let values: Vec<TupleValue> = (0..info.columns.len())
                .map(|i| match row.get(i) {
                    Some(text) => TupleValue::Text(text.to_string()),
                    None => TupleValue::Null,
                })
                .collect();
            let after = info.row(registry, &values);
            let event = ChangeEvent {
                op: Op::Read,
                schema: info.schema.clone(),
                table: info.name.clone(),
                key: info.key_of(&after),
                before: None,
                after: Some(after),
                lsn: job.lsn,
                commit_ts_micros: ts,
                xid: None,
            };
            records.push(encode_change(&event, job.options.format));
        }
        if records.is_empty() {
            break;
        }
        job.writer.append(&topic, records).await?;
    }
    client.batch_execute("CLOSE ductstream_snapshot").await.map_err(pg)?;
    Ok(())
}
