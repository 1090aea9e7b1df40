//! `ductstream-admin flow|ddl|checkpoint ...`: CDC flows through FlowService, DDLService and
//! CheckpointService.

use std::collections::HashMap;

use clap::{Args, Subcommand};
use ductstream_proto::v1 as pb;
use ductstream_proto::v1::checkpoint_service_client::CheckpointServiceClient;
use ductstream_proto::v1::ddl_service_client::DdlServiceClient;
use ductstream_proto::v1::flow_service_client::FlowServiceClient;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::connect::{connect, Target};
use crate::output::{self, time_text, Format};

#[derive(Debug, Args)]
pub struct FlowId {
    /// The flow's id.
    id: String,
}

#[derive(Debug, Subcommand)]
pub enum FlowCommand {
    /// Create a flow from a JSON file (see README: id, name, source, destinations, wire_format, parallelism).
    Create {
        #[arg(short = 'f', long = "file")]
        file: std::path::PathBuf,
    },
    /// Replace a flow's definition from a JSON file; its state is kept.
    Update {
        #[arg(short = 'f', long = "file")]
        file: std::path::PathBuf,
    },
    Get(FlowId),
    List,
    /// Stop and forget a flow and drop its replication slot on the source.
    Delete {
        id: String,
        /// Leave the replication slot on the source.
        #[arg(long)]
        keep_slot: bool,
    },
    Start(FlowId),
    Stop(FlowId),
    Resume(FlowId),
    /// Run a stopped flow until it has caught up, then stop it.
    RunOnce {
        id: String,
        /// Quiet time that counts as caught up (2s, 500ms).
        #[arg(long, value_parser = crate::durations::parse_ms, default_value = "2s")]
        idle: u64,
    },
    /// Apply the staging tables of a flow's table destinations (batch_mode staging) to their
    /// targets, as each destination's batch_resolution says.
    ResolveStaging {
        id: String,
        /// schema.table names, comma-separated (default: every table of the flow).
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
    },
}

/// A flow named by position or, as the usage guide writes it, by `--flow-id`.
#[derive(Debug, Args)]
pub struct FlowName {
    /// The flow's id.
    #[arg(required_unless_present = "flow_id", conflicts_with = "flow_id")]
    flow: Option<String>,
    #[arg(long = "flow-id", hide = true)]
    flow_id: Option<String>,
}

impl FlowName {
    fn id(self) -> String {
        self.flow.or(self.flow_id).unwrap_or_default()
    }
}

#[derive(Debug, Subcommand)]
pub enum PublicationCommand {
    /// The tables in a flow's publication on its source.
    List(FlowName),
    /// Make the publication match the flow's publication_tables (and publication_schemas).
    Sync {
        #[command(flatten)]
        flow: FlowName,
        /// add: add missing tables; sync: also drop the others (and replace the flow's lists
        /// with --tables and --schemas).
        #[arg(long, default_value = "add", value_parser = ["add", "sync"])]
        mode: String,
        /// schema.table names to add to the flow's publication_tables first, comma-separated.
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
        /// Schemas to add to the flow's publication_schemas first, comma-separated.
        #[arg(long, value_delimiter = ',')]
        schemas: Vec<String>,
        /// Read the named and newly published tables (op r) before the flow streams on; the
        /// flow must be stopped (--pause).
        #[arg(long)]
        snapshot: bool,
        /// Stop the flow first.
        #[arg(long)]
        pause: bool,
        /// Resume the flow afterwards (also when the sync failed).
        #[arg(long)]
        resume: bool,
    },
}

/// A DDL change: `[FLOW] ID` by position, or `--flow-id` and `--id`. Without a flow, the one
/// flow with a pending change of that id.
#[derive(Debug, Args)]
pub struct DdlTarget {
    #[arg(num_args = 0..=2, value_name = "[FLOW] ID")]
    position: Vec<String>,
    #[arg(long = "flow-id", hide = true)]
    flow_id: Option<String>,
    #[arg(long)]
    id: Option<u64>,
}

impl DdlTarget {
    fn resolve(self) -> Result<(String, u64), String> {
        let parse = |text: &str| text.parse::<u64>().map_err(|_| format!("DDL change id {text:?} is not a number"));
        let (flow, id) = match (self.position.as_slice(), self.id) {
            ([flow, id], None) => (Some(flow.clone()), parse(id)?),
            ([id], None) => (None, parse(id)?),
            ([flow], Some(id)) => (Some(flow.clone()), id),
            ([], Some(id)) => (None, id),
            ([], None) => return Err("name the DDL change: ddl approve [FLOW] ID, or --id N".into()),
            _ => return Err("the DDL change is named twice (by position and --id)".into()),
        };
        Ok((flow.or(self.flow_id).unwrap_or_default(), id))
    }
}

#[derive(Debug, Subcommand)]
pub enum DdlCommand {
    /// DDL changes waiting at flows' gates (and recent decisions).
    List {
        #[arg(long, alias = "flow-id", default_value = "")]
        flow: String,
        /// Only changes in this state.
        #[arg(long, value_parser = ["pending", "approved", "rejected", "applied"])]
        status: Option<String>,
    },
    Approve(DdlTarget),
    Reject {
        #[command(flatten)]
        target: DdlTarget,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Approve a change you applied downstream.
    Apply(DdlTarget),
}

#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    Get(FlowId),
    List,
}

/// A flow as its JSON file gives it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowFile {
    /// Made from the name by the broker when left out.
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    source: EndpointFile,
    #[serde(default)]
    destinations: Vec<EndpointFile>,
    #[serde(default)]
    wire_format: Option<String>,
    #[serde(default)]
    parallelism: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndpointFile {
    #[serde(default)]
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    options: HashMap<String, Value>,
}

pub(crate) fn endpoint(e: EndpointFile) -> pb::Endpoint {
    // Options are strings on the wire; numbers and booleans in the file are written as text.
    let options = e.options.into_iter().map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect();
    pb::Endpoint { name: e.name, r#type: e.kind, options }
}

fn read_flow(path: &std::path::Path) -> Result<pb::Flow, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: FlowFile = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    // Left out: the broker's --wire-format.
    let written = file.wire_format.as_deref().unwrap_or("");
    let wire_format = match ductstream_broker::enum_names::normalize(written, ductstream_broker::enum_names::WIRE_FORMAT_PREFIX).as_str() {
        "" => pb::WireFormat::Unspecified,
        "json" => pb::WireFormat::Json,
        "avro" => pb::WireFormat::Avro,
        "proto" => pb::WireFormat::Proto,
        "arrow" => pb::WireFormat::Arrow,
        "parquet" => pb::WireFormat::Parquet,
        _ => return Err(format!("{}: unknown wire_format {written:?}: use json, avro, proto, arrow or parquet", path.display())),
    };
    Ok(pb::Flow {
        id: file.id,
        name: file.name,
        source: Some(endpoint(file.source)),
        destinations: file.destinations.into_iter().map(endpoint).collect(),
        wire_format: wire_format as i32,
        parallelism: file.parallelism,
        ..Default::default()
    })
}

pub(crate) fn failed(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

pub async fn run_flow(target: &Target, command: FlowCommand, format: Format) -> Result<(), String> {
    let mut client = FlowServiceClient::new(connect(target).await?);
    let one = |f: pb::Flow| print_flows(format, &[f], false);
    match command {
        FlowCommand::Create { file } => {
            one(client.create_flow(pb::CreateFlowRequest { flow: Some(read_flow(&file)?) }).await.map_err(failed)?.into_inner())
        }
        FlowCommand::Update { file } => {
            one(client.update_flow(pb::UpdateFlowRequest { flow: Some(read_flow(&file)?) }).await.map_err(failed)?.into_inner())
        }
        FlowCommand::Get(f) => one(client.get_flow(pb::FlowRef { id: f.id }).await.map_err(failed)?.into_inner()),
        FlowCommand::List => {
            let flows = client.list_flows(pb::ListFlowsRequest {}).await.map_err(failed)?.into_inner().flows;
            print_flows(format, &flows, true);
        }
        FlowCommand::Delete { id, keep_slot } => {
            let deleted = client.delete_flow(pb::DeleteFlowRequest { id: id.clone(), keep_slot }).await.map_err(failed)?.into_inner();
            output::print(
                format,
                &json!({"deleted": id, "slot": deleted.slot, "slot_outcome": deleted.slot_outcome}),
                &["deleted", "slot", "outcome"],
                vec![vec![id, deleted.slot, deleted.slot_outcome]],
            );
        }
        FlowCommand::Start(f) => one(client.start_flow(pb::FlowRef { id: f.id }).await.map_err(failed)?.into_inner()),
        FlowCommand::Stop(f) => one(client.stop_flow(pb::FlowRef { id: f.id }).await.map_err(failed)?.into_inner()),
        FlowCommand::Resume(f) => one(client.resume_flow(pb::FlowRef { id: f.id }).await.map_err(failed)?.into_inner()),
        FlowCommand::RunOnce { id, idle } => {
            let request = pb::RunFlowOnceRequest { id, idle_ms: idle, timeout_ms: 0 };
            let answer = client.run_flow_once(request).await.map_err(failed)?.into_inner();
            let progress = answer.progress.unwrap_or_default();
            let json = json!({
                "flow": answer.flow.as_ref().map(flow_json),
                "records_written": progress.records_written,
                "confirmed_lsn": progress.confirmed_lsn,
            });
            let row = vec![progress.records_written.to_string(), progress.confirmed_lsn];
            output::print(format, &json, &["RECORDS", "CONFIRMED LSN"], vec![row]);
        }
        FlowCommand::ResolveStaging { id, tables } => {
            let answer = client.resolve_staging(pb::ResolveStagingRequest { id, tables }).await.map_err(failed)?.into_inner();
            let json = Value::Array(answer.tables.iter().map(|t| json!({"sink_id": t.sink_id, "table": t.table, "rows": t.rows})).collect());
            let rows = answer.tables.into_iter().map(|t| vec![t.sink_id, t.table, t.rows.to_string()]).collect();
            output::print(format, &json, &["SINK", "TABLE", "ROWS"], rows);
        }
    }
    Ok(())
}

fn flow_json(f: &pb::Flow) -> Value {
    let endpoint = |e: &pb::Endpoint| {
        // The server shows the DSN without its password.
        let options: serde_json::Map<String, Value> = e.options.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        json!({"name": e.name, "type": e.r#type, "options": options})
    };
    let state = pb::FlowState::try_from(f.state).map_or("unknown".into(), |s| s.as_str_name().trim_start_matches("FLOW_STATE_").to_ascii_lowercase());
    json!({
        "id": f.id,
        "name": f.name,
        "state": state,
        "last_error": f.last_error,
        "source": f.source.as_ref().map(endpoint),
        "destinations": f.destinations.iter().map(endpoint).collect::<Vec<_>>(),
        "wire_format": match pb::WireFormat::try_from(f.wire_format) {
            Ok(pb::WireFormat::Unspecified) | Err(_) => "json".to_string(),
            Ok(w) => w.as_str_name().trim_start_matches("WIRE_FORMAT_").to_ascii_lowercase(),
        },
        "parallelism": f.parallelism,
        "progress": f.progress.as_ref().map(|p| json!({
            "phase": p.phase, "confirmed_lsn": p.confirmed_lsn, "records_written": p.records_written,
            "snapshot_chunks_done": p.snapshot_chunks_done, "snapshot_chunks_total": p.snapshot_chunks_total,
            "server_lsn": p.server_lsn, "lag_bytes": p.lag_bytes,
        })),
        "created": time_text(f.created.as_ref()),
        "updated": time_text(f.updated.as_ref()),
        "scheduled_runs": f.scheduled_runs.iter().map(|r| json!({
            "tick": time_text(r.tick.as_ref()), "node_id": r.node_id, "outcome": r.outcome, "records": r.records,
        })).collect::<Vec<_>>(),
    })
}

fn print_flows(format: Format, flows: &[pb::Flow], as_list: bool) {
    let jsons: Vec<Value> = flows.iter().map(flow_json).collect();
    let json = output::one_or_list(&jsons, as_list);
    let text = |v: &Value| v.as_str().map_or_else(|| if v.is_null() { String::new() } else { v.to_string() }, str::to_owned);
    let rows = jsons
        .iter()
        .map(|f| {
            vec![
                text(&f["id"]),
                text(&f["state"]),
                text(&f["progress"]["phase"]),
                text(&f["progress"]["records_written"]),
                text(&f["progress"]["confirmed_lsn"]),
                text(&f["last_error"]),
            ]
        })
        .collect();
    output::print(format, &json, &["ID", "STATE", "PHASE", "RECORDS", "CONFIRMED LSN", "LAST ERROR"], rows);
}

pub async fn run_publication(target: &Target, command: PublicationCommand, format: Format) -> Result<(), String> {
    let mut client = FlowServiceClient::new(connect(target).await?);
    let publication = match command {
        PublicationCommand::List(flow) => client.list_publication(pb::FlowRef { id: flow.id() }).await.map_err(failed)?,
        PublicationCommand::Sync { flow, mode, tables, schemas, snapshot, pause, resume } => {
            let id = flow.id();
            let mut flows = client.clone();
            if pause {
                flows.stop_flow(pb::FlowRef { id: id.clone() }).await.map_err(failed)?;
            }
            let synced = client.sync_publication(pb::SyncPublicationRequest { id: id.clone(), mode, tables, schemas, snapshot }).await;
            if resume {
                flows.resume_flow(pb::FlowRef { id }).await.map_err(|e| format!("resume: {}", failed(e)))?;
            }
            synced.map_err(failed)?
        }
    }
    .into_inner();
    let json = json!({
        "flow_id": publication.flow_id,
        "publication": publication.name,
        "tables": publication.tables,
        "snapshot_tables": publication.snapshot_tables,
    });
    let rows = publication
        .tables
        .iter()
        .map(|t| vec![publication.name.clone(), t.clone(), if publication.snapshot_tables.contains(t) { "yes".into() } else { String::new() }])
        .collect();
    output::print(format, &json, &["PUBLICATION", "TABLE", "SNAPSHOT"], rows);
    Ok(())
}

pub async fn run_ddl(target: &Target, command: DdlCommand, format: Format) -> Result<(), String> {
    let mut client = DdlServiceClient::new(connect(target).await?);
    let entries = match command {
        DdlCommand::List { flow, status } => {
            let all = client.list_pending(pb::ListPendingRequest { flow_id: flow }).await.map_err(failed)?.into_inner().ddl;
            all.into_iter().filter(|d| status.as_ref().is_none_or(|s| &d.status == s)).collect()
        }
        DdlCommand::Approve(target) => {
            let (flow_id, id) = target.resolve()?;
            vec![client.approve(pb::DdlRef { flow_id, id }).await.map_err(failed)?.into_inner()]
        }
        DdlCommand::Apply(target) => {
            let (flow_id, id) = target.resolve()?;
            vec![client.apply(pb::DdlRef { flow_id, id }).await.map_err(failed)?.into_inner()]
        }
        DdlCommand::Reject { target, reason } => {
            let (flow_id, id) = target.resolve()?;
            vec![client.reject(pb::RejectRequest { flow_id, id, reason }).await.map_err(failed)?.into_inner()]
        }
    };
    let json = Value::Array(
        entries
            .iter()
            .map(|d| json!({"flow_id": d.flow_id, "id": d.id, "lsn": d.lsn, "tag": d.tag, "query": d.query, "status": d.status, "received": time_text(d.received.as_ref())}))
            .collect(),
    );
    let rows = entries.iter().map(|d| vec![d.flow_id.clone(), d.id.to_string(), d.status.clone(), d.tag.clone(), d.query.clone()]).collect();
    output::print(format, &json, &["FLOW", "ID", "STATUS", "TAG", "QUERY"], rows);
    Ok(())
}

pub async fn run_checkpoint(target: &Target, command: CheckpointCommand, format: Format) -> Result<(), String> {
    let mut client = CheckpointServiceClient::new(connect(target).await?);
    let (checkpoints, as_list) = match command {
        CheckpointCommand::Get(f) => (vec![client.get(pb::FlowRef { id: f.id }).await.map_err(failed)?.into_inner()], false),
        CheckpointCommand::List => (client.list(pb::ListCheckpointsRequest {}).await.map_err(failed)?.into_inner().checkpoints, true),
    };
    let jsons: Vec<Value> = checkpoints
        .iter()
        .map(|c| {
            json!({"flow_id": c.flow_id, "lsn": c.lsn, "snapshot": c.snapshot.as_ref().map(|s| json!({
                "consistent_point": s.consistent_point, "chunks_total": s.chunks_total, "chunks_done": s.chunks_done, "complete": s.complete,
            }))})
        })
        .collect();
    let json = output::one_or_list(&jsons, as_list);
    let rows = checkpoints
        .iter()
        .map(|c| {
            let snapshot = c.snapshot.as_ref().map_or("none".to_string(), |s| format!("{}/{} chunks", s.chunks_done, s.chunks_total));
            vec![c.flow_id.clone(), c.lsn.clone(), snapshot]
        })
        .collect();
    output::print(format, &json, &["FLOW", "LSN", "SNAPSHOT"], rows);
    Ok(())
}
