//! OAuth 2 bearer tokens: JWTs signed by an identity provider, checked against its public
//! keys (from its JWKS endpoint, or a JWKS file read again when it changes, so keys rotate
//! without a restart; or one PEM public key), its issuer and audience, and their times. The
//! subject claim is the principal.
//! Serves SASL/OAUTHBEARER on Kafka listeners and `authorization: Bearer` on the gRPC API.
//!
//! Only asymmetric signatures (RS*, PS*, ES256/384, EdDSA): a shared secret would let every
//! broker mint tokens, and `none` proves nothing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::jwks_endpoint::{JwksEndpoint, MIN_BETWEEN_FETCHES};
use crate::{BrokerError, Result};

/// Where the keys come from and what a token must say (Kafka's `sasl.oauthbearer.*`).
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub jwks_endpoint_url: Option<String>,
    pub jwks_endpoint_refresh: Duration,
    pub jwks_endpoint_ca_file: Option<PathBuf>,
    pub jwks_file: Option<PathBuf>,
    pub public_key_file: Option<PathBuf>,
    pub expected_issuer: Option<String>,
    /// Any one of these must be in the token's `aud`; none: not checked.
    pub expected_audience: Vec<String>,
    pub sub_claim_name: String,
    pub clock_skew_s: u64,
}

/// A token that checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    pub subject: String,
    /// Its `exp`, in seconds since the Unix epoch.
    pub expires_at: u64,
}

struct Keys {
    /// Each key with its id (`kid`), if it has one.
    keys: Vec<(Option<String>, DecodingKey)>,
    stamp: Option<SystemTime>,
}

pub struct TokenValidator {
    settings: TokenSettings,
    keys: RwLock<Keys>,
    endpoint: Option<JwksEndpoint>,
}

impl std::fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenValidator").field("settings", &self.settings).finish_non_exhaustive()
    }
}

const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl TokenValidator {
    /// Reads the keys; a missing or unreadable key file is a configuration error. Keys from an
    /// endpoint come once [`TokenValidator::follow`] runs.
    pub fn load(settings: TokenSettings) -> Result<TokenValidator> {
        let sources = [settings.jwks_endpoint_url.is_some(), settings.jwks_file.is_some(), settings.public_key_file.is_some()];
        if sources.iter().filter(|given| **given).count() != 1 {
            return Err(BrokerError::Config(format!("OAUTHBEARER needs exactly one of {SOURCES}")));
        }
        if let Some(url) = &settings.jwks_endpoint_url {
            let endpoint = JwksEndpoint::new(url, settings.jwks_endpoint_refresh, settings.jwks_endpoint_ca_file.as_deref())?;
            let keys = RwLock::new(Keys { keys: Vec::new(), stamp: None });
            return Ok(TokenValidator { settings, keys, endpoint: Some(endpoint) });
        }
        let keys = read_keys(&settings)?;
        Ok(TokenValidator { settings, keys: RwLock::new(keys), endpoint: None })
    }

    /// Checks `token`; the error says why it is refused.
    pub async fn verify(&self, token: &str) -> std::result::Result<Verified, String> {
        self.reload_if_changed();
        let header = jsonwebtoken::decode_header(token).map_err(|e| match named_algorithm(token) {
            // An algorithm the library has no name for (`none` above all) gets the same answer.
            Some(alg) => format!("algorithm {alg:?} is not accepted: sign with RS*, PS*, ES256, ES384 or EdDSA"),
            None => format!("not a JWT: {e}"),
        })?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(format!("algorithm {:?} is not accepted: sign with RS*, PS*, ES256, ES384 or EdDSA", header.alg));
        }
        // A key not seen yet may be a rotation: ask the endpoint again (not too often).
        if self.endpoint.is_some() && !self.knows(header.kid.as_deref()) {
            self.fetch_keys().await;
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.clock_skew_s;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        if let Some(issuer) = &self.settings.expected_issuer {
            validation.set_issuer(&[issuer]);
        }
        if self.settings.expected_audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.settings.expected_audience);
        }
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        // The key the token names, else those with no name (a PEM key, an unnamed JWK).
        let candidates: Vec<&DecodingKey> = match &header.kid {
            Some(kid) => keys.keys.iter().filter(|(id, _)| id.is_none() || id.as_deref() == Some(kid)).map(|(_, k)| k).collect(),
            None => keys.keys.iter().map(|(_, k)| k).collect(),
        };
        if candidates.is_empty() {
            if keys.keys.is_empty() {
                return Err("the identity provider's keys could not be fetched yet".into());
            }
            return Err(format!("no key {:?} to check the signature with", header.kid.unwrap_or_default()));
        }
        let mut why = String::from("signature does not verify");
        for key in candidates {
            match jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, key, &validation) {
                Ok(data) => return self.verified(&data.claims),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind;
                    match e.kind() {
                        // Another key may be the one.
                        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => {}
                        ErrorKind::ExpiredSignature => return Err("token expired".into()),
                        ErrorKind::ImmatureSignature => return Err("token not valid yet (nbf)".into()),
                        ErrorKind::InvalidIssuer => return Err("unexpected issuer".into()),
                        ErrorKind::InvalidAudience => return Err("unexpected audience".into()),
                        ErrorKind::MissingRequiredClaim(claim) => return Err(format!("the token has no {claim} claim")),
                        _ => why = e.to_string(),
                    }
                }
            }
        }
        Err(why)
    }

    fn verified(&self, claims: &serde_json::Map<String, Value>) -> std::result::Result<Verified, String> {
        let name = &self.settings.sub_claim_name;
        let subject = match claims.get(name) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(format!("the token has no {name} claim to name its principal")),
        };
        let expires_at = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        Ok(Verified { subject, expires_at })
    }

    /// Whether a key could check a token naming `kid`.
    fn knows(&self, kid: Option<&str>) -> bool {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.keys.iter().any(|(id, _)| kid.is_none() || id.is_none() || id.as_deref() == kid)
    }

    /// Fetches the endpoint's keys (unless fetched moments ago); a failed fetch or a set
    /// with no usable key keeps the previous keys. Returns whether keys were replaced.
    async fn fetch_keys(&self) -> bool {
        let Some(endpoint) = &self.endpoint else { return false };
        let fetched = endpoint.fetch().await.and_then(|text| text.map(|t| parse_jwks(&t, endpoint.url(), None)).transpose());
        match fetched {
            Ok(Some(keys)) => {
                tracing::info!(jwks = endpoint.url(), keys = keys.keys.len(), "OAuth keys fetched");
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch the identity provider's keys; keeping the previous ones");
                false
            }
        }
    }

    /// Keeps the endpoint's keys current until `stop`: every refresh interval, and every few
    /// seconds until a first fetch succeeds. Nothing to do for keys from files.
    pub async fn follow(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let Some(endpoint) = &self.endpoint else { return };
        loop {
            let fetched = self.fetch_keys().await;
            let empty = self.keys.read().unwrap_or_else(|p| p.into_inner()).keys.is_empty();
            let next = if fetched || !empty { endpoint.refresh } else { MIN_BETWEEN_FETCHES };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(next) => {}
            }
        }
    }

    /// Reads the JWKS file again when it changed; a broken new file keeps the old keys.
    fn reload_if_changed(&self) {
        let Some(path) = &self.settings.jwks_file else { return };
        let now = modified(path);
        if self.keys.read().unwrap_or_else(|p| p.into_inner()).stamp == now {
            return;
        }
        match read_keys(&self.settings) {
            Ok(keys) => {
                tracing::info!(jwks = %path.display(), keys = keys.keys.len(), "OAuth keys reloaded");
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
            }
            Err(e) => tracing::warn!(error = %e, "the JWKS file changed but cannot be read; keeping the previous keys"),
        }
    }
}

/// The `alg` a token's header names, read without judging it.
fn named_algorithm(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header.trim_end_matches('=')).ok()?;
    let header: Value = serde_json::from_slice(&bytes).ok()?;
    header.get("alg")?.as_str().map(String::from)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read_keys(settings: &TokenSettings) -> Result<Keys> {
    let failed = |path: &Path, e: &dyn std::fmt::Display| BrokerError::Config(format!("OAuth keys {}: {e}", path.display()));
    if let Some(path) = &settings.jwks_file {
        let stamp = modified(path);
        let text = std::fs::read_to_string(path).map_err(|e| failed(path, &e))?;
        return parse_jwks(&text, &path.display().to_string(), stamp);
    }
    let Some(path) = &settings.public_key_file else {
        return Err(BrokerError::Config("no OAuth key configured".into()));
    };
    let pem = std::fs::read(path).map_err(|e| failed(path, &e))?;
    let key = DecodingKey::from_rsa_pem(&pem)
        .or_else(|_| DecodingKey::from_ec_pem(&pem))
        .or_else(|_| DecodingKey::from_ed_pem(&pem))
        .map_err(|e| failed(path, &format!("not an RSA, EC or Ed25519 public key in PEM: {e}")))?;
    Ok(Keys { keys: vec![(None, key)], stamp: None })
}

/// A JWKS document's usable keys (`origin` names it in errors).
fn parse_jwks(text: &str, origin: &str, stamp: Option<SystemTime>) -> Result<Keys> {
    let failed = |e: &dyn std::fmt::Display| BrokerError::Config(format!("OAuth keys {origin}: {e}"));
    let set: JwkSet = serde_json::from_str(text).map_err(|e| failed(&e))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        // Keys of kinds we do not verify with (e.g. symmetric ones) are skipped.
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            keys.push((jwk.common.key_id.clone(), key));
        }
    }
    if keys.is_empty() {
        return Err(failed(&"no usable public key in the set"));
    }
    Ok(Keys { keys, stamp })
}

/// The flags that give keys, for errors.
pub const SOURCES: &str = "--sasl-oauthbearer-jwks-endpoint-url, --sasl-oauthbearer-jwks-file and --sasl-oauthbearer-public-key-file";
