//! Time retention: every `--log-retention-check-interval-ms`, each broker deletes, in the
//! partitions it leads, the records whose batch's largest timestamp is older than the topic's
//! `retention.ms` (the broker's `--log-retention-ms` by default). Deletion goes through
//! DeleteRecords' path, so the log start moves, fetches below it get OFFSET_OUT_OF_RANGE and
//! other brokers hear of it.
//!
//! The cut is a prefix of the log: everything before the first batch whose timestamp is
//! within retention (a later batch with an old timestamp stays until the ones before it go).

use std::sync::Arc;

use ductstream_storage::Topic;

use crate::clock::now_ms;
use crate::topic_config::retention_ms;
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
        let Some(retention) = retention_ms(&topic.configs, &broker.config) else { continue };
        let cutoff = now_ms().saturating_sub(retention);
        for partition in 0..topic.partitions {
            if broker.cluster.leads(topic.id, partition) {
                trim(broker, &topic, partition, cutoff).await?;
            }
        }
    }
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
