//! Command-line flags (each also a `DUCTSTREAM_*` environment variable) and the broker
//! settings derived from them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum};

#[derive(Debug, Clone, Parser)]
#[command(name = "ductstream", version, about = "A Kafka-compatible broker on sled or Postgres")]
pub struct Args {
    /// Address the Kafka listener binds (port 0 picks a free port).
    #[arg(long, env = "DUCTSTREAM_KAFKA_LISTEN", default_value = "127.0.0.1:9092")]
    pub kafka_listen: SocketAddr,

    /// host:port that clients are told to connect to; defaults to the bound listener address.
    #[arg(long, env = "DUCTSTREAM_ADVERTISED_LISTENER")]
    pub advertised_listener: Option<String>,

    /// Folder for the sled store.
    #[arg(long, env = "DUCTSTREAM_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Storage engine: `sled` (the embedded default), `segment` (append-only segment files, the
    /// fast embedded engine), `memory` or a `postgres://` URL.
    #[arg(long, env = "DUCTSTREAM_STORAGE", default_value = "sled")]
    pub storage: String,

    /// fsync on every group commit, so acknowledged records survive a power loss (without it
    /// they survive a crash or kill of the process).
    #[arg(long, env = "DUCTSTREAM_FSYNC", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub fsync: bool,

    /// Address the gRPC API (ductstream.v1, with server reflection) binds; port 0 picks a free
    /// port, `off` turns it off.
    #[arg(long, env = "DUCTSTREAM_GRPC_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_optional_addr)]
    pub grpc_listen: OptionalAddr,

    /// CDC flows pause at each DDL change until it is approved (`ductstream-admin ddl`), unless
    /// a flow's source options say otherwise.
    #[arg(long, env = "DUCTSTREAM_DDL_GATE", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub ddl_gate: bool,

    /// Memory every sink of this broker shares for records read and not yet written; past it,
    /// sinks stop reading until written batches free some.
    #[arg(long, env = "DUCTSTREAM_SINK_MEMORY_BYTES", default_value_t = 256 << 20)]
    pub sink_memory_bytes: usize,

    /// Address for the Prometheus `/metrics` endpoint; off when not given.
    #[arg(long, env = "DUCTSTREAM_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Log line format on stderr.
    #[arg(long, env = "DUCTSTREAM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// This broker's node id in metadata responses.
    #[arg(long, env = "DUCTSTREAM_NODE_ID", default_value_t = 1)]
    pub node_id: i32,

    /// Cluster id reported to clients.
    #[arg(long, env = "DUCTSTREAM_CLUSTER_ID", default_value = "ductstream")]
    pub cluster_id: String,

    /// Create a topic when a client asks for metadata of, or produces to, an unknown topic
    /// (Kafka's `auto.create.topics.enable`).
    #[arg(long, env = "DUCTSTREAM_AUTO_CREATE_TOPICS", default_value_t = true, action = ArgAction::Set)]
    pub auto_create_topics: bool,

    /// Partitions of an auto-created topic, and of a created one that asks for the default
    /// (Kafka's `num.partitions`).
    #[arg(long, env = "DUCTSTREAM_NUM_PARTITIONS", default_value_t = 1)]
    pub num_partitions: i32,

    /// Largest request frame accepted (Kafka's `socket.request.max.bytes`).
    #[arg(long, env = "DUCTSTREAM_SOCKET_REQUEST_MAX_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub socket_request_max_bytes: usize,

    /// Largest record batch accepted, unless a topic overrides it (Kafka's `message.max.bytes`).
    #[arg(long, env = "DUCTSTREAM_MESSAGE_MAX_BYTES", default_value_t = 1_048_588)]
    pub message_max_bytes: i32,

    /// How long records are kept, by their batch's largest timestamp, unless a topic's
    /// `retention.ms` says otherwise (Kafka's `log.retention.ms`); -1 keeps them forever.
    #[arg(long, env = "DUCTSTREAM_LOG_RETENTION_MS", default_value_t = 604_800_000, allow_hyphen_values = true)]
    pub log_retention_ms: i64,

    /// How often the broker deletes records past their retention, in the partitions it leads
    /// (Kafka's `log.retention.check.interval.ms`).
    #[arg(long, env = "DUCTSTREAM_LOG_RETENTION_CHECK_INTERVAL_MS", default_value_t = 300_000)]
    pub log_retention_check_interval_ms: u64,

    /// How long the first rebalance of an empty group waits for more members (Kafka's
    /// `group.initial.rebalance.delay.ms`).
    #[arg(long, env = "DUCTSTREAM_GROUP_INITIAL_REBALANCE_DELAY_MS", default_value_t = 3000)]
    pub group_initial_rebalance_delay_ms: u64,

    /// Smallest session timeout a group member may ask for (`group.min.session.timeout.ms`).
    #[arg(long, env = "DUCTSTREAM_GROUP_MIN_SESSION_TIMEOUT_MS", default_value_t = 6000)]
    pub group_min_session_timeout_ms: u64,

    /// Largest session timeout a group member may ask for (`group.max.session.timeout.ms`).
    #[arg(long, env = "DUCTSTREAM_GROUP_MAX_SESSION_TIMEOUT_MS", default_value_t = 1_800_000)]
    pub group_max_session_timeout_ms: u64,

    /// Session timeout of members of KIP-848 consumer groups (`group.consumer.session.timeout.ms`).
    #[arg(long, env = "DUCTSTREAM_GROUP_CONSUMER_SESSION_TIMEOUT_MS", default_value_t = 45_000)]
    pub group_consumer_session_timeout_ms: u64,

    /// How often members of KIP-848 consumer groups heartbeat
    /// (`group.consumer.heartbeat.interval.ms`).
    #[arg(long, env = "DUCTSTREAM_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS", default_value_t = 5_000)]
    pub group_consumer_heartbeat_interval_ms: u64,

    /// Length of this broker's lease in a shared store (Postgres): when it runs out, its
    /// partitions and groups move to the live brokers.
    #[arg(long, env = "DUCTSTREAM_BROKER_LEASE_MS", default_value_t = 10_000)]
    pub broker_lease_ms: u64,

    /// Seconds to let in-flight requests finish after SIGINT/SIGTERM.
    #[arg(long, env = "DUCTSTREAM_SHUTDOWN_TIMEOUT_S", default_value_t = 30)]
    pub shutdown_timeout_s: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The settings request handlers read.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub cluster_id: String,
    pub advertised_host: String,
    pub advertised_port: i32,
    pub auto_create_topics: bool,
    pub num_partitions: i32,
    pub socket_request_max_bytes: usize,
    pub message_max_bytes: i32,
    pub broker_lease: std::time::Duration,
    /// The default `retention.ms`; negative: forever.
    pub log_retention_ms: i64,
    pub retention_check_interval: std::time::Duration,
    /// Where the log lives, as DescribeLogDirs names it: the data dir for the embedded engines
    /// (shown as an absolute path), `postgres` or `memory` otherwise.
    pub log_dir: String,
    /// The local folder holding the log, whose volume's sizes DescribeLogDirs reports (None
    /// when the log is not in a local folder).
    pub log_volume: Option<PathBuf>,
}

impl Args {
    pub fn group_config(&self) -> crate::groups::GroupConfig {
        crate::groups::GroupConfig {
            initial_rebalance_delay: std::time::Duration::from_millis(self.group_initial_rebalance_delay_ms),
            min_session_timeout: std::time::Duration::from_millis(self.group_min_session_timeout_ms),
            max_session_timeout: std::time::Duration::from_millis(self.group_max_session_timeout_ms),
            consumer_session_timeout: std::time::Duration::from_millis(self.group_consumer_session_timeout_ms),
            consumer_heartbeat_interval: std::time::Duration::from_millis(self.group_consumer_heartbeat_interval_ms),
        }
    }
}

impl BrokerConfig {
    /// Settings for a broker bound at `bound`, as `args` ask.
    pub fn new(args: &Args, bound: SocketAddr) -> crate::Result<BrokerConfig> {
        let (advertised_host, advertised_port) = match &args.advertised_listener {
            Some(listener) => parse_host_port(listener)?,
            None => (bound.ip().to_string(), i32::from(bound.port())),
        };
        if args.num_partitions < 1 {
            return Err(crate::BrokerError::Config("--num-partitions must be at least 1".into()));
        }
        let (log_dir, log_volume) = if args.storage.starts_with("postgres") {
            ("postgres".to_owned(), None)
        } else if args.storage == "memory" {
            ("memory".to_owned(), None)
        } else {
            (args.data_dir.display().to_string(), Some(args.data_dir.clone()))
        };
        Ok(BrokerConfig {
            log_dir,
            log_volume,
            node_id: args.node_id,
            cluster_id: args.cluster_id.clone(),
            advertised_host,
            advertised_port,
            auto_create_topics: args.auto_create_topics,
            num_partitions: args.num_partitions,
            socket_request_max_bytes: args.socket_request_max_bytes,
            message_max_bytes: args.message_max_bytes,
            broker_lease: std::time::Duration::from_millis(args.broker_lease_ms.max(300)),
            log_retention_ms: args.log_retention_ms,
            retention_check_interval: std::time::Duration::from_millis(args.log_retention_check_interval_ms.max(10)),
        })
    }
}

fn parse_host_port(listener: &str) -> crate::Result<(String, i32)> {
    let listener = listener.split_once("://").map_or(listener, |(_, rest)| rest);
    let (host, port) = listener
        .rsplit_once(':')
        .ok_or_else(|| crate::BrokerError::Config(format!("advertised listener {listener:?} is not host:port")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| crate::BrokerError::Config(format!("advertised listener {listener:?} has a bad port")))?;
    Ok((host.trim_matches(['[', ']']).to_string(), i32::from(port)))
}

/// A listen address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalAddr(pub Option<SocketAddr>);

fn parse_optional_addr(text: &str) -> Result<OptionalAddr, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(OptionalAddr(None));
    }
    text.parse().map(|a| OptionalAddr(Some(a))).map_err(|e| format!("{text:?} is not host:port or off: {e}"))
}
