//! SyncGroup (v0–v5): the leader hands out the assignment; every member waits for its own.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::security::acl::Operation;
use crate::Result;

pub async fn handle(ctx: &Ctx, request: SyncGroupRequest) -> Result<SyncGroupResponse> {
    let group_id = request.group_id.0.as_str();
    let member_id = request.member_id.as_str();
    let instance = request.group_instance_id.as_ref().map(|i| i.as_str());
    let error = |e: ResponseError| SyncGroupResponse::default().with_error_code(ctx.code(e));
    if let Some(e) = super::group_denied(ctx, Operation::Read, group_id) {
        return Ok(error(e));
    }
    if let Some(e) = super::not_coordinator(ctx, group_id) {
        return Ok(error(e));
    }
    let Some(handle) = ctx.broker.groups.group(group_id).await? else {
        return Ok(error(ResponseError::UnknownMemberId));
    };
    let waiter = {
        let mut group = handle.group.lock().await;
        // v5 names the protocol the member thinks it is in; it must be the group's.
        if ctx.version >= 5 {
            let mismatch = |asked: &Option<StrBytes>, have: &Option<String>| {
                asked.as_ref().is_some_and(|a| have.as_deref() != Some(a.as_str()))
            };
            if mismatch(&request.protocol_type, &group.protocol_type) || mismatch(&request.protocol_name, &group.protocol) {
                return Ok(error(ResponseError::InconsistentGroupProtocol));
            }
        }
        let assignments = request.assignments.into_iter().map(|a| (a.member_id.as_str().to_owned(), a.assignment)).collect();
        let waiter = group.sync(member_id, instance, request.generation_id, assignments, tokio::time::Instant::now());
        ctx.broker.groups.save_if_changed(&mut group).await;
        let protocol = (group.protocol_type.clone(), group.protocol.clone());
        waiter.map(|w| (w, protocol))
    };
    handle.changed();
    let (waiter, (protocol_type, protocol)) = match waiter {
        Ok(w) => w,
        Err(e) => return Ok(error(e)),
    };
    let result = tokio::select! {
        result = waiter => result.unwrap_or(Err(ResponseError::UnknownMemberId)),
        _ = ctx.broker.shutdown.cancelled() => Err(ResponseError::CoordinatorNotAvailable),
    };
    Ok(match result {
        Ok(assignment) => {
            let response = SyncGroupResponse::default().with_assignment(assignment);
            if ctx.version >= 5 {
                response
                    .with_protocol_type(protocol_type.map(StrBytes::from_string))
                    .with_protocol_name(protocol.map(StrBytes::from_string))
            } else {
                response
            }
        }
        Err(e) => error(e),
    })
}
