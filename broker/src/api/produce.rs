//! Produce (v3–v9): validate each partition's record batch, append it, and answer once it is
//! durable (acks 1 or all) or not at all (acks 0).

use std::sync::Arc;

use bytes::Bytes;
use ductstream_storage::{Batch, BatchError};
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use super::{Ctx, Outcome};
use crate::clock::now_ms;
use crate::committer::Durable;
use crate::log::Turn;
use crate::record_checks::{self, RecordError, Rejected};
use crate::security::acl::{Operation, ResourceType};
use crate::security::not_authorized;
use crate::{topic_config, BrokerError, Result};

/// A partition's batch, checked and queued in request order, not yet stored.
struct Accepted {
    batch: Batch,
    log_append_time: Option<i64>,
    turn: Turn,
}

/// Why a partition's batch was not appended: a code, its message, and (KIP-467) the records
/// that caused it, by index in the batch.
struct Refusal {
    code: i16,
    message: String,
    records: Vec<RecordError>,
}

impl From<BrokerError> for Refusal {
    fn from(e: BrokerError) -> Refusal {
        // The code travels in its own field; the message is the text alone, as Kafka sends it.
        let message = match &e {
            BrokerError::Kafka { message, .. } => message.clone(),
            other => other.to_string(),
        };
        Refusal { code: e.code().code(), message, records: Vec::new() }
    }
}

impl From<Rejected> for Refusal {
    fn from(r: Rejected) -> Refusal {
        Refusal { code: r.code.code(), message: r.message, records: r.records }
    }
}

enum Pending {
    Failed(Refusal),
    Appended { base_offset: i64, log_start: i64, log_append_time: Option<i64>, durable: Durable },
}

pub async fn handle(ctx: &Arc<Ctx>, request: ProduceRequest) -> Result<Outcome> {
    let acks = request.acks;
    let refused = if !matches!(acks, -1..=1) {
        Some((ResponseError::InvalidRequiredAcks, format!("acks must be -1, 0 or 1, not {acks}")))
    } else {
        None
    };
    let transactional_id = request.transactional_id.as_ref().map(|t| t.0.to_string()).filter(|t| !t.is_empty());
    // Check every batch and take its partition's next turn now, in request order; the appends
    // themselves run in a task of their own, so the connection can read the next request while
    // these are with storage, and partitions are appended concurrently.
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for topic_data in request.topic_data {
        let name = topic_data.name.0.as_str().to_owned();
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let accepted = match &refused {
                Some((code, message)) => Err(Refusal::from(BrokerError::kafka(*code, message.clone()))),
                None => accept(ctx, &name, data.index, data.records, transactional_id.as_deref()).await,
            };
            if let Err(e) = &accepted {
                tracing::debug!(topic = %name, partition = data.index, code = e.code, error = %e.message, "produce refused");
            }
            partitions.push((data.index, accepted));
        }
        topics.push((topic_data.name, partitions));
    }
    let ctx = ctx.clone();
    let appended = async move {
        let mut out = Vec::with_capacity(topics.len());
        for (name, partitions) in topics {
            let appends = partitions.into_iter().map(|(index, accepted)| {
                let ctx = ctx.clone();
                async move {
                    let pending = match accepted {
                        Ok(a) => store(&ctx, a).await.unwrap_or_else(|e| Pending::Failed(e.into())),
                        Err(refusal) => Pending::Failed(refusal),
                    };
                    (index, pending)
                }
            });
            out.push((name, futures::future::join_all(appends).await));
        }
        (ctx, out)
    };
    // Start the appends now, not when the writer gets to this response.
    let appended = tokio::spawn(appended);
    if acks == 0 {
        // Nobody waits for the answer; the appends still happen, in their turns.
        return Ok(Outcome::Silent);
    }
    Ok(Outcome::Later(
        async move {
            let (ctx, topics) = match appended.await {
                Ok(done) => done,
                Err(e) => {
                    tracing::error!(error = %e, "produce task failed");
                    return ResponseKind::Produce(ProduceResponse::default());
                }
            };
            let mut responses = Vec::with_capacity(topics.len());
            for (name, partitions) in topics {
                let mut out = Vec::with_capacity(partitions.len());
                for (index, pending) in partitions {
                    out.push(answer(&ctx, index, pending).await);
                }
                responses.push(TopicProduceResponse::default().with_name(name).with_partition_responses(out));
            }
            ResponseKind::Produce(ProduceResponse::default().with_responses(responses))
        }
        .boxed(),
    ))
}

/// Checks a partition's records and takes the partition's next append turn. A transactional
/// batch must come from the transactional id's current producer, for a partition added to its
/// open transaction.
async fn accept(ctx: &Ctx, topic: &str, partition: i32, records: Option<Bytes>, transactional_id: Option<&str>) -> Result<Accepted, Refusal> {
    let broker = &ctx.broker;
    if let Some(id) = transactional_id
        && !ctx.allowed(Operation::Write, ResourceType::TransactionalId, id)
    {
        return Err(not_authorized(ResourceType::TransactionalId, id).into());
    }
    if !ctx.allowed(Operation::Write, ResourceType::Topic, topic) {
        return Err(not_authorized(ResourceType::Topic, topic).into());
    }
    let topic = broker.topic_or_create(topic, false).await?;
    if partition < 0 || partition >= topic.partitions {
        return Err(BrokerError::kafka(ResponseError::UnknownTopicOrPartition, format!("no partition {partition}")).into());
    }
    if !broker.cluster.leads(topic.id, partition) {
        let leader = broker.cluster.leader(topic.id, partition);
        return Err(BrokerError::kafka(ResponseError::NotLeaderOrFollower, format!("broker {} leads this partition", leader.node_id)).into());
    }
    let mut records = records.unwrap_or_default();
    let max = topic_config::max_message_bytes(&topic.configs, &broker.config);
    if records.len() > max.max(0) as usize {
        return Err(BrokerError::kafka(
            ResponseError::MessageTooLarge,
            format!("batch of {} bytes exceeds max.message.bytes {max}", records.len()),
        )
        .into());
    }
    let batch = match Batch::split_first(&mut records) {
        None => return Err(BrokerError::kafka(ResponseError::CorruptMessage, "no record batch").into()),
        Some(parsed) => parsed.map_err(batch_error)?,
    };
    if !records.is_empty() {
        return Err(BrokerError::kafka(ResponseError::InvalidRecord, "a partition must get exactly one record batch").into());
    }
    if batch.is_control() {
        return Err(BrokerError::kafka(ResponseError::InvalidRecord, "control batches are written by the broker, not produced").into());
    }
    match (batch.is_transactional(), transactional_id) {
        (true, Some(id)) => broker.txns.check_produce(id, batch.producer_id(), batch.producer_epoch(), &topic.name, partition).await?,
        (true, None) => {
            return Err(BrokerError::kafka(ResponseError::InvalidTxnState, "a transactional batch needs the request's transactional id").into());
        }
        (false, _) => {}
    }
    if let Some(rejected) = record_checks::check(&batch, &topic.name, partition, &topic.configs, now_ms())? {
        return Err(rejected.into());
    }
    let log_append_time = topic_config::log_append_time(&topic.configs).then(now_ms);
    let batch = match log_append_time {
        Some(time) => batch.with_log_append_time(time),
        None => batch,
    };
    let turn = broker.log.take_turn(&topic, partition).await?;
    Ok(Accepted { batch, log_append_time, turn })
}

/// Appends an accepted batch when its turn comes.
async fn store(ctx: &Ctx, a: Accepted) -> Result<Pending> {
    let appended = ctx.broker.log.append(a.batch, a.turn).await?;
    Ok(Pending::Appended {
        base_offset: appended.base_offset,
        log_start: appended.log_start,
        log_append_time: a.log_append_time,
        durable: appended.durable,
    })
}

fn batch_error(e: BatchError) -> BrokerError {
    let code = match e {
        BatchError::UnsupportedMagic(_) | BatchError::BadOffsets { .. } | BatchError::UnknownCompression(_) => {
            ResponseError::InvalidRecord
        }
        _ => ResponseError::CorruptMessage,
    };
    BrokerError::kafka(code, e.to_string())
}

async fn answer(ctx: &Ctx, index: i32, pending: Pending) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(index);
    let (code, message, records) = match pending {
        Pending::Failed(Refusal { code, message, records }) => (code, message, records),
        Pending::Appended { base_offset, log_start, log_append_time, durable } => match durable.wait().await {
            Ok(()) => {
                return response
                    .with_base_offset(base_offset)
                    .with_log_start_offset(log_start)
                    .with_log_append_time_ms(log_append_time.unwrap_or(-1));
            }
            Err(e) => (ResponseError::KafkaStorageError.code(), e, Vec::new()),
        },
    };
    if let Some(error) = kafka_protocol::error::ResponseError::try_from_code(code) {
        ctx.code(error);
    }
    let response = response.with_error_code(code).with_base_offset(-1);
    if ctx.version < 8 {
        return response;
    }
    let records = records
        .into_iter()
        .map(|e| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(e.batch_index)
                .with_batch_index_error_message(Some(StrBytes::from_string(e.message)))
        })
        .collect();
    response.with_record_errors(records).with_error_message(Some(StrBytes::from_string(message)))
}
