//! DescribeUserScramCredentials (v0): which SCRAM mechanisms each user has a credential for,
//! and with how many iterations (never the credential).

use std::collections::HashSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{CredentialInfo, DescribeUserScramCredentialsResult};
use kafka_protocol::messages::{DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{message, Ctx};
use crate::security::CLUSTER_DENIED;
use crate::security::acl::Operation;
use crate::security::credentials::{self, ScramMechanism, UserCredentials};
use crate::Result;

pub async fn handle(ctx: &Ctx, request: DescribeUserScramCredentialsRequest) -> DescribeUserScramCredentialsResponse {
    if !ctx.allowed_on_cluster(Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ctx.code(ResponseError::ClusterAuthorizationFailed))
            .with_error_message(Some(StrBytes::from_static_str(CLUSTER_DENIED)));
    }
    match describe(ctx, request).await {
        Ok(results) => DescribeUserScramCredentialsResponse::default().with_results(results),
        Err(e) => DescribeUserScramCredentialsResponse::default().with_error_code(ctx.error_code(&e)).with_error_message(message(&e)),
    }
}

async fn describe(ctx: &Ctx, request: DescribeUserScramCredentialsRequest) -> Result<Vec<DescribeUserScramCredentialsResult>> {
    let asked: Vec<String> = request.users.unwrap_or_default().into_iter().map(|u| u.name.to_string()).collect();
    // No names (null or empty) means every user.
    if asked.is_empty() {
        let users = credentials::users(&ctx.broker).await?;
        return Ok(users.into_iter().map(|(name, stored)| found(&name, &stored)).collect());
    }
    let mut seen = HashSet::new();
    let duplicated: HashSet<&String> = asked.iter().filter(|name| !seen.insert(*name)).collect();
    let mut results = Vec::new();
    let mut answered = HashSet::new();
    for name in &asked {
        if !answered.insert(name) {
            continue;
        }
        let result = if duplicated.contains(name) {
            failed(ctx, name, ResponseError::DuplicateResource, "Cannot describe SCRAM credentials for the same user twice in a single request")
        } else {
            match credentials::user(&ctx.broker, name).await? {
                Some(stored) => found(name, &stored),
                None => failed(ctx, name, ResponseError::ResourceNotFound, "Attempt to describe a user credential that does not exist"),
            }
        };
        results.push(result);
    }
    Ok(results)
}

fn found(name: &str, stored: &UserCredentials) -> DescribeUserScramCredentialsResult {
    let infos = ScramMechanism::ALL
        .into_iter()
        .filter_map(|m| stored.get(m).map(|c| CredentialInfo::default().with_mechanism(m.code()).with_iterations(c.iterations as i32)))
        .collect();
    DescribeUserScramCredentialsResult::default().with_user(StrBytes::from_string(name.to_string())).with_credential_infos(infos)
}

fn failed(ctx: &Ctx, name: &str, code: ResponseError, why: &'static str) -> DescribeUserScramCredentialsResult {
    DescribeUserScramCredentialsResult::default()
        .with_user(StrBytes::from_string(name.to_string()))
        .with_error_code(ctx.code(code))
        .with_error_message(Some(StrBytes::from_static_str(why)))
}
