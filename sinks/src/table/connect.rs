//! Connections to Postgres (a source's catalog, the postgres destination), with the TLS the
//! connection string's `sslmode` asks for.

use crate::{Result, SinkError};

/// A client on `dsn` (with the TLS its `sslmode` asks for); its connection runs in the
/// background until the client is dropped.
pub async fn connect(dsn: &str) -> Result<tokio_postgres::Client> {
    let (dsn, tls) = ductstream_pgtls::split_dsn(dsn).map_err(|e| SinkError::Config(format!("dsn: {e}")))?;
    let mut config: tokio_postgres::Config = dsn.parse().map_err(|e| SinkError::Config(format!("dsn: {e}")))?;
    // The sink's IF NOT EXISTS statements would fill the log with notices.
    let options = match config.get_options() {
        Some(given) => format!("{given} -c client_min_messages=warning"),
        None => "-c client_min_messages=warning".to_owned(),
    };
    config.options(&options);
    let connector = tls.connector().map_err(|e| SinkError::Config(format!("dsn: {e}")))?;
    let (client, connection) = config.connect(connector).await.map_err(connect_error)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "a table destination's connection ended");
        }
    });
    Ok(client)
}

/// Wrong credentials or a missing database are the destination refusing the sink; anything
/// else (refused, reset, timed out) may pass.
fn connect_error(e: tokio_postgres::Error) -> SinkError {
    let text = e.as_db_error().map_or_else(|| e.to_string(), |db| db.message().to_owned());
    match e.code().map(|c| c.code()) {
        // invalid_authorization_specification, invalid_password, invalid_catalog_name
        Some("28000" | "28P01" | "3D000") => SinkError::Fatal(format!("postgres: {text}")),
        _ => SinkError::Retriable(format!("postgres: cannot connect: {text}")),
    }
}
