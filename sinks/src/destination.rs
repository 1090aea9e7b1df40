use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::runtime::RuntimeOptions;
use crate::{Options, Result, Sink, SinkError};

/// Destination types, as flows and sinks name them.
pub const DESTINATION_TYPES: &[&str] = &["s3", "http", "kafka", "bufstream"];

/// Option names whose values are secrets: the API shows them as [`HIDDEN`].
pub const SECRET_OPTIONS: [&str; 4] = ["secret_access_key", "session_token", "signing_secret", "password"];

/// What a secret option's value is shown as.
pub const HIDDEN: &str = "***";

/// Replaces the values of secret options with [`HIDDEN`].
pub fn hide_secrets(options: &mut BTreeMap<String, String>) {
    for (key, value) in options.iter_mut() {
        if SECRET_OPTIONS.contains(&key.as_str()) {
            HIDDEN.clone_into(value);
        }
    }
}

/// An update that sends a secret back as the API showed it keeps the stored value.
pub fn keep_hidden_secrets(options: &mut BTreeMap<String, String>, stored: &BTreeMap<String, String>) {
    for (key, value) in options.iter_mut() {
        if SECRET_OPTIONS.contains(&key.as_str()) && value == HIDDEN && let Some(old) = stored.get(key) {
            value.clone_from(old);
        }
    }
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
        known if DESTINATION_TYPES.contains(&known) => {
            Err(SinkError::Config(format!("destination type {known:?} is not in this build (cargo feature of ductstream-sinks)")))
        }
        other => Err(SinkError::Config(format!("unknown destination type {other:?}: use one of {}", DESTINATION_TYPES.join(", ")))),
    }
}
