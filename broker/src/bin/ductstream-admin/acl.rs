//! `ductstream-admin acl ...`: ACLs through AclService, for Kafka's resources and for flows and
//! sinks, which Kafka's tools cannot name.

use clap::{Args, Subcommand};
use ductstream_proto::v1 as pb;
use ductstream_proto::v1::acl_service_client::AclServiceClient;
use serde_json::json;

use crate::connect::{connect, Target};
use crate::flow::failed;
use crate::output::{self, Format};

#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// ACLs matching the filter (every ACL without one).
    List(AclFields),
    /// Add one ACL, e.g. `acl add --resource-type flow --resource-name orders --principal
    /// User:alice --operation alter`.
    Add(AclFields),
    /// Remove every ACL matching the filter (give at least one field).
    Remove(AclFields),
}

/// One ACL, or a filter: empty fields match anything.
#[derive(Debug, Args)]
pub struct AclFields {
    /// topic, group, cluster, transactional-id, flow or sink.
    #[arg(long)]
    resource_type: Option<String>,
    /// The resource's name (kafka-cluster for the cluster; * for all of the type).
    #[arg(long)]
    resource_name: Option<String>,
    /// literal (the default for add) or prefixed; match in filters.
    #[arg(long)]
    pattern_type: Option<String>,
    /// User:alice, or User:*.
    #[arg(long)]
    principal: Option<String>,
    /// A client IP, or * (the default for add).
    #[arg(long)]
    host: Option<String>,
    /// all, read, write, create, delete, alter, describe, cluster-action, describe-configs,
    /// alter-configs, idempotent-write.
    #[arg(long)]
    operation: Option<String>,
    /// allow (the default for add) or deny.
    #[arg(long)]
    permission: Option<String>,
}

impl AclFields {
    fn acl(self) -> pb::Acl {
        pb::Acl {
            resource_type: self.resource_type.unwrap_or_default(),
            resource_name: self.resource_name.unwrap_or_default(),
            pattern_type: self.pattern_type.unwrap_or_default(),
            principal: self.principal.unwrap_or_default(),
            host: self.host.unwrap_or_default(),
            operation: self.operation.unwrap_or_default(),
            permission: self.permission.unwrap_or_default(),
        }
    }

    fn filter(self) -> pb::AclFilter {
        let a = self.acl();
        pb::AclFilter {
            resource_type: a.resource_type,
            resource_name: a.resource_name,
            pattern_type: a.pattern_type,
            principal: a.principal,
            host: a.host,
            operation: a.operation,
            permission: a.permission,
        }
    }
}

fn print_acls(format: Format, acls: &[pb::Acl]) {
    let json = json!(acls
        .iter()
        .map(|a| json!({
            "resource_type": a.resource_type, "resource_name": a.resource_name, "pattern_type": a.pattern_type,
            "principal": a.principal, "host": a.host, "operation": a.operation, "permission": a.permission,
        }))
        .collect::<Vec<_>>());
    let rows = acls
        .iter()
        .map(|a| {
            vec![
                a.resource_type.clone(),
                a.resource_name.clone(),
                a.pattern_type.clone(),
                a.principal.clone(),
                a.host.clone(),
                a.operation.clone(),
                a.permission.clone(),
            ]
        })
        .collect();
    output::print(format, &json, &["TYPE", "NAME", "PATTERN", "PRINCIPAL", "HOST", "OPERATION", "PERMISSION"], rows);
}

pub async fn run(target: &Target, command: AclCommand, format: Format) -> Result<(), String> {
    let mut client = AclServiceClient::new(connect(target).await?);
    match command {
        AclCommand::List(fields) => {
            let acls = client.list_acls(fields.filter()).await.map_err(failed)?.into_inner().acls;
            print_acls(format, &acls);
        }
        AclCommand::Add(fields) => {
            let acl = fields.acl();
            client.create_acls(pb::CreateAclsRequest { acls: vec![acl.clone()] }).await.map_err(failed)?;
            print_acls(format, &[acl]);
        }
        AclCommand::Remove(fields) => {
            let filter = fields.filter();
            if filter == pb::AclFilter::default() {
                return Err("give at least one field: an empty filter would remove every ACL".into());
            }
            let removed = client.delete_acls(filter).await.map_err(failed)?.into_inner().acls;
            print_acls(format, &removed);
        }
    }
    Ok(())
}
