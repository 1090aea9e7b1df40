//! `ductstream-bench`: a load generator for DuctStream (or any Kafka broker)
//! built on librdkafka. See README.md for the modes.

mod cdc;
mod client;
mod consume;
mod delivery;
mod durable;
mod group_failover;
mod group_join;
mod latency;
mod nats_durable;
mod payload;
mod pg_copy;
mod produce;
mod sink;
mod stats;
mod topic;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::client::{ClientOpts, parse_key_val};
use crate::stats::{Report, print_report};

#[derive(Debug, Parser)]
#[command(name = "ductstream-bench", version, about)]
struct Cli {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:9092",
        env = "DUCTSTREAM_BOOTSTRAP"
    )]
    bootstrap: String,
    /// Print the result as a single JSON object instead of a line of text.
    #[arg(long, global = true)]
    json: bool,
    /// Extra librdkafka setting for every client the mode creates, e.g.
    /// `--set socket.nagle.disable=true`; repeatable, wins over the bench's
    /// own settings.
    #[arg(long = "set", value_name = "KEY=VALUE", global = true, value_parser = parse_key_val)]
    set: Vec<(String, String)>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Produce N messages as fast as possible: throughput and delivery latency.
    Produce(produce::ProduceArgs),
    /// Read a topic from the beginning (explicit assignment, no group): throughput.
    Consume(consume::ConsumeArgs),
    /// Produce at a fixed rate while consuming: end-to-end latency.
    Latency(latency::LatencyArgs),
    /// Time from subscribe() to the first record for a new consumer of a new group.
    GroupJoin(group_join::GroupJoinArgs),
    /// Time for a consumer group to settle after a member is killed (or leaves).
    GroupFailover(group_failover::GroupFailoverArgs),
    /// Drain a topic through a durable consumer over gRPC (Pull, then Ack):
    /// throughput and pull-to-ack latency.
    Durable(durable::DurableArgs),
    /// Inserts, updates and deletes into Postgres streamed by a CDC flow into a topic:
    /// changes/s and commit-to-topic latency, with pg_recvlogical's decode rate as the limit.
    Cdc(cdc::CdcArgs),
    /// The `durable` job against NATS JetStream (durable pull consumer).
    NatsDurable(nats_durable::NatsDurableArgs),
    /// A sink draining a topic into S3, a webhook or Kafka: msgs/s and MB/s until every record
    /// is committed.
    Sink(sink::SinkArgs),
    /// The limit for Postgres storage: the same bytes COPYed into a plain bytea table.
    PgCopy(pg_copy::PgCopyArgs),
    /// One member of a consumer group, run by `group-failover` as a child
    /// process: prints a JSON line per assignment change.
    #[command(hide = true)]
    GroupMember(group_failover::GroupMemberArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let opts = ClientOpts {
        bootstrap: cli.bootstrap,
        overrides: cli.set,
    };
    let report: Box<dyn Report> = match &cli.command {
        Command::Produce(args) => Box::new(produce::run(&opts, args)?),
        Command::Consume(args) => Box::new(consume::run(&opts, args)?),
        Command::Latency(args) => Box::new(latency::run(&opts, args)?),
        Command::GroupJoin(args) => Box::new(group_join::run(&opts, args)?),
        Command::GroupFailover(args) => Box::new(group_failover::run(&opts, args)?),
        Command::Durable(args) => Box::new(durable::run(&opts, args)?),
        Command::Cdc(args) => Box::new(cdc::run(&opts, args)?),
        Command::NatsDurable(args) => Box::new(nats_durable::run(args)?),
        Command::PgCopy(args) => Box::new(pg_copy::run(args)?),
        Command::Sink(args) => Box::new(sink::run(&opts, args)?),
        Command::GroupMember(args) => return group_failover::run_member(&opts, args),
    };
    match print_report(report.as_ref(), cli.json) {
        // Output piped into e.g. `head`: not the bench's failure.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.context("printing the report")?,
    }
    if let Some(failure) = report.failure() {
        bail!(failure);
    }
    Ok(())
}
