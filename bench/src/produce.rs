//! `produce`: send N messages as fast as the producer allows and measure
//! throughput and per-message delivery latency.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::{Value, json};

use crate::client::{Acks, ClientOpts, Compression, ProducerSettings};
use crate::delivery::{DeliverySnapshot, DeliveryTracker};
use crate::payload::filler;
use crate::stats::{Report, Throughput};
use crate::topic::ensure_topic_with;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to produce to.
    #[arg(long)]
    pub topic: String,
    /// Partitions to create the topic with when it does not exist.
    #[arg(long, default_value_t = 8)]
    pub partitions: u32,
    /// Number of messages to send.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Keys to cycle through (`key-0` … `key-<N-1>`, message i gets key i mod N), as updates to
    /// N rows would; 0 sends messages without a key.
    #[arg(long, default_value_t = 0)]
    pub keys: u64,
    /// A topic config for the topic when it is created, `name=value` (repeatable), e.g.
    /// `--topic-config cleanup.policy=compact`.
    #[arg(long = "topic-config", value_parser = parse_config)]
    pub topic_configs: Vec<(String, String)>,
    #[arg(long, value_enum, default_value_t = Acks::All)]
    pub acks: Acks,
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Producer batch size in bytes (librdkafka `batch.size`).
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_size: u64,
    /// Give up on deliveries still outstanding this long after the last send.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
    /// Records per transaction: with N > 0 the producer is transactional (`transactional.id`)
    /// and commits every N records; a record's latency then runs to its delivery report,
    /// and the throughput includes the commits.
    #[arg(long, default_value_t = 0)]
    pub transaction_size: u64,
}

fn parse_config(text: &str) -> Result<(String, String), String> {
    text.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("{text:?} is not name=value"))
}

/// Waits until every record sent has its delivery report. commit_transaction flushes first,
/// and the crate's flush, called beside the polling thread, sleeps in 100 ms polls that the
/// polling thread has already served: that alone would cap a transactional run at ten
/// transactions a second.
fn drain(producer: &ThreadedProducer<DeliveryTracker>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_micros(100));
    }
}

/// How long to back off when librdkafka's local queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_micros(200);

pub struct ProduceReport {
    topic: String,
    settings: String,
    /// Messages handed to librdkafka.
    sent: u64,
    requested: u64,
    throughput: Throughput,
    delivery: DeliverySnapshot,
    /// A `send` that failed outright (not a failed delivery).
    send_error: Option<String>,
    /// Deliveries still outstanding when the flush timed out.
    undelivered: u64,
}

pub fn run(opts: &ClientOpts, args: &ProduceArgs) -> Result<ProduceReport> {
    ensure_topic_with(opts, &args.topic, args.partitions, &args.topic_configs)?;

    let settings = ProducerSettings {
        acks: args.acks,
        compression: args.compression,
        linger_ms: args.linger_ms,
        batch_size: args.batch_size,
        message_timeout_ms: args.timeout_s.saturating_mul(1000),
    };
    let epoch = Instant::now();
    let mut config = settings.to_config();
    let transactional = args.transaction_size > 0;
    if transactional {
        config.push(("enable.idempotence", "true".to_string()));
        config.push(("transactional.id", format!("ductstream-bench-{}", args.topic)));
    }
    let producer: ThreadedProducer<DeliveryTracker> = opts
        .config(&config)
        .create_with_context(DeliveryTracker::new(epoch)?)
        .context("creating producer")?;
    let tracker = producer.context();
    let payload = filler(args.size);
    let timeout = Duration::from_secs(args.timeout_s);
    if transactional {
        producer.init_transactions(timeout).context("init_transactions")?;
    }

    let start = Instant::now();
    let mut sent = 0u64;
    let mut send_error = None;
    'messages: while sent < args.messages {
        if transactional && sent.is_multiple_of(args.transaction_size) {
            if sent > 0 {
                drain(&producer, timeout);
                producer.commit_transaction(timeout).context("commit_transaction")?;
            }
            producer.begin_transaction().context("begin_transaction")?;
        }
        let key = (args.keys > 0).then(|| format!("key-{}", sent % args.keys));
        let mut record =
            BaseRecord::<str, [u8], usize>::with_opaque_to(&args.topic, tracker.stamp())
                .payload(payload.as_slice());
        if let Some(key) = &key {
            record = record.key(key.as_str());
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    thread::sleep(QUEUE_FULL_BACKOFF);
                    record = returned;
                    // Latency counts from the send that librdkafka accepted.
                    record.delivery_opaque = tracker.stamp();
                }
                Err((error, _)) => {
                    send_error = Some(format!("send of message {sent} failed: {error}"));
                    break 'messages;
                }
            }
        }
        sent += 1;
    }

    if transactional && sent > 0 {
        drain(&producer, timeout);
        producer.commit_transaction(timeout).context("commit_transaction")?;
    }
    let flushed = producer.flush(timeout);
    // flush() returns once librdkafka's queue is empty; the last delivery
    // callbacks may still be running on the polling thread.
    let deadline = Instant::now() + Duration::from_secs(1);
    while tracker.completed() < sent && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    let end = Instant::now();
    let delivery = tracker.snapshot();
    let undelivered = sent.saturating_sub(tracker.completed());
    if let Err(error) = flushed {
        eprintln!("ductstream-bench: flush: {error}");
    }

    Ok(ProduceReport {
        topic: args.topic.clone(),
        settings: format!(
            "size={} acks={} compression={} linger.ms={} batch.size={}{}{}",
            args.size,
            args.acks.config_value(),
            args.compression.config_value(),
            args.linger_ms,
            args.batch_size,
            if transactional { format!(" transaction.size={}", args.transaction_size) } else { String::new() },
            if args.keys > 0 { format!(" keys={}", args.keys) } else { String::new() }
        ),
        sent,
        requested: args.messages,
        throughput: Throughput {
            messages: delivery.delivered,
            bytes: delivery.bytes,
            // The last delivery report marks the end, not our wait for it.
            elapsed: delivery.last_report.unwrap_or(end).duration_since(start),
        },
        delivery,
        send_error,
        undelivered,
    })
}

impl Report for ProduceReport {
    fn human(&self) -> String {
        let mut out = format!(
            "produce: {}; delivery latency ms {}",
            self.throughput.human(),
            self.delivery.latency.human(false)
        );
        out.push_str(&format!("\n  topic={} {}", self.topic, self.settings));
        if let Some(failure) = self.failure() {
            out.push_str(&format!("\n  FAILED: {failure}"));
        }
        out
    }

    fn json(&self) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert("mode".into(), json!("produce"));
        obj.insert("topic".into(), json!(self.topic));
        obj.insert("settings".into(), json!(self.settings));
        obj.insert("requested".into(), json!(self.requested));
        obj.insert("sent".into(), json!(self.sent));
        self.throughput.add_json(&mut obj);
        obj.insert("delivery_latency".into(), self.delivery.latency.json());
        obj.insert("failed".into(), json!(self.delivery.failed));
        obj.insert("first_error".into(), json!(self.delivery.first_error));
        obj.insert("undelivered".into(), json!(self.undelivered));
        Value::Object(obj)
    }

    fn failure(&self) -> Option<String> {
        let mut problems = Vec::new();
        if let Some(error) = &self.send_error {
            problems.push(error.clone());
        }
        problems.extend(self.delivery.failure());
        if self.undelivered > 0 {
            problems.push(format!(
                "{} messages still undelivered at timeout",
                self.undelivered
            ));
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }
}
