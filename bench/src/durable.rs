//! `durable`: drain a topic through a DuctStream durable consumer
//! (`ductstream.v1.StreamService` over gRPC), the way a pool of queue workers
//! would: each worker loops Pull (up to `--batch` messages) then one Ack of
//! every id it got, until every message of the topic is acked.
//!
//! Also home to what `nats-durable` shares: the per-worker tally, the job
//! every worker reads, and the report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use ductstream_proto::v1::stream_service_client::StreamServiceClient;
use ductstream_proto::v1::{
    AckRequest, ConsumerConfig, ConsumerRef, CreateConsumerRequest, DeliverPolicy, PullRequest,
};
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::client::ClientOpts;
use crate::group_join::{ensure_records, unique_suffix};
use crate::stats::{LatencyHistogram, LatencySummary, Report, Throughput};

#[derive(Debug, Args)]
pub struct DurableArgs {
    /// The broker's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "DUCTSTREAM_GRPC")]
    pub grpc: String,
    /// Topic (stream) to drain; created and filled when absent or empty.
    #[arg(long)]
    pub topic: String,
    /// Partitions to create the topic with when it does not exist.
    #[arg(long, default_value_t = 8)]
    pub partitions: u32,
    /// Messages to produce when the topic is empty.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: u64,
    /// Value size in bytes of those messages.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Most messages one Pull asks for.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
    /// Concurrent workers, each on its own connection.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: u32,
    /// Durable consumer (group) name [default: a new one per run, so the
    /// run always starts from the beginning of the topic].
    #[arg(long)]
    pub group: Option<String>,
    /// How long a pulled batch stays claimed.
    #[arg(long, default_value_t = 30_000)]
    pub visibility_timeout_ms: u64,
    /// How long a Pull may wait for a first message when none is ready.
    #[arg(long, default_value_t = 100)]
    pub max_wait_ms: u64,
    /// Keep the consumer after the run (it is deleted by default).
    #[arg(long)]
    pub keep: bool,
    /// Give up (and exit non-zero) after this many seconds of draining.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
}

/// What every worker of a run reads, and the count they all add to.
pub struct Job {
    pub batch: u32,
    /// Messages to ack before the run is over.
    pub target: u64,
    pub acked: AtomicU64,
    pub deadline: Instant,
}

impl Job {
    pub fn new(batch: u32, target: u64, timeout: Duration) -> Arc<Job> {
        Arc::new(Job {
            batch,
            target,
            acked: AtomicU64::new(0),
            deadline: Instant::now() + timeout,
        })
    }

    /// True once every message is acked, or the time is up.
    pub fn over(&self) -> bool {
        self.acked.load(Ordering::Relaxed) >= self.target || Instant::now() >= self.deadline
    }
}

/// One worker's figures. Each worker records into its own histograms, so the
/// hot loop takes no lock; [`Totals::add`] merges them at the end.
pub struct Tally {
    /// From sending the Pull to the Ack's answer, one sample per non-empty batch.
    pub pull_to_ack: LatencyHistogram,
    /// Pull alone (non-empty pulls).
    pub pull: LatencyHistogram,
    /// Ack alone: from the pull's answer to the ack's.
    pub ack: LatencyHistogram,
    /// Messages whose ack was answered.
    pub acked: u64,
    /// What the server said changed (DuctStream's `applied`; NATS: = acked).
    pub applied: u64,
    pub bytes: u64,
    pub batches: u64,
    pub empty_pulls: u64,
    /// Messages delivered with a delivery count above 1.
    pub redelivered: u64,
    /// Identity of every message received (partition and offset, or the
    /// stream sequence), to count duplicates across workers.
    pub ids: Vec<(i64, i64)>,
    pub last_ack_at: Option<Instant>,
    pub error: Option<String>,
}

impl Tally {
    pub fn new() -> Result<Tally> {
        Ok(Tally {
            pull_to_ack: LatencyHistogram::new()?,
            pull: LatencyHistogram::new()?,
            ack: LatencyHistogram::new()?,
            acked: 0,
            applied: 0,
            bytes: 0,
            batches: 0,
            empty_pulls: 0,
            redelivered: 0,
            ids: Vec::new(),
            last_ack_at: None,
            error: None,
        })
    }

    /// Records one batch: pull sent at `sent`, answered at `pulled`, ack
    /// answered at `acked`.
    pub fn batch_done(
        &mut self,
        job: &Job,
        n: u64,
        sent: Instant,
        pulled: Instant,
        acked: Instant,
    ) {
        self.pull.record(pulled - sent);
        self.ack.record(acked - pulled);
        self.pull_to_ack.record(acked - sent);
        self.batches += 1;
        self.acked += n;
        self.last_ack_at = Some(acked);
        job.acked.fetch_add(n, Ordering::Relaxed);
    }
}

/// Every worker's tallies together: their sum, and every worker's error.
pub struct Totals {
    sum: Tally,
    errors: Vec<String>,
}

impl Totals {
    pub fn new() -> Result<Totals> {
        Ok(Totals { sum: Tally::new()?, errors: Vec::new() })
    }

    pub fn add(&mut self, tally: Tally) -> Result<()> {
        let sum = &mut self.sum;
        sum.pull_to_ack.merge(&tally.pull_to_ack)?;
        sum.pull.merge(&tally.pull)?;
        sum.ack.merge(&tally.ack)?;
        sum.acked += tally.acked;
        sum.applied += tally.applied;
        sum.bytes += tally.bytes;
        sum.batches += tally.batches;
        sum.empty_pulls += tally.empty_pulls;
        sum.redelivered += tally.redelivered;
        sum.ids.extend(tally.ids);
        sum.last_ack_at = sum.last_ack_at.max(tally.last_ack_at);
        self.errors.extend(tally.error);
        Ok(())
    }

    pub fn error(&mut self, error: String) {
        self.errors.push(error);
    }

    /// The report of a drain that started at `start`.
    pub fn report(self, header: ReportHeader, target: u64, start: Instant) -> DrainReport {
        let Totals { sum: mut t, errors } = self;
        let received = t.ids.len() as u64;
        t.ids.sort_unstable();
        t.ids.dedup();
        let distinct = t.ids.len() as u64;
        DrainReport {
            header,
            target,
            throughput: Throughput {
                messages: t.acked,
                bytes: t.bytes,
                // The last ack's answer ends the drain, not the workers'
                // final empty pulls.
                elapsed: t.last_ack_at.unwrap_or(start).duration_since(start),
            },
            pull_to_ack: t.pull_to_ack.summary(),
            pull: t.pull.summary(),
            ack: t.ack.summary(),
            applied: t.applied,
            batches: t.batches,
            empty_pulls: t.empty_pulls,
            redelivered: t.redelivered,
            distinct,
            duplicates: received - distinct,
            errors,
        }
    }
}

/// The parts of a report that say what ran where.
pub struct ReportHeader {
    pub mode: &'static str,
    /// `stream=... group=... workers=...`
    pub settings: String,
    /// How the topic or stream was filled, when this run filled it.
    pub fill: Option<Fill>,
    /// What the server said about the consumer once the drain was over.
    pub after: Option<String>,
}

pub struct Fill {
    pub messages: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

pub struct DrainReport {
    header: ReportHeader,
    target: u64,
    throughput: Throughput,
    pull_to_ack: LatencySummary,
    pull: LatencySummary,
    ack: LatencySummary,
    applied: u64,
    batches: u64,
    empty_pulls: u64,
    redelivered: u64,
    distinct: u64,
    duplicates: u64,
    errors: Vec<String>,
}

impl Report for DrainReport {
    fn human(&self) -> String {
        let mut out = format!(
            "{}: {}; pull-to-ack latency ms {}",
            self.header.mode,
            self.throughput.human(),
            self.pull_to_ack.human(false)
        );
        out.push_str(&format!("\n  {}", self.header.settings));
        out.push_str(&format!(
            "\n  pull ms {}; ack ms {}",
            self.pull.human(false),
            self.ack.human(false)
        ));
        let per_batch = if self.batches > 0 {
            self.throughput.messages as f64 / self.batches as f64
        } else {
            0.0
        };
        out.push_str(&format!(
            "\n  {} batches of {per_batch:.1} msgs on average, {} empty pulls, {} redelivered, {} duplicates",
            self.batches, self.empty_pulls, self.redelivered, self.duplicates
        ));
        if let Some(fill) = &self.header.fill {
            let t = Throughput {
                messages: fill.messages,
                bytes: fill.bytes,
                elapsed: fill.elapsed,
            };
            out.push_str(&format!("\n  filled first: {}", t.human()));
        }
        if let Some(after) = &self.header.after {
            out.push_str(&format!("\n  consumer after the drain: {after}"));
        }
        if let Some(failure) = self.failure() {
            out.push_str(&format!("\n  FAILED: {failure}"));
        }
        out
    }

    fn json(&self) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert("mode".into(), json!(self.header.mode));
        obj.insert("settings".into(), json!(self.header.settings));
        obj.insert("target".into(), json!(self.target));
        self.throughput.add_json(&mut obj);
        obj.insert("pull_to_ack_latency".into(), self.pull_to_ack.json());
        obj.insert("pull_latency".into(), self.pull.json());
        obj.insert("ack_latency".into(), self.ack.json());
        obj.insert("applied".into(), json!(self.applied));
        obj.insert("batches".into(), json!(self.batches));
        obj.insert("empty_pulls".into(), json!(self.empty_pulls));
        obj.insert("redelivered".into(), json!(self.redelivered));
        obj.insert("distinct".into(), json!(self.distinct));
        obj.insert("duplicates".into(), json!(self.duplicates));
        obj.insert(
            "fill".into(),
            json!(self.header.fill.as_ref().map(|f| json!({
                "messages": f.messages,
                "bytes": f.bytes,
                "elapsed_s": f.elapsed.as_secs_f64(),
            }))),
        );
        obj.insert("consumer_after".into(), json!(self.header.after));
        obj.insert("errors".into(), json!(self.errors));
        Value::Object(obj)
    }

    fn failure(&self) -> Option<String> {
        let mut problems = Vec::new();
        if let Some(first) = self.errors.first() {
            problems.push(format!(
                "{} worker errors, first: {first}",
                self.errors.len()
            ));
        }
        if self.distinct < self.target {
            problems.push(format!(
                "received {} of {} messages",
                self.distinct, self.target
            ));
        }
        if self.applied < self.distinct {
            problems.push(format!(
                "the server applied {} acks for {} distinct messages",
                self.applied, self.distinct
            ));
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }
}

/// A multi-threaded runtime for the async modes (the rdkafka modes are
/// synchronous and need none).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Largest gRPC answer accepted: a Pull of many big messages can pass
/// tonic's 4 MiB default.
const MAX_MESSAGE_BYTES: usize = 256 << 20;

type Api = StreamServiceClient<Channel>;

async fn connect(grpc: &str) -> Result<Api> {
    let client = StreamServiceClient::connect(grpc.to_owned())
        .await
        .with_context(|| format!("connecting to the broker's gRPC at {grpc}"))?;
    Ok(client.max_decoding_message_size(MAX_MESSAGE_BYTES))
}

pub fn run(opts: &ClientOpts, args: &DurableArgs) -> Result<DrainReport> {
    let fill_start = Instant::now();
    let data = ensure_records(opts, &args.topic, args.partitions, args.messages, args.size)?;
    let fill = (data.produced > 0).then(|| Fill {
        messages: data.produced,
        bytes: data.produced * args.size as u64,
        elapsed: fill_start.elapsed(),
    });
    check_target(data.records, &format!("topic `{}`", args.topic))?;
    if data.produced == 0 {
        eprintln!(
            "ductstream-bench: topic `{}` already held {} messages: draining those",
            args.topic, data.records
        );
    }
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("bench-{}", unique_suffix()));
    let header = ReportHeader {
        mode: "durable",
        settings: format!(
            "stream={} group={group} partitions={} workers={} batch={} size={} visibility_timeout_ms={} grpc={}",
            args.topic,
            data.partitions,
            args.workers,
            args.batch,
            args.size,
            args.visibility_timeout_ms,
            args.grpc
        ),
        fill,
        after: None,
    };
    runtime()?.block_on(drain(args, group, data.records, header))
}

async fn drain(
    args: &DurableArgs,
    group: String,
    target: u64,
    mut header: ReportHeader,
) -> Result<DrainReport> {
    let mut admin = connect(&args.grpc).await?;
    admin
        .create_consumer(CreateConsumerRequest {
            config: Some(ConsumerConfig {
                stream: args.topic.clone(),
                group: group.clone(),
                deliver_policy: DeliverPolicy::All as i32,
                ack_wait_ms: args.visibility_timeout_ms,
                ..ConsumerConfig::default()
            }),
        })
        .await
        .with_context(|| format!("creating durable consumer {group} of {}", args.topic))?;

    // Connections first, outside the clock.
    let mut clients = Vec::new();
    for _ in 0..args.workers {
        clients.push(connect(&args.grpc).await?);
    }
    let job = Job::new(args.batch, target, Duration::from_secs(args.timeout_s));
    let start = Instant::now();
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(index, client)| {
            let worker = Worker {
                client,
                stream: args.topic.clone(),
                group: group.clone(),
                name: format!("bench-worker-{index}"),
                visibility_ms: args.visibility_timeout_ms,
                max_wait_ms: args.max_wait_ms,
            };
            tokio::spawn(worker.run(Arc::clone(&job)))
        })
        .collect();
    let mut totals = Totals::new()?;
    for handle in handles {
        match handle.await {
            Ok(tally) => totals.add(tally?)?,
            Err(e) => totals.error(format!("worker task: {e}")),
        }
    }
    // The broker's own count, as a check on the bench's.
    header.after = match admin
        .get_consumer(ConsumerRef {
            stream: args.topic.clone(),
            group: group.clone(),
        })
        .await
    {
        Ok(consumer) => consumer.into_inner().stats.map(|s| {
            format!(
                "acked={} pending={} redelivered={} lag={}",
                s.acked, s.pending, s.redelivered, s.lag
            )
        }),
        Err(status) => Some(format!("GetConsumer failed: {status}")),
    };
    if !args.keep {
        let deleted = admin
            .delete_consumer(ConsumerRef {
                stream: args.topic.clone(),
                group: group.clone(),
            })
            .await;
        if let Err(status) = deleted {
            eprintln!("ductstream-bench: deleting consumer {group}: {status}");
        }
    }
    Ok(totals.report(header, target, start))
}

struct Worker {
    client: Api,
    stream: String,
    group: String,
    name: String,
    visibility_ms: u64,
    max_wait_ms: u64,
}

impl Worker {
    /// Pull, ack, repeat until the job is over. A failed call ends this
    /// worker (noted in its tally); the others carry on.
    async fn run(mut self, job: Arc<Job>) -> Result<Tally> {
        let mut tally = Tally::new()?;
        while !job.over() {
            let sent = Instant::now();
            let pulled = self
                .client
                .pull(PullRequest {
                    stream: self.stream.clone(),
                    group: self.group.clone(),
                    max_messages: job.batch,
                    visibility_timeout_ms: Some(self.visibility_ms),
                    consumer_id: self.name.clone(),
                    max_wait_ms: self.max_wait_ms,
                    no_create: false,
                })
                .await;
            let messages = match pulled {
                Ok(answer) => answer.into_inner().messages,
                Err(status) => {
                    tally.error = Some(format!("{}: pull: {status}", self.name));
                    break;
                }
            };
            let pulled_at = Instant::now();
            if messages.is_empty() {
                tally.empty_pulls += 1;
                continue;
            }
            let mut ids = Vec::with_capacity(messages.len());
            for message in &messages {
                tally.bytes += (message.value.as_ref().map_or(0, Vec::len)
                    + message.key.as_ref().map_or(0, Vec::len))
                    as u64;
                if message.delivery_count > 1 {
                    tally.redelivered += 1;
                }
                tally
                    .ids
                    .push((i64::from(message.partition), message.offset));
                ids.push(message.id.clone());
            }
            let n = ids.len() as u64;
            let acked = self
                .client
                .ack(AckRequest {
                    stream: self.stream.clone(),
                    group: self.group.clone(),
                    ids,
                })
                .await;
            match acked {
                Ok(answer) => tally.applied += u64::from(answer.into_inner().applied),
                Err(status) => {
                    tally.error = Some(format!("{}: ack: {status}", self.name));
                    break;
                }
            }
            tally.batch_done(&job, n, sent, pulled_at, Instant::now());
        }
        Ok(tally)
    }
}

/// Fails when there is nothing to drain.
pub fn check_target(target: u64, what: &str) -> Result<()> {
    if target == 0 {
        bail!("{what} holds no messages: nothing to drain");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally_with(ids: &[(i64, i64)], job: &Job) -> Result<Tally> {
        let mut tally = Tally::new()?;
        let t0 = Instant::now();
        tally.ids.extend_from_slice(ids);
        tally.applied = ids.len() as u64;
        tally.bytes = ids.len() as u64 * 10;
        tally.batch_done(
            job,
            ids.len() as u64,
            t0,
            t0 + Duration::from_millis(2),
            t0 + Duration::from_millis(5),
        );
        Ok(tally)
    }

    fn header() -> ReportHeader {
        ReportHeader {
            mode: "durable",
            settings: "stream=t".into(),
            fill: None,
            after: None,
        }
    }

    #[test]
    fn totals_merge_workers_and_count_duplicates() -> Result<()> {
        let job = Job::new(2, 3, Duration::from_secs(60));
        let start = Instant::now();
        let mut totals = Totals::new()?;
        totals.add(tally_with(&[(0, 0), (0, 1)], &job)?)?;
        assert!(!job.over());
        totals.add(tally_with(&[(0, 1), (1, 0)], &job)?)?;
        assert!(job.over());
        let report = totals.report(header(), 3, start);
        assert_eq!(report.distinct, 3);
        assert_eq!(report.duplicates, 1);
        assert_eq!(report.batches, 2);
        assert_eq!(report.pull_to_ack.count, 2);
        assert!(
            (report.pull_to_ack.p50_ms - 5.0).abs() < 0.1,
            "{:?}",
            report.pull_to_ack
        );
        assert!((report.ack.p50_ms - 3.0).abs() < 0.1, "{:?}", report.ack);
        assert_eq!(report.failure(), None);
        Ok(())
    }

    #[test]
    fn missing_messages_and_worker_errors_fail_the_run() -> Result<()> {
        let job = Job::new(2, 5, Duration::from_secs(60));
        let mut totals = Totals::new()?;
        totals.add(tally_with(&[(0, 0), (0, 1)], &job)?)?;
        totals.error("bench-worker-1: pull: unavailable".into());
        let failure = totals
            .report(header(), 5, Instant::now())
            .failure()
            .unwrap_or_default();
        assert!(failure.contains("received 2 of 5"), "{failure}");
        assert!(failure.contains("bench-worker-1: pull"), "{failure}");
        Ok(())
    }
}
