//! CreateAcls (v1–v3). This broker has no authorizer: every client may do everything, so there
//! are no ACLs to keep. Apache Kafka without `authorizer.class.name` answers each creation
//! with SECURITY_DISABLED, and so does this broker, rather than storing rules it would not
//! enforce (a client that sees success would believe its topics protected).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;

/// Kafka's words for this case (CreateAcls and DeleteAcls), so tools print the same line.
pub(super) const NO_AUTHORIZER: &str = "No Authorizer is configured.";

pub fn handle(ctx: &Ctx, request: CreateAclsRequest) -> CreateAclsResponse {
    let results = request
        .creations
        .iter()
        .map(|_| {
            AclCreationResult::default()
                .with_error_code(ctx.code(ResponseError::SecurityDisabled))
                .with_error_message(Some(StrBytes::from_static_str(NO_AUTHORIZER)))
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}
