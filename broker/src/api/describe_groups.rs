//! DescribeGroups (v0–v5): state, protocol and members with their subscriptions and
//! assignments. An unknown group is reported as Dead, as Kafka does.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::security::acl::{Operation, ResourceType};
use crate::groups::group::State;
use crate::Result;

pub async fn handle(ctx: &Ctx, request: DescribeGroupsRequest) -> Result<DescribeGroupsResponse> {
    let with_offsets = ctx.broker.storage().groups_with_offsets().await?;
    let mut groups = Vec::with_capacity(request.groups.len());
    for id in request.groups {
        let described = DescribedGroup::default().with_group_id(id.clone());
        if id.0.is_empty() {
            groups.push(described.with_error_code(ctx.code(ResponseError::InvalidGroupId)));
            continue;
        }
        if let Some(e) = super::group_denied(ctx, Operation::Describe, id.0.as_str()) {
            groups.push(described.with_error_code(ctx.code(e)));
            continue;
        }
        let Some(handle) = ctx.broker.groups.group(id.0.as_str()).await? else {
            let state = if with_offsets.iter().any(|g| g == id.0.as_str()) { State::Empty } else { State::Dead };
            groups.push(described.with_group_state(StrBytes::from_static_str(state.name())));
            continue;
        };
        let group = handle.group.lock().await;
        let protocol = group.protocol.clone().unwrap_or_default();
        let settled = matches!(group.state, State::Stable | State::CompletingRebalance);
        let members = group
            .members
            .values()
            .map(|m| {
                let member = DescribedGroupMember::default()
                    .with_member_id(StrBytes::from_string(m.id.clone()))
                    .with_client_id(StrBytes::from_string(m.client_id.clone()))
                    .with_client_host(StrBytes::from_string(m.client_host.clone()))
                    .with_member_metadata(m.metadata(&protocol))
                    .with_member_assignment(if group.state == State::Stable { m.assignment.clone() } else { Default::default() });
                if ctx.version >= 4 {
                    member.with_group_instance_id(m.group_instance_id.clone().map(StrBytes::from_string))
                } else {
                    member
                }
            })
            .collect();
        let operations = match request.include_authorized_operations {
            true => ctx.authorized_operations(ResourceType::Group, &group.id),
            false => i32::MIN,
        };
        groups.push(
            described
                .with_authorized_operations(operations)
                .with_group_state(StrBytes::from_static_str(group.state.name()))
                .with_protocol_type(StrBytes::from_string(group.protocol_type.clone().unwrap_or_default()))
                .with_protocol_data(StrBytes::from_string(if settled { protocol } else { String::new() }))
                .with_members(members),
        );
    }
    Ok(DescribeGroupsResponse::default().with_groups(groups))
}
