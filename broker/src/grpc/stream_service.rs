//! StreamService: durable consumers over gRPC.

use std::sync::Arc;

use ductstream_proto::v1 as pb;
use ductstream_proto::v1::stream_service_server::StreamService;
use tonic::{Request, Response, Status};

use super::convert;
use super::guard::Guard;
use super::status::to_status;
use crate::durable::{self, Applied, ReplayFrom};
use crate::security::acl::{Operation, ResourceType};
use crate::{Broker, BrokerError};

pub struct StreamApi {
    broker: Arc<Broker>,
    guard: Arc<Guard>,
}

impl StreamApi {
    pub fn new(broker: Arc<Broker>, guard: Arc<Guard>) -> StreamApi {
        StreamApi { broker, guard }
    }

    /// A durable consumer is a consumer group of its stream: using it needs READ on the topic
    /// and the group (as a Kafka consumer does), looking at it DESCRIBE.
    async fn allowed<T>(&self, request: &Request<T>, operation: Operation, stream: &str, group: &str) -> Result<(), Status> {
        let caller = self.guard.caller(request).await?;
        caller.require(operation, ResourceType::Topic, stream)?;
        caller.require(operation, ResourceType::Group, group)
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn applied(a: Applied) -> Response<pb::AckResponse> {
    Response::new(pb::AckResponse { applied: a.applied, already_done: a.already_done })
}

/// The stream and group a consumer's configuration names.
fn config_names(config: Option<&pb::ConsumerConfig>) -> (String, String) {
    config.map(|c| (c.stream.clone(), c.group.clone())).unwrap_or_default()
}

fn names(stream: &str, group: &str) -> Result<(), Status> {
    convert::require("stream", stream).and_then(|()| convert::require("group", group)).map_err(to_status)
}

#[tonic::async_trait]
impl StreamService for StreamApi {
    async fn create_consumer(&self, request: Request<pb::CreateConsumerRequest>) -> Answer<pb::Consumer> {
        let (stream, group) = config_names(request.get_ref().config.as_ref());
        self.allowed(&request, Operation::Read, &stream, &group).await?;
        let (stream, group, settings) = convert::settings(request.into_inner().config).map_err(to_status)?;
        let view = durable::create(&self.broker, &stream, &group, settings).await.map_err(to_status)?;
        Ok(Response::new(convert::consumer(view)))
    }

    async fn update_consumer(&self, request: Request<pb::UpdateConsumerRequest>) -> Answer<pb::Consumer> {
        let (stream, group) = config_names(request.get_ref().config.as_ref());
        self.allowed(&request, Operation::Read, &stream, &group).await?;
        let (stream, group, settings) = convert::settings(request.into_inner().config).map_err(to_status)?;
        let view = durable::update(&self.broker, &stream, &group, settings).await.map_err(to_status)?;
        Ok(Response::new(convert::consumer(view)))
    }

    async fn get_consumer(&self, request: Request<pb::ConsumerRef>) -> Answer<pb::Consumer> {
        self.allowed(&request, Operation::Describe, &request.get_ref().stream, &request.get_ref().group).await?;
        let r = request.into_inner();
        names(&r.stream, &r.group)?;
        let view = durable::get(&self.broker, &r.stream, &r.group).await.map_err(to_status)?;
        Ok(Response::new(convert::consumer(view)))
    }

    async fn list_consumers(&self, request: Request<pb::ListConsumersRequest>) -> Answer<pb::ListConsumersResponse> {
        let caller = self.guard.caller(&request).await?;
        let views = durable::list(&self.broker, &request.into_inner().stream).await.map_err(to_status)?;
        // Only the consumers the caller may describe, as Kafka's ListGroups shows.
        let consumers = views
            .into_iter()
            .map(convert::consumer)
            .filter(|c| {
                let (stream, group) = config_names(c.config.as_ref());
                caller.may(Operation::Describe, ResourceType::Topic, &stream) && caller.may(Operation::Describe, ResourceType::Group, &group)
            })
            .collect();
        Ok(Response::new(pb::ListConsumersResponse { consumers }))
    }

    async fn delete_consumer(&self, request: Request<pb::ConsumerRef>) -> Answer<pb::DeleteConsumerResponse> {
        self.allowed(&request, Operation::Read, &request.get_ref().stream, &request.get_ref().group).await?;
        let r = request.into_inner();
        names(&r.stream, &r.group)?;
        durable::delete(&self.broker, &r.stream, &r.group).await.map_err(to_status)?;
        Ok(Response::new(pb::DeleteConsumerResponse {}))
    }

    async fn pull(&self, request: Request<pb::PullRequest>) -> Answer<pb::PullResponse> {
        self.allowed(&request, Operation::Read, &request.get_ref().stream, &request.get_ref().group).await?;
        let r = request.into_inner();
        names(&r.stream, &r.group)?;
        let created = if self.broker.config.durable_auto_create && !r.no_create {
            durable::ensure(&self.broker, &r.stream, &r.group).await.map_err(to_status)?
        } else {
            false
        };
        let ask = durable::Pull {
            stream: r.stream,
            group: r.group,
            max_messages: r.max_messages,
            visibility_ms: r.visibility_timeout_ms,
            max_wait_ms: r.max_wait_ms,
            consumer_id: r.consumer_id,
        };
        let pulled = durable::pull(&self.broker, ask).await.map_err(to_status)?;
        Ok(Response::new(pb::PullResponse { messages: pulled.into_iter().map(convert::message).collect(), created }))
    }

    async fn ack(&self, request: Request<pb::AckRequest>) -> Answer<pb::AckResponse> {
        self.allowed(&request, Operation::Read, &request.get_ref().stream, &request.get_ref().group).await?;
        let r = request.into_inner();
        names(&r.stream, &r.group)?;
        durable::ack(&self.broker, &r.stream, &r.group, &r.ids).await.map(applied).map_err(to_status)
    }

    async fn nak(&self, request: Request<pb::NakRequest>) -> Answer<pb::AckResponse> {
        self.allowed(&request, Operation::Read, &request.get_ref().stream, &request.get_ref().group).await?;
        let r = request.into_inner();
        names(&r.stream, &r.group)?;
        durable::nak(&self.broker, &r.stream, &r.group, &r.ids, r.delay_ms).await.map(applied).map_err(to_status)
    }

    async fn in_progress(&self, request: Request<pb::AckRequest>) -> Answer<pb::AckResponse> {
        self.allowed(&request, Operation::Read, &request.get_ref().stream, &request.get_ref().group).await?;
        let r = request.into_inner();
        names(&r.stream, &r.group)?;
        durable::in_progress(&self.broker, &r.stream, &r.group, &r.ids).await.map(applied).map_err(to_status)
    }

    async fn term(&self, request: Request<pb::TermRequest>) -> Answer<pb::AckResponse> {
        self.allowed(&request, Operation::Read, &request.get_ref().stream, &request.get_ref().group).await?;
        let r = request.into_inner();
        names(&r.stream, &r.group)?;
        durable::term(&self.broker, &r.stream, &r.group, &r.ids, &r.reason).await.map(applied).map_err(to_status)
    }

    async fn replay(&self, request: Request<pb::ReplayRequest>) -> Answer<pb::Consumer> {
        self.allowed(&request, Operation::Read, &request.get_ref().stream, &request.get_ref().group).await?;
        let r = request.into_inner();
        names(&r.stream, &r.group)?;
        let from = match r.from {
            Some(pb::replay_request::From::Offset(offset)) => ReplayFrom::Offset(offset),
            Some(pb::replay_request::From::Since(t)) => ReplayFrom::Time(ductstream_proto::timestamp_to_ms(&t)),
            Some(pb::replay_request::From::Lsn(lsn)) => ReplayFrom::Lsn(durable::parse_lsn(&lsn).map_err(to_status)?),
            None => return Err(to_status(BrokerError::InvalidArgument("replay needs offset, since or lsn".into()))),
        };
        durable::replay(&self.broker, &r.stream, &r.group, from).await.map_err(to_status)?;
        let view = durable::get(&self.broker, &r.stream, &r.group).await.map_err(to_status)?;
        Ok(Response::new(convert::consumer(view)))
    }
}
