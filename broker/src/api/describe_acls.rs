//! DescribeAcls (v1–v3): the ACL bindings a filter matches, grouped by resource; needs DESCRIBE
//! on the cluster. Without an authorizer: SECURITY_DISABLED, as from Apache Kafka without
//! `authorizer.class.name`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;

use super::acl_filter::filter;
use crate::security::CLUSTER_DENIED;
use super::Ctx;
use crate::security::acl::Operation;

/// Kafka's words for this case (DescribeAcls has its own).
const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker";

pub async fn handle(ctx: &Ctx, request: DescribeAclsRequest) -> DescribeAclsResponse {
    let refuse = |code: ResponseError, message: String| {
        DescribeAclsResponse::default().with_error_code(ctx.code(code)).with_error_message(Some(StrBytes::from_string(message)))
    };
    let authorizer = &ctx.broker.authorizer;
    if !authorizer.enabled() {
        return refuse(ResponseError::SecurityDisabled, NO_AUTHORIZER.into());
    }
    if !ctx.allowed_on_cluster(Operation::Describe) {
        return refuse(ResponseError::ClusterAuthorizationFailed, CLUSTER_DENIED.into());
    }
    let wanted = match filter(
        request.resource_type_filter,
        request.resource_name_filter.as_deref(),
        request.pattern_type_filter,
        request.principal_filter.as_deref(),
        request.host_filter.as_deref(),
        request.operation,
        request.permission_type,
    ) {
        Ok(wanted) => wanted,
        Err(why) => return refuse(ResponseError::InvalidRequest, why),
    };
    // Read again, so that another broker's changes show at once.
    if let Err(e) = authorizer.refresh(ctx.broker.storage().as_ref()).await {
        return refuse(e.code(), e.to_string());
    }
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for b in authorizer.bindings().iter().filter(|b| wanted.matches(b)) {
        let acl = AclDescription::default()
            .with_principal(StrBytes::from_string(b.principal.clone()))
            .with_host(StrBytes::from_string(b.host.clone()))
            .with_operation(b.operation.code())
            .with_permission_type(b.permission.code());
        let same = |r: &&mut DescribeAclsResource| {
            r.resource_type == b.resource_type.code() && r.resource_name.as_str() == b.resource_name && r.pattern_type == b.pattern_type.code()
        };
        match resources.iter_mut().find(same) {
            Some(resource) => resource.acls.push(acl),
            None => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(b.resource_type.code())
                    .with_resource_name(StrBytes::from_string(b.resource_name.clone()))
                    .with_pattern_type(b.pattern_type.code())
                    .with_acls(vec![acl]),
            ),
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}
