//! DescribeClientQuotas (v0–1): the configured quota entities a filter selects, with their
//! values (DESCRIBE_CONFIGS on the cluster, as Kafka asks).

use std::collections::HashSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::quotas::model::{self, Match, CLIENT_ID, IP, USER};
use crate::security::acl::Operation;
use crate::security::CLUSTER_DENIED;

pub fn handle(ctx: &Ctx, request: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
    let refuse = |code: ResponseError, message: String| {
        DescribeClientQuotasResponse::default().with_error_code(ctx.code(code)).with_error_message(Some(StrBytes::from_string(message)))
    };
    if !ctx.allowed_on_cluster(Operation::DescribeConfigs) {
        return refuse(ResponseError::ClusterAuthorizationFailed, CLUSTER_DENIED.to_string());
    }
    let components = match filter(&request) {
        Ok(components) => components,
        Err(why) => return refuse(ResponseError::InvalidRequest, why),
    };
    let config = ctx.broker.quotas.config();
    let entries = config
        .entries
        .values()
        .filter(|(entity, _)| model::matches(entity, &components, request.strict))
        .map(|(entity, values)| {
            let entity = entity
                .parts()
                .into_iter()
                .map(|(kind, name)| {
                    EntityData::default()
                        .with_entity_type(StrBytes::from_static_str(kind))
                        .with_entity_name(name.map(|n| StrBytes::from_string(n.to_string())))
                })
                .collect();
            let values = values.iter().map(|(key, value)| ValueData::default().with_key(StrBytes::from_string(key.clone())).with_value(*value)).collect();
            EntryData::default().with_entity(entity).with_values(values)
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

fn filter(request: &DescribeClientQuotasRequest) -> Result<Vec<(String, Match)>, String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for c in &request.components {
        let kind = c.entity_type.to_string();
        if kind == IP {
            // No ip quotas are ever stored (connection limits are flags): none match.
            return Ok(vec![(kind, Match::Specified)]);
        }
        if kind != USER && kind != CLIENT_ID {
            return Err(format!("Custom entity type '{kind}' not supported"));
        }
        if !seen.insert(kind.clone()) {
            return Err(format!("Duplicate filter component entity type {kind}"));
        }
        let wanted = match (c.match_type, &c._match) {
            (0, Some(name)) => Match::Exact(name.to_string()),
            (0, None) => return Err(format!("Missing name to match for entity type {kind}")),
            (1, _) => Match::Default,
            (2, _) => Match::Specified,
            (other, _) => return Err(format!("Unknown match type {other}")),
        };
        out.push((kind, wanted));
    }
    Ok(out)
}
