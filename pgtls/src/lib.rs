//! TLS for connections to Postgres (broker storage and CDC sources), configured as with libpq:
//! `sslmode` (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`; `prefer` when
//! absent) and `sslrootcert` in the connection string.
//!
//! tokio-postgres knows only `disable`, `prefer` and `require`, and no `sslrootcert`:
//! [`split_dsn`] takes both out of the connection string and leaves a string tokio-postgres
//! accepts, and [`TlsSettings::connector`] gives the rustls connector that does what the mode
//! says. [`negotiate`] does the same for a raw stream (the CDC replication connection).

mod connect;
mod dsn;
mod verify;

pub use connect::{MakeRustlsConnect, RustlsStream, Negotiated, negotiate};
pub use dsn::{SslMode, TlsSettings, split_dsn};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("invalid {0} in the connection string: {1}")]
    Parameter(&'static str, String),
    #[error("cannot read sslrootcert {path}: {reason}")]
    RootCert { path: String, reason: String },
    #[error("no trusted root certificates for sslmode {0}: give sslrootcert=<file>")]
    NoRoots(&'static str),
    #[error("TLS set-up: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("the server does not accept TLS connections, and sslmode is {0}")]
    Refused(&'static str),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
