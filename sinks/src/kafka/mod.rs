//! The Kafka destination (also named `bufstream`): records produced to another Kafka-compatible
//! cluster through librdkafka, with an idempotent producer so retries inside a batch never
//! duplicate. A batch is written when every record of it is acknowledged.
//!
//! Options: `brokers` (required), `topic` (a template: `{topic}` the source topic, `{schema}`
//! and `{table}` the last two dot-separated parts of a CDC topic; default `{topic}`), `format`
//! (`raw`: key, value and headers as they are; `json`: the record as a JSON object; `proto`: as a
//! `ductstream.v1.SinkRecord` message), `compression`
//! (none, gzip, snappy, lz4, zstd), `acks` (all, 1, 0; idempotence needs all), `transactional`
//! (true: each batch is one transaction of the target cluster, which also writes the sink's next
//! offset for the partition to `offsets_topic`, default `ductstream-sink-offsets`, a compacted
//! topic the sink creates, keyed by sink, topic and partition; on start the sink goes on from
//! those offsets when they are further than the broker's, so read_committed consumers of the
//! target see every record exactly once, across crashes too). The offsets travel in a topic of
//! their own, not in the target's consumer-group offsets, because Kafka accepts transactional
//! offsets only for topics the target has, and the source topics are not the target's.

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::format::{record_json, record_message};
use crate::runtime::{BatchLimits, TopicPartition};
use crate::{Options, Refusal, Result, Sink, SinkBatch, SinkError, SinkRecord};

/// Default batches: 10,000 records, 16 MiB, or 200 ms.
pub const LIMITS: BatchLimits = BatchLimits { records: 10_000, bytes: 16 << 20, interval: Duration::from_millis(200) };

/// What a target record's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueFormat {
    /// The source record's value, as it is.
    Raw,
    /// The record as a JSON object.
    Json,
    /// The record as a `ductstream.v1.SinkRecord` message.
    Proto,
}

pub struct KafkaSink {
    producer: FutureProducer,
    brokers: String,
    topic: String,
    format: ValueFormat,
    /// With `transactional=true`: the topic each transaction writes the sink's offsets to.
    offsets_topic: Option<String>,
    sink_id: String,
}

/// How long a transactional call may take before it counts as failed (and is retried).
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

impl KafkaSink {
    pub fn new(mut options: Options, sink_id: &str) -> Result<KafkaSink> {
        let brokers = options.required("brokers")?;
        let topic = options.string_or("topic", "{topic}");
        let format = match options.choice("format", "raw", &["raw", "json", "proto"])?.as_str() {
            "json" => ValueFormat::Json,
            "proto" => ValueFormat::Proto,
            _ => ValueFormat::Raw,
        };
        let compression = options.choice("compression", "none", &["none", "gzip", "snappy", "lz4", "zstd"])?;
        let acks = options.choice("acks", "all", &["all", "-1", "1", "0"])?;
        let transactional = options.parse("transactional", false)?;
        let offsets_topic = options.string_or("offsets_topic", "ductstream-sink-offsets");
        options.finish()?;
        let idempotent = matches!(acks.as_str(), "all" | "-1");
        if transactional && !idempotent {
            return Err(SinkError::Config("kafka destination: transactional=true needs acks=all".into()));
        }
        let group = format!("ductstream-sink-{sink_id}");
        let mut config = ClientConfig::new();
        if transactional {
            // One id per sink: a restarted sink fences its previous incarnation, whose open
            // transaction the target aborts.
            config.set("transactional.id", &group).set("transaction.timeout.ms", "60000");
        }
        let producer: FutureProducer = config
            .set("bootstrap.servers", &brokers)
            .set("client.id", format!("ductstream-sink-{sink_id}"))
            .set("compression.type", &compression)
            .set("acks", &acks)
            .set("enable.idempotence", idempotent.to_string())
            .set("linger.ms", "5")
            // Failures come back within this, so the runtime can retry and show them.
            .set("message.timeout.ms", "30000")
            .create()
            .map_err(|e| SinkError::Config(format!("kafka destination: {e}")))?;
        let offsets_topic = transactional.then_some(offsets_topic);
        Ok(KafkaSink { producer, brokers, topic, format, offsets_topic, sink_id: sink_id.to_owned() })
    }

    /// The key of a partition's offset in the offsets topic.
    fn offset_key(&self, topic: &str, partition: i32) -> String {
        format!("{}\u{0}{topic}\u{0}{partition}", self.sink_id)
    }

    /// Creates the compacted offsets topic when the target lacks it.
    async fn ensure_offsets_topic(&self, name: &str) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .map_err(|e| SinkError::Config(format!("kafka destination: {e}")))?;
        let topic = NewTopic::new(name, 1, TopicReplication::Fixed(-1)).set("cleanup.policy", "compact");
        let created = admin.create_topics(&[topic], &AdminOptions::new()).await.map_err(classify)?;
        for outcome in created {
            match outcome {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(SinkError::Retriable(format!("kafka destination: cannot create {name}: {code}"))),
            }
        }
        Ok(())
    }

    /// Runs a blocking librdkafka call off the async threads.
    async fn blocking<T: Send + 'static>(f: impl FnOnce() -> KafkaResult<T> + Send + 'static) -> Result<T> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| SinkError::Retriable(format!("kafka destination: {e}")))?
            .map_err(classify)
    }

    fn target_topic(&self, record: &SinkRecord) -> String {
        let mut parts = record.topic.rsplitn(3, '.');
        let table = parts.next().unwrap_or_default();
        let schema = parts.next().unwrap_or_default();
        self.topic.replace("{topic}", &record.topic).replace("{schema}", schema).replace("{table}", table)
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn open(&mut self) -> Result<()> {
        let producer = self.producer.clone();
        let fetched = tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, Duration::from_secs(10)).map(|_| ()))
            .await
            .map_err(|e| SinkError::Retriable(format!("kafka destination: {e}")))?;
        fetched.map_err(|e| SinkError::Retriable(format!("cannot reach Kafka brokers {}: {e}", self.brokers)))?;
        if let Some(topic) = self.offsets_topic.clone() {
            self.ensure_offsets_topic(&topic).await?;
            // Fences an earlier incarnation of this sink: the target aborts its open transaction.
            let producer = self.producer.clone();
            Self::blocking(move || producer.init_transactions(TRANSACTION_TIMEOUT)).await?;
        }
        Ok(())
    }

    async fn write(&mut self, batch: &SinkBatch) -> Result<Vec<Refusal>> {
        let Some(offsets_topic) = self.offsets_topic.clone() else { return self.produce(batch).await };
        let producer = self.producer.clone();
        Self::blocking(move || producer.begin_transaction()).await?;
        let marker = (self.offset_key(&batch.topic, batch.partition), (batch.last_offset + 1).to_string());
        let produced = async {
            let refusals = self.produce(batch).await?;
            let record = FutureRecord::to(&offsets_topic).key(&marker.0).payload(&marker.1);
            let delivered = self.producer.send_result(record).map_err(|(e, _)| classify(e))?.await;
            match delivered {
                Ok(Ok(_)) => Ok(refusals),
                Ok(Err((e, _))) => Err(classify(e)),
                Err(_) => Err(SinkError::Retriable("the Kafka producer dropped a delivery".into())),
            }
        }
        .await;
        tracing::debug!(topic = %batch.topic, partition = batch.partition, first = batch.first_offset, last = batch.last_offset, ok = produced.is_ok(), "kafka transaction produced");
        let outcome = match produced {
            Ok(refusals) if refusals.is_empty() => {
                let producer = self.producer.clone();
                let committed = Self::blocking(move || producer.commit_transaction(TRANSACTION_TIMEOUT)).await;
                tracing::debug!(first = batch.first_offset, last = batch.last_offset, ok = committed.is_ok(), "kafka transaction committed");
                committed
            }
            // A transaction is all or nothing: a record the target will never take stops the
            // sink rather than being left out of it.
            Ok(refusals) => Err(SinkError::Fatal(format!(
                "kafka destination refused offset {} of a transactional batch: {}",
                refusals[0].offset, refusals[0].reason
            ))),
            Err(e) => Err(e),
        };
        if outcome.is_err() {
            let producer = self.producer.clone();
            let _ = Self::blocking(move || producer.abort_transaction(TRANSACTION_TIMEOUT)).await;
        }
        outcome.map(|()| Vec::new())
    }

    /// Reads the offsets topic to its end (read_committed: aborted transactions left out).
    async fn committed(&mut self, partitions: &[TopicPartition]) -> Result<Vec<(TopicPartition, i64)>> {
        let Some(offsets_topic) = self.offsets_topic.clone() else { return Ok(Vec::new()) };
        let wanted: std::collections::HashMap<String, TopicPartition> =
            partitions.iter().map(|(t, p)| (self.offset_key(t, *p), (t.clone(), *p))).collect();
        let brokers = self.brokers.clone();
        let found = Self::blocking(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", "ductstream-sink-offsets-reader")
                .set("enable.auto.commit", "false")
                .set("isolation.level", "read_committed")
                .set("enable.partition.eof", "true")
                .create()?;
            let mut list = TopicPartitionList::new();
            list.add_partition_offset(&offsets_topic, 0, Offset::Beginning)?;
            consumer.assign(&list)?;
            let mut latest = std::collections::HashMap::new();
            let deadline = std::time::Instant::now() + TRANSACTION_TIMEOUT;
            while std::time::Instant::now() < deadline {
                match consumer.poll(Duration::from_millis(500)) {
                    Some(Ok(m)) => {
                        let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
                        let value = m.payload().and_then(|v| std::str::from_utf8(v).ok()).and_then(|v| v.parse::<i64>().ok());
                        if let Some(offset) = value {
                            latest.insert(key, offset);
                        }
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) => return Ok(latest),
                    Some(Err(e)) => return Err(e),
                    None => {}
                }
            }
            Err(KafkaError::ClientCreation("the offsets topic was not read to its end in time".into()))
        })
        .await?;
        tracing::debug!(found = ?found, "offsets read from the target");
        Ok(found.into_iter().filter_map(|(key, offset)| wanted.get(&key).map(|tp| (tp.clone(), offset))).collect())
    }

    async fn close(&mut self) -> Result<()> {
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await;
        Ok(())
    }
}

impl KafkaSink {
    /// Produces every record of the batch and waits for each acknowledgement.
    async fn produce(&self, batch: &SinkBatch) -> Result<Vec<Refusal>> {
        let mut pending = Vec::with_capacity(batch.records.len());
        for record in &batch.records {
            let topic = self.target_topic(record);
            let value = match self.format {
                ValueFormat::Raw => record.value.as_ref().map(|v| v.to_vec()),
                ValueFormat::Json => Some(record_json(record).to_string().into_bytes()),
                ValueFormat::Proto => Some(prost::Message::encode_to_vec(&record_message(record))),
            };
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (key, v) in &record.headers {
                headers = headers.insert(Header { key, value: v.as_deref() });
            }
            let mut out = FutureRecord::<[u8], Vec<u8>>::to(&topic).timestamp(record.timestamp).headers(headers);
            if let Some(key) = record.key.as_deref() {
                out = out.key(key);
            }
            if let Some(value) = &value {
                out = out.payload(value);
            }
            let mut out = Some(out);
            let future = loop {
                let Some(next) = out.take() else { break None };
                match self.producer.send_result(next) {
                    Ok(future) => break Some(future),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        out = Some(back);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(classify(e)),
                }
            };
            pending.extend(future.map(|f| (record.offset, f)));
        }
        let mut refusals = Vec::new();
        for (offset, future) in pending {
            match future.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => match classify(e) {
                    SinkError::Encode(reason) => refusals.push(Refusal { offset, reason }),
                    other => return Err(other),
                },
                Err(_) => return Err(SinkError::Retriable("the Kafka producer dropped a delivery".into())),
            }
        }
        Ok(refusals)
    }

}

/// A record the cluster will never take is an `Encode` error (refused, dead-lettered); a topic
/// that is not there or not ours to write is fatal; the rest is retried.
fn classify(e: KafkaError) -> SinkError {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessage | RDKafkaErrorCode::InvalidRecord) => {
            SinkError::Encode(e.to_string())
        }
        Some(RDKafkaErrorCode::TopicAuthorizationFailed | RDKafkaErrorCode::ClusterAuthorizationFailed | RDKafkaErrorCode::UnknownTopic) => {
            SinkError::Fatal(format!("kafka destination: {e}"))
        }
        _ => SinkError::Retriable(format!("kafka destination: {e}")),
    }
}
