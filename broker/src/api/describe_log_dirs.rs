//! DescribeLogDirs (v1–v4): the one log dir of this broker and the size of each partition it
//! leads, which tools (`kafka-log-dirs`) and web consoles show as topic sizes.
//!
//! The log dir is `--data-dir` for the embedded engines, with its volume's total and usable
//! bytes (v4); on Postgres (or in memory) the log is in no local folder, so the dir is named
//! `postgres` (`memory`) and the volume sizes are unknown (-1, which Kafka's clients read as
//! "not reported"). A
//! partition's size is the bytes of its stored batches from the log start on, as Kafka counts
//! its segments; the storage engines keep no running total, so the batches are read to count
//! them (a cost that grows with the log, paid only by this request).

use std::collections::HashMap;

use ductstream_storage::Storage;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_log_dirs_response::{DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::security::acl::Operation;
use crate::Result;

/// How much of a partition is read at a time while counting its bytes.
const READ_CHUNK_BYTES: usize = 8 << 20;

pub async fn handle(ctx: &Ctx, request: DescribeLogDirsRequest) -> Result<DescribeLogDirsResponse> {
    let broker = &ctx.broker;
    if !ctx.allowed_on_cluster(Operation::Describe) {
        // Kafka answers an unauthorized client with no log dirs (and the code, from v3).
        let response = DescribeLogDirsResponse::default();
        return Ok(if ctx.version >= 3 { response.with_error_code(ctx.code(ResponseError::ClusterAuthorizationFailed)) } else { response });
    }
    let mut result = DescribeLogDirsResult::default().with_total_bytes(-1).with_usable_bytes(-1);
    match &broker.config.log_volume {
        Some(dir) => {
            // Kafka names log dirs by absolute path.
            let shown = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            result = result.with_log_dir(StrBytes::from_string(shown.display().to_string()));
            // The volume's sizes are optional in the answer: a failure leaves them unknown.
            if let (Ok(total), Ok(usable)) = (fs2::total_space(dir), fs2::available_space(dir)) {
                result = result.with_total_bytes(clamp(total)).with_usable_bytes(clamp(usable));
            }
        }
        None => result = result.with_log_dir(StrBytes::from_string(broker.config.log_dir.clone())),
    }
    // None: every topic; otherwise the partitions asked for, by topic.
    let wanted: Option<HashMap<String, Vec<i32>>> =
        request.topics.map(|topics| topics.into_iter().map(|t| (t.topic.0.as_str().to_owned(), t.partitions)).collect());
    let storage = broker.storage();
    let mut topics = Vec::new();
    let sized: Result<()> = async {
        for topic in storage.topics().await? {
            let partitions: Vec<i32> = match &wanted {
                None => (0..topic.partitions).collect(),
                Some(w) => match w.get(&topic.name) {
                    Some(asked) => asked.iter().copied().filter(|p| (0..topic.partitions).contains(p)).collect(),
                    None => continue,
                },
            };
            let mut described = Vec::new();
            for p in partitions.into_iter().filter(|p| broker.cluster.leads(topic.id, *p)) {
                let size = partition_size(storage.as_ref(), &topic.name, p).await?;
                described.push(DescribeLogDirsPartition::default().with_partition_index(p).with_partition_size(size).with_offset_lag(0));
            }
            if !described.is_empty() {
                topics.push(DescribeLogDirsTopic::default().with_name(TopicName(StrBytes::from_string(topic.name))).with_partitions(described));
            }
        }
        Ok(())
    }
    .await;
    result = match sized {
        Ok(()) => result.with_topics(topics),
        Err(e) => {
            tracing::error!(error = %e, "cannot size the partitions for DescribeLogDirs");
            result.with_error_code(ctx.code(ResponseError::KafkaStorageError))
        }
    };
    Ok(DescribeLogDirsResponse::default().with_results(vec![result]))
}

/// The bytes of a partition's log: the store's own count when it keeps one, else the bytes of
/// its batches from the log start to the high watermark, read.
async fn partition_size(storage: &dyn Storage, topic: &str, partition: i32) -> Result<i64> {
    if let Some(bytes) = storage.partition_size(topic, partition).await? {
        return Ok(clamp(bytes));
    }
    let offsets = storage.offsets(topic, partition).await?;
    let mut at = offsets.log_start;
    let mut size: i64 = 0;
    while at < offsets.high_watermark {
        let batches = storage.read(topic, partition, at, READ_CHUNK_BYTES).await?;
        let Some(last) = batches.last() else { break };
        let next = last.next_offset();
        size = batches.iter().fold(size, |sum, b| sum.saturating_add(b.len() as i64));
        if next <= at {
            break; // no progress: never loop on a store that answers the same batch again
        }
        at = next;
    }
    Ok(size)
}

fn clamp(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}
