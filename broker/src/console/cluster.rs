//! The cluster page: this broker, the brokers alive with it (their leases, and the partitions
//! each leads), its store and what it holds, and charts of its throughput.

use std::collections::HashMap;
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
    let mut led: HashMap<i32, usize> = HashMap::new();
    for t in &topics {
        for p in 0..t.partitions {
            *led.entry(broker.cluster.leader(t.id, p).node_id).or_default() += 1;
        }
    }
    let brokers: Vec<Vec<String>> = broker
        .cluster
        .brokers()
        .iter()
        .map(|b| {
            let listeners: Vec<String> = b.listeners.iter().map(|l| escape(&format!("{}://{}:{}", l.listener, l.host, l.port))).collect();
            let node = if b.node_id == config.node_id { format!("{} (this one)", b.node_id) } else { b.node_id.to_string() };
            vec![node, escape(&format!("{}:{}", b.host, b.port)), listeners.join("<br>"), led.get(&b.node_id).copied().unwrap_or(0).to_string()]
        })
        .collect();
    let lease = broker.cluster.lease();
    let leases = match config.log_dir.as_str() {
        "postgres" => format!(
            "<p>Each broker holds a lease of {} s in the shared store and renews it every {:.1} s; a broker that stops renewing loses its partitions and groups to the others.</p>",
            lease.as_secs_f64(),
            lease.as_secs_f64() / 3.0
        ),
        _ => "<p>No leases: on this store the broker is the whole cluster.</p>".to_string(),
    };
    let charts = [
        chart::line("Records produced (all topics)", Unit::RecordsPerSecond, &history.records_in()),
        chart::line("Bytes in (this broker)", Unit::BytesPerSecond, &history.rate(&Series::BytesIn)),
        chart::line("Bytes out (this broker)", Unit::BytesPerSecond, &history.rate(&Series::BytesOut)),
    ];
    let body = format!(
        "{}<h2>Brokers</h2>{leases}{}<h2>Throughput</h2>{}",
        table(&["", ""], &facts),
        table(&["Node", "Address", "Listeners", "Partitions led"], &brokers),
        charts.concat()
    );
    Ok(Html(page("Cluster", &body)))
}
