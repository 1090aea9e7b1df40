//! Who a connection is and what it may do: listeners and their security protocols, TLS, SASL
//! authentication and the credentials it checks, and the ACL authorizer.
//!
//! Each listener has one of Kafka's four security protocols. TLS wraps the socket before the
//! first byte of Kafka; SASL is a conversation in Kafka requests (SaslHandshake,
//! SaslAuthenticate) that must end well before any other request is served. The authorizer
//! then decides each request by its principal.

pub mod acl;
pub mod authorizer;
pub mod credentials;
pub mod jwks_endpoint;
pub mod jwt;
pub mod listeners;
pub mod sasl;
pub mod session;
mod subject;
pub mod tls;

use std::fmt;

use kafka_protocol::error::ResponseError;

use crate::BrokerError;

pub use listeners::{Listener, ListenerSpec, SecurityProtocol};
pub use session::Session;
pub use subject::rfc2253 as subject_of;

/// Who made a request, as Kafka names principals: `User:alice`, `User:CN=client,O=acme`,
/// `User:ANONYMOUS` on a listener that authenticates nobody.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub kind: String,
    pub name: String,
}

impl Principal {
    pub fn user(name: impl Into<String>) -> Principal {
        Principal { kind: "User".to_string(), name: name.into() }
    }

    pub fn anonymous() -> Principal {
        Principal::user("ANONYMOUS")
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// Kafka's words for a refused cluster operation, in every response that carries a message.
pub const CLUSTER_DENIED: &str = "Cluster authorization failed.";

/// The error for an operation the authorizer refused, with Kafka's code and words for the
/// resource type.
pub fn not_authorized(resource_type: acl::ResourceType, name: &str) -> BrokerError {
    use acl::ResourceType;
    let (code, message) = match resource_type {
        ResourceType::Topic => (ResponseError::TopicAuthorizationFailed, format!("Not authorized to access topics: [{name}]")),
        ResourceType::Group => (ResponseError::GroupAuthorizationFailed, format!("Not authorized to access group: {name}")),
        ResourceType::TransactionalId => {
            (ResponseError::TransactionalIdAuthorizationFailed, "Transactional Id authorization failed.".to_string())
        }
        _ => (ResponseError::ClusterAuthorizationFailed, CLUSTER_DENIED.to_string()),
    };
    BrokerError::kafka(code, message)
}
