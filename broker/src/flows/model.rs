//! A flow's stored definition and state, and how its endpoints become CDC source options.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::open::redact;
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
    /// json, avro or proto (the topics' records); arrow or parquet (the files of its sink
    /// destinations, with JSON records in the topics).
    pub wire_format: String,
    pub parallelism: u32,
    pub state: FlowState,
    pub last_error: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// Destinations whose records land in this broker's topics: `topics` (one per table) and
/// `pgstream` (one stream for every table, named by its `stream` option or its name, read with
/// durable consumers).
const TOPIC_DESTINATIONS: [&str; 2] = ["topics", "pgstream"];

/// The options a `pgstream` destination takes. `dsn` names where the stream lives in the
/// product this one follows; here the stream is a topic of this broker's own store (Postgres
/// when the broker runs on one), so it is accepted and not used.
const PGSTREAM_OPTIONS: [&str; 3] = ["stream", "format", "dsn"];

/// What a flow's `wire_format` may be.
pub const WIRE_FORMATS: [&str; 5] = ["json", "avro", "proto", "arrow", "parquet"];

impl FlowDef {
    /// The format of the change records in the topics: file formats (arrow, parquet) are for
    /// the flow's sink destinations, whose topics hold JSON.
    pub fn record_format(&self) -> &str {
        match self.wire_format.as_str() {
            "arrow" | "parquet" => "json",
            other => other,
        }
    }

    /// The file format the flow's sink destinations write when their options name none.
    pub fn file_format(&self) -> Option<&str> {
        matches!(self.wire_format.as_str(), "arrow" | "parquet").then_some(self.wire_format.as_str())
    }

    /// Gives a flow that names no wire format the broker's (`--wire-format`); with `enforce`
    /// (`--wire-enforce`), refuses one that names another.
    pub fn apply_wire_policy(&mut self, default: &str, enforce: bool) -> Result<()> {
        if self.wire_format.is_empty() {
            self.wire_format = default.to_owned();
        }
        if enforce && self.wire_format != default {
            return Err(BrokerError::InvalidArgument(format!(
                "wire format {:?}: this broker enforces {default:?} (--wire-enforce)",
                self.wire_format
            )));
        }
        Ok(())
    }

    /// Checks what can be checked without connecting: ids, endpoint types, options.
    pub fn validate(&self) -> Result<()> {
        crate::documents::check_id("flow", &self.id, 100)?;
        if self.source.kind != "postgres" {
            return Err(BrokerError::InvalidArgument(format!(
                "source type {:?} is not supported: use \"postgres\"",
                self.source.kind
            )));
        }
        for d in &self.destinations {
            if ductstream_sinks::DESTINATION_TYPES.contains(&d.kind.as_str()) {
                // Run as a sink over the flow's topics: its options are checked as a sink's.
                let destination = ductstream_sinks::Destination { name: d.name.clone(), kind: d.kind.clone(), options: d.options.clone() };
                ductstream_sinks::open_sink(&destination, &self.id)
                    .map_err(|e| BrokerError::InvalidArgument(format!("destination {:?}: {e}", d.name)))?;
            } else if !TOPIC_DESTINATIONS.contains(&d.kind.as_str()) {
                return Err(BrokerError::InvalidArgument(format!(
                    "destination type {:?} is not supported: use topics, pgstream, {}",
                    d.kind,
                    ductstream_sinks::DESTINATION_TYPES.join(", ")
                )));
            }
        }
        self.validate_pgstream()?;
        if !WIRE_FORMATS.contains(&self.wire_format.as_str()) {
            return Err(BrokerError::InvalidArgument(format!("wire format {:?}: use {}", self.wire_format, WIRE_FORMATS.join(", "))));
        }
        ductstream_cdc::FlowSourceOptions::from_map(&self.source_options(false))
            .and_then(|o| o.normalized())
            .map(|_| ())
            .map_err(|e| BrokerError::InvalidArgument(format!("source options: {e}")))
    }

    /// What the flow writes in this broker: every topic named `<topic_prefix>.` and more
    /// (one per table, and its `_schemas`, `_ddl` and `_transactions` topics), and the
    /// topic of its pgstream stream, if it has one.
    pub fn topics_written(&self) -> (String, Option<String>) {
        let prefix = self.source_options(false).remove("topic_prefix").unwrap_or_default();
        (format!("{prefix}."), self.pgstream().map(|(_, stream)| stream))
    }

    /// The source table (schema, name) whose changes `topic` holds, if it is one of the
    /// flow's table topics (`<topic_prefix>.<schema>.<table>`).
    pub fn source_table_of(&self, topic: &str) -> Option<(String, String)> {
        let options = self.source_options(false);
        if options.contains_key("stream") {
            return None;
        }
        let rest = topic.strip_prefix(options.get("topic_prefix")?.as_str())?.strip_prefix('.')?;
        let (schema, table) = rest.split_once('.')?;
        // `<prefix>._ddl` and the like are the flow's own topics.
        let is_table = !schema.is_empty() && !schema.starts_with('_') && !table.is_empty() && !table.contains('.');
        is_table.then(|| (schema.to_owned(), table.to_owned()))
    }

    /// The flow's `pgstream` destination, if any, and the stream it names.
    fn pgstream(&self) -> Option<(&Endpoint, String)> {
        let d = self.destinations.iter().find(|d| d.kind == "pgstream")?;
        let stream = d.options.get("stream").filter(|s| !s.is_empty()).cloned().unwrap_or_else(|| d.name.clone());
        Some((d, stream))
    }

    fn validate_pgstream(&self) -> Result<()> {
        let Some((d, stream)) = self.pgstream() else { return Ok(()) };
        let invalid = |why: String| Err(BrokerError::InvalidArgument(format!("pgstream destination {:?}: {why}", d.name)));
        if self.destinations.iter().filter(|d| TOPIC_DESTINATIONS.contains(&d.kind.as_str())).count() > 1 {
            return invalid("a flow writes either one pgstream stream or its per-table topics: give one such destination".into());
        }
        if let Some(unknown) = d.options.keys().find(|k| !PGSTREAM_OPTIONS.contains(&k.as_str())) {
            return invalid(format!("unknown option {unknown:?}: use {}", PGSTREAM_OPTIONS.join(", ")));
        }
        if stream.is_empty() {
            return invalid("name the stream with the stream option or the destination's name".into());
        }
        crate::topic_config::validate_topic_name(&stream).map_err(|e| BrokerError::InvalidArgument(format!("stream {stream:?}: {e}")))?;
        if let Some(format) = d.options.get("format") {
            let format = crate::enum_names::normalize(format, crate::enum_names::WIRE_FORMAT_PREFIX);
            if format != self.record_format() {
                return invalid(format!("format {format:?} differs from the flow's wire_format {:?}: set wire_format instead", self.record_format()));
            }
        }
        Ok(())
    }

    /// The CDC options: the source's, with the flow id, the destination's topic prefix (the
    /// flow name by default), the wire format, parallelism, and the DDL gate from the
    /// environment.
    pub fn source_options(&self, ddl_gate_default: bool) -> HashMap<String, String> {
        let mut options: HashMap<String, String> = self.source.options.clone().into_iter().collect();
        options.entry("flow_id".into()).or_insert_with(|| self.id.clone());
        let prefix = self
            .destinations
            .iter()
            .filter(|d| TOPIC_DESTINATIONS.contains(&d.kind.as_str()))
            .find_map(|d| d.options.get("topic_prefix").cloned());
        let default_prefix = if self.name.is_empty() { self.id.clone() } else { self.name.clone() };
        options.entry("topic_prefix".into()).or_insert_with(|| prefix.unwrap_or(default_prefix));
        options.entry("format".into()).or_insert_with(|| self.record_format().to_owned());
        if let Some((_, stream)) = self.pgstream() {
            options.insert("stream".into(), stream);
        }
        // `parallel_tables` is the source option's other name.
        if self.parallelism > 0 && !options.contains_key("parallel_tables") {
            options.entry("snapshot_workers".into()).or_insert_with(|| self.parallelism.to_string());
        }
        if ddl_gate_default {
            options.entry("ddl_gate".into()).or_insert_with(|| "true".into());
            options.entry("capture_ddl".into()).or_insert_with(|| "true".into());
        }
        options
    }
}

impl FlowDef {
    /// The id a flow without one gets: its name in lower case, with runs of other characters
    /// than letters, digits, '.', '_' and '-' as one '-'.
    pub fn id_from_name(name: &str) -> Result<String> {
        let mut id = String::new();
        for c in name.trim().chars() {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                id.push(c.to_ascii_lowercase());
            } else if !id.ends_with('-') {
                id.push('-');
            }
        }
        let id: String = id.trim_matches('-').chars().take(90).collect();
        if id.is_empty() {
            return Err(BrokerError::InvalidArgument("a flow needs an id, or a name to make one from".into()));
        }
        Ok(id)
    }

    /// A new flow gets a replication slot and a publication of its own, named after it,
    /// unless its source options name them; they are stored with the definition, so a flow
    /// keeps its slot whatever later defaults become. (Two flows sharing a slot would each
    /// get part of the changes.)
    pub fn name_own_slot_and_publication(&mut self) {
        let mut own: String = format!("ductstream_{}", self.id)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_ascii_lowercase() } else { '_' })
            .collect();
        own.truncate(63);
        self.source.options.entry("slot".into()).or_insert_with(|| own.clone());
        self.source.options.entry("publication".into()).or_insert(own);
    }

    /// An update that leaves the slot or publication out keeps the stored ones.
    pub fn keep_names_of(&mut self, stored: &FlowDef) {
        for key in ["slot", "publication"] {
            if let Some(name) = stored.source.options.get(key) {
                self.source.options.entry(key.into()).or_insert_with(|| name.clone());
            }
        }
    }

    /// The flow as the API shows it: the source DSN without its password.
    pub fn redacted(mut self) -> FlowDef {
        if let Some(dsn) = self.source.options.get_mut("dsn") {
            *dsn = redact(dsn);
        }
        for d in &mut self.destinations {
            ductstream_sinks::hide_secrets(&mut d.options);
        }
        self
    }

    /// An update that sends back the DSN as the API showed it (password hidden) keeps the
    /// stored password; so does a destination's secret option sent back hidden.
    pub fn keep_secrets_of(&mut self, stored: &FlowDef) {
        if let (Some(new), Some(old)) = (self.source.options.get_mut("dsn"), stored.source.options.get("dsn"))
            && *new != *old
            && *new == redact(old)
        {
            new.clone_from(old);
        }
        for d in &mut self.destinations {
            if let Some(old) = stored.destinations.iter().find(|o| o.name == d.name) {
                ductstream_sinks::keep_hidden_secrets(&mut d.options, &old.options);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_from_names() {
        assert_eq!(FlowDef::id_from_name("Orders to S3!").expect("id"), "orders-to-s3");
        assert_eq!(FlowDef::id_from_name("  app.main_db ").expect("id"), "app.main_db");
        assert!(FlowDef::id_from_name(" ?? ").is_err());
        assert!(FlowDef::id_from_name("").is_err());
    }

    #[test]
    fn passwords_are_hidden_and_kept() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("host=h user=u password=secret"), "host=h user=u password=***");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");

        let endpoint = |dsn: &str| Endpoint { name: "s".into(), kind: "postgres".into(), options: [("dsn".to_string(), dsn.to_string())].into() };
        let def = |dsn: &str| FlowDef {
            id: "f".into(),
            name: "f".into(),
            source: endpoint(dsn),
            destinations: Vec::new(),
            wire_format: "json".into(),
            parallelism: 0,
            state: FlowState::Created,
            last_error: String::new(),
            created_ms: 0,
            updated_ms: 0,
        };
        let stored = def("postgres://u:secret@h/db");
        assert_eq!(stored.clone().redacted().source.options["dsn"], "postgres://u:***@h/db");
        let mut update = def("postgres://u:***@h/db");
        update.keep_secrets_of(&stored);
        assert_eq!(update.source.options["dsn"], "postgres://u:secret@h/db");
        let mut changed = def("postgres://u:new@h/db");
        changed.keep_secrets_of(&stored);
        assert_eq!(changed.source.options["dsn"], "postgres://u:new@h/db");

        let hook = |secret: &str| Endpoint {
            name: "hooks".into(),
            kind: "http".into(),
            options: [("url".to_string(), "http://h/x".to_string()), ("signing_secret".to_string(), secret.to_string())].into(),
        };
        let stored = FlowDef { destinations: vec![hook("whsec_c2VjcmV0")], ..def("postgres://u:secret@h/db") };
        assert_eq!(stored.clone().redacted().destinations[0].options["signing_secret"], "***");
        let mut update = FlowDef { destinations: vec![hook("***")], ..def("postgres://u:***@h/db") };
        update.keep_secrets_of(&stored);
        assert_eq!(update.destinations[0].options["signing_secret"], "whsec_c2VjcmV0");
    }
}
