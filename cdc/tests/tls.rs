#![allow(clippy::expect_used)] // tests: a failed expectation is the report

//! A source that takes TCP connections over TLS only: the flow's SQL connections and its
//! replication connection negotiate TLS as `sslmode` says.

mod common;

use std::sync::Arc;

use common::*;
use ductstream_cdc::{MemoryCheckpointStore, MemoryWriter, SourceConfig};
use ductstream_storage::postgres::testing::TestPostgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_streams_from_a_source_that_requires_tls() {
    let pg = TestPostgres::start_with_tls().unwrap_or_else(|e| panic!("cannot start a TLS test postgres: {e}"));
    let root = pg.tls_root_cert().expect("root certificate").display().to_string();
    let verified = format!("{}?sslmode=verify-full&sslrootcert={root}", pg.url());
    let db = SourceConfig::parse(&verified).expect("dsn").connect().await.expect("SQL over TLS");
    db.batch_execute("CREATE TABLE sealed (id int PRIMARY KEY, v text); INSERT INTO sealed VALUES (1, 'before')")
        .await
        .expect("setup");

    let writer = Arc::new(MemoryWriter::new());
    let store = Arc::new(MemoryCheckpointStore::new());
    let flow = start(options(&pg, &[("dsn", verified.as_str()), ("publication_tables", "sealed")]), &writer, &store);
    flow.streaming().await;
    db.batch_execute("INSERT INTO sealed VALUES (2, 'after')").await.expect("insert");
    wait_records(&writer, "cdc.public.sealed", 2).await;
    let ids: Vec<i64> = values(&writer, "cdc.public.sealed").iter().map(|v| v["after"]["id"].as_i64().expect("id")).collect();
    assert_eq!(ids, vec![1, 2], "the snapshot row, then the streamed one");
    flow.stop().await.expect("stop");

    // Plain connections are refused by the server, with its reason.
    let plain = format!("{}?sslmode=disable", pg.url());
    let error = start_error(options(&pg, &[("dsn", plain.as_str()), ("publication_tables", "sealed")])).await;
    assert!(error.to_string().contains("no encryption"), "{error}");
}
