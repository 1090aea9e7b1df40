//! Client quotas as Kafka configures them: an entity (a user, a client id, or both; each a
//! name or the default) with values for quota keys. Which entity applies to a request follows
//! Kafka's precedence, most specific first.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// Bytes per second a (user, client id) may produce.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
/// Bytes per second a (user, client id) may fetch.
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// The share of one request-handling thread's time a (user, client id) may take, in percent
/// (100 is a whole thread): every request's handling time counts against it.
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
/// Kafka's other user and client-id key: known, but not enforced here (topic creations and
/// deletions are rare), so refused rather than stored to no effect.
pub const NOT_ENFORCED: &[&str] = &["controller_mutation_rate"];

/// One side of an entity: a name, or the default for every name without its own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Name {
    Named(String),
    Default,
}

/// A user, a client id, or a user's client id (Kafka's entity types `user` and `client-id`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entity {
    pub user: Option<Name>,
    pub client_id: Option<Name>,
}

impl Entity {
    /// The entity's parts as Kafka lists them: (type, name or None for the default).
    pub fn parts(&self) -> Vec<(&'static str, Option<&str>)> {
        fn part<'a>(kind: &'static str, name: &'a Name) -> (&'static str, Option<&'a str>) {
            match name {
                Name::Named(n) => (kind, Some(n.as_str())),
                Name::Default => (kind, None),
            }
        }
        let mut out = Vec::new();
        if let Some(user) = &self.user {
            out.push(part(USER, user));
        }
        if let Some(client) = &self.client_id {
            out.push(part(CLIENT_ID, client));
        }
        out
    }
}

/// Every configured entity and its values, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QuotaConfig {
    pub entries: BTreeMap<String, (Entity, BTreeMap<String, f64>)>,
}

/// The stored key of an entity (JSON maps need string keys).
pub fn entity_key(entity: &Entity) -> String {
    serde_json::to_string(entity).unwrap_or_default()
}

/// The limit on `key` for a request by `user` with `client_id`, and the bucket it is counted
/// in: the most specific configured entity wins (Kafka's order: user and client id, user and
/// default client, user, default user and client id, default user and default client, default
/// user, client id, default client). A quota set for a user is shared by all their clients;
/// one set for the default user is each user's own, and likewise for client ids.
pub fn resolve(config: &QuotaConfig, key: &str, user: &str, client_id: &str) -> Option<(f64, String)> {
    let named = |n: &str| Some(Name::Named(n.to_string()));
    let order = [
        (named(user), named(client_id)),
        (named(user), Some(Name::Default)),
        (named(user), None),
        (Some(Name::Default), named(client_id)),
        (Some(Name::Default), Some(Name::Default)),
        (Some(Name::Default), None),
        (None, named(client_id)),
        (None, Some(Name::Default)),
    ];
    for (u, c) in order {
        let entity = Entity { user: u, client_id: c };
        if let Some((_, values)) = config.entries.get(&entity_key(&entity))
            && let Some(limit) = values.get(key)
        {
            let bucket = format!(
                "{key}\u{0}{}\u{0}{}",
                if entity.user.is_some() { user } else { "" },
                if entity.client_id.is_some() { client_id } else { "" }
            );
            return Some((*limit, bucket));
        }
    }
    None
}

/// How DescribeClientQuotas picks entities by one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Exact(String),
    Default,
    /// Any named (not default) entity of the type.
    Specified,
}

/// Whether `entity` passes the filter: it has each component's type with a matching name,
/// and, when `strict`, no other type.
pub fn matches(entity: &Entity, components: &[(String, Match)], strict: bool) -> bool {
    let parts = entity.parts();
    let each = components.iter().all(|(kind, wanted)| {
        parts.iter().any(|(k, name)| {
            *k == kind.as_str()
                && match (wanted, name) {
                    (Match::Exact(w), Some(n)) => w == n,
                    (Match::Default, None) => true,
                    (Match::Specified, Some(_)) => true,
                    _ => false,
                }
        })
    });
    each && (!strict || parts.len() == components.len())
}

/// Why `value` cannot be set for `key`, if it cannot.
pub fn invalid_value(key: &str, value: f64) -> Option<String> {
    if NOT_ENFORCED.contains(&key) {
        return Some(format!("{key} is not supported: DuctStream enforces producer_byte_rate, consumer_byte_rate and request_percentage"));
    }
    if key == REQUEST_PERCENTAGE {
        return (!(value.is_finite() && value > 0.0)).then(|| format!("{key} must be a percentage above 0"));
    }
    if key != PRODUCER_BYTE_RATE && key != CONSUMER_BYTE_RATE {
        return Some(format!("Invalid configuration key {key}"));
    }
    if !(value.is_finite() && value >= 1.0 && value.fract() == 0.0) {
        return Some(format!("{key} must be a whole number of bytes per second, at least 1"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(config: &mut QuotaConfig, user: Option<Name>, client_id: Option<Name>, rate: f64) {
        let entity = Entity { user, client_id };
        config.entries.insert(entity_key(&entity), (entity, BTreeMap::from([(PRODUCER_BYTE_RATE.to_string(), rate)])));
    }

    #[test]
    fn the_most_specific_entity_wins_and_names_the_bucket() {
        let mut config = QuotaConfig::default();
        assert_eq!(resolve(&config, PRODUCER_BYTE_RATE, "alice", "app"), None);
        set(&mut config, None, Some(Name::Default), 100.0);
        let (limit, default_client) = resolve(&config, PRODUCER_BYTE_RATE, "alice", "app").expect("default client");
        assert_eq!(limit, 100.0);
        // Each client id has its own bucket under the default.
        assert_ne!(default_client, resolve(&config, PRODUCER_BYTE_RATE, "alice", "other").expect("default").1);
        set(&mut config, Some(Name::Named("alice".into())), None, 200.0);
        let (limit, alice_app) = resolve(&config, PRODUCER_BYTE_RATE, "alice", "app").expect("alice");
        assert_eq!(limit, 200.0);
        // A user's quota is shared by all their clients.
        assert_eq!(alice_app, resolve(&config, PRODUCER_BYTE_RATE, "alice", "other").expect("alice").1);
        set(&mut config, Some(Name::Named("alice".into())), Some(Name::Named("app".into())), 300.0);
        assert_eq!(resolve(&config, PRODUCER_BYTE_RATE, "alice", "app").map(|r| r.0), Some(300.0));
        assert_eq!(resolve(&config, PRODUCER_BYTE_RATE, "bob", "app").map(|r| r.0), Some(100.0));
        assert_eq!(resolve(&config, CONSUMER_BYTE_RATE, "alice", "app"), None);
    }

    #[test]
    fn filters_match_names_defaults_and_strictness() {
        let both = Entity { user: Some(Name::Named("alice".into())), client_id: Some(Name::Default) };
        let user = |m| vec![(USER.to_string(), m)];
        assert!(matches(&both, &user(Match::Exact("alice".into())), false));
        assert!(!matches(&both, &user(Match::Exact("alice".into())), true));
        assert!(matches(&both, &user(Match::Specified), false));
        assert!(!matches(&both, &user(Match::Default), false));
        assert!(matches(&both, &[(CLIENT_ID.to_string(), Match::Default)], false));
        assert!(matches(&both, &[], false));
        assert!(!matches(&both, &[], true));
    }

    #[test]
    fn only_enforced_keys_with_positive_values() {
        assert_eq!(invalid_value(PRODUCER_BYTE_RATE, 1024.0), None);
        assert!(invalid_value(PRODUCER_BYTE_RATE, 0.0).is_some());
        assert!(invalid_value(CONSUMER_BYTE_RATE, 10.5).is_some());
        assert_eq!(invalid_value(REQUEST_PERCENTAGE, 0.5), None);
        assert!(invalid_value(REQUEST_PERCENTAGE, 0.0).is_some());
        assert!(invalid_value("controller_mutation_rate", 5.0).is_some());
        assert!(invalid_value("bogus", 1.0).is_some());
    }
}
