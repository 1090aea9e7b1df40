//! The ClickHouse table destination: CDC changes applied to ClickHouse tables over its HTTP
//! interface (see [`crate::table`] for what is shared with the other table destinations).
//!
//! It speaks HTTP through `reqwest` rather than the `clickhouse` crate, whose protocol
//! assumptions (RowBinary with the types of current servers) do not hold for old servers such
//! as Debian's 18.16, which this destination is tested against.
//!
//! Options: `dsn` (required: `http://[user:password@]host:port[/database]`; `clickhouse://` is
//! `http://`, `https://` works; the credentials go in `X-ClickHouse-User`/`X-ClickHouse-Key`
//! headers, the database is the default of `database`), `database` (or `schema`) and `table`,
//! the table options ([`crate::table::TableOptions`]; `meta_schema` is a database, default
//! `ductstream_meta`), `meta_engine` (default `MergeTree`) and `meta_order_by` (default
//! `flow_id, source_schema, source_table, key_json`) for the meta table, and `timeout` (per
//! request, default 60s).
//!
//! ClickHouse has no transactions, no UPDATE and no DELETE but mutations, which are slow and
//! asynchronous, so the sink never mutates on the hot path and makes every write safe to
//! repeat instead:
//!
//! - A target table is a `ReplacingMergeTree(__ds_version)` ordered by the source's primary key
//!   (key columns not Nullable, the others `Nullable(T)`, arrays `Array(Nullable(T))`).
//!   `__ds_version` is the change's LSN (a batch keeps the last change per key), and a delete
//!   is a row with the key, its version and `__ds_deleted = 1`. Read the mirror as
//!   `SELECT … FROM t FINAL WHERE __ds_deleted = 0`; merges collapse the rest in the
//!   background. A truncate is `TRUNCATE TABLE` (a batch written again truncates again: with
//!   one partition per table topic, the default, nothing newer than that batch is in the
//!   table; with several, rows other partitions wrote since would go). With `soft_delete` a
//!   deleted row stays visible with the meta `deleted` column set (`__ds_deleted` is 0); on a
//!   tombstone both are set: `__ds_deleted` says the row is gone from the mirror, the meta
//!   column that the source row was deleted.
//! - An update that does not carry a column (an unchanged TOAST value), and a row whose key
//!   changed, keep the destination's values: those rows (only those) are read first
//!   (`FINAL`, by key) and written complete.
//! - Tables without a key (append mode, keyless sources, staging tables) are
//!   `ReplacingMergeTree` ordered by the change's topic, partition and offset
//!   (`__ds_topic`, `__ds_partition`, `__ds_offset` or `__ds_stage_seq`), so a replayed batch
//!   collapses onto the rows it wrote (read them with `FINAL` for exact counts).
//! - Each batch's inserts come before its offset in `<meta_schema>.sink_offsets` (a
//!   `ReplacingMergeTree(next_offset)`, read `FINAL`): a crash in between writes the batch again
//!   with the same versions and positions, so it collapses. One INSERT is all or nothing.
//! - Staging tables are resolved by renaming the staging table away whole (the sink's next
//!   insert creates it again), `INSERT INTO target SELECT` of the latest change per key
//!   (`LIMIT 1 BY`; deletes become tombstones; `replace` truncates the target first), and
//!   dropping it.
//! - The meta table gets one row per key and batch (`MergeTree` keeps them all: read the
//!   latest with `ORDER BY lsn DESC LIMIT 1 BY flow_id, source_schema, source_table,
//!   key_json`, or set `meta_engine` to `ReplacingMergeTree(lsn)` and read `FINAL`); a truncate
//!   drops the table's meta rows with a mutation, truncates being rare.
//!
//! Types: see [`crate::table::types`]; servers before 20.1 have no DateTime64, so timestamps
//! are String holding the exact ISO 8601 text there (DateTime would drop the fractions).
//! Values (`encode.rs`): numerics rounded to the column's scale (NaN and ±Infinity, which a
//! Decimal cannot hold, become null), bytea as `\x` and hex digits, json as its text, a null
//! array as `[]`; a date outside 1970–2105 stops the sink (map `date` to `String`).
//!
//! On ClickHouse 23.2 and later `ReplacingMergeTree(version, is_deleted)` knows deleted rows
//! itself (`FINAL` leaves out a key whose latest row is a delete, no `WHERE` needed); this
//! destination targets older servers too, so it writes `__ds_deleted` and readers filter on
//! it. Insert deduplication (and `insert_deduplication_token`, which would make a replayed
//! INSERT a no-op) works only on Replicated tables, or on plain MergeTree tables with
//! `non_replicated_deduplication_window` set on servers that have that setting; 18.16 without
//! ZooKeeper has neither, so replays are made harmless by versions and positions instead.

mod dsn;
mod encode;
mod http;
mod kept;
mod raw;
mod rows;
mod sql;
mod store;

use std::time::Duration;

use crate::runtime::BatchLimits;
use crate::table::{TableOptions, TableSink};
use crate::{Options, Result};

pub use store::ClickHouseStore;

/// Default batches: 100,000 changes, 64 MiB, or 1 s. Every INSERT is a part ClickHouse
/// merges later, so fewer, bigger inserts than the postgres destination's.
pub const LIMITS: BatchLimits = BatchLimits { records: 100_000, bytes: 64 << 20, interval: Duration::from_secs(1) };

/// The sink of a `clickhouse` destination, from its options (checked, not yet connected).
pub fn sink(mut options: Options, sink_id: &str) -> Result<TableSink<ClickHouseStore>> {
    let dsn = dsn::parse(&options.required("dsn")?)?;
    let timeout = options.duration("timeout", Duration::from_secs(60))?;
    let meta_engine = options.string_or("meta_engine", "MergeTree");
    let meta_order_by = options.string_or("meta_order_by", "flow_id, source_schema, source_table, key_json");
    let mut table = TableOptions::take(&mut options, "ductstream_meta", "__metadata", sink_id)?;
    options.finish()?;
    if table.schema.is_none() {
        table.schema.clone_from(&dsn.database);
    }
    let client = http::Client::new(dsn, timeout)?;
    Ok(TableSink::new(ClickHouseStore::new(client, table.clone(), meta_engine, meta_order_by), table, sink_id))
}
