//! Retention: every `--log-retention-check-interval-ms`, each broker deletes, in the
//! partitions it leads, the records whose batch's largest timestamp is older than the topic's
//! `retention.ms` (the broker's `--log-retention-ms` by default), and the oldest segments
//! beyond the topic's `retention.bytes` (where the store tracks sizes). Deletion goes through
//! DeleteRecords' path, so the log start moves, fetches below it get OFFSET_OUT_OF_RANGE and
//! other brokers hear of it. Topics whose `cleanup.policy` is `compact` alone are left to the
//! log cleaner (see `compaction`), as in Kafka.
//!
//! The cut is a prefix of the log: everything before the first batch whose timestamp is
//! within retention (a later batch with an old timestamp stays until the ones before it go).

use std::sync::Arc;

use ductstream_storage::Topic;

use crate::clock::now_ms;
use crate::topic_config::{deletes, retention_bytes, retention_ms};
use crate::{Broker, Result};

/// Runs until the broker shuts down.
pub async fn run(broker: Arc<Broker>) {
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = tokio::time::sleep(broker.config.retention_check_interval) => {}
        }
        if let Err(e) = enforce(&broker).await {
            tracing::warn!(error = %e, "retention check failed; trying again at the next one");
        }
    }
}

/// One pass over every topic.
pub async fn enforce(broker: &Broker) -> Result<()> {
    for topic in broker.storage().topics().await? {
        if !deletes(&topic.configs) {
            continue;
        }
        let cutoff = retention_ms(&topic.configs, &broker.config).map(|ms| now_ms().saturating_sub(ms));
        let max_bytes = retention_bytes(&topic.configs);
        for partition in 0..topic.partitions {
            if !broker.cluster.leads(topic.id, partition) {
                continue;
            }
            if let Some(cutoff) = cutoff {
                trim(broker, &topic, partition, cutoff).await?;
            }
            if let Some(max_bytes) = max_bytes {
                trim_to_size(broker, &topic, partition, max_bytes).await?;
            }
        }
    }
    Ok(())
}

/// Deletes the oldest segments of `partition` beyond `max_bytes`.
async fn trim_to_size(broker: &Broker, topic: &Topic, partition: i32, max_bytes: u64) -> Result<()> {
    let Some(cut) = broker.storage().retention_cut_for_bytes(&topic.name, partition, max_bytes).await? else { return Ok(()) };
    let log_start = broker.log.delete_records(topic, partition, cut).await?;
    tracing::info!(topic = %topic.name, partition, log_start, "size retention deleted the oldest segments");
    Ok(())
}

/// Deletes the records of `partition` before its first batch at or after `cutoff`.
async fn trim(broker: &Broker, topic: &Topic, partition: i32, cutoff: i64) -> Result<()> {
    let offsets = broker.log.offsets(topic, partition).await?;
    if offsets.log_start >= offsets.high_watermark {
        return Ok(());
    }
    let keep_from = match broker.storage().batch_at_time(&topic.name, partition, cutoff).await? {
        Some(batch) => batch.base_offset().min(offsets.high_watermark),
        None => offsets.high_watermark,
    };
    if keep_from <= offsets.log_start {
        return Ok(());
    }
    let log_start = broker.log.delete_records(topic, partition, keep_from).await?;
    tracing::info!(topic = %topic.name, partition, log_start, "retention deleted older records");
    Ok(())
}
