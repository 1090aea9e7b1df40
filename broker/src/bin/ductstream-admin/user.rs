//! `ductstream-admin user ...`: SCRAM users (for Kafka SASL logins and this CLI) through
//! UserService.

use clap::Subcommand;
use ductstream_proto::v1 as pb;
use ductstream_proto::v1::user_service_client::UserServiceClient;
use serde_json::json;

use crate::connect::{connect, Target};
use crate::flow::failed;
use crate::output::{self, Format};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Every user and the mechanisms they have credentials for.
    List,
    /// Create a user or change their password.
    Set {
        name: String,
        /// The password (or the environment variable DUCTSTREAM_NEW_PASSWORD).
        #[arg(long = "new-password", env = "DUCTSTREAM_NEW_PASSWORD", hide_env_values = true)]
        new_password: String,
        #[arg(long, default_value = "SCRAM-SHA-512", value_parser = ["SCRAM-SHA-256", "SCRAM-SHA-512"])]
        mechanism: String,
        #[arg(long, default_value_t = 4096)]
        iterations: u32,
    },
    /// Delete a user's credentials (of one mechanism with --mechanism).
    Delete {
        name: String,
        #[arg(long, value_parser = ["SCRAM-SHA-256", "SCRAM-SHA-512"])]
        mechanism: Option<String>,
    },
    /// The principal the broker sees this CLI as.
    Whoami,
}

fn print_users(format: Format, users: &[pb::User]) {
    let mechanisms = |u: &pb::User| u.credentials.iter().map(|c| format!("{} ({})", c.mechanism, c.iterations)).collect::<Vec<_>>().join(", ");
    let json = json!(users
        .iter()
        .map(|u| json!({
            "name": u.name,
            "credentials": u.credentials.iter().map(|c| json!({"mechanism": c.mechanism, "iterations": c.iterations})).collect::<Vec<_>>(),
        }))
        .collect::<Vec<_>>());
    let rows = users.iter().map(|u| vec![u.name.clone(), mechanisms(u)]).collect();
    output::print(format, &json, &["USER", "CREDENTIALS"], rows);
}

pub async fn run(target: &Target, command: UserCommand, format: Format) -> Result<(), String> {
    let mut client = UserServiceClient::new(connect(target).await?);
    match command {
        UserCommand::List => {
            let users = client.list_users(pb::ListUsersRequest {}).await.map_err(failed)?.into_inner().users;
            print_users(format, &users);
        }
        UserCommand::Set { name, new_password, mechanism, iterations } => {
            let request = pb::SetUserRequest { name, password: new_password, mechanism, iterations };
            let user = client.set_user(request).await.map_err(failed)?.into_inner();
            print_users(format, &[user]);
        }
        UserCommand::Delete { name, mechanism } => {
            let request = pb::DeleteUserRequest { name: name.clone(), mechanism: mechanism.unwrap_or_default() };
            let deleted = client.delete_user(request).await.map_err(failed)?.into_inner().deleted;
            if !deleted {
                return Err(format!("user {name:?} has no such credential"));
            }
            output::print(format, &json!({"deleted": name}), &["DELETED"], vec![vec![name]]);
        }
        UserCommand::Whoami => {
            let me = client.who_am_i(pb::WhoAmIRequest {}).await.map_err(failed)?.into_inner();
            let json = json!({"principal": me.principal, "authenticated_by": me.authenticated_by});
            output::print(format, &json, &["PRINCIPAL", "AUTHENTICATED BY"], vec![vec![me.principal, me.authenticated_by]]);
        }
    }
    Ok(())
}
