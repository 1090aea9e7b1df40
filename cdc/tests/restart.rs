#![allow(clippy::expect_used)] // tests: a failed expectation is the report

//! Restarting a flow from its checkpoint loses nothing: after a clean stop, after a failed
//! write (nothing unwritten is confirmed), and in the middle of the snapshot.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::*;
use ductstream_cdc::{CdcError, MemoryCheckpointStore, MemoryWriter};

fn ids(writer: &MemoryWriter, topic: &str) -> BTreeMap<i64, usize> {
    let mut ids = BTreeMap::new();
    for value in values(writer, topic) {
        *ids.entry(value["key"]["id"].as_i64().expect("id")).or_default() += 1;
    }
    ids
}

async fn wait_ids(writer: &MemoryWriter, topic: &str, want: usize) {
    let ok = writer
        .wait_until(PATIENCE, |t| {
            t.get(topic).is_some_and(|r| r.iter().filter_map(|r| r.key.clone()).collect::<BTreeSet<_>>().len() >= want)
        })
        .await;
    assert!(ok, "expected {want} distinct rows on {topic}, have {}", ids(writer, topic).len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_stop_and_after_failed_write_loses_nothing() {
    let pg = cluster();
    let db = sql(&pg).await;
    db.batch_execute("CREATE TABLE r (id int PRIMARY KEY, v text)").await.expect("setup");
    let writer = Arc::new(MemoryWriter::new());
    let store = Arc::new(MemoryCheckpointStore::new());
    let opts = options(&pg, &[("publication_tables", "r"), ("batch_size", "7")]);
    let topic = "cdc.public.r";

    let flow = start(opts.clone(), &writer, &store);
    flow.streaming().await;
    for i in 0..10 {
        db.batch_execute(&format!("INSERT INTO r SELECT g, 'a' FROM generate_series({}, {}) g", i * 10 + 1, i * 10 + 10))
            .await
            .expect("insert");
    }
    wait_ids(&writer, topic, 100).await;
    flow.stop().await.expect("clean stop");
    let first = store.get("ductstream").expect("checkpoint").lsn;

    // Changes made while the flow is down arrive after the restart.
    db.batch_execute("INSERT INTO r SELECT g, 'b' FROM generate_series(101, 200) g").await.expect("insert");
    let flow = start(opts.clone(), &writer, &store);
    flow.streaming().await;
    wait_ids(&writer, topic, 200).await;
    assert!(ids(&writer, topic).values().all(|n| *n == 1), "a clean stop confirms everything written");
    // The checkpoint is saved right after the records are written: wait for it, not race it.
    let deadline = std::time::Instant::now() + PATIENCE;
    while store.get("ductstream").expect("checkpoint").lsn <= first && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(store.get("ductstream").expect("checkpoint").lsn > first);

    // A failed write stops the flow without confirming; the restarted flow writes it again.
    writer.set_failing(true);
    db.batch_execute("INSERT INTO r SELECT g, 'c' FROM generate_series(201, 250) g").await.expect("insert");
    let result = tokio::time::timeout(PATIENCE, flow.task).await.expect("flow ends").expect("task");
    assert!(matches!(result, Err(CdcError::Writer(_))), "{result:?}");
    writer.set_failing(false);
    let flow = start(opts, &writer, &store);
    flow.streaming().await;
    wait_ids(&writer, topic, 250).await;
    let seen = ids(&writer, topic);
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), (1..=250).collect::<Vec<_>>());
    flow.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_interrupted_midway_resumes_without_loss() {
    let pg = cluster();
    let db = sql(&pg).await;
    db.batch_execute(
        "CREATE TABLE s (id int PRIMARY KEY, v int);
         INSERT INTO s SELECT g, g FROM generate_series(1, 20000) g;",
    )
    .await
    .expect("setup");
    let writer = Arc::new(MemoryWriter::new());
    let store = Arc::new(MemoryCheckpointStore::new());
    let opts = options(
        &pg,
        &[
            ("publication_tables", "s"),
            ("snapshot_workers", "1"),
            ("partition_column", "id"),
            ("partition_count", "20"),
            ("batch_size", "100"),
        ],
    );
    let topic = "cdc.public.s";
    let flow = start(opts.clone(), &writer, &store);
    assert!(flow.handle.wait_for(PATIENCE, |s| s.snapshot_chunks_done >= 2).await, "{:?}", flow.handle.status());
    flow.stop().await.expect("stop during the snapshot");
    let progress = store.get("ductstream").expect("checkpoint").snapshot.expect("progress");

    // Changes after the consistent point, while the flow is down: to rows of chunks already
    // read, and of chunks not yet read.
    db.batch_execute("UPDATE s SET v = -1 WHERE id IN (1, 19999); DELETE FROM s WHERE id = 2; INSERT INTO s VALUES (20001, 0);")
        .await
        .expect("changes");
    let flow = start(opts, &writer, &store);
    flow.streaming().await;
    wait_ids(&writer, topic, 20001).await;
    flow.stop().await.expect("clean stop");
    let done = store.get("ductstream").expect("checkpoint").snapshot.expect("progress");
    assert!(done.complete, "{done:?}");
    assert!(progress.done.len() < 20 || progress.complete, "stopped before the end: {progress:?}");

    // Final state per key, applying records in order, equals the table.
    let mut state: BTreeMap<i64, Option<i64>> = BTreeMap::new();
    for value in values(&writer, topic) {
        let id = value["key"]["id"].as_i64().expect("id");
        match value["op"].as_str() {
            Some("d") => state.remove(&id),
            _ => state.insert(id, value["after"]["v"].as_i64()),
        };
    }
    let rows = db.query("SELECT id, v FROM s ORDER BY id", &[]).await.expect("rows");
    let table: BTreeMap<i64, Option<i64>> =
        rows.iter().map(|r| (i64::from(r.get::<_, i32>(0)), r.get::<_, Option<i32>>(1).map(i64::from))).collect();
    assert_eq!(state, table);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_flow_lets_its_source_shut_down_and_resumes_after() {
    let pg = cluster();
    let db = sql(&pg).await;
    db.batch_execute("CREATE TABLE quiet (id int PRIMARY KEY); CREATE TABLE busy (id int PRIMARY KEY)")
        .await
        .expect("setup");
    let writer = Arc::new(MemoryWriter::new());
    let store = Arc::new(MemoryCheckpointStore::new());
    // No heartbeats: they would give the flow something to confirm.
    let opts = options(&pg, &[("publication_tables", "quiet"), ("heartbeat_interval", "0")]);
    let flow = start(opts.clone(), &writer, &store);
    flow.streaming().await;
    // WAL the flow has no interest in: the server's sent position moves past anything the flow
    // could confirm from its own records. Postgres' fast shutdown waits for replication clients
    // to report their flush position at the sent one.
    db.batch_execute("INSERT INTO busy SELECT g FROM generate_series(1, 1000) g").await.expect("insert");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    drop(db);
    let pg = tokio::task::spawn_blocking(move || pg.stop().map(|()| pg))
        .await
        .expect("stop task")
        .expect("the source shuts down with an idle flow attached (pg_ctl stop -m fast)");
    flow.task.abort();

    pg.start_again().expect("start the source again");
    let db = sql(&pg).await;
    db.batch_execute("INSERT INTO quiet VALUES (1)").await.expect("insert after the restart");
    let flow = start(opts, &writer, &store);
    flow.streaming().await;
    wait_ids(&writer, "cdc.public.quiet", 1).await;
    assert_eq!(ids(&writer, "cdc.public.quiet").get(&1), Some(&1));
    flow.stop().await.expect("clean stop");
}
