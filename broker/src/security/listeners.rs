//! Listeners as Kafka names them: `--listeners PLAINTEXT://127.0.0.1:9092,SASL_SSL://:9093`,
//! each with a security protocol (its name, or what `--listener-security-protocol-map` says)
//! and the address clients are told (`--advertised-listeners`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::tls::ReloadingTls;
use crate::{BrokerError, Result};

/// How a listener's connections are secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(name: &str) -> Option<SecurityProtocol> {
        match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

/// A listener to bind, from the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub bind: SocketAddr,
}

/// A bound listener, as connections see it.
pub struct Listener {
    pub name: String,
    pub protocol: SecurityProtocol,
    /// The TLS acceptor of SSL and SASL_SSL listeners (reloaded as its files change).
    pub tls: Option<Arc<ReloadingTls>>,
}

impl Listener {
    pub fn new(spec: &ListenerSpec, tls: Option<Arc<ReloadingTls>>) -> Arc<Listener> {
        Arc::new(Listener { name: spec.name.clone(), protocol: spec.protocol, tls })
    }
}

/// Parses `--listeners` (`NAME://host:port,...`; an empty host is every interface) with the
/// protocol map (`NAME:PROTOCOL,...`; a listener named after a protocol needs no entry).
pub fn parse_listeners(listeners: &str, protocol_map: Option<&str>) -> Result<Vec<ListenerSpec>> {
    let map = parse_protocol_map(protocol_map.unwrap_or(""))?;
    let mut specs: Vec<ListenerSpec> = Vec::new();
    for entry in listeners.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, address) = split_listener(entry)?;
        let protocol = match map.get(&name) {
            Some(protocol) => *protocol,
            None => SecurityProtocol::parse(&name).ok_or_else(|| {
                BrokerError::Config(format!(
                    "listener {name:?} has no security protocol: name it after one (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) or map it with --listener-security-protocol-map"
                ))
            })?,
        };
        let bind = crate::config::parse_listen(address).map_err(|e| BrokerError::Config(format!("listener {entry:?}: {e}")))?;
        if specs.iter().any(|s| s.name == name) {
            return Err(BrokerError::Config(format!("listener {name:?} is given twice")));
        }
        if bind.port() != 0 && specs.iter().any(|s| s.bind == bind) {
            return Err(BrokerError::Config(format!("listeners {name:?} and another both bind {bind}")));
        }
        specs.push(ListenerSpec { name, protocol, bind });
    }
    if specs.is_empty() {
        return Err(BrokerError::Config("--listeners names no listener".into()));
    }
    Ok(specs)
}

/// Parses `--advertised-listeners` into host and port by listener name.
pub fn parse_advertised(advertised: &str) -> Result<HashMap<String, (String, i32)>> {
    let mut out = HashMap::new();
    for entry in advertised.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, address) = split_listener(entry)?;
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| BrokerError::Config(format!("advertised listener {entry:?} is not NAME://host:port")))?;
        let port: u16 = port.parse().map_err(|_| BrokerError::Config(format!("advertised listener {entry:?} has a bad port")))?;
        out.insert(name, (host.trim_matches(['[', ']']).to_string(), i32::from(port)));
    }
    Ok(out)
}

fn split_listener(entry: &str) -> Result<(String, &str)> {
    let (name, address) = entry
        .split_once("://")
        .ok_or_else(|| BrokerError::Config(format!("listener {entry:?} is not NAME://host:port")))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(BrokerError::Config(format!("listener name {name:?}: use letters, digits, _ and -")));
    }
    Ok((name.to_ascii_uppercase(), address))
}

fn parse_protocol_map(map: &str) -> Result<HashMap<String, SecurityProtocol>> {
    let mut out = HashMap::new();
    for entry in map.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| BrokerError::Config(format!("--listener-security-protocol-map entry {entry:?} is not NAME:PROTOCOL")))?;
        let protocol = SecurityProtocol::parse(protocol)
            .ok_or_else(|| BrokerError::Config(format!("unknown security protocol {protocol:?} for listener {name:?}")))?;
        out.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_take_their_protocol_from_their_name_or_the_map() {
        let specs = parse_listeners("PLAINTEXT://127.0.0.1:9092,internal://:9093", Some("INTERNAL:SASL_SSL")).expect("valid");
        assert_eq!(specs[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(specs[1].name, "INTERNAL");
        assert_eq!(specs[1].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(specs[1].bind.port(), 9093);
        assert!(specs[1].bind.ip().is_unspecified());
    }

    #[test]
    fn bad_listeners_are_refused_with_the_reason() {
        let error = |l: &str| parse_listeners(l, None).expect_err(l).to_string();
        assert!(error("FOO://127.0.0.1:1").contains("no security protocol"));
        assert!(error("SSL://127.0.0.1:1,SSL://127.0.0.1:2").contains("twice"));
        assert!(error("127.0.0.1:9092").contains("NAME://host:port"));
        assert!(error("PLAINTEXT://127.0.0.1:1,SSL://127.0.0.1:1").contains("both bind"));
        assert!(parse_listeners("A://:1", Some("A:TLS")).expect_err("bad protocol").to_string().contains("TLS"));
    }

    #[test]
    fn advertised_listeners_by_name() {
        let advertised = parse_advertised("SASL_SSL://broker.example:9093,PLAINTEXT://[::1]:9092").expect("valid");
        assert_eq!(advertised["SASL_SSL"], ("broker.example".to_string(), 9093));
        assert_eq!(advertised["PLAINTEXT"], ("::1".to_string(), 9092));
    }
}
