//! DeleteGroups (v0–v2): forget empty groups and their committed offsets.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::Ctx;
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
    let handle = ctx.broker.groups.group(id).await?;
    if handle.is_none() && !has_offsets {
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
    ctx.broker.storage().delete_group(id).await?;
    tracing::info!(group = id, "deleted group");
    Ok(None)
}
