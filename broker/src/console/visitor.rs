//! Who is looking at the console. A visitor logs in as a gRPC caller does, checked by the
//! same guard: HTTP Basic with a SCRAM user's name and password (the browser asks for them),
//! a Bearer token put in front by a proxy, or (with `--console-tls`) a client certificate. The broker's ACLs then decide what the console
//! shows them and does for them, since every change and every service call is made as them.
//! Nobody has to log in (they are User:ANONYMOUS) on a broker whose Kafka clients need not
//! either: no authorizer and no SASL listener.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::{Code, Status};

use super::page::{notice, page};
use super::Console;
use crate::grpc::guard::Caller;
use crate::grpc::incoming::Peer;
use crate::security::acl::{Operation, ResourceType};
use crate::security::Principal;
use crate::BrokerError;

pub struct Visitor {
    /// Where the visitor connects from, and their client certificate's subject (TLS).
    pub peer: Peer,
    /// The browser's `Authorization` header, passed on with each service call.
    authorization: Option<MetadataValue<Ascii>>,
    caller: Caller,
}

impl Visitor {
    pub fn principal(&self) -> Principal {
        self.caller.principal.clone()
    }

    pub fn may(&self, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        self.caller.may(operation, resource_type, name)
    }

    /// What the console reads itself (topics, records) is shown only to who may see it.
    pub fn require(&self, operation: Operation, resource_type: ResourceType, name: &str) -> Result<(), BrokerError> {
        self.caller.require(operation, resource_type, name).map_err(|s| BrokerError::PermissionDenied(s.message().to_owned()))
    }

    /// `message` as this visitor's call to one of the gRPC services in this process.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        request(message, self.peer.clone(), self.authorization.clone())
    }
}

fn request<T>(message: T, peer: Peer, authorization: Option<MetadataValue<Ascii>>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(peer);
    if let Some(value) = authorization {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// A service's answer, or its refusal as the broker's error (shown on the page).
pub fn answered<T>(answer: Result<tonic::Response<T>, Status>) -> Result<T, BrokerError> {
    answer.map(tonic::Response::into_inner).map_err(|status| {
        let message = status.message().to_owned();
        match status.code() {
            Code::NotFound => BrokerError::NotFound(message),
            Code::InvalidArgument => BrokerError::InvalidArgument(message),
            Code::AlreadyExists => BrokerError::AlreadyExists(message),
            Code::FailedPrecondition => BrokerError::FailedPrecondition(message),
            Code::OutOfRange => BrokerError::OutOfRange(message),
            Code::PermissionDenied => BrokerError::PermissionDenied(message),
            Code::Unauthenticated => BrokerError::Authentication(message),
            // The store or a source away: the service's words say which.
            _ => BrokerError::Io(std::io::Error::other(message)),
        }
    })
}

/// 401 with the header that makes a browser ask for a user name and password.
pub fn log_in(why: &str) -> Response {
    let body = page("Log in", &notice(false, why));
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"DuctStream console\", charset=\"UTF-8\"")], Html(body)).into_response()
}

impl FromRequestParts<Console> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Visitor, Response> {
        let peer = parts.extensions.get::<ConnectInfo<Peer>>().map(|c| c.0.clone()).ok_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
        let authorization = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(value) => Some(MetadataValue::try_from(value.as_bytes()).map_err(|_| log_in("the Authorization header is not text"))?),
        };
        if authorization.is_none() && peer.certificate_subject.is_none() && console.must_log_in {
            return Err(log_in("log in with a user of this broker (its SCRAM name and password)"));
        }
        let caller = console.api.guard.caller(&request((), peer.clone(), authorization.clone())).await.map_err(|s| log_in(s.message()))?;
        Ok(Visitor { peer, authorization, caller })
    }
}
