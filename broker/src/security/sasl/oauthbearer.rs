//! SASL/OAUTHBEARER (RFC 7628, KIP-255): one client message carrying a bearer token,
//! `n,[a=authzid],^Aauth=Bearer <JWT>^A[key=value^A...]^A`, checked by the configured token
//! validator. A refused token is answered with the reason (expired, wrong issuer...): unlike
//! a password, a token's faults are no secret of the user's.

use async_trait::async_trait;
use kafka_protocol::error::ResponseError;

use super::{malformed, Exchange, Step};
use crate::security::Principal;
use crate::{Broker, BrokerError, Result};

pub struct OAuthBearer;

const NAME: &str = "OAUTHBEARER";
const KVSEP: char = '\u{1}';

/// The token and authorization id of a client's first message.
fn parse(message: &str) -> std::result::Result<(&str, Option<&str>), &'static str> {
    let (gs2, rest) = message.split_once(KVSEP).ok_or("no key-value pairs")?;
    let mut gs2 = gs2.split(',');
    let (Some(flag), Some(authzid), Some(""), None) = (gs2.next(), gs2.next(), gs2.next(), gs2.next()) else {
        return Err("bad GS2 header");
    };
    if flag != "n" && flag != "y" {
        return Err("channel binding is not supported");
    }
    let authzid = match authzid {
        "" => None,
        a => Some(a.strip_prefix("a=").ok_or("bad authorization id")?),
    };
    let rest = rest.strip_suffix(KVSEP).ok_or("message does not end with a separator")?;
    let mut token = None;
    for pair in rest.split(KVSEP) {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').ok_or("a pair without =")?;
        if key == "auth" {
            let (scheme, bearer) = value.split_once(' ').ok_or("auth is not 'Bearer <token>'")?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err("auth is not 'Bearer <token>'");
            }
            token = Some(bearer.trim());
        }
        // Other keys are SASL extensions (KIP-342); none is required here.
    }
    Ok((token.ok_or("no auth pair")?, authzid))
}

#[async_trait]
impl Exchange for OAuthBearer {
    fn mechanism(&self) -> &'static str {
        NAME
    }

    async fn step(&mut self, broker: &Broker, token: &[u8]) -> Result<Step> {
        let text = std::str::from_utf8(token).map_err(|_| malformed(NAME, "not UTF-8"))?;
        let (bearer, authzid) = parse(text).map_err(|what| malformed(NAME, what))?;
        let Some(validator) = &broker.config.oauth else {
            return Err(malformed(NAME, "no token validator configured"));
        };
        let verified = validator.verify(bearer).await.map_err(|why| {
            BrokerError::kafka(ResponseError::SaslAuthenticationFailed, format!("Authentication failed: invalid token: {why}"))
        })?;
        if authzid.is_some_and(|a| a != verified.subject) {
            return Err(malformed(NAME, "the authorization id is not the token's subject"));
        }
        Ok(Step::Done { principal: Principal::user(verified.subject), reply: Vec::new(), expires_at: Some(verified.expires_at) })
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn client_messages_as_kafka_clients_send_them() {
        assert_eq!(parse("n,,\u{1}auth=Bearer abc.def.ghi\u{1}\u{1}"), Ok(("abc.def.ghi", None)));
        assert_eq!(parse("n,a=alice,\u{1}auth=Bearer t\u{1}traceId=7\u{1}\u{1}"), Ok(("t", Some("alice"))));
        assert_eq!(parse("n,,\u{1}traceId=7\u{1}auth=bearer t\u{1}\u{1}"), Ok(("t", None)));
        assert!(parse("\u{1}").is_err());
        assert!(parse("n,,\u{1}auth=Basic t\u{1}\u{1}").is_err());
        assert!(parse("p=tls-unique,,\u{1}auth=Bearer t\u{1}\u{1}").is_err());
        assert!(parse("n,,\u{1}\u{1}").is_err());
    }
}
