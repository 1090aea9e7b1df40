#![allow(clippy::expect_used)] // tests: a failed expectation is the report

//! On an idle source, heartbeat messages move the slot forward and produce no records.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ductstream_cdc::{Lsn, MemoryCheckpointStore, MemoryWriter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_advance_an_idle_slot_without_records() {
    let pg = cluster();
    let db = sql(&pg).await;
    db.batch_execute("CREATE TABLE quiet (id int PRIMARY KEY)").await.expect("setup");
    let writer = Arc::new(MemoryWriter::new());
    let store = Arc::new(MemoryCheckpointStore::new());
    let flow = start(options(&pg, &[("publication_tables", "quiet"), ("heartbeat_interval", "200ms")]), &writer, &store);
    flow.streaming().await;
    let start = flow.handle.status().confirmed_lsn;
    assert!(flow.handle.wait_for(PATIENCE, |s| s.confirmed_lsn > start).await, "{:?}", flow.handle.status());
    let confirmed = flow.handle.status().confirmed_lsn;

    // The server hears about it through a standby status update.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let row = db
            .query_one("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'ductstream'", &[])
            .await
            .expect("slot");
        let on_server: Lsn = row.get::<_, String>(0).parse().expect("lsn");
        if on_server >= confirmed {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot stays at {on_server}, flow confirmed {confirmed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(writer.records("cdc.public.quiet").len(), 0);
    assert!(writer.topics().iter().all(|t| writer.records(t).is_empty()), "{:?}", writer.topics());
    assert!(store.get("ductstream").expect("checkpoint").lsn >= confirmed);
    flow.stop().await.expect("clean stop");
}
