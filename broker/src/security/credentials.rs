//! SCRAM credentials in the broker's storage (shared by brokers on one Postgres): per user and
//! mechanism a salt, an iteration count and the two keys RFC 5802 derives from the password.
//! The password itself is never stored, and cannot be recovered from what is.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::{digest, hmac, pbkdf2};
use serde::{Deserialize, Serialize};

use crate::{documents, Broker, BrokerError, Result};

/// The storage document kind, keyed by user name.
const KIND: &str = "scram_credentials";

/// Kafka's bounds on SCRAM iterations (`AlterUserScramCredentials` refuses others).
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;

/// The SCRAM mechanisms, with the codes Kafka's admin APIs give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.code() == code)
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    /// `Hi(password, salt, iterations)`: PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let algorithm = match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        };
        let mut out = vec![0u8; self.digest().output_len()];
        let rounds = std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        pbkdf2::derive(algorithm, rounds, salt, password, &mut out);
        out
    }

    pub fn hmac_sign(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data).as_ref().to_vec()
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest(), data).as_ref().to_vec()
    }
}

/// What is kept of one user's password for one mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// Base64, as everything binary here.
    pub salt: String,
    pub iterations: u32,
    pub stored_key: String,
    pub server_key: String,
}

impl ScramCredential {
    /// The credential for a salted password (what Kafka's AlterUserScramCredentials carries).
    pub fn from_salted_password(mechanism: ScramMechanism, salt: &[u8], iterations: u32, salted: &[u8]) -> ScramCredential {
        let client_key = mechanism.hmac_sign(salted, b"Client Key");
        ScramCredential {
            salt: BASE64.encode(salt),
            iterations,
            stored_key: BASE64.encode(mechanism.hash(&client_key)),
            server_key: BASE64.encode(mechanism.hmac_sign(salted, b"Server Key")),
        }
    }

    /// A new credential for `password`, with a random salt.
    pub fn new(mechanism: ScramMechanism, password: &str, iterations: u32) -> Result<ScramCredential> {
        let salt = random_bytes::<24>()?;
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        Ok(ScramCredential::from_salted_password(mechanism, &salt, iterations, &salted))
    }

    pub fn salt_bytes(&self) -> Result<Vec<u8>> {
        decode(&self.salt)
    }

    pub fn stored_key_bytes(&self) -> Result<Vec<u8>> {
        decode(&self.stored_key)
    }

    pub fn server_key_bytes(&self) -> Result<Vec<u8>> {
        decode(&self.server_key)
    }

    /// Whether `password` is the one this credential was made from (for SASL/PLAIN).
    pub fn matches(&self, mechanism: ScramMechanism, password: &str) -> Result<bool> {
        let salted = mechanism.salted_password(password.as_bytes(), &self.salt_bytes()?, self.iterations);
        let stored = mechanism.hash(&mechanism.hmac_sign(&salted, b"Client Key"));
        Ok(constant_time_eq(&stored, &self.stored_key_bytes()?))
    }
}

/// One user's credentials, by mechanism.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserCredentials {
    pub scram: BTreeMap<String, ScramCredential>,
}

impl UserCredentials {
    pub fn get(&self, mechanism: ScramMechanism) -> Option<&ScramCredential> {
        self.scram.get(mechanism.name())
    }
}

/// A user's credentials; None for a user without any.
pub async fn user(broker: &Broker, name: &str) -> Result<Option<UserCredentials>> {
    match broker.storage().document(KIND, name).await? {
        Some(bytes) => {
            let credentials: UserCredentials = serde_json::from_slice(&bytes)
                .map_err(|e| BrokerError::Config(format!("stored credentials of {name:?} are unreadable: {e}")))?;
            Ok((!credentials.scram.is_empty()).then_some(credentials))
        }
        None => Ok(None),
    }
}

/// Whether `password` is `name`'s, checked against whichever SCRAM credential the user has
/// (for logins that carry the password itself: SASL/PLAIN, the gRPC API's Basic scheme).
pub async fn check_password(broker: &Broker, name: &str, password: &str) -> Result<bool> {
    let Some(stored) = user(broker, name).await? else {
        return Ok(false);
    };
    match ScramMechanism::ALL.into_iter().find_map(|m| stored.get(m).map(|c| (m, c))) {
        Some((mechanism, credential)) => credential.matches(mechanism, password),
        None => Ok(false),
    }
}

/// Every user with credentials, by name.
pub async fn users(broker: &Broker) -> Result<Vec<(String, UserCredentials)>> {
    let mut out = Vec::new();
    for (name, bytes) in broker.storage().documents(KIND).await? {
        if let Ok(credentials) = serde_json::from_slice::<UserCredentials>(&bytes)
            && !credentials.scram.is_empty()
        {
            out.push((name, credentials));
        }
    }
    Ok(out)
}

/// Sets (Some) or removes (None) a user's credential for one mechanism; returns whether the
/// user had one for it.
pub async fn set(broker: &Broker, name: &str, mechanism: ScramMechanism, credential: Option<ScramCredential>) -> Result<bool> {
    let (_, had) = documents::upsert(broker.storage().as_ref(), KIND, name, |user: &mut UserCredentials| {
        Ok(match &credential {
            Some(credential) => user.scram.insert(mechanism.name().to_string(), credential.clone()).is_some(),
            None => user.scram.remove(mechanism.name()).is_some(),
        })
    })
    .await?;
    Ok(had)
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut out)
        .map_err(|_| BrokerError::Config("the system random source failed".into()))?;
    Ok(out)
}

fn decode(text: &str) -> Result<Vec<u8>> {
    BASE64.decode(text).map_err(|e| BrokerError::Config(format!("stored credential is not base64: {e}")))
}

/// Compares without an early exit, so timing says nothing about where secrets differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_checks_its_password_and_no_other() {
        for mechanism in ScramMechanism::ALL {
            let credential = ScramCredential::new(mechanism, "pencil", MIN_ITERATIONS).expect("credential");
            assert!(credential.matches(mechanism, "pencil").expect("check"));
            assert!(!credential.matches(mechanism, "pencil2").expect("check"));
            assert_eq!(ScramMechanism::from_code(mechanism.code()), Some(mechanism));
        }
    }

    #[test]
    fn keys_match_rfc_7677s_example() {
        // RFC 7677 section 3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096.
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let salted = ScramMechanism::Sha256.salted_password(b"pencil", &salt, 4096);
        let credential = ScramCredential::from_salted_password(ScramMechanism::Sha256, &salt, 4096, &salted);
        let server_key = credential.server_key_bytes().expect("key");
        // The example's server signature over its AuthMessage.
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let signature = ScramMechanism::Sha256.hmac_sign(&server_key, auth.as_bytes());
        assert_eq!(BASE64.encode(signature), "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }
}
