//! The ACL authorizer (`--authorizer acl`): decides each request's operations from the ACLs in
//! storage, as Kafka's StandardAuthorizer does. Deny wins over allow; a super user may do
//! anything; a resource no ACL covers is denied unless `--allow-everyone-if-no-acl-found`.
//!
//! ACLs are one document in the broker's storage, so brokers sharing a Postgres share them;
//! each broker keeps a copy in memory, read again every second and after its own changes.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ductstream_storage::Storage;

use super::acl::{AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType};
use super::Principal;
use crate::{documents, Result};

/// The storage document holding every ACL.
const KIND: &str = "acls";
const KEY: &str = "all";
/// How stale another broker's ACL changes may be here.
const REFRESH: Duration = Duration::from_secs(1);

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Stored {
    bindings: Vec<AclBinding>,
}

pub struct Authorizer {
    enabled: bool,
    super_users: HashSet<String>,
    allow_if_no_acl: bool,
    acls: RwLock<Arc<Vec<AclBinding>>>,
}

impl Authorizer {
    /// No authorizer: every request is allowed, and the ACL APIs answer SECURITY_DISABLED.
    pub fn disabled() -> Authorizer {
        Authorizer { enabled: false, super_users: HashSet::new(), allow_if_no_acl: true, acls: Default::default() }
    }

    /// `super_users` as Kafka writes them: `User:admin;User:ops`.
    pub fn new(super_users: &str, allow_if_no_acl: bool) -> Authorizer {
        let super_users = super_users.split(';').map(str::trim).filter(|u| !u.is_empty()).map(String::from).collect();
        Authorizer { enabled: true, super_users, allow_if_no_acl, acls: Default::default() }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `principal`, connected from `host`, may do `operation` on the named resource.
    pub fn authorize(&self, principal: &Principal, host: &str, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        if !self.enabled {
            return true;
        }
        let principal = principal.to_string();
        if self.super_users.contains(&principal) {
            return true;
        }
        let acls = self.bindings();
        let mut covered = false;
        let mut allowed = false;
        for binding in acls.iter().filter(|b| b.covers(resource_type, name)) {
            covered = true;
            if !binding.applies_to(&principal, host) {
                continue;
            }
            match binding.permission {
                Permission::Deny if binding.operation == Operation::All || binding.operation == operation => return false,
                Permission::Allow if binding.operation.allows(operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!covered && self.allow_if_no_acl)
    }

    /// Whether any resource of the type would allow `operation`, for checks Kafka makes "on
    /// any topic" (an idempotent producer that may write somewhere).
    pub fn allows_any(&self, principal: &Principal, host: &str, operation: Operation, resource_type: ResourceType) -> bool {
        if !self.enabled || self.super_users.contains(&principal.to_string()) {
            return true;
        }
        let acls = self.bindings();
        acls.iter().filter(|b| b.resource_type == resource_type).any(|b| {
            b.permission == Permission::Allow
                && b.applies_to(&principal.to_string(), host)
                && b.operation.allows(operation)
                && self.authorize(principal, host, operation, resource_type, &b.resource_name)
        })
    }

    /// Whether `principal` may do `operation` on every resource of the type whose name starts
    /// with `prefix` (a CDC flow writes topics it names as tables appear): some ALLOW must
    /// cover them all (a PREFIXED one on a prefix of `prefix`, or the literal `*`) and no DENY
    /// any of them; with `--allow-everyone-if-no-acl-found`, no ACL naming any of them will
    /// also do.
    pub fn authorize_prefix(&self, principal: &Principal, host: &str, operation: Operation, resource_type: ResourceType, prefix: &str) -> bool {
        if !self.enabled {
            return true;
        }
        let principal = principal.to_string();
        if self.super_users.contains(&principal) {
            return true;
        }
        let acls = self.bindings();
        let mut touched = false;
        let mut allowed = false;
        for binding in acls.iter().filter(|b| b.resource_type == resource_type) {
            let (covers_some, covers_all) = match binding.pattern_type {
                PatternType::Literal if binding.resource_name == super::acl::WILDCARD => (true, true),
                PatternType::Literal => (binding.resource_name.starts_with(prefix), false),
                PatternType::Prefixed => {
                    let all = prefix.starts_with(&binding.resource_name);
                    (all || binding.resource_name.starts_with(prefix), all)
                }
                PatternType::Any | PatternType::Match => (false, false),
            };
            touched |= covers_some;
            if !covers_some || !binding.applies_to(&principal, host) {
                continue;
            }
            match binding.permission {
                Permission::Deny if binding.operation == Operation::All || binding.operation == operation => return false,
                Permission::Allow if covers_all && binding.operation.allows(operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!touched && self.allow_if_no_acl)
    }

    /// The ACLs as last read.
    pub fn bindings(&self) -> Arc<Vec<AclBinding>> {
        match self.acls.read() {
            Ok(acls) => acls.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, bindings: Vec<AclBinding>) {
        let mut acls = match self.acls.write() {
            Ok(acls) => acls,
            Err(poisoned) => poisoned.into_inner(),
        };
        *acls = Arc::new(bindings);
    }

    /// Reads the ACLs from storage.
    pub async fn refresh(&self, storage: &dyn Storage) -> Result<()> {
        let stored: Stored = documents::load_or_default(storage, KIND, KEY, "ACLs").await?;
        self.replace(stored.bindings);
        Ok(())
    }

    /// Stores `bindings` (those already there are kept once).
    pub async fn create(&self, storage: &dyn Storage, bindings: &[AclBinding]) -> Result<()> {
        let (stored, ()) = documents::upsert(storage, KIND, KEY, |stored: &mut Stored| {
            for binding in bindings {
                if !stored.bindings.contains(binding) {
                    stored.bindings.push(binding.clone());
                }
            }
            Ok(())
        })
        .await?;
        self.replace(stored.bindings);
        Ok(())
    }

    /// Deletes the bindings each filter matches; returns them, per filter.
    pub async fn delete(&self, storage: &dyn Storage, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>> {
        let (stored, deleted) = documents::upsert(storage, KIND, KEY, |stored: &mut Stored| {
            let deleted: Vec<Vec<AclBinding>> =
                filters.iter().map(|f| stored.bindings.iter().filter(|b| f.matches(b)).cloned().collect()).collect();
            stored.bindings.retain(|b| !filters.iter().any(|f| f.matches(b)));
            Ok(deleted)
        })
        .await?;
        self.replace(stored.bindings);
        Ok(deleted)
    }

    /// Keeps the copy current with other brokers' changes until `stop`.
    pub async fn follow(self: Arc<Self>, storage: Arc<dyn Storage>, stop: tokio_util::sync::CancellationToken) {
        if !self.enabled {
            return;
        }
        loop {
            if let Err(e) = self.refresh(storage.as_ref()).await {
                tracing::warn!(error = %e, "cannot read the ACLs; keeping the last ones read");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(REFRESH) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(name: &str, pattern_type: PatternType, principal: &str, operation: Operation, permission: Permission) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission,
        }
    }

    #[test]
    fn deny_wins_super_users_pass_and_uncovered_resources_follow_the_flag() {
        let authorizer = Authorizer::new("User:admin", false);
        authorizer.replace(vec![
            acl("orders", PatternType::Prefixed, "User:*", Operation::Read, Permission::Allow),
            acl("orders-secret", PatternType::Literal, "User:bob", Operation::All, Permission::Deny),
        ]);
        let (alice, bob, admin) = (Principal::user("alice"), Principal::user("bob"), Principal::user("admin"));
        let can = |p: &Principal, op, name| authorizer.authorize(p, "10.0.0.1", op, ResourceType::Topic, name);
        assert!(can(&alice, Operation::Read, "orders-eu"));
        assert!(can(&alice, Operation::Describe, "orders-eu"));
        assert!(!can(&alice, Operation::Write, "orders-eu"));
        assert!(!can(&bob, Operation::Read, "orders-secret"));
        assert!(can(&bob, Operation::Read, "orders-eu"));
        assert!(!can(&alice, Operation::Read, "payments"));
        assert!(can(&admin, Operation::Delete, "payments"));
        assert!(authorizer.allows_any(&alice, "10.0.0.1", Operation::Read, ResourceType::Topic));
        assert!(!authorizer.allows_any(&alice, "10.0.0.1", Operation::Write, ResourceType::Topic));
        let open = Authorizer::new("", true);
        assert!(open.authorize(&alice, "10.0.0.1", Operation::Write, ResourceType::Topic, "payments"));
    }

    #[test]
    fn a_prefix_is_allowed_only_when_every_name_under_it_is() {
        let authorizer = Authorizer::new("", false);
        authorizer.replace(vec![
            acl("inventory", PatternType::Prefixed, "User:alice", Operation::Write, Permission::Allow),
            acl("inventory.secret", PatternType::Literal, "User:alice", Operation::Write, Permission::Deny),
            acl("billing.public.invoices", PatternType::Literal, "User:alice", Operation::Write, Permission::Allow),
        ]);
        let alice = Principal::user("alice");
        let can = |prefix| authorizer.authorize_prefix(&alice, "10.0.0.1", Operation::Write, ResourceType::Topic, prefix);
        assert!(can("inventory.public."), "a prefixed ALLOW on a shorter prefix covers it");
        assert!(!can("inventory."), "a DENY on one name under the prefix refuses it");
        assert!(!can("billing."), "an ALLOW on one name under it is not all of them");
        assert!(!can("other."), "nothing covers it");
        let open = Authorizer::new("", true);
        assert!(open.authorize_prefix(&alice, "10.0.0.1", Operation::Write, ResourceType::Topic, "other."));
        open.replace(vec![acl("other.t", PatternType::Literal, "User:bob", Operation::Read, Permission::Allow)]);
        assert!(!open.authorize_prefix(&alice, "10.0.0.1", Operation::Write, ResourceType::Topic, "other."), "an ACL names a topic under it");
    }
}
