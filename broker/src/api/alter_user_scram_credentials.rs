//! AlterUserScramCredentials (v0): sets and deletes SCRAM credentials. The client salts the
//! password itself (`kafka-configs --alter --add-config 'SCRAM-SHA-256=[password=...]'`); the
//! broker keeps the keys derived from the salted password. A user with one bad alteration gets
//! its error and none of its alterations applied.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::security::CLUSTER_DENIED;
use crate::security::acl::Operation;
use crate::security::credentials::{self, ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};

/// One alteration: a credential to set, or None to delete.
type Change = (i8, Option<ScramCredential>);

pub async fn handle(ctx: &Ctx, request: AlterUserScramCredentialsRequest) -> AlterUserScramCredentialsResponse {
    if !ctx.allowed_on_cluster(Operation::Alter) {
        // Every user named gets the refusal.
        let names: std::collections::BTreeSet<String> =
            request.deletions.iter().map(|d| d.name.to_string()).chain(request.upsertions.iter().map(|u| u.name.to_string())).collect();
        let results = names
            .into_iter()
            .map(|name| {
                AlterUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(name))
                    .with_error_code(ctx.code(ResponseError::ClusterAuthorizationFailed))
                    .with_error_message(Some(StrBytes::from_static_str(CLUSTER_DENIED)))
            })
            .collect();
        return AlterUserScramCredentialsResponse::default().with_results(results);
    }
    let mut by_user: BTreeMap<String, Result<Vec<Change>, (ResponseError, String)>> = BTreeMap::new();
    let mut seen = HashSet::new();
    let deletions = request.deletions.into_iter().map(|d| (d.name.to_string(), d.mechanism, None));
    let upsertions = request.upsertions.into_iter().map(|u| (u.name.to_string(), u.mechanism, Some((u.iterations, u.salt, u.salted_password))));
    for (name, mechanism, upsert) in deletions.chain(upsertions) {
        let checked = check(&name, mechanism, upsert, &mut seen);
        let entry = by_user.entry(name).or_insert_with(|| Ok(Vec::new()));
        match (entry.as_mut(), checked) {
            (Ok(changes), Ok(change)) => changes.push(change),
            (Ok(_), Err(e)) => *entry = Err(e),
            (Err(_), _) => {} // the user's first error is the one reported
        }
    }
    let mut results = Vec::with_capacity(by_user.len());
    for (name, changes) in by_user {
        let outcome = match changes {
            Ok(changes) => apply(ctx, &name, changes).await,
            Err(e) => Err(e),
        };
        let result = AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(name));
        results.push(match outcome {
            Ok(()) => result,
            Err((code, why)) => result.with_error_code(ctx.code(code)).with_error_message(Some(StrBytes::from_string(why))),
        });
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn check(
    name: &str,
    code: i8,
    upsert: Option<(i32, bytes::Bytes, bytes::Bytes)>,
    seen: &mut HashSet<(String, i8)>,
) -> Result<Change, (ResponseError, String)> {
    let refuse = |code: ResponseError, why: &str| Err((code, why.to_string()));
    if name.is_empty() {
        return refuse(ResponseError::UnacceptableCredential, "Username must not be empty");
    }
    let Some(mechanism) = ScramMechanism::from_code(code) else {
        return refuse(ResponseError::UnsupportedSaslMechanism, "Unknown SCRAM mechanism");
    };
    if !seen.insert((name.to_string(), code)) {
        return refuse(ResponseError::DuplicateResource, "A user credential cannot be altered twice in the same request");
    }
    let Some((iterations, salt, salted_password)) = upsert else { return Ok((code, None)) };
    if iterations < MIN_ITERATIONS as i32 {
        return refuse(ResponseError::UnacceptableCredential, "Too few iterations");
    }
    if iterations > MAX_ITERATIONS as i32 {
        return refuse(ResponseError::UnacceptableCredential, "Too many iterations");
    }
    if salt.is_empty() || salted_password.is_empty() {
        return refuse(ResponseError::UnacceptableCredential, "Salt and salted password must not be empty");
    }
    Ok((code, Some(ScramCredential::from_salted_password(mechanism, &salt, iterations as u32, &salted_password))))
}

async fn apply(ctx: &Ctx, name: &str, changes: Vec<Change>) -> Result<(), (ResponseError, String)> {
    let stored = credentials::user(&ctx.broker, name).await.map_err(|e| (e.code(), e.to_string()))?;
    for (code, credential) in &changes {
        let Some(mechanism) = ScramMechanism::from_code(*code) else { continue };
        if credential.is_none() && stored.as_ref().and_then(|s| s.get(mechanism)).is_none() {
            return Err((ResponseError::ResourceNotFound, "Attempt to delete a user credential that does not exist".into()));
        }
    }
    for (code, credential) in changes {
        let Some(mechanism) = ScramMechanism::from_code(code) else { continue };
        credentials::set(&ctx.broker, name, mechanism, credential).await.map_err(|e| (e.code(), e.to_string()))?;
    }
    Ok(())
}
