//! SaslAuthenticate (v0–v2): one SASL token each way. A failure is answered with
//! SASL_AUTHENTICATION_FAILED and its reason, then the connection closes.

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};

use super::{message, Ctx};

pub async fn handle(ctx: &Ctx, request: SaslAuthenticateRequest) -> SaslAuthenticateResponse {
    let reauth = ctx.broker.config.connections_max_reauth;
    match ctx.session.authenticate(&ctx.broker, &request.auth_bytes, reauth).await {
        Ok(reply) => {
            let response = SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(reply.token));
            // v0 clients cannot re-authenticate, so they are not given a lifetime to honour.
            if ctx.version >= 1 { response.with_session_lifetime_ms(reply.session_lifetime_ms) } else { response }
        }
        Err(e) => SaslAuthenticateResponse::default().with_error_code(ctx.error_code(&e)).with_error_message(message(&e)),
    }
}
