//! Where the source database is and how to open connections to it: normal SQL connections
//! (tokio-postgres) and raw streams for the replication protocol.

use std::path::PathBuf;

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

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
    /// TLS is not supported yet: connections are plain TCP or a Unix socket.
    pub fn parse(dsn: &str) -> Result<Self> {
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
        Ok(SourceConfig { config, user })
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
            self.config.connect(NoTls).await.map_err(|e| CdcError::from_pg(e, &self.user))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "source connection ended");
            }
        });
        Ok(client)
    }

    /// Opens a byte stream to the first reachable host, for the replication protocol.
    pub(crate) async fn transport(&self) -> Result<Box<dyn Transport>> {
        let ports = self.config.get_ports();
        let mut last = None;
        for (i, host) in self.config.get_hosts().iter().enumerate() {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            let attempt: std::io::Result<Box<dyn Transport>> = match host {
                Host::Tcp(name) => match tokio::net::TcpStream::connect((name.as_str(), port)).await {
                    Ok(stream) => {
                        stream.set_nodelay(true)?;
                        Ok(Box::new(stream))
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
