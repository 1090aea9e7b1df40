//! SASL/PLAIN (RFC 4616): one token, `authzid NUL user NUL password`, checked against the
//! user's stored SCRAM credential (so there is one store of users, holding no passwords).
//! Use it over TLS only: the password crosses the wire as it is.

use async_trait::async_trait;

use super::{failed, malformed, Exchange, Step};
use crate::security::credentials;
use crate::security::Principal;
use crate::{Broker, Result};

pub struct Plain;

const NAME: &str = "PLAIN";

#[async_trait]
impl Exchange for Plain {
    fn mechanism(&self) -> &'static str {
        NAME
    }

    async fn step(&mut self, broker: &Broker, token: &[u8]) -> Result<Step> {
        let text = std::str::from_utf8(token).map_err(|_| malformed(NAME, "not UTF-8"))?;
        let mut parts = text.split('\0');
        let (Some(authzid), Some(user), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(malformed(NAME, "expected authzid, user and password separated by NUL"));
        };
        if user.is_empty() || password.is_empty() {
            return Err(malformed(NAME, "empty user or password"));
        }
        if !authzid.is_empty() && authzid != user {
            return Err(malformed(NAME, "an authorization id other than the user is not supported"));
        }
        match credentials::check_password(broker, user, password).await? {
            true => Ok(Step::Done { principal: Principal::user(user), reply: Vec::new(), expires_at: None }),
            false => Err(failed(NAME)),
        }
    }
}
