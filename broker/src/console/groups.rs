//! Consumer groups: every group with its state and lag; a group's members (a KIP-848 group's
//! with their epochs and assignments), its committed offsets against each partition's end
//! (the lag) and its lag over time, and a form that resets a topic's offsets (to the earliest,
//! the latest or a given offset) while the group has no members, as
//! `kafka-consumer-groups --reset-offsets` does.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{Html, Response};
use axum::Form;
use ductstream_storage::Topic;
use kafka_protocol::messages::consumer_group_describe_response::{self, Assignment};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use serde::Deserialize;

use super::chart::{self, Unit};
use super::forms::{after, Notice};
use super::history::{History, Series};
use super::kafka::{commit, committed, describe_consumer_group, describe_group, list_groups};
use super::page::{escape, page, segment, table};
use super::topics::link;
use super::visitor::Visitor;
use super::PageResult;
use crate::{Broker, BrokerError};

/// A committed offset against its partition's end.
struct Lag {
    topic: String,
    partition: i32,
    committed: i64,
    end: Option<i64>,
}

impl Lag {
    fn lag(&self) -> Option<i64> {
        self.end.map(|end| (end - self.committed).max(0))
    }
}

async fn lags(broker: &Arc<Broker>, visitor: &Visitor, group: &str) -> Result<Vec<Lag>, BrokerError> {
    let mut rows = Vec::new();
    // Each topic looked up once (on Postgres storage a lookup is a query), not per partition.
    let mut topics: HashMap<String, Option<Topic>> = HashMap::new();
    for (topic, partition, committed) in committed(broker, visitor, group).await.map_err(BrokerError::FailedPrecondition)? {
        if !topics.contains_key(&topic) {
            topics.insert(topic.clone(), broker.storage().topic(&topic).await?);
        }
        // A topic deleted since the commit has no end.
        let end = match topics.get(&topic).and_then(Option::as_ref) {
            Some(t) if partition < t.partitions => Some(broker.log.offsets(t, partition).await?.high_watermark),
            _ => None,
        };
        rows.push(Lag { topic, partition, committed, end });
    }
    rows.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(rows)
}

fn group_link(group: &str) -> String {
    format!("<a href=\"/groups/{}\">{}</a>", segment(group), escape(group))
}

pub async fn list(State(broker): State<Arc<Broker>>, visitor: Visitor) -> PageResult {
    let mut rows = Vec::new();
    for g in list_groups(&broker, &visitor).await.map_err(BrokerError::FailedPrecondition)? {
        let id = g.group_id.0.to_string();
        let total: i64 = lags(&broker, &visitor, &id).await?.iter().filter_map(Lag::lag).sum();
        rows.push(vec![group_link(&id), escape(&g.group_state), escape(&g.group_type), escape(&g.protocol_type), total.to_string()]);
    }
    let body = if rows.is_empty() { "<p>No consumer groups yet.</p>".to_string() } else { table(&["Group", "State", "Type", "Protocol", "Lag"], &rows) };
    Ok(Html(page("Consumer groups", &body)))
}

pub async fn show(
    State(broker): State<Arc<Broker>>,
    State(history): State<Arc<History>>,
    visitor: Visitor,
    Path(group): Path<String>,
    Query(shown): Query<Notice>,
) -> PageResult {
    // A KIP-848 group answers ConsumerGroupDescribe; a classic one, DescribeGroups.
    let members = match describe_consumer_group(&broker, &visitor, &group).await {
        Ok(described) => consumer_group_members(&described),
        Err(_) => match describe_group(&broker, &visitor, &group).await {
            Ok(described) => classic_members(&described),
            Err(e) => format!("<p>{}</p>", escape(&e)),
        },
    };
    let lags = lags(&broker, &visitor, &group).await?;
    let rows: Vec<Vec<String>> = lags
        .iter()
        .map(|l| {
            vec![
                link(&l.topic),
                l.partition.to_string(),
                l.committed.to_string(),
                l.end.map_or("topic gone".into(), |e| e.to_string()),
                l.lag().map_or_else(String::new, |lag| lag.to_string()),
                chart::sparkline(&history.samples(&Series::PartitionLag(group.clone(), l.topic.clone(), l.partition))),
            ]
        })
        .collect();
    let mut topics: Vec<&str> = lags.iter().map(|l| l.topic.as_str()).collect();
    topics.dedup();
    let options: String = topics.iter().map(|t| format!("<option>{}</option>", escape(t))).collect();
    let reset = format!(
        "<h2>Reset offsets</h2><p>Only while the group has no members, as Kafka allows.</p>\
<form method=\"post\" action=\"/groups/{}/reset\">topic <select name=\"topic\">{options}</select> to \
<select name=\"to\"><option value=\"earliest\">earliest</option><option value=\"latest\">latest</option><option value=\"offset\">offset</option></select> \
<input name=\"offset\" placeholder=\"offset\" style=\"width:8em\"> <button type=\"submit\">Reset</button></form>",
        segment(&group)
    );
    let body = format!(
        "{}<h2>Members</h2>{members}<h2>Committed offsets</h2>{}{}{}",
        shown.html(),
        if rows.is_empty() { "<p>None.</p>".to_string() } else { table(&["Topic", "Partition", "Committed", "End", "Lag", "Lag over time"], &rows) },
        chart::line("Lag", Unit::Records, &history.samples(&Series::GroupLag(group.clone()))),
        if topics.is_empty() { String::new() } else { reset }
    );
    Ok(Html(page(&format!("Group {group}"), &body)))
}

fn classic_members(described: &DescribedGroup) -> String {
    let rows: Vec<Vec<String>> = described.members.iter().map(|m| vec![escape(&m.member_id), escape(&m.client_id), escape(&m.client_host)]).collect();
    format!(
        "<p>Classic group · state {} · protocol {}</p>{}",
        escape(&described.group_state),
        escape(&described.protocol_data),
        if rows.is_empty() { "<p>No members.</p>".to_string() } else { table(&["Member", "Client", "Host"], &rows) }
    )
}

/// Partitions by topic: `orders 0,1 · payments 2`.
fn assigned(assignment: &Assignment) -> String {
    let topics: Vec<String> = assignment
        .topic_partitions
        .iter()
        .map(|t| {
            let partitions: Vec<String> = t.partitions.iter().map(i32::to_string).collect();
            format!("{} {}", escape(&t.topic_name.0), partitions.join(","))
        })
        .collect();
    topics.join(" · ")
}

/// A KIP-848 group: its epochs and assignor, each member's subscription, what it owns and,
/// while the group is reconciling, what the broker has assigned it next.
fn consumer_group_members(described: &consumer_group_describe_response::DescribedGroup) -> String {
    let rows: Vec<Vec<String>> = described
        .members
        .iter()
        .map(|m| {
            let subscribed: Vec<&str> = m.subscribed_topic_names.iter().map(|t| t.0.as_str()).collect();
            let target = if m.target_assignment == m.assignment { String::new() } else { assigned(&m.target_assignment) };
            vec![
                escape(&m.member_id),
                escape(&m.client_id),
                escape(&m.client_host),
                m.member_epoch.to_string(),
                escape(&subscribed.join(", ")),
                assigned(&m.assignment),
                target,
            ]
        })
        .collect();
    format!(
        "<p>Consumer group (KIP-848) · state {} · group epoch {} · assignment epoch {} · assignor {}</p>{}",
        escape(&described.group_state),
        described.group_epoch,
        described.assignment_epoch,
        escape(&described.assignor_name),
        if rows.is_empty() {
            "<p>No members.</p>".to_string()
        } else {
            table(&["Member", "Client", "Host", "Epoch", "Subscribed", "Assigned", "Being assigned"], &rows)
        }
    )
}

#[derive(Deserialize)]
pub struct Reset {
    topic: String,
    to: String,
    #[serde(default)]
    offset: String,
}

pub async fn reset(State(broker): State<Arc<Broker>>, visitor: Visitor, Path(group): Path<String>, Form(wanted): Form<Reset>) -> Response {
    let back = format!("/groups/{}", segment(&group));
    let topic = match broker.storage().topic(&wanted.topic).await {
        Ok(Some(t)) => t,
        Ok(None) => return after(&back, Err(format!("topic {:?} does not exist", wanted.topic))),
        Err(e) => return after(&back, Err(e.to_string())),
    };
    let given = match (wanted.to.as_str(), wanted.offset.trim().parse::<i64>()) {
        ("offset", Ok(o)) if o >= 0 => Some(o),
        ("offset", _) => return after(&back, Err(format!("offset {:?} is not an offset (a number, 0 or more)", wanted.offset))),
        ("earliest" | "latest", _) => None,
        (other, _) => return after(&back, Err(format!("reset to {other:?}: use earliest, latest or offset"))),
    };
    let mut offsets = Vec::new();
    for p in 0..topic.partitions {
        let bounds = match broker.log.offsets(&topic, p).await {
            Ok(b) => b,
            Err(e) => return after(&back, Err(e.to_string())),
        };
        let target = match (wanted.to.as_str(), given) {
            ("earliest", _) => bounds.log_start,
            ("latest", _) => bounds.high_watermark,
            (_, Some(o)) => o.max(bounds.log_start).min(bounds.high_watermark),
            _ => bounds.high_watermark,
        };
        offsets.push((p, target));
    }
    match commit(&broker, &visitor, &group, &topic.name, &offsets).await {
        Ok(()) => after(&back, Ok(format!("reset {} to {} on {} partitions", topic.name, wanted.to, offsets.len()))),
        Err(e) => after(&back, Err(e)),
    }
}
