//! Where the source database is and how to open connections to it: normal SQL connections
//! (tokio-postgres) and raw streams for the replication protocol.

use std::path::PathBuf;

use ductstream_pgtls::{MakeRustlsConnect, Negotiated, TlsError, TlsSettings};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config};

use crate::error::{CdcError, Result};
use crate::pgwire::Transport;

/// Session settings that fix the text form of values, so decoding does not depend on the
/// server's configuration: ISO dates, UTC time stamps, ISO 8601 intervals, hex bytea.
pub(crate) const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("DateStyle", "ISO, YMD"),
    ("TimeZone", "UTC"),
    ("IntervalStyle", "iso_8601"),
    ("bytea_output", "hex"),
    ("extra_float_digits", "1"),
    ("client_encoding", "UTF8"),
];

/// A parsed connection string.
#[derive(Clone)]
pub struct SourceConfig {
    config: Config,
    user: String,
    tls: TlsSettings,
    connector: MakeRustlsConnect,
}

impl std::fmt::Debug for SourceConfig {
    // The password stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceConfig")
            .field("user", &self.user)
            .field("dbname", &self.config.get_dbname())
            .field("hosts", &self.config.get_hosts())
            .field("ports", &self.config.get_ports())
            .finish()
    }
}

impl SourceConfig {
    /// Parses a URL (`postgres://user:pw@host:port/db`) or `key=value` connection string.
    /// `sslmode` and `sslrootcert` work as with libpq; TCP connections try TLS by default
    /// (`prefer`), Unix sockets never use it.
    pub fn parse(dsn: &str) -> Result<Self> {
        let (dsn, tls) = ductstream_pgtls::split_dsn(dsn).map_err(|e| CdcError::option("dsn", e.to_string()))?;
        let connector = tls.connector().map_err(|e| CdcError::option("dsn", e.to_string()))?;
        let mut config: Config = dsn.parse().map_err(|e| CdcError::option("dsn", format!("{e}")))?;
        let user = config
            .get_user()
            .map(str::to_string)
            .ok_or_else(|| CdcError::option("dsn", "no user given (postgres://USER@host/db)"))?;
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        let mut options = config.get_options().unwrap_or_default().to_string();
        for (name, value) in SESSION_SETTINGS {
            if *name != "client_encoding" {
                options.push_str(&format!(" -c {name}={}", value.replace(' ', "\\ ")));
            }
        }
        config.options(options.trim());
        Ok(SourceConfig { config, user, tls, connector })
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or(&self.user)
    }

    pub(crate) fn password(&self) -> Option<&[u8]> {
        self.config.get_password()
    }

    /// Opens a normal SQL connection; its driver task runs on the runtime until the client drops.
    pub async fn connect(&self) -> Result<Client> {
        let (client, connection) =
            self.config.connect(self.connector.clone()).await.map_err(|e| CdcError::from_pg(e, &self.user))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "source connection ended");
            }
        });
        Ok(client)
    }

    /// Opens a byte stream to the first reachable host, for the replication protocol, with
    /// TLS negotiated on TCP as `sslmode` says.
    pub(crate) async fn transport(&self) -> Result<Box<dyn Transport>> {
        let ports = self.config.get_ports();
        let mut last = None;
        for (i, host) in self.config.get_hosts().iter().enumerate() {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            let attempt: std::io::Result<Box<dyn Transport>> = match host {
                Host::Tcp(name) => match tokio::net::TcpStream::connect((name.as_str(), port)).await {
                    Ok(stream) => {
                        stream.set_nodelay(true)?;
                        return match ductstream_pgtls::negotiate(stream, name, &self.tls, &self.connector).await {
                            Ok(Negotiated::Plain(stream)) => Ok(Box::new(stream)),
                            Ok(Negotiated::Tls(stream)) => Ok(Box::new(stream)),
                            Err(TlsError::Refused(mode)) => Err(CdcError::option(
                                "dsn",
                                format!("the source does not accept TLS connections, and sslmode is {mode}"),
                            )),
                            Err(e) => Err(CdcError::Io(std::io::Error::other(format!("TLS with the source: {e}")))),
                        };
                    }
                    Err(e) => Err(e),
                },
                Host::Unix(dir) => {
                    let path: PathBuf = dir.join(format!(".s.PGSQL.{port}"));
                    tokio::net::UnixStream::connect(path).await.map(|s| Box::new(s) as Box<dyn Transport>)
                }
            };
            match attempt {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(CdcError::Io(last.unwrap_or_else(|| std::io::Error::other("no host in the dsn"))))
    }
}
