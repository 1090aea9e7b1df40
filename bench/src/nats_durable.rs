//! `nats-durable`: the `durable` job against NATS JetStream, for comparison.
//!
//! A file-storage stream with one subject is filled (when empty) with
//! `--messages` messages of `--size` bytes, published asynchronously with
//! every publish ack awaited. A durable pull consumer with explicit acks then
//! hands batches to `--workers` workers (each on its own connection), which
//! fetch up to `--batch` messages and ack each one.
//!
//! A JetStream ack is a fire-and-forget publish, while a DuctStream Ack is a
//! request whose answer comes after the consumer state was stored. So that
//! "pull to ack" means "until the server has the acks" on both sides, the
//! default `--ack plain` acks every message and then flushes the connection
//! (a PING/PONG round trip: the server has read every ack before it answers
//! the PING). `--ack double` instead sends every ack as a request and waits
//! for all the confirmations (AckAck), the closest to DuctStream's answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::durable::{DrainReport, Fill, Job, ReportHeader, Tally, Totals, check_target, runtime};
use crate::group_join::unique_suffix;
use crate::payload::filler;

#[derive(Debug, Args)]
pub struct NatsDurableArgs {
    /// NATS server URL.
    #[arg(long, default_value = "nats://127.0.0.1:4222", env = "NATS_URL")]
    pub nats: String,
    /// JetStream stream to drain; created (file storage, one subject of the
    /// same name) and filled when absent or empty.
    #[arg(long)]
    pub stream: String,
    /// Messages to publish when the stream is empty.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Most messages one fetch asks for.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
    /// Concurrent workers, each on its own connection.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: u32,
    /// Durable consumer name [default: a new one per run].
    #[arg(long)]
    pub consumer: Option<String>,
    /// How acks are sent (see the module docs).
    #[arg(long, value_enum, default_value_t = AckMode::Plain)]
    pub ack: AckMode,
    /// Ack wait of the consumer: how long a fetched message stays claimed.
    #[arg(long, default_value_t = 30_000)]
    pub ack_wait_ms: u64,
    /// Publishes awaiting their ack at once while filling.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub publish_window: u64,
    /// Keep the consumer after the run (it is deleted by default).
    #[arg(long)]
    pub keep: bool,
    /// Give up (and exit non-zero) after this many seconds of draining.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AckMode {
    /// `ack()` every message, then flush the connection (one round trip).
    Plain,
    /// `double_ack()` every message, all at once, and await every AckAck.
    Double,
}

/// How long a worker waits before fetching again after an empty fetch (a
/// no-wait fetch would otherwise spin while another worker finishes).
const EMPTY_FETCH_PAUSE: Duration = Duration::from_millis(1);

pub fn run(args: &NatsDurableArgs) -> Result<DrainReport> {
    runtime()?.block_on(drain(args))
}

async fn connect(url: &str) -> Result<async_nats::Client> {
    async_nats::connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))
}

async fn drain(args: &NatsDurableArgs) -> Result<DrainReport> {
    let client = connect(&args.nats).await?;
    let js = async_nats::jetstream::new(client.clone());
    let subject = args.stream.clone();
    let mut stream = js
        .get_or_create_stream(StreamConfig {
            name: args.stream.clone(),
            subjects: vec![subject.clone()],
            storage: StorageType::File,
            ..StreamConfig::default()
        })
        .await
        .map_err(|e| anyhow!("creating stream {}: {e}", args.stream))?;
    let held = stream
        .info()
        .await
        .map_err(|e| anyhow!("stream info: {e}"))?
        .state
        .messages;
    let fill = if held == 0 {
        Some(publish(&js, &subject, args).await?)
    } else {
        eprintln!(
            "ductstream-bench: stream `{}` already held {held} messages: draining those",
            args.stream
        );
        None
    };
    let target = stream
        .info()
        .await
        .map_err(|e| anyhow!("stream info: {e}"))?
        .state
        .messages;
    check_target(target, &format!("stream `{}`", args.stream))?;

    let name = args
        .consumer
        .clone()
        .unwrap_or_else(|| format!("bench-{}", unique_suffix()));
    stream
        .create_consumer(pull::Config {
            durable_name: Some(name.clone()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_millis(args.ack_wait_ms),
            // DuctStream's default max_ack_pending, and JetStream's.
            max_ack_pending: 1000,
            ..pull::Config::default()
        })
        .await
        .map_err(|e| anyhow!("creating consumer {name}: {e}"))?;

    // Connections first, outside the clock.
    let mut workers = Vec::new();
    for index in 0..args.workers {
        let client = connect(&args.nats).await?;
        let consumer: PullConsumer = async_nats::jetstream::new(client.clone())
            .get_stream(&args.stream)
            .await
            .map_err(|e| anyhow!("getting stream {}: {e}", args.stream))?
            .get_consumer(&name)
            .await
            .map_err(|e| anyhow!("getting consumer {name}: {e}"))?;
        workers.push(Worker {
            client,
            consumer,
            name: format!("bench-worker-{index}"),
            ack: args.ack,
        });
    }
    let mut header = ReportHeader {
        mode: "nats-durable",
        settings: format!(
            "stream={} consumer={name} workers={} batch={} size={} ack={} ack_wait_ms={} nats={}",
            args.stream,
            args.workers,
            args.batch,
            args.size,
            match args.ack {
                AckMode::Plain => "plain+flush",
                AckMode::Double => "double",
            },
            args.ack_wait_ms,
            args.nats
        ),
        fill,
        after: None,
    };
    let job = Job::new(args.batch, target, Duration::from_secs(args.timeout_s));
    let start = Instant::now();
    let handles: Vec<_> = workers
        .into_iter()
        .map(|worker| tokio::spawn(worker.run(Arc::clone(&job))))
        .collect();
    let mut totals = Totals::new()?;
    for handle in handles {
        match handle.await {
            Ok(tally) => totals.add(tally?)?,
            Err(e) => totals.error(format!("worker task: {e}")),
        }
    }
    // The server's own count, as a check on the bench's. Plain acks are
    // applied asynchronously after the flush, so a few may still be pending.
    header.after = Some(match stream.get_consumer::<pull::Config>(&name).await {
        Ok(consumer) => match consumer.get_info().await {
            Ok(info) => format!(
                "ack_floor stream_seq={} ack_pending={} redelivered={} pending={}",
                info.ack_floor.stream_sequence,
                info.num_ack_pending,
                info.num_redelivered,
                info.num_pending
            ),
            Err(e) => format!("consumer info failed: {e}"),
        },
        Err(e) => format!("getting consumer failed: {e}"),
    });
    if !args.keep
        && let Err(e) = stream.delete_consumer(&name).await
    {
        eprintln!("ductstream-bench: deleting consumer {name}: {e}");
    }
    Ok(totals.report(header, target, start))
}

/// Publishes `--messages` messages, keeping up to `--publish-window` acks
/// outstanding, and waits for every ack.
async fn publish(
    js: &async_nats::jetstream::Context,
    subject: &str,
    args: &NatsDurableArgs,
) -> Result<Fill> {
    let payload = Bytes::from(filler(args.size));
    let window = usize::try_from(args.publish_window)?;
    let start = Instant::now();
    let mut pending = FuturesUnordered::new();
    for n in 0..args.messages {
        let ack = js
            .publish(subject.to_owned(), payload.clone())
            .await
            .map_err(|e| anyhow!("publishing message {n}: {e}"))?;
        pending.push(ack.into_future());
        if pending.len() >= window
            && let Some(acked) = pending.next().await
        {
            acked.map_err(|e| anyhow!("publish ack: {e}"))?;
        }
    }
    while let Some(acked) = pending.next().await {
        acked.map_err(|e| anyhow!("publish ack: {e}"))?;
    }
    Ok(Fill {
        messages: args.messages,
        bytes: args.messages * args.size as u64,
        elapsed: start.elapsed(),
    })
}

struct Worker {
    client: async_nats::Client,
    consumer: PullConsumer,
    name: String,
    ack: AckMode,
}

impl Worker {
    async fn run(self, job: Arc<Job>) -> Result<Tally> {
        let mut tally = Tally::new()?;
        let batch = usize::try_from(job.batch)?;
        'work: while !job.over() {
            let sent = Instant::now();
            // A no-wait fetch answers at once with what is there, as a
            // DuctStream Pull does when it can claim something.
            let mut fetched = match self.consumer.fetch().max_messages(batch).messages().await {
                Ok(fetched) => fetched,
                Err(e) => {
                    tally.error = Some(format!("{}: fetch: {e}", self.name));
                    break;
                }
            };
            let mut messages = Vec::with_capacity(batch);
            while let Some(message) = fetched.next().await {
                match message {
                    Ok(message) => messages.push(message),
                    Err(e) => {
                        tally.error = Some(format!("{}: fetch: {e}", self.name));
                        break 'work;
                    }
                }
            }
            let pulled_at = Instant::now();
            if messages.is_empty() {
                tally.empty_pulls += 1;
                tokio::time::sleep(EMPTY_FETCH_PAUSE).await;
                continue;
            }
            for message in &messages {
                tally.bytes += message.payload.len() as u64;
                match message.info() {
                    Ok(info) => {
                        if info.delivered > 1 {
                            tally.redelivered += 1;
                        }
                        tally
                            .ids
                            .push((0, i64::try_from(info.stream_sequence).unwrap_or(i64::MAX)));
                    }
                    Err(e) => {
                        tally.error = Some(format!("{}: message info: {e}", self.name));
                        break 'work;
                    }
                }
            }
            let acked: Result<(), async_nats::Error> = match self.ack {
                AckMode::Plain => {
                    async {
                        for message in &messages {
                            message.ack().await?;
                        }
                        self.client.flush().await?;
                        Ok(())
                    }
                    .await
                }
                AckMode::Double => {
                    futures::future::try_join_all(messages.iter().map(|m| m.double_ack()))
                        .await
                        .map(|_| ())
                }
            };
            if let Err(e) = acked {
                tally.error = Some(format!("{}: ack: {e}", self.name));
                break;
            }
            let n = messages.len() as u64;
            tally.applied += n;
            tally.batch_done(&job, n, sent, pulled_at, Instant::now());
        }
        Ok(tally)
    }
}
