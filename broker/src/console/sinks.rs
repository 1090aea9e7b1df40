//! Sinks: each one's state, phase, lag, what it has written, retries and dead letters, with
//! buttons to start and stop it; a sink's page adds its destination, topics and each
//! partition's committed offset and lag. Through the SinkService, as `ductstream-admin sink`.

use axum::extract::{Path, Query, State};
use axum::response::{Html, Response};
use ductstream_proto::v1 as pb;
use ductstream_proto::v1::sink_service_server::SinkService;

use super::forms::{after, Notice};
use super::page::{button, bytes, enum_name, escape, page, segment, table};
use super::topics::link;
use super::visitor::{answered, Visitor};
use super::{Console, PageResult};

fn sink_path(id: &str) -> String {
    format!("/sinks/{}", segment(id))
}

fn state_name(sink: &pb::Sink) -> String {
    enum_name(pb::SinkState::try_from(sink.state).ok().map(|s| s.as_str_name()), "sink_state_")
}

/// A running sink stops; a paused or failed one starts again from its committed offsets.
fn actions(sink: &pb::Sink) -> String {
    let path = sink_path(&sink.id);
    match pb::SinkState::try_from(sink.state) {
        Ok(pb::SinkState::Running) => button(&format!("{path}/stop"), "Stop"),
        _ => button(&format!("{path}/start"), "Start"),
    }
}

/// Dead letters, linked to the topic they went to (the sink's `dead_letter_topic`).
fn dead_letters(sink: &pb::Sink, count: u64) -> String {
    if count == 0 {
        return "0".into();
    }
    let default = format!("{}.dlq", sink.id);
    let topic = sink.destination.as_ref().and_then(|d| d.options.get("dead_letter_topic")).unwrap_or(&default);
    format!("<a href=\"/topics/{}/messages\">{count}</a>", segment(topic))
}

/// Phase, records, bytes, retries and dead letters since the sink started on this broker.
fn progress_cells(sink: &pb::Sink) -> Vec<String> {
    match &sink.progress {
        Some(p) if !p.phase.is_empty() => vec![
            escape(&p.phase),
            p.records_written.to_string(),
            bytes(p.bytes_written),
            p.retries.to_string(),
            dead_letters(sink, p.dead_letters),
        ],
        // A running sink with no progress here runs on another broker; a stopped one nowhere.
        _ if sink.state == pb::SinkState::Running as i32 => vec!["on another broker".into(), String::new(), String::new(), String::new(), String::new()],
        _ => vec![String::new(); 5],
    }
}

fn topics(sink: &pb::Sink) -> String {
    let mut shown: Vec<String> = sink.topics.iter().map(|t| link(t)).collect();
    if !sink.topic_pattern.is_empty() {
        shown.push(format!("matching <code>{}</code>", escape(&sink.topic_pattern)));
    }
    shown.join(", ")
}

fn destination(sink: &pb::Sink) -> String {
    sink.destination.as_ref().map_or_else(String::new, |d| escape(&d.r#type))
}

pub async fn list(State(console): State<Console>, visitor: Visitor, Query(shown): Query<Notice>) -> PageResult {
    let sinks = answered(console.api.sinks.list_sinks(visitor.request(pb::ListSinksRequest {})).await)?.sinks;
    let rows: Vec<Vec<String>> = sinks
        .iter()
        .map(|s| {
            let mut row = vec![format!("<a href=\"{}\">{}</a>", sink_path(&s.id), escape(&s.id)), destination(s), topics(s), escape(&state_name(s))];
            row.extend(progress_cells(s));
            row.extend([s.lag.to_string(), escape(&s.last_error), actions(s)]);
            row
        })
        .collect();
    let body = if rows.is_empty() {
        "<p>No sinks yet (<code>ductstream-admin sink create -f sink.json</code>).</p>".to_string()
    } else {
        let headers = ["Sink", "Destination", "Topics", "State", "Phase", "Records", "Written", "Retries", "Dead letters", "Lag", "Last error", ""];
        table(&headers, &rows)
    };
    Ok(Html(page("Sinks", &format!("{}{body}", shown.html()))))
}

pub async fn show(State(console): State<Console>, visitor: Visitor, Path(id): Path<String>, Query(shown): Query<Notice>) -> PageResult {
    let sink = answered(console.api.sinks.get_sink(visitor.request(pb::SinkRef { id: id.clone() })).await)?;
    let mut progress = progress_cells(&sink).into_iter();
    let mut facts = vec![
        vec!["Destination".into(), destination(&sink)],
        vec!["Topics".into(), topics(&sink)],
        vec!["Consumer group".into(), format!("<a href=\"/groups/{}\">{}</a>", segment(&sink.group), escape(&sink.group))],
        vec!["State".into(), escape(&state_name(&sink))],
    ];
    for label in ["Phase", "Records written", "Bytes written", "Retries", "Dead letters"] {
        facts.push(vec![label.into(), progress.next().unwrap_or_default()]);
    }
    if let Some(p) = sink.progress.as_ref().filter(|p| p.batches_written > 0) {
        facts.push(vec!["Batches".into(), format!("{} (flush mean {:.1} ms, max {:.1} ms)", p.batches_written, p.flush_mean_ms, p.flush_max_ms)]);
    }
    if !sink.flow_id.is_empty() {
        facts.push(vec!["Flow".into(), format!("<a href=\"/flows/{}\">{}</a>", segment(&sink.flow_id), escape(&sink.flow_id))]);
    }
    facts.push(vec!["Lag".into(), sink.lag.to_string()]);
    facts.push(vec!["Last error".into(), escape(&sink.last_error)]);
    let options: Vec<Vec<String>> = sink
        .destination
        .iter()
        .flat_map(|d| {
            let mut options: Vec<_> = d.options.iter().collect();
            options.sort();
            options.into_iter().map(|(k, v)| vec![escape(k), escape(v)]).collect::<Vec<_>>()
        })
        .collect();
    let partitions: Vec<Vec<String>> = sink
        .partitions
        .iter()
        .map(|p| {
            let committed = if p.committed < 0 { "none".into() } else { p.committed.to_string() };
            vec![link(&p.topic), p.partition.to_string(), committed, p.high_watermark.to_string(), p.lag.to_string()]
        })
        .collect();
    let body = format!(
        "{}{}<p>{}</p><h2>Partitions</h2>{}<h2>Options</h2>{}",
        shown.html(),
        table(&["", ""], &facts),
        actions(&sink),
        table(&["Topic", "Partition", "Committed", "End", "Lag"], &partitions),
        table(&["Option", "Value"], &options),
    );
    Ok(Html(page(&format!("Sink {id}"), &body)))
}

pub async fn act(State(console): State<Console>, visitor: Visitor, Path((id, action)): Path<(String, String)>) -> Response {
    let (api, back) = (&console.api.sinks, sink_path(&id));
    let reference = visitor.request(pb::SinkRef { id: id.clone() });
    let done = match action.as_str() {
        "start" => api.start_sink(reference).await,
        "stop" => api.stop_sink(reference).await,
        other => return after(&back, Err(format!("a sink cannot {other:?}: start or stop"))),
    };
    match answered(done) {
        Ok(sink) => after(&back, Ok(format!("{action}: the sink is {}", state_name(&sink)))),
        Err(e) => after(&back, Err(e.to_string())),
    }
}
