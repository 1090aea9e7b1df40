//! Kafka's ACL model: a binding is a resource pattern (type, name, literal or prefixed) and an
//! entry (principal, host, operation, allow or deny). Codes are Kafka's, so the admin APIs
//! carry them as they are.

use serde::{Deserialize, Serialize};

/// What an ACL protects (`ANY` only in filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    Any = 1,
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
    DelegationToken = 6,
    User = 7,
    /// DuctStream's own: a CDC flow, by id (managed over gRPC; Kafka's ACL APIs do not see it).
    Flow = 100,
    /// DuctStream's own: a sink, by id.
    Sink = 101,
}

/// How a binding's resource name matches (`ANY` and `MATCH` only in filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PatternType {
    Any = 1,
    Match = 2,
    Literal = 3,
    Prefixed = 4,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operation {
    Any = 1,
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
    CreateTokens = 13,
    DescribeTokens = 14,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    Any = 1,
    Deny = 2,
    Allow = 3,
}

/// The literal name that matches every resource of its type.
pub const WILDCARD: &str = "*";
/// The cluster resource's one name.
pub const CLUSTER_NAME: &str = "kafka-cluster";

macro_rules! codes {
    ($ty:ident { $($variant:ident = $code:literal),* $(,)? }) => {
        impl $ty {
            pub fn from_code(code: i8) -> Option<$ty> {
                match code {
                    $($code => Some($ty::$variant),)*
                    _ => None,
                }
            }

            pub fn code(self) -> i8 {
                self as i8
            }
        }
    };
}

codes!(ResourceType { Any = 1, Topic = 2, Group = 3, Cluster = 4, TransactionalId = 5, DelegationToken = 6, User = 7, Flow = 100, Sink = 101 });
codes!(PatternType { Any = 1, Match = 2, Literal = 3, Prefixed = 4 });
codes!(Operation {
    Any = 1, All = 2, Read = 3, Write = 4, Create = 5, Delete = 6, Alter = 7, Describe = 8, ClusterAction = 9,
    DescribeConfigs = 10, AlterConfigs = 11, IdempotentWrite = 12, CreateTokens = 13, DescribeTokens = 14,
});
codes!(Permission { Any = 1, Deny = 2, Allow = 3 });

/// Names as the CLI and the gRPC API write them (`transactional-id`, `describe-configs`).
macro_rules! names {
    ($ty:ident { $($variant:ident = $name:literal),* $(,)? }) => {
        impl $ty {
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)*
                }
            }

            /// In any case, with `_` for `-` as well.
            pub fn from_name(name: &str) -> Option<$ty> {
                let name = name.trim().to_ascii_lowercase().replace('_', "-");
                match name.as_str() {
                    $($name => Some($ty::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

names!(ResourceType {
    Any = "any", Topic = "topic", Group = "group", Cluster = "cluster", TransactionalId = "transactional-id",
    DelegationToken = "delegation-token", User = "user", Flow = "flow", Sink = "sink",
});
names!(PatternType { Any = "any", Match = "match", Literal = "literal", Prefixed = "prefixed" });
names!(Operation {
    Any = "any", All = "all", Read = "read", Write = "write", Create = "create", Delete = "delete", Alter = "alter",
    Describe = "describe", ClusterAction = "cluster-action", DescribeConfigs = "describe-configs",
    AlterConfigs = "alter-configs", IdempotentWrite = "idempotent-write", CreateTokens = "create-tokens",
    DescribeTokens = "describe-tokens",
});
names!(Permission { Any = "any", Deny = "deny", Allow = "allow" });

impl ResourceType {
    /// The operations that mean something for this type (Kafka's `AclEntry.supportedOperations`),
    /// which an authorized-operations bitfield reports on.
    pub fn supported_operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            ResourceType::Topic => &[Read, Write, Create, Describe, Delete, Alter, DescribeConfigs, AlterConfigs],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[Create, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, Alter, Describe],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            ResourceType::Flow | ResourceType::Sink => &[Create, Describe, Alter, Delete],
            ResourceType::Any => &[],
        }
    }

    /// Whether Kafka's ACL APIs know this type (flows and sinks are DuctStream's and stay out
    /// of them, so Kafka's tools never meet a type they cannot name).
    pub fn is_kafka(self) -> bool {
        !matches!(self, ResourceType::Flow | ResourceType::Sink)
    }
}

impl Operation {
    /// Whether an ALLOW of `self` allows `wanted`: ALL allows everything, and READ, WRITE,
    /// DELETE and ALTER imply DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS (as in Kafka).
    pub fn allows(self, wanted: Operation) -> bool {
        self == Operation::All
            || self == wanted
            || (wanted == Operation::Describe
                && matches!(self, Operation::Read | Operation::Write | Operation::Delete | Operation::Alter))
            || (wanted == Operation::DescribeConfigs && self == Operation::AlterConfigs)
    }
}

/// One stored ACL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `User:alice`, or `User:*` for every principal.
    pub principal: String,
    /// A client IP, or `*`.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Whether this binding is about `name` of `resource_type`.
    pub fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => self.resource_name == name || self.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&self.resource_name),
                PatternType::Any | PatternType::Match => false,
            }
    }

    /// Whether this binding names `principal` (or every principal) connecting from `host`.
    pub fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == "User:*") && (self.host == host || self.host == WILDCARD)
    }

    /// Why this binding cannot be stored, if it cannot.
    pub fn invalid(&self) -> Option<&'static str> {
        if matches!(self.resource_type, ResourceType::Any) {
            return Some("resource type ANY is only for filters");
        }
        if !matches!(self.pattern_type, PatternType::Literal | PatternType::Prefixed) {
            return Some("the pattern type must be LITERAL or PREFIXED");
        }
        if matches!(self.operation, Operation::Any) || matches!(self.permission, Permission::Any) {
            return Some("operation and permission ANY are only for filters");
        }
        if self.resource_name.is_empty() {
            return Some("the resource name must not be empty");
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Some("the cluster resource is named kafka-cluster");
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return Some("the principal must be Type:name, e.g. User:alice"),
        }
        if self.host.is_empty() || (self.host != WILDCARD && self.host.parse::<std::net::IpAddr>().is_err()) {
            return Some("the host must be an IP address or *");
        }
        None
    }
}

/// What DescribeAcls and DeleteAcls select bindings by; None fields match anything.
#[derive(Debug, Clone)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Operation,
    pub permission: Permission,
    /// Set for Kafka's ACL APIs: DuctStream's own types (flows, sinks) are not theirs to see.
    pub kafka_types_only: bool,
}

impl AclFilter {
    pub fn matches(&self, binding: &AclBinding) -> bool {
        if self.kafka_types_only && !binding.resource_type.is_kafka() {
            return false;
        }
        let resource_type = self.resource_type == ResourceType::Any || self.resource_type == binding.resource_type;
        let pattern = match (self.pattern_type, &self.resource_name) {
            (PatternType::Any, None) => true,
            (PatternType::Any, Some(name)) => &binding.resource_name == name,
            // MATCH: every binding that would apply to a resource of this name.
            (PatternType::Match, None) => true,
            (PatternType::Match, Some(name)) => binding.covers(binding.resource_type, name),
            (wanted, name) => wanted == binding.pattern_type && name.as_ref().is_none_or(|n| &binding.resource_name == n),
        };
        resource_type
            && pattern
            && self.principal.as_ref().is_none_or(|p| &binding.principal == p)
            && self.host.as_ref().is_none_or(|h| &binding.host == h)
            && (self.operation == Operation::Any || self.operation == binding.operation)
            && (self.permission == Permission::Any || self.permission == binding.permission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(name: &str, pattern_type: PatternType, operation: Operation) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type,
            principal: "User:alice".into(),
            host: "*".into(),
            operation,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn literal_wildcard_and_prefixed_names_cover_resources() {
        assert!(binding("orders", PatternType::Literal, Operation::Read).covers(ResourceType::Topic, "orders"));
        assert!(!binding("orders", PatternType::Literal, Operation::Read).covers(ResourceType::Topic, "orders2"));
        assert!(binding("*", PatternType::Literal, Operation::Read).covers(ResourceType::Topic, "anything"));
        assert!(binding("ord", PatternType::Prefixed, Operation::Read).covers(ResourceType::Topic, "orders"));
        assert!(!binding("ord", PatternType::Prefixed, Operation::Read).covers(ResourceType::Group, "orders"));
    }

    #[test]
    fn implied_operations_follow_kafka() {
        assert!(Operation::Read.allows(Operation::Describe));
        assert!(Operation::AlterConfigs.allows(Operation::DescribeConfigs));
        assert!(Operation::All.allows(Operation::Write));
        assert!(!Operation::Describe.allows(Operation::Read));
        assert!(!Operation::Write.allows(Operation::Read));
    }

    #[test]
    fn filters_select_by_each_field() {
        let b = binding("orders", PatternType::Prefixed, Operation::Write);
        let any = AclFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
            kafka_types_only: false,
        };
        assert!(any.matches(&b));
        let flow = AclBinding { resource_type: ResourceType::Flow, ..b.clone() };
        assert!(any.matches(&flow));
        assert!(!AclFilter { kafka_types_only: true, ..any.clone() }.matches(&flow));
        assert!(AclFilter { pattern_type: PatternType::Match, resource_name: Some("orders-eu".into()), ..any.clone() }.matches(&b));
        assert!(!AclFilter { pattern_type: PatternType::Literal, ..any.clone() }.matches(&b));
        assert!(!AclFilter { principal: Some("User:bob".into()), ..any.clone() }.matches(&b));
        assert!(AclFilter { operation: Operation::Write, ..any }.matches(&b));
    }

    #[test]
    fn bindings_are_checked_before_they_are_stored() {
        assert_eq!(binding("t", PatternType::Literal, Operation::Read).invalid(), None);
        assert!(binding("t", PatternType::Match, Operation::Read).invalid().is_some());
        assert!(binding("t", PatternType::Literal, Operation::Any).invalid().is_some());
        let mut bad_host = binding("t", PatternType::Literal, Operation::Read);
        bad_host.host = "example.com".into();
        assert!(bad_host.invalid().is_some());
    }
}
