//! The filter fields DescribeAcls and DeleteAcls share, read into an [`AclFilter`].

use crate::security::acl::{AclFilter, Operation, PatternType, Permission, ResourceType};

/// The filter of one request, or why its codes are not Kafka's.
pub fn filter(
    resource_type: i8,
    resource_name: Option<&str>,
    pattern_type: i8,
    principal: Option<&str>,
    host: Option<&str>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, String> {
    Ok(AclFilter {
        resource_type: ResourceType::from_code(resource_type)
            .filter(|t| t.is_kafka())
            .ok_or_else(|| format!("unknown resource type {resource_type}"))?,
        resource_name: resource_name.map(String::from),
        pattern_type: PatternType::from_code(pattern_type).ok_or_else(|| format!("unknown pattern type {pattern_type}"))?,
        principal: principal.map(String::from),
        host: host.map(String::from),
        operation: Operation::from_code(operation).ok_or_else(|| format!("unknown operation {operation}"))?,
        permission: Permission::from_code(permission).ok_or_else(|| format!("unknown permission type {permission}"))?,
        kafka_types_only: true,
    })
}
