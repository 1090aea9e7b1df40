//! The cluster page: this broker, the brokers alive with it, its store and what it holds, and
//! charts of its throughput.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;

use super::chart::{self, Unit};
use super::history::{History, Series};
use super::page::{escape, page, table};
use super::visitor::Visitor;
use super::PageResult;
use crate::flows::store as flow_store;
use crate::sinks::store as sink_store;
use crate::security::acl::{Operation, ResourceType};
use crate::Broker;

pub async fn show(State(broker): State<Arc<Broker>>, State(history): State<Arc<History>>, visitor: Visitor) -> PageResult {
    let config = &broker.config;
    let mut topics = broker.storage().topics().await?;
    topics.retain(|t| visitor.may(Operation::Describe, ResourceType::Topic, &t.name));
    let partitions: i64 = topics.iter().map(|t| i64::from(t.partitions)).sum();
    let flows = flow_store::list(broker.storage().as_ref()).await?;
    let sinks = sink_store::list(broker.storage().as_ref()).await?;
    let store = match config.log_dir.as_str() {
        "postgres" | "memory" => config.log_dir.clone(),
        dir => format!("embedded ({dir})"),
    };
    let facts = vec![
        vec!["Cluster id".into(), escape(&config.cluster_id)],
        vec!["This broker".into(), config.node_id.to_string()],
        vec!["Version".into(), env!("CARGO_PKG_VERSION").into()],
        vec!["Storage".into(), escape(&store)],
        vec!["Topics".into(), format!("{} ({partitions} partitions)", topics.len())],
        vec!["Flows".into(), flows.len().to_string()],
        vec!["Sinks".into(), sinks.len().to_string()],
    ];
    let brokers: Vec<Vec<String>> = broker
        .cluster
        .brokers()
        .iter()
        .map(|b| {
            let listeners: Vec<String> = b.listeners.iter().map(|l| escape(&format!("{}://{}:{}", l.listener, l.host, l.port))).collect();
            vec![b.node_id.to_string(), escape(&format!("{}:{}", b.host, b.port)), listeners.join("<br>")]
        })
        .collect();
    let charts = [
        chart::line("Records produced (all topics)", Unit::RecordsPerSecond, &history.records_in()),
        chart::line("Bytes in (this broker)", Unit::BytesPerSecond, &history.rate(&Series::BytesIn)),
        chart::line("Bytes out (this broker)", Unit::BytesPerSecond, &history.rate(&Series::BytesOut)),
    ];
    let body = format!(
        "{}<h2>Brokers</h2>{}<h2>Throughput</h2>{}",
        table(&["", ""], &facts),
        table(&["Node", "Address", "Listeners"], &brokers),
        charts.concat()
    );
    Ok(Html(page("Cluster", &body)))
}
