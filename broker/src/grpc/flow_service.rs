//! FlowService, DDLService and CheckpointService: CDC flows over gRPC.

use std::sync::Arc;
use std::time::Duration;

use ductstream_proto::v1 as pb;
use ductstream_proto::v1::checkpoint_service_server::CheckpointService;
use ductstream_proto::v1::ddl_service_server::DdlService;
use ductstream_proto::v1::flow_service_server::FlowService;
use tonic::{Request, Response, Status};

use ductstream_proto::timestamp_from_ms;
use super::status::to_status;
use crate::enum_names;
use crate::flows::ddl::{DdlEntry, DdlStatus};
use crate::flows::{Endpoint, FlowDef, FlowManager, FlowState, FlowView, PublicationSync};
use crate::{BrokerError, Result};

pub struct FlowApi {
    flows: Arc<FlowManager>,
}

impl FlowApi {
    pub fn new(flows: Arc<FlowManager>) -> FlowApi {
        FlowApi { flows }
    }
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
    pb::FlowProgress {
        phase: phase.into(),
        confirmed_lsn: status.confirmed_lsn.to_string(),
        records_written: status.records_written,
        snapshot_chunks_done: status.snapshot_chunks_done as u32,
        snapshot_chunks_total: status.snapshot_chunks_total as u32,
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
        let def = definition(request.into_inner().flow).map_err(to_status)?;
        reply(self.flows.create(def).await)
    }

    async fn update_flow(&self, request: Request<pb::UpdateFlowRequest>) -> Answer<pb::Flow> {
        let def = definition(request.into_inner().flow).map_err(to_status)?;
        reply(self.flows.update(def).await)
    }

    async fn get_flow(&self, request: Request<pb::FlowRef>) -> Answer<pb::Flow> {
        reply(self.flows.get(&request.into_inner().id).await)
    }

    async fn list_flows(&self, _: Request<pb::ListFlowsRequest>) -> Answer<pb::ListFlowsResponse> {
        let views = self.flows.list().await.map_err(to_status)?;
        Ok(Response::new(pb::ListFlowsResponse { flows: views.into_iter().map(flow_pb).collect() }))
    }

    async fn delete_flow(&self, request: Request<pb::DeleteFlowRequest>) -> Answer<pb::DeleteFlowResponse> {
        let request = request.into_inner();
        let (slot, slot_outcome) = self.flows.delete(&request.id, request.keep_slot).await.map_err(to_status)?;
        Ok(Response::new(pb::DeleteFlowResponse { slot, slot_outcome }))
    }

    async fn start_flow(&self, request: Request<pb::FlowRef>) -> Answer<pb::Flow> {
        reply(self.flows.start(&request.into_inner().id).await)
    }

    async fn stop_flow(&self, request: Request<pb::FlowRef>) -> Answer<pb::Flow> {
        reply(self.flows.stop(&request.into_inner().id).await)
    }

    async fn resume_flow(&self, request: Request<pb::FlowRef>) -> Answer<pb::Flow> {
        reply(self.flows.resume(&request.into_inner().id).await)
    }

    async fn run_flow_once(&self, request: Request<pb::RunFlowOnceRequest>) -> Answer<pb::RunFlowOnceResponse> {
        let r = request.into_inner();
        let idle = Duration::from_millis(if r.idle_ms == 0 { 2000 } else { r.idle_ms });
        let timeout = Duration::from_millis(if r.timeout_ms == 0 { 600_000 } else { r.timeout_ms });
        let (view, status) = self.flows.run_once(&r.id, idle, timeout).await.map_err(to_status)?;
        Ok(Response::new(pb::RunFlowOnceResponse { flow: Some(flow_pb(view)), progress: Some(progress(&status)) }))
    }

    async fn list_publication(&self, request: Request<pb::FlowRef>) -> Answer<pb::Publication> {
        let id = request.into_inner().id;
        let (name, tables) = self.flows.publication(&id, None).await.map_err(to_status)?;
        Ok(Response::new(pb::Publication { flow_id: id, name, tables, snapshot_tables: Vec::new() }))
    }

    async fn sync_publication(&self, request: Request<pb::SyncPublicationRequest>) -> Answer<pb::Publication> {
        let r = request.into_inner();
        let sync = PublicationSync { mode: r.mode, tables: r.tables, schemas: r.schemas, snapshot: r.snapshot };
        let (name, tables, snapshot_tables) = self.flows.sync_publication(&r.id, &sync).await.map_err(to_status)?;
        Ok(Response::new(pb::Publication { flow_id: r.id, name, tables, snapshot_tables }))
    }

    async fn resolve_staging(&self, request: Request<pb::ResolveStagingRequest>) -> Answer<pb::ResolveStagingResponse> {
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
        let entries = self.flows.ddl.list(&request.into_inner().flow_id).await.map_err(to_status)?;
        Ok(Response::new(pb::ListPendingResponse { ddl: entries.into_iter().map(ddl_pb).collect() }))
    }

    async fn approve(&self, request: Request<pb::DdlRef>) -> Answer<pb::PendingDdl> {
        let r = request.into_inner();
        self.flows.ddl.decide(&r.flow_id, r.id, DdlStatus::Approved, "").await.map(|e| Response::new(ddl_pb(e))).map_err(to_status)
    }

    async fn reject(&self, request: Request<pb::RejectRequest>) -> Answer<pb::PendingDdl> {
        let r = request.into_inner();
        self.flows.ddl.decide(&r.flow_id, r.id, DdlStatus::Rejected, &r.reason).await.map(|e| Response::new(ddl_pb(e))).map_err(to_status)
    }

    async fn apply(&self, request: Request<pb::DdlRef>) -> Answer<pb::PendingDdl> {
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
        let id = request.into_inner().id;
        let checkpoint = self.flows.checkpoint(&id).await.map_err(to_status)?;
        match checkpoint {
            Some(c) => Ok(Response::new(checkpoint_pb(id, c))),
            None => Err(to_status(BrokerError::NotFound(format!("flow {id:?} has no checkpoint yet")))),
        }
    }

    async fn list(&self, _: Request<pb::ListCheckpointsRequest>) -> Answer<pb::ListCheckpointsResponse> {
        let all = self.flows.checkpoints().await.map_err(to_status)?;
        Ok(Response::new(pb::ListCheckpointsResponse { checkpoints: all.into_iter().map(|(id, c)| checkpoint_pb(id, c)).collect() }))
    }
}
