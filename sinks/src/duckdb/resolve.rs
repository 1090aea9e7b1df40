//! A staging table resolved into its target, inside the caller's transaction: the latest staged
//! change per key applied to the target (`append`, deletes included), or the target replaced
//! by the staged rows' latest state (`replace`); a staged truncate empties the target and only
//! what was staged after it counts. Then the staging table is emptied.

use duckdb::Connection;

use super::apply::execute;
use super::error::duckdb_error;
use super::sql::{column_list, ident, key_match, qualified};
use crate::table::layout::{STAGE_LSN, STAGE_OP, STAGE_SEQ};
use crate::table::{DestTable, Resolution};
use crate::Result;

/// The staged rows resolved (0 for `none`, which leaves them staged).
pub fn resolve(conn: &Connection, staging: &DestTable, target: &DestTable, resolution: Resolution) -> Result<u64> {
    let staged = qualified(&staging.name);
    let into = qualified(&target.name);
    let label = target.name.to_string();
    let (op, lsn, seq) = (ident(STAGE_OP), ident(STAGE_LSN), ident(STAGE_SEQ));
    let count_sql = format!("SELECT count(*) FROM {staged}");
    let count: i64 = conn.query_row(&count_sql, [], |r| r.get(0)).map_err(|e| duckdb_error(&e, &format!("{label}: {count_sql}")))?;
    if resolution == Resolution::None {
        return Ok(0);
    }
    let last_sql = format!("SELECT {lsn}, {seq} FROM {staged} WHERE {op} = 't' ORDER BY {lsn} DESC, {seq} DESC LIMIT 1");
    let last_truncate: Option<(i64, i64)> = match conn.query_row(&last_sql, [], |r| Ok((r.get(0)?, r.get(1)?))) {
        Ok(found) => Some(found),
        Err(duckdb::Error::QueryReturnedNoRows) => None,
        Err(e) => return Err(duckdb_error(&e, &format!("{label}: {last_sql}"))),
    };
    // Only what came after the last truncate counts. Changes of one transaction share its
    // LSN, so the offset orders a truncate and the rows its transaction wrote after it.
    let after_truncate = match last_truncate {
        Some((l, s)) => format!(" AND ({lsn} > {l} OR ({lsn} = {l} AND {seq} > {s}))"),
        None => String::new(),
    };
    let mut sql = vec![format!("CREATE OR REPLACE TEMP TABLE __ds_resolved AS SELECT * FROM {staged} WHERE {op} <> 't'{after_truncate}")];
    if resolution == Resolution::Replace || last_truncate.is_some() {
        sql.push(format!("DELETE FROM {into}"));
    }
    let list = column_list(target.columns.iter().map(|c| c.name.as_str()));
    if target.key.is_empty() {
        sql.push(format!("INSERT INTO {into} ({list}) SELECT {list} FROM temp.main.__ds_resolved ORDER BY {lsn}, {seq}"));
    } else {
        let keys = column_list(target.key.iter().map(String::as_str));
        sql.push(format!(
            "CREATE OR REPLACE TEMP TABLE __ds_latest AS SELECT DISTINCT ON ({keys}) * FROM temp.main.__ds_resolved ORDER BY {keys}, {lsn} DESC, {seq} DESC"
        ));
        if resolution == Resolution::Append {
            // Every resolved key's row goes; the latest change per key comes back unless it
            // is a delete (a delete and an insert: see [`super::apply`] on upserts).
            sql.push(format!("DELETE FROM {into} t USING temp.main.__ds_latest l WHERE {}", key_match(&target.key, "t", "l")));
        }
        sql.push(format!("INSERT INTO {into} ({list}) SELECT {list} FROM temp.main.__ds_latest WHERE {op} <> 'd'"));
        sql.push("DROP TABLE temp.main.__ds_latest".to_owned());
    }
    sql.push("DROP TABLE temp.main.__ds_resolved".to_owned());
    sql.push(format!("DELETE FROM {staged}"));
    for statement in sql {
        execute(conn, &label, &statement)?;
    }
    Ok(count.max(0) as u64)
}
