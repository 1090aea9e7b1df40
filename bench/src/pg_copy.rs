//! `pg-copy`: the rate at which a Postgres database takes the bytes a produce run
//! would store, with nothing of the broker in the way. Each connection runs
//! `COPY ... FROM STDIN (FORMAT binary)` into a plain table of one `bytea`
//! column, one transaction per COPY of `--copy-bytes`, values of
//! `--batch-bytes` (the size of a producer's record batch). The figure is the
//! ceiling for the broker's Postgres storage on the same database.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::{BufMut, BytesMut};
use clap::Args;
use futures::SinkExt;
use serde_json::{Value, json};

use crate::payload::filler;
use crate::stats::{Report, Throughput};

#[derive(Debug, Args)]
pub struct PgCopyArgs {
    /// The database to measure, e.g. the one the broker's `--storage` names.
    #[arg(long)]
    pub dsn: String,
    /// Messages the bytes stand for (the produce run's `--messages`).
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Bytes per message (the produce run's `--size`).
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Bytes per stored value: about one producer batch.
    #[arg(long, default_value_t = 1 << 20)]
    pub batch_bytes: usize,
    /// Bytes per COPY (one transaction, one commit).
    #[arg(long, default_value_t = 2 << 20)]
    pub copy_bytes: usize,
    /// Connections copying at once.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
}

pub fn run(args: &PgCopyArgs) -> Result<PgCopyReport> {
    if args.size == 0 || args.batch_bytes < args.size || args.copy_bytes < args.batch_bytes || args.connections == 0 {
        bail!("need 0 < size <= batch-bytes <= copy-bytes and at least one connection");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    runtime.block_on(run_async(args))
}

const TABLE: &str = "ductstream_bench_copy";

async fn connect(dsn: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(dsn, tokio_postgres::NoTls).await.context("connecting to postgres")?;
    tokio::spawn(connection);
    Ok(client)
}

async fn run_async(args: &PgCopyArgs) -> Result<PgCopyReport> {
    let admin = connect(&args.dsn).await?;
    admin
        .batch_execute(&format!("DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (data bytea NOT NULL)"))
        .await
        .context("creating the bench table")?;
    // As the broker stores batches: out of line, without trying to compress them.
    admin
        .batch_execute(&format!("ALTER TABLE {TABLE} ALTER COLUMN data SET STORAGE EXTERNAL"))
        .await
        .context("setting the column's storage")?;

    let total = args.messages * args.size as u64;
    let per_value = (args.batch_bytes / args.size) * args.size;
    let values_per_copy = (args.copy_bytes / per_value).max(1) as u64;
    let copies = total.div_ceil(per_value as u64 * values_per_copy);
    let value = filler(per_value);

    let started = Instant::now();
    let workers: Vec<_> = (0..args.connections as u64)
        .map(|worker| {
            let dsn = args.dsn.clone();
            let value = value.clone();
            let mine = (worker..copies).step_by(args.connections).count() as u64;
            tokio::spawn(async move { copy_worker(&dsn, &value, values_per_copy, mine).await })
        })
        .collect();
    let mut stored = 0u64;
    for worker in workers {
        stored += worker.await.context("copy worker")??;
    }
    let elapsed = started.elapsed();
    admin.batch_execute(&format!("DROP TABLE {TABLE}")).await.context("dropping the bench table")?;
    Ok(PgCopyReport {
        throughput: Throughput { messages: stored / args.size as u64, bytes: stored, elapsed },
        copies,
        values_per_copy,
        value_bytes: per_value,
        connections: args.connections,
    })
}

/// Runs `copies` COPYs of `values` values each; returns the bytes stored.
async fn copy_worker(dsn: &str, value: &[u8], values: u64, copies: u64) -> Result<u64> {
    let client = connect(dsn).await?;
    let statement = format!("COPY {TABLE} (data) FROM STDIN (FORMAT binary)");
    let mut stored = 0;
    for _ in 0..copies {
        let sink = client.copy_in::<_, bytes::Bytes>(statement.as_str()).await.context("starting COPY")?;
        futures::pin_mut!(sink);
        let mut header = BytesMut::with_capacity(19);
        header.put_slice(b"PGCOPY\n\xff\r\n\0");
        header.put_i32(0); // flags
        header.put_i32(0); // header extension length
        sink.send(header.freeze()).await.context("COPY header")?;
        for _ in 0..values {
            let mut row = BytesMut::with_capacity(10 + value.len());
            row.put_i16(1); // one column
            row.put_i32(i32::try_from(value.len()).context("value too large")?);
            row.put_slice(value);
            sink.send(row.freeze()).await.context("COPY row")?;
            stored += value.len() as u64;
        }
        sink.send(bytes::Bytes::from_static(b"\xff\xff")).await.context("COPY trailer")?; // end of data: -1 columns
        sink.as_mut().finish().await.context("finishing COPY")?;
    }
    Ok(stored)
}

pub struct PgCopyReport {
    throughput: Throughput,
    copies: u64,
    values_per_copy: u64,
    value_bytes: usize,
    connections: usize,
}

impl Report for PgCopyReport {
    fn human(&self) -> String {
        format!(
            "pg-copy: {}\n  {} COPYs of {} values of {} bytes over {} connections ({:.1} ms per COPY per connection)",
            self.throughput.human(),
            self.copies,
            self.values_per_copy,
            self.value_bytes,
            self.connections,
            per_copy_ms(self.throughput.elapsed, self.copies, self.connections),
        )
    }

    fn json(&self) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert("mode".into(), json!("pg-copy"));
        self.throughput.add_json(&mut obj);
        obj.insert("copies".into(), json!(self.copies));
        obj.insert("values_per_copy".into(), json!(self.values_per_copy));
        obj.insert("value_bytes".into(), json!(self.value_bytes));
        obj.insert("connections".into(), json!(self.connections));
        Value::Object(obj)
    }

    fn failure(&self) -> Option<String> {
        None
    }
}

fn per_copy_ms(elapsed: Duration, copies: u64, connections: usize) -> f64 {
    if copies == 0 {
        return 0.0;
    }
    elapsed.as_secs_f64() * 1000.0 * connections as f64 / copies as f64
}
