//! A small connection pool: at most `size` connections, each with its prepared statements.
//!
//! A connection whose socket died (Postgres restarted, network cut) is dropped when it comes
//! back to the pool, or when it is found closed on checkout; the next checkout opens a fresh
//! one. So after a failure the caller gets one `StorageError::Engine` and a later call
//! reconnects by itself; while connecting fails, attempts are spaced out by [`Backoff`].

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use ductstream_pgtls::{MakeRustlsConnect, RustlsStream};
use tokio_postgres::{Client, Config, Connection, Row, Socket, Statement};

use super::backoff::Backoff;
use super::queries::Query;
use crate::{Result, StorageError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Pool {
    config: Config,
    tls: MakeRustlsConnect,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
    backoff: Backoff,
}

/// One open connection and the statements prepared on it so far.
pub(crate) struct Conn {
    pub(crate) client: Client,
    statements: Vec<Option<Statement>>,
}

/// A connection checked out of the pool; it goes back when dropped, unless it is closed.
pub(crate) struct Pooled<'a> {
    conn: Option<Conn>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl Pool {
    pub(crate) fn new(mut config: Config, tls: MakeRustlsConnect, size: usize) -> Pool {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("ductstream");
        }
        Pool { config, tls, idle: Mutex::new(Vec::new()), permits: Semaphore::new(size.max(1)), backoff: Backoff::default() }
    }

    /// A new connection outside the pool, with TLS as the URL asked; the caller drives it.
    pub(crate) async fn connect(&self) -> Result<(Client, Connection<Socket, RustlsStream<Socket>>)> {
        self.config.connect(self.tls.clone()).await.map_err(connect_error)
    }

    /// A live connection: an idle one, or a new one when none is idle.
    pub(crate) async fn get(&self) -> Result<Pooled<'_>> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StorageError::Engine("postgres connection pool is closed".into()))?;
        let reused = loop {
            let next = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            match next {
                Some(conn) if conn.client.is_closed() => continue,
                other => break other,
            }
        };
        let conn = match reused {
            Some(conn) => conn,
            None => self.open().await?,
        };
        Ok(Pooled { conn: Some(conn), pool: self, _permit: permit })
    }

    /// A new connection, unless a pause after failed connects is still running.
    async fn open(&self) -> Result<Conn> {
        self.backoff.check(std::time::Instant::now()).map_err(StorageError::Engine)?;
        match Conn::open(self).await {
            Ok(conn) => {
                self.backoff.succeeded();
                Ok(conn)
            }
            Err(e) => {
                self.backoff.failed(std::time::Instant::now(), e.to_string());
                Err(e)
            }
        }
    }
}

impl Conn {
    pub(crate) async fn open(pool: &Pool) -> Result<Conn> {
        let (client, connection) = pool.connect().await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "postgres connection ended");
            }
        });
        Ok(Conn { client, statements: vec![None; Query::ALL.len()] })
    }

    /// `query`, prepared on this connection the first time it is used here.
    pub(crate) async fn statement(&mut self, query: Query) -> Result<Statement> {
        if let Some(Some(statement)) = self.statements.get(query.index()) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(query.sql()).await.map_err(|e| query_error(query, e))?;
        if let Some(slot) = self.statements.get_mut(query.index()) {
            *slot = Some(statement.clone());
        }
        Ok(statement)
    }

    pub(crate) async fn query(&mut self, query: Query, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let statement = self.statement(query).await?;
        self.client.query(&statement, params).await.map_err(|e| query_error(query, e))
    }

    pub(crate) async fn query_opt(&mut self, query: Query, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let statement = self.statement(query).await?;
        self.client.query_opt(&statement, params).await.map_err(|e| query_error(query, e))
    }

    pub(crate) async fn execute(&mut self, query: Query, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let statement = self.statement(query).await?;
        self.client.execute(&statement, params).await.map_err(|e| query_error(query, e))
    }
}

impl Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        // Only `drop` takes the connection out.
        self.conn.as_ref().unwrap_or_else(|| unreachable!("pooled connection used after drop"))
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().unwrap_or_else(|| unreachable!("pooled connection used after drop"))
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !conn.client.is_closed()
            && let Ok(mut idle) = self.pool.idle.lock()
        {
            idle.push(conn);
        }
    }
}

/// A failure to open a connection: Postgres is down or unreachable; retry later.
pub(crate) fn connect_error(e: tokio_postgres::Error) -> StorageError {
    StorageError::Engine(format!("cannot connect to postgres (retriable): {}", describe(&e)))
}

/// A failed statement, named after its query so logs say what was being done.
pub(crate) fn query_error(query: Query, e: tokio_postgres::Error) -> StorageError {
    if is_connection_error(&e) {
        StorageError::Engine(format!(
            "postgres connection lost during {} (retriable, it reconnects): {}",
            query.name(),
            describe(&e)
        ))
    } else {
        StorageError::Engine(format!("postgres {} failed: {}", query.name(), describe(&e)))
    }
}

/// True when the connection is gone: closed, an I/O error, a connection-class SQLSTATE (08),
/// or the server shutting down or restarting (57P01..57P03).
fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN, SqlState::CANNOT_CONNECT_NOW].contains(code)
        }
        None => std::error::Error::source(e).is_some_and(|source| source.is::<std::io::Error>()),
    }
}

/// The server's own message for database errors, the client's otherwise.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}
