//! Durable consumers: each one's pending messages, redeliveries, dead letters and lag; a
//! consumer's settings and partitions (ack floor, next offset, end), its dead-letter topic,
//! and a form that replays it from an offset or a time. Read and changed through the
//! StreamService, as `ductstream-admin stream` does.

use axum::extract::{Path, Query, State};
use axum::response::{Html, Response};
use axum::Form;
use ductstream_proto::v1 as pb;
use ductstream_proto::v1::stream_service_server::StreamService;
use serde::Deserialize;

use super::forms::{after, Notice};
use super::messages::parse_time;
use super::page::{enum_name, escape, page, segment, table};
use super::topics::link;
use super::visitor::{answered, Visitor};
use super::{Console, PageResult};

/// The message counts every consumer shows, in the list and on its page.
const COUNT_HEADERS: [&str; 7] = ["Pending", "Delivered", "Acked", "Redelivered", "Dead letters", "Terminated", "Lag"];

fn counts(config: &pb::ConsumerConfig, stats: &pb::ConsumerStats) -> Vec<String> {
    vec![
        stats.pending.to_string(),
        stats.delivered.to_string(),
        stats.acked.to_string(),
        stats.redelivered.to_string(),
        dead_letters(config, stats.dead_lettered),
        stats.terminated.to_string(),
        stats.lag.to_string(),
    ]
}

fn consumer_path(stream: &str, group: &str) -> String {
    format!("/consumers/{}/{}", segment(stream), segment(group))
}

/// The dead-letter topic, linked to its messages once it exists.
fn dead_letters(config: &pb::ConsumerConfig, count: u64) -> String {
    match count {
        0 => "0".into(),
        n => format!("<a href=\"/topics/{}/messages\">{n}</a>", segment(&config.dead_letter_topic)),
    }
}

pub async fn list(State(console): State<Console>, visitor: Visitor, Query(shown): Query<Notice>) -> PageResult {
    let listed = answered(console.api.streams.list_consumers(visitor.request(pb::ListConsumersRequest::default())).await)?;
    let rows: Vec<Vec<String>> = listed
        .consumers
        .iter()
        .map(|c| {
            let (config, stats) = (c.config.clone().unwrap_or_default(), c.stats.unwrap_or_default());
            let mut row = vec![
                link(&config.stream),
                format!("<a href=\"{}\">{}</a>", consumer_path(&config.stream, &config.group), escape(&config.group)),
            ];
            row.extend(counts(&config, &stats));
            row
        })
        .collect();
    let body = if rows.is_empty() {
        "<p>No durable consumers yet (they are made by the gRPC API, <code>ductstream-admin stream create</code>, or a first pull).</p>".to_string()
    } else {
        table(&[&["Stream", "Consumer"][..], &COUNT_HEADERS].concat(), &rows)
    };
    Ok(Html(page("Durable consumers", &format!("{}{body}", shown.html()))))
}

pub async fn show(State(console): State<Console>, visitor: Visitor, Path((stream, group)): Path<(String, String)>, Query(shown): Query<Notice>) -> PageResult {
    let reference = pb::ConsumerRef { stream: stream.clone(), group: group.clone() };
    let consumer = answered(console.api.streams.get_consumer(visitor.request(reference)).await)?;
    let (config, stats) = (consumer.config.unwrap_or_default(), consumer.stats.unwrap_or_default());
    let policy = enum_name(pb::DeliverPolicy::try_from(config.deliver_policy).ok().map(|p| p.as_str_name()), "deliver_policy_");
    let backoff: Vec<String> = config.backoff_ms.iter().map(|ms| format!("{ms} ms")).collect();
    let settings = vec![
        vec!["Deliver".into(), escape(&policy)],
        vec!["Ack wait".into(), format!("{} ms", config.ack_wait_ms)],
        vec!["Max deliveries".into(), if config.max_deliver == 0 { "unlimited".into() } else { config.max_deliver.to_string() }],
        vec!["Backoff".into(), escape(&backoff.join(", "))],
        vec!["Max ack pending".into(), if config.max_ack_pending == 0 { "unlimited".into() } else { config.max_ack_pending.to_string() }],
        vec!["Dead-letter topic".into(), link(&config.dead_letter_topic)],
    ];
    let partitions: Vec<Vec<String>> = consumer
        .partitions
        .iter()
        .map(|p| {
            let messages = format!("<a href=\"/topics/{}/messages?partition={}&offset={}\">from the ack floor</a>", segment(&stream), p.partition, p.ack_floor);
            vec![p.partition.to_string(), p.ack_floor.to_string(), p.next_offset.to_string(), p.high_watermark.to_string(), messages]
        })
        .collect();
    let replay = format!(
        "<h2>Replay</h2><p>Deliver again from an offset (on every partition) or a time; what is pending now is forgotten.</p>\
<form method=\"post\" action=\"{}/replay\">from offset <input name=\"offset\" style=\"width:8em\"> or time \
<input name=\"time\" placeholder=\"2026-12-05 14:00:00 UTC\" style=\"width:13em\"> <button type=\"submit\">Replay</button></form>",
        consumer_path(&stream, &group)
    );
    let body = format!(
        "{}<p>Stream {}</p>{}<h2>Messages</h2>{}<h2>Partitions</h2>{}{replay}",
        shown.html(),
        link(&stream),
        table(&["", ""], &settings),
        table(&COUNT_HEADERS, &[counts(&config, &stats)]),
        table(&["Partition", "Ack floor", "Next", "End", ""], &partitions),
    );
    Ok(Html(page(&format!("Durable consumer {group}"), &body)))
}

#[derive(Deserialize)]
pub struct Replay {
    #[serde(default)]
    offset: String,
    #[serde(default)]
    time: String,
}

pub async fn replay(State(console): State<Console>, visitor: Visitor, Path((stream, group)): Path<(String, String)>, Form(wanted): Form<Replay>) -> Response {
    let back = consumer_path(&stream, &group);
    let (offset, time) = (wanted.offset.trim(), wanted.time.trim());
    let from = match (offset, time) {
        ("", "") => return after(&back, Err("give an offset or a time to replay from".into())),
        (o, "") => match o.parse::<i64>() {
            Ok(o) if o >= 0 => pb::replay_request::From::Offset(o),
            _ => return after(&back, Err(format!("offset {o:?} is not an offset (a number, 0 or more)"))),
        },
        (_, t) => match parse_time(t) {
            Some(ms) => pb::replay_request::From::Since(ductstream_proto::timestamp_from_ms(ms)),
            None => return after(&back, Err(format!("time {t:?}: write 2026-12-05 14:00:00 (UTC) or milliseconds"))),
        },
    };
    let request = pb::ReplayRequest { stream: stream.clone(), group: group.clone(), from: Some(from) };
    match answered(console.api.streams.replay(visitor.request(request)).await) {
        Ok(_) => after(&back, Ok(format!("replaying from {}", if offset.is_empty() { time } else { offset }))),
        Err(e) => after(&back, Err(e.to_string())),
    }
}
