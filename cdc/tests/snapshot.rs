#![allow(clippy::expect_used)] // tests: a failed expectation is the report

//! The initial snapshot of a 50k-row table, read by 4 workers in 8 ranges while inserts go on:
//! every row appears exactly once in the union of snapshot reads and streamed inserts.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::*;
use ductstream_cdc::{FlowPhase, MemoryCheckpointStore, MemoryWriter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_stream_meet_exactly_under_concurrent_inserts() {
    let pg = cluster();
    let db = sql(&pg).await;
    db.batch_execute(
        "CREATE TABLE big (id bigserial PRIMARY KEY, v int NOT NULL);
         INSERT INTO big (v) SELECT g FROM generate_series(1, 50000) g;",
    )
    .await
    .expect("setup");

    // Inserts in their own transactions, before, during and after slot creation and snapshot.
    let stop = Arc::new(AtomicBool::new(false));
    let inserted = Arc::new(AtomicU64::new(0));
    let inserter = {
        let (stop, inserted, db) = (stop.clone(), inserted.clone(), sql(&pg).await);
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                db.batch_execute("INSERT INTO big (v) VALUES (-1)").await.expect("insert");
                inserted.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    while inserted.load(Ordering::SeqCst) < 20 {
        tokio::task::yield_now().await;
    }

    let writer = Arc::new(MemoryWriter::new());
    let store = Arc::new(MemoryCheckpointStore::new());
    let flow = start(
        options(
            &pg,
            &[
                ("publication_tables", "public.big"),
                ("snapshot_workers", "4"),
                ("partition_column", "id"),
                ("partition_count", "8"),
                ("batch_size", "500"),
            ],
        ),
        &writer,
        &store,
    );
    flow.streaming().await;
    let after_start = inserted.load(Ordering::SeqCst);
    while inserted.load(Ordering::SeqCst) < after_start + 50 {
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::SeqCst);
    inserter.await.expect("inserter");

    let total: i64 = db.query_one("SELECT count(*) FROM big", &[]).await.expect("count").get(0);
    let topic = "cdc.public.big";
    let ok = writer
        .wait_until(PATIENCE, |t| {
            t.get(topic).is_some_and(|r| r.iter().filter_map(|r| r.key.clone()).collect::<std::collections::HashSet<_>>().len() >= total as usize)
        })
        .await;
    assert!(ok, "not every row arrived: {} records for {total} rows", writer.records(topic).len());
    // Stopping writes whatever is still buffered, so a duplicate would show in the count.
    let handle = flow.handle.clone();
    flow.stop().await.expect("clean stop");
    assert_eq!(handle.status().phase, FlowPhase::Stopped);

    let mut seen: HashMap<i64, Vec<String>> = HashMap::new();
    for value in values(&writer, topic) {
        let id = value["key"]["id"].as_i64().expect("id");
        seen.entry(id).or_default().push(value["op"].as_str().expect("op").to_string());
    }
    assert_eq!(seen.len() as i64, total);
    let repeated: Vec<_> = seen.iter().filter(|(_, ops)| ops.len() != 1).take(5).collect();
    assert!(repeated.is_empty(), "rows seen more than once: {repeated:?}");
    let reads = seen.values().filter(|ops| ops[0] == "r").count();
    let streamed = seen.values().filter(|ops| ops[0] == "c").count();
    assert!(reads >= 50_000 && streamed >= 50, "reads {reads}, streamed {streamed}");
    for id in 1..=50_000 {
        assert_eq!(seen.get(&id).map(|ops| ops[0].as_str()), Some("r"), "row {id} was not in the snapshot");
    }

    let checkpoint = store.get("ductstream").expect("checkpoint");
    let progress = checkpoint.snapshot.expect("snapshot progress");
    assert!(progress.complete);
    assert_eq!(progress.chunks.len(), 8);
    assert_eq!(progress.done.len(), 8);
}
