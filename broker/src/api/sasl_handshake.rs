//! SaslHandshake (v0–v1): the client names a mechanism; the answer lists the enabled ones.
//! v1 is followed by SaslAuthenticate requests, v0 by bare SASL tokens.

use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;

pub async fn handle(ctx: &Ctx, request: SaslHandshakeRequest) -> SaslHandshakeResponse {
    let enabled = &ctx.broker.config.sasl_mechanisms;
    let mechanisms = enabled.iter().map(|m| StrBytes::from_string(m.clone())).collect();
    let response = SaslHandshakeResponse::default().with_mechanisms(mechanisms);
    match ctx.session.handshake(request.mechanism.as_str(), ctx.version, enabled).await {
        Ok(()) => response,
        Err(code) => response.with_error_code(ctx.code(code)),
    }
}
