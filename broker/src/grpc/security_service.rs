//! UserService and AclService: SCRAM users and ACLs over gRPC, checked as Kafka checks its
//! own APIs for them (DESCRIBE on the cluster to look, ALTER to change).

use std::sync::Arc;

use ductstream_proto::v1 as pb;
use ductstream_proto::v1::acl_service_server::AclService;
use ductstream_proto::v1::user_service_server::UserService;
use tonic::{Request, Response, Status};

use super::guard::Guard;
use super::status::to_status;
use crate::security::acl::{AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType, CLUSTER_NAME, WILDCARD};
use crate::security::credentials::{self, ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::Broker;

type Answer<T> = Result<Response<T>, Status>;

pub struct SecurityApi {
    broker: Arc<Broker>,
    guard: Arc<Guard>,
}

impl SecurityApi {
    pub fn new(broker: Arc<Broker>, guard: Arc<Guard>) -> SecurityApi {
        SecurityApi { broker, guard }
    }

    async fn on_cluster<T>(&self, request: &Request<T>, operation: Operation) -> Result<(), Status> {
        self.guard.check(request, operation, ResourceType::Cluster, CLUSTER_NAME).await.map(drop)
    }

    fn authorizer_on(&self) -> Result<(), Status> {
        match self.broker.authorizer.enabled() {
            true => Ok(()),
            false => Err(Status::failed_precondition("no authorizer: start the broker with --authorizer acl to use ACLs")),
        }
    }
}

fn mechanism(name: &str, default: ScramMechanism) -> Result<ScramMechanism, Status> {
    if name.trim().is_empty() {
        return Ok(default);
    }
    ScramMechanism::from_name(&name.trim().to_ascii_uppercase())
        .ok_or_else(|| Status::invalid_argument(format!("unknown SCRAM mechanism {name:?}: SCRAM-SHA-256 or SCRAM-SHA-512")))
}

fn user_pb(name: String, stored: &credentials::UserCredentials) -> pb::User {
    let credentials = ScramMechanism::ALL
        .into_iter()
        .filter_map(|m| stored.get(m).map(|c| pb::ScramCredentialInfo { mechanism: m.name().into(), iterations: c.iterations }))
        .collect();
    pb::User { name, credentials }
}

#[tonic::async_trait]
impl UserService for SecurityApi {
    async fn list_users(&self, request: Request<pb::ListUsersRequest>) -> Answer<pb::ListUsersResponse> {
        self.on_cluster(&request, Operation::Describe).await?;
        let users = credentials::users(&self.broker).await.map_err(to_status)?;
        Ok(Response::new(pb::ListUsersResponse { users: users.into_iter().map(|(name, stored)| user_pb(name, &stored)).collect() }))
    }

    async fn set_user(&self, request: Request<pb::SetUserRequest>) -> Answer<pb::User> {
        self.on_cluster(&request, Operation::Alter).await?;
        let r = request.into_inner();
        if r.name.is_empty() || r.password.is_empty() {
            return Err(Status::invalid_argument("a user needs a name and a password"));
        }
        let mechanism = mechanism(&r.mechanism, ScramMechanism::Sha512)?;
        let iterations = if r.iterations == 0 { MIN_ITERATIONS } else { r.iterations };
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(Status::invalid_argument(format!("iterations must be {MIN_ITERATIONS} to {MAX_ITERATIONS}")));
        }
        let credential = ScramCredential::new(mechanism, &r.password, iterations).map_err(to_status)?;
        credentials::set(&self.broker, &r.name, mechanism, Some(credential)).await.map_err(to_status)?;
        let stored = credentials::user(&self.broker, &r.name).await.map_err(to_status)?.unwrap_or_default();
        Ok(Response::new(user_pb(r.name, &stored)))
    }

    async fn delete_user(&self, request: Request<pb::DeleteUserRequest>) -> Answer<pb::DeleteUserResponse> {
        self.on_cluster(&request, Operation::Alter).await?;
        let r = request.into_inner();
        let mechanisms = match r.mechanism.trim().is_empty() {
            true => ScramMechanism::ALL.to_vec(),
            false => vec![mechanism(&r.mechanism, ScramMechanism::Sha512)?],
        };
        let mut deleted = false;
        for mechanism in mechanisms {
            deleted |= credentials::set(&self.broker, &r.name, mechanism, None).await.map_err(to_status)?;
        }
        Ok(Response::new(pb::DeleteUserResponse { deleted }))
    }

    async fn who_am_i(&self, request: Request<pb::WhoAmIRequest>) -> Answer<pb::WhoAmIResponse> {
        let caller = self.guard.caller(&request).await?;
        Ok(Response::new(pb::WhoAmIResponse { principal: caller.principal.to_string(), authenticated_by: caller.authenticated_by.into() }))
    }
}

/// A named value of one of the ACL enums; empty gives `default`.
fn named<T>(field: &str, value: &str, default: T, parse: fn(&str) -> Option<T>) -> Result<T, Status> {
    if value.trim().is_empty() {
        return Ok(default);
    }
    parse(value).ok_or_else(|| Status::invalid_argument(format!("unknown {field} {value:?}")))
}

fn binding(acl: pb::Acl) -> Result<AclBinding, Status> {
    let binding = AclBinding {
        resource_type: named("resource type", &acl.resource_type, ResourceType::Any, ResourceType::from_name)?,
        resource_name: acl.resource_name,
        pattern_type: named("pattern type", &acl.pattern_type, PatternType::Literal, PatternType::from_name)?,
        principal: acl.principal,
        host: if acl.host.is_empty() { WILDCARD.to_string() } else { acl.host },
        operation: named("operation", &acl.operation, Operation::Any, Operation::from_name)?,
        permission: named("permission", &acl.permission, Permission::Allow, Permission::from_name)?,
    };
    match binding.invalid() {
        Some(why) => Err(Status::invalid_argument(why)),
        None => Ok(binding),
    }
}

fn filter(f: pb::AclFilter) -> Result<AclFilter, Status> {
    let some = |s: String| (!s.is_empty()).then_some(s);
    Ok(AclFilter {
        resource_type: named("resource type", &f.resource_type, ResourceType::Any, ResourceType::from_name)?,
        resource_name: some(f.resource_name),
        pattern_type: named("pattern type", &f.pattern_type, PatternType::Any, PatternType::from_name)?,
        principal: some(f.principal),
        host: some(f.host),
        operation: named("operation", &f.operation, Operation::Any, Operation::from_name)?,
        permission: named("permission", &f.permission, Permission::Any, Permission::from_name)?,
        kafka_types_only: false,
    })
}

fn acl_pb(b: &AclBinding) -> pb::Acl {
    pb::Acl {
        resource_type: b.resource_type.name().into(),
        resource_name: b.resource_name.clone(),
        pattern_type: b.pattern_type.name().into(),
        principal: b.principal.clone(),
        host: b.host.clone(),
        operation: b.operation.name().into(),
        permission: b.permission.name().into(),
    }
}

#[tonic::async_trait]
impl AclService for SecurityApi {
    async fn list_acls(&self, request: Request<pb::AclFilter>) -> Answer<pb::ListAclsResponse> {
        self.authorizer_on()?;
        self.on_cluster(&request, Operation::Describe).await?;
        let wanted = filter(request.into_inner())?;
        self.broker.authorizer.refresh(self.broker.storage().as_ref()).await.map_err(to_status)?;
        let acls = self.broker.authorizer.bindings().iter().filter(|b| wanted.matches(b)).map(acl_pb).collect();
        Ok(Response::new(pb::ListAclsResponse { acls }))
    }

    async fn create_acls(&self, request: Request<pb::CreateAclsRequest>) -> Answer<pb::CreateAclsResponse> {
        self.authorizer_on()?;
        self.on_cluster(&request, Operation::Alter).await?;
        let bindings = request.into_inner().acls.into_iter().map(binding).collect::<Result<Vec<_>, _>>()?;
        self.broker.authorizer.create(self.broker.storage().as_ref(), &bindings).await.map_err(to_status)?;
        Ok(Response::new(pb::CreateAclsResponse {}))
    }

    async fn delete_acls(&self, request: Request<pb::AclFilter>) -> Answer<pb::ListAclsResponse> {
        self.authorizer_on()?;
        self.on_cluster(&request, Operation::Alter).await?;
        let wanted = filter(request.into_inner())?;
        let deleted = self.broker.authorizer.delete(self.broker.storage().as_ref(), &[wanted]).await.map_err(to_status)?;
        Ok(Response::new(pb::ListAclsResponse { acls: deleted.iter().flatten().map(acl_pb).collect() }))
    }
}
