//! LeaveGroup (v0–v5): one member (v0–v2) or a batch of members by id or instance id (v3+).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::Ctx;
use crate::security::acl::Operation;
use crate::Result;

pub async fn handle(ctx: &Ctx, request: LeaveGroupRequest) -> Result<LeaveGroupResponse> {
    let leaving: Vec<(String, Option<String>)> = if ctx.version >= 3 {
        request.members.iter().map(|m| (m.member_id.as_str().to_owned(), m.group_instance_id.as_ref().map(|i| i.as_str().to_owned()))).collect()
    } else {
        vec![(request.member_id.as_str().to_owned(), None)]
    };
    let denied = super::group_denied(ctx, Operation::Read, request.group_id.0.as_str());
    if let Some(e) = denied.or_else(|| super::not_coordinator(ctx, request.group_id.0.as_str())) {
        return Ok(LeaveGroupResponse::default().with_error_code(ctx.code(e)));
    }
    let Some(handle) = ctx.broker.groups.group(request.group_id.0.as_str()).await? else {
        return Ok(LeaveGroupResponse::default().with_error_code(ctx.code(ResponseError::UnknownMemberId)));
    };
    let results: Vec<(String, Option<String>, Result<(), ResponseError>)> = {
        let mut group = handle.group.lock().await;
        let now = tokio::time::Instant::now();
        let results = leaving
            .into_iter()
            .map(|(id, instance)| {
                let result = group.leave(&id, instance.as_deref(), now);
                if result.is_ok() {
                    tracing::info!(group = %group.id, member = %id, "member left");
                }
                (id, instance, result)
            })
            .collect();
        ctx.broker.groups.save_if_changed(&mut group).await;
        results
    };
    handle.changed();
    if ctx.version < 3 {
        let code = results.first().and_then(|(_, _, r)| r.err()).map_or(0, |e| ctx.code(e));
        return Ok(LeaveGroupResponse::default().with_error_code(code));
    }
    let members = results
        .into_iter()
        .map(|(id, instance, result)| {
            MemberResponse::default()
                .with_member_id(kafka_protocol::protocol::StrBytes::from_string(id))
                .with_group_instance_id(instance.map(kafka_protocol::protocol::StrBytes::from_string))
                .with_error_code(result.err().map_or(0, |e| ctx.code(e)))
        })
        .collect();
    Ok(LeaveGroupResponse::default().with_members(members))
}
