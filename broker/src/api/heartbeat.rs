//! Heartbeat (v0–v4): keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::Ctx;
use crate::security::acl::Operation;
use crate::Result;

pub async fn handle(ctx: &Ctx, request: HeartbeatRequest) -> Result<HeartbeatResponse> {
    if let Some(e) = super::group_denied(ctx, Operation::Read, request.group_id.0.as_str()) {
        return Ok(HeartbeatResponse::default().with_error_code(ctx.code(e)));
    }
    if let Some(e) = super::not_coordinator(ctx, request.group_id.0.as_str()) {
        return Ok(HeartbeatResponse::default().with_error_code(ctx.code(e)));
    }
    let Some(handle) = ctx.broker.groups.group(request.group_id.0.as_str()).await? else {
        return Ok(HeartbeatResponse::default().with_error_code(ctx.code(ResponseError::UnknownMemberId)));
    };
    let result = {
        let mut group = handle.group.lock().await;
        let instance = request.group_instance_id.as_ref().map(|i| i.as_str());
        group.heartbeat(request.member_id.as_str(), instance, request.generation_id, tokio::time::Instant::now())
    };
    handle.changed();
    Ok(match result {
        Ok(()) => HeartbeatResponse::default(),
        Err(e) => HeartbeatResponse::default().with_error_code(ctx.code(e)),
    })
}
