//! SASL mechanisms as server-side exchanges: each client token gets a reply, until the
//! exchange names the authenticated principal or fails.

mod oauthbearer;
mod plain;
mod scram;

use async_trait::async_trait;
use kafka_protocol::error::ResponseError;

use super::credentials::ScramMechanism;
use super::Principal;
use crate::{Broker, BrokerError, Result};

/// Every mechanism this broker can serve, in the order SaslHandshake lists them.
pub const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// What one client token leads to.
pub enum Step {
    /// Send this challenge and wait for the next token.
    Challenge(Vec<u8>),
    /// Authenticated: send this last reply (possibly empty). `expires_at` (seconds since the
    /// Unix epoch) is when the credential itself ends, for a token.
    Done { principal: Principal, reply: Vec<u8>, expires_at: Option<u64> },
}

/// One authentication in progress.
#[async_trait]
pub trait Exchange: Send {
    fn mechanism(&self) -> &'static str;

    /// The next step for the client's `token`; an error ends the exchange.
    async fn step(&mut self, broker: &Broker, token: &[u8]) -> Result<Step>;
}

/// A new exchange for `mechanism`, if it is one of ours.
pub fn start(mechanism: &str) -> Option<Box<dyn Exchange>> {
    if mechanism == "PLAIN" {
        return Some(Box::new(plain::Plain));
    }
    if mechanism == "OAUTHBEARER" {
        return Some(Box::new(oauthbearer::OAuthBearer));
    }
    ScramMechanism::from_name(mechanism).map(|m| Box::new(scram::Scram::new(m)) as Box<dyn Exchange>)
}

/// The error every failed authentication gets: it says which mechanism failed, never why the
/// credentials were wrong (an unknown user and a wrong password look alike).
pub fn failed(mechanism: &str) -> BrokerError {
    BrokerError::kafka(
        ResponseError::SaslAuthenticationFailed,
        format!("Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"),
    )
}

/// A token that breaks the mechanism's grammar.
pub fn malformed(mechanism: &str, what: &str) -> BrokerError {
    BrokerError::kafka(ResponseError::SaslAuthenticationFailed, format!("Authentication failed: invalid {mechanism} message: {what}"))
}
