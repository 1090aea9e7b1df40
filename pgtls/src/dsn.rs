//! `sslmode` and `sslrootcert` out of a connection string, in URL or `key=value` form.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{MakeRustlsConnect, TlsError};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain connections only.
    Disable,
    /// TLS when the server offers it, else plain; the certificate is not checked.
    Prefer,
    /// TLS or nothing; the certificate is not checked, unless `sslrootcert` is given (then as
    /// `verify-ca`, as libpq does).
    Require,
    /// TLS, with a certificate signed by a trusted root.
    VerifyCa,
    /// TLS, with a certificate signed by a trusted root and naming the host connected to.
    VerifyFull,
}

impl SslMode {
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Result<SslMode, TlsError> {
        [SslMode::Disable, SslMode::Prefer, SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull]
            .into_iter()
            .find(|m| m.name() == value)
            .ok_or_else(|| {
                TlsError::Parameter("sslmode", format!("{value:?} (disable, prefer, require, verify-ca or verify-full)"))
            })
    }

    /// The mode tokio-postgres is told: whether to ask for TLS, and whether to insist.
    fn for_tokio_postgres(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => "require",
        }
    }

    /// Whether a server that refuses TLS may be talked to in plain text.
    pub fn allows_plain(self) -> bool {
        matches!(self, SslMode::Disable | SslMode::Prefer)
    }
}

/// What a connection string says about TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

impl TlsSettings {
    /// The connector for tokio-postgres; it reads `sslrootcert` (or the system's roots) now,
    /// so a bad file is an error here rather than at the first connect.
    pub fn connector(&self) -> Result<MakeRustlsConnect, TlsError> {
        Ok(MakeRustlsConnect::new(Arc::new(crate::verify::client_config(self)?)))
    }
}

/// Splits `dsn` into the connection string tokio-postgres accepts (with an `sslmode` it knows)
/// and the TLS settings.
pub fn split_dsn(dsn: &str) -> Result<(String, TlsSettings), TlsError> {
    let mut mode = None;
    let mut root_cert = None;
    let mut take = |key: &str, value: String| -> Result<bool, TlsError> {
        match key {
            "sslmode" => mode = Some(SslMode::parse(&value)?),
            "sslrootcert" => root_cert = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let url = dsn.starts_with("postgres://") || dsn.starts_with("postgresql://");
    let (base, mut kept) = if url {
        let (base, query) = dsn.split_once('?').unwrap_or((dsn, ""));
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(key, percent_decode(value)?)? {
                kept.push(pair.to_string());
            }
        }
        (Some(base), kept)
    } else {
        let mut kept = Vec::new();
        for token in dsn.split_whitespace() {
            let (key, value) = token.split_once('=').unwrap_or((token, ""));
            if !take(key.trim(), value.trim_matches('\'').to_string())? {
                kept.push(token.to_string());
            }
        }
        (None, kept)
    };
    let settings = TlsSettings { mode: mode.unwrap_or(SslMode::Prefer), root_cert };
    kept.push(format!("sslmode={}", settings.mode.for_tokio_postgres()));
    let rest = match base {
        Some(base) => format!("{base}?{}", kept.join("&")),
        None => kept.join(" "),
    };
    Ok((rest, settings))
}

/// `%XX` escapes of a URL query value.
fn percent_decode(value: &str) -> Result<String, TlsError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            let byte = hex.ok_or_else(|| TlsError::Parameter("query value", format!("bad escape in {value:?}")))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| TlsError::Parameter("query value", format!("{value:?} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(dsn: &str) -> (String, SslMode, Option<String>) {
        let (rest, settings) = split_dsn(dsn).unwrap_or_else(|e| panic!("{dsn}: {e}"));
        (rest, settings.mode, settings.root_cert.map(|p| p.display().to_string()))
    }

    #[test]
    fn urls_keep_other_parameters_and_get_a_mode_tokio_postgres_knows() {
        assert_eq!(split("postgres://u@h/db"), ("postgres://u@h/db?sslmode=prefer".into(), SslMode::Prefer, None));
        assert_eq!(
            split("postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x"),
            ("postgres://u@h/db?application_name=x&sslmode=require".into(), SslMode::VerifyFull, Some("/etc/ca.pem".into()))
        );
        assert_eq!(split("postgresql://u@h/db?sslmode=disable").1, SslMode::Disable);
    }

    #[test]
    fn key_value_strings_too() {
        assert_eq!(
            split("host=h user=u sslmode=verify-ca sslrootcert=/ca.pem dbname=d"),
            ("host=h user=u dbname=d sslmode=require".into(), SslMode::VerifyCa, Some("/ca.pem".into()))
        );
    }

    #[test]
    fn unknown_modes_are_refused() {
        assert!(matches!(split_dsn("postgres://u@h/db?sslmode=maybe"), Err(TlsError::Parameter("sslmode", _))));
        assert!(matches!(split_dsn("postgres://u@h/db?sslrootcert=%zz"), Err(TlsError::Parameter(..))));
    }
}
