use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::runtime::RuntimeOptions;
use crate::{Options, Result, Sink, SinkError};

/// Destination types, as flows and sinks name them.
pub const DESTINATION_TYPES: &[&str] = &["s3", "http", "kafka", "bufstream", "postgres", "duckdb", "clickhouse"];

/// Destination types our docs name that this product does not offer: refused with a reason.
const UNAVAILABLE_TYPES: &[&str] = &["snowflake", "snowpipe"];

/// Option names whose values are secrets: the API shows them as [`HIDDEN`].
pub const SECRET_OPTIONS: [&str; 4] = ["secret_access_key", "session_token", "signing_secret", "password"];

/// What a secret option's value is shown as.
pub const HIDDEN: &str = "***";

/// Options holding connection strings: the API shows them without their password.
pub const DSN_OPTIONS: [&str; 2] = ["dsn", "source_dsn"];

/// Replaces the values of secret options with [`HIDDEN`], and the password of connection
/// strings.
pub fn hide_secrets(options: &mut BTreeMap<String, String>) {
    for (key, value) in options.iter_mut() {
        if SECRET_OPTIONS.contains(&key.as_str()) {
            HIDDEN.clone_into(value);
        } else if DSN_OPTIONS.contains(&key.as_str()) {
            *value = redact_dsn(value);
        }
    }
}

/// An update that sends a secret back as the API showed it keeps the stored value.
pub fn keep_hidden_secrets(options: &mut BTreeMap<String, String>, stored: &BTreeMap<String, String>) {
    for (key, value) in options.iter_mut() {
        let Some(old) = stored.get(key) else { continue };
        let hidden = (SECRET_OPTIONS.contains(&key.as_str()) && value == HIDDEN)
            || (DSN_OPTIONS.contains(&key.as_str()) && value != old && *value == redact_dsn(old));
        if hidden {
            value.clone_from(old);
        }
    }
}

/// A connection string (URL or `key=value` form) with its password as [`HIDDEN`].
pub fn redact_dsn(dsn: &str) -> String {
    if let (Some(scheme), Some(at)) = (dsn.find("://"), dsn.rfind('@'))
        && at > scheme
        && let Some((user, _)) = dsn[scheme + 3..at].split_once(':')
    {
        return format!("{}{user}:{HIDDEN}{}", &dsn[..scheme + 3], &dsn[at..]);
    }
    dsn.split_whitespace()
        .map(|part| if part.starts_with("password=") { format!("password={HIDDEN}") } else { part.to_string() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where a sink writes: a type and its options (string values, as flows define endpoints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// Builds the destination's sink and the runtime options, checking every option without
/// connecting: an unknown type or option, or a bad value, is a `Config` error.
pub fn open_sink(destination: &Destination, sink_id: &str) -> Result<(Box<dyn Sink>, RuntimeOptions)> {
    let kind = destination.kind.as_str();
    let mut options = Options::new(kind, &destination.options);
    match kind {
        "http" | "webhook" => {
            let runtime = RuntimeOptions::take(&mut options, crate::http::LIMITS, sink_id)?;
            Ok((Box::new(crate::http::HttpSink::new(options)?), runtime))
        }
        #[cfg(feature = "s3")]
        "s3" => {
            let runtime = RuntimeOptions::take(&mut options, crate::s3::LIMITS, sink_id)?;
            Ok((Box::new(crate::s3::S3Sink::new(options)?), runtime))
        }
        #[cfg(feature = "kafka")]
        "kafka" | "bufstream" => {
            let runtime = RuntimeOptions::take(&mut options, crate::kafka::LIMITS, sink_id)?;
            Ok((Box::new(crate::kafka::KafkaSink::new(options, sink_id)?), runtime))
        }
        #[cfg(feature = "postgres")]
        "postgres" => {
            let runtime = RuntimeOptions::take(&mut options, crate::postgres::LIMITS, sink_id)?;
            Ok((Box::new(crate::postgres::sink(options, sink_id)?), runtime))
        }
        #[cfg(feature = "duckdb")]
        "duckdb" => {
            let runtime = RuntimeOptions::take(&mut options, crate::duckdb::LIMITS, sink_id)?;
            Ok((Box::new(crate::duckdb::sink(options, sink_id)?), runtime))
        }
        #[cfg(feature = "clickhouse")]
        "clickhouse" => {
            let runtime = RuntimeOptions::take(&mut options, crate::clickhouse::LIMITS, sink_id)?;
            Ok((Box::new(crate::clickhouse::sink(options, sink_id)?), runtime))
        }
        unavailable if UNAVAILABLE_TYPES.contains(&unavailable) => Err(SinkError::Config(format!(
            "destination type {unavailable:?} is not available: this build has no Snowflake client (use s3 with parquet and Snowflake's COPY INTO, or postgres, duckdb, clickhouse)"
        ))),
        known if DESTINATION_TYPES.contains(&known) => {
            Err(SinkError::Config(format!("destination type {known:?} is not in this build (cargo feature of ductstream-sinks)")))
        }
        other => Err(SinkError::Config(format!("unknown destination type {other:?}: use one of {}", DESTINATION_TYPES.join(", ")))),
    }
}

/// Applies the staging tables of a table destination (`batch_mode` staging) for these source
/// tables to their targets, as its `batch_resolution` says; the rows resolved per table.
#[cfg(feature = "tables")]
#[cfg_attr(not(any(feature = "postgres", feature = "duckdb", feature = "clickhouse")), allow(unused_variables, unused_mut))]
pub async fn resolve_staging(destination: &Destination, sink_id: &str, tables: &[crate::table::TableName]) -> Result<Vec<(crate::table::TableName, u64)>> {
    let kind = destination.kind.as_str();
    let mut options = Options::new(kind, &destination.options);
    match kind {
        #[cfg(feature = "postgres")]
        "postgres" => {
            RuntimeOptions::take(&mut options, crate::postgres::LIMITS, sink_id)?;
            crate::postgres::sink(options, sink_id)?.resolve_staging(tables).await
        }
        #[cfg(feature = "duckdb")]
        "duckdb" => {
            RuntimeOptions::take(&mut options, crate::duckdb::LIMITS, sink_id)?;
            let mut sink = crate::duckdb::sink(options, sink_id)?;
            let resolved = sink.resolve_staging(tables).await;
            // Let go of the file now (it stays open while a sink of this process uses it).
            let _ = Sink::close(&mut sink).await;
            resolved
        }
        #[cfg(feature = "clickhouse")]
        "clickhouse" => {
            RuntimeOptions::take(&mut options, crate::clickhouse::LIMITS, sink_id)?;
            crate::clickhouse::sink(options, sink_id)?.resolve_staging(tables).await
        }
        other => Err(SinkError::Config(format!("destination type {other:?} has no staging tables (postgres, duckdb, clickhouse have)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duckdb(dsn: &str) -> Destination {
        Destination { name: "d".into(), kind: "duckdb".into(), options: [("dsn".to_string(), dsn.to_string())].into() }
    }

    /// A build without the `duckdb` feature refuses the type as not built; one with it checks
    /// its options without opening the file.
    #[test]
    fn duckdb_is_there_only_when_built() {
        let opened = open_sink(&duckdb("./data/w.duckdb"), "s").map(|_| ());
        #[cfg(not(feature = "duckdb"))]
        assert!(matches!(opened, Err(SinkError::Config(m)) if m.contains("not in this build")));
        #[cfg(feature = "duckdb")]
        {
            assert!(opened.is_ok(), "{opened:?}");
            assert!(!std::path::Path::new("./data/w.duckdb").exists(), "nothing opened");
            assert!(matches!(open_sink(&duckdb("md:w"), "s").map(|_| ()), Err(SinkError::Config(_))));
        }
    }
}
