//! `ductstream-worker`: runs one CDC flow in its own process, on the broker's store.
//!
//! It writes through its own partition log, so it needs a store that several processes can
//! open (Postgres), or an embedded store no broker has open. Brokers on the same Postgres
//! wake their fetches and pulls on its appends.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use ductstream_broker::flows::store::{self, StorageCheckpoints};
use ductstream_broker::flows::writer::TopicWriter;
use ductstream_broker::log::Log;
use ductstream_cdc::{Checkpoint, CheckpointStore, Flow, FlowPhase, FlowSourceOptions, Lsn, SnapshotProgress};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Snapshot (first run) and stream changes.
    Stream,
    /// Read the current rows of --tables again (op r) into their topics, then stream on.
    Backfill,
}

#[derive(Debug, Parser)]
#[command(name = "ductstream-worker", version, about = "Run one DuctStream CDC flow in its own process")]
struct Args {
    /// The flow to run (created with `ductstream-admin flow create`).
    #[arg(long)]
    flow_id: String,
    /// The broker's store: a postgres:// URL, or sled/segment in --data-dir.
    #[arg(long, env = "DUCTSTREAM_STORAGE", default_value = "sled")]
    storage: String,
    #[arg(long, env = "DUCTSTREAM_DATA_DIR", default_value = "./data")]
    data_dir: std::path::PathBuf,
    /// Partitions of the topics the flow creates.
    #[arg(long, default_value_t = 1)]
    num_partitions: i32,
    #[arg(long, value_enum, default_value_t = Mode::Stream)]
    mode: Mode,
    /// With --mode backfill: schema.table names, comma-separated.
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    /// Stop after this many polls (one per batch_timeout) in which nothing new was written.
    #[arg(long)]
    max_empty_reads: Option<u32>,
    /// Start streaming at this LSN. Postgres resumes a logical slot at the later of this and
    /// the slot's confirmed position, so this skips ahead; to read older changes again, replay
    /// the topic (`ductstream-admin stream replay --from-lsn`).
    #[arg(long)]
    start_lsn: Option<String>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
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
    let opened = ductstream_broker::open::open_storage(&args.storage, &args.data_dir, false).await.map_err(|e| e.to_string())?;
    let storage = opened.storage;
    let def = store::load(storage.as_ref(), &args.flow_id).await.map_err(|e| e.to_string())?;
    let options = FlowSourceOptions::from_map(&def.source_options(false)).map_err(|e| e.to_string())?;
    let checkpoints = Arc::new(StorageCheckpoints(storage.clone()));
    let flow_id = options.flow_id.clone();
    let mut checkpoint = checkpoints.load(&flow_id).await.map_err(|e| e.to_string())?.unwrap_or_default();
    if let Some(lsn) = &args.start_lsn {
        checkpoint.lsn = lsn.parse::<Lsn>().map_err(|e| format!("--start-lsn {lsn}: {e}"))?;
        checkpoints.save(&flow_id, &checkpoint).await.map_err(|e| e.to_string())?;
    }
    if args.mode == Mode::Backfill {
        plan_backfill(&options, &args.tables, &mut checkpoint).await?;
        checkpoints.save(&flow_id, &checkpoint).await.map_err(|e| e.to_string())?;
    }

    let log = Arc::new(Log::new(storage.clone()));
    let writer = Arc::new(TopicWriter::new(log, args.num_partitions));
    let poll = options.batch_timeout;
    let flow = Flow::new(options, writer, checkpoints).map_err(|e| e.to_string())?;
    let handle = flow.handle();
    let mut task = tokio::spawn(flow.run());
    let mut empty = 0u32;
    let mut written = 0u64;
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

/// Marks `tables` for a fresh read: the flow reads unfinished snapshot chunks before it
/// streams, in new transactions, so their rows come again as op r (changes meanwhile repeat).
async fn plan_backfill(options: &FlowSourceOptions, tables: &[String], checkpoint: &mut Checkpoint) -> Result<(), String> {
    if tables.is_empty() {
        return Err("--mode backfill needs --tables schema.table[,...]".into());
    }
    let source = ductstream_cdc::SourceConfig::parse(&options.dsn).map_err(|e| e.to_string())?;
    let client = source.connect().await.map_err(|e| e.to_string())?;
    let names: Vec<ductstream_cdc::publication::TableName> =
        tables.iter().map(|t| ductstream_cdc::publication::TableName::parse(t)).collect();
    let chunks = ductstream_cdc::snapshot::plan(&client, &names, options).await.map_err(|e| e.to_string())?;
    tracing::info!(tables = ?tables, chunks = chunks.len(), "backfill planned");
    checkpoint.snapshot = Some(SnapshotProgress {
        consistent_point: checkpoint.lsn,
        chunks,
        done: BTreeSet::new(),
        complete: false,
    });
    Ok(())
}
