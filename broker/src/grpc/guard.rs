//! Who calls the gRPC API and whether they may: each call's principal comes from its
//! `authorization` header (`Basic`: a SCRAM user's name and password; `Bearer`: an OAuth JWT,
//! checked as SASL/OAUTHBEARER checks it) or else the client certificate of its TLS
//! connection, or is User:ANONYMOUS; the ACL authorizer then decides each operation as it
//! does for Kafka requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use tonic::{Request, Status};

use super::incoming::Peer;
use crate::security::acl::{Operation, ResourceType};
use crate::security::authorizer::Authorizer;
use crate::security::{credentials, Principal};
use crate::Broker;

/// How long a checked password is trusted without checking it again. A password check costs
/// thousands of hash rounds (milliseconds), too much for every Pull or Ack; a changed or
/// deleted password stops working within this time.
const VERIFIED_FOR: Duration = Duration::from_secs(30);
/// At most this many remembered logins (beyond it the memory is cleared).
const MAX_VERIFIED: usize = 10_000;

pub struct Guard {
    broker: Arc<Broker>,
    /// SHA-256 of an `authorization` header that checked out, with its principal and when.
    verified: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

/// The principal of one call, and the authorizer that decides what it may do.
pub struct Caller {
    pub principal: Principal,
    pub host: String,
    /// `basic`, `bearer`, `certificate` or `anonymous`.
    pub authenticated_by: &'static str,
    authorizer: Arc<Authorizer>,
}

impl Caller {
    pub fn may(&self, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        self.authorizer.authorize(&self.principal, &self.host, operation, resource_type, name)
    }

    /// PERMISSION_DENIED unless the caller may do `operation` on every resource of the type
    /// whose name starts with `prefix`.
    pub fn require_prefix(&self, operation: Operation, resource_type: ResourceType, prefix: &str) -> Result<(), Status> {
        if self.authorizer.authorize_prefix(&self.principal, &self.host, operation, resource_type, prefix) {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "{} may not {} every {} named {prefix:?}...",
            self.principal,
            operation.name(),
            resource_type.name()
        )))
    }

    /// PERMISSION_DENIED unless the caller may.
    pub fn require(&self, operation: Operation, resource_type: ResourceType, name: &str) -> Result<(), Status> {
        if self.may(operation, resource_type, name) {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "{} may not {} {} {name:?}",
            self.principal,
            operation.name(),
            resource_type.name()
        )))
    }
}

impl Guard {
    pub fn new(broker: Arc<Broker>) -> Arc<Guard> {
        Arc::new(Guard { broker, verified: Mutex::new(HashMap::new()) })
    }

    /// The caller of `request`; UNAUTHENTICATED when it brings credentials that do not check out.
    pub async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let peer = request.extensions().get::<Peer>();
        let host = peer.map(|p| p.addr.ip().to_string()).unwrap_or_default();
        let caller = |principal, authenticated_by| Caller {
            principal,
            host: host.clone(),
            authenticated_by,
            authorizer: self.broker.authorizer.clone(),
        };
        if let Some(header) = request.metadata().get("authorization") {
            let header = header.to_str().map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
            if let Some(token) = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")) {
                return Ok(caller(self.bearer(token.trim()).await?, "bearer"));
            }
            return Ok(caller(self.basic(header).await?, "basic"));
        }
        if let Some(subject) = peer.and_then(|p| p.certificate_subject.clone()) {
            return Ok(caller(Principal::user(subject), "certificate"));
        }
        Ok(caller(Principal::anonymous(), "anonymous"))
    }

    /// The caller of `request`, if it may do `operation` on the resource.
    pub async fn check<T>(&self, request: &Request<T>, operation: Operation, resource_type: ResourceType, name: &str) -> Result<Caller, Status> {
        let caller = self.caller(request).await?;
        caller.require(operation, resource_type, name)?;
        Ok(caller)
    }

    async fn bearer(&self, token: &str) -> Result<Principal, Status> {
        let Some(validator) = &self.broker.config.oauth else {
            return Err(Status::unauthenticated("bearer tokens are not accepted: the broker has no --sasl-oauthbearer-* keys"));
        };
        match validator.verify(token).await {
            Ok(verified) => Ok(Principal::user(verified.subject)),
            Err(why) => {
                self.broker.metrics.sasl_failed();
                Err(Status::unauthenticated(format!("invalid token: {why}")))
            }
        }
    }

    async fn basic(&self, header: &str) -> Result<Principal, Status> {
        let Some(encoded) = header.strip_prefix("Basic ").or_else(|| header.strip_prefix("basic ")) else {
            return Err(Status::unauthenticated(
                "unsupported authorization scheme: use Basic (a SCRAM user's name and password) or Bearer (an OAuth token)",
            ));
        };
        let key: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, header.as_bytes()).as_ref().try_into().unwrap_or([0; 32]);
        if let Some(principal) = self.remembered(&key) {
            return Ok(principal);
        }
        let malformed = || Status::unauthenticated("the Basic credentials are not base64 of user:password");
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
        let text = String::from_utf8(decoded).map_err(|_| malformed())?;
        let (user, password) = text.split_once(':').ok_or_else(malformed)?;
        let checked = credentials::check_password(&self.broker, user, password).await.map_err(super::to_status)?;
        if !checked {
            self.broker.metrics.sasl_failed();
            return Err(Status::unauthenticated("authentication failed: wrong user name or password"));
        }
        let principal = Principal::user(user);
        let mut verified = self.verified.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if verified.len() >= MAX_VERIFIED {
            verified.clear();
        }
        verified.insert(key, (principal.clone(), Instant::now()));
        Ok(principal)
    }

    fn remembered(&self, key: &[u8; 32]) -> Option<Principal> {
        let verified = self.verified.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        verified.get(key).filter(|(_, at)| at.elapsed() < VERIFIED_FOR).map(|(principal, _)| principal.clone())
    }
}
