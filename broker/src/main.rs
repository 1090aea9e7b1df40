//! `ductstream`: the broker process.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ductstream_broker::config::{Args, AuthorizerKind, BrokerConfig, LogFormat};
use ductstream_broker::security::tls::ReloadingTls;
use ductstream_broker::security::{Listener, ListenerSpec};
use ductstream_broker::{server, Broker, BrokerError, Result};
#[cfg(feature = "postgres")]
use ductstream_storage::PostgresStorage;
use tokio::net::TcpListener;

fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ductstream: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "ductstream stopped");
            eprintln!("ductstream: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tokio_postgres=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Wakes this broker's long polls when any broker on the same database appends, and keeps
/// its partitions' log starts current when any deletes records. With a remote tier the log
/// start in a notice is the database's own, which local retention raises while older data is
/// still readable remotely: those are then learnt from storage, on resync, not from notices.
#[cfg(feature = "postgres")]
async fn follow_appends(postgres: Arc<PostgresStorage>, broker: Arc<Broker>, tiered: bool) {
    loop {
        match postgres.subscribe_appends().await {
            Ok(mut notices) => {
                // What changed while nobody listened is read again from storage.
                broker.log.resync_bounds();
                while let Some(mut notice) = notices.recv().await {
                    if tiered {
                        notice.offsets.log_start = 0;
                    }
                    broker.log.publish_external(notice.topic_id, notice.partition, notice.offsets);
                }
                tracing::warn!("lost the Postgres append notifications; subscribing again");
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for Postgres append notifications; retrying"),
        }
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let (store, data_dir) = args.store()?;
    let opened = ductstream_broker::open::open_storage(&store, &data_dir, args.fsync).await?;
    let opened = ductstream_broker::open::with_tier(opened, &args.tier).await?;
    let storage = opened.storage;
    let (listeners, bound, tls) = bind_listeners(&args).await?;
    let broker = Broker::start(BrokerConfig::new(&args, &bound)?, storage.clone(), args.group_config()).await?;
    if let Some(tls) = tls {
        let every = Duration::from_millis(args.tls.ssl_reload_interval_ms.max(10));
        tokio::spawn(tls.watch(every, broker.shutdown.clone()));
    }
    tokio::spawn(ductstream_broker::cluster::keep_alive(broker.clone()));
    tokio::spawn(broker.authorizer.clone().follow(storage.clone(), broker.shutdown.clone()));
    tokio::spawn(broker.quotas.clone().follow(storage.clone(), broker.shutdown.clone()));
    if let Some(oauth) = &broker.config.oauth {
        tokio::spawn(oauth.clone().follow(broker.shutdown.clone()));
    }
    tokio::spawn(ductstream_broker::retention::run(broker.clone()));
    tokio::spawn(ductstream_broker::compaction::run(broker.clone()));
    tokio::spawn(ductstream_broker::transactions::coordinator::run(broker.clone()));
    #[cfg(feature = "sinks")]
    let lake = args.tier.lake()?.map(Arc::new);
    #[cfg(not(feature = "sinks"))]
    let lake = None;
    if let Some(tier) = opened.tier.clone() {
        tokio::spawn(ductstream_broker::tiering::run(broker.clone(), tier, lake));
    }
    #[cfg(feature = "postgres")]
    if let Some(postgres) = opened.postgres {
        tokio::spawn(follow_appends(postgres, broker.clone(), opened.tier.is_some()));
    }

    if let Some(addr) = args.metrics_listen {
        let metrics = TcpListener::bind(addr)
            .await
            .map_err(|e| BrokerError::Config(format!("cannot listen for metrics on {addr}: {e}")))?;
        // Machine-readable: tests and scripts wait for these lines to learn the ports.
        println!("listening metrics={}", metrics.local_addr()?);
        tokio::spawn(ductstream_broker::api::serve_metrics(metrics, broker.clone()));
    }
    let flows = ductstream_broker::flows::FlowManager::new(broker.clone(), args.ddl_gate);
    let flows_task = tokio::spawn(flows.clone().run());
    if let Some(schedule) = broker.config.schedule.clone() {
        tokio::spawn(ductstream_broker::flows::schedule::run(flows.clone(), schedule, broker.config.schedule_empty_reads));
    }
    let sinks = ductstream_broker::sinks::SinkManager::new(broker.clone(), args.sink_memory_bytes);
    let sinks_task = tokio::spawn(sinks.clone().run());
    if let Some(addr) = args.console_listen {
        // Visitors log in when Kafka clients must: the console shows and changes what they can.
        let options = ductstream_broker::console::Options {
            must_log_in: broker.config.authorizer != AuthorizerKind::None || args.listener_specs()?.iter().any(|s| s.protocol.uses_sasl()),
            sample_every: Duration::from_millis(args.console_sample_interval_ms),
            tls: match args.console_tls {
                true => Some(ReloadingTls::load(args.tls.files()?, &[b"http/1.1"])?),
                false => None,
            },
        };
        if let Some(tls) = options.tls.clone() {
            let every = Duration::from_millis(args.tls.ssl_reload_interval_ms.max(10));
            tokio::spawn(tls.watch(every, broker.shutdown.clone()));
        }
        let console = TcpListener::bind(addr)
            .await
            .map_err(|e| BrokerError::Config(format!("cannot listen for the console on {addr}: {e}")))?;
        println!("listening console={}", console.local_addr()?);
        tokio::spawn(ductstream_broker::console::serve(console, broker.clone(), flows.clone(), sinks.clone(), options));
    }
    if let Some(addr) = args.grpc_listen.0 {
        let grpc = TcpListener::bind(addr)
            .await
            .map_err(|e| BrokerError::Config(format!("cannot listen for gRPC on {addr}: {e}")))?;
        let tls = match args.grpc_tls {
            // HTTP/2 negotiated by ALPN, as gRPC clients over TLS require.
            true => Some(ReloadingTls::load(args.tls.files()?, &[b"h2"])?),
            false => None,
        };
        if let Some(tls) = tls.clone() {
            let every = Duration::from_millis(args.tls.ssl_reload_interval_ms.max(10));
            tokio::spawn(tls.watch(every, broker.shutdown.clone()));
        }
        println!("listening grpc={}", grpc.local_addr()?);
        let (broker, flows, sinks) = (broker.clone(), flows.clone(), sinks.clone());
        tokio::spawn(async move {
            if let Err(e) = ductstream_broker::grpc::serve(grpc, tls, broker, flows, sinks).await {
                tracing::error!(error = %e, "the gRPC API stopped");
            }
        });
    }
    // Every listener gets a line; the first also the line scripts have always read, last.
    for (spec, addr) in &bound {
        println!("listening kafka.{}={addr}", spec.name);
    }
    println!("listening kafka={}", bound[0].1);
    tracing::info!(
        listeners = %bound.iter().map(|(s, a)| format!("{}://{a}", s.name)).collect::<Vec<_>>().join(","),
        storage = storage.engine(),
        fsync = args.fsync,
        data_dir = %data_dir.display(),
        advertised = %broker.config.me().listeners_text(),
        "ductstream started"
    );

    let shutdown = broker.shutdown.clone();
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        tracing::info!(signal, "shutting down");
        shutdown.cancel();
    });
    server::run(listeners, broker, Duration::from_secs(args.shutdown_timeout_s)).await;
    // Flows write and confirm what they have read, and sinks stop between batches, before the
    // process exits.
    let _ = flows_task.await;
    let _ = sinks_task.await;
    tracing::info!("ductstream stopped");
    Ok(())
}

type Bound = (Vec<(TcpListener, Arc<Listener>)>, Vec<(ListenerSpec, std::net::SocketAddr)>, Option<Arc<ReloadingTls>>);

/// Binds every Kafka listener; TLS files are loaded once and shared by the TLS listeners.
async fn bind_listeners(args: &Args) -> Result<Bound> {
    let specs = args.listener_specs()?;
    let tls = match specs.iter().any(|s| s.protocol.uses_tls()) {
        true => Some(ReloadingTls::load(args.tls.files()?, &[])?),
        false => None,
    };
    let (mut listeners, mut bound) = (Vec::new(), Vec::new());
    for spec in specs {
        let socket = TcpListener::bind(spec.bind)
            .await
            .map_err(|e| BrokerError::Config(format!("cannot listen on {} ({}): {e}", spec.bind, spec.name)))?;
        let listener = Listener::new(&spec, spec.protocol.uses_tls().then(|| tls.clone()).flatten());
        bound.push((spec, socket.local_addr()?));
        listeners.push((socket, listener));
    }
    Ok((listeners, bound, tls))
}

/// Waits for SIGTERM or SIGINT and names it.
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::warn!("cannot install signal handlers; stop with kill -9");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
