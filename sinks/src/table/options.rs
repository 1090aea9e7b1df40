//! The options every table destination (postgres, duckdb, clickhouse) shares.

use std::collections::BTreeMap;

use crate::{Options, Result, SinkError};

/// Where rows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// The destination table mirrors the source: upserts, deletes, truncates.
    Target,
    /// Every change is a new row (with its op in the meta op column).
    Append,
}

/// How batches land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchMode {
    /// Straight into the destination table.
    Target,
    /// Into a staging table, applied to the destination table by a resolution.
    Staging,
}

/// What resolving a staging table does to the destination table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Nothing: the staged rows stay where they are.
    None,
    /// The staged changes are applied to the destination table (the latest per key wins) and
    /// the staging table is emptied.
    Append,
    /// The destination table is replaced by the staged rows' latest state per key.
    Replace,
}

/// Where the watermark column's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatermarkSource {
    /// The commit time.
    Timestamp,
    /// The commit LSN, as a number.
    Lsn,
}

/// Metadata columns added to every destination row when `meta_enabled`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaColumns {
    pub synced_at: String,
    pub deleted: String,
    /// `None` when set to `-`.
    pub watermark: Option<String>,
    pub op: String,
    pub watermark_source: WatermarkSource,
}

/// The per-key metadata table: one row per source row, with its latest op and LSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaTable {
    pub schema: String,
    pub table: String,
    /// Prefix of its primary-key constraint's name.
    pub pk_prefix: String,
}

/// Every table destination option but the connection's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOptions {
    /// Destination schema (ClickHouse: database) and table; `None` takes the source's.
    pub schema: Option<String>,
    pub table: Option<String>,
    pub write_mode: WriteMode,
    pub batch_mode: BatchMode,
    pub resolution: Resolution,
    pub staging_schema: Option<String>,
    pub staging_table: Option<String>,
    pub staging_suffix: String,
    pub meta_table: Option<MetaTable>,
    /// The schema of the sink's own bookkeeping (its offsets; the meta table's default).
    pub meta_schema: String,
    pub meta: Option<MetaColumns>,
    pub soft_delete: bool,
    pub type_mappings: BTreeMap<String, String>,
    /// The source database, to read column types from its catalog (a flow sets it).
    pub source_dsn: Option<String>,
    /// The id rows in the meta table are filed under (the flow's, else the sink's).
    pub flow_id: String,
}

impl TableOptions {
    /// Takes the shared options out of `options`; `meta_schema` and `meta_table` default to
    /// the destination's spelling of `ductstream_meta` and `__metadata`.
    pub fn take(options: &mut Options, default_meta_schema: &str, default_meta_table: &str, sink_id: &str) -> Result<TableOptions> {
        let schema = options.string("schema").or_else(|| options.string("database"));
        let table = options.string("table");
        let write_mode = match options.choice("write_mode", "target", &["target", "append"])?.as_str() {
            "append" => WriteMode::Append,
            _ => WriteMode::Target,
        };
        let append_mode = options.parse("append_mode", false)?;
        let batch_mode = match options.choice("batch_mode", "target", &["target", "staging"])?.as_str() {
            "staging" => BatchMode::Staging,
            _ => BatchMode::Target,
        };
        let resolution = match options.choice("batch_resolution", "none", &["none", "append", "replace"])?.as_str() {
            "append" => Resolution::Append,
            "replace" => Resolution::Replace,
            _ => Resolution::None,
        };
        let staging_schema = options.string("staging_schema");
        let staging_table = options.string("staging_table");
        let staging_suffix = options.string_or("staging_suffix", "_staging");
        let meta_schema = options.string_or("meta_schema", default_meta_schema);
        let meta_table_name = options.string_or("meta_table", default_meta_table);
        let pk_prefix = options.string_or("meta_pk_prefix", "pk_");
        let meta_table = options
            .parse("meta_table_enabled", true)?
            .then(|| MetaTable { schema: meta_schema.clone(), table: meta_table_name, pk_prefix });
        let meta_enabled = options.parse("meta_enabled", false)?;
        let synced_at = options.string_or("meta_synced_at", "__ds_synced_at");
        let deleted = options.string_or("meta_deleted", "__ds_is_deleted");
        let watermark = Some(options.string_or("meta_watermark", "__ds_watermark")).filter(|w| w != "-");
        let op = options.string_or("meta_op", "__ds_op");
        let watermark_source = match options.choice("watermark_source", "timestamp", &["timestamp", "lsn"])?.as_str() {
            "lsn" => WatermarkSource::Lsn,
            _ => WatermarkSource::Timestamp,
        };
        let soft_delete = options.parse("soft_delete", false)?;
        // Append mode records the op of each row, and soft deletes flag rows: both need the
        // meta columns, so they turn them on.
        let append = append_mode || write_mode == WriteMode::Append;
        let meta = (meta_enabled || append || soft_delete).then_some(MetaColumns { synced_at, deleted, watermark, op, watermark_source });
        let mut type_mappings = BTreeMap::new();
        if let Some(path) = options.string("type_mappings_file") {
            let text = std::fs::read_to_string(&path).map_err(|e| SinkError::Config(format!("type_mappings_file {path:?}: {e}")))?;
            type_mappings.extend(parse_mappings(&text, "type_mappings_file")?);
        }
        if let Some(json) = options.string("type_mappings") {
            type_mappings.extend(parse_mappings(&json, "type_mappings")?);
        }
        let source_dsn = options.string("source_dsn");
        let flow_id = options.string_or("flow_id", sink_id);
        if let Some(m) = &meta {
            let names = [Some(&m.synced_at), Some(&m.deleted), m.watermark.as_ref(), Some(&m.op)];
            let mut seen: Vec<&String> = names.into_iter().flatten().collect();
            seen.sort();
            if seen.windows(2).any(|w| w[0] == w[1]) {
                return Err(SinkError::Config("the meta column names must differ from each other".into()));
            }
        }
        Ok(TableOptions {
            schema,
            table,
            write_mode: if append { WriteMode::Append } else { write_mode },
            batch_mode,
            resolution,
            staging_schema,
            staging_table,
            staging_suffix,
            meta_table,
            meta_schema,
            meta,
            soft_delete,
            type_mappings,
            source_dsn,
            flow_id,
        })
    }
}

/// A JSON object of source type to destination type.
fn parse_mappings(json: &str, what: &str) -> Result<BTreeMap<String, String>> {
    serde_json::from_str::<BTreeMap<String, String>>(json)
        .map(|m| m.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect())
        .map_err(|e| SinkError::Config(format!("{what}: a JSON object of source type to destination type: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(pairs: &[(&str, &str)]) -> Result<TableOptions> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut options = Options::new("postgres", &map);
        let taken = TableOptions::take(&mut options, "ductstream_meta", "__metadata", "s1")?;
        options.finish()?;
        Ok(taken)
    }

    #[test]
    fn defaults_and_switches() -> Result<()> {
        let o = take(&[])?;
        assert_eq!((o.write_mode, o.batch_mode, o.resolution), (WriteMode::Target, BatchMode::Target, Resolution::None));
        assert!(o.meta.is_none() && o.meta_table.is_some() && o.flow_id == "s1");
        let o = take(&[("append_mode", "true"), ("meta_watermark", "-"), ("type_mappings", r#"{"JSONB":"VARIANT"}"#)])?;
        assert_eq!(o.write_mode, WriteMode::Append);
        assert_eq!(o.meta.as_ref().and_then(|m| m.watermark.clone()), None);
        assert_eq!(o.type_mappings.get("jsonb").map(String::as_str), Some("VARIANT"));
        assert!(take(&[("write_mode", "sideways")]).is_err());
        assert!(take(&[("type_mappings", "[1]")]).is_err());
        assert!(take(&[("meta_enabled", "true"), ("meta_op", "__ds_synced_at")]).is_err());
        Ok(())
    }
}
