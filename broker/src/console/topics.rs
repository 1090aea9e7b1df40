//! Topics: the list with their partitions and records, a topic's partitions (offsets, size,
//! the broker leading each), its records per second, its configs, and forms to create, delete
//! and change configs.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{Html, Response};
use axum::Form;
use serde::Deserialize;

use super::chart::{self, Unit};
use super::forms::{after, Notice};
use super::history::{History, Series};
use super::kafka::{alter_topic_config, create_topic, delete_topic};
use super::page::{bytes, escape, page, segment, table};
use super::visitor::Visitor;
use super::PageResult;
use crate::security::acl::{Operation, ResourceType};
use crate::{Broker, BrokerError};

pub fn link(name: &str) -> String {
    format!("<a href=\"/topics/{}\">{}</a>", segment(name), escape(name))
}

pub async fn list(State(broker): State<Arc<Broker>>, visitor: Visitor, Query(shown): Query<Notice>) -> PageResult {
    let mut rows = Vec::new();
    // Only the topics the visitor may describe, as Metadata lists them.
    for topic in broker.storage().topics().await?.into_iter().filter(|t| visitor.may(Operation::Describe, ResourceType::Topic, &t.name)) {
        let mut records = 0;
        for p in 0..topic.partitions {
            let o = broker.log.offsets(&topic, p).await?;
            records += o.high_watermark - o.log_start;
        }
        rows.push(vec![link(&topic.name), topic.partitions.to_string(), records.to_string()]);
    }
    let form = "<h2>Create a topic</h2><form method=\"post\" action=\"/topics\">\
<input name=\"name\" placeholder=\"name\" required> <input name=\"partitions\" type=\"number\" value=\"1\" style=\"width:5em\"> partitions \
<button type=\"submit\">Create</button></form>";
    let body = format!("{}{}{form}", shown.html(), table(&["Topic", "Partitions", "Records"], &rows));
    Ok(Html(page("Topics", &body)))
}

#[derive(Deserialize)]
pub struct NewTopic {
    name: String,
    partitions: String,
}

pub async fn create(State(broker): State<Arc<Broker>>, visitor: Visitor, Form(wanted): Form<NewTopic>) -> Response {
    let Ok(partitions) = wanted.partitions.trim().parse::<i32>() else {
        return after("/topics", Err(format!("partitions {:?} is not a number", wanted.partitions)));
    };
    let name = wanted.name.trim();
    match create_topic(&broker, &visitor, name, partitions).await {
        Ok(()) => after(&format!("/topics/{}", segment(name)), Ok(format!("created topic {name}"))),
        Err(e) => after("/topics", Err(e)),
    }
}

pub async fn delete(State(broker): State<Arc<Broker>>, visitor: Visitor, Path(name): Path<String>) -> Response {
    match delete_topic(&broker, &visitor, &name).await {
        Ok(()) => after("/topics", Ok(format!("deleted topic {name}"))),
        Err(e) => after(&format!("/topics/{}", segment(&name)), Err(e)),
    }
}

pub async fn show(
    State(broker): State<Arc<Broker>>,
    State(history): State<Arc<History>>,
    visitor: Visitor,
    Path(name): Path<String>,
    Query(shown): Query<Notice>,
) -> PageResult {
    visitor.require(Operation::Describe, ResourceType::Topic, &name)?;
    let topic = broker.storage().topic(&name).await?.ok_or_else(|| BrokerError::NotFound(format!("topic {name:?} does not exist")))?;
    let mut partitions = Vec::new();
    for p in 0..topic.partitions {
        let o = broker.log.offsets(&topic, p).await?;
        // The stored bytes, as DescribeLogDirs reports them (a store that keeps no count says nothing).
        let size = broker.storage().partition_size(&name, p).await?;
        let browse = format!("<a href=\"/topics/{}/messages?partition={p}\">messages</a>", segment(&name));
        partitions.push(vec![
            p.to_string(),
            broker.cluster.leader(topic.id, p).node_id.to_string(),
            o.log_start.to_string(),
            o.high_watermark.to_string(),
            (o.high_watermark - o.log_start).to_string(),
            size.map_or_else(String::new, bytes),
            browse,
        ]);
    }
    let configs: BTreeMap<&String, &String> = topic.configs.iter().collect();
    let config_rows: Vec<Vec<String>> = configs
        .iter()
        .map(|(k, v)| {
            let reset = format!(
                "<form method=\"post\" action=\"/topics/{}/configs\" style=\"margin:0\"><input type=\"hidden\" name=\"name\" value=\"{}\">\
<input type=\"hidden\" name=\"reset\" value=\"true\"><button type=\"submit\">Back to default</button></form>",
                segment(&name),
                escape(k)
            );
            vec![escape(k), escape(v), reset]
        })
        .collect();
    let body = format!(
        "{}<p>Topic id {}</p><h2>Partitions</h2>{}{}<h2>Configs set on the topic</h2>{}\
<form method=\"post\" action=\"/topics/{}/configs\"><input name=\"name\" placeholder=\"config (retention.ms)\" required> \
<input name=\"value\" placeholder=\"value\"> <button type=\"submit\">Set config</button></form>\
<form method=\"post\" action=\"/topics/{}/delete\" onsubmit=\"return confirm('Delete this topic and all its records?')\">\
<button type=\"submit\">Delete topic</button></form>",
        shown.html(),
        topic.id,
        table(&["Partition", "Leader", "Log start", "End", "Records", "Size", ""], &partitions),
        chart::line("Records produced", Unit::RecordsPerSecond, &history.rate(&Series::TopicEnd(name.clone()))),
        if config_rows.is_empty() { "<p>None: every config has its broker default.</p>".to_string() } else { table(&["Config", "Value", ""], &config_rows) },
        segment(&name),
        segment(&name),
    );
    Ok(Html(page(&format!("Topic {name}"), &body)))
}

#[derive(Deserialize)]
pub struct ConfigChange {
    name: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    reset: bool,
}

pub async fn alter_config(
    State(broker): State<Arc<Broker>>,
    visitor: Visitor,
    Path(name): Path<String>,
    Form(change): Form<ConfigChange>,
) -> Response {
    let config = change.name.trim();
    let value = (!change.reset).then_some(change.value.trim());
    let back = format!("/topics/{}", segment(&name));
    match alter_topic_config(&broker, &visitor, &name, config, value).await {
        Ok(()) => after(&back, Ok(value.map_or_else(|| format!("{config} is back to its default"), |v| format!("set {config}={v}")))),
        Err(e) => after(&back, Err(e)),
    }
}
