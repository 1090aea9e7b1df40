//! The gRPC API (`ductstream.v1`): service implementations over the broker, with server
//! reflection so `grpcurl` works without the .proto files.

mod convert;
mod flow_service;
mod sink_service;
mod status;
mod stream_service;

use std::sync::Arc;

use ductstream_proto::v1::checkpoint_service_server::CheckpointServiceServer;
use ductstream_proto::v1::ddl_service_server::DdlServiceServer;
use ductstream_proto::v1::flow_service_server::FlowServiceServer;
use ductstream_proto::v1::sink_service_server::SinkServiceServer;
use ductstream_proto::v1::stream_service_server::StreamServiceServer;
use tokio::net::TcpListener;

use crate::flows::FlowManager;
use crate::sinks::SinkManager;
use crate::{Broker, BrokerError, Result};

pub use status::to_status;

/// Serves the gRPC API on `listener` until the broker shuts down.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>, flows: Arc<FlowManager>, sinks: Arc<SinkManager>) -> Result<()> {
    // Both reflection versions: grpcurl before 1.8.8 and many other tools speak only v1alpha.
    let reflection = || tonic_reflection::server::Builder::configure().register_encoded_file_descriptor_set(ductstream_proto::FILE_DESCRIPTOR_SET);
    let failed = |e: tonic_reflection::server::Error| BrokerError::Config(format!("gRPC reflection: {e}"));
    let (reflection_v1, reflection_v1alpha) = (reflection().build_v1().map_err(failed)?, reflection().build_v1alpha().map_err(failed)?);
    let shutdown = broker.shutdown.clone();
    tonic::transport::Server::builder()
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(StreamServiceServer::new(stream_service::StreamApi::new(broker)))
        .add_service(FlowServiceServer::new(flow_service::FlowApi::new(flows.clone())))
        .add_service(DdlServiceServer::new(flow_service::FlowApi::new(flows.clone())))
        .add_service(CheckpointServiceServer::new(flow_service::FlowApi::new(flows)))
        .add_service(SinkServiceServer::new(sink_service::SinkApi::new(sinks)))
        // No Nagle: a reply's last short segment must not wait ~40 ms for the client's ACK
        // (the Kafka listener sets the same).
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown.cancelled_owned(),
        )
        .await
        .map_err(|e| BrokerError::Config(format!("gRPC server: {e}")))
}
