//! DeleteAcls (v1–v3). Without an authorizer there are no ACLs (see `create_acls`): each
//! filter gets SECURITY_DISABLED, as from Apache Kafka without `authorizer.class.name`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::protocol::StrBytes;

use super::create_acls::NO_AUTHORIZER;
use super::Ctx;

pub fn handle(ctx: &Ctx, request: DeleteAclsRequest) -> DeleteAclsResponse {
    let results = request
        .filters
        .iter()
        .map(|_| {
            DeleteAclsFilterResult::default()
                .with_error_code(ctx.code(ResponseError::SecurityDisabled))
                .with_error_message(Some(StrBytes::from_static_str(NO_AUTHORIZER)))
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
