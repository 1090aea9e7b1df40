//! `consume`: read a topic from the beginning, all partitions assigned
//! explicitly (no consumer group), and measure throughput.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

use crate::client::{BenchConsumerContext, ClientOpts};
use crate::stats::{Report, Throughput};
use crate::topic::{partition_count, watermarks};

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    #[arg(long)]
    pub topic: String,
    /// Stop after this many messages [default: every message the topic holds
    /// when the run starts].
    #[arg(long)]
    pub messages: Option<u64>,
    /// Give up (and exit non-zero) after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
    /// `fetch.wait.max.ms`: how long the broker may hold a fetch for data.
    #[arg(long, default_value_t = 100)]
    pub fetch_wait_max_ms: u64,
}

/// How long one `poll` may block; bounds how late the timeout is noticed.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

pub struct ConsumeReport {
    topic: String,
    partitions: u32,
    target: u64,
    /// Messages the topic held at the start (sum of high - low watermarks).
    available: u64,
    /// Messages received from each partition.
    per_partition: Vec<u64>,
    throughput: Throughput,
    first_message_after: Option<Duration>,
    poll_errors: u64,
    first_poll_error: Option<String>,
    /// Messages at or below an offset already seen on their partition.
    repeated: u64,
    first_repeat: Option<String>,
    timed_out: bool,
}

pub fn run(opts: &ClientOpts, args: &ConsumeArgs) -> Result<ConsumeReport> {
    let consumer: BaseConsumer<BenchConsumerContext> = opts
        .assign_consumer_config(args.fetch_wait_max_ms)
        .create_with_context(BenchConsumerContext::default())
        .context("creating consumer")?;
    let partitions = partition_count(consumer.client(), &args.topic)?;
    let marks = watermarks(consumer.client(), &args.topic, partitions)?;
    let available: u64 = marks
        .iter()
        .map(|(low, high)| u64::try_from(high - low).unwrap_or(0))
        .sum();
    let target = args.messages.unwrap_or(available);

    let mut assignment = TopicPartitionList::with_capacity(partitions as usize);
    for partition in 0..partitions {
        assignment.add_partition_offset(
            &args.topic,
            i32::try_from(partition)?,
            Offset::Beginning,
        )?;
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.timeout_s);
    consumer
        .assign(&assignment)
        .context("assigning partitions")?;

    let mut received = 0u64;
    let mut bytes = 0u64;
    let mut first_message_at = None;
    let mut last_message_at = start;
    let mut poll_errors = 0u64;
    let mut first_poll_error = None;
    let mut last_offsets = vec![-1i64; partitions as usize];
    let mut per_partition = vec![0u64; partitions as usize];
    let mut repeated = 0u64;
    let mut first_repeat = None;
    while received < target && Instant::now() < deadline {
        match consumer.poll(POLL_INTERVAL) {
            Some(Ok(message)) => {
                let now = Instant::now();
                first_message_at.get_or_insert(now);
                last_message_at = now;
                let partition = usize::try_from(message.partition()).unwrap_or(usize::MAX);
                if let Some(last) = last_offsets.get_mut(partition) {
                    if message.offset() <= *last {
                        repeated += 1;
                        first_repeat.get_or_insert_with(|| {
                            format!(
                                "partition {partition} offset {} after offset {last}",
                                message.offset()
                            )
                        });
                        continue;
                    }
                    *last = message.offset();
                }
                if let Some(count) = per_partition.get_mut(partition) {
                    *count += 1;
                }
                received += 1;
                bytes += (message.payload_len() + message.key().map_or(0, <[u8]>::len)) as u64;
            }
            Some(Err(error)) => {
                poll_errors += 1;
                if first_poll_error.is_none() {
                    eprintln!("ductstream-bench: consume: {error}");
                    first_poll_error = Some(error.to_string());
                }
            }
            None => {}
        }
    }

    Ok(ConsumeReport {
        topic: args.topic.clone(),
        partitions,
        target,
        available,
        per_partition,
        throughput: Throughput {
            messages: received,
            bytes,
            elapsed: last_message_at.duration_since(start),
        },
        first_message_after: first_message_at.map(|t| t.duration_since(start)),
        poll_errors,
        first_poll_error,
        repeated,
        first_repeat,
        timed_out: received < target,
    })
}

impl Report for ConsumeReport {
    fn human(&self) -> String {
        let mut out = format!("consume: {}", self.throughput.human());
        out.push_str(&format!(
            "\n  topic={} partitions={} target={} available={}",
            self.topic, self.partitions, self.target, self.available
        ));
        if let Some(first) = self.first_message_after {
            out.push_str(&format!(
                " first message after {:.1} ms",
                first.as_secs_f64() * 1000.0
            ));
        }
        if self.poll_errors > 0 {
            out.push_str(&format!(
                "\n  {} poll errors, first: {}",
                self.poll_errors,
                self.first_poll_error.as_deref().unwrap_or("unknown")
            ));
        }
        if self.repeated > 0 {
            out.push_str(&format!(
                "\n  {} messages repeated an offset already seen (not counted), first: {}",
                self.repeated,
                self.first_repeat.as_deref().unwrap_or("unknown")
            ));
        }
        if let Some(failure) = self.failure() {
            out.push_str(&format!("\n  FAILED: {failure}"));
        }
        out
    }

    fn json(&self) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert("mode".into(), json!("consume"));
        obj.insert("topic".into(), json!(self.topic));
        obj.insert("partitions".into(), json!(self.partitions));
        obj.insert("target".into(), json!(self.target));
        obj.insert("available".into(), json!(self.available));
        obj.insert("per_partition".into(), json!(self.per_partition));
        self.throughput.add_json(&mut obj);
        obj.insert(
            "first_message_ms".into(),
            json!(self.first_message_after.map(|d| d.as_secs_f64() * 1000.0)),
        );
        obj.insert("poll_errors".into(), json!(self.poll_errors));
        obj.insert("first_poll_error".into(), json!(self.first_poll_error));
        obj.insert("repeated".into(), json!(self.repeated));
        obj.insert("first_repeat".into(), json!(self.first_repeat));
        Value::Object(obj)
    }

    fn failure(&self) -> Option<String> {
        self.timed_out.then(|| {
            format!(
                "timed out: received {} of {} messages",
                self.throughput.messages, self.target
            )
        })
    }
}
