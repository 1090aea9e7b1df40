//! StreamService: durable consumers over gRPC.

use std::sync::Arc;

use ductstream_proto::v1 as pb;
use ductstream_proto::v1::stream_service_server::StreamService;
use tonic::{Request, Response, Status};

use super::convert;
use super::status::to_status;
use crate::durable::{self, Applied, ReplayFrom};
use crate::{Broker, BrokerError};

pub struct StreamApi {
    broker: Arc<Broker>,
}

impl StreamApi {
    pub fn new(broker: Arc<Broker>) -> StreamApi {
        StreamApi { broker }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn applied(a: Applied) -> Response<pb::AckResponse> {
    Response::new(pb::AckResponse { applied: a.applied, already_done: a.already_done })
}

fn names(stream: &str, group: &str) -> Result<(), Status> {
    convert::require("stream", stream).and_then(|()| convert::require("group", group)).map_err(to_status)
}

#[tonic::async_trait]
impl StreamService for StreamApi {
    async fn create_consumer(&self, request: Request<pb::CreateConsumerRequest>) -> Answer<pb::Consumer> {
        let (stream, group, settings) = convert::settings(request.into_inner().config).map_err(to_status)?;
        let view = durable::create(&self.broker, &stream, &group, settings).await.map_err(to_status)?;
        Ok(Response::new(convert::consumer(view)))
    }

    async fn update_consumer(&self, request: Request<pb::UpdateConsumerRequest>) -> Answer<pb::Consumer> {
        let (stream, group, settings) = convert::settings(request.into_inner().config).map_err(to_status)?;
        let view = durable::update(&self.broker, &stream, &group, settings).await.map_err(to_status)?;
        Ok(Response::new(convert::consumer(view)))
    }

    async fn get_consumer(&self, request: Request<pb::ConsumerRef>) -> Answer<pb::Consumer> {
        let r = request.into_inner();
        names(&r.stream, &r.group)?;
        let view = durable::get(&self.broker, &r.stream, &r.group).await.map_err(to_status)?;
        Ok(Response::new(convert::consumer(view)))
    }

    async fn list_consumers(&self, request: Request<pb::ListConsumersRequest>) -> Answer<pb::ListConsumersResponse> {
        let views = durable::list(&self.broker, &request.into_inner().stream).await.map_err(to_status)?;
        Ok(Response::new(pb::ListConsumersResponse { consumers: views.into_iter().map(convert::consumer).collect() }))
    }

    async fn delete_consumer(&self, request: Request<pb::ConsumerRef>) -> Answer<pb::DeleteConsumerResponse> {
        let r = request.into_inner();
        names(&r.stream, &r.group)?;
        durable::delete(&self.broker, &r.stream, &r.group).await.map_err(to_status)?;
        Ok(Response::new(pb::DeleteConsumerResponse {}))
    }

    async fn pull(&self, request: Request<pb::PullRequest>) -> Answer<pb::PullResponse> {
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
        let r = request.into_inner();
        names(&r.stream, &r.group)?;
        durable::ack(&self.broker, &r.stream, &r.group, &r.ids).await.map(applied).map_err(to_status)
    }

    async fn nak(&self, request: Request<pb::NakRequest>) -> Answer<pb::AckResponse> {
        let r = request.into_inner();
        names(&r.stream, &r.group)?;
        durable::nak(&self.broker, &r.stream, &r.group, &r.ids, r.delay_ms).await.map(applied).map_err(to_status)
    }

    async fn in_progress(&self, request: Request<pb::AckRequest>) -> Answer<pb::AckResponse> {
        let r = request.into_inner();
        names(&r.stream, &r.group)?;
        durable::in_progress(&self.broker, &r.stream, &r.group, &r.ids).await.map(applied).map_err(to_status)
    }

    async fn term(&self, request: Request<pb::TermRequest>) -> Answer<pb::AckResponse> {
        let r = request.into_inner();
        names(&r.stream, &r.group)?;
        durable::term(&self.broker, &r.stream, &r.group, &r.ids, &r.reason).await.map(applied).map_err(to_status)
    }

    async fn replay(&self, request: Request<pb::ReplayRequest>) -> Answer<pb::Consumer> {
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
