//! FlowService, DDLService and CheckpointService: CDC flows over gRPC.

use std::sync::Arc;
use std::time::Duration;

use ductstream_proto::v1 as pb;
use ductstream_proto::v1::checkpoint_service_server::CheckpointService;
use ductstream_proto::v1::ddl_service_server::DdlService;
use ductstream_proto::v1::flow_service_server::FlowService;
use tonic::{Request, Response, Status};

use ductstream_proto::timestamp_from_ms;
use super::guard::{Caller, Guard};
use super::status::to_status;
use crate::enum_names;
use crate::security::acl::{Operation, ResourceType};
use crate::flows::ddl::{DdlEntry, DdlStatus};
use crate::flows::{Endpoint, FlowDef, FlowManager, FlowState, FlowView, PublicationSync};
use crate::{BrokerError, Result};

pub struct FlowApi {
    flows: Arc<FlowManager>,
    guard: Arc<Guard>,
}

impl FlowApi {
    pub fn new(flows: Arc<FlowManager>, guard: Arc<Guard>) -> FlowApi {
        FlowApi { flows, guard }
    }

    /// PERMISSION_DENIED unless the caller may do `operation` on flow `id`.
    async fn allowed<T>(&self, request: &Request<T>, operation: Operation, id: &str) -> std::result::Result<Caller, Status> {
        self.guard.check(request, operation, ResourceType::Flow, id).await
    }

    /// The flow a DDL decision is about: the one named, or the one flow with that change
    /// pending (the decision itself reports none or several).
    async fn ddl_flow(&self, flow_id: &str, id: u64) -> std::result::Result<String, Status> {
        if !flow_id.is_empty() {
            return Ok(flow_id.to_string());
        }
        let entries = self.flows.ddl.list("").await.map_err(to_status)?;
        let mut owners = entries.into_iter().filter(|e| e.id == id).map(|e| e.flow_id);
        Ok(match (owners.next(), owners.next()) {
            (Some(only), None) => only,
            _ => String::new(),
        })
    }
}

/// A flow writes its topics for whoever made it: they must be theirs to write.
fn writes_its_topics(caller: &Caller, def: &FlowDef) -> std::result::Result<(), Status> {
    let (prefix, stream) = def.topics_written();
    caller.require_prefix(Operation::Write, ResourceType::Topic, &prefix)?;
    if let Some(stream) = stream {
        caller.require(Operation::Write, ResourceType::Topic, &stream)?;
    }
    Ok(())
}

fn described(caller: &Caller, flow_id: &str) -> bool {
    caller.may(Operation::Describe, ResourceType::Flow, flow_id)
}

type Answer<T> = std::result::Result<Response<T>, Status>;

fn endpoint(e: pb::Endpoint) -> Endpoint {
    Endpoint { name: e.name, kind: enum_names::normalize(&e.r#type, ""), options: e.options.into_iter().collect() }
}

fn endpoint_pb(e: &Endpoint) -> pb::Endpoint {
    pb::Endpoint { name: e.name.clone(), r#type: e.kind.clone(), options: e.options.clone().into_iter().collect() }
}

fn definition(flow: Option<pb::Flow>) -> Result<FlowDef> {
    let f = flow.ok_or_else(|| BrokerError::InvalidArgument("flow is required".into()))?;
    let wire_format = match pb::WireFormat::try_from(f.wire_format) {
        // The broker's --wire-format, filled in by the flow manager.
        Ok(pb::WireFormat::Unspecified) => "",
        Ok(pb::WireFormat::Json) => "json",
        Ok(pb::WireFormat::Avro) => "avro",
        Ok(pb::WireFormat::Proto) => "proto",
        Ok(pb::WireFormat::Arrow) => "arrow",
        Ok(pb::WireFormat::Parquet) => "parquet",
        Err(_) => return Err(BrokerError::InvalidArgument(format!("unknown wire format {}", f.wire_format))),
    };
    let source = f.source.map(endpoint).ok_or_else(|| BrokerError::InvalidArgument("source is required".into()))?;
    let mut destinations: Vec<Endpoint> = f.destinations.into_iter().map(endpoint).collect();
    if destinations.is_empty() {
        destinations.push(Endpoint { name: "topics".into(), kind: "topics".into(), options: Default::default() });
    }
    Ok(FlowDef {
        id: f.id,
        name: f.name,
        source,
        destinations,
        wire_format: wire_format.into(),
        parallelism: f.parallelism,
        state: FlowState::Created,
        last_error: String::new(),
        created_ms: 0,
        updated_ms: 0,
    })
}

fn state_pb(state: FlowState) -> pb::FlowState {
    match state {
        FlowState::Created => pb::FlowState::Created,
        FlowState::Running => pb::FlowState::Running,
        FlowState::Paused => pb::FlowState::Paused,
        FlowState::Stopping => pb::FlowState::Stopping,
        FlowState::Failed => pb::FlowState::Failed,
    }
}

fn progress(status: &ductstream_cdc::FlowStatus) -> pb::FlowProgress {
    let phase = match &status.phase {
        ductstream_cdc::FlowPhase::Starting => "starting",
        ductstream_cdc::FlowPhase::Snapshot => "snapshot",
        ductstream_cdc::FlowPhase::Streaming => "streaming",
        ductstream_cdc::FlowPhase::Stopped => "stopped",
        ductstream_cdc::FlowPhase::Failed(_) => "failed",
    };
    let read = status.read_lsn.max(status.confirmed_lsn);
    pb::FlowProgress {
        phase: phase.into(),
        confirmed_lsn: status.confirmed_lsn.to_string(),
        records_written: status.records_written,
        snapshot_chunks_done: status.snapshot_chunks_done as u32,
        snapshot_chunks_total: status.snapshot_chunks_total as u32,
        // Known once the stream has heard from the server; never shown behind what the flow
        // has read (the server's last word may predate the flow's latest confirmation).
        server_lsn: if status.server_lsn > ductstream_cdc::Lsn::ZERO { status.server_lsn.max(read).to_string() } else { String::new() },
        lag_bytes: status.server_lsn.0.saturating_sub(read.0),
    }
}

fn flow_pb(view: FlowView) -> pb::Flow {
    let d = view.def.redacted();
    let wire_format = match d.wire_format.as_str() {
        "avro" => pb::WireFormat::Avro,
        "proto" => pb::WireFormat::Proto,
        "arrow" => pb::WireFormat::Arrow,
        "parquet" => pb::WireFormat::Parquet,
        _ => pb::WireFormat::Json,
    };
    pb::Flow {
        id: d.id,
        name: d.name,
        source: Some(endpoint_pb(&d.source)),
        destinations: d.destinations.iter().map(endpoint_pb).collect(),
        wire_format: wire_format as i32,
        parallelism: d.parallelism,
        state: state_pb(d.state) as i32,
        last_error: d.last_error,
        progress: view.status.as_ref().map(progress),
        created: Some(timestamp_from_ms(d.created_ms)),
        updated: Some(timestamp_from_ms(d.updated_ms)),
        scheduled_runs: view
            .scheduled_runs
            .iter()
            .map(|r| pb::ScheduledRun { tick: Some(timestamp_from_ms(r.tick_ms)), node_id: r.node_id, outcome: r.outcome.clone(), records: r.records })
            .collect(),
    }
}

fn reply(view: Result<FlowView>) -> Answer<pb::Flow> {
    view.map(|v| Response::new(flow_pb(v))).map_err(to_status)
}

#[tonic::async_trait]
impl FlowService for FlowApi {
    async fn create_flow(&self, request: Request<pb::CreateFlowRequest>) -> Answer<pb::Flow> {
        // A flow without an id gets one from its name: the check is on that one.
        let id = match request.get_ref().flow.as_ref() {
            Some(f) if f.id.is_empty() => FlowDef::id_from_name(&f.name).unwrap_or_default(),
            Some(f) => f.id.clone(),
            None => String::new(),
        };
        let caller = self.allowed(&request, Operation::Create, &id).await?;
        let def = definition(request.into_inner().flow).map_err(to_status)?;
        writes_its_topics(&caller, &def)?;
        reply(self.flows.create(def).await)
    }

    async fn update_flow(&self, request: Request<pb::UpdateFlowRequest>) -> Answer<pb::Flow> {
        let caller = self.allowed(&request, Operation::Alter, request.get_ref().flow.as_ref().map_or("", |f| f.id.as_str())).await?;
        let def = definition(request.into_inner().flow).map_err(to_status)?;
        writes_its_topics(&caller, &def)?;
        reply(self.flows.update(def).await)
    }

    async fn get_flow(&self, request: Request<pb::FlowRef>) -> Answer<pb::Flow> {
        self.allowed(&request, Operation::Describe, &request.get_ref().id).await?;
        reply(self.flows.get(&request.into_inner().id).await)
    }

    async fn list_flows(&self, request: Request<pb::ListFlowsRequest>) -> Answer<pb::ListFlowsResponse> {
        let caller = self.guard.caller(&request).await?;
        let views = self.flows.list().await.map_err(to_status)?;
        let flows = views.into_iter().filter(|v| described(&caller, &v.def.id)).map(flow_pb).collect();
        Ok(Response::new(pb::ListFlowsResponse { flows }))
    }

    async fn delete_flow(&self, request: Request<pb::DeleteFlowRequest>) -> Answer<pb::DeleteFlowResponse> {
        self.allowed(&request, Operation::Delete, &request.get_ref().id).await?;
        let request = request.into_inner();
        let (slot, slot_outcome) = self.flows.delete(&request.id, request.keep_slot).await.map_err(to_status)?;
        Ok(Response::new(pb::DeleteFlowResponse { slot, slot_outcome }))
    }

    async fn start_flow(&self, request: Request<pb::FlowRef>) -> Answer<pb::Flow> {
        self.allowed(&request, Operation::Alter, &request.get_ref().id).await?;
        reply(self.flows.start(&request.into_inner().id).await)
    }

    async fn stop_flow(&self, request: Request<pb::FlowRef>) -> Answer<pb::Flow> {
        self.allowed(&request, Operation::Alter, &request.get_ref().id).await?;
        reply(self.flows.stop(&request.into_inner().id).await)
    }

    async fn resume_flow(&self, request: Request<pb::FlowRef>) -> Answer<pb::Flow> {
        self.allowed(&request, Operation::Alter, &request.get_ref().id).await?;
        reply(self.flows.resume(&request.into_inner().id).await)
    }

    async fn run_flow_once(&self, request: Request<pb::RunFlowOnceRequest>) -> Answer<pb::RunFlowOnceResponse> {
        self.allowed(&request, Operation::Alter, &request.get_ref().id).await?;
        let r = request.into_inner();
        let idle = Duration::from_millis(if r.idle_ms == 0 { 2000 } else { r.idle_ms });
        let timeout = Duration::from_millis(if r.timeout_ms == 0 { 600_000 } else { r.timeout_ms });
        let (view, status) = self.flows.run_once(&r.id, idle, timeout).await.map_err(to_status)?;
        Ok(Response::new(pb::RunFlowOnceResponse { flow: Some(flow_pb(view)), progress: Some(progress(&status)) }))
    }

    async fn list_publication(&self, request: Request<pb::FlowRef>) -> Answer<pb::Publication> {
        self.allowed(&request, Operation::Describe, &request.get_ref().id).await?;
        let id = request.into_inner().id;
        let (name, tables) = self.flows.publication(&id, None).await.map_err(to_status)?;
        Ok(Response::new(pb::Publication { flow_id: id, name, tables, snapshot_tables: Vec::new() }))
    }

    async fn sync_publication(&self, request: Request<pb::SyncPublicationRequest>) -> Answer<pb::Publication> {
        self.allowed(&request, Operation::Alter, &request.get_ref().id).await?;
        let r = request.into_inner();
        let sync = PublicationSync { mode: r.mode, tables: r.tables, schemas: r.schemas, snapshot: r.snapshot };
        let (name, tables, snapshot_tables) = self.flows.sync_publication(&r.id, &sync).await.map_err(to_status)?;
        Ok(Response::new(pb::Publication { flow_id: r.id, name, tables, snapshot_tables }))
    }

    async fn resolve_staging(&self, request: Request<pb::ResolveStagingRequest>) -> Answer<pb::ResolveStagingResponse> {
        self.allowed(&request, Operation::Alter, &request.get_ref().id).await?;
        let r = request.into_inner();
        let broker = self.flows.broker();
        self.flows.get(&r.id).await.map_err(to_status)?;
        let resolved = crate::sinks::staging::resolve_flow(broker.storage().as_ref(), &broker.log, &r.id, &r.tables, None).await.map_err(to_status)?;
        let tables = resolved.into_iter().map(|t| pb::ResolvedTable { sink_id: t.sink_id, table: t.table, rows: t.rows }).collect();
        Ok(Response::new(pb::ResolveStagingResponse { tables }))
    }
}

fn ddl_pb(e: DdlEntry) -> pb::PendingDdl {
    pb::PendingDdl {
        flow_id: e.flow_id,
        id: e.id,
        lsn: e.lsn,
        tag: e.tag,
        query: e.query,
        status: e.status.as_str().into(),
        received: Some(timestamp_from_ms(e.received_ms)),
    }
}

#[tonic::async_trait]
impl DdlService for FlowApi {
    async fn list_pending(&self, request: Request<pb::ListPendingRequest>) -> Answer<pb::ListPendingResponse> {
        let caller = self.guard.caller(&request).await?;
        let entries = self.flows.ddl.list(&request.into_inner().flow_id).await.map_err(to_status)?;
        Ok(Response::new(pb::ListPendingResponse { ddl: entries.into_iter().filter(|e| described(&caller, &e.flow_id)).map(ddl_pb).collect() }))
    }

    async fn approve(&self, request: Request<pb::DdlRef>) -> Answer<pb::PendingDdl> {
        let flow = self.ddl_flow(&request.get_ref().flow_id, request.get_ref().id).await?;
        self.allowed(&request, Operation::Alter, &flow).await?;
        let r = request.into_inner();
        self.flows.ddl.decide(&r.flow_id, r.id, DdlStatus::Approved, "").await.map(|e| Response::new(ddl_pb(e))).map_err(to_status)
    }

    async fn reject(&self, request: Request<pb::RejectRequest>) -> Answer<pb::PendingDdl> {
        let flow = self.ddl_flow(&request.get_ref().flow_id, request.get_ref().id).await?;
        self.allowed(&request, Operation::Alter, &flow).await?;
        let r = request.into_inner();
        self.flows.ddl.decide(&r.flow_id, r.id, DdlStatus::Rejected, &r.reason).await.map(|e| Response::new(ddl_pb(e))).map_err(to_status)
    }

    async fn apply(&self, request: Request<pb::DdlRef>) -> Answer<pb::PendingDdl> {
        let flow = self.ddl_flow(&request.get_ref().flow_id, request.get_ref().id).await?;
        self.allowed(&request, Operation::Alter, &flow).await?;
        let r = request.into_inner();
        self.flows.ddl.decide(&r.flow_id, r.id, DdlStatus::Applied, "").await.map(|e| Response::new(ddl_pb(e))).map_err(to_status)
    }
}

fn checkpoint_pb(flow_id: String, c: ductstream_cdc::Checkpoint) -> pb::Checkpoint {
    pb::Checkpoint {
        flow_id,
        lsn: c.lsn.to_string(),
        snapshot: c.snapshot.map(|s| pb::SnapshotState {
            consistent_point: s.consistent_point.to_string(),
            chunks_total: s.chunks.len() as u32,
            chunks_done: s.done.len() as u32,
            complete: s.complete,
        }),
    }
}

#[tonic::async_trait]
impl CheckpointService for FlowApi {
    async fn get(&self, request: Request<pb::FlowRef>) -> Answer<pb::Checkpoint> {
        self.allowed(&request, Operation::Describe, &request.get_ref().id).await?;
        let id = request.into_inner().id;
        let checkpoint = self.flows.checkpoint(&id).await.map_err(to_status)?;
        match checkpoint {
            Some(c) => Ok(Response::new(checkpoint_pb(id, c))),
            None => Err(to_status(BrokerError::NotFound(format!("flow {id:?} has no checkpoint yet")))),
        }
    }

    async fn list(&self, request: Request<pb::ListCheckpointsRequest>) -> Answer<pb::ListCheckpointsResponse> {
        let caller = self.guard.caller(&request).await?;
        let all = self.flows.checkpoints().await.map_err(to_status)?;
        let checkpoints = all.into_iter().filter(|(id, _)| described(&caller, id)).map(|(id, c)| checkpoint_pb(id, c)).collect();
        Ok(Response::new(pb::ListCheckpointsResponse { checkpoints }))
    }
}
