//! DescribeAcls (v1–v3). Without an authorizer there are no ACLs (see `create_acls`): the
//! answer is SECURITY_DISABLED, as from Apache Kafka without `authorizer.class.name`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;

/// Kafka's words for this case (DescribeAcls has its own).
const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker";

pub fn handle(ctx: &Ctx, _request: DescribeAclsRequest) -> DescribeAclsResponse {
    DescribeAclsResponse::default()
        .with_error_code(ctx.code(ResponseError::SecurityDisabled))
        .with_error_message(Some(StrBytes::from_static_str(NO_AUTHORIZER)))
}
