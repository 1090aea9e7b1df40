//! The one error type of the crate. Each variant that a user can cause says what to fix.

use crate::lsn::Lsn;

/// Result with [`CdcError`].
pub type Result<T, E = CdcError> = std::result::Result<T, E>;

/// Everything that can go wrong in a CDC flow.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CdcError {
    /// An option is missing, malformed or out of range.
    #[error("invalid flow option {name}: {message}")]
    InvalidOption { name: String, message: String },

    /// The source server is not configured for logical replication.
    #[error(
        "the source Postgres is not ready for logical replication: {setting} is {current}; \
         set {setting} = {wanted} in postgresql.conf (or ALTER SYSTEM SET {setting} = {wanted}) and restart Postgres"
    )]
    ReplicationNotConfigured { setting: String, current: String, wanted: String },

    /// The user may not replicate.
    #[error(
        "user {user} may not start logical replication: grant it with ALTER ROLE {user} WITH REPLICATION \
         (and allow replication connections for it in pg_hba.conf)"
    )]
    ReplicationNotPermitted { user: String },

    /// A table named in the options (or needed by the flow) does not exist.
    #[error("table {table} does not exist on the source: create it, or remove it from publication_tables")]
    MissingTable { table: String },

    /// The server refused the password (or the user does not exist).
    #[error("authentication failed for user {user}: check the user and password in the dsn ({message})")]
    Authentication { user: String, message: String },

    /// Another connection is streaming from the slot.
    #[error(
        "replication slot {slot} is already in use ({message}): stop the other consumer of this slot, \
         or give this flow its own slot name"
    )]
    SlotInUse { slot: String, message: String },

    /// The slot the flow expected is not there and `create_slot` is off.
    #[error("replication slot {slot} does not exist: create it, or set create_slot=true")]
    MissingSlot { slot: String },

    /// The publication the flow expected is not there and `ensure_publication` is off.
    #[error("publication {publication} does not exist: create it, or set ensure_publication=true")]
    MissingPublication { publication: String },

    /// Any other error reported by the server.
    #[error("postgres error {code}: {message}")]
    Server { code: String, message: String },

    /// The connection broke or could not be opened.
    #[error("connection to the source failed: {0}")]
    Io(#[from] std::io::Error),

    /// The server sent something the client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),

    /// A pgoutput message could not be decoded.
    #[error("cannot decode pgoutput message: {0}")]
    Decode(String),

    /// The change writer failed; nothing after the last confirmed LSN is acknowledged.
    #[error("writing changes failed: {0}")]
    Writer(String),

    /// The checkpoint store failed.
    #[error("checkpoint store failed: {0}")]
    Checkpoint(String),

    /// A DDL change was rejected through the DDL gate; the flow stops before it.
    #[error("DDL change at {lsn} was rejected: {reason}")]
    DdlRejected { lsn: Lsn, reason: String },

    /// The flow was asked to stop.
    #[error("the flow was stopped")]
    Stopped,
}

impl CdcError {
    /// Worth retrying as it is: the source or the store went away for a while (a restart, a
    /// lost connection), as opposed to a setting or an object someone must fix.
    pub fn is_transient(&self) -> bool {
        match self {
            CdcError::Io(_) | CdcError::Protocol(_) | CdcError::Writer(_) | CdcError::Checkpoint(_) => true,
            // connection_exception, operator_intervention (shutdown, cannot connect now),
            // too_many_connections
            CdcError::Server { code, .. } => code.starts_with("08") || code.starts_with("57P") || code == "53300",
            _ => false,
        }
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        CdcError::Protocol(message.into())
    }

    pub(crate) fn decode(message: impl Into<String>) -> Self {
        CdcError::Decode(message.into())
    }

    pub(crate) fn option(name: &str, message: impl Into<String>) -> Self {
        CdcError::InvalidOption { name: name.to_string(), message: message.into() }
    }

    /// Maps a server error (SQLSTATE + message) to the specific variant when there is one.
    pub(crate) fn from_server(code: &str, message: &str, user: &str, slot: &str) -> Self {
        match code {
            // invalid_password, invalid_authorization_specification
            "28P01" | "28000" => CdcError::Authentication { user: user.to_string(), message: message.to_string() },
            // object_in_use: "replication slot ... is active for PID ..."
            "55006" => CdcError::SlotInUse { slot: slot.to_string(), message: message.to_string() },
            // undefined_object on a slot
            "42704" if message.contains("replication slot") => CdcError::MissingSlot { slot: slot.to_string() },
            // insufficient_privilege on replication
            "42501" if message.contains("replication") => CdcError::ReplicationNotPermitted { user: user.to_string() },
            // object_not_in_prerequisite_state: "logical decoding requires wal_level >= logical"
            "55000" if message.contains("wal_level") => CdcError::ReplicationNotConfigured {
                setting: "wal_level".into(),
                current: "lower than logical".into(),
                wanted: "logical".into(),
            },
            _ => CdcError::Server { code: code.to_string(), message: message.to_string() },
        }
    }

    /// Maps a tokio-postgres error from a normal (non-replication) connection.
    pub(crate) fn from_pg(error: tokio_postgres::Error, user: &str) -> Self {
        if let Some(db) = error.as_db_error() {
            return CdcError::from_server(db.code().code(), db.message(), user, "");
        }
        CdcError::Io(std::io::Error::other(error.to_string()))
    }
}
