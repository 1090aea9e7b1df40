//! CreateAcls (v1–v3): stores ACL bindings for the authorizer (`--authorizer acl`); needs
//! ALTER on the cluster. Without an authorizer, each creation gets SECURITY_DISABLED, as from
//! Apache Kafka without `authorizer.class.name`, rather than storing rules nothing enforces.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::security::CLUSTER_DENIED;
use crate::security::acl::{AclBinding, Operation, PatternType, Permission, ResourceType};

/// Kafka's words for this case (CreateAcls and DeleteAcls), so tools print the same line.
pub(super) const NO_AUTHORIZER: &str = "No Authorizer is configured.";

pub async fn handle(ctx: &Ctx, request: CreateAclsRequest) -> CreateAclsResponse {
    let refuse = |code: ResponseError, message: String| {
        AclCreationResult::default().with_error_code(ctx.code(code)).with_error_message(Some(StrBytes::from_string(message)))
    };
    let refuse_all = |code: ResponseError, message: &str| {
        let results = request.creations.iter().map(|_| refuse(code, message.to_string())).collect();
        CreateAclsResponse::default().with_results(results)
    };
    if !ctx.broker.authorizer.enabled() {
        return refuse_all(ResponseError::SecurityDisabled, NO_AUTHORIZER);
    }
    if !ctx.allowed_on_cluster(Operation::Alter) {
        return refuse_all(ResponseError::ClusterAuthorizationFailed, CLUSTER_DENIED);
    }
    let checked: Vec<Result<AclBinding, String>> = request.creations.iter().map(|c| binding(ctx.version, c)).collect();
    let valid: Vec<AclBinding> = checked.iter().filter_map(|c| c.as_ref().ok().cloned()).collect();
    let stored = ctx.broker.authorizer.create(ctx.broker.storage().as_ref(), &valid).await;
    if let Ok(()) = &stored {
        for binding in &valid {
            tracing::info!(principal = %ctx.principal(), acl = ?binding, "ACL created");
        }
    }
    let results = checked
        .into_iter()
        .map(|c| match (c, &stored) {
            (Err(why), _) => refuse(ResponseError::InvalidRequest, why),
            (Ok(_), Err(e)) => refuse(e.code(), e.to_string()),
            (Ok(_), Ok(())) => AclCreationResult::default(),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

fn binding(version: i16, c: &AclCreation) -> Result<AclBinding, String> {
    let binding = AclBinding {
        resource_type: ResourceType::from_code(c.resource_type)
            .filter(|t| t.is_kafka())
            .ok_or_else(|| format!("unknown resource type {}", c.resource_type))?,
        resource_name: c.resource_name.to_string(),
        // v0 had no pattern type: literal.
        pattern_type: if version >= 1 {
            PatternType::from_code(c.resource_pattern_type).ok_or_else(|| format!("unknown pattern type {}", c.resource_pattern_type))?
        } else {
            PatternType::Literal
        },
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: Operation::from_code(c.operation).ok_or_else(|| format!("unknown operation {}", c.operation))?,
        permission: Permission::from_code(c.permission_type).ok_or_else(|| format!("unknown permission type {}", c.permission_type))?,
    };
    match binding.invalid() {
        Some(why) => Err(why.to_string()),
        None => Ok(binding),
    }
}
