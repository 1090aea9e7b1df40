//! `sink`: how fast a sink drains a topic into its destination. Fills the topic (when empty),
//! creates a sink over it through `ductstream.v1.SinkService`, and times it from creation until
//! every record is committed, that is, written to the destination. With `--destination http`
//! and no `url`, the bench serves the webhook itself (HTTP/1.1, 200 to every request) and
//! counts the requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use ductstream_proto::v1::sink_service_client::SinkServiceClient;
use ductstream_proto::v1::{CreateSinkRequest, Endpoint, Sink, SinkRef};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::client::{ClientOpts, parse_key_val};
use crate::durable::runtime;
use crate::group_join::{ensure_records, unique_suffix};
use crate::stats::{Report, Throughput};

#[derive(Debug, Args)]
pub struct SinkArgs {
    /// The broker's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "DUCTSTREAM_GRPC")]
    pub grpc: String,
    /// Topic to drain; created and filled when absent or empty.
    #[arg(long)]
    pub topic: String,
    #[arg(long, default_value_t = 8)]
    pub partitions: u32,
    /// Messages to produce when the topic is empty.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Value size in bytes of those messages.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// s3, http or kafka.
    #[arg(long)]
    pub destination: String,
    /// A destination option, e.g. `--option bucket=lake --option endpoint=http://127.0.0.1:8333`;
    /// repeatable.
    #[arg(long = "option", value_name = "KEY=VALUE", value_parser = parse_key_val)]
    pub options: Vec<(String, String)>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_s: u64,
}

pub struct SinkReport {
    destination: String,
    settings: String,
    throughput: Throughput,
    /// From the sink's own counters: batches, retries, mean and longest batch write.
    progress: Value,
    /// Requests the bench's own webhook answered.
    requests: Option<u64>,
    failure: Option<String>,
}

pub fn run(opts: &ClientOpts, args: &SinkArgs) -> Result<SinkReport> {
    let data = ensure_records(opts, &args.topic, args.partitions, args.messages, args.size)?;
    runtime()?.block_on(drain(args, data.records))
}

async fn drain(args: &SinkArgs, records: u64) -> Result<SinkReport> {
    let mut options: HashMap<String, String> = args.options.iter().cloned().collect();
    let mut requests = None;
    if args.destination == "http" && !options.contains_key("url") {
        let (url, count) = serve_webhook().await?;
        options.insert("url".into(), url);
        requests = Some(count);
    }
    let settings = format!("{options:?}");
    let id = format!("bench-{}", unique_suffix());
    let mut api = SinkServiceClient::connect(args.grpc.clone()).await.context("connecting to the gRPC API")?;
    let sink = Sink {
        id: id.clone(),
        topics: vec![args.topic.clone()],
        destination: Some(Endpoint { name: "bench".into(), r#type: args.destination.clone(), options }),
        ..Default::default()
    };
    let start = Instant::now();
    api.create_sink(CreateSinkRequest { sink: Some(sink), paused: false }).await.context("creating the sink")?;
    let deadline = start + Duration::from_secs(args.timeout_s);
    let (last, failure) = loop {
        let got = api.get_sink(SinkRef { id: id.clone() }).await.context("reading the sink")?.into_inner();
        let committed: i64 = got.partitions.iter().map(|p| p.committed.max(0)).sum();
        if !got.last_error.is_empty() && got.state != 1 {
            break (got.clone(), Some(format!("the sink failed: {}", got.last_error)));
        }
        if u64::try_from(committed).unwrap_or(0) >= records && got.lag == 0 {
            break (got, None);
        }
        if Instant::now() >= deadline {
            break (got, Some(format!("not drained after {} s", args.timeout_s)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = start.elapsed();
    let _ = api.stop_sink(SinkRef { id: id.clone() }).await;
    let _ = api.delete_sink(SinkRef { id }).await;
    let p = last.progress.unwrap_or_default();
    Ok(SinkReport {
        destination: args.destination.clone(),
        settings,
        throughput: Throughput { messages: records, bytes: records * args.size as u64, elapsed },
        progress: json!({
            "batches": p.batches_written, "retries": p.retries, "dead_letters": p.dead_letters,
            "flush_mean_ms": p.flush_mean_ms, "flush_max_ms": p.flush_max_ms,
        }),
        requests: requests.map(|c| c.load(Ordering::Relaxed)),
        failure,
    })
}

/// A webhook on a free port that answers 200 to every request; returns its URL and the count.
async fn serve_webhook() -> Result<(String, Arc<AtomicU64>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the webhook")?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let _ = socket.set_nodelay(true);
                let (read, mut write) = socket.into_split();
                let mut read = BufReader::new(read);
                let mut line = String::new();
                loop {
                    let mut length = 0usize;
                    line.clear();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if read.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if read.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                    if write.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok((url, count))
}

impl Report for SinkReport {
    fn human(&self) -> String {
        let mut out = format!("sink {}: {}", self.destination, self.throughput.human());
        out.push_str(&format!("\n  options {}", self.settings));
        out.push_str(&format!("\n  sink counters {}", self.progress));
        if let Some(n) = self.requests {
            out.push_str(&format!("\n  webhook requests {n}"));
        }
        if let Some(f) = &self.failure {
            out.push_str(&format!("\n  FAILED: {f}"));
        }
        out
    }

    fn json(&self) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert("mode".into(), json!("sink"));
        obj.insert("destination".into(), json!(self.destination));
        self.throughput.add_json(&mut obj);
        obj.insert("progress".into(), self.progress.clone());
        obj.insert("webhook_requests".into(), json!(self.requests));
        Value::Object(obj)
    }

    fn failure(&self) -> Option<String> {
        self.failure.clone()
    }
}

