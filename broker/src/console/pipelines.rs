//! Flows and sinks: each one's state and last error, as stored.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;

use super::page::{escape, page, table};
use super::PageResult;
use crate::flows::store as flow_store;
use crate::sinks::store as sink_store;
use crate::Broker;

pub async fn flows(State(broker): State<Arc<Broker>>) -> PageResult {
    let rows: Vec<Vec<String>> = flow_store::list(broker.storage().as_ref())
        .await?
        .iter()
        .map(|f| {
            let destinations: Vec<String> = f.destinations.iter().map(|d| escape(&format!("{} ({})", d.name, d.kind))).collect();
            vec![escape(&f.id), escape(&format!("{:?}", f.state)), escape(&f.source.kind), destinations.join("<br>"), escape(&f.wire_format), escape(&f.last_error)]
        })
        .collect();
    Ok(Html(page("Flows", &table(&["Flow", "State", "Source", "Destinations", "Format", "Last error"], &rows))))
}

pub async fn sinks(State(broker): State<Arc<Broker>>) -> PageResult {
    let rows: Vec<Vec<String>> = sink_store::list(broker.storage().as_ref())
        .await?
        .iter()
        .map(|s| {
            let topics = if s.topic_pattern.is_empty() { s.topics.join(", ") } else { format!("/{}/", s.topic_pattern) };
            vec![escape(&s.id), escape(&format!("{:?}", s.state)), escape(&s.destination.kind), escape(&topics), escape(&s.flow_id), escape(&s.last_error)]
        })
        .collect();
    Ok(Html(page("Sinks", &table(&["Sink", "State", "Destination", "Topics", "Flow", "Last error"], &rows))))
}
