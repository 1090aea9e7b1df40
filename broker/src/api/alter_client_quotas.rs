//! AlterClientQuotas (v0–1): sets and removes quota values of user and client-id entities
//! (ALTER_CONFIGS on the cluster, as Kafka asks). Each entity gets its own answer; an entity
//! with one bad value gets its error and none of its changes.

use std::collections::HashSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_request::EntryData as AskedEntry;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::quotas::model::{self, Entity, Name, CLIENT_ID, IP, USER};
use crate::quotas::Change;
use crate::security::acl::Operation;
use crate::security::CLUSTER_DENIED;

pub async fn handle(ctx: &Ctx, request: AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    let allowed = ctx.allowed_on_cluster(Operation::AlterConfigs);
    let mut answers = Vec::new();
    let mut accepted = Vec::new();
    for asked in &request.entries {
        let echo: Vec<EntityData> = asked
            .entity
            .iter()
            .map(|e| EntityData::default().with_entity_type(e.entity_type.clone()).with_entity_name(e.entity_name.clone()))
            .collect();
        let checked = if allowed { check(asked) } else { Err((ResponseError::ClusterAuthorizationFailed, CLUSTER_DENIED.to_string())) };
        match checked {
            Ok(change) => {
                accepted.push((answers.len(), change));
                answers.push(EntryData::default().with_entity(echo));
            }
            Err((code, message)) => answers.push(
                EntryData::default()
                    .with_entity(echo)
                    .with_error_code(ctx.code(code))
                    .with_error_message(Some(StrBytes::from_string(message))),
            ),
        }
    }
    if !request.validate_only && !accepted.is_empty() {
        let changes: Vec<(Entity, Vec<Change>)> = accepted.iter().map(|(_, change)| change.clone()).collect();
        if let Err(e) = ctx.broker.quotas.alter(ctx.broker.storage().as_ref(), &changes).await {
            for (index, _) in &accepted {
                let answer = std::mem::take(&mut answers[*index]);
                answers[*index] = answer.with_error_code(ctx.error_code(&e)).with_error_message(super::message(&e));
            }
        }
    }
    AlterClientQuotasResponse::default().with_entries(answers)
}

fn check(asked: &AskedEntry) -> Result<(Entity, Vec<Change>), (ResponseError, String)> {
    let invalid = |why: String| Err((ResponseError::InvalidRequest, why));
    let mut entity = Entity { user: None, client_id: None };
    let mut seen = HashSet::new();
    for part in &asked.entity {
        let kind = part.entity_type.to_string();
        if !seen.insert(kind.clone()) {
            return invalid(format!("Duplicate entity type {kind}"));
        }
        let name = match &part.entity_name {
            Some(n) if n.is_empty() => return invalid(format!("Empty {kind} name: leave it null for the default")),
            Some(n) => Name::Named(n.to_string()),
            None => Name::Default,
        };
        match kind.as_str() {
            USER => entity.user = Some(name),
            CLIENT_ID => entity.client_id = Some(name),
            IP => return invalid("ip quotas are not supported: limit connections with --max-connections-per-ip".into()),
            other => return invalid(format!("Unhandled client quota entity type: {other}")),
        }
    }
    if entity.user.is_none() && entity.client_id.is_none() {
        return invalid("Invalid empty client quota entity".into());
    }
    let mut changes = Vec::new();
    for op in &asked.ops {
        let key = op.key.to_string();
        if op.remove {
            changes.push((key, None));
            continue;
        }
        if let Some(why) = model::invalid_value(&key, op.value) {
            return invalid(why);
        }
        changes.push((key, Some(op.value)));
    }
    Ok((entity, changes))
}
