//! DuckDB's errors as the sink runtime's: what waiting may cure (a lock another process holds,
//! a full disk, memory, a write conflict) is retried; what it cannot (a value the column's type
//! refuses, a table that does not fit, a file that is not a database) stops the sink with
//! DuckDB's message.
//!
//! DuckDB's C API gives every error the same code; its messages start with the error's class
//! (`IO Error: …`, `Conversion Error: …`), which is what is read here.

use std::path::Path;

use crate::SinkError;

/// Classes waiting may cure.
const PASSING: [&str; 6] = ["IO Error", "TransactionContext Error", "Transaction Error", "Out of Memory Error", "Interrupt Error", "Connection Error"];

/// IO errors that do not pass: the path names something that is not a database file.
const LASTING_IO: [&str; 6] = ["not a valid DuckDB database", "Not a directory", "Is a directory", "Permission denied", "Read-only file system", "database file with version"];

/// Whether the database must be opened again: DuckDB refuses every statement after a fatal
/// error (a failed write of its log, say) until it is restarted.
pub fn invalidated(e: &SinkError) -> bool {
    matches!(e, SinkError::Retriable(m) if m.contains("database has been invalidated") || m.contains("FATAL Error"))
}

/// A DuckDB error during `what` (a statement, or a step), in `table` when one is named.
pub fn duckdb_error(e: &duckdb::Error, what: &str) -> SinkError {
    let message = e.to_string();
    let what: String = what.chars().take(200).collect();
    let text = format!("duckdb destination: {message} [in: {what}]");
    let class = message.split(':').next().unwrap_or_default();
    if message.contains("database has been invalidated") || class.starts_with("FATAL") {
        return SinkError::Retriable(text);
    }
    if PASSING.contains(&class) && !LASTING_IO.iter().any(|m| message.contains(m)) {
        SinkError::Retriable(text)
    } else {
        SinkError::Fatal(text)
    }
}

/// Opening `path` failed: another process's lock passes; a path that is not a database, or
/// cannot be one, does not.
pub fn classify_open(e: &duckdb::Error, path: &Path) -> SinkError {
    let message = e.to_string();
    let text = format!("duckdb destination: cannot open {}: {message}", path.display());
    if message.contains("Could not set lock") || message.contains("Out of Memory") {
        SinkError::Retriable(format!("{text} (one process per database file: the sink retries until the other lets go)"))
    } else {
        SinkError::Fatal(text)
    }
}

/// A failure of the blocking task itself (a panic in it).
pub fn join_error(e: tokio::task::JoinError) -> SinkError {
    SinkError::Fatal(format!("duckdb destination: the database task failed: {e}"))
}
