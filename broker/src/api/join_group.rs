//! JoinGroup (v0–v9): join a group and wait for the rebalance to complete. From v4 a new member
//! must come back with the member id it is given (KIP-394); `group.instance.id` makes a member
//! static (KIP-345).

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::security::acl::Operation;
use crate::groups::group::{JoinOutcome, JoinRequest, JoinResult};
use crate::Result;

pub async fn handle(ctx: &Ctx, request: JoinGroupRequest) -> Result<JoinGroupResponse> {
    if let Some(e) = super::group_denied(ctx, Operation::Read, request.group_id.0.as_str()) {
        return Ok(JoinGroupResponse::default().with_error_code(ctx.code(e)).with_generation_id(-1));
    }
    let result = join(ctx, request).await?;
    if let Some(error) = result.error {
        ctx.code(error);
    }
    Ok(respond(ctx, result))
}

async fn join(ctx: &Ctx, request: JoinGroupRequest) -> Result<JoinResult> {
    let member_id = request.member_id.as_str().to_owned();
    let group_id = request.group_id.0.as_str().to_owned();
    if group_id.is_empty() {
        return Ok(JoinResult::error(ResponseError::InvalidGroupId, &member_id));
    }
    if let Some(e) = super::not_coordinator(ctx, &group_id) {
        return Ok(JoinResult::error(e, &member_id));
    }
    let config = ctx.broker.groups.config;
    let session = Duration::from_millis(request.session_timeout_ms.max(0) as u64);
    if session < config.min_session_timeout || session > config.max_session_timeout {
        return Ok(JoinResult::error(ResponseError::InvalidSessionTimeout, &member_id));
    }
    // v0 has no rebalance timeout: it is the session timeout.
    let rebalance = if ctx.version >= 1 { Duration::from_millis(request.rebalance_timeout_ms.max(0) as u64) } else { session };
    let join = JoinRequest {
        member_id: member_id.clone(),
        group_instance_id: request.group_instance_id.map(|i| i.as_str().to_owned()),
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host.clone(),
        session_timeout: session,
        rebalance_timeout: rebalance,
        protocol_type: request.protocol_type.as_str().to_owned(),
        protocols: request.protocols.into_iter().map(|p| (p.name.as_str().to_owned(), p.metadata)).collect(),
        require_known_member_id: ctx.version >= 4,
    };
    let handle = ctx.broker.groups.group_or_create(&group_id).await?;
    let outcome = {
        let mut group = handle.group.lock().await;
        let outcome = group.join(join, tokio::time::Instant::now());
        ctx.broker.groups.save_if_changed(&mut group).await;
        outcome
    };
    handle.changed();
    match outcome {
        JoinOutcome::Done(result) => Ok(result),
        JoinOutcome::Wait(waiter) => tokio::select! {
            result = waiter => Ok(result.unwrap_or_else(|_| JoinResult::error(ResponseError::UnknownMemberId, &member_id))),
            _ = ctx.broker.shutdown.cancelled() => Ok(JoinResult::error(ResponseError::CoordinatorNotAvailable, &member_id)),
        },
    }
}

fn respond(ctx: &Ctx, result: JoinResult) -> JoinGroupResponse {
    let str = |s: String| StrBytes::from_string(s);
    let members = result
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            let member = JoinGroupResponseMember::default().with_member_id(str(id)).with_metadata(metadata);
            if ctx.version >= 5 { member.with_group_instance_id(instance.map(str)) } else { member }
        })
        .collect();
    let mut response = JoinGroupResponse::default()
        .with_error_code(result.error.map_or(0, |e| e.code()))
        .with_generation_id(result.generation)
        .with_leader(str(result.leader))
        .with_member_id(str(result.member_id))
        .with_members(members);
    // Before v7 the protocol name is not nullable.
    response = if ctx.version >= 7 {
        response.with_protocol_type(result.protocol_type.map(str)).with_protocol_name(result.protocol.map(str))
    } else {
        response.with_protocol_name(Some(str(result.protocol.unwrap_or_default())))
    };
    response
}
