//! The gRPC API (`ductstream.v1`): service implementations over the broker, with server
//! reflection so `grpcurl` works without the .proto files. Every call is authenticated and
//! authorized by the [`guard`]; connections may be TLS ([`incoming`]).

mod convert;
mod flow_service;
pub mod guard;
pub mod incoming;
mod security_service;
mod sink_service;
mod status;
mod stream_service;

use std::sync::Arc;

use ductstream_proto::v1::acl_service_server::AclServiceServer;
use ductstream_proto::v1::checkpoint_service_server::CheckpointServiceServer;
use ductstream_proto::v1::ddl_service_server::DdlServiceServer;
use ductstream_proto::v1::flow_service_server::FlowServiceServer;
use ductstream_proto::v1::sink_service_server::SinkServiceServer;
use ductstream_proto::v1::stream_service_server::StreamServiceServer;
use ductstream_proto::v1::user_service_server::UserServiceServer;
use tokio::net::TcpListener;

use crate::security::tls::ReloadingTls;

use crate::flows::FlowManager;
use crate::sinks::SinkManager;
use crate::{Broker, BrokerError, Result};

pub use flow_service::FlowApi;
pub use sink_service::SinkApi;
pub use status::to_status;
pub use stream_service::StreamApi;

/// The services, for a caller in the same process (the web console): each call is
/// authenticated by the same guard and checked by the same ACLs as one over the network, so
/// the console adds no second way in.
pub struct Services {
    pub guard: Arc<guard::Guard>,
    pub streams: StreamApi,
    pub flows: FlowApi,
    pub sinks: SinkApi,
}

impl Services {
    pub fn new(broker: Arc<Broker>, flows: Arc<FlowManager>, sinks: Arc<SinkManager>) -> Services {
        let guard = guard::Guard::new(broker.clone());
        Services {
            streams: StreamApi::new(broker, guard.clone()),
            flows: FlowApi::new(flows, guard.clone()),
            sinks: SinkApi::new(sinks, guard.clone()),
            guard,
        }
    }
}

/// Serves the gRPC API on `listener` (over TLS when `tls` is given) until the broker shuts down.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ReloadingTls>>,
    broker: Arc<Broker>,
    flows: Arc<FlowManager>,
    sinks: Arc<SinkManager>,
) -> Result<()> {
    // Both reflection versions: grpcurl before 1.8.8 and many other tools speak only v1alpha.
    let reflection = || tonic_reflection::server::Builder::configure().register_encoded_file_descriptor_set(ductstream_proto::FILE_DESCRIPTOR_SET);
    let failed = |e: tonic_reflection::server::Error| BrokerError::Config(format!("gRPC reflection: {e}"));
    let (reflection_v1, reflection_v1alpha) = (reflection().build_v1().map_err(failed)?, reflection().build_v1alpha().map_err(failed)?);
    let shutdown = broker.shutdown.clone();
    let guard = guard::Guard::new(broker.clone());
    let connections = incoming::accept("gRPC", listener, tls, broker.clone(), shutdown.clone());
    tonic::transport::Server::builder()
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(StreamServiceServer::new(stream_service::StreamApi::new(broker.clone(), guard.clone())))
        .add_service(FlowServiceServer::new(flow_service::FlowApi::new(flows.clone(), guard.clone())))
        .add_service(DdlServiceServer::new(flow_service::FlowApi::new(flows.clone(), guard.clone())))
        .add_service(CheckpointServiceServer::new(flow_service::FlowApi::new(flows, guard.clone())))
        .add_service(SinkServiceServer::new(sink_service::SinkApi::new(sinks, guard.clone())))
        .add_service(UserServiceServer::new(security_service::SecurityApi::new(broker.clone(), guard.clone())))
        .add_service(AclServiceServer::new(security_service::SecurityApi::new(broker, guard)))
        .serve_with_incoming_shutdown(connections, shutdown.cancelled_owned())
        .await
        .map_err(|e| BrokerError::Config(format!("gRPC server: {e}")))
}
