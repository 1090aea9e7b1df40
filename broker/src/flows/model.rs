//! A flow's stored definition and state, and how its endpoints become CDC source options.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::{BrokerError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowState {
    Created,
    Running,
    Paused,
    Stopping,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowDef {
    pub id: String,
    pub name: String,
    pub source: Endpoint,
    pub destinations: Vec<Endpoint>,
    /// Only "json" is written today.
    pub wire_format: String,
    pub parallelism: u32,
    pub state: FlowState,
    pub last_error: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// Destinations whose records land in this broker's topics.
const TOPIC_DESTINATIONS: [&str; 2] = ["topics", "pgstream"];

impl FlowDef {
    /// Checks what can be checked without connecting: ids, endpoint types, options.
    pub fn validate(&self) -> Result<()> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 100
            && self.id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !id_ok {
            return Err(BrokerError::InvalidArgument(format!(
                "flow id {:?} must be 1 to 100 letters, digits, '.', '_' or '-'",
                self.id
            )));
        }
        if self.source.kind != "postgres" {
            return Err(BrokerError::InvalidArgument(format!(
                "source type {:?} is not supported: use \"postgres\"",
                self.source.kind
            )));
        }
        for d in &self.destinations {
            if !TOPIC_DESTINATIONS.contains(&d.kind.as_str()) {
                return Err(BrokerError::InvalidArgument(format!(
                    "destination type {:?} is not supported: use \"topics\" or \"pgstream\"",
                    d.kind
                )));
            }
        }
        if self.wire_format != "json" {
            return Err(BrokerError::InvalidArgument(format!(
                "wire format {:?} is not supported yet: use json",
                self.wire_format
            )));
        }
        ductstream_cdc::FlowSourceOptions::from_map(&self.source_options(false))
            .and_then(|o| o.normalized())
            .map(|_| ())
            .map_err(|e| BrokerError::InvalidArgument(format!("source options: {e}")))
    }

    /// The CDC options: the source's, with the flow id, the destination's topic prefix (the
    /// flow name by default), parallelism, and the DDL gate from the environment.
    pub fn source_options(&self, ddl_gate_default: bool) -> HashMap<String, String> {
        let mut options: HashMap<String, String> = self.source.options.clone().into_iter().collect();
        options.entry("flow_id".into()).or_insert_with(|| self.id.clone());
        let prefix = self.destinations.iter().find_map(|d| d.options.get("topic_prefix").cloned());
        let default_prefix = if self.name.is_empty() { self.id.clone() } else { self.name.clone() };
        options.entry("topic_prefix".into()).or_insert_with(|| prefix.unwrap_or(default_prefix));
        if self.parallelism > 0 {
            options.entry("snapshot_workers".into()).or_insert_with(|| self.parallelism.to_string());
        }
        if ddl_gate_default {
            options.entry("ddl_gate".into()).or_insert_with(|| "true".into());
            options.entry("capture_ddl".into()).or_insert_with(|| "true".into());
        }
        options
    }
}
