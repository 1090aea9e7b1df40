//! FindCoordinator (v0–v4): the broker that coordinates a group (key type 0) or a
//! transactional id (key type 1), by the cluster's lease hash.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::security::acl::{Operation, ResourceType};

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub fn handle(ctx: &Ctx, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let cluster = &ctx.broker.cluster;
    let found = |key_type: i8, key: &str| -> Result<ductstream_storage::BrokerInfo, (ResponseError, &'static str)> {
        match key_type {
            KEY_TYPE_GROUP if !ctx.allowed(Operation::Describe, ResourceType::Group, key) => {
                Err((ResponseError::GroupAuthorizationFailed, "Not authorized to access the group"))
            }
            KEY_TYPE_TRANSACTION if !ctx.allowed(Operation::Describe, ResourceType::TransactionalId, key) => {
                Err((ResponseError::TransactionalIdAuthorizationFailed, "Transactional Id authorization failed."))
            }
            KEY_TYPE_GROUP => Ok(cluster.coordinator(key)),
            KEY_TYPE_TRANSACTION => Ok(cluster.coordinator(&crate::transactions::coordinator_key(key))),
            _ => Err((ResponseError::InvalidRequest, "unknown coordinator key type")),
        }
    };
    if ctx.version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let coordinator = Coordinator::default().with_key(key.clone());
                match found(request.key_type, key.as_str()) {
                    Ok(b) => {
                        let (host, port) = ctx.address_of(&b);
                        coordinator.with_node_id(BrokerId(b.node_id)).with_host(host).with_port(port)
                    }
                    Err((code, message)) => coordinator
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(ctx.code(code))
                        .with_error_message(Some(StrBytes::from_static_str(message))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match found(request.key_type, request.key.as_str()) {
        Ok(b) => {
            let (host, port) = ctx.address_of(&b);
            FindCoordinatorResponse::default().with_node_id(BrokerId(b.node_id)).with_host(host).with_port(port)
        }
        Err((code, message)) => {
            let response = FindCoordinatorResponse::default().with_error_code(ctx.code(code)).with_node_id(BrokerId(-1)).with_port(-1);
            if ctx.version >= 1 { response.with_error_message(Some(StrBytes::from_static_str(message))) } else { response }
        }
    }
}
