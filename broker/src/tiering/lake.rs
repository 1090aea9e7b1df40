//! The cold tier: what the remote tier holds, also appended to an Iceberg table per topic
//! (`--tier-iceberg-*`), so SQL engines query a topic's whole history. Each pass appends, per
//! partition, the records from the table's position (kept in its snapshots) up to the end of
//! the last uploaded object (and never past the last stable offset), in one snapshot, as a
//! read_committed consumer sees them: without control records or aborted transactions.
//!
//! A CDC flow's table topic (JSON change events) also gets typed columns, one per source
//! column, with the types the source's catalog gives (see `ductstream_sinks::iceberg`).

use ductstream_sinks::iceberg::Lake;
use ductstream_sinks::table::shape::{read_source_shape, SourceShape};
use ductstream_sinks::SinkRecord;
use ductstream_storage::tiered::TieredStorage;
use ductstream_storage::{StorageError, Topic};

use crate::flows::store as flow_store;
use crate::sinks::source::sink_records;
use crate::transactions::partition::AbortedTxn;
use crate::{Broker, BrokerError, Result};

/// Most bytes of batches one append reads: the records are held in memory until committed.
const APPEND_BYTES: usize = 64 << 20;

fn lake_error(e: ductstream_sinks::SinkError) -> BrokerError {
    BrokerError::Storage(StorageError::Remote(format!("iceberg: {e}")))
}

/// Appends what `partition` has uploaded and the table does not hold yet; returns the records
/// appended.
pub async fn append_uploaded(broker: &Broker, tier: &TieredStorage, lake: &Lake, topic: &Topic, partition: i32) -> Result<usize> {
    let Some(manifest) = tier.manifest(topic, partition, false).await? else { return Ok(0) };
    if manifest.segments.is_empty() {
        return Ok(0);
    }
    let (stable, _) = broker.log.stable(topic, partition, manifest.end()).await?;
    let uploaded_end = manifest.end().min(stable);
    let log_start = broker.log.offsets(topic, partition).await?.log_start;
    let topic_id = topic.id.to_string();
    let from = lake.position(&topic.name, &topic_id, partition).await.map_err(lake_error)?.unwrap_or(log_start).max(log_start);
    if from >= uploaded_end {
        return Ok(0);
    }
    let (_, aborted) = broker.log.stable(topic, partition, from).await?;
    let mut records: Vec<SinkRecord> = Vec::new();
    let (mut at, mut bytes) = (from, 0usize);
    'read: while at < uploaded_end && bytes < APPEND_BYTES {
        let read = broker.log.read(topic, partition, at, 4 << 20).await?;
        if read.batches.is_empty() {
            break;
        }
        for batch in &read.batches {
            if batch.base_offset() >= uploaded_end {
                break 'read;
            }
            at = batch.next_offset();
            bytes += batch.len();
            let in_aborted = |a: &AbortedTxn| a.producer_id == batch.producer_id() && (a.first_offset..=a.last_offset).contains(&batch.base_offset());
            if batch.is_control() || (batch.is_transactional() && aborted.iter().any(in_aborted)) {
                continue;
            }
            records.extend(sink_records(&topic.name, partition, batch, from)?);
        }
    }
    let source = source_shape(broker, &topic.name).await?;
    lake.append(&topic.name, &topic_id, partition, &records, at, source.as_ref()).await.map_err(lake_error)?;
    Ok(records.len())
}

/// The source table's shape if `topic` is a CDC flow's table topic of JSON change events:
/// read from the source's catalog (so numeric(12,2) is a decimal, not text), or learnt from
/// the changes alone when the flow names no source DSN or the table is gone. A source that
/// cannot be reached puts the append off to a later pass rather than guess types for good.
async fn source_shape(broker: &Broker, topic: &str) -> Result<Option<SourceShape>> {
    for flow in flow_store::list(broker.storage().as_ref()).await? {
        let Some((schema, table)) = flow.source_table_of(topic) else { continue };
        if flow.record_format() != "json" {
            return Ok(None);
        }
        let Some(dsn) = flow.source.options.get("dsn") else { return Ok(Some(SourceShape::default())) };
        let shape = read_source_shape(dsn, &schema, &table).await.map_err(lake_error)?;
        return Ok(Some(shape.unwrap_or_default()));
    }
    Ok(None)
}
