//! The DuckDB store against real database files: batches planned by the shared machinery,
//! applied, read back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::registry::{is_open, Lease};
use super::{DuckDbStore, Target};
use crate::table::change::{Op, TableChange};
use crate::table::plan::{append_rows, target_plan};
use crate::table::shape::{SourceColumn, SourceShape};
use crate::table::{DestTable, Dialect, Position, Resolution, TableName, TableOptions, TableStore, TableWrite, Write};
use crate::{Options, Sink, SinkBatch, SinkError, SinkRecord};

fn options(pairs: &[(&str, &str)]) -> TableOptions {
    let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    TableOptions::take(&mut Options::new("duckdb", &map), "ductstream_meta", "__metadata", "s1").unwrap_or_else(|e| panic!("{e}"))
}

fn column(name: &str, type_text: &str) -> SourceColumn {
    SourceColumn { name: name.into(), type_text: type_text.into(), type_name: type_text.into(), type_schema: "pg_catalog".into() }
}

/// A source table with a column of each kind of value.
fn items(options: &TableOptions) -> DestTable {
    let shape = SourceShape {
        columns: vec![
            column("id", "integer"),
            column("v", "text"),
            column("big", "text"),
            column("amount", "numeric(12,3)"),
            column("ratio", "numeric"),
            column("payload", "bytea"),
            column("at", "timestamp without time zone"),
            column("at_tz", "timestamp with time zone"),
            column("day", "date"),
            column("span", "interval"),
            column("uid", "uuid"),
            column("doc", "jsonb"),
            column("nums", "integer[]"),
            column("tags", "text[]"),
            column("blobs", "bytea[]"),
        ],
        key: vec!["id".into()],
    };
    let name = TableName { schema: "public".into(), table: "items".into() };
    DestTable::new(Dialect::DuckDb, name.clone(), name, &shape, options, true)
}

fn object(v: Value) -> Option<Map<String, Value>> {
    match v {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

fn change(op: Op, key: Value, before: Value, after: Value, toast: &[&str], lsn: u64, offset: i64) -> TableChange {
    TableChange {
        op,
        schema: "public".into(),
        table: "items".into(),
        key: object(key),
        before: object(before),
        after: object(after),
        unchanged_toast: toast.iter().map(|s| s.to_string()).collect(),
        lsn,
        commit_ms: 1_700_000_000_000,
        xid: Some(750),
        offset,
    }
}

fn item(id: i64) -> Value {
    json!({
        "id": id, "v": format!("v{id}"), "big": format!("big-{id}"), "amount": format!("{id}.125"),
        "ratio": "12345678901234567890.0123456789", "payload": "AP8B", "at": "2024-01-02T03:04:05.123456",
        "at_tz": "2024-01-02T01:04:05.5Z", "day": "0044-03-15 BC", "span": "P1Y2M3DT4H5M6.5S",
        "uid": "00000000-0000-0000-0000-000000000001", "doc": {"a": [id, "x"], "s": "q\"uote"},
        "nums": [id, null, 3], "tags": ["t\"q", null, "a,b"], "blobs": ["AP8B", null]
    })
}

fn position(next_offset: i64) -> Position {
    Position { sink_id: "s1".into(), topic: "t".into(), partition: 0, next_offset }
}

struct Db {
    _dir: tempfile::TempDir,
    file: PathBuf,
}

fn db() -> Db {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("nested/warehouse.duckdb");
    Db { _dir: dir, file }
}

/// Every row of `sql`, each column as text.
fn read(file: &Path, sql: &str) -> Vec<Vec<Option<String>>> {
    let lease = Lease::open(&Target::File(file.to_path_buf())).unwrap_or_else(|e| panic!("{e}"));
    let conn = lease.connection().unwrap_or_else(|e| panic!("{e}"));
    let mut statement = conn.prepare(&format!("SELECT COLUMNS(*)::VARCHAR FROM ({sql})")).unwrap_or_else(|e| panic!("{e}: {sql}"));
    let mut rows = statement.query([]).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap_or_else(|e| panic!("{e}")) {
        let width = row.as_ref().column_count();
        out.push((0..width).map(|i| row.get::<_, Option<String>>(i).unwrap_or_else(|e| panic!("{e}"))).collect());
    }
    out
}

fn texts(rows: &[Vec<Option<String>>]) -> Vec<String> {
    rows.iter().map(|r| r.iter().map(|c| c.clone().unwrap_or_else(|| "∅".into())).collect::<Vec<_>>().join("|")).collect()
}

async fn apply_target(store: &mut DuckDbStore, table: &DestTable, changes: &[TableChange], next_offset: i64) -> crate::Result<()> {
    let refs: Vec<&TableChange> = changes.iter().collect();
    let (plan, refused) = target_plan(table, &refs, false, 1_700_000_000_000);
    assert!(refused.is_empty());
    store.apply(&[TableWrite { table: table.clone(), write: Write::Target(plan) }], &position(next_offset)).await
}

#[tokio::test]
async fn target_mode_applies_truncates_deletes_upserts_kept_and_moved_cells() {
    let db = db();
    let options = options(&[]);
    let table = items(&options);
    let mut store = DuckDbStore::new(Target::File(db.file.clone()), options);
    store.open().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.columns(&table.name).await.unwrap_or_else(|e| panic!("{e}")), None);
    store.create(&table).await.unwrap_or_else(|e| panic!("{e}"));
    let inserts: Vec<TableChange> = (1..=4).map(|id| change(Op::Read, json!({"id": id}), Value::Null, item(id), &[], 10, id)).collect();
    apply_target(&mut store, &table, &inserts, 5).await.unwrap_or_else(|e| panic!("{e}"));

    let typed = read(&db.file, "SELECT amount, ratio, payload, \"at\", at_tz, day, span, uid, doc, nums, tags, blobs FROM public.items WHERE id = 1");
    assert_eq!(
        texts(&typed),
        vec![
            "1.125|12345678901234567890.0123456789|\\x00\\xFF\\x01|2024-01-02 03:04:05.123456|2024-01-02 01:04:05.5+00|0044-03-15 (BC)|\
             1 year 2 months 3 days 04:05:06.5|00000000-0000-0000-0000-000000000001|{\"a\":[1,\"x\"],\"s\":\"q\\\"uote\"}|[1, NULL, 3]|\
             ['t\"q', NULL, 'a,b']|[\\x00\\xFF\\x01, NULL]"
        ]
    );

    let changes = vec![
        // big is an unchanged TOAST value: kept.
        change(Op::Update, json!({"id": 1}), Value::Null, json!({"id": 1, "v": "renamed", "amount": null}), &["big"], 11, 5),
        // A key change that keeps big (and amount, which it does not carry): the new row
        // takes them from the old one.
        change(Op::Update, json!({"id": 20}), json!({"id": 2}), json!({"id": 20, "v": "moved"}), &["big"], 11, 6),
        change(Op::Delete, json!({"id": 3}), json!({"id": 3}), Value::Null, &[], 11, 7),
        // A key change within the batch, then an update of the new key.
        change(Op::Update, json!({"id": 40}), json!({"id": 4}), json!({"id": 40, "v": "four"}), &["big"], 12, 8),
        change(Op::Update, json!({"id": 41}), json!({"id": 40}), json!({"id": 41, "v": "four again"}), &["big", "amount"], 12, 9),
    ];
    apply_target(&mut store, &table, &changes, 10).await.unwrap_or_else(|e| panic!("{e}"));
    let rows = read(&db.file, "SELECT id, v, big, amount FROM public.items ORDER BY id");
    assert_eq!(texts(&rows), vec!["1|renamed|big-1|∅", "20|moved|big-2|2.125", "41|four again|big-4|4.125"]);
    let committed = store.committed("s1", &[("t".into(), 0), ("t".into(), 1)]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(committed, vec![(("t".to_string(), 0), 10)]);

    let meta = read(&db.file, "SELECT key_json, op, lsn, is_deleted FROM ductstream_meta.__metadata ORDER BY key_json");
    assert!(texts(&meta).contains(&"{\"id\":3}|d|11|true".to_string()), "{meta:?}");
    assert!(texts(&meta).contains(&"{\"id\":41}|u|12|false".to_string()), "{meta:?}");

    // A truncate drops what came before it; what follows it lands.
    let truncated = vec![
        change(Op::Insert, json!({"id": 7}), Value::Null, item(7), &[], 13, 10),
        change(Op::Truncate, Value::Null, Value::Null, Value::Null, &[], 13, 11),
        change(Op::Insert, json!({"id": 1}), Value::Null, item(1), &[], 13, 12),
    ];
    apply_target(&mut store, &table, &truncated, 13).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(texts(&read(&db.file, "SELECT id, v, big FROM public.items ORDER BY id")), vec!["1|v1|big-1"]);
    assert_eq!(texts(&read(&db.file, "SELECT key_json FROM ductstream_meta.__metadata")), vec!["{\"id\":1}"]);
    store.close().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!is_open(&db.file));
}

#[tokio::test]
async fn a_batch_that_fails_changes_nothing_and_names_the_column() {
    let db = db();
    let options = options(&[]);
    let table = items(&options);
    let mut store = DuckDbStore::new(Target::File(db.file.clone()), options);
    store.open().await.unwrap_or_else(|e| panic!("{e}"));
    store.create(&table).await.unwrap_or_else(|e| panic!("{e}"));
    apply_target(&mut store, &table, &[change(Op::Insert, json!({"id": 1}), Value::Null, item(1), &[], 10, 0)], 1).await.unwrap_or_else(|e| panic!("{e}"));
    // A numeric the DECIMAL cannot hold is refused before anything is written; a uuid that
    // is none fails DuckDB's cast inside the transaction, after the delete: rolled back.
    for (column, value, expected) in [("amount", "NaN", "DECIMAL(12,3) cannot hold it"), ("uid", "not-a-uuid", "when casting from source column uid")] {
        let mut bad = item(2);
        bad[column] = json!(value);
        let changes = [change(Op::Delete, json!({"id": 1}), json!({"id": 1}), Value::Null, &[], 11, 1), change(Op::Insert, json!({"id": 2}), Value::Null, bad, &[], 11, 2)];
        match apply_target(&mut store, &table, &changes, 3).await {
            Err(SinkError::Fatal(m)) => assert!(m.contains(expected) && m.contains("public.items"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    let changes = [change(Op::Delete, json!({"id": 1}), json!({"id": 1}), Value::Null, &[], 11, 1)];
    assert_eq!(texts(&read(&db.file, "SELECT id FROM public.items")), vec!["1"]);
    assert_eq!(store.committed("s1", &[("t".into(), 0)]).await.unwrap_or_else(|e| panic!("{e}")), vec![(("t".to_string(), 0), 1)]);
    // The connection is usable after the failed transaction.
    apply_target(&mut store, &table, &changes[..1], 3).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(read(&db.file, "SELECT id FROM public.items").is_empty());
    store.close().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn staging_tables_resolve_by_append_and_replace() {
    let db = db();
    let options = options(&[("batch_mode", "staging"), ("batch_resolution", "append")]);
    let target = items(&options);
    let staging = target.staging(Dialect::DuckDb, TableName { schema: "landing".into(), table: "items_staging".into() });
    let mut store = DuckDbStore::new(Target::File(db.file.clone()), options);
    store.open().await.unwrap_or_else(|e| panic!("{e}"));
    store.create(&target).await.unwrap_or_else(|e| panic!("{e}"));
    store.create(&staging).await.unwrap_or_else(|e| panic!("{e}"));
    let stage = |changes: Vec<TableChange>| {
        let refs: Vec<&TableChange> = changes.iter().collect();
        vec![TableWrite { table: staging.clone(), write: Write::Insert(append_rows(&staging, &refs, 0)) }]
    };
    // Rows 1..3 land in the target; then a truncate and, in its transaction (same LSN), row 5;
    // row 1 updated, row 5 deleted and inserted again.
    let first = stage((1..=3).map(|id| change(Op::Insert, json!({"id": id}), Value::Null, item(id), &[], 10, id)).collect());
    store.apply(&first, &position(4)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.resolve(&staging, &target, Resolution::None).await.unwrap_or_else(|e| panic!("{e}")), 0);
    assert_eq!(store.resolve(&staging, &target, Resolution::Append).await.unwrap_or_else(|e| panic!("{e}")), 3);
    assert_eq!(texts(&read(&db.file, "SELECT id FROM public.items ORDER BY id")), vec!["1", "2", "3"]);
    let mut renamed = item(1);
    renamed["v"] = json!("renamed");
    let second = stage(vec![
        change(Op::Delete, json!({"id": 2}), json!({"id": 2}), Value::Null, &[], 11, 4),
        change(Op::Update, json!({"id": 1}), Value::Null, renamed, &[], 11, 5),
    ]);
    store.apply(&second, &position(6)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.resolve(&staging, &target, Resolution::Append).await.unwrap_or_else(|e| panic!("{e}")), 2);
    assert_eq!(texts(&read(&db.file, "SELECT id, v FROM public.items ORDER BY id")), vec!["1|renamed", "3|v3"]);
    let third = stage(vec![
        change(Op::Insert, json!({"id": 4}), Value::Null, item(4), &[], 12, 6),
        change(Op::Truncate, Value::Null, Value::Null, Value::Null, &[], 13, 7),
        change(Op::Insert, json!({"id": 5}), Value::Null, item(5), &[], 13, 8),
        change(Op::Delete, json!({"id": 5}), json!({"id": 5}), Value::Null, &[], 14, 9),
        change(Op::Insert, json!({"id": 5}), Value::Null, item(5), &[], 15, 10),
        change(Op::Insert, json!({"id": 6}), Value::Null, item(6), &[], 15, 11),
        change(Op::Insert, json!({"id": 7}), Value::Null, item(7), &[], 13, 12),
    ]);
    store.apply(&third, &position(13)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.resolve(&staging, &target, Resolution::Append).await.unwrap_or_else(|e| panic!("{e}")), 7);
    // 7 shares the truncate's LSN (its transaction's) but comes after it: it stays.
    assert_eq!(texts(&read(&db.file, "SELECT id FROM public.items ORDER BY id")), vec!["5", "6", "7"]);
    // Replace: the target becomes the staged rows' latest state.
    let fourth = stage(vec![change(Op::Insert, json!({"id": 9}), Value::Null, item(9), &[], 16, 13)]);
    store.apply(&fourth, &position(14)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.resolve(&staging, &target, Resolution::Replace).await.unwrap_or_else(|e| panic!("{e}")), 1);
    assert_eq!(texts(&read(&db.file, "SELECT id FROM public.items ORDER BY id")), vec!["9"]);
    assert!(read(&db.file, "SELECT * FROM landing.items_staging").is_empty());
    store.close().await.unwrap_or_else(|e| panic!("{e}"));
}

fn record(offset: i64, value: Value) -> SinkRecord {
    SinkRecord {
        topic: "f.public.t".into(),
        partition: 0,
        offset,
        timestamp: 0,
        key: None,
        value: Some(value.to_string().into()),
        headers: vec![("ductstream.format".into(), Some("json".into()))],
    }
}

#[tokio::test]
async fn sinks_of_one_process_share_a_file_and_the_last_closes_it() {
    let db = db();
    let dsn = |path: &Path| [("dsn".to_string(), path.display().to_string())].into_iter().collect::<BTreeMap<_, _>>();
    let mut map = dsn(&db.file);
    map.insert("write_mode".into(), "append".into());
    map.insert("meta_enabled".into(), "true".into());
    let mut history = super::sink(Options::new("duckdb", &map), "f.history").unwrap_or_else(|e| panic!("{e}"));
    // The same file, spelled another way, in duckdb:// form.
    let other = db.file.parent().map(|p| p.join("../nested/./warehouse.duckdb")).unwrap_or_default();
    let mut map = dsn(Path::new(&format!("duckdb://{}", other.display())));
    map.insert("schema".into(), "mirror".into());
    let mut mirror = super::sink(Options::new("duckdb", &map), "f.mirror").unwrap_or_else(|e| panic!("{e}"));
    history.open().await.unwrap_or_else(|e| panic!("{e}"));
    mirror.open().await.unwrap_or_else(|e| panic!("{e}"));
    let changes = [
        json!({"op": "c", "schema": "public", "table": "t", "key": {"id": 1}, "after": {"id": 1, "v": "a"}, "lsn": "0/10", "ts_ms": 5}),
        json!({"op": "u", "schema": "public", "table": "t", "key": {"id": 1}, "after": {"id": 1, "v": "b"}, "lsn": "0/20", "ts_ms": 6}),
        json!({"op": "d", "schema": "public", "table": "t", "key": {"id": 1}, "before": {"id": 1}, "lsn": "0/30", "ts_ms": 7}),
        json!({"op": "c", "schema": "public", "table": "t", "key": {"id": 2}, "after": {"id": 2, "v": "c"}, "lsn": "0/30", "ts_ms": 7}),
    ];
    let batch = SinkBatch { topic: "f.public.t".into(), partition: 0, first_offset: 0, last_offset: 3, records: changes.into_iter().enumerate().map(|(i, v)| record(i as i64, v)).collect() };
    assert!(history.write(&batch).await.unwrap_or_else(|e| panic!("{e}")).is_empty());
    assert!(mirror.write(&batch).await.unwrap_or_else(|e| panic!("{e}")).is_empty());
    assert_eq!(
        texts(&read(&db.file, "SELECT id, v, __ds_op, __ds_is_deleted FROM public.t ORDER BY __ds_watermark, id")),
        vec!["1|a|c|false", "1|b|u|false", "1|∅|d|true", "2|c|c|false"]
    );
    assert_eq!(texts(&read(&db.file, "SELECT id, v FROM mirror.t")), vec!["2|c"]);
    let partitions = [("f.public.t".to_string(), 0)];
    assert_eq!(mirror.committed(&partitions).await.unwrap_or_else(|e| panic!("{e}")), vec![(partitions[0].clone(), 4)]);
    history.close().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(is_open(&db.file), "the other sink still has it");
    mirror.close().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!is_open(&db.file));
}

#[tokio::test]
async fn what_is_not_a_database_fails_the_sink() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let not_a_db = dir.path().join("notes.txt");
    std::fs::write(&not_a_db, "hello").unwrap_or_else(|e| panic!("{e}"));
    for target in [Target::File(not_a_db.clone()), Target::File(not_a_db.join("sub/x.duckdb")), Target::File(dir.path().to_path_buf())] {
        let mut store = DuckDbStore::new(target.clone(), options(&[]));
        match store.open().await {
            Err(SinkError::Fatal(m)) => assert!(m.starts_with("duckdb destination: "), "{m}"),
            other => panic!("{target:?}: {other:?}"),
        }
    }
    assert!(matches!(Target::parse("duckdb://:memory:"), Ok(Target::Memory)));
    assert_eq!(Target::parse("duckdb://./data/w.duckdb").ok(), Some(Target::File("./data/w.duckdb".into())));
    for bad in ["", "duckdb://", "md:warehouse", "s3://bucket/x.duckdb"] {
        assert!(matches!(Target::parse(bad), Err(SinkError::Config(_))), "{bad}");
    }
}
