//! ListGroups (v0–v5): every group this broker coordinates, and groups that only have
//! committed offsets (reported Empty); filtered by state (v4+) and type (v5+).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::security::acl::Operation;
use crate::groups::group::State;
use crate::Result;

/// Group types: the classic protocol, and KIP-848's consumer protocol.
const CLASSIC: &str = "classic";
const CONSUMER: &str = "consumer";

pub async fn handle(ctx: &Ctx, request: ListGroupsRequest) -> Result<ListGroupsResponse> {
    let mut listed: Vec<(String, String, String, &'static str)> = Vec::new();
    for handle in ctx.broker.groups.groups()? {
        let group = handle.group.lock().await;
        if group.state != State::Dead {
            listed.push((group.id.clone(), group.protocol_type.clone().unwrap_or_default(), CLASSIC.into(), group.state.name()));
        }
    }
    // KIP-848 groups saved by an earlier coordinator are restored here, listed by their type.
    for id in ctx.broker.groups.saved_consumer_groups().await? {
        if ctx.broker.cluster.coordinates(&id) {
            ctx.broker.groups.consumer_group(&id).await?;
        }
    }
    for handle in ctx.broker.groups.consumer_groups()? {
        let group = handle.group.lock().await;
        if !group.gone {
            listed.push((group.id.clone(), "consumer".into(), CONSUMER.into(), group.state()));
        }
    }
    // Saved groups not served since this broker started (they are restored when first used),
    // and groups that only have commits; each listed by its coordinator only.
    for saved in ctx.broker.storage().load_groups().await? {
        if !listed.iter().any(|(g, ..)| *g == saved.group_id) && ctx.broker.cluster.coordinates(&saved.group_id) {
            let state = if saved.members.is_empty() { State::Empty } else { State::Stable };
            listed.push((saved.group_id, saved.protocol_type, CLASSIC.into(), state.name()));
        }
    }
    for id in ctx.broker.storage().groups_with_offsets().await? {
        if !listed.iter().any(|(g, ..)| *g == id) && ctx.broker.cluster.coordinates(&id) {
            listed.push((id, String::new(), CLASSIC.into(), State::Empty.name()));
        }
    }
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    // DESCRIBE on the cluster lists every group; otherwise the groups the client may describe.
    if !ctx.allowed_on_cluster(Operation::Describe) {
        listed.retain(|(id, ..)| super::group_denied(ctx, Operation::Describe, id).is_none());
    }
    let wanted = |filter: &[StrBytes], value: &str| filter.is_empty() || filter.iter().any(|f| f.as_str().eq_ignore_ascii_case(value));
    let groups = listed
        .into_iter()
        .filter(|(_, _, kind, state)| {
            (ctx.version < 4 || wanted(&request.states_filter, state)) && (ctx.version < 5 || wanted(&request.types_filter, kind))
        })
        .map(|(id, protocol_type, kind, state)| {
            let mut group = ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(id)))
                .with_protocol_type(StrBytes::from_string(protocol_type));
            if ctx.version >= 4 {
                group = group.with_group_state(StrBytes::from_static_str(state));
            }
            if ctx.version >= 5 {
                group = group.with_group_type(StrBytes::from_string(kind));
            }
            group
        })
        .collect();
    Ok(ListGroupsResponse::default().with_groups(groups))
}
