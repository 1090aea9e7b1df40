//! `latency`: end-to-end (produce to consume) latency at a fixed rate.
//!
//! One process runs both sides: a consumer assigned to every partition at
//! the high watermarks read before producing, and a producer sending at
//! `--rate` for `--seconds`. Each payload starts with a run id, a sequence
//! number and the send time in nanoseconds since an `Instant` both sides
//! share, so the consumer computes latency without clock skew and can tell
//! lost and duplicated messages apart from other traffic on the topic.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

use crate::client::{Acks, BenchConsumerContext, ClientOpts, Compression, ProducerSettings};
use crate::delivery::{DeliverySnapshot, DeliveryTracker};
use crate::payload::{Stamp, filler};
use crate::stats::{LatencyHistogram, LatencySummary, Report};
use crate::topic::{REQUEST_TIMEOUT, ensure_topic, watermarks};

#[derive(Debug, Args)]
pub struct LatencyArgs {
    /// Topic to produce to and consume from.
    #[arg(long)]
    pub topic: String,
    /// Partitions to create the topic with when it does not exist.
    #[arg(long, default_value_t = 8)]
    pub partitions: u32,
    /// Messages per second to send.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: u64,
    /// How long to send for.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub seconds: u64,
    /// Value size in bytes (at least the 24-byte stamp).
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    #[arg(long, value_enum, default_value_t = Acks::All)]
    pub acks: Acks,
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    #[arg(long, default_value_t = 0)]
    pub linger_ms: u64,
    /// `fetch.wait.max.ms` of the consumer.
    #[arg(long, default_value_t = 100)]
    pub fetch_wait_max_ms: u64,
    /// How long the consumer polls before sending starts, so connection
    /// set-up does not count as latency.
    #[arg(long, default_value_t = 1000)]
    pub warmup_ms: u64,
    /// After the last delivery, wait at most this long for the consumer to
    /// receive everything.
    #[arg(long, default_value_t = 30)]
    pub timeout_s: u64,
}

/// State the producer side hands to the consumer thread.
struct Shared {
    /// Messages the consumer should receive; unknown (MAX) while producing.
    expected: AtomicU64,
    /// Nanoseconds since the epoch after which the consumer gives up; 0 while
    /// producing.
    deadline_nanos: AtomicU64,
    /// Set when the producer side failed; the consumer stops at once.
    abort: AtomicBool,
}

/// What the consumer thread saw.
struct Received {
    latency: LatencySummary,
    unique: u64,
    duplicates: u64,
    /// Messages on the topic that are not from this run.
    foreign: u64,
    poll_errors: u64,
    first_poll_error: Option<String>,
}

pub struct LatencyReport {
    topic: String,
    settings: String,
    target_rate: u64,
    sent: u64,
    send_elapsed: Duration,
    send_error: Option<String>,
    delivery: DeliverySnapshot,
    received: Received,
}

pub fn run(opts: &ClientOpts, args: &LatencyArgs) -> Result<LatencyReport> {
    if args.size < Stamp::LEN {
        bail!(
            "--size must be at least {} bytes for the latency stamp",
            Stamp::LEN
        );
    }
    let planned = args
        .rate
        .checked_mul(args.seconds)
        .ok_or_else(|| anyhow!("--rate times --seconds overflows"))?;
    let partitions = ensure_topic(opts, &args.topic, args.partitions)?;

    let consumer: BaseConsumer<BenchConsumerContext> = opts
        .assign_consumer_config(args.fetch_wait_max_ms)
        .create_with_context(BenchConsumerContext::default())
        .context("creating consumer")?;
    let mut assignment = TopicPartitionList::with_capacity(partitions as usize);
    for (partition, (_, high)) in watermarks(consumer.client(), &args.topic, partitions)?
        .into_iter()
        .enumerate()
    {
        assignment.add_partition_offset(
            &args.topic,
            i32::try_from(partition)?,
            Offset::Offset(high),
        )?;
    }
    consumer
        .assign(&assignment)
        .context("assigning partitions")?;

    let settings = ProducerSettings {
        acks: args.acks,
        compression: args.compression,
        linger_ms: args.linger_ms,
        batch_size: 1_000_000,
        message_timeout_ms: args.timeout_s.saturating_mul(1000),
    };
    let epoch = Instant::now();
    let producer: ThreadedProducer<DeliveryTracker> = opts
        .config(&settings.to_config())
        .create_with_context(DeliveryTracker::new(epoch)?)
        .context("creating producer")?;
    // Connect and learn the partition leaders before the clock starts.
    producer
        .client()
        .fetch_metadata(Some(&args.topic), REQUEST_TIMEOUT)
        .context("fetching metadata with the producer")?;

    let run_id = run_id();
    let shared = Shared {
        expected: AtomicU64::new(u64::MAX),
        deadline_nanos: AtomicU64::new(0),
        abort: AtomicBool::new(false),
    };
    let warmup = Duration::from_millis(args.warmup_ms);

    let (sent, send_elapsed, send_error, received) = thread::scope(|scope| -> Result<_> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let consumer_thread = scope
            .spawn(|| consume_stamps(&consumer, run_id, planned, epoch, warmup, ready_tx, &shared));
        if ready_rx.recv_timeout(warmup + REQUEST_TIMEOUT).is_err() {
            shared.abort.store(true, Ordering::Release);
        }

        let (sent, send_elapsed, send_error) = if shared.abort.load(Ordering::Acquire) {
            (
                0,
                Duration::ZERO,
                Some("consumer did not start".to_string()),
            )
        } else {
            send_paced(
                &producer,
                &args.topic,
                run_id,
                planned,
                args.rate,
                args.size,
            )
        };
        if let Err(error) = producer.flush(Duration::from_secs(args.timeout_s)) {
            eprintln!("ductstream-bench: flush: {error}");
        }
        let tracker = producer.context();
        let delivered = tracker.snapshot().delivered;
        shared.expected.store(delivered, Ordering::Release);
        let deadline = epoch.elapsed() + Duration::from_secs(args.timeout_s);
        shared.deadline_nanos.store(
            u64::try_from(deadline.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Release,
        );
        if send_error.is_some() && delivered == 0 {
            shared.abort.store(true, Ordering::Release);
        }
        let received = consumer_thread
            .join()
            .map_err(|_| anyhow!("consumer thread panicked"))??;
        Ok((sent, send_elapsed, send_error, received))
    })?;

    Ok(LatencyReport {
        topic: args.topic.clone(),
        settings: format!(
            "size={} acks={} compression={} linger.ms={} fetch.wait.max.ms={} partitions={}",
            args.size,
            args.acks.config_value(),
            args.compression.config_value(),
            args.linger_ms,
            args.fetch_wait_max_ms,
            partitions
        ),
        target_rate: args.rate,
        sent,
        send_elapsed,
        send_error,
        delivery: producer.context().snapshot(),
        received,
    })
}

/// Sends `planned` stamped messages at `rate` per second. Returns how many
/// were sent, how long sending took, and the error that stopped it early.
fn send_paced(
    producer: &ThreadedProducer<DeliveryTracker>,
    topic: &str,
    run_id: u64,
    planned: u64,
    rate: u64,
    size: usize,
) -> (u64, Duration, Option<String>) {
    let tracker = producer.context();
    let mut payload = filler(size);
    let start = Instant::now();
    let due_at = |seq: u64| start + Duration::from_nanos(seq.saturating_mul(1_000_000_000) / rate);
    let mut seq = 0u64;
    while seq < planned {
        let now = Instant::now();
        let next = due_at(seq);
        if next > now {
            thread::sleep(next - now);
            continue;
        }
        let stamp = tracker.stamp();
        Stamp {
            run_id,
            seq,
            sent_nanos: stamp as u64,
        }
        .write(&mut payload);
        let record =
            BaseRecord::<(), [u8], usize>::with_opaque_to(topic, stamp).payload(payload.as_slice());
        match producer.send(record) {
            Ok(()) => seq += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                // Falling behind; retry with a fresh stamp.
                thread::sleep(Duration::from_micros(200));
            }
            Err((error, _)) => {
                return (
                    seq,
                    start.elapsed(),
                    Some(format!("send of message {seq} failed: {error}")),
                );
            }
        }
    }
    (seq, start.elapsed(), None)
}

/// The consumer thread: warm up, signal ready, then record the latency of
/// every message of this run until all expected ones arrived or time is up.
fn consume_stamps(
    consumer: &BaseConsumer<BenchConsumerContext>,
    run_id: u64,
    planned: u64,
    epoch: Instant,
    warmup: Duration,
    ready: mpsc::Sender<()>,
    shared: &Shared,
) -> Result<Received> {
    let mut latency = LatencyHistogram::new()?;
    let mut seen = vec![false; usize::try_from(planned)?];
    let mut received = Received {
        latency: LatencySummary::default(),
        unique: 0,
        duplicates: 0,
        foreign: 0,
        poll_errors: 0,
        first_poll_error: None,
    };
    let warmup_end = Instant::now() + warmup;
    let mut ready = Some(ready);
    loop {
        if Instant::now() >= warmup_end
            && let Some(tx) = ready.take()
        {
            // The producer side may have given up waiting; nothing to do then.
            let _ = tx.send(());
        }
        if shared.abort.load(Ordering::Acquire)
            || received.unique >= shared.expected.load(Ordering::Acquire)
        {
            break;
        }
        let deadline = shared.deadline_nanos.load(Ordering::Acquire);
        if deadline != 0 && epoch.elapsed().as_nanos() >= u128::from(deadline) {
            break;
        }
        match consumer.poll(Duration::from_millis(20)) {
            Some(Ok(message)) => {
                let arrived = epoch.elapsed();
                let stamp = message.payload().and_then(Stamp::read);
                match stamp {
                    Some(stamp) if stamp.run_id == run_id && stamp.seq < planned => {
                        let slot = &mut seen[stamp.seq as usize];
                        if *slot {
                            received.duplicates += 1;
                        } else {
                            *slot = true;
                            received.unique += 1;
                            latency.record(
                                arrived.saturating_sub(Duration::from_nanos(stamp.sent_nanos)),
                            );
                        }
                    }
                    _ => received.foreign += 1,
                }
            }
            Some(Err(error)) => {
                received.poll_errors += 1;
                if received.first_poll_error.is_none() {
                    eprintln!("ductstream-bench: latency consumer: {error}");
                    received.first_poll_error = Some(error.to_string());
                }
            }
            None => {}
        }
    }
    received.latency = latency.summary();
    Ok(received)
}

/// Tells this run's messages apart from other traffic on the topic.
fn run_id() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 40)
}

impl LatencyReport {
    fn achieved_rate(&self) -> f64 {
        let secs = self.send_elapsed.as_secs_f64();
        if secs > 0.0 {
            self.sent as f64 / secs
        } else {
            0.0
        }
    }

    fn lost(&self) -> u64 {
        self.delivery.delivered.saturating_sub(self.received.unique)
    }
}

impl Report for LatencyReport {
    fn human(&self) -> String {
        let mut out = format!(
            "latency: {} msgs in {:.2} s at {:.0} msgs/s (target {}), received {} (lost {}, duplicates {}); \
             end-to-end ms {}; delivery ms {}",
            self.sent,
            self.send_elapsed.as_secs_f64(),
            self.achieved_rate(),
            self.target_rate,
            self.received.unique,
            self.lost(),
            self.received.duplicates,
            self.received.latency.human(true),
            self.delivery.latency.human(true),
        );
        out.push_str(&format!("\n  topic={} {}", self.topic, self.settings));
        if self.received.foreign > 0 {
            out.push_str(&format!(
                "\n  ignored {} messages from other producers",
                self.received.foreign
            ));
        }
        if self.received.poll_errors > 0 {
            out.push_str(&format!(
                "\n  {} poll errors, first: {}",
                self.received.poll_errors,
                self.received
                    .first_poll_error
                    .as_deref()
                    .unwrap_or("unknown")
            ));
        }
        if let Some(failure) = self.failure() {
            out.push_str(&format!("\n  FAILED: {failure}"));
        }
        out
    }

    fn json(&self) -> Value {
        json!({
            "mode": "latency",
            "topic": self.topic,
            "settings": self.settings,
            "target_rate": self.target_rate,
            "sent": self.sent,
            "send_elapsed_s": self.send_elapsed.as_secs_f64(),
            "achieved_rate": self.achieved_rate(),
            "delivered": self.delivery.delivered,
            "delivery_failed": self.delivery.failed,
            "received": self.received.unique,
            "lost": self.lost(),
            "duplicates": self.received.duplicates,
            "foreign": self.received.foreign,
            "poll_errors": self.received.poll_errors,
            "end_to_end_latency": self.received.latency.json(),
            "delivery_latency": self.delivery.latency.json(),
        })
    }

    fn failure(&self) -> Option<String> {
        let mut problems = Vec::new();
        if let Some(error) = &self.send_error {
            problems.push(error.clone());
        }
        problems.extend(self.delivery.failure());
        if self.lost() > 0 {
            problems.push(format!(
                "{} delivered messages were not consumed in time",
                self.lost()
            ));
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }
}
