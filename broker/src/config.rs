//! Command-line flags (each also a `DUCTSTREAM_*` environment variable) and the broker
//! settings derived from them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum};
use ductstream_storage::Endpoint;

use crate::security::listeners::{parse_advertised, parse_listeners, ListenerSpec, SecurityProtocol};
use crate::security::sasl::MECHANISMS;
use crate::security::tls::{ClientAuth, TlsFiles};

#[derive(Debug, Clone, Parser)]
#[command(name = "ductstream", version, about = "A Kafka-compatible broker, its data on local disk or in Postgres")]
pub struct Args {
    /// Address the Kafka listener binds (port 0 picks a free port; `:9092` means every
    /// interface).
    #[arg(long, env = "DUCTSTREAM_KAFKA_LISTEN", default_value = "127.0.0.1:9092", value_parser = parse_listen)]
    pub kafka_listen: SocketAddr,

    /// host:port that clients are told to connect to; defaults to the bound listener address.
    #[arg(long, env = "DUCTSTREAM_ADVERTISED_LISTENER")]
    pub advertised_listener: Option<String>,

    /// Kafka listeners with their security protocols, instead of `--kafka-listen`:
    /// `PLAINTEXT://127.0.0.1:9092,SASL_SSL://:9093` (Kafka's `listeners`). A listener is named
    /// after its protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) or mapped to one with
    /// `--listener-security-protocol-map`.
    #[arg(long, env = "DUCTSTREAM_LISTENERS")]
    pub listeners: Option<String>,

    /// What clients are told per listener, `NAME://host:port,...` (Kafka's
    /// `advertised.listeners`); a listener not named here advertises its bound address.
    #[arg(long, env = "DUCTSTREAM_ADVERTISED_LISTENERS")]
    pub advertised_listeners: Option<String>,

    /// Security protocols of listeners not named after one: `INTERNAL:SASL_SSL,EXTERNAL:SSL`.
    #[arg(long, env = "DUCTSTREAM_LISTENER_SECURITY_PROTOCOL_MAP")]
    pub listener_security_protocol_map: Option<String>,

    #[command(flatten)]
    pub tls: TlsArgs,

    /// SASL mechanisms offered on SASL listeners (Kafka's `sasl.enabled.mechanisms`); PLAIN,
    /// SCRAM-SHA-256 and SCRAM-SHA-512 check the SCRAM credentials in storage.
    #[arg(long, env = "DUCTSTREAM_SASL_ENABLED_MECHANISMS", default_value = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512")]
    pub sasl_enabled_mechanisms: String,

    #[command(flatten)]
    pub oauth: OAuthArgs,

    /// `acl` checks every request against the ACLs in storage (Kafka's StandardAuthorizer);
    /// `none` lets every client do everything (the ACL APIs then answer SECURITY_DISABLED).
    #[arg(long, env = "DUCTSTREAM_AUTHORIZER", value_enum, default_value_t = AuthorizerKind::None)]
    pub authorizer: AuthorizerKind,

    /// Principals the authorizer allows everything, separated by `;` (Kafka's `super.users`):
    /// `User:admin;User:CN=ops,O=Acme`.
    #[arg(long, env = "DUCTSTREAM_SUPER_USERS", default_value = "")]
    pub super_users: String,

    /// Allow a request on a resource no ACL names (Kafka's `allow.everyone.if.no.acl.found`).
    #[arg(long, env = "DUCTSTREAM_ALLOW_EVERYONE_IF_NO_ACL_FOUND", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_everyone_if_no_acl_found: bool,

    /// Most open connections from one client address; more are closed as they are accepted
    /// (Kafka's `max.connections.per.ip`).
    #[arg(long, env = "DUCTSTREAM_MAX_CONNECTIONS_PER_IP", default_value_t = usize::MAX, hide_default_value = true)]
    pub max_connections_per_ip: usize,

    /// Most open Kafka connections in all (Kafka's `max.connections`).
    #[arg(long, env = "DUCTSTREAM_MAX_CONNECTIONS", default_value_t = usize::MAX, hide_default_value = true)]
    pub max_connections: usize,

    /// SASL clients must re-authenticate within this many milliseconds or have their
    /// connection closed (Kafka's `connections.max.reauth.ms`, KIP-368); 0: never.
    #[arg(long, env = "DUCTSTREAM_CONNECTIONS_MAX_REAUTH_MS", default_value_t = 0)]
    pub connections_max_reauth_ms: u64,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub tier: crate::tiering::TierArgs,

    /// fsync on every group commit, so acknowledged records survive a power loss (without it
    /// they survive a crash or kill of the process).
    #[arg(long, env = "DUCTSTREAM_FSYNC", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub fsync: bool,

    /// Address the gRPC API (ductstream.v1, with server reflection) binds; port 0 picks a free
    /// port, `:8080` means every interface, `off` turns it off.
    #[arg(long, env = "DUCTSTREAM_GRPC_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_optional_addr)]
    pub grpc_listen: OptionalAddr,

    /// Serve the gRPC API over TLS, with the certificate, key and client CA of the Kafka
    /// listeners (`--ssl-*`, reloaded alike); a client certificate's subject is the caller's
    /// principal unless the call carries a user and password.
    #[arg(long, env = "DUCTSTREAM_GRPC_TLS", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub grpc_tls: bool,

    /// CDC flows pause at each DDL change until it is approved (`ductstream-admin ddl`), unless
    /// a flow's source options say otherwise.
    #[arg(long, env = "DUCTSTREAM_DDL_GATE", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub ddl_gate: bool,

    /// Gated DDL changes are approved as they arrive (recorded as approved; the flow does not
    /// pause): the gate keeps its record of every change.
    #[arg(long, env = "DUCTSTREAM_DDL_AUTO_APPROVE", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub ddl_auto_approve: bool,

    /// Gated DDL changes are applied as they arrive (recorded as applied), which implies
    /// approval.
    #[arg(long, env = "DUCTSTREAM_DDL_AUTO_APPLY", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub ddl_auto_apply: bool,

    /// Run CDC flows on a schedule instead of continuously: a 6-field cron, seconds first, in
    /// UTC (`*/10 * * * * *`: every 10 s). At each tick every RUNNING flow runs once until it
    /// has caught up, unless its previous run goes on. `DUCTSTREAM_DBOS_SCHEDULE` (with
    /// `DUCTSTREAM_DBOS_ENABLED=true`) is taken when this is not given.
    #[arg(long, env = "DUCTSTREAM_SCHEDULE")]
    pub schedule: Option<String>,

    /// A scheduled run stops after this many batch timeouts without a new record.
    #[arg(long, env = "DUCTSTREAM_SCHEDULE_EMPTY_READS", default_value_t = 3)]
    pub schedule_empty_reads: u32,

    /// The wire format of CDC flows that name none: json, avro, proto, arrow or parquet (or the
    /// API's enum names, WIRE_FORMAT_JSON…).
    #[arg(long, env = "DUCTSTREAM_WIRE_FORMAT", default_value = "json")]
    pub wire_format: String,

    /// Refuse flows whose wire_format is not --wire-format.
    #[arg(long, env = "DUCTSTREAM_WIRE_ENFORCE", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wire_enforce: bool,

    /// Memory every sink of this broker shares for records read and not yet written; past it,
    /// sinks stop reading until written batches free some.
    #[arg(long, env = "DUCTSTREAM_SINK_MEMORY_BYTES", default_value_t = 256 << 20)]
    pub sink_memory_bytes: usize,

    /// Address for the Prometheus `/metrics` endpoint; off when not given.
    #[arg(long, env = "DUCTSTREAM_METRICS_LISTEN", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,

    /// Address for the web console (`http://<address>/`); off when not given. Visitors log in
    /// as a broker user (HTTP Basic) when the broker authorizes or authenticates clients.
    #[arg(long, env = "DUCTSTREAM_CONSOLE_LISTEN", value_parser = parse_listen)]
    pub console_listen: Option<SocketAddr>,

    /// How often the console samples throughput and lag for its charts (it keeps 360 samples).
    #[arg(long, env = "DUCTSTREAM_CONSOLE_SAMPLE_INTERVAL_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub console_sample_interval_ms: u64,

    /// Serve the console over TLS (HTTPS), with the certificate, key and client CA of the Kafka
    /// listeners (`--ssl-*`, reloaded alike); a client certificate logs the visitor in as its
    /// subject.
    #[arg(long, env = "DUCTSTREAM_CONSOLE_TLS", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub console_tls: bool,

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

    /// A pull from a durable consumer group that does not exist yet creates it with the
    /// defaults (deliver all, ack wait 30 s), as a group's state starts with its first pull;
    /// `false` makes pulls require `stream create` first.
    #[arg(long, env = "DUCTSTREAM_DURABLE_AUTO_CREATE", default_value_t = true, action = ArgAction::Set)]
    pub durable_auto_create: bool,

    /// Partitions of an auto-created topic, and of a created one that asks for the default
    /// (Kafka's `num.partitions`).
    #[arg(long, env = "DUCTSTREAM_NUM_PARTITIONS", default_value_t = 1)]
    pub num_partitions: i32,

    /// Largest request frame accepted (Kafka's `socket.request.max.bytes`).
    #[arg(long, env = "DUCTSTREAM_SOCKET_REQUEST_MAX_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub socket_request_max_bytes: usize,

    /// Memory all connections' in-flight requests may hold at once (Kafka's
    /// `queued.max.request.bytes`); past it, connections stop reading until responses go out.
    #[arg(long, env = "DUCTSTREAM_QUEUED_MAX_REQUEST_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub queued_max_request_bytes: usize,

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

    /// Whether the log cleaner compacts topics whose `cleanup.policy` has `compact` (Kafka's
    /// `log.cleaner.enable`).
    #[arg(long, env = "DUCTSTREAM_LOG_CLEANER_ENABLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub log_cleaner_enable: bool,

    /// How long the log cleaner sleeps between passes over the compacted partitions this broker
    /// leads (Kafka's `log.cleaner.backoff.ms`).
    #[arg(long, env = "DUCTSTREAM_LOG_CLEANER_BACKOFF_MS", default_value_t = 15_000)]
    pub log_cleaner_backoff_ms: u64,

    /// Memory for the cleaner's latest offset per key in one pass; a pass over more keys cleans
    /// up to where it filled, the rest at the next (Kafka's `log.cleaner.dedupe.buffer.size`).
    #[arg(long, env = "DUCTSTREAM_LOG_CLEANER_DEDUPE_BUFFER_SIZE", default_value_t = 128 * 1024 * 1024)]
    pub log_cleaner_dedupe_buffer_size: usize,

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

/// TLS for the SSL and SASL_SSL listeners.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// PEM certificate chain of the TLS listeners (server certificate first).
    #[arg(long, env = "DUCTSTREAM_SSL_CERTIFICATE")]
    pub ssl_certificate: Option<PathBuf>,

    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "DUCTSTREAM_SSL_KEY")]
    pub ssl_key: Option<PathBuf>,

    /// PEM bundle of the CAs that sign client certificates.
    #[arg(long, env = "DUCTSTREAM_SSL_CLIENT_CA")]
    pub ssl_client_ca: Option<PathBuf>,

    /// Whether TLS clients must present a certificate (Kafka's `ssl.client.auth`); its subject
    /// becomes the principal on SSL listeners.
    #[arg(long, env = "DUCTSTREAM_SSL_CLIENT_AUTH", value_enum, default_value_t = ClientAuth::None)]
    pub ssl_client_auth: ClientAuth,

    /// How often the certificate, key and CA files are checked for changes, which are loaded
    /// without a restart.
    #[arg(long, env = "DUCTSTREAM_SSL_RELOAD_INTERVAL_MS", default_value_t = 10_000)]
    pub ssl_reload_interval_ms: u64,
}

/// OAuth bearer tokens (SASL/OAUTHBEARER, and `authorization: Bearer` on the gRPC API):
/// JWTs checked against the identity provider's public keys (Kafka's `sasl.oauthbearer.*`).
#[derive(Debug, Clone, clap::Args)]
pub struct OAuthArgs {
    /// The identity provider's JWKS endpoint (`https://idp.example.com/.well-known/jwks.json`):
    /// its keys are fetched at start, every refresh interval, and when a token names a new one.
    #[arg(long, env = "DUCTSTREAM_SASL_OAUTHBEARER_JWKS_ENDPOINT_URL")]
    pub sasl_oauthbearer_jwks_endpoint_url: Option<String>,

    /// How often the endpoint's keys are fetched again.
    #[arg(long, env = "DUCTSTREAM_SASL_OAUTHBEARER_JWKS_ENDPOINT_REFRESH_MS", default_value_t = 3_600_000)]
    pub sasl_oauthbearer_jwks_endpoint_refresh_ms: u64,

    /// A PEM certificate to trust for the endpoint beside the system's roots.
    #[arg(long, env = "DUCTSTREAM_SASL_OAUTHBEARER_JWKS_ENDPOINT_CA_FILE")]
    pub sasl_oauthbearer_jwks_endpoint_ca_file: Option<PathBuf>,

    /// Or the identity provider's keys as a JWKS file (`{"keys": [...]}`), read again when it
    /// changes.
    #[arg(long, env = "DUCTSTREAM_SASL_OAUTHBEARER_JWKS_FILE")]
    pub sasl_oauthbearer_jwks_file: Option<PathBuf>,

    /// Or one PEM public key (RSA, EC or Ed25519) that signs the tokens.
    #[arg(long, env = "DUCTSTREAM_SASL_OAUTHBEARER_PUBLIC_KEY_FILE")]
    pub sasl_oauthbearer_public_key_file: Option<PathBuf>,

    /// The `iss` a token must have.
    #[arg(long, env = "DUCTSTREAM_SASL_OAUTHBEARER_EXPECTED_ISSUER")]
    pub sasl_oauthbearer_expected_issuer: Option<String>,

    /// Audiences a token's `aud` must include one of, comma-separated.
    #[arg(long, env = "DUCTSTREAM_SASL_OAUTHBEARER_EXPECTED_AUDIENCE", default_value = "")]
    pub sasl_oauthbearer_expected_audience: String,

    /// The claim that names the principal.
    #[arg(long, env = "DUCTSTREAM_SASL_OAUTHBEARER_SUB_CLAIM_NAME", default_value = "sub")]
    pub sasl_oauthbearer_sub_claim_name: String,

    /// Clock difference allowed when checking `exp` and `nbf`.
    #[arg(long, env = "DUCTSTREAM_SASL_OAUTHBEARER_CLOCK_SKEW_SECONDS", default_value_t = 30)]
    pub sasl_oauthbearer_clock_skew_seconds: u64,
}

impl OAuthArgs {
    /// The validator, when keys are configured.
    pub fn validator(&self) -> crate::Result<Option<std::sync::Arc<crate::security::jwt::TokenValidator>>> {
        if self.sasl_oauthbearer_jwks_endpoint_url.is_none()
            && self.sasl_oauthbearer_jwks_file.is_none()
            && self.sasl_oauthbearer_public_key_file.is_none()
        {
            return Ok(None);
        }
        let settings = crate::security::jwt::TokenSettings {
            jwks_endpoint_url: self.sasl_oauthbearer_jwks_endpoint_url.clone(),
            jwks_endpoint_refresh: std::time::Duration::from_millis(self.sasl_oauthbearer_jwks_endpoint_refresh_ms),
            jwks_endpoint_ca_file: self.sasl_oauthbearer_jwks_endpoint_ca_file.clone(),
            jwks_file: self.sasl_oauthbearer_jwks_file.clone(),
            public_key_file: self.sasl_oauthbearer_public_key_file.clone(),
            expected_issuer: self.sasl_oauthbearer_expected_issuer.clone(),
            expected_audience: self
                .sasl_oauthbearer_expected_audience
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect(),
            sub_claim_name: self.sasl_oauthbearer_sub_claim_name.clone(),
            clock_skew_s: self.sasl_oauthbearer_clock_skew_seconds,
        };
        Ok(Some(std::sync::Arc::new(crate::security::jwt::TokenValidator::load(settings)?)))
    }
}

impl TlsArgs {
    /// The files, when a TLS listener needs them.
    pub fn files(&self) -> crate::Result<TlsFiles> {
        let (Some(certificate), Some(key)) = (&self.ssl_certificate, &self.ssl_key) else {
            return Err(crate::BrokerError::Config(
                "an SSL or SASL_SSL listener, or --grpc-tls, needs --ssl-certificate and --ssl-key".into(),
            ));
        };
        Ok(TlsFiles {
            certificate: certificate.clone(),
            key: key.clone(),
            client_ca: self.ssl_client_ca.clone(),
            client_auth: self.ssl_client_auth,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthorizerKind {
    None,
    Acl,
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
    /// The first listener's advertised address.
    pub advertised_host: String,
    pub advertised_port: i32,
    /// Every listener's advertised address, in `--listeners` order.
    pub advertised: Vec<Endpoint>,
    pub sasl_mechanisms: Vec<String>,
    /// Checks OAuth bearer tokens, when keys are configured.
    pub oauth: Option<std::sync::Arc<crate::security::jwt::TokenValidator>>,
    /// `--connections-max-reauth-ms`, when not 0.
    pub connections_max_reauth: Option<std::time::Duration>,
    pub authorizer: AuthorizerKind,
    pub super_users: String,
    pub max_connections_per_ip: usize,
    pub max_connections: usize,
    pub allow_everyone_if_no_acl_found: bool,
    pub auto_create_topics: bool,
    pub durable_auto_create: bool,
    /// What happens to a gated DDL change as it arrives.
    pub ddl_auto: DdlAuto,
    /// `--schedule`: flows run at its ticks instead of continuously.
    pub schedule: Option<cron::Schedule>,
    pub schedule_empty_reads: u32,
    /// The wire format of flows that name none, normalized (`json`…).
    pub wire_format: String,
    pub wire_enforce: bool,
    pub num_partitions: i32,
    pub socket_request_max_bytes: usize,
    pub queued_max_request_bytes: usize,
    pub message_max_bytes: i32,
    pub broker_lease: std::time::Duration,
    /// The default `retention.ms`; negative: forever.
    pub log_retention_ms: i64,
    pub retention_check_interval: std::time::Duration,
    pub log_cleaner_enable: bool,
    pub log_cleaner_backoff: std::time::Duration,
    pub log_cleaner_dedupe_buffer_size: usize,
    /// The remote tier: whether there is one, and the defaults of the topic configs using it.
    pub tier: crate::tiering::TierDefaults,
    /// Where the log lives, as DescribeLogDirs names it: the data dir for the embedded engines
    /// (shown as an absolute path), `postgres` or `memory` otherwise.
    pub log_dir: String,
    /// The local folder holding the log, whose volume's sizes DescribeLogDirs reports (None
    /// when the log is not in a local folder).
    pub log_volume: Option<PathBuf>,
}

impl Args {
    /// The listeners to bind: `--listeners`, else one PLAINTEXT listener at `--kafka-listen`.
    pub fn listener_specs(&self) -> crate::Result<Vec<ListenerSpec>> {
        match &self.listeners {
            Some(listeners) => parse_listeners(listeners, self.listener_security_protocol_map.as_deref()),
            None => Ok(vec![ListenerSpec { name: "PLAINTEXT".into(), protocol: SecurityProtocol::Plaintext, bind: self.kafka_listen }]),
        }
    }

    /// The store to open and its folder, after the checkpoint settings.
    pub fn store(&self) -> crate::Result<(String, PathBuf)> {
        self.store.resolve()
    }

    /// `--schedule`, else the documented `DUCTSTREAM_DBOS_SCHEDULE` when `DUCTSTREAM_DBOS_ENABLED`
    /// is true.
    pub fn schedule(&self) -> Option<String> {
        let dbos_enabled = std::env::var("DUCTSTREAM_DBOS_ENABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        self.schedule.clone().or_else(|| dbos_enabled.then(|| std::env::var("DUCTSTREAM_DBOS_SCHEDULE").ok()).flatten())
    }

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
    /// Settings for a broker whose listeners are bound at `bound`, as `args` ask.
    pub fn new(args: &Args, bound: &[(ListenerSpec, SocketAddr)]) -> crate::Result<BrokerConfig> {
        let advertised = advertised_endpoints(args, bound)?;
        let Some(first) = advertised.first() else {
            return Err(crate::BrokerError::Config("no listener".into()));
        };
        let (advertised_host, advertised_port) = (first.host.clone(), first.port);
        let sasl_mechanisms: Vec<String> =
            args.sasl_enabled_mechanisms.split(',').map(|m| m.trim().to_ascii_uppercase()).filter(|m| !m.is_empty()).collect();
        if let Some(unknown) = sasl_mechanisms.iter().find(|m| !MECHANISMS.contains(&m.as_str())) {
            return Err(crate::BrokerError::Config(format!(
                "--sasl-enabled-mechanisms: {unknown:?} is not one of {}",
                MECHANISMS.join(", ")
            )));
        }
        let oauth = args.oauth.validator()?;
        if oauth.is_none() && sasl_mechanisms.iter().any(|m| m == "OAUTHBEARER") {
            return Err(crate::BrokerError::Config(format!("OAUTHBEARER needs one of {}", crate::security::jwt::SOURCES)));
        }
        let schedule = args
            .schedule()
            .map(|cron| crate::flows::schedule::parse(&cron))
            .transpose()
            .map_err(|e| crate::BrokerError::Config(format!("--schedule {e}")))?;
        let wire_format = crate::enum_names::normalize(&args.wire_format, crate::enum_names::WIRE_FORMAT_PREFIX);
        if !crate::flows::WIRE_FORMATS.contains(&wire_format.as_str()) {
            return Err(crate::BrokerError::Config(format!(
                "--wire-format {:?}: use {}",
                args.wire_format,
                crate::flows::WIRE_FORMATS.join(", ")
            )));
        }
        if args.num_partitions < 1 {
            return Err(crate::BrokerError::Config("--num-partitions must be at least 1".into()));
        }
        let (storage, data_dir) = args.store()?;
        let (log_dir, log_volume) = if storage.starts_with("postgres") {
            ("postgres".to_owned(), None)
        } else if storage == "memory" {
            ("memory".to_owned(), None)
        } else {
            (data_dir.display().to_string(), Some(data_dir))
        };
        Ok(BrokerConfig {
            log_dir,
            log_volume,
            node_id: args.node_id,
            cluster_id: args.cluster_id.clone(),
            advertised_host,
            advertised_port,
            advertised,
            sasl_mechanisms,
            oauth,
            authorizer: args.authorizer,
            max_connections_per_ip: args.max_connections_per_ip,
            max_connections: args.max_connections,
            super_users: args.super_users.clone(),
            allow_everyone_if_no_acl_found: args.allow_everyone_if_no_acl_found,
            connections_max_reauth: (args.connections_max_reauth_ms > 0)
                .then(|| std::time::Duration::from_millis(args.connections_max_reauth_ms)),
            auto_create_topics: args.auto_create_topics,
            durable_auto_create: args.durable_auto_create,
            ddl_auto: match (args.ddl_auto_apply, args.ddl_auto_approve) {
                (true, _) => DdlAuto::Apply,
                (false, true) => DdlAuto::Approve,
                (false, false) => DdlAuto::Wait,
            },
            wire_format,
            wire_enforce: args.wire_enforce,
            schedule,
            schedule_empty_reads: args.schedule_empty_reads,
            num_partitions: args.num_partitions,
            socket_request_max_bytes: args.socket_request_max_bytes,
            queued_max_request_bytes: args.queued_max_request_bytes,
            message_max_bytes: args.message_max_bytes,
            broker_lease: std::time::Duration::from_millis(args.broker_lease_ms.max(300)),
            log_retention_ms: args.log_retention_ms,
            retention_check_interval: std::time::Duration::from_millis(args.log_retention_check_interval_ms.max(10)),
            log_cleaner_enable: args.log_cleaner_enable,
            log_cleaner_backoff: std::time::Duration::from_millis(args.log_cleaner_backoff_ms.max(10)),
            log_cleaner_dedupe_buffer_size: args.log_cleaner_dedupe_buffer_size.max(1 << 20),
            tier: args.tier.defaults(),
        })
    }
}

impl BrokerConfig {
    /// This broker as the cluster knows it.
    pub fn me(&self) -> ductstream_storage::BrokerInfo {
        ductstream_storage::BrokerInfo {
            node_id: self.node_id,
            host: self.advertised_host.clone(),
            port: self.advertised_port,
            listeners: self.advertised.clone(),
        }
    }
}

/// Each listener's advertised address: from `--advertised-listeners`, or for the first
/// listener `--advertised-listener`, or else where it is bound.
fn advertised_endpoints(args: &Args, bound: &[(ListenerSpec, SocketAddr)]) -> crate::Result<Vec<Endpoint>> {
    let mut named = match &args.advertised_listeners {
        Some(text) => parse_advertised(text)?,
        None => Default::default(),
    };
    if let Some(unknown) = named.keys().find(|name| !bound.iter().any(|(spec, _)| &spec.name == *name)) {
        return Err(crate::BrokerError::Config(format!("--advertised-listeners names {unknown:?}, which is not in --listeners")));
    }
    let mut out = Vec::with_capacity(bound.len());
    for (i, (spec, addr)) in bound.iter().enumerate() {
        let (host, port) = match (named.remove(&spec.name), &args.advertised_listener) {
            (Some(given), _) => given,
            (None, Some(single)) if i == 0 => parse_host_port(single)?,
            (None, _) => (addr.ip().to_string(), i32::from(addr.port())),
        };
        out.push(Endpoint { listener: spec.name.clone(), host, port });
    }
    Ok(out)
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
/// Where the broker's data lives, for the broker and the worker alike.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Folder of the embedded store.
    #[arg(long, env = "DUCTSTREAM_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Storage engine: `embedded` (the default: segment files for the log and sled for the
    /// rest, in --data-dir), `memory` (nothing kept) or a `postgres://` URL (several brokers on
    /// one database).
    #[arg(long, env = "DUCTSTREAM_STORAGE", default_value = "embedded")]
    pub storage: String,

    /// A `postgres://` URL to keep the data in: the documented name of `--storage postgres://…`,
    /// used in its place (give one or the other).
    #[arg(long, env = "DUCTSTREAM_POSTGRES_DSN", conflicts_with = "storage")]
    pub postgres_dsn: Option<String>,

    /// Where CDC checkpoints live, by the documented names: they are kept in the broker's
    /// store, so `postgres` asks for a Postgres store and `sqlite` for the embedded one.
    #[arg(long, env = "DUCTSTREAM_CHECKPOINT_BACKEND")]
    pub checkpoint_backend: Option<String>,

    /// With `sqlite`: the folder of the embedded store that holds the checkpoints (in place
    /// of --data-dir).
    #[arg(long, env = "DUCTSTREAM_CHECKPOINT_PATH")]
    pub checkpoint_path: Option<PathBuf>,

    /// With `sqlite`: a `file:` DSN naming that folder (its query part is not used).
    #[arg(long, env = "DUCTSTREAM_CHECKPOINT_DSN")]
    pub checkpoint_dsn: Option<String>,
}

impl StoreArgs {
    /// The store to open (`--storage`, or `--postgres-dsn` in its place) and the embedded
    /// store's folder, after the checkpoint settings; a setting that cannot hold is an error
    /// that says why.
    pub fn resolve(&self) -> crate::Result<(String, PathBuf)> {
        let storage = self.postgres_dsn.clone().unwrap_or_else(|| self.storage.clone());
        let is_postgres = storage.starts_with("postgres://") || storage.starts_with("postgresql://");
        let config = |m: String| Err(crate::BrokerError::Config(m));
        match self.checkpoint_backend.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => Ok((storage, self.data_dir.clone())),
            Some("postgres") if is_postgres => Ok((storage, self.data_dir.clone())),
            Some("postgres") => config(
                "DUCTSTREAM_CHECKPOINT_BACKEND=postgres: checkpoints live in the broker's store, so give a Postgres one \
                 (--storage postgres://… or DUCTSTREAM_POSTGRES_DSN)"
                    .into(),
            ),
            Some("sqlite") if is_postgres || storage == "memory" => config(format!(
                "DUCTSTREAM_CHECKPOINT_BACKEND=sqlite: checkpoints live in the broker's store, and sqlite names the embedded one, not {:?}",
                crate::open::redact(&storage)
            )),
            Some("sqlite") => {
                let from_dsn = self.checkpoint_dsn.as_deref().map(|dsn| {
                    let path = dsn.strip_prefix("file:").unwrap_or(dsn);
                    PathBuf::from(path.split('?').next().unwrap_or(path))
                });
                Ok((storage, from_dsn.or_else(|| self.checkpoint_path.clone()).unwrap_or_else(|| self.data_dir.clone())))
            }
            Some(other) => config(format!("unknown checkpoint backend {other:?}: use postgres or sqlite")),
        }
    }
}

/// `--ddl-auto-approve` and `--ddl-auto-apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdlAuto {
    /// Wait for an operator's decision.
    Wait,
    Approve,
    Apply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalAddr(pub Option<SocketAddr>);

fn parse_optional_addr(text: &str) -> Result<OptionalAddr, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(OptionalAddr(None));
    }
    parse_listen(text).map(|a| OptionalAddr(Some(a))).map_err(|e| format!("{e}, or off"))
}

/// `host:port`, or `:port` for every interface (as Go programs and our documents write it).
pub(crate) fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_owned(),
    };
    full.parse().map_err(|e| format!("{text:?} is not host:port or :port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_take_a_bare_port_for_every_interface() {
        assert_eq!(parse_listen(":8080"), Ok("0.0.0.0:8080".parse().expect("addr")));
        assert_eq!(parse_listen("127.0.0.1:0"), Ok("127.0.0.1:0".parse().expect("addr")));
        assert!(parse_listen("8080").is_err());
        assert!(parse_listen(":http").is_err());
        assert_eq!(parse_optional_addr("OFF"), Ok(OptionalAddr(None)));
        assert!(parse_optional_addr("nowhere").expect_err("refused").contains("or off"));
    }

    #[test]
    fn checkpoint_backends_map_onto_the_store() {
        let resolve = |flags: &[&str]| {
            let mut all = vec!["ductstream"];
            all.extend_from_slice(flags);
            Args::parse_from(all).store().map_err(|e| e.to_string())
        };
        let pg = ["--storage", "postgres://u@h/db", "--checkpoint-backend", "postgres"];
        assert_eq!(resolve(&pg).expect("postgres").0, "postgres://u@h/db");
        assert!(resolve(&["--checkpoint-backend", "postgres"]).expect_err("needs postgres").contains("give a Postgres one"));
        let sqlite = resolve(&["--checkpoint-backend", "SQLite", "--checkpoint-path", "/tmp/ck"]).expect("sqlite");
        assert_eq!(sqlite, ("embedded".to_string(), PathBuf::from("/tmp/ck")));
        let by_dsn = resolve(&["--checkpoint-backend", "sqlite", "--checkpoint-dsn", "file:/tmp/ck2?cache=shared"]).expect("dsn");
        assert_eq!(by_dsn.1, PathBuf::from("/tmp/ck2"));
        assert!(resolve(&["--checkpoint-backend", "sqlite", "--storage", "memory"]).is_err());
        assert!(resolve(&["--checkpoint-backend", "etcd"]).expect_err("unknown").contains("use postgres or sqlite"));
    }

    #[test]
    fn the_documented_postgres_dsn_stands_for_storage() {
        let args = Args::parse_from(["ductstream", "--postgres-dsn", "postgres://u@h/db"]);
        assert_eq!(args.store().expect("store").0, "postgres://u@h/db");
        assert_eq!(Args::parse_from(["ductstream"]).store().expect("store").0, "embedded");
        assert!(Args::try_parse_from(["ductstream", "--postgres-dsn", "postgres://x", "--storage", "memory"]).is_err());
    }
}
