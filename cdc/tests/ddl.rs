#![allow(clippy::expect_used)] // tests: a failed expectation is the report

//! DDL capture: statements arrive on `<prefix>._ddl` in commit order with the row changes
//! around them; the gate pauses the flow until each one is approved, and a rejection stops it
//! before the DDL.

mod common;

use std::sync::Arc;

use common::*;
use ductstream_cdc::{CdcError, Flow, MemoryCheckpointStore, MemoryWriter};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_events_arrive_in_commit_order() {
    let pg = cluster();
    let db = sql(&pg).await;
    let writer = Arc::new(MemoryWriter::new());
    let store = Arc::new(MemoryCheckpointStore::new());
    let flow = start(options(&pg, &[("capture_ddl", "true")]), &writer, &store);
    flow.streaming().await;

    db.batch_execute("CREATE TABLE d1 (id int PRIMARY KEY, a text)").await.expect("create");
    db.batch_execute("INSERT INTO d1 VALUES (1, 'x')").await.expect("insert");
    db.batch_execute("ALTER TABLE d1 ADD COLUMN b int").await.expect("alter");
    db.batch_execute("BEGIN; INSERT INTO d1 VALUES (2, 'y', 3); CREATE INDEX d1_a ON d1 (a); COMMIT;").await.expect("tx");
    db.batch_execute("DROP TABLE d1").await.expect("drop");

    wait_records(&writer, "cdc._ddl", 4).await;
    wait_records(&writer, "cdc.public.d1", 2).await;
    let ddl = values(&writer, "cdc._ddl");
    let tags: Vec<&str> = ddl.iter().map(|v| v["tag"].as_str().expect("tag")).collect();
    assert_eq!(tags, ["CREATE TABLE", "ALTER TABLE", "CREATE INDEX", "DROP TABLE"]);
    assert_eq!(ddl[0]["query"], json!("CREATE TABLE d1 (id int PRIMARY KEY, a text)"));
    assert_eq!(ddl[0]["event"], json!("ddl_command_end"));
    assert_eq!(ddl[0]["objects"][0]["identity"], json!("public.d1"));
    assert_eq!(ddl[1]["objects"][0]["object_type"], json!("table"));
    assert_eq!(ddl[3]["event"], json!("sql_drop"));
    assert_eq!(ddl[3]["objects"], json!([{"command_tag": "DROP TABLE", "object_type": "table", "schema": "public", "identity": "public.d1"}]));

    let rows = values(&writer, "cdc.public.d1");
    assert_eq!(rows[0]["after"], json!({"id": 1, "a": "x"}));
    assert_eq!(rows[1]["after"], json!({"id": 2, "a": "y", "b": 3}));
    // Commit order across the two topics: create < insert 1 < alter < (insert 2 = index) < drop.
    let order = [lsn(&ddl[0]), lsn(&rows[0]), lsn(&ddl[1]), lsn(&rows[1]), lsn(&ddl[3])];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert_eq!(lsn(&rows[1]), lsn(&ddl[2]), "same transaction");
    flow.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_holds_ddl_until_approved_and_a_rejection_stops_the_flow() {
    let pg = cluster();
    let db = sql(&pg).await;
    db.batch_execute("CREATE TABLE g (id int PRIMARY KEY)").await.expect("setup");
    let writer = Arc::new(MemoryWriter::new());
    let store = Arc::new(MemoryCheckpointStore::new());
    let mut flow = Flow::new(options(&pg, &[("capture_ddl", "true"), ("ddl_gate", "true")]), writer.clone(), store.clone())
        .expect("flow");
    let mut gate = flow.take_ddl_gate().expect("gate");
    let running = Running { handle: flow.handle(), task: tokio::spawn(flow.run()) };
    running.streaming().await;

    db.batch_execute("INSERT INTO g VALUES (1); ALTER TABLE g ADD COLUMN v int;").await.expect("alter");
    db.batch_execute("INSERT INTO g VALUES (2, 2)").await.expect("insert");
    let request = tokio::time::timeout(PATIENCE, gate.next()).await.expect("a request").expect("open gate");
    assert_eq!(request.event.tag, "ALTER TABLE");
    // While the request waits, the change before it is written, nothing after it.
    wait_records(&writer, "cdc.public.g", 1).await;
    assert!(writer.records("cdc._ddl").is_empty());
    assert_eq!(writer.records("cdc.public.g").len(), 1);
    request.approve();
    wait_records(&writer, "cdc.public.g", 2).await;
    wait_records(&writer, "cdc._ddl", 1).await;

    db.batch_execute("DROP TABLE g").await.expect("drop");
    let request = tokio::time::timeout(PATIENCE, gate.next()).await.expect("a request").expect("open gate");
    assert_eq!(request.event.tag, "DROP TABLE");
    request.reject("not today");
    let result = tokio::time::timeout(PATIENCE, running.task).await.expect("flow ends").expect("task");
    assert!(matches!(&result, Err(CdcError::DdlRejected { reason, .. }) if reason == "not today"), "{result:?}");
    assert_eq!(writer.records("cdc._ddl").len(), 1, "the rejected DDL is not written");
}
