//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), server side, without channel
//! binding (as Kafka). The client proves it knows the password; the server proves it holds
//! the credential; the password never crosses the wire.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{failed, malformed, Exchange, Step};
use crate::security::credentials::{self, constant_time_eq, random_bytes, ScramCredential, ScramMechanism, MIN_ITERATIONS};
use crate::security::Principal;
use crate::{Broker, Result};

pub struct Scram {
    mechanism: ScramMechanism,
    state: State,
}

enum State {
    First,
    Final(Box<Sent>),
    Ended,
}

/// What the server-first message committed to, for checking the client's final message.
struct Sent {
    user: String,
    /// The gs2 header the client's final message must carry back (`c=`).
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    client_nonce: String,
    nonce: String,
    /// None for an unknown user: the exchange goes on with made-up values and fails at the
    /// end, so a client cannot tell unknown users from wrong passwords.
    credential: Option<ScramCredential>,
}

impl Scram {
    pub fn new(mechanism: ScramMechanism) -> Scram {
        Scram { mechanism, state: State::First }
    }

    async fn first(&mut self, broker: &Broker, message: &str) -> Result<Step> {
        let name = self.mechanism.name();
        // gs2-header: a channel binding flag, an optional authzid, then the bare message.
        let (flag, rest) = message.split_once(',').ok_or_else(|| malformed(name, "no gs2 header"))?;
        if flag.starts_with("p=") {
            return Err(malformed(name, "channel binding is not supported"));
        }
        if flag != "n" && flag != "y" {
            return Err(malformed(name, "bad channel binding flag"));
        }
        let (authzid, bare) = rest.split_once(',').ok_or_else(|| malformed(name, "no authzid field"))?;
        let gs2_header = format!("{flag},{authzid},");
        let mut attributes = bare.split(',');
        let user = attributes
            .next()
            .and_then(|a| a.strip_prefix("n="))
            .map(decode_name)
            .ok_or_else(|| malformed(name, "no user name"))??;
        let client_nonce = attributes.next().and_then(|a| a.strip_prefix("r=")).ok_or_else(|| malformed(name, "no nonce"))?;
        if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',') {
            return Err(malformed(name, "bad nonce"));
        }
        for extension in attributes {
            if extension.starts_with("m=") {
                return Err(malformed(name, "mandatory extensions are not supported"));
            }
            if extension.starts_with("tokenauth=") {
                return Err(malformed(name, "delegation tokens are not supported"));
            }
        }
        if let Some(requested) = authzid.strip_prefix("a=")
            && decode_name(requested)? != user
        {
            return Err(malformed(name, "an authorization id other than the user is not supported"));
        }
        let credential = credentials::user(broker, &user).await?.and_then(|c| c.get(self.mechanism).cloned());
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (BASE64.encode(random_bytes::<24>()?), MIN_ITERATIONS),
        };
        // Letters and digits only, as Kafka makes them: older librdkafka (2.0) echoes a nonce
        // with `/` or `+` in it wrongly.
        let server_nonce: String = random_bytes::<20>()?.iter().map(|b| format!("{b:02x}")).collect();
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!("r={nonce},s={salt},i={iterations}");
        self.state = State::Final(Box::new(Sent {
            user,
            gs2_header,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            client_nonce: client_nonce.to_string(),
            nonce,
            credential,
        }));
        Ok(Step::Challenge(server_first.into_bytes()))
    }

    fn last(&self, message: &str) -> Result<Step> {
        let name = self.mechanism.name();
        let State::Final(sent) = &self.state else {
            return Err(malformed(name, "unexpected message"));
        };
        let Sent { user, gs2_header, client_first_bare, server_first, client_nonce, nonce, credential } = sent.as_ref();
        let (without_proof, proof) = message.rsplit_once(",p=").ok_or_else(|| malformed(name, "no proof"))?;
        let mut attributes = without_proof.split(',');
        let binding = attributes.next().and_then(|a| a.strip_prefix("c=")).ok_or_else(|| malformed(name, "no channel binding"))?;
        let echoed_nonce = attributes.next().and_then(|a| a.strip_prefix("r=")).ok_or_else(|| malformed(name, "no nonce"))?;
        // Why an exchange failed goes to the broker's debug log only: the client is told less.
        let refuse = |why: &str| {
            tracing::debug!(mechanism = name, user = %user, why, "SCRAM authentication refused");
            Err(failed(name))
        };
        if binding != BASE64.encode(gs2_header) {
            return refuse("the channel binding is not the gs2 header sent first");
        }
        // librdkafka before 2.6.1 puts its own nonce in front of the whole nonce once more
        // (its issue 4895); Kafka 3.8.1 to 3.9 accepted that, and so do we: the server's nonce
        // is still all there, so a replayed exchange is still refused.
        let echoed_by_old_librdkafka = echoed_nonce.strip_prefix(client_nonce.as_str()) == Some(nonce.as_str());
        if echoed_nonce != nonce && !echoed_by_old_librdkafka {
            return refuse("the nonce is not the one the server sent");
        }
        let proof = BASE64.decode(proof).map_err(|_| malformed(name, "proof is not base64"))?;
        let Some(credential) = credential else { return refuse("no such user or no credential for the mechanism") };
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let stored_key = credential.stored_key_bytes()?;
        let client_signature = self.mechanism.hmac_sign(&stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
        if proof.len() != client_signature.len() || !constant_time_eq(&self.mechanism.hash(&client_key), &stored_key) {
            return refuse("wrong proof (password)");
        }
        let server_signature = self.mechanism.hmac_sign(&credential.server_key_bytes()?, auth_message.as_bytes());
        Ok(Step::Done { principal: Principal::user(user.clone()), reply: format!("v={}", BASE64.encode(server_signature)).into_bytes(), expires_at: None })
    }
}

#[async_trait]
impl Exchange for Scram {
    fn mechanism(&self) -> &'static str {
        self.mechanism.name()
    }

    async fn step(&mut self, broker: &Broker, token: &[u8]) -> Result<Step> {
        let name = self.mechanism.name();
        let message = std::str::from_utf8(token).map_err(|_| malformed(name, "not UTF-8"))?;
        let step = match self.state {
            State::First => self.first(broker, message).await,
            State::Final(_) => self.last(message),
            State::Ended => Err(malformed(name, "the exchange is over")),
        };
        if !matches!(step, Ok(Step::Challenge(_))) {
            self.state = State::Ended;
        }
        step
    }
}

/// A SCRAM `saslname`: `=2C` is a comma and `=3D` an equals sign; any other `=` is an error.
fn decode_name(name: &str) -> Result<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("SCRAM", "bad escape in the user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(malformed("SCRAM", "empty user name"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_unescape() {
        assert_eq!(decode_name("a=2Cb=3Dc").expect("valid"), "a,b=c");
        assert!(decode_name("a=b").is_err());
        assert!(decode_name("").is_err());
    }
}
