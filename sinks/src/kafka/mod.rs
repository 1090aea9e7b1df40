//! The Kafka destination (also named `bufstream`): records produced to another Kafka-compatible
//! cluster through librdkafka, with an idempotent producer so retries inside a batch never
//! duplicate. A batch is written when every record of it is acknowledged.
//!
//! Options: `brokers` (required), `topic` (a template: `{topic}` the source topic, `{schema}`
//! and `{table}` the last two dot-separated parts of a CDC topic; default `{topic}`), `format`
//! (`raw`: key, value and headers as they are; `json`: the record as a JSON object), `compression`
//! (none, gzip, snappy, lz4, zstd), `acks` (all, 1, 0; idempotence needs all).

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::format::record_json;
use crate::runtime::BatchLimits;
use crate::{Options, Refusal, Result, Sink, SinkBatch, SinkError, SinkRecord};

/// Default batches: 10,000 records, 16 MiB, or 200 ms.
pub const LIMITS: BatchLimits = BatchLimits { records: 10_000, bytes: 16 << 20, interval: Duration::from_millis(200) };

pub struct KafkaSink {
    producer: FutureProducer,
    brokers: String,
    topic: String,
    json: bool,
}

impl KafkaSink {
    pub fn new(mut options: Options, sink_id: &str) -> Result<KafkaSink> {
        let brokers = options.required("brokers")?;
        let topic = options.string_or("topic", "{topic}");
        let json = options.choice("format", "raw", &["raw", "json"])? == "json";
        let compression = options.choice("compression", "none", &["none", "gzip", "snappy", "lz4", "zstd"])?;
        let acks = options.choice("acks", "all", &["all", "-1", "1", "0"])?;
        options.finish()?;
        let idempotent = matches!(acks.as_str(), "all" | "-1");
        let producer: FutureProducer = ClientConfig::new()
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
        Ok(KafkaSink { producer, brokers, topic, json })
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
        fetched.map_err(|e| SinkError::Retriable(format!("cannot reach Kafka brokers {}: {e}", self.brokers)))
    }

    async fn write(&mut self, batch: &SinkBatch) -> Result<Vec<Refusal>> {
        let mut pending = Vec::with_capacity(batch.records.len());
        for record in &batch.records {
            let topic = self.target_topic(record);
            let value = if self.json { Some(record_json(record).to_string().into_bytes()) } else { record.value.as_ref().map(|v| v.to_vec()) };
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

    async fn close(&mut self) -> Result<()> {
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await;
        Ok(())
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
