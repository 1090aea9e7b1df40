//! CDC flows: each one's state, phase, snapshot progress, confirmed LSN and how far behind its
//! source it is, with buttons to start, stop and resume it; a flow's page adds its source,
//! destinations, checkpoint and DDL changes, the pending ones to approve or reject. All through
//! the FlowService, DDLService and CheckpointService, as `ductstream-admin flow` and `ddl` do.

use axum::extract::{Path, Query, State};
use axum::response::{Html, Response};
use axum::Form;
use ductstream_proto::v1 as pb;
use ductstream_proto::v1::checkpoint_service_server::CheckpointService;
use ductstream_proto::v1::ddl_service_server::DdlService;
use ductstream_proto::v1::flow_service_server::FlowService;
use serde::Deserialize;

use super::forms::{after, Notice};
use super::page::{button, bytes, enum_name, escape, page, segment, table};
use super::visitor::{answered, Visitor};
use super::{Console, PageResult};
use crate::BrokerError;

fn flow_path(id: &str) -> String {
    format!("/flows/{}", segment(id))
}

fn state_name(flow: &pb::Flow) -> String {
    enum_name(pb::FlowState::try_from(flow.state).ok().map(|s| s.as_str_name()), "flow_state_")
}

/// The actions a flow in its state takes: a stopped flow starts (or resumes where it
/// confirmed), a running one stops.
fn actions(flow: &pb::Flow) -> String {
    let path = flow_path(&flow.id);
    match pb::FlowState::try_from(flow.state) {
        Ok(pb::FlowState::Running) => button(&format!("{path}/stop"), "Stop"),
        Ok(pb::FlowState::Stopping) => String::new(),
        _ => format!("{}{}", button(&format!("{path}/start"), "Start"), button(&format!("{path}/resume"), "Resume")),
    }
}

/// Progress cells: phase, snapshot chunks, changes streamed, confirmed LSN, lag behind the source.
fn progress_cells(progress: Option<&pb::FlowProgress>) -> Vec<String> {
    let Some(p) = progress else {
        return vec![String::new(); 5];
    };
    let snapshot = match p.snapshot_chunks_total {
        0 => String::new(),
        total => format!("{} / {total} chunks", p.snapshot_chunks_done),
    };
    let lag = if p.server_lsn.is_empty() { String::new() } else { format!("{} (server at {})", bytes(p.lag_bytes), escape(&p.server_lsn)) };
    vec![escape(&p.phase), snapshot, p.records_written.to_string(), escape(&p.confirmed_lsn), lag]
}

fn endpoint(e: &pb::Endpoint) -> String {
    format!("{} ({})", e.name, e.r#type)
}

pub async fn list(State(console): State<Console>, visitor: Visitor, Query(shown): Query<Notice>) -> PageResult {
    let flows = answered(FlowService::list_flows(&console.api.flows, visitor.request(pb::ListFlowsRequest {})).await)?.flows;
    let pending = answered(DdlService::list_pending(&console.api.flows, visitor.request(pb::ListPendingRequest::default())).await)?.ddl;
    let rows: Vec<Vec<String>> = flows
        .iter()
        .map(|f| {
            let waiting = pending.iter().filter(|d| d.flow_id == f.id && d.status == "pending").count();
            let mut row = vec![format!("<a href=\"{}\">{}</a>", flow_path(&f.id), escape(&f.id)), escape(&state_name(f))];
            row.extend(progress_cells(f.progress.as_ref()));
            row.push(if waiting == 0 { String::new() } else { format!("<a href=\"{}\">{waiting} to decide</a>", flow_path(&f.id)) });
            row.push(escape(&f.last_error));
            row.push(actions(f));
            row
        })
        .collect();
    let body = if rows.is_empty() {
        "<p>No flows yet (<code>ductstream-admin flow create -f flow.json</code>).</p>".to_string()
    } else {
        table(&["Flow", "State", "Phase", "Snapshot", "Changes", "Confirmed LSN", "Behind source", "DDL", "Last error", ""], &rows)
    };
    Ok(Html(page("Flows", &format!("{}{body}", shown.html()))))
}

pub async fn show(State(console): State<Console>, visitor: Visitor, Path(id): Path<String>, Query(shown): Query<Notice>) -> PageResult {
    let flow = answered(FlowService::get_flow(&console.api.flows, visitor.request(pb::FlowRef { id: id.clone() })).await)?;
    let checkpoint = match answered(CheckpointService::get(&console.api.flows, visitor.request(pb::FlowRef { id: id.clone() })).await) {
        Ok(c) => {
            let snapshot = c.snapshot.map_or_else(String::new, |s| {
                format!(" · snapshot at {}: {} / {} chunks{}", s.consistent_point, s.chunks_done, s.chunks_total, if s.complete { ", complete" } else { "" })
            });
            escape(&format!("{}{snapshot}", c.lsn))
        }
        Err(BrokerError::NotFound(_)) => "none yet".into(),
        Err(e) => return Err(e),
    };
    let mut progress = progress_cells(flow.progress.as_ref()).into_iter();
    let mut facts = vec![
        vec!["State".into(), escape(&state_name(&flow))],
        vec!["Source".into(), flow.source.as_ref().map(endpoint).map(|e| escape(&e)).unwrap_or_default()],
        vec!["Destinations".into(), flow.destinations.iter().map(|d| escape(&endpoint(d))).collect::<Vec<_>>().join("<br>")],
    ];
    for label in ["Phase", "Snapshot", "Changes streamed", "Confirmed LSN", "Behind source"] {
        facts.push(vec![label.into(), progress.next().unwrap_or_default()]);
    }
    facts.push(vec!["Checkpoint".into(), checkpoint]);
    facts.push(vec!["Last error".into(), escape(&flow.last_error)]);

    let changes = answered(DdlService::list_pending(&console.api.flows, visitor.request(pb::ListPendingRequest { flow_id: id.clone() })).await)?.ddl;
    let rows: Vec<Vec<String>> = changes
        .iter()
        .map(|d| {
            let decide = if d.status == "pending" {
                let path = format!("{}/ddl/{}", flow_path(&id), d.id);
                format!(
                    "{}<form method=\"post\" action=\"{path}/reject\" style=\"display:inline;margin:0\"><input name=\"reason\" placeholder=\"reason\"> \
<button type=\"submit\">Reject</button></form>",
                    button(&format!("{path}/approve"), "Approve")
                )
            } else {
                String::new()
            };
            vec![d.id.to_string(), escape(&d.lsn), escape(&d.tag), format!("<pre>{}</pre>", escape(&d.query)), escape(&d.status), decide]
        })
        .collect();
    let ddl = if rows.is_empty() { "<p>None.</p>".to_string() } else { table(&["Id", "LSN", "Command", "Query", "Status", ""], &rows) };
    let body = format!("{}{}<p>{}</p><h2>DDL changes</h2>{ddl}", shown.html(), table(&["", ""], &facts), actions(&flow));
    Ok(Html(page(&format!("Flow {id}"), &body)))
}

pub async fn act(State(console): State<Console>, visitor: Visitor, Path((id, action)): Path<(String, String)>) -> Response {
    let api = &console.api.flows;
    let reference = visitor.request(pb::FlowRef { id: id.clone() });
    let done = match action.as_str() {
        "start" => FlowService::start_flow(api, reference).await,
        "stop" => FlowService::stop_flow(api, reference).await,
        "resume" => FlowService::resume_flow(api, reference).await,
        other => return after(&flow_path(&id), Err(format!("a flow cannot {other:?}: start, stop or resume"))),
    };
    let back = flow_path(&id);
    match answered(done) {
        Ok(flow) => after(&back, Ok(format!("{action}: the flow is {}", state_name(&flow)))),
        Err(e) => after(&back, Err(e.to_string())),
    }
}

#[derive(Deserialize)]
pub struct Decision {
    #[serde(default)]
    reason: String,
}

pub async fn decide(
    State(console): State<Console>,
    visitor: Visitor,
    Path((id, ddl, decision)): Path<(String, u64, String)>,
    Form(why): Form<Decision>,
) -> Response {
    let api = &console.api.flows;
    let decided = match decision.as_str() {
        "approve" => DdlService::approve(api, visitor.request(pb::DdlRef { flow_id: id.clone(), id: ddl })).await,
        "reject" => DdlService::reject(api, visitor.request(pb::RejectRequest { flow_id: id.clone(), id: ddl, reason: why.reason })).await,
        other => return after(&flow_path(&id), Err(format!("a DDL change cannot be {other:?}: approve or reject"))),
    };
    match answered(decided) {
        Ok(change) => after(&flow_path(&id), Ok(format!("DDL change {ddl} is {}", change.status))),
        Err(e) => after(&flow_path(&id), Err(e.to_string())),
    }
}
