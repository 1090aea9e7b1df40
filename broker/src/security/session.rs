//! One connection's security state: the listener it came in by, and who it is once
//! authenticated. On a SASL listener nothing but ApiVersions and the SASL requests is served
//! until a SASL exchange succeeds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;

use super::sasl::{self, Exchange, Step};
use super::{Listener, Principal};
use crate::{Broker, BrokerError, Result};

pub struct Session {
    pub listener: Arc<Listener>,
    pub peer: SocketAddr,
    state: tokio::sync::Mutex<State>,
    /// Who the connection is, for the authorizer: kept beside `state` (whose lock is held
    /// across a SASL step) so that every request can read it without waiting.
    principal: std::sync::RwLock<Option<Principal>>,
    /// A quota throttled the client: nothing more is read from it until then (KIP-219).
    muted_until: std::sync::Mutex<Option<Instant>>,
}

enum State {
    /// Waiting for a SaslHandshake (first authentication).
    Unauthenticated,
    /// A mechanism was chosen; `raw` when SaslHandshake v0 asked for tokens without Kafka
    /// framing. `previous` is who the connection was before a re-authentication (KIP-368).
    Exchanging { exchange: Box<dyn Exchange>, raw: bool, previous: Option<Authenticated> },
    Authenticated(Authenticated),
    /// An exchange failed: the connection closes once the answer is sent.
    Failed,
}

#[derive(Clone)]
struct Authenticated {
    principal: Principal,
    /// When the client must re-authenticate by (`--connections-max-reauth-ms`).
    expires: Option<Instant>,
}

/// What a SaslAuthenticate answers with.
pub struct AuthReply {
    pub token: Vec<u8>,
    pub session_lifetime_ms: i64,
}

impl Session {
    /// A connection on `listener`; `tls_principal` is its client certificate's subject.
    pub fn new(listener: Arc<Listener>, peer: SocketAddr, tls_principal: Option<Principal>) -> Session {
        let (state, principal) = if listener.protocol.uses_sasl() {
            (State::Unauthenticated, None)
        } else {
            let principal = tls_principal.unwrap_or_else(Principal::anonymous);
            (State::Authenticated(Authenticated { principal: principal.clone(), expires: None }), Some(principal))
        };
        Session {
            listener,
            peer,
            state: tokio::sync::Mutex::new(state),
            principal: std::sync::RwLock::new(principal),
            muted_until: std::sync::Mutex::new(None),
        }
    }

    /// Holds the connection's next request back for `throttle` (added to any hold already
    /// set, the later end winning).
    pub fn mute_for(&self, throttle: Duration) {
        let until = Instant::now() + throttle;
        let mut muted = self.muted_until.lock().unwrap_or_else(|p| p.into_inner());
        *muted = Some(muted.map_or(until, |m| m.max(until)));
    }

    /// Until when the connection is held back, clearing it.
    pub fn take_mute(&self) -> Option<Instant> {
        self.muted_until.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Who the connection is, once authenticated.
    pub fn principal(&self) -> Option<Principal> {
        match self.principal.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_principal(&self, principal: Option<Principal>) {
        match self.principal.write() {
            Ok(mut p) => *p = principal,
            Err(poisoned) => *poisoned.into_inner() = principal,
        }
    }

    /// Whether a request for `api` may be served now. The connection is closed if not, as
    /// Kafka does: a client that skips authentication gets no error code to read.
    pub async fn admits(&self, api: ApiKey) -> std::result::Result<(), &'static str> {
        if matches!(api, ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) {
            return Ok(());
        }
        match &*self.state.lock().await {
            State::Authenticated(a) | State::Exchanging { previous: Some(a), .. } => match a.expires {
                Some(at) if Instant::now() >= at => Err("the SASL session expired without re-authentication"),
                _ => Ok(()),
            },
            _ => Err("a request before SASL authentication"),
        }
    }

    /// Whether authentication failed, so that the connection must close.
    pub async fn failed(&self) -> bool {
        matches!(&*self.state.lock().await, State::Failed)
    }

    /// Whether the next frame is a bare SASL token (after SaslHandshake v0).
    pub async fn expects_raw_token(&self) -> bool {
        matches!(&*self.state.lock().await, State::Exchanging { raw: true, .. })
    }

    /// SaslHandshake: chooses `mechanism` for the exchange that follows.
    pub async fn handshake(&self, mechanism: &str, version: i16, enabled: &[String]) -> Result<(), ResponseError> {
        if !self.listener.protocol.uses_sasl() {
            return Err(ResponseError::IllegalSaslState);
        }
        let mut state = self.state.lock().await;
        let previous = match &*state {
            State::Unauthenticated => None,
            // Re-authentication: only with SaslAuthenticate, never raw tokens.
            State::Authenticated(a) if version >= 1 => Some(a.clone()),
            _ => return Err(ResponseError::IllegalSaslState),
        };
        let exchange = enabled.iter().any(|m| m == mechanism).then(|| sasl::start(mechanism)).flatten();
        let Some(exchange) = exchange else { return Err(ResponseError::UnsupportedSaslMechanism) };
        *state = State::Exchanging { exchange, raw: version == 0, previous };
        Ok(())
    }

    /// One SASL token (from SaslAuthenticate, or raw after SaslHandshake v0). A failure ends
    /// the exchange; the caller answers it and closes the connection.
    pub async fn authenticate(&self, broker: &Broker, token: &[u8], reauth_after: Option<Duration>) -> Result<AuthReply> {
        let mut state = self.state.lock().await;
        let State::Exchanging { exchange, previous, .. } = &mut *state else {
            return Err(BrokerError::kafka(ResponseError::IllegalSaslState, "SaslAuthenticate before SaslHandshake"));
        };
        let mechanism = exchange.mechanism();
        let step = exchange.step(broker, token).await;
        let previous = previous.clone();
        match step {
            Ok(Step::Challenge(token)) => Ok(AuthReply { token, session_lifetime_ms: 0 }),
            Ok(Step::Done { principal, reply, expires_at }) => {
                if let Some(previous) = &previous
                    && previous.principal != principal
                {
                    broker.metrics.sasl_failed();
                    *state = State::Failed;
                    self.set_principal(None);
                    return Err(BrokerError::kafka(
                        ResponseError::SaslAuthenticationFailed,
                        format!("re-authentication as {principal} on a connection of {}", previous.principal),
                    ));
                }
                tracing::debug!(peer = %self.peer, %principal, mechanism, "authenticated");
                self.set_principal(Some(principal.clone()));
                // With re-authentication on, a token's session ends with the token (KIP-368).
                let reauth_after = reauth_after.map(|d| match expires_at {
                    Some(at) => d.min(Duration::from_secs(at).saturating_sub(unix_now())),
                    None => d,
                });
                *state = State::Authenticated(Authenticated { principal, expires: reauth_after.map(|d| Instant::now() + d) });
                let lifetime = reauth_after.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                Ok(AuthReply { token: reply, session_lifetime_ms: lifetime })
            }
            Err(e) => {
                broker.metrics.sasl_failed();
                tracing::info!(peer = %self.peer, mechanism, error = %e, "authentication failed");
                *state = State::Failed;
                self.set_principal(None);
                Err(e)
            }
        }
    }
}

fn unix_now() -> Duration {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
}
