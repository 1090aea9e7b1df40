//! [`ClickHouseStore`]: the SQL of the ClickHouse table destination.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::http::{parse_version, Client, Failure};
use super::kept;
use super::rows::RowWriter;
use super::sql::{add_columns, create_meta, create_offsets, create_table, ident, is_staging, nullable, qualified, resolve_insert, string};
use crate::runtime::TopicPartition;
use crate::table::layout::{STAGE_LSN, STAGE_OP};
use crate::table::options::WatermarkSource;
use crate::table::plan::key_json;
use crate::table::types::clickhouse_column_type;
use crate::table::{Cell, DestColumn, DestTable, Dialect, MetaRow, Position, Resolution, Source, TableName, TableOptions, TableStore, TableWrite, TargetPlan, Write};
use crate::{Result, SinkError};

/// ClickHouse's code for a table that does not exist.
const UNKNOWN_TABLE: u32 = 60;
const UNKNOWN_DATABASE: u32 = 81;

/// Settings of every insert: timestamps as ISO 8601 with a zone and fractions.
const INSERT_SETTINGS: [(&str, &str); 1] = [("date_time_input_format", "best_effort")];

/// Settings of reads whose numbers the sink parses.
const READ_SETTINGS: [(&str, &str); 1] = [("output_format_json_quote_64bit_integers", "0")];

pub struct ClickHouseStore {
    client: Client,
    options: TableOptions,
    meta_engine: String,
    meta_order_by: String,
    /// Whether the server has DateTime64 (20.1 and later), once asked.
    datetime64: Option<bool>,
    /// Column name → type, per table, as the server has them.
    types: HashMap<TableName, HashMap<String, String>>,
}

impl ClickHouseStore {
    pub fn new(client: Client, options: TableOptions, meta_engine: String, meta_order_by: String) -> ClickHouseStore {
        ClickHouseStore { client, options, meta_engine, meta_order_by, datetime64: None, types: HashMap::new() }
    }

    async fn execute(&self, sql: &str) -> Result<()> {
        self.client.query(sql, &[]).await.map(|_| ()).map_err(|f| f.into_error(sql))
    }

    /// Whether timestamps can be DateTime64: the server's version, asked once.
    async fn datetime64(&mut self) -> Result<bool> {
        if let Some(known) = self.datetime64 {
            return Ok(known);
        }
        let sql = "SELECT version()";
        let answer = self.client.query(sql, &[]).await.map_err(|f| f.into_error(sql))?;
        let version = parse_version(&answer)
            .ok_or_else(|| SinkError::Fatal(format!("clickhouse destination: cannot read the server's version from {:?}", answer.trim())))?;
        tracing::info!(version = answer.trim(), "clickhouse destination: connected");
        let has = version >= (20, 1);
        self.datetime64 = Some(has);
        Ok(has)
    }

    /// The table's column types, as the server has them (cached; read again when one is missing).
    async fn types_of(&mut self, table: &DestTable) -> Result<HashMap<String, String>> {
        let cached = self.types.get(&table.name).filter(|t| table.columns.iter().all(|c| t.contains_key(&c.name)));
        if let Some(types) = cached {
            return Ok(types.clone());
        }
        self.columns(&table.name).await?;
        Ok(self.types.get(&table.name).cloned().unwrap_or_default())
    }

    async fn exists(&self, table: &TableName) -> Result<bool> {
        let sql = format!("EXISTS TABLE {}", qualified(table));
        let answer = self.client.query(&sql, &[]).await.map_err(|f| f.into_error(&sql))?;
        Ok(answer.trim() == "1")
    }

    /// One INSERT of rows (JSONEachRow) into `table`: all or nothing.
    async fn insert(&self, table: &TableName, rows: String) -> Result<(), Failure> {
        let sql = format!("INSERT INTO {} FORMAT JSONEachRow", qualified(table));
        self.client.insert(&sql, rows.into_bytes(), &INSERT_SETTINGS).await
    }

    /// Rows appended to a table (append mode, staging). A resolution swaps the staging table
    /// out from under the sink: when it is gone, it is created again and the rows go there.
    async fn insert_rows(&mut self, table: &DestTable, rows: &[Vec<Cell>], position: &Position) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let types = self.types_of(table).await?;
        let mut writer = RowWriter::new(table, &types, position)?;
        for row in rows {
            writer.push(row, None)?;
        }
        let what = format!("insert into {}", table.name);
        match self.insert(&table.name, writer.out.clone()).await {
            Err(f) if is_staging(table) && matches!(f.code(), Some(UNKNOWN_TABLE | UNKNOWN_DATABASE)) => {
                self.create(table).await?;
                self.insert(&table.name, writer.out).await.map_err(|f| f.into_error(&what))
            }
            other => other.map_err(|f| f.into_error(&what)),
        }
    }

    /// Truncate, then one INSERT of the tombstones, the upserts (complete: kept cells read
    /// first) and a keyless table's rows.
    async fn apply_plan(&mut self, table: &DestTable, plan: &TargetPlan, position: &Position) -> Result<()> {
        if plan.truncate {
            self.execute(&format!("TRUNCATE TABLE {}", qualified(&table.name))).await?;
        }
        if plan.deletes.is_empty() && plan.upserts.is_empty() && plan.inserts.is_empty() {
            return Ok(());
        }
        let types = self.types_of(table).await?;
        let kept = kept::read(&self.client, table, &types, &plan.upserts).await?;
        let mut writer = RowWriter::new(table, &types, position)?;
        let newest = plan.meta.iter().map(|m| m.lsn).max().unwrap_or(0);
        let meta_by_key: HashMap<&str, &MetaRow> = plan.meta.iter().map(|m| (m.key_json.as_str(), m)).collect();
        for key in &plan.deletes {
            let meta = meta_by_key.get(key_json(table, key).as_str()).copied();
            writer.push(&tombstone(table, key, meta, newest), None)?;
        }
        for (i, upsert) in plan.upserts.iter().enumerate() {
            writer.push(&upsert.cells, kept.get(&i))?;
        }
        for cells in &plan.inserts {
            writer.push(cells, None)?;
        }
        self.insert(&table.name, writer.out).await.map_err(|f| f.into_error(&format!("insert into {}", table.name)))
    }

    /// The meta table's rows for a table's batch (its earlier rows dropped when the batch
    /// truncated it: a mutation, but truncates are rare).
    async fn apply_meta(&self, meta: &TableName, source: &TableName, truncate: bool, rows: &[MetaRow]) -> Result<()> {
        let flow_id = &self.options.flow_id;
        if truncate {
            self.execute(&format!(
                "ALTER TABLE {} DELETE WHERE flow_id = {} AND source_schema = {} AND source_table = {}",
                qualified(meta),
                string(flow_id),
                string(&source.schema),
                string(&source.table)
            ))
            .await?;
        }
        if rows.is_empty() {
            return Ok(());
        }
        let mut out = String::new();
        for row in rows {
            let line = serde_json::json!({
                "flow_id": flow_id, "source_schema": row.source.schema, "source_table": row.source.table, "key_json": row.key_json,
                "op": row.op.code(), "lsn": row.lsn, "synced_at": row.synced_at, "is_deleted": u8::from(row.deleted),
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        self.insert(meta, out).await.map_err(|f| f.into_error(&format!("insert into {meta}")))
    }

    /// Applies one generation of staged rows, taken whole into `staged`; the rows it held.
    async fn resolve_generation(&mut self, staged: &TableName, target: &DestTable, resolution: Resolution) -> Result<u64> {
        let counts = format!(
            "SELECT count(), countIf({op} = 't'), maxIf({lsn}, {op} = 't') FROM {} FINAL FORMAT TSV",
            qualified(staged),
            op = ident(STAGE_OP),
            lsn = ident(STAGE_LSN)
        );
        let answer = self.client.query(&counts, &[]).await.map_err(|f| f.into_error(&counts))?;
        let numbers: Vec<i64> = answer.split_whitespace().filter_map(|n| n.parse().ok()).collect();
        let [rows, truncates, last_truncate] = numbers[..] else {
            return Err(SinkError::Retriable(format!("clickhouse destination: unexpected answer {answer:?} to {counts}")));
        };
        let replace = resolution == Resolution::Replace;
        if replace || truncates > 0 {
            self.execute(&format!("TRUNCATE TABLE {}", qualified(&target.name))).await?;
        }
        let insert = resolve_insert(staged, target, (truncates > 0).then_some(last_truncate), replace);
        self.execute(&insert).await?;
        self.execute(&format!("DROP TABLE {}", qualified(staged))).await?;
        Ok(rows.max(0) as u64)
    }
}

/// A delete's row: the key, the version of the change that deleted it, the tombstone flag,
/// and the meta columns of the change (its commit time is not known here).
fn tombstone(table: &DestTable, key: &[Value], meta: Option<&MetaRow>, newest: u64) -> Vec<Cell> {
    let lsn = meta.map_or(newest, |m| m.lsn);
    table
        .columns
        .iter()
        .map(|column| {
            Cell::Value(match &column.source {
                Source::Column => table.key.iter().position(|k| *k == column.name).and_then(|i| key.get(i).cloned()).unwrap_or(Value::Null),
                Source::Version | Source::Watermark(WatermarkSource::Lsn) => Value::from(lsn),
                Source::Tombstone | Source::Deleted => Value::Bool(true),
                Source::SyncedAt => meta.map_or(Value::Null, |m| Value::String(m.synced_at.clone())),
                Source::Op => Value::String(meta.map_or("d", |m| m.op.code()).to_owned()),
                Source::Watermark(WatermarkSource::Timestamp) | Source::Offset | Source::StageOp | Source::StageLsn | Source::StageSeq => Value::Null,
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct ColumnRow {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

#[derive(Deserialize)]
struct OffsetRow {
    topic: String,
    partition: i32,
    next_offset: i64,
}

fn rows<T: for<'de> Deserialize<'de>>(answer: &str, what: &str) -> Result<Vec<T>> {
    answer
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| SinkError::Retriable(format!("clickhouse destination: {what}: cannot read {l:?}: {e}"))))
        .collect()
}

#[async_trait]
impl TableStore for ClickHouseStore {
    fn dialect(&self) -> Dialect {
        Dialect::ClickHouse
    }

    async fn open(&mut self) -> Result<()> {
        let datetime64 = self.datetime64().await?;
        let schema = self.options.meta_schema.clone();
        self.execute(&format!("CREATE DATABASE IF NOT EXISTS {}", ident(&schema))).await?;
        self.execute(&create_offsets(&schema)).await?;
        if let Some(meta) = self.options.meta_table.clone() {
            let name = TableName { schema: meta.schema, table: meta.table };
            self.execute(&format!("CREATE DATABASE IF NOT EXISTS {}", ident(&name.schema))).await?;
            let synced_at = clickhouse_column_type("DateTime64(6, 'UTC')", datetime64, false);
            self.execute(&create_meta(&name, &synced_at, &self.meta_engine, &self.meta_order_by)).await?;
        }
        Ok(())
    }

    async fn columns(&mut self, table: &TableName) -> Result<Option<Vec<String>>> {
        let sql = format!(
            "SELECT name, type FROM system.columns WHERE database = {} AND table = {} FORMAT JSONEachRow",
            string(&table.schema),
            string(&table.table)
        );
        let answer = self.client.query(&sql, &[]).await.map_err(|f| f.into_error(&sql))?;
        let found: Vec<ColumnRow> = rows(&answer, "system.columns")?;
        if found.is_empty() {
            self.types.remove(table);
            return Ok(None);
        }
        let names = found.iter().map(|c| c.name.clone()).collect();
        self.types.insert(table.clone(), found.into_iter().map(|c| (c.name, c.ty)).collect());
        Ok(Some(names))
    }

    async fn create(&mut self, table: &DestTable) -> Result<()> {
        let datetime64 = self.datetime64().await?;
        let types: Vec<String> = table.columns.iter().map(|c| clickhouse_column_type(&c.ty, datetime64, nullable(&table.key, c))).collect();
        self.execute(&format!("CREATE DATABASE IF NOT EXISTS {}", ident(&table.name.schema))).await?;
        self.execute(&create_table(table, &types)).await?;
        self.types.remove(&table.name);
        Ok(())
    }

    async fn add_columns(&mut self, table: &TableName, columns: &[DestColumn]) -> Result<()> {
        let datetime64 = self.datetime64().await?;
        // Never key columns: the sink refuses a table that lacks those.
        let typed: Vec<(String, String)> = columns.iter().map(|c| (c.name.clone(), clickhouse_column_type(&c.ty, datetime64, nullable(&[], c)))).collect();
        let outcome = self.execute(&add_columns(table, &typed)).await;
        self.types.remove(table);
        if outcome.is_err() {
            // Another sink may have added them meanwhile (18.x has no ADD COLUMN IF NOT EXISTS).
            let existing = self.columns(table).await?.unwrap_or_default();
            if columns.iter().all(|c| existing.contains(&c.name)) {
                return Ok(());
            }
        }
        outcome
    }

    async fn apply(&mut self, writes: &[TableWrite], position: &Position) -> Result<()> {
        // The data first, then the meta rows, then the offset: a crash in between writes the
        // batch again, onto the same keys or positions with the same versions, so it collapses.
        for write in writes {
            match &write.write {
                Write::Insert(rows) => self.insert_rows(&write.table, rows, position).await?,
                Write::Target(plan) => self.apply_plan(&write.table, plan, position).await?,
            }
        }
        if let Some(meta) = &self.options.meta_table {
            let name = TableName { schema: meta.schema.clone(), table: meta.table.clone() };
            for write in writes {
                if let Write::Target(plan) = &write.write {
                    self.apply_meta(&name, &write.table.source, plan.truncate, &plan.meta).await?;
                }
            }
        }
        let row = serde_json::json!({
            "sink_id": position.sink_id, "topic": position.topic, "partition": position.partition,
            "next_offset": position.next_offset, "updated_ms": crate::table::now_ms(),
        });
        let offsets = TableName { schema: self.options.meta_schema.clone(), table: "sink_offsets".into() };
        self.insert(&offsets, format!("{row}\n")).await.map_err(|f| f.into_error(&format!("insert into {offsets}")))
    }

    async fn committed(&mut self, sink_id: &str, partitions: &[TopicPartition]) -> Result<Vec<(TopicPartition, i64)>> {
        let sql = format!(
            "SELECT topic, partition, next_offset FROM {}.sink_offsets FINAL WHERE sink_id = {} FORMAT JSONEachRow",
            ident(&self.options.meta_schema),
            string(sink_id)
        );
        let answer = self.client.query(&sql, &READ_SETTINGS).await.map_err(|f| f.into_error(&sql))?;
        let found: Vec<OffsetRow> = rows(&answer, "sink_offsets")?;
        Ok(found.into_iter().map(|r| ((r.topic, r.partition), r.next_offset)).filter(|(tp, _)| partitions.contains(tp)).collect())
    }

    /// ClickHouse has no locks: the staging table is renamed away whole (inserts under way
    /// finish into it, the sink's next insert creates a new one), resolved, and dropped. A
    /// generation left by a resolution that died is resolved first.
    async fn resolve(&mut self, staging: &DestTable, target: &DestTable, resolution: Resolution) -> Result<u64> {
        if resolution == Resolution::None {
            return Ok(0);
        }
        let taken = TableName { schema: staging.name.schema.clone(), table: format!("{}__ds_resolving", staging.name.table) };
        let mut resolved = 0;
        if self.exists(&taken).await? {
            resolved += self.resolve_generation(&taken, target, resolution).await?;
        }
        if self.exists(&staging.name).await? {
            self.execute(&format!("RENAME TABLE {} TO {}", qualified(&staging.name), qualified(&taken))).await?;
            self.create(staging).await?;
            resolved += self.resolve_generation(&taken, target, resolution).await?;
        }
        Ok(resolved)
    }
}
