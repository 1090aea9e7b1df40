//! `ductstream-admin`: the command line for DuctStream's gRPC API.
//!
//! `--server https://...` with `--ca-cert` reaches a broker started with `--grpc-tls`;
//! `--user` and `--password` (or DUCTSTREAM_USER and DUCTSTREAM_PASSWORD) log in as a SCRAM
//! user, `--cert` and `--key` present a client certificate.
//!
//! Human-readable tables by default; `--json` prints one JSON document, `--pretty` the same
//! indented. Exits 1 with the server's message when a call fails.

mod acl;
mod connect;
mod durations;
mod flow;
mod output;
mod sink;
mod stream;
mod user;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use output::Format;

#[derive(Debug, Parser)]
#[command(name = "ductstream-admin", version, about = "Administer DuctStream over its gRPC API")]
struct Cli {
    #[command(flatten)]
    target: connect::Target,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Print indented JSON.
    #[arg(long, global = true)]
    pretty: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// CDC flows: create, start, stop, resume, run once...
    Flow {
        #[command(subcommand)]
        command: flow::FlowCommand,
    },
    /// A flow's publication on its source: list, sync.
    Publication {
        #[command(subcommand)]
        command: flow::PublicationCommand,
    },
    /// DDL changes waiting at flows' gates: list, approve, reject, apply.
    Ddl {
        #[command(subcommand)]
        command: flow::DdlCommand,
    },
    /// How far each flow got.
    Checkpoint {
        #[command(subcommand)]
        command: flow::CheckpointCommand,
    },
    /// Sinks: topics consumed into S3, webhooks, Kafka: create, list, start, stop, reset...
    Sink {
        #[command(subcommand)]
        command: sink::SinkCommand,
    },
    /// Durable consumers of a stream (topic): create, pull, ack, replay...
    Stream {
        #[command(subcommand)]
        command: stream::StreamCommand,
    },
    /// SCRAM users: list, set (create or change the password), delete, whoami.
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// ACLs (with --authorizer acl), flows and sinks included: list, add, remove.
    Acl {
        #[command(subcommand)]
        command: acl::AclCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(ductstream_broker::dash_flags::normalize(std::env::args_os().map(|a| a.to_string_lossy().into_owned())));
    let format = match (cli.json, cli.pretty) {
        (_, true) => Format::Pretty,
        (true, false) => Format::Json,
        (false, false) => Format::Table,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ductstream-admin: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Stream { command } => stream::run(&cli.target, command, format).await,
            Command::Sink { command } => sink::run(&cli.target, command, format).await,
            Command::Flow { command } => flow::run_flow(&cli.target, command, format).await,
            Command::Publication { command } => flow::run_publication(&cli.target, command, format).await,
            Command::Ddl { command } => flow::run_ddl(&cli.target, command, format).await,
            Command::Checkpoint { command } => flow::run_checkpoint(&cli.target, command, format).await,
            Command::User { command } => user::run(&cli.target, command, format).await,
            Command::Acl { command } => acl::run(&cli.target, command, format).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ductstream-admin: {message}");
            ExitCode::FAILURE
        }
    }
}
