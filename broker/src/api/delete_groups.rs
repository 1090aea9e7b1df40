//! DeleteGroups (v0–v2): forget empty groups (classic and KIP-848) and their committed offsets.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::Ctx;
use crate::security::acl::Operation;
use crate::Result;

pub async fn handle(ctx: &Ctx, request: DeleteGroupsRequest) -> Result<DeleteGroupsResponse> {
    let with_offsets = ctx.broker.storage().groups_with_offsets().await?;
    let mut results = Vec::with_capacity(request.groups_names.len());
    for id in request.groups_names {
        let name = id.0.as_str().to_owned();
        let error = delete(ctx, &name, with_offsets.contains(&name)).await?;
        results.push(DeletableGroupResult::default().with_group_id(id).with_error_code(error.map_or(0, |e| ctx.code(e))));
    }
    Ok(DeleteGroupsResponse::default().with_results(results))
}

async fn delete(ctx: &Ctx, id: &str, has_offsets: bool) -> Result<Option<ResponseError>> {
    if let Some(e) = super::group_denied(ctx, Operation::Delete, id) {
        return Ok(Some(e));
    }
    // A KIP-848 group lives in its own table; it is deleted only without members, and its
    // lock is held until its commits are gone so that no member joins in between.
    let consumer = ctx.broker.groups.consumer_group(id).await?;
    let mut consumer_guard = match &consumer {
        Some(handle) => {
            let group = handle.group.lock().await;
            if !group.members.is_empty() {
                return Ok(Some(ResponseError::NonEmptyGroup));
            }
            Some(group)
        }
        None => None,
    };
    let handle = ctx.broker.groups.group(id).await?;
    if handle.is_none() && consumer_guard.is_none() && !has_offsets {
        return Ok(Some(ResponseError::GroupIdNotFound));
    }
    if let Some(handle) = &handle {
        let mut group = handle.group.lock().await;
        if !group.is_empty() {
            return Ok(Some(ResponseError::NonEmptyGroup));
        }
        group.kill();
        handle.changed();
    }
    ctx.broker.groups.forget(id)?;
    if let Some(group) = consumer_guard.as_mut() {
        ctx.broker.groups.forget_consumer_group(group).await?;
    }
    if let Some(handle) = &consumer {
        handle.changed(); // its timer task ends
    }
    ctx.broker.storage().delete_group(id).await?;
    drop(consumer_guard);
    tracing::info!(group = id, "deleted group");
    Ok(None)
}
