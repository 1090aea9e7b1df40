#![allow(clippy::expect_used)] // tests: a failed expectation is the report

//! Bad inputs get their own error, with a message that says what to fix: a source without
//! wal_level=logical, a missing table, a wrong password, a slot already in use. Also the
//! md5 and SCRAM-SHA-256 logins of the replication client.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use ductstream_cdc::replication::ReplicationClient;
use ductstream_cdc::{CdcError, Lsn, MemoryCheckpointStore, MemoryWriter, SourceConfig};
use ductstream_storage::postgres::testing::TestPostgres;
use std::sync::Arc;

#[tokio::test]
async fn a_missing_table_is_named() {
    let pg = cluster();
    let error = start_error(options(&pg, &[("publication_tables", "public.nope")])).await;
    assert!(matches!(&error, CdcError::MissingTable { table } if table == "public.nope"), "{error:?}");
    assert!(error.to_string().contains("create it, or remove it from publication_tables"), "{error}");
}

/// Lets `alice` (SCRAM) and `bob` (md5) in with passwords only; everyone else stays trusted.
async fn require_passwords(pg: &TestPostgres) {
    let db = sql(pg).await;
    db.batch_execute(
        "SET password_encryption = 'scram-sha-256';
         CREATE ROLE alice LOGIN REPLICATION SUPERUSER PASSWORD 'right';
         SET password_encryption = 'md5';
         CREATE ROLE bob LOGIN REPLICATION SUPERUSER PASSWORD 'pw';",
    )
    .await
    .expect("roles");
    let hba: String = db.query_one("SHOW hba_file", &[]).await.expect("hba_file").get(0);
    let lines = [
        "local all all trust",
        "host all alice 127.0.0.1/32 scram-sha-256",
        "host all bob 127.0.0.1/32 md5",
        "host all all 127.0.0.1/32 trust",
        "host replication all 127.0.0.1/32 trust",
    ];
    let array = lines.iter().map(|l| format!("'{l}'")).collect::<Vec<_>>().join(",");
    db.batch_execute(&format!("COPY (SELECT unnest(ARRAY[{array}])) TO '{hba}'; SELECT pg_reload_conf();"))
        .await
        .expect("rewrite pg_hba.conf");
}

fn dsn(pg: &TestPostgres, user: &str, password: &str) -> String {
    format!("postgres://{user}:{password}@127.0.0.1:{}/ductstream", pg.port())
}

#[tokio::test]
async fn a_wrong_password_is_an_authentication_error_and_right_ones_log_in() {
    let pg = cluster();
    require_passwords(&pg).await;
    let mut opts = options(&pg, &[]);
    opts.dsn = dsn(&pg, "alice", "wrong");
    let error = start_error(opts).await;
    assert!(matches!(&error, CdcError::Authentication { user, .. } if user == "alice"), "{error:?}");
    assert!(error.to_string().contains("check the user and password"), "{error}");

    // The replication client's own logins: a wrong SCRAM password, then SCRAM and md5.
    let wrong = ReplicationClient::connect(&SourceConfig::parse(&dsn(&pg, "alice", "nope")).expect("dsn")).await;
    assert!(matches!(wrong, Err(CdcError::Authentication { .. })), "{:?}", wrong.err());
    for (user, password) in [("alice", "right"), ("bob", "pw")] {
        let mut client = ReplicationClient::connect(&SourceConfig::parse(&dsn(&pg, user, password)).expect("dsn"))
            .await
            .unwrap_or_else(|e| panic!("{user} logs in: {e}"));
        let system = client.identify_system().await.expect("IDENTIFY_SYSTEM");
        assert_eq!(system.dbname, "ductstream");
        assert!(system.xlog_pos > Lsn::ZERO);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_in_use_is_reported() {
    let pg = cluster();
    let writer = Arc::new(MemoryWriter::new());
    let store = Arc::new(MemoryCheckpointStore::new());
    let first = start(options(&pg, &[]), &writer, &store);
    first.streaming().await;

    let mut second = options(&pg, &[("flow_id", "other")]);
    second.flow_id = "other".into();
    let error = start_error(second).await;
    assert!(matches!(&error, CdcError::SlotInUse { slot, .. } if slot == "ductstream"), "{error:?}");
    assert!(error.to_string().contains("stop the other consumer"), "{error}");

    // The server's own refusal maps to the same error.
    let source = SourceConfig::parse(&pg.url()).expect("dsn");
    let client = ReplicationClient::connect(&source).await.expect("connect");
    let refused = client.start("ductstream", Lsn::ZERO, "ductstream", Duration::from_secs(10)).await;
    assert!(matches!(refused, Err(CdcError::SlotInUse { .. })), "{:?}", refused.err());
    first.stop().await.expect("clean stop");
}

/// Restarts the cluster's server with `wal_level=replica` (command-line settings beat
/// ALTER SYSTEM, and the harness passes wal_level=logical on the command line).
async fn restart_with_replica_wal_level(pg: &TestPostgres) {
    let db = sql(pg).await;
    let setting = |name: &'static str| {
        let db = &db;
        async move { db.query_one(&format!("SHOW {name}"), &[]).await.expect(name).get::<_, String>(0) }
    };
    let data = setting("data_directory").await;
    let socket = setting("unix_socket_directories").await;
    drop(db);
    let pg_ctl = std::env::split_paths(&std::env::var_os("PATH").expect("PATH"))
        .map(|d| d.join("pg_ctl"))
        .find(|p| p.is_file())
        .expect("pg_ctl on PATH");
    let log = Path::new(&data).parent().expect("cluster root").join("server.log");
    let server = format!("-p {} -k {socket} -c listen_addresses=127.0.0.1 -c wal_level=replica", pg.port());
    let args = ["-D", &data, "restart", "-m", "fast", "-w", "-t", "60", "-l", log.to_str().expect("path"), "-o", &server];
    let as_root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    let output = if as_root {
        Command::new("runuser").args(["-u", "postgres", "--"]).arg(&pg_ctl).args(args).output()
    } else {
        Command::new(&pg_ctl).args(args).output()
    }
    .expect("run pg_ctl");
    assert!(output.status.success(), "pg_ctl restart: {}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test]
async fn a_source_without_logical_wal_level_says_what_to_set() {
    let pg = cluster();
    restart_with_replica_wal_level(&pg).await;
    let error = start_error(options(&pg, &[])).await;
    assert!(
        matches!(&error, CdcError::ReplicationNotConfigured { setting, current, .. } if setting == "wal_level" && current == "replica"),
        "{error:?}"
    );
    assert!(error.to_string().contains("set wal_level = logical"), "{error}");

    // Without the up-front check, the server's refusal maps to the same variant.
    let error = start_error(options(&pg, &[("validate_replication", "false")])).await;
    assert!(matches!(&error, CdcError::ReplicationNotConfigured { setting, .. } if setting == "wal_level"), "{error:?}");
}
