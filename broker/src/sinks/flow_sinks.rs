//! A CDC flow's destinations that are not this broker's topics (s3, http, kafka…) are sinks
//! over the flow's table topics, kept in step with the flow: created when the flow names the
//! destination, changed with it, deleted with it.

use ductstream_sinks::DESTINATION_TYPES;
use ductstream_storage::Storage;

use super::model::{SinkDef, SinkState};
use super::store;
use crate::clock::now_ms;
use crate::flows::store as flow_store;
use crate::flows::FlowDef;
use crate::Result;

/// The sink id of a flow's destination.
pub fn sink_id(flow: &str, destination: &str) -> String {
    format!("{flow}.{destination}")
}

/// The sinks the flow's destinations call for, as they should be defined.
pub fn wanted(flow: &FlowDef) -> Vec<SinkDef> {
    let options = flow.source_options(false);
    let prefix = options.get("topic_prefix").cloned().unwrap_or_else(|| flow.id.clone());
    // A flow with a pgstream stream writes every change there; else one topic per table.
    let (topics, topic_pattern) = match options.get("stream") {
        Some(stream) => (vec![stream.clone()], String::new()),
        // Table topics are <prefix>.<schema>.<table>; <prefix>._ddl and the like are not.
        None => (Vec::new(), format!(r"{}\.[^._][^.]*\.[^.]+", regex::escape(&prefix))),
    };
    flow.destinations
        .iter()
        .filter(|d| DESTINATION_TYPES.contains(&d.kind.as_str()))
        .map(|d| SinkDef {
            id: sink_id(&flow.id, if d.name.is_empty() { &d.kind } else { &d.name }),
            topics: topics.clone(),
            topic_pattern: topic_pattern.clone(),
            destination: ductstream_sinks::Destination { name: d.name.clone(), kind: d.kind.clone(), options: destination_options(flow, d) },
            state: SinkState::Running,
            last_error: String::new(),
            flow_id: flow.id.clone(),
            created_ms: 0,
            updated_ms: 0,
        })
        .collect()
}

/// Destinations that apply changes to tables: they read column types from the flow's source.
const TABLE_DESTINATIONS: [&str; 3] = ["postgres", "duckdb", "clickhouse"];

/// The destination's options, with the flow's file format (`wire_format` arrow or parquet) for
/// an s3 destination that names none, and for a table destination the source's connection
/// string (to read column types from its catalog) and the flow's id (the meta table's).
fn destination_options(flow: &FlowDef, d: &crate::flows::Endpoint) -> std::collections::BTreeMap<String, String> {
    let mut options = d.options.clone();
    if let (Some(format), "s3") = (flow.file_format(), d.kind.as_str()) {
        options.entry("format".into()).or_insert_with(|| format.to_owned());
    }
    if TABLE_DESTINATIONS.contains(&d.kind.as_str()) {
        if let Some(dsn) = flow.source.options.get("dsn") {
            options.entry("source_dsn".into()).or_insert_with(|| dsn.clone());
        }
        options.entry("flow_id".into()).or_insert_with(|| flow.id.clone());
    }
    options
}

/// Makes the stored flow sinks match the stored flows, given the stored `sinks`; true when it
/// changed any. Sinks of their own are left alone; a flow sink keeps its state (a stopped one
/// stays stopped) when its definition changes.
pub async fn sync(storage: &dyn Storage, sinks: &[SinkDef]) -> Result<bool> {
    let flows = flow_store::list(storage).await?;
    let mut changed = false;
    let wanted: Vec<SinkDef> = flows.iter().flat_map(wanted).collect();
    let now = now_ms();
    for want in &wanted {
        match sinks.iter().find(|s| s.id == want.id) {
            Some(have) if have.flow_id != want.flow_id => {
                tracing::warn!(sink = %want.id, flow = %want.flow_id, "a sink of that id exists already; the flow destination is not run");
            }
            Some(have) if have.destination == want.destination && have.topic_pattern == want.topic_pattern => {}
            Some(have) => {
                let updated = SinkDef { state: have.state, last_error: have.last_error.clone(), created_ms: have.created_ms, updated_ms: now, ..want.clone() };
                store::put(storage, &updated).await?;
                changed = true;
            }
            None => {
                if let Err(e) = want.validate() {
                    tracing::warn!(sink = %want.id, error = %e, "the flow's destination is not valid; not run");
                    continue;
                }
                store::put(storage, &SinkDef { created_ms: now, updated_ms: now, ..want.clone() }).await?;
                changed = true;
                tracing::info!(sink = %want.id, flow = %want.flow_id, "created the flow's sink");
            }
        }
    }
    for stale in sinks.iter().filter(|s| !s.flow_id.is_empty() && !wanted.iter().any(|w| w.id == s.id)) {
        store::delete(storage, &stale.id).await?;
        changed = true;
        tracing::info!(sink = %stale.id, flow = %stale.flow_id, "deleted the sink of a removed flow destination");
    }
    Ok(changed)
}
