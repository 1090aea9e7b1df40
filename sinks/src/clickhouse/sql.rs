//! ClickHouse SQL: identifiers, literals, and the statements that do not depend on a batch.

use crate::table::layout::{ENGINE_DELETED, ENGINE_OFFSET, ENGINE_VERSION, STAGE_LSN, STAGE_OP, STAGE_SEQ};
use crate::table::{DestColumn, DestTable, Source, TableName};

use super::encode::strip_wrappers;

/// The change's topic and partition: with [`ENGINE_OFFSET`] (or a staging table's
/// [`STAGE_SEQ`]) the position that orders a table without a key. The store writes them from
/// the batch, as change events do not carry them.
pub const TOPIC: &str = "__ds_topic";
pub const PARTITION: &str = "__ds_partition";

/// `` `name` `` with backslashes and backquotes escaped.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

/// `` `database`.`table` ``.
pub fn qualified(table: &TableName) -> String {
    format!("{}.{}", ident(&table.schema), ident(&table.table))
}

/// A string literal.
pub fn string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A constant of column type `ty` from its text (as JSONEachRow wrote it, unquoted): the key
/// values the sink looks rows up by.
pub fn typed_literal(text: &str, ty: &str) -> String {
    let ty = strip_wrappers(ty);
    if ty == "String" {
        string(text)
    } else if ty.starts_with("DateTime64") {
        format!("CAST(parseDateTime64BestEffort({}, 6) AS {ty})", string(text))
    } else if ty.starts_with("DateTime") {
        format!("CAST(parseDateTimeBestEffort({}) AS {ty})", string(text))
    } else {
        format!("CAST({} AS {ty})", string(text))
    }
}

/// Whether the table is a staging table (it has the staging columns).
pub fn is_staging(table: &DestTable) -> bool {
    table.column(STAGE_SEQ).is_some()
}

/// A table without a key (append mode, a keyless source, staging) is ordered by the change's
/// position, which needs the batch's topic and partition.
pub fn positioned(table: &DestTable) -> bool {
    table.key.is_empty()
}

/// Whether a column may hold null: source columns outside the key, and the meta columns (a
/// tombstone has no commit time). Keys, ClickHouse's own and the staging columns always have
/// a value, and ClickHouse keeps nothing Nullable in a sorting key.
pub fn nullable(key: &[String], column: &DestColumn) -> bool {
    !key.contains(&column.name)
        && !matches!(column.source, Source::Version | Source::Tombstone | Source::Offset | Source::StageOp | Source::StageLsn | Source::StageSeq)
}

/// `CREATE TABLE IF NOT EXISTS`: a ReplacingMergeTree keyed by the primary key that keeps the
/// highest version, or, without a key, one ordered by the change's position (a replayed batch
/// collapses onto its rows). `types` are the columns' ClickHouse types, in order.
pub fn create_table(table: &DestTable, types: &[String]) -> String {
    let mut parts: Vec<String> = table.columns.iter().zip(types).map(|(c, ty)| format!("{} {ty}", ident(&c.name))).collect();
    let (engine, order) = if positioned(table) {
        parts.push(format!("{} String", ident(TOPIC)));
        parts.push(format!("{} Int32", ident(PARTITION)));
        let offset = if is_staging(table) { STAGE_SEQ } else { ENGINE_OFFSET };
        ("ReplacingMergeTree".to_owned(), [TOPIC, PARTITION, offset].map(ident).join(", "))
    } else {
        (format!("ReplacingMergeTree({})", ident(ENGINE_VERSION)), table.key.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", "))
    };
    format!("CREATE TABLE IF NOT EXISTS {} ({}) ENGINE = {engine} ORDER BY ({order})", qualified(&table.name), parts.join(", "))
}

/// `ALTER TABLE … ADD COLUMN …` (18.x has no `IF NOT EXISTS` there).
pub fn add_columns(table: &TableName, columns: &[(String, String)]) -> String {
    let adds: Vec<String> = columns.iter().map(|(name, ty)| format!("ADD COLUMN {} {ty}", ident(name))).collect();
    format!("ALTER TABLE {} {}", qualified(table), adds.join(", "))
}

/// The sink's offsets. The version is the offset, so the furthest one recorded is the one read
/// (the runtime never goes back past what the destination has).
pub fn create_offsets(database: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}.sink_offsets (sink_id String, topic String, partition Int32, next_offset UInt64, updated_ms UInt64) \
         ENGINE = ReplacingMergeTree(next_offset) ORDER BY (sink_id, topic, partition)",
        ident(database)
    )
}

/// The meta table: a source row's latest change per batch, per flow.
pub fn create_meta(meta: &TableName, synced_at_type: &str, engine: &str, order_by: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (flow_id String, source_schema String, source_table String, key_json String, op String, \
         lsn UInt64, synced_at {synced_at_type}, is_deleted UInt8) ENGINE = {engine} ORDER BY ({order_by})",
        qualified(meta)
    )
}

/// The columns a resolution writes into `target` and what it selects for each from the
/// staged rows: a staged delete is a tombstone; key columns are not Nullable in the target.
pub fn resolve_columns(target: &DestTable) -> (Vec<String>, Vec<String>) {
    let mut names: Vec<&str> = target.columns.iter().map(|c| c.name.as_str()).collect();
    if positioned(target) {
        names.extend([TOPIC, PARTITION]);
    }
    let exprs = names
        .iter()
        .map(|n| match *n {
            n if n == ENGINE_DELETED => format!("toUInt8({} = 'd')", ident(STAGE_OP)),
            n if target.key.iter().any(|k| k == n) => format!("assumeNotNull({})", ident(n)),
            n => ident(n),
        })
        .collect();
    (names.iter().map(|n| ident(n)).collect(), exprs)
}

/// The statement that applies a generation of staged rows (taken whole into `staged`) to the
/// target: the latest change per key after the last staged truncate (tombstones for deletes;
/// none after a replace, which emptied the target), or, without a key, every change in order.
pub fn resolve_insert(staged: &TableName, target: &DestTable, after_lsn: Option<i64>, replace: bool) -> String {
    let (names, exprs) = resolve_columns(target);
    let (op, lsn, seq) = (ident(STAGE_OP), ident(STAGE_LSN), ident(STAGE_SEQ));
    let after = after_lsn.map(|l| format!(" AND {lsn} > {l}")).unwrap_or_default();
    let from = format!("{} FINAL WHERE {op} != 't'{after}", qualified(staged));
    let select = if target.key.is_empty() {
        format!("SELECT {} FROM {from} ORDER BY {lsn}, {seq}", exprs.join(", "))
    } else {
        let keys: Vec<String> = target.key.iter().map(|k| ident(k)).collect();
        let latest = format!("SELECT * FROM {from} ORDER BY {}, {lsn} DESC, {seq} DESC LIMIT 1 BY {}", keys.join(", "), keys.join(", "));
        let live = if replace { format!(" WHERE {op} != 'd'") } else { String::new() };
        format!("SELECT {} FROM ({latest}){live}", exprs.join(", "))
    };
    format!("INSERT INTO {} ({}) {select}", qualified(&target.name), names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_literals() {
        assert_eq!(ident("we`ird\\"), "`we\\`ird\\\\`");
        assert_eq!(string("it's \\"), "'it\\'s \\\\'");
        assert_eq!(typed_literal("7", "Int32"), "CAST('7' AS Int32)");
        assert_eq!(typed_literal("a'b", "String"), "'a\\'b'");
        assert_eq!(typed_literal("2024-01-02T03:04:05Z", "DateTime64(6, 'UTC')"), "CAST(parseDateTime64BestEffort('2024-01-02T03:04:05Z', 6) AS DateTime64(6, 'UTC'))");
    }
}
