//! DeleteAcls (v1–v3): deletes the ACL bindings each filter matches and returns them; needs
//! ALTER on the cluster. Without an authorizer, each filter gets SECURITY_DISABLED, as from
//! Apache Kafka without `authorizer.class.name`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::protocol::StrBytes;

use super::acl_filter::filter;
use crate::security::CLUSTER_DENIED;
use super::create_acls::NO_AUTHORIZER;
use super::Ctx;
use crate::security::acl::{AclFilter, Operation};

pub async fn handle(ctx: &Ctx, request: DeleteAclsRequest) -> DeleteAclsResponse {
    let refuse = |code: ResponseError, message: String| {
        DeleteAclsFilterResult::default().with_error_code(ctx.code(code)).with_error_message(Some(StrBytes::from_string(message)))
    };
    let refuse_all = |code: ResponseError, message: &str| {
        let results = request.filters.iter().map(|_| refuse(code, message.to_string())).collect();
        DeleteAclsResponse::default().with_filter_results(results)
    };
    let authorizer = &ctx.broker.authorizer;
    if !authorizer.enabled() {
        return refuse_all(ResponseError::SecurityDisabled, NO_AUTHORIZER);
    }
    if !ctx.allowed_on_cluster(Operation::Alter) {
        return refuse_all(ResponseError::ClusterAuthorizationFailed, CLUSTER_DENIED);
    }
    let filters: Vec<Result<AclFilter, String>> = request
        .filters
        .iter()
        .map(|f| {
            filter(
                f.resource_type_filter,
                f.resource_name_filter.as_deref(),
                f.pattern_type_filter,
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = filters.iter().filter_map(|f| f.as_ref().ok().cloned()).collect();
    let deleted = match authorizer.delete(ctx.broker.storage().as_ref(), &valid).await {
        Ok(deleted) => deleted,
        Err(e) => return refuse_all(e.code(), &e.to_string()),
    };
    let mut deleted = deleted.into_iter();
    let results = filters
        .into_iter()
        .map(|f| match f {
            Err(why) => refuse(ResponseError::InvalidRequest, why),
            Ok(_) => {
                let matching = deleted.next().unwrap_or_default();
                for binding in &matching {
                    tracing::info!(principal = %ctx.principal(), acl = ?binding, "ACL deleted");
                }
                DeleteAclsFilterResult::default().with_matching_acls(
                    matching
                        .into_iter()
                        .map(|b| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(b.resource_type.code())
                                .with_resource_name(StrBytes::from_string(b.resource_name))
                                .with_pattern_type(b.pattern_type.code())
                                .with_principal(StrBytes::from_string(b.principal))
                                .with_host(StrBytes::from_string(b.host))
                                .with_operation(b.operation.code())
                                .with_permission_type(b.permission.code())
                        })
                        .collect(),
                )
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
