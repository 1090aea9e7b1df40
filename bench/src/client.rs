//! librdkafka client configuration shared by the modes: bootstrap servers,
//! producer options, `--set key=value` overrides, and a context that prints
//! client errors (librdkafka's own logging goes nowhere otherwise).

use std::sync::atomic::{AtomicU64, Ordering};

use clap::ValueEnum;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;

/// Connection settings common to every mode.
#[derive(Debug, Clone)]
pub struct ClientOpts {
    pub bootstrap: String,
    /// `--set key=value` pairs, applied last so they win over the bench's
    /// own settings.
    pub overrides: Vec<(String, String)>,
}

impl ClientOpts {
    /// A config with the bootstrap servers, `settings`, then the overrides.
    pub fn config(&self, settings: &[(&str, String)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", "ductstream-bench");
        for (key, value) in settings {
            config.set(*key, value);
        }
        for (key, value) in &self.overrides {
            config.set(key, value);
        }
        config
    }

    /// Config for a consumer that is assigned partitions explicitly. librdkafka
    /// wants a `group.id` even then; nothing is committed, so the broker needs
    /// no group coordination.
    pub fn assign_consumer_config(&self, fetch_wait_max_ms: u64) -> ClientConfig {
        self.config(&[
            ("group.id", "ductstream-bench".to_string()),
            ("enable.auto.commit", "false".to_string()),
            ("enable.auto.offset.store", "false".to_string()),
            ("enable.partition.eof", "false".to_string()),
            ("fetch.min.bytes", "1".to_string()),
            ("fetch.wait.max.ms", fetch_wait_max_ms.to_string()),
        ])
    }
}

/// Parses a `key=value` argument of `--set`.
pub fn parse_key_val(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got `{arg}`")),
    }
}

/// `acks` for the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Acks {
    /// Wait for all in-sync replicas.
    All,
    /// Wait for the leader only.
    #[value(name = "1")]
    Leader,
    /// Do not wait for any acknowledgement.
    #[value(name = "0")]
    None,
}

impl Acks {
    pub fn config_value(self) -> &'static str {
        match self {
            Acks::All => "all",
            Acks::Leader => "1",
            Acks::None => "0",
        }
    }
}

/// `compression.type` for the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn config_value(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Producer settings common to `produce` and `latency`.
pub struct ProducerSettings {
    pub acks: Acks,
    pub compression: Compression,
    pub linger_ms: u64,
    pub batch_size: u64,
    /// Also bounds how long a message may wait for delivery.
    pub message_timeout_ms: u64,
}

impl ProducerSettings {
    pub fn to_config(&self) -> Vec<(&'static str, String)> {
        vec![
            ("acks", self.acks.config_value().to_string()),
            (
                "compression.type",
                self.compression.config_value().to_string(),
            ),
            ("linger.ms", self.linger_ms.to_string()),
            ("batch.size", self.batch_size.to_string()),
            ("message.timeout.ms", self.message_timeout_ms.to_string()),
            // Keep many messages in flight: the send loop only backs off when
            // this queue is full.
            ("queue.buffering.max.messages", "1000000".to_string()),
            ("queue.buffering.max.kbytes", "1048576".to_string()),
            // The broker may not implement InitProducerId.
            ("enable.idempotence", "false".to_string()),
        ]
    }
}

/// How many client errors are printed before the rest are only counted.
const PRINTED_ERRORS: u64 = 5;

/// Prints the first few client-level errors (e.g. connection refused) to
/// stderr so a missing broker does not look like a hang.
#[derive(Default)]
pub struct ErrorPrinter {
    seen: AtomicU64,
}

impl ErrorPrinter {
    pub fn report(&self, error: &KafkaError, reason: &str) {
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        if n < PRINTED_ERRORS {
            eprintln!("ductstream-bench: client error: {error}: {reason}");
        } else if n == PRINTED_ERRORS {
            eprintln!("ductstream-bench: further client errors suppressed");
        }
    }
}

/// Context for the bench's consumers: default consumer behaviour, errors
/// printed to stderr.
#[derive(Default)]
pub struct BenchConsumerContext {
    pub errors: ErrorPrinter,
}

impl ClientContext for BenchConsumerContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.report(&error, reason);
    }
}

impl ConsumerContext for BenchConsumerContext {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_value() {
        assert_eq!(
            parse_key_val("linger.ms=10"),
            Ok(("linger.ms".to_string(), "10".to_string()))
        );
        assert_eq!(
            parse_key_val("sasl.password=a=b"),
            Ok(("sasl.password".to_string(), "a=b".to_string()))
        );
        assert!(parse_key_val("novalue").is_err());
        assert!(parse_key_val("=x").is_err());
    }

    #[test]
    fn overrides_win() {
        let opts = ClientOpts {
            bootstrap: "127.0.0.1:1".into(),
            overrides: vec![("linger.ms".into(), "50".into())],
        };
        let config = opts.config(&[("linger.ms", "5".to_string())]);
        assert_eq!(config.get("linger.ms"), Some("50"));
        assert_eq!(config.get("bootstrap.servers"), Some("127.0.0.1:1"));
    }
}
