//! `ductstream-worker`: runs one CDC flow or one sink in its own process, on the broker's store.
//!
//! It works through its own partition log, so it needs a store that several processes can
//! open (Postgres), or an embedded store no broker has open. Brokers on the same Postgres
//! wake their fetches and pulls on its appends; a sink worker polls for theirs.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use ductstream_broker::flows::backfill;
use ductstream_broker::flows::store::{self, StorageCheckpoints};
use ductstream_broker::flows::writer::TopicWriter;
use ductstream_broker::log::Log;
use ductstream_broker::sinks::source::LogSource;
use ductstream_broker::sinks::{sink_runner, staging, store as sink_store, SinkState};
use ductstream_cdc::{CheckpointStore, Flow, FlowPhase, FlowSourceOptions, Lsn};
use ductstream_sinks::runtime::{MemoryBudget, SinkPhase};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Snapshot (first run) and stream changes.
    Stream,
    /// Read the current rows of --tables again (op r) into their topics, then stream on.
    Backfill,
}

#[derive(Debug, Parser)]
#[command(name = "ductstream-worker", version, about = "Run one DuctStream CDC flow or sink in its own process")]
struct Args {
    /// The flow to run (created with `ductstream-admin flow create`).
    #[arg(long, required_unless_present = "sink_id", conflicts_with = "sink_id")]
    flow_id: Option<String>,
    /// The sink to run (created with `ductstream-admin sink create`, and stopped so that no
    /// broker runs it too).
    #[arg(long)]
    sink_id: Option<String>,
    /// With --sink-id: memory for records read and not yet written.
    #[arg(long, default_value_t = 256 << 20)]
    sink_memory_bytes: usize,
    /// The broker's store (the same flags as the broker's).
    #[command(flatten)]
    store: ductstream_broker::config::StoreArgs,
    /// The remote tier the brokers use (the same `--tier-s3-*` flags), so that a sink run here
    /// reads what only S3 still holds.
    #[command(flatten)]
    tier: ductstream_broker::tiering::TierArgs,
    /// Partitions of the topics the flow creates.
    #[arg(long, default_value_t = 1)]
    num_partitions: i32,
    #[arg(long, value_enum, default_value_t = Mode::Stream)]
    mode: Mode,
    /// With --mode backfill: schema.table names, comma-separated.
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    /// Parallel snapshot readers for this run (the source option snapshot_workers).
    #[arg(long)]
    snapshot_workers: Option<usize>,
    /// Integer column to split each snapshot table into ranges by (the source option).
    #[arg(long)]
    partition_column: Option<String>,
    /// Ranges per table with --partition-column (the source option partition_count).
    #[arg(long)]
    partition_count: Option<usize>,
    /// Stop after this many polls (one per batch_timeout; for a sink, one a second) in which
    /// nothing new was written (and, for a sink, nothing was left to write).
    #[arg(long)]
    max_empty_reads: Option<u32>,
    /// Start streaming at this LSN. Postgres resumes a logical slot at the later of this and
    /// the slot's confirmed position, so this skips ahead; to read older changes again, replay
    /// the topic (`ductstream-admin stream replay --from-lsn`).
    #[arg(long)]
    start_lsn: Option<String>,
    /// Once the backfill has been read, wait for the flow's table destinations with
    /// batch_mode staging to write it, then apply their staging tables (batch_resolution).
    #[arg(long)]
    resolve_staging: bool,
    /// With --resolve-staging: how long to wait for the destinations to write what was read.
    #[arg(long, default_value_t = 600)]
    resolve_wait_secs: u64,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse_from(ductstream_broker::dash_flags::normalize(std::env::args_os().map(|a| a.to_string_lossy().into_owned())));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ductstream-worker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ductstream-worker: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let (store, data_dir) = args.store.resolve().map_err(|e| e.to_string())?;
    let opened = ductstream_broker::open::open_storage(&store, &data_dir, false).await.map_err(|e| e.to_string())?;
    let opened = ductstream_broker::open::with_tier(opened, &args.tier).await.map_err(|e| e.to_string())?;
    let storage = opened.storage;
    if let Some(sink_id) = &args.sink_id {
        return run_sink(storage, sink_id, &args).await;
    }
    let flow_id = args.flow_id.clone().unwrap_or_default();
    let def = store::load(storage.as_ref(), &flow_id).await.map_err(|e| e.to_string())?;
    let mut source_options = def.source_options(false);
    // This run's snapshot settings, over the flow's.
    let overrides = [
        ("snapshot_workers", args.snapshot_workers.map(|n| n.to_string())),
        ("partition_column", args.partition_column.clone()),
        ("partition_count", args.partition_count.map(|n| n.to_string())),
    ];
    for (key, value) in overrides {
        if let Some(value) = value {
            source_options.insert(key.to_owned(), value);
        }
    }
    let options = FlowSourceOptions::from_map(&source_options).map_err(|e| e.to_string())?;
    let checkpoints = Arc::new(StorageCheckpoints(storage.clone()));
    let flow_id = options.flow_id.clone();
    let mut checkpoint = checkpoints.load(&flow_id).await.map_err(|e| e.to_string())?.unwrap_or_default();
    if let Some(lsn) = &args.start_lsn {
        checkpoint.lsn = lsn.parse::<Lsn>().map_err(|e| format!("--start-lsn {lsn}: {e}"))?;
        checkpoints.save(&flow_id, &checkpoint).await.map_err(|e| e.to_string())?;
    }
    if args.mode == Mode::Backfill {
        if args.tables.is_empty() {
            return Err("--mode backfill needs --tables schema.table[,...]".into());
        }
        backfill::plan(&options, &args.tables, &mut checkpoint).await.map_err(|e| e.to_string())?;
        checkpoints.save(&flow_id, &checkpoint).await.map_err(|e| e.to_string())?;
    }

    let log = Arc::new(Log::new(storage.clone()));
    let writer = Arc::new(TopicWriter::new(log.clone(), args.num_partitions));
    let poll = options.batch_timeout;
    let flow = Flow::new(options, writer, checkpoints).map_err(|e| e.to_string())?;
    let handle = flow.handle();
    let mut task = tokio::spawn(flow.run());
    let mut empty = 0u32;
    let mut written = 0u64;
    let mut resolve_pending = args.resolve_staging;
    loop {
        tokio::select! {
            done = &mut task => {
                return match done {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(format!("the flow task failed: {e}")),
                };
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("stopping");
                handle.stop();
            }
            _ = tokio::time::sleep(poll) => {
                let status = handle.status();
                if status.phase != FlowPhase::Streaming {
                    continue;
                }
                if resolve_pending {
                    resolve_pending = false;
                    let tables = if args.mode == Mode::Backfill { args.tables.clone() } else { Vec::new() };
                    let wait = std::time::Duration::from_secs(args.resolve_wait_secs);
                    let resolved = staging::resolve_flow(storage.as_ref(), &log, &flow_id, &tables, Some(wait)).await.map_err(|e| e.to_string())?;
                    for t in resolved {
                        tracing::info!(sink = %t.sink_id, table = %t.table, rows = t.rows, "resolved the staging table");
                    }
                }
                empty = if status.records_written == written { empty + 1 } else { 0 };
                written = status.records_written;
                if args.max_empty_reads.is_some_and(|max| empty >= max) {
                    tracing::info!(records = written, lsn = %status.confirmed_lsn, "caught up; stopping");
                    handle.stop();
                }
            }
        }
    }
}

/// Runs a stopped sink until Ctrl-C, or until `--max-empty-reads` seconds in a row wrote
/// nothing and left nothing to write.
async fn run_sink(storage: Arc<dyn ductstream_storage::Storage>, id: &str, args: &Args) -> Result<(), String> {
    let def = sink_store::load(storage.as_ref(), id).await.map_err(|e| e.to_string())?;
    if def.state == SinkState::Running {
        return Err(format!("sink {id:?} is RUNNING on the brokers: stop it first (ductstream-admin sink stop {id})"));
    }
    let log = Arc::new(Log::new(storage.clone()));
    let source = Arc::new(LogSource::polling(log));
    let runner = sink_runner(&def, source, MemoryBudget::new(args.sink_memory_bytes)).map_err(|e| e.to_string())?;
    let status = runner.status();
    let stop = CancellationToken::new();
    let mut task = tokio::spawn(runner.run(stop.clone()));
    let (mut empty, mut written) = (0u32, 0u64);
    loop {
        tokio::select! {
            done = &mut task => {
                let s = status.snapshot();
                tracing::info!(records = s.records_written, batches = s.batches_written, dead_letters = s.dead_letters, "sink stopped");
                return match done {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(format!("the sink task failed: {e}")),
                };
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("stopping");
                stop.cancel();
            }
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                let s = status.snapshot();
                let caught_up = s.phase == SinkPhase::Running && s.partitions.values().all(|p| p.lag() == 0);
                empty = if s.records_written == written && caught_up { empty + 1 } else { 0 };
                written = s.records_written;
                if args.max_empty_reads.is_some_and(|max| empty >= max) {
                    tracing::info!(records = written, "caught up; stopping");
                    stop.cancel();
                }
            }
        }
    }
}
