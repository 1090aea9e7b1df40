//! [`PostgresStore`]: the SQL of the Postgres table destination.

use async_trait::async_trait;
use bytes::Bytes;
use futures::SinkExt;
use tokio_postgres::{Client, Transaction};

use super::copy::{self, push_field, push_row};
use super::sql::{add_columns, column_list, create_meta, create_offsets, create_table, ident, key_match, qualified};
use crate::runtime::TopicPartition;
use crate::table::layout::{STAGE_LSN, STAGE_OP, STAGE_SEQ};
use crate::table::connect::connect;
use crate::table::{Cell, DestColumn, DestTable, Dialect, MetaRow, Position, Resolution, TableName, TableOptions, TableStore, TableWrite, TargetPlan, ValueKind, Write};
use crate::{Result, SinkError};

/// The temporary table a batch's rows are copied into, dropped at commit.
const BATCH_TABLE: &str = "__ds_batch";
/// Its own columns: whether a row is a delete, and which columns an upsert keeps.
const DELETE_FLAG: &str = "__ds_delete";
const KEEP_LIST: &str = "__ds_keep";

pub struct PostgresStore {
    dsn: String,
    options: TableOptions,
    client: Option<Client>,
}

impl PostgresStore {
    pub fn new(dsn: String, options: TableOptions) -> PostgresStore {
        PostgresStore { dsn, options, client: None }
    }

    /// The connection, made again after one was lost.
    async fn client(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(connect(&self.dsn).await?);
        }
        self.client.as_mut().ok_or_else(|| SinkError::Retriable("postgres destination: not connected".into()))
    }

    /// Runs DDL; a lost connection is dropped so the next call connects again. Two sinks
    /// creating the same schema or table at once collide on the catalog's unique indexes:
    /// the loser tries again and finds it there.
    async fn execute(&mut self, sql: &str) -> Result<()> {
        let outcome = self.client().await?.batch_execute(sql).await;
        let raced = outcome.as_ref().err().and_then(|e| e.code()).is_some_and(|c| matches!(c.code(), "23505" | "42P06" | "42P07" | "42701"));
        match self.check(outcome.map(|_| ()), sql) {
            Err(SinkError::Fatal(text)) if raced => Err(SinkError::Retriable(text)),
            other => other,
        }
    }

    fn check<T>(&mut self, outcome: std::result::Result<T, tokio_postgres::Error>, what: &str) -> Result<T> {
        outcome.map_err(|e| {
            if e.as_db_error().is_none() {
                self.client = None;
            }
            classify(&e, what)
        })
    }
}

/// Errors of a lost connection, a deadlock, a server shutting down or out of resources pass;
/// the others (a column that does not fit, a value the type refuses, a permission) stop the
/// sink with Postgres' message.
fn classify(e: &tokio_postgres::Error, what: &str) -> SinkError {
    let what: String = what.chars().take(200).collect();
    match e.as_db_error() {
        None => SinkError::Retriable(format!("postgres destination: {e}")),
        Some(db) => {
            let code = db.code().code();
            let detail = db.detail().map(|d| format!(" ({d})")).unwrap_or_default();
            let text = format!("postgres destination: {}{detail} [{code}] in: {what}", db.message());
            match &code[..2] {
                "08" | "40" | "53" | "57" | "58" => SinkError::Retriable(text),
                _ => SinkError::Fatal(text),
            }
        }
    }
}

fn tx_error(e: tokio_postgres::Error, what: &str) -> SinkError {
    classify(&e, what)
}

#[async_trait]
impl TableStore for PostgresStore {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn open(&mut self) -> Result<()> {
        let schema = ident(&self.options.meta_schema);
        let mut sql = format!("CREATE SCHEMA IF NOT EXISTS {schema}; {};", create_offsets(&self.options.meta_schema));
        if let Some(meta) = &self.options.meta_table {
            sql.push_str(&format!("CREATE SCHEMA IF NOT EXISTS {}; {};", ident(&meta.schema), create_meta(&meta.schema, &meta.table, &meta.pk_prefix)));
        }
        self.execute(&sql).await
    }

    async fn columns(&mut self, table: &TableName) -> Result<Option<Vec<String>>> {
        let sql = "SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";
        let name = qualified(table);
        let exists = "SELECT to_regclass($1) IS NOT NULL";
        let found: bool = {
            let outcome = self.client().await?.query_one(exists, &[&name]).await;
            self.check(outcome, exists)?.get(0)
        };
        if !found {
            return Ok(None);
        }
        let outcome = self.client().await?.query(sql, &[&name]).await;
        Ok(Some(self.check(outcome, sql)?.iter().map(|r| r.get(0)).collect()))
    }

    async fn create(&mut self, table: &DestTable) -> Result<()> {
        self.execute(&format!("CREATE SCHEMA IF NOT EXISTS {}; {}", ident(&table.name.schema), create_table(table))).await
    }

    async fn add_columns(&mut self, table: &TableName, columns: &[DestColumn]) -> Result<()> {
        self.execute(&add_columns(table, columns)).await
    }

    async fn apply(&mut self, writes: &[TableWrite], position: &Position) -> Result<()> {
        let meta = self.options.meta_table.clone();
        let flow_id = self.options.flow_id.clone();
        let offsets = format!("{}.sink_offsets", ident(&self.options.meta_schema));
        let client = self.client().await?;
        let outcome = async {
            let tx = client.transaction().await.map_err(|e| tx_error(e, "BEGIN"))?;
            for write in writes {
                match &write.write {
                    Write::Insert(rows) => copy_rows(&tx, &write.table, rows).await?,
                    Write::Target(plan) => apply_plan(&tx, &write.table, plan).await?,
                }
                if let (Some(meta), Write::Target(plan)) = (&meta, &write.write) {
                    let name = TableName { schema: meta.schema.clone(), table: meta.table.clone() };
                    apply_meta(&tx, &name, &flow_id, &write.table.source, plan.truncate, &plan.meta).await?;
                }
            }
            let sql = format!(
                "INSERT INTO {offsets} (sink_id, topic, partition, next_offset) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (sink_id, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()"
            );
            tx.execute(&sql, &[&position.sink_id, &position.topic, &position.partition, &position.next_offset]).await.map_err(|e| tx_error(e, &sql))?;
            tx.commit().await.map_err(|e| tx_error(e, "COMMIT"))
        }
        .await;
        if let Err(SinkError::Retriable(_)) = &outcome {
            // The connection may be gone or mid-transaction: start afresh.
            self.client = None;
        }
        outcome
    }

    async fn committed(&mut self, sink_id: &str, partitions: &[TopicPartition]) -> Result<Vec<(TopicPartition, i64)>> {
        let sql = format!("SELECT topic, partition, next_offset FROM {}.sink_offsets WHERE sink_id = $1", ident(&self.options.meta_schema));
        let outcome = self.client().await?.query(&sql, &[&sink_id]).await;
        let rows = self.check(outcome, &sql)?;
        Ok(rows
            .iter()
            .map(|r| ((r.get::<_, String>(0), r.get::<_, i32>(1)), r.get::<_, i64>(2)))
            .filter(|(tp, _)| partitions.contains(tp))
            .collect())
    }

    async fn resolve(&mut self, staging: &DestTable, target: &DestTable, resolution: Resolution) -> Result<u64> {
        let client = self.client().await?;
        let outcome = async {
            let tx = client.transaction().await.map_err(|e| tx_error(e, "BEGIN"))?;
            let staged = qualified(&staging.name);
            // The sink may be writing to the staging table: hold its inserts until the
            // resolution commits, so none is emptied away unresolved.
            let lock = format!("LOCK TABLE {staged} IN EXCLUSIVE MODE");
            tx.batch_execute(&lock).await.map_err(|e| tx_error(e, &lock))?;
            let count_sql = format!("SELECT count(*) FROM {staged}");
            let count: i64 = tx.query_one(&count_sql, &[]).await.map_err(|e| tx_error(e, &count_sql))?.get(0);
            if resolution == Resolution::None {
                return Ok(0);
            }
            let sql = resolve_sql(staging, target, resolution);
            tx.batch_execute(&sql).await.map_err(|e| tx_error(e, &sql))?;
            tx.commit().await.map_err(|e| tx_error(e, "COMMIT"))?;
            Ok(count as u64)
        }
        .await;
        if let Err(SinkError::Retriable(_)) = &outcome {
            self.client = None;
        }
        outcome
    }
}

/// COPY of `rows` into `table`.
async fn copy_rows(tx: &Transaction<'_>, table: &DestTable, rows: &[Vec<Cell>]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let names = column_list(table.columns.iter().map(|c| c.name.as_str()));
    let mut data = Vec::with_capacity(rows.len() * 128);
    for row in rows {
        push_row(&mut data, row.iter().zip(table.columns.iter().map(|c| &c.kind)));
    }
    copy_in(tx, &format!("COPY {} ({names}) FROM STDIN", qualified(&table.name)), data).await
}

async fn copy_in(tx: &Transaction<'_>, sql: &str, data: Vec<u8>) -> Result<()> {
    let sink = tx.copy_in::<_, Bytes>(sql).await.map_err(|e| tx_error(e, sql))?;
    futures::pin_mut!(sink);
    sink.send(Bytes::from(data)).await.map_err(|e| tx_error(e, sql))?;
    sink.finish().await.map_err(|e| tx_error(e, sql))?;
    Ok(())
}

/// Truncate, deletes, upserts: the rows copied into a temporary table shaped like the target
/// (plus a delete flag and the list of kept columns), then applied set-wise.
async fn apply_plan(tx: &Transaction<'_>, table: &DestTable, plan: &TargetPlan) -> Result<()> {
    let target = qualified(&table.name);
    if plan.truncate {
        let sql = format!("TRUNCATE {target}");
        tx.batch_execute(&sql).await.map_err(|e| tx_error(e, &sql))?;
    }
    if plan.deletes.is_empty() && plan.upserts.is_empty() && plan.inserts.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    let list = column_list(names.iter().copied());
    // The key a moved row has in the destination, one column per key column.
    let from: Vec<String> = (0..table.key.len()).map(|i| format!("__ds_from_{i}")).collect();
    let from_select: String = table.key.iter().zip(&from).map(|(k, f)| format!(", {} AS {f}", ident(k))).collect();
    let create = format!(
        "DROP TABLE IF EXISTS pg_temp.{BATCH_TABLE}; CREATE TEMP TABLE {BATCH_TABLE} ON COMMIT DROP AS \
         SELECT {list}, NULL::boolean AS {DELETE_FLAG}, NULL::text AS {KEEP_LIST}{from_select} FROM {target} WITH NO DATA"
    );
    tx.batch_execute(&create).await.map_err(|e| tx_error(e, &create))?;
    let mut data = Vec::new();
    let kinds: Vec<&ValueKind> = table.columns.iter().map(|c| &c.kind).collect();
    let key_kinds: Vec<&ValueKind> = table.key.iter().filter_map(|k| table.column(k)).map(|c| &c.kind).collect();
    let mut keep_lists: Vec<String> = Vec::new();
    let mut moved = false;
    for key in &plan.deletes {
        let cells: Vec<Cell> = table
            .columns
            .iter()
            .map(|c| table.key.iter().position(|k| *k == c.name).map_or(Cell::Keep, |i| Cell::Value(key[i].clone())))
            .collect();
        push_batch_row(&mut data, &cells, &kinds, true, None, None, &key_kinds);
    }
    let rows = plan.upserts.iter().map(|u| (&u.cells, u.moved_from.as_ref())).chain(plan.inserts.iter().map(|cells| (cells, None)));
    for (cells, moved_from) in rows {
        let kept: Vec<&str> = cells.iter().zip(&names).filter(|(c, _)| **c == Cell::Keep).map(|(_, n)| *n).collect();
        let keep = (!kept.is_empty()).then(|| kept.join(","));
        if let Some(k) = &keep && !keep_lists.contains(k) {
            keep_lists.push(k.clone());
        }
        moved |= moved_from.is_some();
        push_batch_row(&mut data, cells, &kinds, false, keep.as_deref(), moved_from, &key_kinds);
    }
    let from_list: String = from.iter().map(|f| format!(", {f}")).collect();
    copy_in(tx, &format!("COPY {BATCH_TABLE} ({list}, {DELETE_FLAG}, {KEEP_LIST}{from_list}) FROM STDIN"), data).await?;
    if moved {
        // A moved row's kept cells are the values its row has under its old key.
        let kept_columns: Vec<&str> = names.iter().copied().filter(|n| keep_lists.iter().any(|k| k.split(',').any(|c| c == *n))).collect();
        let sets: Vec<String> = kept_columns
            .iter()
            .map(|n| format!("{0} = CASE WHEN {1} = ANY(string_to_array(b.{KEEP_LIST}, ',')) THEN t.{0} ELSE b.{0} END", ident(n), literal(n)))
            .collect();
        let matches: Vec<String> = table.key.iter().zip(&from).map(|(k, f)| format!("t.{} = b.{f}", ident(k))).collect();
        let sql = format!(
            "UPDATE {BATCH_TABLE} b SET {}, {KEEP_LIST} = NULL FROM {target} t WHERE b.{} IS NOT NULL AND {}",
            sets.join(", "),
            from[0],
            matches.join(" AND ")
        );
        tx.batch_execute(&sql).await.map_err(|e| tx_error(e, &sql))?;
    }
    let mut sql = Vec::new();
    if table.key.is_empty() {
        sql.push(format!("INSERT INTO {target} ({list}) SELECT {list} FROM {BATCH_TABLE} WHERE NOT {DELETE_FLAG}"));
    } else {
        if !plan.deletes.is_empty() {
            sql.push(format!("DELETE FROM {target} t USING {BATCH_TABLE} b WHERE b.{DELETE_FLAG} AND {}", key_match(&table.key, "t", "b")));
        }
        let keys = column_list(table.key.iter().map(String::as_str));
        let keep_sets = std::iter::once(None).chain(keep_lists.iter().map(Some));
        for keep in keep_sets {
            let kept: Vec<&str> = keep.map(|k| k.split(',').collect()).unwrap_or_default();
            let updated: Vec<String> = names
                .iter()
                .filter(|n| !table.key.iter().any(|k| k == *n) && !kept.contains(n))
                .map(|n| format!("{0} = EXCLUDED.{0}", ident(n)))
                .collect();
            let filter = match keep {
                None => format!("{KEEP_LIST} IS NULL"),
                Some(k) => format!("{KEEP_LIST} = {}", literal(k)),
            };
            let action = if updated.is_empty() { "NOTHING".to_owned() } else { format!("UPDATE SET {}", updated.join(", ")) };
            sql.push(format!(
                "INSERT INTO {target} ({list}) SELECT {list} FROM {BATCH_TABLE} WHERE NOT {DELETE_FLAG} AND {filter} ON CONFLICT ({keys}) DO {action}"
            ));
        }
    }
    let sql = sql.join("; ");
    tx.batch_execute(&sql).await.map_err(|e| tx_error(e, &sql))
}

/// One row of the batch table: the cells, the delete flag, the kept columns, the old key.
fn push_batch_row(data: &mut Vec<u8>, cells: &[Cell], kinds: &[&ValueKind], delete: bool, keep: Option<&str>, moved_from: Option<&Vec<serde_json::Value>>, key_kinds: &[&ValueKind]) {
    let mut row = Vec::new();
    push_row(&mut row, cells.iter().zip(kinds.iter().copied()));
    row.pop();
    data.extend_from_slice(&row);
    data.push(b'\t');
    push_field(data, Some(if delete { "t" } else { "f" }), false);
    push_field(data, keep, key_kinds.is_empty());
    for (i, kind) in key_kinds.iter().enumerate() {
        let text = moved_from.and_then(|values| values.get(i)).and_then(|v| copy::text(v, kind));
        push_field(data, text.as_deref(), i + 1 == key_kinds.len());
    }
}

/// A string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The meta table's rows for a table: its latest change per key (all of the table's rows
/// dropped first when the batch truncated it).
async fn apply_meta(tx: &Transaction<'_>, meta: &TableName, flow_id: &str, source: &TableName, truncate: bool, rows: &[MetaRow]) -> Result<()> {
    let name = qualified(meta);
    if truncate {
        let sql = format!("DELETE FROM {name} WHERE flow_id = $1 AND source_schema = $2 AND source_table = $3");
        tx.execute(&sql, &[&flow_id, &source.schema, &source.table]).await.map_err(|e| tx_error(e, &sql))?;
    }
    if rows.is_empty() {
        return Ok(());
    }
    let create = format!("DROP TABLE IF EXISTS pg_temp.__ds_meta; CREATE TEMP TABLE __ds_meta ON COMMIT DROP AS SELECT * FROM {name} WITH NO DATA");
    tx.batch_execute(&create).await.map_err(|e| tx_error(e, &create))?;
    let mut data = Vec::new();
    for row in rows {
        let lsn = row.lsn.to_string();
        let fields = [flow_id, &row.source.schema, &row.source.table, &row.key_json, row.op.code(), &lsn, &row.synced_at, if row.deleted { "t" } else { "f" }];
        for (i, field) in fields.iter().enumerate() {
            push_field(&mut data, Some(field), i == fields.len() - 1);
        }
    }
    copy_in(tx, "COPY __ds_meta FROM STDIN", data).await?;
    let sql = format!(
        "INSERT INTO {name} SELECT * FROM __ds_meta ON CONFLICT (flow_id, source_schema, source_table, key_json) DO UPDATE SET \
         op = EXCLUDED.op, lsn = EXCLUDED.lsn, synced_at = EXCLUDED.synced_at, is_deleted = EXCLUDED.is_deleted"
    );
    tx.batch_execute(&sql).await.map_err(|e| tx_error(e, &sql))
}

/// The statements that resolve a staging table: the latest staged change per key (after the
/// last staged truncate, which empties the target) applied to the target (`append`), or the
/// target replaced by the staged rows' latest state (`replace`); then the staging table emptied.
fn resolve_sql(staging: &DestTable, target: &DestTable, resolution: Resolution) -> String {
    let staged = qualified(&staging.name);
    let into = qualified(&target.name);
    let list = column_list(target.columns.iter().map(|c| c.name.as_str()));
    let (op, lsn, seq) = (ident(STAGE_OP), ident(STAGE_LSN), ident(STAGE_SEQ));
    // Changes of the truncate's own transaction share its LSN: the offset orders them.
    let last_truncate = format!("(SELECT ({lsn}, {seq}) FROM {staged} WHERE {op} = 't' ORDER BY {lsn} DESC, {seq} DESC LIMIT 1)");
    let mut sql = vec![format!(
        "CREATE TEMP TABLE __ds_resolved ON COMMIT DROP AS SELECT * FROM {staged} \
         WHERE {op} <> 't' AND ({lsn}, {seq}) > coalesce({last_truncate}, (-1::bigint, -1::bigint))"
    )];
    let truncated = format!("EXISTS (SELECT 1 FROM {staged} WHERE {op} = 't')");
    match resolution {
        Resolution::Replace => sql.push(format!("TRUNCATE {into}")),
        _ => sql.push(format!("DO $$ BEGIN IF {truncated} THEN TRUNCATE {into}; END IF; END $$")),
    }
    if target.key.is_empty() {
        sql.push(format!("INSERT INTO {into} ({list}) SELECT {list} FROM __ds_resolved ORDER BY {lsn}, {seq}"));
    } else {
        let keys = column_list(target.key.iter().map(String::as_str));
        sql.push(format!(
            "CREATE TEMP TABLE __ds_latest ON COMMIT DROP AS SELECT DISTINCT ON ({keys}) * FROM __ds_resolved ORDER BY {keys}, {lsn} DESC, {seq} DESC"
        ));
        if resolution == Resolution::Append {
            sql.push(format!("DELETE FROM {into} t USING __ds_latest l WHERE l.{op} = 'd' AND {}", key_match(&target.key, "t", "l")));
        }
        let updated: Vec<String> = target
            .columns
            .iter()
            .filter(|c| !target.key.contains(&c.name))
            .map(|c| format!("{0} = EXCLUDED.{0}", ident(&c.name)))
            .collect();
        let action = if updated.is_empty() { "NOTHING".to_owned() } else { format!("UPDATE SET {}", updated.join(", ")) };
        sql.push(format!("INSERT INTO {into} ({list}) SELECT {list} FROM __ds_latest WHERE {op} <> 'd' ON CONFLICT ({keys}) DO {action}"));
    }
    sql.push(format!("TRUNCATE {staged}"));
    sql.join("; ")
}
