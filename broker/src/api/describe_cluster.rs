//! DescribeCluster (v0–v1): this broker as the whole cluster, and its controller.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::security::CLUSTER_DENIED;
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};

/// Endpoint type 1 is "brokers"; 2 ("controllers") has no separate endpoint here.
const ENDPOINT_BROKERS: i8 = 1;

pub fn handle(ctx: &Ctx, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let config = &ctx.broker.config;
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(config.cluster_id.clone()))
        .with_controller_id(BrokerId(config.node_id))
        .with_cluster_authorized_operations(match request.include_cluster_authorized_operations {
            true => ctx.authorized_operations(ResourceType::Cluster, CLUSTER_NAME),
            false => i32::MIN,
        });
    if ctx.version >= 1 {
        response = response.with_endpoint_type(request.endpoint_type);
        if request.endpoint_type != ENDPOINT_BROKERS {
            return response
                .with_error_code(ctx.code(ResponseError::UnsupportedEndpointType))
                .with_error_message(Some(StrBytes::from_static_str("only the brokers endpoint type is served")));
        }
    }
    if !ctx.allowed_on_cluster(Operation::Describe) {
        return response
            .with_error_code(ctx.code(ResponseError::ClusterAuthorizationFailed))
            .with_error_message(Some(StrBytes::from_static_str(CLUSTER_DENIED)));
    }
    let live = ctx.broker.cluster.brokers();
    response.with_controller_id(BrokerId(live.first().map_or(config.node_id, |b| b.node_id))).with_brokers(
        live.iter()
            .map(|b| {
                let (host, port) = ctx.address_of(b);
                DescribeClusterBroker::default().with_broker_id(BrokerId(b.node_id)).with_host(host).with_port(port)
            })
            .collect(),
    )
}
