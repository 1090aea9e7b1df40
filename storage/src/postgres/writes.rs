//! The write path: several partitions' batches in one transaction, so one commit (one WAL
//! flush) serves them all.
//!
//! 1. `reserve`, once per partition (pipelined, in (topic, partition) order so concurrent
//!    writers lock rows in the same order): moves the partition's bounds past the write and
//!    returns them as it found them. Its row lock orders writers on any broker.
//! 2. `copy_batches`: every batch in one binary `COPY`, numbered here from what `reserve`
//!    returned. COPY is the fastest way into Postgres, and the batch bytes go to the socket as
//!    they came from the producer, with only the base offset in front of them rewritten.
//! 3. `save_producers`: the idempotent producers' new states, when there are any.
//! 4. Commit, which also delivers the wake-ups `reserve` queued.
//!
//! Any failure rolls the whole transaction back: none of the writes is stored.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use futures::SinkExt;
use tokio_postgres::types::Json;
use tokio_postgres::Row;
use uuid::Uuid;

use super::pool::{query_error, Conn};
use super::queries::Query;
use super::{col, missing};
use crate::{AppendOutcome, Batch, PartitionWrite, ProducerBatch, ProducerState, Result, StorageError};

/// Columns of `copy_batches`, in order.
const COPY_COLUMNS: i16 = 13;

/// Stores `writes`, all or nothing; the outcomes follow the writes' order.
pub(super) async fn append_partitions(conn: &mut Conn, writes: &[PartitionWrite]) -> Result<Vec<Vec<AppendOutcome>>> {
    let mut plans = writes
        .iter()
        .enumerate()
        .filter(|(_, w)| !w.batches.is_empty())
        .map(|(index, w)| Plan::new(index, w))
        .collect::<Result<Vec<_>>>()?;
    let mut outcomes = vec![Vec::new(); writes.len()];
    if plans.is_empty() {
        return Ok(outcomes);
    }
    plans.sort_by(|a, b| (&a.write.topic, a.write.partition).cmp(&(&b.write.topic, b.write.partition)));

    let reserve = conn.statement(Query::Reserve).await?;
    let copy = conn.statement(Query::CopyBatches).await?;
    let save = conn.statement(Query::SaveProducers).await?;
    let tx = conn.client.transaction().await.map_err(|e| query_error(Query::Reserve, e))?;

    let reserved = futures::future::join_all(plans.iter().map(|p| p.reserve(&tx, &reserve))).await;
    let mut starts = Vec::with_capacity(plans.len());
    let mut unknown = None;
    for (plan, row) in plans.iter().zip(reserved) {
        match row.map_err(|e| query_error(Query::Reserve, e))? {
            Some(row) => starts.push(Start::from_row(&row)?),
            None => unknown = unknown.or(Some(plan.write)),
        }
    }
    if let Some(write) = unknown {
        drop(tx);
        return Err(missing(conn, &write.topic, write.partition).await);
    }

    let sink = tx.copy_in::<_, Bytes>(&copy).await.map_err(|e| query_error(Query::CopyBatches, e))?;
    futures::pin_mut!(sink);
    let failed = |e| query_error(Query::CopyBatches, e);
    sink.feed(copy_header()).await.map_err(failed)?;
    let mut producers = ProducerRows::default();
    let mut rows = 0;
    for (plan, start) in plans.iter().zip(&starts) {
        let mut next = start.clone();
        let mut written = Vec::with_capacity(plan.write.batches.len());
        for (batch, producer) in &plan.write.batches {
            let placed = next.place(batch);
            sink.feed(copy_row_head(start.topic_id, plan.write.partition, batch, &placed)).await.map_err(failed)?;
            sink.feed(batch.bytes().slice(8..)).await.map_err(failed)?;
            written.push(AppendOutcome { base_offset: placed.base_offset, high_watermark: next.next_offset });
            if let Some(state) = producer {
                producers.keep(start.topic_id, plan.write.partition, state);
            }
            rows += 1;
        }
        outcomes[plan.index] = written;
    }
    let copied = sink.as_mut().finish().await.map_err(failed)?;
    if copied != rows {
        return Err(StorageError::Corrupt(format!("COPY stored {copied} batches of {rows}")));
    }
    if !producers.is_empty() {
        producers.save(&tx, &save).await?;
    }
    tx.commit().await.map_err(|e| query_error(Query::CopyBatches, e))?;
    Ok(outcomes)
}

/// One partition's write and its totals, for `reserve`.
struct Plan<'a> {
    index: usize,
    write: &'a PartitionWrite,
    offsets: i64,
    max_timestamp: i64,
    bytes: i64,
}

impl<'a> Plan<'a> {
    fn new(index: usize, write: &'a PartitionWrite) -> Result<Plan<'a>> {
        for (batch, _) in &write.batches {
            if i32::try_from(batch.len()).is_err() || batch.len() < 8 {
                return Err(StorageError::Engine(format!("a batch of {} bytes cannot be stored", batch.len())));
            }
        }
        Ok(Plan {
            index,
            write,
            offsets: write.batches.iter().map(|(b, _)| i64::from(b.last_offset_delta()) + 1).sum(),
            max_timestamp: write.batches.iter().map(|(b, _)| b.max_timestamp()).max().unwrap_or(i64::MIN),
            bytes: write.batches.iter().map(|(b, _)| b.len() as i64).sum(),
        })
    }

    async fn reserve(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        statement: &tokio_postgres::Statement,
    ) -> std::result::Result<Option<Row>, tokio_postgres::Error> {
        tx.query_opt(statement, &[&self.write.topic, &self.write.partition, &self.offsets, &self.max_timestamp, &self.bytes]).await
    }
}

/// A partition's bounds as a write found them, advanced batch by batch as it is numbered.
#[derive(Clone)]
struct Start {
    topic_id: Uuid,
    next_offset: i64,
    max_timestamp: Option<i64>,
    next_position: i64,
}

/// Where one batch goes.
struct Placed {
    base_offset: i64,
    time_index: i64,
    end_position: i64,
}

impl Start {
    fn from_row(row: &Row) -> Result<Start> {
        Ok(Start { topic_id: col(row, 0)?, next_offset: col(row, 1)?, max_timestamp: col(row, 2)?, next_position: col(row, 3)? })
    }

    /// Numbers `batch` and moves past it. The time index is the running max of the
    /// partition's max timestamps, so it never decreases in offset order.
    fn place(&mut self, batch: &Batch) -> Placed {
        let base_offset = self.next_offset;
        self.next_offset += i64::from(batch.last_offset_delta()) + 1;
        self.next_position += batch.len() as i64;
        let time_index = self.max_timestamp.map_or(batch.max_timestamp(), |m| m.max(batch.max_timestamp()));
        self.max_timestamp = Some(time_index);
        Placed { base_offset, time_index, end_position: self.next_position }
    }
}

/// The binary COPY signature, flags and (empty) header extension.
fn copy_header() -> Bytes {
    let mut header = BytesMut::with_capacity(19);
    header.put_slice(b"PGCOPY\n\xff\r\n\0");
    header.put_i32(0);
    header.put_i32(0);
    header.freeze()
}

/// A row of `copy_batches` up to and including the first 8 bytes of `data` (the rewritten base
/// offset); the rest of the batch follows as it is. Each field is its length and its binary
/// value (big-endian integers, the uuid's 16 bytes).
fn copy_row_head(topic_id: Uuid, partition: i32, batch: &Batch, placed: &Placed) -> Bytes {
    let mut row = BytesMut::with_capacity(2 + 13 * 4 + 100);
    row.put_i16(COPY_COLUMNS);
    row.put_i32(16);
    row.put_slice(topic_id.as_bytes());
    let int4 = |row: &mut BytesMut, v: i32| {
        row.put_i32(4);
        row.put_i32(v);
    };
    let int8 = |row: &mut BytesMut, v: i64| {
        row.put_i32(8);
        row.put_i64(v);
    };
    int4(&mut row, partition);
    int8(&mut row, placed.base_offset);
    int8(&mut row, placed.base_offset + i64::from(batch.last_offset_delta()));
    int4(&mut row, batch.record_count());
    int8(&mut row, batch.max_timestamp());
    int8(&mut row, placed.time_index);
    int8(&mut row, placed.end_position);
    int4(&mut row, batch.len() as i32); // checked by Plan::new
    int8(&mut row, batch.producer_id());
    row.put_i32(2);
    row.put_i16(batch.producer_epoch());
    int4(&mut row, batch.base_sequence());
    row.put_i32(batch.len() as i32);
    row.put_i64(placed.base_offset);
    row.freeze()
}

/// The producers' new states, the last one per (topic, partition, producer).
#[derive(Default)]
struct ProducerRows<'a> {
    states: BTreeMap<(Uuid, i32, i64), &'a ProducerState>,
}

impl<'a> ProducerRows<'a> {
    fn keep(&mut self, topic_id: Uuid, partition: i32, state: &'a ProducerState) {
        self.states.insert((topic_id, partition, state.producer_id), state);
    }

    fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    async fn save(&self, tx: &tokio_postgres::Transaction<'_>, statement: &tokio_postgres::Statement) -> Result<()> {
        let topics: Vec<Uuid> = self.states.keys().map(|k| k.0).collect();
        let partitions: Vec<i32> = self.states.keys().map(|k| k.1).collect();
        let producer_ids: Vec<i64> = self.states.keys().map(|k| k.2).collect();
        let epochs: Vec<i16> = self.states.values().map(|s| s.epoch).collect();
        let batches: Vec<Json<&Vec<ProducerBatch>>> = self.states.values().map(|s| Json(&s.batches)).collect();
        tx.execute(statement, &[&topics, &partitions, &producer_ids, &epochs, &batches])
            .await
            .map_err(|e| query_error(Query::SaveProducers, e))?;
        Ok(())
    }
}
