//! The Postgres table destination: CDC changes applied to tables of another Postgres database
//! (see [`crate::table`] for what is shared with the other table destinations).
//!
//! Options: `dsn` (required; libpq's `sslmode` and `sslrootcert` work), and the table options
//! ([`crate::table::TableOptions`]). A batch is one transaction: its rows are copied (COPY, text
//! format) into a temporary table, then applied with one `DELETE … USING` and one
//! `INSERT … ON CONFLICT DO UPDATE` per set of kept columns, the meta table's rows upserted the
//! same way, and the sink's next offset written to `<meta_schema>.sink_offsets`, all before
//! COMMIT: a batch is applied exactly once, whenever the sink or the broker dies.

mod copy;
mod sql;
mod store;

use std::time::Duration;

use crate::runtime::BatchLimits;
use crate::table::{TableOptions, TableSink};
use crate::{Options, Result};

pub use store::PostgresStore;

/// Default batches: 20,000 changes, 32 MiB, or 200 ms.
pub const LIMITS: BatchLimits = BatchLimits { records: 20_000, bytes: 32 << 20, interval: Duration::from_millis(200) };

/// The sink of a `postgres` destination, from its options (checked, not yet connected).
pub fn sink(mut options: Options, sink_id: &str) -> Result<TableSink<PostgresStore>> {
    let dsn = options.required("dsn")?;
    let table = TableOptions::take(&mut options, "ductstream_meta", "__metadata", sink_id)?;
    options.finish()?;
    ductstream_pgtls::split_dsn(&dsn).map_err(|e| crate::SinkError::Config(format!("postgres destination: dsn: {e}")))?;
    Ok(TableSink::new(PostgresStore::new(dsn, table.clone()), table, sink_id))
}
