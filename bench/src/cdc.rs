//! `cdc`: a writer drives inserts, updates and deletes (70/20/10, `--size`-byte rows) into a
//! Postgres table while a CDC flow on the broker streams them into a topic, read back with
//! librdkafka. Reports changes/s into the topic and commit-to-topic latency (commit time in
//! the change event to arrival at the consumer). As the limit, `pg_recvlogical` then decodes
//! the same changes from the same WAL to /dev/null.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use ductstream_proto::v1 as pb;
use ductstream_proto::v1::flow_service_client::FlowServiceClient;
use ductstream_proto::v1::sink_service_client::SinkServiceClient;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

use crate::client::{BenchConsumerContext, ClientOpts};
use crate::stats::{LatencyHistogram, LatencySummary, Report};

#[derive(Debug, Args)]
pub struct CdcArgs {
    /// The source database (needs wal_level=logical and a user allowed to replicate).
    #[arg(long)]
    dsn: String,
    /// The broker's gRPC API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    grpc: String,
    /// Row changes to write.
    #[arg(long, default_value_t = 200_000)]
    changes: u64,
    /// Writer connections.
    #[arg(long, default_value_t = 4)]
    writers: u64,
    /// Changes per transaction (70% inserts, 20% updates, 10% deletes).
    #[arg(long, default_value_t = 100)]
    per_transaction: u64,
    /// Bytes of payload per row.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Changes per second the writers aim for together (0: as fast as they can). Latency is
    /// only meaningful at a rate the flow sustains; past it, a backlog builds.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// The flow's batch_size option (changes per append).
    #[arg(long, default_value_t = 1000)]
    batch_size: u64,
    /// Skip the pg_recvlogical limit run.
    #[arg(long)]
    no_limit: bool,
    /// Pause the flow while the writers run, then time how fast it streams the backlog: the
    /// flow's own ceiling, beside pg_recvlogical decoding the same backlog (latency then
    /// counts the wait, so it is not reported).
    #[arg(long)]
    backlog: bool,
    /// The broker's process id, to report its CPU time per change (same machine).
    #[arg(long)]
    broker_pid: Option<u32>,
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
    /// Also give the flow a sink destination of this type (s3, http, kafka), named `sink`, and
    /// time how long until it has every change.
    #[arg(long)]
    destination: Option<String>,
    /// An option of that destination, e.g. `--destination-option bucket=lake`; repeatable.
    #[arg(long = "destination-option", value_name = "KEY=VALUE", value_parser = crate::client::parse_key_val)]
    destination_options: Vec<(String, String)>,
}

pub struct CdcReport {
    changes: u64,
    received: u64,
    elapsed: Duration,
    write_elapsed: Duration,
    latency: LatencySummary,
    limit: Option<(Duration, String)>,
    flow: String,
    target_rate: u64,
    /// With --destination: from the first write until the flow's sink had every change.
    sink_elapsed: Option<Duration>,
    /// With a postgres destination: commit-to-destination ms (p50, p99, max), from the rows'
    /// meta columns (the sink's sync time less the source's commit time).
    table_latency: Option<(f64, f64, f64)>,
    backlog: bool,
    /// The sink's own counters when it caught up.
    sink_counters: Option<String>,
    /// The broker's CPU seconds over the run, when the bench runs beside it (`--broker-pid`).
    broker_cpu_s: Option<f64>,
}

impl Report for CdcReport {
    fn human(&self) -> String {
        let rate = |d: Duration| self.changes as f64 / d.as_secs_f64().max(1e-9);
        let sink = self.sink_elapsed.map(|d| {
            format!(
                "\n  into the sink destination: {} changes in {:.2} s from the first write: {:.0} changes/s, {:.2} s after the last reached the topic",
                self.changes,
                d.as_secs_f64(),
                rate(d),
                (d.as_secs_f64() - self.elapsed.as_secs_f64()).max(0.0)
            )
        });
        let latency = if self.backlog { "(a backlog: not measured)".to_string() } else { self.latency.human(true) };
        let mut text = format!(
            "cdc{}: {} changes into the topic in {:.2} s: {:.0} changes/s; commit-to-topic ms {}\n  written by Postgres clients in {:.2} s ({:.0} changes/s, target {}); flow={}",
            if self.backlog { " (backlog)" } else { "" },
            self.received,
            self.elapsed.as_secs_f64(),
            rate(self.elapsed),
            latency,
            self.write_elapsed.as_secs_f64(),
            rate(self.write_elapsed),
            if self.target_rate == 0 { "unlimited".to_string() } else { format!("{}/s", self.target_rate) },
            self.flow,
        );
        match &self.limit {
            Some((d, _)) => text.push_str(&format!(
                "\n  limit: pg_recvlogical decoded the same changes to /dev/null in {:.2} s ({:.0} changes/s); DuctStream reached {:.0}% of it",
                d.as_secs_f64(),
                rate(*d),
                100.0 * rate(self.elapsed) / rate(*d)
            )),
            None => text.push_str("\n  limit: not measured"),
        }
        text.extend(sink);
        if let Some(counters) = &self.sink_counters {
            text.push_str(&format!("\n  sink: {counters}"));
        }
        if let Some(cpu) = self.broker_cpu_s {
            text.push_str(&format!("\n  broker CPU: {cpu:.2} s, {:.2} s per 100k changes", cpu * 100_000.0 / self.changes.max(1) as f64));
        }
        if let Some((p50, p99, max)) = self.table_latency {
            text.push_str(&format!("\n  commit-to-destination ms (rows' __ds_synced_at less their commit time): p50 {p50:.0}, p99 {p99:.0}, max {max:.0}"));
        }
        text
    }

    fn json(&self) -> Value {
        let rate = |d: Duration| self.changes as f64 / d.as_secs_f64().max(1e-9);
        json!({
            "mode": "cdc",
            "changes": self.changes,
            "received": self.received,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "changes_per_s": rate(self.elapsed),
            "write_changes_per_s": rate(self.write_elapsed),
            "target_rate": self.target_rate,
            "commit_to_topic": (!self.backlog).then(|| self.latency.json()),
            "backlog": self.backlog,
            "broker_cpu_s": self.broker_cpu_s,
            "pg_recvlogical_changes_per_s": self.limit.as_ref().map(|(d, _)| rate(*d)),
            "flow": self.flow,
            "sink_changes_per_s": self.sink_elapsed.map(rate),
            "commit_to_destination_ms": self.table_latency.map(|(p50, p99, max)| json!({"p50": p50, "p99": p99, "max": max})),
        })
    }

    fn failure(&self) -> Option<String> {
        (self.received < self.changes).then(|| format!("received {} of {} changes", self.received, self.changes))
    }
}

pub fn run(opts: &ClientOpts, args: &CdcArgs) -> Result<CdcReport> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    runtime.block_on(run_async(opts, args))
}

async fn connect(dsn: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(dsn, tokio_postgres::NoTls).await.context("connecting to the source")?;
    tokio::spawn(connection);
    Ok(client)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

async fn run_async(opts: &ClientOpts, args: &CdcArgs) -> Result<CdcReport> {
    let run_id = now_ms();
    let (table, flow_id) = ("bench_cdc", format!("bench-cdc-{run_id}"));
    let (slot, publication, limit_slot) =
        (format!("bench_cdc_{run_id}"), format!("bench_cdc_pub_{run_id}"), format!("bench_limit_{run_id}"));
    let db = connect(&args.dsn).await?;
    db.batch_execute(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id bigint PRIMARY KEY, payload text NOT NULL)"
    ))
    .await
    .context("creating the bench table")?;

    // The flow, over gRPC.
    let mut flows = FlowServiceClient::connect(args.grpc.clone()).await.context("connecting to the broker's gRPC API")?;
    let options = [
        ("dsn", args.dsn.clone()),
        ("slot", slot.clone()),
        ("publication", publication.clone()),
        ("publication_tables", format!("public.{table}")),
        ("batch_size", args.batch_size.to_string()),
        ("batch_timeout", "50ms".into()),
        ("snapshot", "false".into()),
    ];
    let mut destinations = vec![pb::Endpoint { name: "topics".into(), r#type: "topics".into(), ..Default::default() }];
    let table_destination = table_destination(args).await?;
    if let Some(kind) = &args.destination {
        let mut options: std::collections::HashMap<String, String> = args.destination_options.iter().cloned().collect();
        if table_destination.is_some() {
            // The rows' sync and commit times give the commit-to-destination latency.
            options.insert("meta_enabled".into(), "true".into());
            options.insert("watermark_source".into(), "timestamp".into());
        }
        destinations.push(pb::Endpoint { name: "sink".into(), r#type: kind.clone(), options });
    }
    let flow = pb::Flow {
        id: flow_id.clone(),
        name: flow_id.clone(),
        source: Some(pb::Endpoint {
            name: "bench".into(),
            r#type: "postgres".into(),
            options: options.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }),
        destinations,
        ..Default::default()
    };
    flows.create_flow(pb::CreateFlowRequest { flow: Some(flow) }).await.map_err(|s| anyhow!("CreateFlow: {}", s.message()))?;
    flows.start_flow(pb::FlowRef { id: flow_id.clone() }).await.map_err(|s| anyhow!("StartFlow: {}", s.message()))?;
    let started = Instant::now();
    loop {
        let f = flows.get_flow(pb::FlowRef { id: flow_id.clone() }).await.map_err(|s| anyhow!("GetFlow: {}", s.message()))?.into_inner();
        if f.progress.as_ref().is_some_and(|p| p.phase == "streaming") {
            break;
        }
        if !f.last_error.is_empty() {
            bail!("the flow failed: {}", f.last_error);
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the flow did not start streaming within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !args.no_limit {
        db.execute("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&limit_slot]).await.context("creating the limit slot")?;
    }

    // The consumer, on its own thread: librdkafka's poll blocks. The topic is made first, so
    // the consumer is fetching before the first change arrives (it would otherwise learn of the
    // topic at its next metadata refresh, and the first changes would look late).
    let topic = format!("{flow_id}.public.{table}");
    {
        let (opts, topic) = (opts.clone(), topic.clone());
        tokio::task::spawn_blocking(move || crate::topic::ensure_topic(&opts, &topic, 1)).await.context("topic task")??;
    }
    let consumer_done = Arc::new(AtomicBool::new(false));
    let consumer_ready = Arc::new(AtomicBool::new(false));
    let consumer = {
        let mut config = opts.assign_consumer_config(100);
        // The end-of-partition event tells when the consumer is fetching.
        config.set("enable.partition.eof", "true");
        let (topic, target, done, ready, timeout) =
            (topic.clone(), args.changes, consumer_done.clone(), consumer_ready.clone(), Duration::from_secs(args.timeout_s));
        std::thread::spawn(move || consume(config, &topic, target, &done, &ready, timeout))
    };
    // Changes written before the consumer fetches would count its start-up as latency.
    let waiting_since = Instant::now();
    while !consumer_ready.load(Ordering::Relaxed) {
        if waiting_since.elapsed() > Duration::from_secs(30) {
            bail!("the consumer did not start fetching within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    if args.backlog {
        set_flow_running(&mut flows, &flow_id, false).await?;
    }
    let cpu_before = args.broker_pid.map(process_cpu_s).transpose()?;

    // The writers.
    let write_started = Instant::now();
    let per_writer = args.changes / args.writers.max(1);
    let mut tasks = Vec::new();
    for w in 0..args.writers.max(1) {
        let (dsn, size, per_tx) = (args.dsn.clone(), args.size, args.per_transaction.max(10));
        let changes = if w == args.writers.max(1) - 1 { args.changes - per_writer * (args.writers.max(1) - 1) } else { per_writer };
        let writer_rate = args.rate as f64 / args.writers.max(1) as f64;
        tasks.push(tokio::spawn(async move { write(&dsn, table, w as i64, changes, per_tx, size, writer_rate).await }));
    }
    for t in tasks {
        t.await.context("writer task")??;
    }
    let write_elapsed = write_started.elapsed();
    let stream_started = if args.backlog {
        set_flow_running(&mut flows, &flow_id, true).await?;
        Instant::now()
    } else {
        write_started
    };
    let end_lsn: String = db.query_one("SELECT pg_current_wal_lsn()::text", &[]).await?.get(0);

    let (received, latency, last_at) = consumer.join().map_err(|_| anyhow!("the consumer thread panicked"))??;
    consumer_done.store(true, Ordering::Relaxed);
    let elapsed = last_at.map_or(stream_started.elapsed(), |at| at.saturating_duration_since(stream_started));
    let broker_cpu_s = match (args.broker_pid, cpu_before) {
        (Some(pid), Some(before)) => Some(process_cpu_s(pid)? - before),
        _ => None,
    };
    let (sink_elapsed, sink_counters) = match &args.destination {
        Some(_) => {
            let (elapsed, counters) = wait_for_sink(&args.grpc, &format!("{flow_id}.sink"), write_started, Duration::from_secs(args.timeout_s)).await?;
            (Some(elapsed), Some(counters))
        }
        None => (None, None),
    };

    let table_latency = match &table_destination {
        Some((dsn, name)) => Some(destination_latency(dsn, name).await?),
        None => None,
    };
    let limit = if args.no_limit { None } else { Some(decode_limit(&args.dsn, &limit_slot, &publication, &end_lsn)?) };
    if !args.no_limit {
        db.execute("SELECT pg_drop_replication_slot($1)", &[&limit_slot]).await.context("dropping the limit slot")?;
    }
    // Leave nothing behind: a slot left on the source keeps its WAL forever.
    flows.stop_flow(pb::FlowRef { id: flow_id.clone() }).await.map_err(|s| anyhow!("StopFlow: {}", s.message()))?;
    let deleted = flows
        .delete_flow(pb::DeleteFlowRequest { id: flow_id.clone(), keep_slot: false })
        .await
        .map_err(|s| anyhow!("DeleteFlow: {}", s.message()))?
        .into_inner();
    if deleted.slot_outcome != "dropped" {
        bail!("the flow's slot {slot} was not dropped: {}", deleted.slot_outcome);
    }
    db.batch_execute(&format!("DROP PUBLICATION IF EXISTS {publication}")).await.context("dropping the publication")?;
    Ok(CdcReport { changes: args.changes, received, elapsed, write_elapsed, latency, limit, flow: flow_id, target_rate: args.rate, sink_elapsed, table_latency, backlog: args.backlog, broker_cpu_s, sink_counters })
}

/// Stops the flow (and waits until it is PAUSED, its slot kept) or resumes it.
async fn set_flow_running(flows: &mut FlowServiceClient<tonic::transport::Channel>, id: &str, running: bool) -> Result<()> {
    let flow_ref = pb::FlowRef { id: id.to_owned() };
    if running {
        flows.resume_flow(flow_ref).await.map_err(|s| anyhow!("ResumeFlow: {}", s.message()))?;
        return Ok(());
    }
    flows.stop_flow(flow_ref.clone()).await.map_err(|s| anyhow!("StopFlow: {}", s.message()))?;
    let since = Instant::now();
    loop {
        let f = flows.get_flow(flow_ref.clone()).await.map_err(|s| anyhow!("GetFlow: {}", s.message()))?.into_inner();
        if f.state == pb::FlowState::Paused as i32 {
            return Ok(());
        }
        if since.elapsed() > Duration::from_secs(30) {
            bail!("the flow did not pause within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A process's user and system CPU seconds so far (Linux `/proc/<pid>/stat`).
fn process_cpu_s(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Ok((ticks(11) + ticks(12)) / 100.0)
}

/// With `--destination postgres`: its connection string and the bench table's name there,
/// emptied of an earlier run's rows.
async fn table_destination(args: &CdcArgs) -> Result<Option<(String, String)>> {
    if args.destination.as_deref() != Some("postgres") {
        return Ok(None);
    }
    let option = |key: &str| args.destination_options.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let dsn = option("dsn").ok_or_else(|| anyhow!("--destination postgres needs --destination-option dsn=..."))?;
    let name = format!("{}.{}", option("schema").unwrap_or_else(|| "public".into()), option("table").unwrap_or_else(|| "bench_cdc".into()));
    connect(&dsn).await?.batch_execute(&format!("DROP TABLE IF EXISTS {name}")).await.context("emptying the destination table")?;
    Ok(Some((dsn, name)))
}

/// Commit-to-destination milliseconds (p50, p99, max) over the destination table's rows.
async fn destination_latency(dsn: &str, table: &str) -> Result<(f64, f64, f64)> {
    let row = connect(dsn)
        .await?
        .query_one(
            &format!(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms) \
                 FROM (SELECT extract(epoch FROM __ds_synced_at - __ds_watermark)::float8 * 1000 AS ms FROM {table}) l"
            ),
            &[],
        )
        .await
        .context("reading the destination's sync times")?;
    Ok((row.try_get(0).unwrap_or(0.0), row.try_get(1).unwrap_or(0.0), row.try_get(2).unwrap_or(0.0)))
}

/// Waits until the flow's sink has committed everything its topics hold; the time since
/// `since`.
async fn wait_for_sink(grpc: &str, id: &str, since: Instant, timeout: Duration) -> Result<(Duration, String)> {
    let mut sinks = SinkServiceClient::connect(grpc.to_owned()).await.context("connecting to SinkService")?;
    loop {
        let sink = sinks.get_sink(pb::SinkRef { id: id.to_owned() }).await.map_err(|s| anyhow!("GetSink: {}", s.message()))?.into_inner();
        let caught_up = !sink.partitions.is_empty() && sink.partitions.iter().all(|p| p.committed >= p.high_watermark);
        if caught_up {
            let p = sink.progress.unwrap_or_default();
            let counters = format!(
                "{} batches, batch write ms mean {:.0} / max {:.0}, {} retries",
                p.batches_written, p.flush_mean_ms, p.flush_max_ms, p.retries
            );
            return Ok((since.elapsed(), counters));
        }
        if !sink.last_error.is_empty() && sink.state != pb::SinkState::Running as i32 {
            bail!("the flow's sink failed: {}", sink.last_error);
        }
        if since.elapsed() > timeout {
            bail!("the flow's sink did not catch up within {} s (lag {})", timeout.as_secs(), sink.lag);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `changes` row changes in transactions of `per_tx`: 70% inserts of new ids, 20%
/// updates and 10% deletes of ids this writer inserted before (ids never collide across
/// writers: writer w owns ids ≡ w mod 1000).
async fn write(dsn: &str, table: &str, writer: i64, changes: u64, per_tx: u64, size: usize, rate: f64) -> Result<()> {
    let started = tokio::time::Instant::now();
    let mut db = connect(dsn).await?;
    let payload = "x".repeat(size);
    let insert = db.prepare(&format!("INSERT INTO {table} SELECT i, $2 FROM unnest($1::bigint[]) i")).await?;
    let update = db.prepare(&format!("UPDATE {table} SET payload = $2 WHERE id = ANY($1::bigint[])")).await?;
    let delete = db.prepare(&format!("DELETE FROM {table} WHERE id = ANY($1::bigint[])")).await?;
    let (mut next, mut live): (i64, std::collections::VecDeque<i64>) = (0, Default::default());
    let mut written = 0u64;
    while written < changes {
        if rate > 0.0 {
            // Each transaction starts when the writer's share of the rate says it is due.
            tokio::time::sleep_until(started + Duration::from_secs_f64(written as f64 / rate)).await;
        }
        let n = per_tx.min(changes - written);
        let (inserts, updates) = (n * 7 / 10, n * 2 / 10);
        let deletes = n - inserts - updates;
        let new_ids: Vec<i64> = (0..inserts).map(|i| (next + i as i64) * 1000 + writer).collect();
        next += inserts as i64;
        live.extend(&new_ids);
        // Updates and deletes touch rows written earlier (or in this transaction at the start).
        let deleted: Vec<i64> = (0..deletes).filter_map(|_| live.pop_front()).collect();
        let updated: Vec<i64> = live.iter().rev().take(updates as usize).copied().collect();
        let tx = db.transaction().await?;
        tx.execute(&insert, &[&new_ids, &payload]).await?;
        tx.execute(&update, &[&updated, &payload]).await?;
        tx.execute(&delete, &[&deleted]).await?;
        tx.commit().await?;
        written += new_ids.len() as u64 + updated.len() as u64 + deleted.len() as u64;
        if new_ids.len() + updated.len() + deleted.len() == 0 {
            bail!("a transaction changed nothing");
        }
    }
    Ok(())
}

type Consumed = (u64, LatencySummary, Option<Instant>);

fn consume(
    config: rdkafka::ClientConfig,
    topic: &str,
    target: u64,
    done: &AtomicBool,
    ready: &AtomicBool,
    timeout: Duration,
) -> Result<Consumed> {
    let consumer: BaseConsumer<BenchConsumerContext> = config.create_with_context(BenchConsumerContext::default()).context("consumer")?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let mut histogram = LatencyHistogram::new()?;
    let (mut received, mut last_at) = (0u64, None);
    let deadline = Instant::now() + timeout;
    while received < target && Instant::now() < deadline && !done.load(Ordering::Relaxed) {
        let message = match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => message,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {
                ready.store(true, Ordering::Relaxed);
                continue;
            }
            _ => continue,
        };
        let arrived = now_ms();
        received += 1;
        last_at = Some(Instant::now());
        if let Some(commit_ms) = message.payload().and_then(|p| serde_json::from_slice::<Value>(p).ok()).and_then(|v| v["ts_ms"].as_i64()) {
            histogram.record(Duration::from_millis(u64::try_from(arrived - commit_ms).unwrap_or(0)));
        }
    }
    Ok((received, histogram.summary(), last_at))
}

/// How long `pg_recvlogical` takes to decode the slot's changes up to `end_lsn` to /dev/null.
fn decode_limit(dsn: &str, slot: &str, publication: &str, end_lsn: &str) -> Result<(Duration, String)> {
    let program = ["pg_recvlogical", "/usr/lib/postgresql/15/bin/pg_recvlogical"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
        .ok_or_else(|| anyhow!("pg_recvlogical not found (Debian: postgresql-client)"))?;
    let started = Instant::now();
    let output = Command::new(program)
        .args(["-d", dsn, "-S", slot, "--start", "--no-loop", "-E", end_lsn, "-f", "/dev/null"])
        .args(["-o", "proto_version=1", "-o", &format!("publication_names={publication}")])
        .output()
        .context("running pg_recvlogical")?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        bail!("pg_recvlogical failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok((elapsed, program.to_string()))
}
