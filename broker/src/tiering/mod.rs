//! The remote tier's work on this broker: every `--tier-interval-ms`, for the partitions it
//! leads of topics with `remote.storage.enable`, upload the segments the store has sealed and
//! not uploaded yet, then let the store drop what is uploaded and past local retention, and
//! (with `--tier-iceberg-*`) append what was uploaded to the topic's Iceberg table (see
//! `lake`). Reading remote data needs nothing here: the store answers it (see
//! `ductstream_storage::tiered`).

#[cfg(feature = "sinks")]
mod lake;
mod settings;

use std::sync::Arc;
use std::time::Instant;

use ductstream_storage::tiered::TieredStorage;
use ductstream_storage::Topic;

pub use settings::{local_retention, remote_storage_enabled, TierArgs, TierDefaults, LOCAL_RETENTION_BYTES, LOCAL_RETENTION_MS, REMOTE_STORAGE_ENABLE};

use crate::clock::now_ms;
use crate::{Broker, Result};

/// The Iceberg tables tiered topics are appended to, when configured (`--tier-iceberg-*`).
#[cfg(feature = "sinks")]
pub type Lake = ductstream_sinks::iceberg::Lake;
#[cfg(not(feature = "sinks"))]
pub type Lake = std::convert::Infallible;

/// Runs until the broker shuts down.
pub async fn run(broker: Arc<Broker>, tier: Arc<TieredStorage>, lake: Option<Arc<Lake>>) {
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = tokio::time::sleep(broker.config.tier.interval) => {}
        }
        if let Err(e) = pass(&broker, &tier, lake.as_deref()).await {
            tracing::warn!(error = %e, "remote tier pass failed; trying again at the next one");
        }
    }
}

/// One pass over every tiered partition this broker leads.
pub async fn pass(broker: &Broker, tier: &TieredStorage, lake: Option<&Lake>) -> Result<()> {
    for topic in broker.storage().topics().await? {
        if !remote_storage_enabled(&topic.configs, &broker.config) {
            continue;
        }
        for partition in 0..topic.partitions {
            if !broker.cluster.leads(topic.id, partition) || broker.shutdown.is_cancelled() {
                continue;
            }
            // One partition's failure (an S3 outage) is logged; the others still get their turn.
            if let Err(e) = tier_partition(broker, tier, &topic, partition).await {
                broker.metrics.tier_upload_failed();
                tracing::warn!(topic = %topic.name, partition, error = %e, "remote tier upload failed; retried at the next pass");
            }
            #[cfg(feature = "sinks")]
            if let Some(lake) = lake {
                match lake::append_uploaded(broker, tier, lake, &topic, partition).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(topic = %topic.name, partition, records = n, "appended to the topic's Iceberg table"),
                    Err(e) => tracing::warn!(topic = %topic.name, partition, error = %e, "Iceberg append failed; retried at the next pass"),
                }
            }
            #[cfg(not(feature = "sinks"))]
            let _ = lake;
        }
    }
    Ok(())
}

async fn tier_partition(broker: &Broker, tier: &TieredStorage, topic: &Topic, partition: i32) -> Result<()> {
    loop {
        let started = Instant::now();
        let Some(segment) = tier.upload_next(topic, partition).await? else { break };
        broker.metrics.tier_uploaded(segment.bytes);
        tracing::info!(
            topic = %topic.name, partition, start = segment.start, end = segment.end, bytes = segment.bytes,
            ms = started.elapsed().as_millis() as u64, "uploaded to the remote tier"
        );
    }
    let retention = local_retention(&topic.configs, &broker.config, now_ms());
    if let Some(local_start) = tier.trim_local(topic, partition, retention).await? {
        tracing::info!(topic = %topic.name, partition, local_start, "local retention dropped uploaded segments");
    }
    Ok(())
}
