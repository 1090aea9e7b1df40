//! SinkService: sinks over gRPC.

use std::sync::Arc;

use ductstream_proto::timestamp_from_ms;
use ductstream_proto::v1 as pb;
use ductstream_proto::v1::sink_service_server::SinkService;
use ductstream_sinks::runtime::SinkPhase;
use tonic::{Request, Response, Status};

use super::guard::Guard;
use super::status::to_status;
use crate::security::acl::{Operation, ResourceType};
use crate::sinks::{SinkDef, SinkManager, SinkState, SinkView};
use crate::{BrokerError, Result};

pub struct SinkApi {
    sinks: Arc<SinkManager>,
    guard: Arc<Guard>,
}

impl SinkApi {
    pub fn new(sinks: Arc<SinkManager>, guard: Arc<Guard>) -> SinkApi {
        SinkApi { sinks, guard }
    }

    /// PERMISSION_DENIED unless the caller may do `operation` on sink `id`.
    async fn allowed<T>(&self, request: &Request<T>, operation: Operation, id: &str) -> std::result::Result<(), Status> {
        self.guard.check(request, operation, ResourceType::Sink, id).await.map(drop)
    }
}

type Answer<T> = std::result::Result<Response<T>, Status>;

fn answer<T>(result: Result<T>) -> Answer<T> {
    result.map(Response::new).map_err(to_status)
}

fn definition(sink: Option<pb::Sink>) -> Result<SinkDef> {
    let s = sink.ok_or_else(|| BrokerError::InvalidArgument("sink is required".into()))?;
    let d = s.destination.ok_or_else(|| BrokerError::InvalidArgument("destination is required".into()))?;
    Ok(SinkDef {
        id: s.id,
        topics: s.topics,
        topic_pattern: s.topic_pattern,
        destination: ductstream_sinks::Destination {
            name: d.name,
            kind: crate::enum_names::normalize(&d.r#type, ""),
            options: d.options.into_iter().collect(),
        },
        state: SinkState::Running,
        last_error: String::new(),
        flow_id: String::new(),
        created_ms: 0,
        updated_ms: 0,
    })
}

fn phase_text(phase: &SinkPhase) -> &'static str {
    match phase {
        SinkPhase::Starting => "starting",
        SinkPhase::Running => "running",
        SinkPhase::Retrying => "retrying",
        SinkPhase::Stopped => "stopped",
        SinkPhase::Failed(_) => "failed",
    }
}

fn to_pb(view: SinkView) -> pb::Sink {
    let lag = view.lag();
    let d = &view.def;
    let state = match d.state {
        SinkState::Running => pb::SinkState::Running,
        SinkState::Paused => pb::SinkState::Paused,
        SinkState::Failed => pb::SinkState::Failed,
    };
    let progress = view.progress.as_ref().map(|p| pb::SinkProgress {
        phase: phase_text(&p.phase).into(),
        records_written: p.records_written,
        bytes_written: p.bytes_written,
        batches_written: p.batches_written,
        retries: p.retries,
        dead_letters: p.dead_letters,
        flush_mean_ms: p.flush_mean.as_secs_f64() * 1000.0,
        flush_max_ms: p.flush_max.as_secs_f64() * 1000.0,
    });
    // A running sink's retry message is newer than the stored error.
    let last_error = match &view.progress {
        Some(p) if !p.last_error.is_empty() && d.last_error.is_empty() => p.last_error.clone(),
        _ => d.last_error.clone(),
    };
    pb::Sink {
        id: d.id.clone(),
        topics: d.topics.clone(),
        topic_pattern: d.topic_pattern.clone(),
        destination: Some(pb::Endpoint {
            name: d.destination.name.clone(),
            r#type: d.destination.kind.clone(),
            options: d.destination.options.clone().into_iter().collect(),
        }),
        state: state.into(),
        last_error,
        flow_id: d.flow_id.clone(),
        group: d.group(),
        progress,
        partitions: view
            .partitions
            .iter()
            .map(|((topic, partition), lag)| pb::PartitionLag {
                topic: topic.clone(),
                partition: *partition,
                committed: lag.committed,
                high_watermark: lag.high_watermark,
                lag: lag.lag(),
            })
            .collect(),
        lag,
        created_at: Some(timestamp_from_ms(d.created_ms)),
        updated_at: Some(timestamp_from_ms(d.updated_ms)),
    }
}

#[tonic::async_trait]
impl SinkService for SinkApi {
    async fn create_sink(&self, request: Request<pb::CreateSinkRequest>) -> Answer<pb::Sink> {
        let caller = self.guard.caller(&request).await?;
        if let Some(sink) = &request.get_ref().sink {
            caller.require(Operation::Create, ResourceType::Sink, &sink.id)?;
            // A sink reads its topics for whoever made it: they must be theirs to read (a
            // pattern, every topic it may come to match).
            for topic in &sink.topics {
                caller.require(Operation::Read, ResourceType::Topic, topic)?;
            }
            if !sink.topic_pattern.is_empty() {
                caller.require(Operation::Read, ResourceType::Topic, crate::security::acl::WILDCARD)?;
            }
        }
        let r = request.into_inner();
        let created = async { self.sinks.create(definition(r.sink)?, r.paused).await };
        answer(created.await.map(to_pb))
    }

    async fn get_sink(&self, request: Request<pb::SinkRef>) -> Answer<pb::Sink> {
        self.allowed(&request, Operation::Describe, &request.get_ref().id).await?;
        answer(self.sinks.get(&request.into_inner().id).await.map(to_pb))
    }

    async fn list_sinks(&self, request: Request<pb::ListSinksRequest>) -> Answer<pb::ListSinksResponse> {
        let caller = self.guard.caller(&request).await?;
        let described = |view: &SinkView| caller.may(Operation::Describe, ResourceType::Sink, &view.def.id);
        answer(self.sinks.list().await.map(|all| pb::ListSinksResponse { sinks: all.into_iter().filter(described).map(to_pb).collect() }))
    }

    async fn start_sink(&self, request: Request<pb::SinkRef>) -> Answer<pb::Sink> {
        self.allowed(&request, Operation::Alter, &request.get_ref().id).await?;
        answer(self.sinks.start(&request.into_inner().id).await.map(to_pb))
    }

    async fn stop_sink(&self, request: Request<pb::SinkRef>) -> Answer<pb::Sink> {
        self.allowed(&request, Operation::Alter, &request.get_ref().id).await?;
        answer(self.sinks.stop(&request.into_inner().id).await.map(to_pb))
    }

    async fn delete_sink(&self, request: Request<pb::SinkRef>) -> Answer<pb::DeleteSinkResponse> {
        self.allowed(&request, Operation::Delete, &request.get_ref().id).await?;
        let id = request.into_inner().id;
        answer(self.sinks.delete(&id).await.map(|()| pb::DeleteSinkResponse { id }))
    }

    async fn reset_sink(&self, request: Request<pb::ResetSinkRequest>) -> Answer<pb::Sink> {
        self.allowed(&request, Operation::Alter, &request.get_ref().id).await?;
        let r = request.into_inner();
        answer(self.sinks.reset(&r.id, &r.to).await.map(to_pb))
    }
}
