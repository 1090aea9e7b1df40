//! The options of a Postgres flow source, as given by the admin API: a map of strings.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{CdcError, Result};

/// How `sync_publication` reconciles an existing publication with `publication_tables`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SyncPublicationMode {
    /// Add the listed tables that are missing; never remove any.
    #[default]
    Add,
    /// Make the publication hold exactly the listed tables.
    Sync,
}

/// Where a snapshot's progress is published besides the flow's checkpoint (see
/// [`crate::snapshot_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotStateBackend {
    /// A row per chunk in `<snapshot_state_schema>.<snapshot_state_table>` of the source.
    #[default]
    Postgres,
    /// A JSON file at `snapshot_state_path`.
    File,
    /// Nowhere.
    None,
}

/// Options of a Postgres CDC source. Every value may be given as a string (the admin API and
/// the CLI pass `key=value` pairs); booleans, counts and durations are parsed from it.
/// Durations accept `500ms`, `1s`, `2m`, `1h`; a bare number is milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowSourceOptions {
    /// Connection string of the source (URL `postgres://user:pw@host:port/db` or `key=value`).
    pub dsn: String,
    /// Replication slot name (default `ductstream`).
    pub slot: String,
    /// Publication name (default `ductstream`).
    pub publication: String,
    /// Create the slot when it does not exist.
    #[serde(deserialize_with = "de_bool")]
    pub create_slot: bool,
    /// Create the publication when it does not exist.
    #[serde(deserialize_with = "de_bool")]
    pub ensure_publication: bool,
    /// `schema.table` names for the publication (comma list). Empty: all tables (or the schemas).
    #[serde(deserialize_with = "de_list")]
    pub publication_tables: Vec<String>,
    /// Schemas for the publication (`FOR TABLES IN SCHEMA`), used when no tables are listed.
    #[serde(deserialize_with = "de_list")]
    pub publication_schemas: Vec<String>,
    /// Check wal_level, max_replication_slots and max_wal_senders before starting.
    #[serde(deserialize_with = "de_bool")]
    pub validate_replication: bool,
    /// Records per write to the topics.
    #[serde(deserialize_with = "de_usize")]
    pub batch_size: usize,
    /// Longest time a record waits in a partial batch.
    #[serde(deserialize_with = "de_duration", serialize_with = "ser_duration")]
    pub batch_timeout: Duration,
    /// How often a standby status update is sent even when the server does not ask.
    #[serde(deserialize_with = "de_duration", serialize_with = "ser_duration")]
    pub status_interval: Duration,
    /// Write a marker record on `<prefix>._transactions` for each transaction without row changes.
    #[serde(deserialize_with = "de_bool")]
    pub emit_empty: bool,
    /// Look up non-built-in type OIDs in pg_type (enums, domains, extension types).
    #[serde(deserialize_with = "de_bool")]
    pub resolve_types: bool,
    /// Reconcile an existing publication with `publication_tables` at start.
    #[serde(deserialize_with = "de_bool")]
    pub sync_publication: bool,
    /// How `sync_publication` reconciles.
    pub sync_publication_mode: SyncPublicationMode,
    /// Name of the flow; the checkpoint key (default: the slot name).
    pub flow_id: String,
    /// Read the existing rows when the slot is created.
    #[serde(deserialize_with = "de_bool")]
    pub snapshot: bool,
    /// Read the snapshot at the slot's exported snapshot, so that snapshot and stream meet
    /// exactly. `false` reads each table at its own time: a change made between the slot's
    /// creation and a table's read arrives twice (as the row and as the change).
    #[serde(deserialize_with = "de_bool")]
    pub snapshot_consistent: bool,
    /// Parallel connections reading the snapshot (`parallel_tables` is another name for it).
    #[serde(deserialize_with = "de_usize", alias = "parallel_tables")]
    pub snapshot_workers: usize,
    /// Integer column to split each snapshot table into ranges by (when the table has it).
    pub partition_column: String,
    /// Number of ranges per table when `partition_column` is set.
    #[serde(deserialize_with = "de_usize")]
    pub partition_count: usize,
    /// Topics are named `<topic_prefix>.<schema>.<table>` (default: the flow id).
    pub topic_prefix: String,
    /// When set, every table's changes go to this one topic (a stream, as a `pgstream`
    /// destination names it) instead of a topic per table.
    pub stream: String,
    /// How often an idle source gets a heartbeat message so the slot advances; `0` disables.
    #[serde(deserialize_with = "de_duration", serialize_with = "ser_duration")]
    pub heartbeat_interval: Duration,
    /// Install the DDL capture event trigger at start.
    #[serde(deserialize_with = "de_bool")]
    pub capture_ddl: bool,
    /// Pause on each DDL event until it is approved through [`crate::DdlGate`].
    #[serde(deserialize_with = "de_bool")]
    pub ddl_gate: bool,
    /// The wire format of change values: json (default), avro or proto.
    pub format: crate::wire::WireFormat,
    /// Keep a row for the flow in `<state_schema>.<state_table>` in the source (see
    /// [`crate::state`]).
    #[serde(deserialize_with = "de_bool")]
    pub ensure_state: bool,
    pub state_schema: String,
    pub state_table: String,
    /// Where snapshot progress is published (the checkpoint, which a resume reads, keeps it
    /// in every case).
    pub snapshot_state_backend: SnapshotStateBackend,
    pub snapshot_state_schema: String,
    pub snapshot_state_table: String,
    /// The file of the `file` backend.
    pub snapshot_state_path: String,
}

impl Default for FlowSourceOptions {
    fn default() -> Self {
        FlowSourceOptions {
            dsn: String::new(),
            slot: String::new(),
            publication: String::new(),
            create_slot: true,
            ensure_publication: true,
            publication_tables: Vec::new(),
            publication_schemas: Vec::new(),
            validate_replication: true,
            batch_size: 100,
            batch_timeout: Duration::from_secs(1),
            status_interval: Duration::from_secs(10),
            emit_empty: false,
            resolve_types: true,
            sync_publication: false,
            sync_publication_mode: SyncPublicationMode::Add,
            flow_id: String::new(),
            snapshot: true,
            snapshot_consistent: true,
            snapshot_workers: 4,
            partition_column: String::new(),
            partition_count: 0,
            topic_prefix: String::new(),
            stream: String::new(),
            heartbeat_interval: Duration::from_secs(30),
            capture_ddl: false,
            ddl_gate: false,
            format: crate::wire::WireFormat::Json,
            ensure_state: true,
            state_schema: "ductstream".into(),
            state_table: "source_state".into(),
            snapshot_state_backend: SnapshotStateBackend::Postgres,
            snapshot_state_schema: "ductstream".into(),
            snapshot_state_table: "snapshot_state".into(),
            snapshot_state_path: String::new(),
        }
    }
}

impl FlowSourceOptions {
    /// The topic a table's changes go to: the stream when there is one, else
    /// `<topic_prefix>.<schema>.<table>`.
    pub fn table_topic(&self, schema: &str, table: &str) -> String {
        if self.stream.is_empty() {
            crate::encode::table_topic(&self.topic_prefix, schema, table)
        } else {
            self.stream.clone()
        }
    }

    /// Parses and checks an options map; names not listed above are rejected (a typo would
    /// otherwise silently fall back to a default).
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self> {
        let object: serde_json::Map<String, serde_json::Value> =
            map.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
        let options: FlowSourceOptions = serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|e| CdcError::option("options", e.to_string()))?;
        options.normalized()
    }

    /// Fills derived defaults (slot, publication, flow id, topic prefix) and checks values.
    pub fn normalized(mut self) -> Result<Self> {
        if self.dsn.trim().is_empty() {
            return Err(CdcError::option("dsn", "required: the source connection string"));
        }
        if self.slot.is_empty() {
            self.slot = "ductstream".into();
        }
        if self.publication.is_empty() {
            self.publication = "ductstream".into();
        }
        if self.flow_id.is_empty() {
            self.flow_id = self.slot.clone();
        }
        if self.topic_prefix.is_empty() {
            self.topic_prefix = self.flow_id.clone();
        }
        // Slot names are restricted by Postgres; checking here gives the better message and
        // keeps the name safe to put into replication commands.
        if !self.slot.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') || self.slot.len() > 63 {
            return Err(CdcError::option("slot", "may contain only lower-case letters, digits and '_' (at most 63)"));
        }
        if self.batch_size == 0 {
            return Err(CdcError::option("batch_size", "must be at least 1"));
        }
        if self.ensure_state && (self.state_schema.trim().is_empty() || self.state_table.trim().is_empty()) {
            return Err(CdcError::option("state_table", "state_schema and state_table must name the source-state table (or set ensure_state=false)"));
        }
        match self.snapshot_state_backend {
            SnapshotStateBackend::Postgres if self.snapshot_state_schema.trim().is_empty() || self.snapshot_state_table.trim().is_empty() => {
                return Err(CdcError::option("snapshot_state_table", "snapshot_state_schema and snapshot_state_table must name a table (or set snapshot_state_backend=none)"));
            }
            SnapshotStateBackend::File if self.snapshot_state_path.trim().is_empty() => {
                return Err(CdcError::option("snapshot_state_path", "required with snapshot_state_backend=file: the file to write the snapshot's progress to"));
            }
            _ => {}
        }
        if self.snapshot_workers == 0 {
            return Err(CdcError::option("snapshot_workers", "must be at least 1"));
        }
        if self.status_interval.is_zero() {
            return Err(CdcError::option("status_interval", "must be positive"));
        }
        if self.batch_timeout.is_zero() {
            return Err(CdcError::option("batch_timeout", "must be positive"));
        }
        if !self.partition_column.is_empty() && self.partition_count == 0 {
            self.partition_count = self.snapshot_workers;
        }
        Ok(self)
    }
}

/// Parses `500ms`, `1s`, `1.5s`, `2m`, `1h`; a bare number is milliseconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 500ms or 1s"))?;
    let seconds = match unit.trim() {
        "" | "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {text:?} (use ms, s, m or h)")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("{text:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOr<T> {
    String(String),
    Value(T),
}

fn de_bool<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    match StringOr::<bool>::deserialize(d)? {
        StringOr::Value(b) => Ok(b),
        StringOr::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "on" | "1" => Ok(true),
            "false" | "f" | "no" | "off" | "0" => Ok(false),
            other => Err(serde::de::Error::custom(format!("{other:?} is not a boolean (true/false)"))),
        },
    }
}

fn de_usize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<usize, D::Error> {
    match StringOr::<usize>::deserialize(d)? {
        StringOr::Value(n) => Ok(n),
        StringOr::String(s) => s.trim().parse().map_err(|_| serde::de::Error::custom(format!("{s:?} is not a count"))),
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    match StringOr::<u64>::deserialize(d)? {
        StringOr::Value(ms) => Ok(Duration::from_millis(ms)),
        StringOr::String(s) => parse_duration(&s).map_err(serde::de::Error::custom),
    }
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}ms", d.as_millis()))
}

fn de_list<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    match StringOr::<Vec<String>>::deserialize(d)? {
        StringOr::Value(list) => Ok(list),
        StringOr::String(s) => Ok(s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_fill_in() {
        let o = FlowSourceOptions::from_map(&map(&[("dsn", "postgres://x@h/db")])).map_err(|e| e.to_string());
        let Ok(o) = o else { panic!("{o:?}") };
        assert!(o.create_slot && o.ensure_publication && o.validate_replication && o.resolve_types && o.snapshot);
        assert!(!o.emit_empty && !o.sync_publication);
        assert_eq!(o.batch_size, 100);
        assert_eq!(o.batch_timeout, Duration::from_secs(1));
        assert_eq!(o.status_interval, Duration::from_secs(10));
        assert_eq!(o.snapshot_workers, 4);
        assert_eq!((o.slot.as_str(), o.flow_id.as_str(), o.topic_prefix.as_str()), ("ductstream", "ductstream", "ductstream"));
    }

    #[test]
    fn parses_strings() {
        let o = FlowSourceOptions::from_map(&map(&[
            ("dsn", "host=x"),
            ("slot", "s1"),
            ("batch_timeout", "500ms"),
            ("batch_size", "7"),
            ("create_slot", "false"),
            ("publication_tables", "public.a, b.c"),
            ("sync_publication_mode", "sync"),
        ]));
        let Ok(o) = o else { panic!("{o:?}") };
        assert_eq!(o.batch_timeout, Duration::from_millis(500));
        assert_eq!(o.batch_size, 7);
        assert!(!o.create_slot);
        assert_eq!(o.publication_tables, vec!["public.a", "b.c"]);
        assert_eq!(o.sync_publication_mode, SyncPublicationMode::Sync);
        assert_eq!(o.flow_id, "s1");
        assert!(o.snapshot_consistent, "consistent by default");
    }

    #[test]
    fn snapshot_state_backends() {
        let o = FlowSourceOptions::from_map(&map(&[("dsn", "x")])).map_err(|e| e.to_string());
        assert!(o.is_ok_and(|o| o.snapshot_state_backend == SnapshotStateBackend::Postgres && o.snapshot_state_table == "snapshot_state"));
        let file = FlowSourceOptions::from_map(&map(&[("dsn", "x"), ("snapshot_state_backend", "file")])).map_err(|e| e.to_string());
        assert!(file.is_err_and(|e| e.contains("snapshot_state_path")));
        let none = FlowSourceOptions::from_map(&map(&[("dsn", "x"), ("snapshot_state_backend", "none")])).map_err(|e| e.to_string());
        assert!(none.is_ok_and(|o| o.snapshot_state_backend == SnapshotStateBackend::None));
        let bad = FlowSourceOptions::from_map(&map(&[("dsn", "x"), ("snapshot_state_backend", "redis")])).map_err(|e| e.to_string());
        assert!(bad.is_err_and(|e| e.contains("redis")));
    }

    #[test]
    fn documented_names_parallel_tables_and_snapshot_consistent() {
        let o = FlowSourceOptions::from_map(&map(&[("dsn", "x"), ("parallel_tables", "3"), ("snapshot_consistent", "false")]));
        let Ok(o) = o else { panic!("{o:?}") };
        assert_eq!(o.snapshot_workers, 3);
        assert!(!o.snapshot_consistent);
        let both = FlowSourceOptions::from_map(&map(&[("dsn", "x"), ("parallel_tables", "3"), ("snapshot_workers", "2")]));
        assert!(both.is_err(), "one name or the other");
    }

    #[test]
    fn rejects_bad_values() {
        assert!(FlowSourceOptions::from_map(&map(&[("slot", "x")])).is_err());
        assert!(FlowSourceOptions::from_map(&map(&[("dsn", "x"), ("batch_timeout", "1 fortnight")])).is_err());
        assert!(FlowSourceOptions::from_map(&map(&[("dsn", "x"), ("bach_size", "1")])).is_err());
        assert!(FlowSourceOptions::from_map(&map(&[("dsn", "x"), ("slot", "Bad-Name")])).is_err());
    }
}
