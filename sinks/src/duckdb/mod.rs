//! The DuckDB table destination: CDC changes applied to tables of a DuckDB database file (see
//! [`crate::table`] for what is shared with the other table destinations).
//!
//! Options: `dsn` (required): the database file, `./data/warehouse.duckdb` or
//! `duckdb:///var/lib/ductstream/warehouse.duckdb` (relative paths are the broker's working
//! folder's; missing folders are created), or `:memory:` (a database that lives while a sink of
//! this process uses it: for tests); and the table options ([`crate::table::TableOptions`]:
//! `schema`, `table`, `write_mode`, `batch_mode`, `batch_resolution`, `staging_*`, `meta_*`,
//! `soft_delete`, `type_mappings`, `source_dsn`, …) with `meta_schema` `ductstream_meta` and
//! `meta_table` `__metadata` by default.
//!
//! A batch is one DuckDB transaction: its rows are appended (the Appender, as text) to a
//! temporary table, cast to the destination's types in one `CREATE TEMP TABLE … AS SELECT`;
//! kept cells (unchanged TOAST values, columns a change did not carry) are filled from the
//! destination's row (the old key's, for a row whose key changed); then every key of the batch
//! is deleted (`DELETE … USING`) and the new rows inserted: an upsert, done so because DuckDB's
//! `INSERT … ON CONFLICT DO UPDATE` is fifty times slower on large tables. The meta table's
//! rows are written the same way, and the sink's next offset to
//! `<meta_schema>.sink_offsets`, all before COMMIT: a batch is applied exactly once, whenever
//! the sink or the broker dies. Values DuckDB's type cannot hold (a `NaN` or too many digits
//! for a DECIMAL, text a column's cast refuses) stop the sink, naming the table and column.
//!
//! One process per file: DuckDB locks a database file for the process that opened it. The
//! sinks of one broker that name the same file share one connection ([`registry`]), one batch
//! at a time, and the file is closed when the last of them stops; another process (a second
//! broker, `ductstream-worker --resolve-staging`, the `duckdb` CLI) cannot open it meanwhile,
//! and a sink that finds the file locked retries until it is free.

mod apply;
mod batch;
mod error;
mod registry;
mod resolve;
mod sql;
mod store;
mod text;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use crate::runtime::BatchLimits;
use crate::table::{TableOptions, TableSink};
use crate::{Options, Result, SinkError};

pub use store::DuckDbStore;

/// Default batches: 50,000 changes, 64 MiB, or 500 ms. DuckDB stores columns in row groups of
/// 122,880 rows: fewer, larger transactions suit it better than many small ones.
pub const LIMITS: BatchLimits = BatchLimits { records: 50_000, bytes: 64 << 20, interval: Duration::from_millis(500) };

/// Where the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    File(PathBuf),
    Memory,
}

impl Target {
    /// The `dsn` option: a path, `duckdb://` and a path, or `:memory:`.
    pub fn parse(dsn: &str) -> Result<Target> {
        let path = dsn.strip_prefix("duckdb://").unwrap_or(dsn).trim();
        let refuse = |why: &str| Err(SinkError::Config(format!("duckdb destination: dsn {dsn:?}: {why}: give a database file's path, or :memory:")));
        if path == ":memory:" {
            return Ok(Target::Memory);
        }
        if path.is_empty() {
            return refuse("no path");
        }
        // DuckDB reads other schemes (md:, s3://) as remote databases, which need extensions
        // this destination never loads.
        if path.contains("://") || path.starts_with("md:") || path.starts_with("motherduck:") || path.starts_with(":memory:") {
            return refuse("not a local file");
        }
        Ok(Target::File(PathBuf::from(path)))
    }
}

/// The sink of a `duckdb` destination, from its options (checked, not yet opened).
pub fn sink(mut options: Options, sink_id: &str) -> Result<TableSink<DuckDbStore>> {
    let target = Target::parse(&options.required("dsn")?)?;
    let table = TableOptions::take(&mut options, "ductstream_meta", "__metadata", sink_id)?;
    options.finish()?;
    Ok(TableSink::new(DuckDbStore::new(target, table.clone()), table, sink_id))
}
