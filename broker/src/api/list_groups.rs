//! ListGroups (v0–v5): every group this broker coordinates, and groups that only have
//! committed offsets (reported Empty); filtered by state (v4+) and type (v5+).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::groups::group::State;
use crate::Result;

/// Every group here speaks the classic protocol.
const GROUP_TYPE: &str = "classic";

pub async fn handle(ctx: &Ctx, request: ListGroupsRequest) -> Result<ListGroupsResponse> {
    let mut listed: Vec<(String, String, State)> = Vec::new();
    for handle in ctx.broker.groups.groups()? {
        let group = handle.group.lock().await;
        if group.state != State::Dead {
            listed.push((group.id.clone(), group.protocol_type.clone().unwrap_or_default(), group.state));
        }
    }
    for id in ctx.broker.storage().groups_with_offsets().await? {
        if !listed.iter().any(|(g, ..)| *g == id) {
            listed.push((id, String::new(), State::Empty));
        }
    }
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    let wanted_state = |s: State| {
        request.states_filter.is_empty() || request.states_filter.iter().any(|f| f.as_str().eq_ignore_ascii_case(s.name()))
    };
    let wanted_type = request.types_filter.is_empty() || request.types_filter.iter().any(|t| t.as_str().eq_ignore_ascii_case(GROUP_TYPE));
    let groups = listed
        .into_iter()
        .filter(|(_, _, state)| (ctx.version < 4 || wanted_state(*state)) && (ctx.version < 5 || wanted_type))
        .map(|(id, protocol_type, state)| {
            let mut group = ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(id)))
                .with_protocol_type(StrBytes::from_string(protocol_type));
            if ctx.version >= 4 {
                group = group.with_group_state(StrBytes::from_static_str(state.name()));
            }
            if ctx.version >= 5 {
                group = group.with_group_type(StrBytes::from_static_str(GROUP_TYPE));
            }
            group
        })
        .collect();
    Ok(ListGroupsResponse::default().with_groups(groups))
}
