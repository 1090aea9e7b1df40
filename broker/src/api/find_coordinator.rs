//! FindCoordinator (v0–v4): this broker coordinates every group. Transactions are not
//! supported, so transaction coordinators are not found.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;

const KEY_TYPE_GROUP: i8 = 0;

pub fn handle(ctx: &Ctx, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let config = &ctx.broker.config;
    let found = |key_type: i8| -> Result<(), (ResponseError, &'static str)> {
        if key_type == KEY_TYPE_GROUP {
            Ok(())
        } else {
            Err((ResponseError::CoordinatorNotAvailable, "transactions are not supported"))
        }
    };
    let host = StrBytes::from_string(config.advertised_host.clone());
    if ctx.version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let coordinator = Coordinator::default().with_key(key);
                match found(request.key_type) {
                    Ok(()) => coordinator.with_node_id(BrokerId(config.node_id)).with_host(host.clone()).with_port(config.advertised_port),
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
    match found(request.key_type) {
        Ok(()) => FindCoordinatorResponse::default().with_node_id(BrokerId(config.node_id)).with_host(host).with_port(config.advertised_port),
        Err((code, message)) => {
            let response = FindCoordinatorResponse::default().with_error_code(ctx.code(code)).with_node_id(BrokerId(-1)).with_port(-1);
            if ctx.version >= 1 { response.with_error_message(Some(StrBytes::from_static_str(message))) } else { response }
        }
    }
}
