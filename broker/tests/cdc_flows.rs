#![allow(clippy::expect_used)] // tests: a failed expectation is the report
//! CDC flows through the real broker: created with `ductstream-admin flow create -f`, run by
//! the broker, read back from the topics; a kill -9 and restart resumes the flow; bad sources
//! end FAILED with a message that says what to fix.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{admin, Broker};
use ductstream_proto::v1 as pb;
use ductstream_proto::v1::flow_service_client::FlowServiceClient;
use ductstream_proto::v1::stream_service_client::StreamServiceClient;
use ductstream_storage::postgres::testing::TestPostgres;
use serde_json::Value;
use tonic::transport::Channel;

/// A throwaway source database with `schema` run in it, and a connection to it.
async fn source(schema: &str) -> (TestPostgres, tokio_postgres::Client) {
    let pg = TestPostgres::start().expect("test postgres");
    let db = sql(&pg).await;
    db.batch_execute(schema).await.expect("schema");
    (pg, db)
}

async fn sql(pg: &TestPostgres) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.expect("connect to the source");
    tokio::spawn(connection);
    client
}

fn grpc(broker: &Broker) -> String {
    format!("http://{}", broker.grpc.expect("grpc"))
}


/// Writes a flow file for `dsn` and creates the flow with the CLI.
fn create_flow(server: &str, dir: &std::path::Path, id: &str, dsn: &str, extra: &[(&str, &str)]) -> Value {
    let mut options = serde_json::Map::new();
    options.insert("dsn".into(), Value::String(dsn.into()));
    options.insert("slot".into(), Value::String(format!("{id}_slot")));
    options.insert("publication".into(), Value::String(format!("{id}_pub")));
    options.insert("publication_tables".into(), Value::String("public.users".into()));
    options.insert("batch_timeout".into(), Value::String("100ms".into()));
    for (k, v) in extra {
        options.insert((*k).into(), Value::String((*v).into()));
    }
    let flow = serde_json::json!({
        "id": id,
        "name": id,
        "source": {"name": "app", "type": "postgres", "options": options},
        "destinations": [{"name": "topics", "type": "topics"}],
        "parallelism": 2,
    });
    create_flow_from(server, dir, &flow)
}

/// Writes `flow` to `<id>.json` in `dir` and creates it with the CLI; returns the flow as
/// created.
fn create_flow_from(server: &str, dir: &std::path::Path, flow: &Value) -> Value {
    let path = dir.join(format!("{}.json", flow["id"].as_str().expect("the flow has an id")));
    std::fs::write(&path, flow.to_string()).expect("write flow file");
    let (ok, created, out) = admin(server, &["--json", "flow", "create", "-f", path.to_str().expect("path")]);
    assert!(ok, "{out}");
    created
}

async fn flows(broker: &Broker) -> FlowServiceClient<Channel> {
    FlowServiceClient::connect(grpc(broker)).await.expect("connect")
}

/// Waits until the flow's stored state is `state`.
async fn wait_state(broker: &Broker, id: &str, state: pb::FlowState) -> pb::Flow {
    let mut client = flows(broker).await;
    for _ in 0..300 {
        let flow = client.get_flow(pb::FlowRef { id: id.into() }).await.expect("get flow").into_inner();
        if flow.state == state as i32 {
            return flow;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("flow {id} never reached {state:?}; broker log:\n{}", broker.stderr());
}

/// Reads `count` records of `topic` with a durable consumer (created on first use).
async fn read_values(broker: &Broker, topic: &str, group: &str, count: usize) -> Vec<Value> {
    let mut api = StreamServiceClient::connect(grpc(broker)).await.expect("connect");
    let config = pb::ConsumerConfig { stream: topic.into(), group: group.into(), ..Default::default() };
    for _ in 0..100 {
        match api.create_consumer(pb::CreateConsumerRequest { config: Some(config.clone()) }).await {
            Ok(_) => break,
            Err(s) if s.code() == tonic::Code::AlreadyExists => break,
            // The topic appears with the flow's first write.
            Err(s) if s.code() == tonic::Code::NotFound => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(s) => panic!("create consumer: {s}"),
        }
    }
    let mut values = Vec::new();
    let mut empty_pulls = 0;
    // Patient for the first record (the flow may still be starting), brief after that.
    while values.len() < count && empty_pulls < if values.is_empty() { 100 } else { 10 } {
        let request = pb::PullRequest {
            stream: topic.into(),
            group: group.into(),
            max_messages: 1000,
            visibility_timeout_ms: Some(600_000),
            max_wait_ms: 200,
            ..Default::default()
        };
        let messages = api.pull(request).await.expect("pull").into_inner().messages;
        empty_pulls = if messages.is_empty() { empty_pulls + 1 } else { 0 };
        let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
        for m in messages {
            let lsn = m.headers.iter().find(|h| h.key == "ductstream.lsn").and_then(|h| h.value.clone());
            assert!(lsn.is_some(), "every change carries its LSN");
            values.push(serde_json::from_slice(&m.value.expect("value")).expect("JSON value"));
        }
        if !ids.is_empty() {
            api.ack(pb::AckRequest { stream: topic.into(), group: group.into(), ids }).await.expect("ack");
        }
    }
    values
}

fn ops(values: &[Value]) -> Vec<(String, i64)> {
    values
        .iter()
        .map(|v| {
            let row = if v["op"] == "d" { &v["before"] } else { &v["after"] };
            let id = row["id"].as_i64().or_else(|| v["key"]["id"].as_i64()).unwrap_or(-1);
            (v["op"].as_str().unwrap_or("?").to_string(), id)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_streams_snapshot_and_changes_and_resumes_after_kill_9() {
    let (pg, db) = source("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'ada'), (2, 'bob');").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let broker = Broker::start(&data, &[]);
    let server = grpc(&broker);
    let created = create_flow(&server, dir.path(), "app", &pg.url(), &[]);
    assert_eq!(created["state"], "created");
    let (ok, _, out) = admin(&server, &["flow", "start", "app"]);
    assert!(ok, "{out}");

    let snapshot = read_values(&broker, "app.public.users", "check", 2).await;
    assert_eq!(ops(&snapshot), [("r".to_string(), 1), ("r".to_string(), 2)]);
    assert_eq!(snapshot[0]["after"]["name"], "ada");

    db.batch_execute("INSERT INTO users VALUES (3, 'cy'); UPDATE users SET name = 'bo' WHERE id = 2; DELETE FROM users WHERE id = 1;")
        .await
        .expect("changes");
    let changes = read_values(&broker, "app.public.users", "check", 3).await;
    assert_eq!(ops(&changes), [("c".to_string(), 3), ("u".to_string(), 2), ("d".to_string(), 1)]);
    assert_eq!(changes[1]["after"]["name"], "bo");
    let (ok, listed, out) = admin(&server, &["--json", "flow", "list"]);
    assert!(ok && listed[0]["state"] == "running" && listed[0]["progress"]["phase"] == "streaming", "{out}");

    // kill -9 and restart: the flow was RUNNING, so it resumes from its checkpoint.
    let listen = broker.addr.to_string();
    broker.kill();
    db.batch_execute("INSERT INTO users VALUES (4, 'dee')").await.expect("insert while down");
    let broker = Broker::start_at(&data, &listen, &[]);
    let after = read_values(&broker, "app.public.users", "check", 1).await;
    assert!(ops(&after).contains(&("c".to_string(), 4)), "the change made while the broker was down arrives: {after:?}");

    let server = grpc(&broker);
    let (ok, publication, out) = admin(&server, &["--json", "publication", "list", "app"]);
    assert!(ok && publication["tables"] == serde_json::json!(["public.users"]), "{out}");
    db.batch_execute("CREATE TABLE extra (id int PRIMARY KEY)").await.expect("another table");
    let flow_file = dir.path().join("app.json");
    let mut def: Value = serde_json::from_str(&std::fs::read_to_string(&flow_file).expect("flow file")).expect("json");
    def["source"]["options"]["publication_tables"] = Value::String("public.users,public.extra".into());
    std::fs::write(&flow_file, def.to_string()).expect("write");
    let (ok, _, out) = admin(&server, &["flow", "update", "-f", flow_file.to_str().expect("path")]);
    assert!(ok, "{out}");
    let (ok, publication, out) = admin(&server, &["--json", "publication", "sync", "app"]);
    assert!(ok && publication["tables"] == serde_json::json!(["public.extra", "public.users"]), "{out}");
    let (ok, checkpoint, out) = admin(&server, &["--json", "checkpoint", "get", "app"]);
    assert!(ok && checkpoint["lsn"].as_str().is_some_and(|l| l.contains('/')), "{out}");
    let (ok, stopped, out) = admin(&server, &["--json", "flow", "stop", "app"]);
    assert!(ok, "{out}");
    assert!(stopped["state"] == "paused" || stopped["state"] == "stopping", "{out}");
    wait_state(&broker, "app", pb::FlowState::Paused).await;
    let (ok, _, out) = admin(&server, &["flow", "resume", "app"]);
    assert!(ok, "{out}");
    wait_state(&broker, "app", pb::FlowState::Running).await;

    // The usage guide's shapes: a table added to the publication and read, the flow paused
    // around it.
    db.batch_execute("CREATE TABLE later (id int PRIMARY KEY, name text); INSERT INTO later VALUES (1, 'old'), (2, 'older')")
        .await
        .expect("a table to add");
    let (ok, synced, out) =
        admin(&server, &["--json", "publication", "sync", "-flow-id", "app", "-tables", "public.later", "-snapshot", "-pause", "-resume"]);
    assert!(ok, "{out}");
    assert_eq!(synced["tables"], serde_json::json!(["public.extra", "public.later", "public.users"]), "{out}");
    assert_eq!(synced["snapshot_tables"], serde_json::json!(["public.later"]), "{out}");
    let rows = read_values(&broker, "app.public.later", "check", 2).await;
    assert_eq!(ops(&rows), [("r".to_string(), 1), ("r".to_string(), 2)]);
    wait_state(&broker, "app", pb::FlowState::Running).await;
    db.batch_execute("INSERT INTO later VALUES (3, 'new')").await.expect("insert");
    assert_eq!(ops(&read_values(&broker, "app.public.later", "check", 1).await), [("c".to_string(), 3)]);
    let (ok, listed, out) = admin(&server, &["--json", "publication", "list", "-flow-id", "app"]);
    assert!(ok && listed["tables"].as_array().is_some_and(|t| t.len() == 3), "{out}");
    // A snapshot needs the flow stopped; nothing changes.
    let (ok, _, out) = admin(&server, &["publication", "sync", "-flow-id", "app", "-tables", "public.more", "-snapshot"]);
    assert!(!ok && out.contains("stop it to snapshot tables"), "{out}");
    let (ok, flow, out) = admin(&server, &["--json", "flow", "get", "app"]);
    assert!(ok && !flow["source"]["options"]["publication_tables"].as_str().unwrap_or_default().contains("more"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sources_fail_with_a_message_that_says_what_to_fix() {
    let (pg, _) = source("CREATE TABLE users (id int PRIMARY KEY)").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let server = grpc(&broker);

    // A table that does not exist.
    create_flow(&server, dir.path(), "missing", &pg.url(), &[("publication_tables", "public.nope")]);
    admin(&server, &["flow", "start", "missing"]);
    let failed = wait_state(&broker, "missing", pb::FlowState::Failed).await;
    assert!(failed.last_error.contains("nope"), "{}", failed.last_error);

    // A server that is not there (yet): the flow keeps trying and says why it is not moving.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    create_flow(&server, dir.path(), "away", &format!("postgres://postgres@127.0.0.1:{port}/x"), &[]);
    admin(&server, &["flow", "start", "away"]);
    let mut client = flows(&broker).await;
    let mut away = pb::Flow::default();
    for _ in 0..300 {
        away = client.get_flow(pb::FlowRef { id: "away".into() }).await.expect("get").into_inner();
        if !away.last_error.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(away.state, pb::FlowState::Running as i32);
    assert!(away.last_error.contains("connection") && away.last_error.contains("retrying"), "{}", away.last_error);

    // What the broker can tell without connecting is refused at once.
    let path = dir.path().join("bad.json");
    std::fs::write(&path, r#"{"id": "bad", "source": {"type": "mysql", "options": {"dsn": "x"}}}"#).expect("write");
    let (ok, _, out) = admin(&server, &["flow", "create", "-f", path.to_str().expect("path")]);
    assert!(!ok && out.contains("InvalidArgument") && out.contains("\"mysql\""), "{out}");
    let (ok, _, out) = admin(&server, &["flow", "start", "nobody"]);
    assert!(!ok && out.contains("NotFound"), "{out}");
    let (ok, _, out) = admin(&server, &["flow", "stop", "missing"]);
    assert!(!ok && out.contains("FailedPrecondition"), "{out}");
}

fn worker(data: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_ductstream-worker"))
        .args(["--storage", "embedded", "--data-dir"])
        .arg(data)
        .args(args)
        .output()
        .expect("run ductstream-worker");
    let log = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "worker failed:\n{log}");
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_a_flow_until_caught_up_and_backfills_tables() {
    let (pg, db) = source("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'ada');").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");

    // Define the flow with a broker, then let the worker run it while no broker has the store.
    let broker = Broker::start(&data, &[]);
    create_flow(&grpc(&broker), dir.path(), "w", &pg.url(), &[]);
    broker.kill();
    worker(&data, &["--flow-id", "w", "--max-empty-reads", "3"]);
    db.batch_execute("INSERT INTO users VALUES (2, 'bob')").await.expect("insert");
    worker(&data, &["--flow-id", "w", "--max-empty-reads", "3"]);
    worker(&data, &["--flow-id", "w", "--mode", "backfill", "--tables", "public.users", "--max-empty-reads", "3"]);

    let broker = Broker::start(&data, &[]);
    let values = read_values(&broker, "w.public.users", "check", 4).await;
    assert_eq!(
        ops(&values),
        [("r".to_string(), 1), ("c".to_string(), 2), ("r".to_string(), 1), ("r".to_string(), 2)],
        "snapshot, the change, then the backfill's fresh read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_killed_midway_resumes_and_loses_no_row() {
    use ductstream_proto::v1::checkpoint_service_client::CheckpointServiceClient;
    const ROWS: i64 = 100_000;
    let (pg, db) = source(&format!(
        "CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, repeat('x', 200) FROM generate_series(1, {ROWS}) g;"
    )).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let broker = Broker::start(&data, &[]);
    let server = grpc(&broker);
    create_flow(&server, dir.path(), "big", &pg.url(), &[("partition_column", "id"), ("partition_count", "16"), ("snapshot_workers", "4")]);
    admin(&server, &["flow", "start", "big"]);

    // Kill the broker once some chunks are written and some are not.
    let mut checkpoints = CheckpointServiceClient::connect(server.clone()).await.expect("connect");
    let mut killed_midway = false;
    for _ in 0..600 {
        if let Ok(c) = checkpoints.get(pb::FlowRef { id: "big".into() }).await
            && let Some(s) = c.into_inner().snapshot
            && s.chunks_done > 0
        {
            killed_midway = !s.complete;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let listen = broker.addr.to_string();
    broker.kill();
    // Writes go on while the broker is down.
    db.batch_execute(&format!("INSERT INTO users SELECT g, 'new' FROM generate_series({}, {}) g", ROWS + 1, ROWS + 100))
        .await
        .expect("more rows");

    let broker = Broker::start_at(&data, &listen, &[]);
    // Rows of chunks that were being read at the kill come twice: count distinct ids.
    let mut ids = std::collections::BTreeSet::new();
    while (ids.len() as i64) < ROWS + 100 {
        let values = read_values(&broker, "big.public.users", "check", 10_000).await;
        if values.is_empty() {
            break;
        }
        ids.extend(values.iter().filter_map(|v| v["after"]["id"].as_i64()));
    }
    assert_eq!(ids.len() as i64, ROWS + 100, "every row, from the snapshot or the stream (killed mid-snapshot: {killed_midway})");
    assert_eq!((ids.first(), ids.last()), (Some(&1), Some(&(ROWS + 100))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_ddl_gate_a_flow_waits_for_approval() {
    let (pg, db) = source("CREATE TABLE users (id int PRIMARY KEY, name text)").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &["--ddl-gate"]);
    let server = grpc(&broker);
    create_flow(&server, dir.path(), "gated", &pg.url(), &[]);
    admin(&server, &["flow", "start", "gated"]);
    wait_state(&broker, "gated", pb::FlowState::Running).await;
    read_values(&broker, "gated.public.users", "check", 0).await;
    db.batch_execute("INSERT INTO users VALUES (1, 'before')").await.expect("insert");
    assert_eq!(ops(&read_values(&broker, "gated.public.users", "check", 1).await), [("c".to_string(), 1)]);

    db.batch_execute("ALTER TABLE users ADD COLUMN email text; INSERT INTO users VALUES (2, 'after', 'a@b')")
        .await
        .expect("ddl");
    let mut pending = Value::Null;
    for _ in 0..200 {
        let (ok, listed, out) = admin(&server, &["--json", "ddl", "list", "-status", "pending"]);
        assert!(ok, "{out}");
        if listed.as_array().is_some_and(|l| !l.is_empty()) {
            pending = listed[0].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending["status"], "pending", "{pending}");
    assert!(pending["query"].as_str().is_some_and(|q| q.contains("ADD COLUMN email")), "{pending}");
    // Held at the gate: the insert after the DDL has not arrived.
    let mut api = StreamServiceClient::connect(grpc(&broker)).await.expect("connect");
    let held = api
        .pull(pb::PullRequest { stream: "gated.public.users".into(), group: "check".into(), max_messages: 10, max_wait_ms: 500, ..Default::default() })
        .await
        .expect("pull")
        .into_inner()
        .messages;
    assert!(held.is_empty(), "{held:?}");

    let id = pending["id"].as_u64().expect("id").to_string();
    // As the usage guide writes it: the id alone names the one flow with that change pending.
    let (ok, _, out) = admin(&server, &["ddl", "approve", "-id", "99"]);
    assert!(!ok && out.contains("no flow has a pending DDL change 99"), "{out}");
    let (ok, decided, out) = admin(&server, &["--json", "ddl", "approve", "-id", &id]);
    assert!(ok && decided[0]["status"] == "approved" && decided[0]["flow_id"] == "gated", "{out}");
    let (ok, listed, out) = admin(&server, &["--json", "ddl", "list", "-status", "pending"]);
    assert!(ok && listed.as_array().is_some_and(|l| l.is_empty()), "{out}");
    let after = read_values(&broker, "gated.public.users", "check", 1).await;
    assert_eq!(ops(&after), [("c".to_string(), 2)]);
    assert_eq!(after[0]["after"]["email"], "a@b");
    let ddl = read_values(&broker, "gated._ddl", "check", 1).await;
    assert!(ddl[0].to_string().contains("ADD COLUMN email"), "{}", ddl[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_catches_up_and_stops() {
    let (pg, db) = source("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, 'x' FROM generate_series(1, 3) g;").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let server = grpc(&broker);
    create_flow(&server, dir.path(), "once", &pg.url(), &[]);
    let (ok, ran, out) = admin(&server, &["--json", "flow", "run-once", "once", "--idle", "500ms"]);
    assert!(ok, "{out}");
    assert_eq!(ran["flow"]["state"], "created", "running once leaves the state as it was: {out}");
    assert_eq!(ops(&read_values(&broker, "once.public.users", "check", 3).await), [("r".to_string(), 1), ("r".to_string(), 2), ("r".to_string(), 3)]);

    // Changes since are picked up by the next run, from the checkpoint.
    db.batch_execute("INSERT INTO users VALUES (4, 'y')").await.expect("insert");
    let (ok, ran, out) = admin(&server, &["--json", "flow", "run-once", "once", "--idle", "500ms"]);
    assert!(ok && ran["records_written"] == 1, "{out}");
    assert_eq!(ops(&read_values(&broker, "once.public.users", "check", 1).await), [("c".to_string(), 4)]);
    let (ok, _, out) = admin(&server, &["flow", "start", "once"]);
    assert!(ok, "{out}");
    let (ok, _, out) = admin(&server, &["flow", "run-once", "once"]);
    assert!(!ok && out.contains("FailedPrecondition"), "a running flow is not run once: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_restart_interrupts_the_flow_which_recovers_by_itself() {
    let (pg, _) = source("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'a');").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let server = grpc(&broker);
    create_flow(&server, dir.path(), "bounce", &pg.url(), &[]);
    admin(&server, &["flow", "start", "bounce"]);
    assert_eq!(ops(&read_values(&broker, "bounce.public.users", "check", 1).await), [("r".to_string(), 1)]);

    pg.restart().expect("restart the source");
    let db = sql(&pg).await;
    db.batch_execute("INSERT INTO users VALUES (2, 'b')").await.expect("insert after the restart");
    let after = read_values(&broker, "bounce.public.users", "check", 1).await;
    assert_eq!(ops(&after), [("c".to_string(), 2)], "{}", broker.stderr());
    let flow = wait_state(&broker, "bounce", pb::FlowState::Running).await;
    assert!(flow.last_error.contains("retrying"), "the interruption is on record: {:?}", flow.last_error);
    assert!(broker.stderr().contains("flow interrupted; retrying"));
}

/// Pulls up to `count` messages of `topic` as they are (no JSON decoding).
async fn pull_raw(broker: &Broker, topic: &str, count: u32) -> Vec<pb::Message> {
    let mut api = StreamServiceClient::connect(grpc(broker)).await.expect("connect");
    let config = pb::ConsumerConfig { stream: topic.into(), group: "raw".into(), ..Default::default() };
    for _ in 0..100 {
        match api.create_consumer(pb::CreateConsumerRequest { config: Some(config.clone()) }).await {
            Ok(_) => break,
            Err(s) if s.code() == tonic::Code::NotFound => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(s) => panic!("create consumer: {s}"),
        }
    }
    let request = pb::PullRequest { stream: topic.into(), group: "raw".into(), max_messages: count, max_wait_ms: 20_000, ..Default::default() };
    api.pull(request).await.expect("pull").into_inner().messages
}

fn header<'m>(m: &'m pb::Message, key: &str) -> Option<&'m [u8]> {
    m.headers.iter().find(|h| h.key == key).and_then(|h| h.value.as_deref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_write_avro_and_proto_values() {
    use prost::Message;
    let (pg, _) = source("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'ada');").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let server = grpc(&broker);
    for format in ["proto", "avro"] {
        let flow = serde_json::json!({
            "id": format, "wire_format": format,
            "source": {"type": "postgres", "options": {
                "dsn": pg.url(), "slot": format!("{format}_slot"), "publication": format!("{format}_pub"),
                "publication_tables": "public.users"}},
        });
        create_flow_from(&server, dir.path(), &flow);
        let (ok, _, out) = admin(&server, &["flow", "start", format]);
        assert!(ok, "{out}");
    }

    let proto = pull_raw(&broker, "proto.public.users", 1).await;
    assert_eq!(header(&proto[0], "ductstream.format"), Some(&b"proto"[..]));
    let event = ductstream_proto::v1::ChangeEvent::decode(proto[0].value.as_deref().expect("value")).expect("a ChangeEvent");
    assert_eq!((event.op.as_str(), event.table.as_str()), ("r", "users"));
    let after = event.after.expect("after");
    assert_eq!((after.columns[1].name.as_str(), after.columns[1].json.as_str()), ("name", "\"ada\""));

    let avro = pull_raw(&broker, "avro.public.users", 1).await;
    assert_eq!(header(&avro[0], "ductstream.format"), Some(&b"avro"[..]));
    let schema = pull_raw(&broker, "avro._schemas", 1).await;
    assert_eq!(schema[0].key.as_deref(), Some(&b"ductstream.v1.ChangeEvent"[..]));
    assert_eq!(schema[0].value.as_deref(), Some(ductstream_cdc::wire::AVRO_SCHEMA.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_changes_are_listed_and_decided_through_any_broker() {
    let source = TestPostgres::start().expect("source postgres");
    let store = TestPostgres::start().expect("store postgres");
    let db = sql(&source).await;
    db.batch_execute("CREATE TABLE users (id int PRIMARY KEY, name text)").await.expect("schema");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = store.url();
    let one = Broker::start(&dir.path().join("one"), &["--storage", &url, "--node-id", "1", "--ddl-gate"]);
    let two = Broker::start(&dir.path().join("two"), &["--storage", &url, "--node-id", "2", "--ddl-gate"]);
    create_flow(&grpc(&one), dir.path(), "shared", &source.url(), &[]);
    admin(&grpc(&one), &["flow", "start", "shared"]);
    // The broker that runs the flow is the one that reports its progress.
    let mut runner = None;
    for _ in 0..300 {
        for broker in [&one, &two] {
            let flow = flows(broker).await.get_flow(pb::FlowRef { id: "shared".into() }).await.expect("get").into_inner();
            if flow.progress.as_ref().is_some_and(|p| p.phase == "streaming") {
                runner = Some(broker);
            }
        }
        if runner.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let runner = runner.expect("a broker runs the flow");
    let other = if std::ptr::eq(runner, &one) { &two } else { &one };

    db.batch_execute("ALTER TABLE users ADD COLUMN email text; INSERT INTO users VALUES (1, 'a', 'a@b')").await.expect("ddl");
    let mut pending = Value::Null;
    for _ in 0..200 {
        let (ok, listed, out) = admin(&grpc(other), &["--json", "ddl", "list"]);
        assert!(ok, "{out}");
        if listed.as_array().is_some_and(|l| !l.is_empty()) {
            pending = listed[0].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((pending["flow_id"].as_str(), pending["status"].as_str()), (Some("shared"), Some("pending")), "{pending}");
    let id = pending["id"].as_u64().expect("id").to_string();
    let (ok, decided, out) = admin(&grpc(other), &["--json", "ddl", "apply", "shared", &id]);
    assert!(ok && decided[0]["status"] == "applied", "{out}");
    let (ok, _, out) = admin(&grpc(runner), &["ddl", "approve", "shared", &id]);
    assert!(!ok && out.contains("already applied"), "{out}");
    let after = read_values(runner, "shared.public.users", "check", 1).await;
    assert_eq!(ops(&after), [("c".to_string(), 1)], "the flow went on past the DDL change");
}

/// The names of the replication slots in the source database.
async fn slots(db: &tokio_postgres::Client) -> Vec<String> {
    let rows = db.query("SELECT slot_name::text FROM pg_replication_slots ORDER BY 1", &[]).await.expect("slots");
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_get_their_own_slots_and_deleting_one_drops_its_slot() {
    let (pg, db) = source("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'ada');").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let server = grpc(&broker);
    // Flow files without slot or publication: each flow gets its own, named after it.
    for id in ["Left-1", "right"] {
        let flow = serde_json::json!({
            "id": id,
            "source": {"name": "app", "type": "postgres", "options": {
                "dsn": pg.url(), "publication_tables": "public.users", "batch_timeout": "100ms"}},
            "destinations": [{"name": "topics", "type": "topics"}],
        });
        let created = create_flow_from(&server, dir.path(), &flow);
        let expected = format!("ductstream_{}", id.to_lowercase().replace('-', "_"));
        assert_eq!(created["source"]["options"]["slot"], expected.as_str(), "{created}");
        assert_eq!(created["source"]["options"]["publication"], expected.as_str(), "{created}");
        let (ok, _, out) = admin(&server, &["flow", "start", id]);
        assert!(ok, "{out}");
    }
    // Both stream the same table, each through its own slot.
    db.batch_execute("INSERT INTO users VALUES (2, 'bob')").await.expect("insert");
    assert_eq!(read_values(&broker, "Left-1.public.users", "check", 2).await.len(), 2);
    assert_eq!(read_values(&broker, "right.public.users", "check", 2).await.len(), 2);
    assert_eq!(slots(&db).await, ["ductstream_left_1", "ductstream_right"]);

    let (ok, deleted, out) = admin(&server, &["--json", "flow", "delete", "Left-1"]);
    assert!(ok, "{out}");
    assert_eq!((deleted["slot"].as_str(), deleted["slot_outcome"].as_str()), (Some("ductstream_left_1"), Some("dropped")), "{out}");
    let (ok, deleted, out) = admin(&server, &["--json", "flow", "delete", "right", "--keep-slot"]);
    assert!(ok, "{out}");
    assert_eq!(deleted["slot_outcome"], "kept", "{out}");
    assert_eq!(slots(&db).await, ["ductstream_right"]);
    let (ok, _, out) = admin(&server, &["flow", "get", "right"]);
    assert!(!ok && out.contains("there is no flow"), "the flow itself is gone: {out}");
}

/// A flow file as people write it from the API's enum names, without an id: the types and
/// wire format are taken in any case and with the proto prefix, the id made from the name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_files_take_enum_names_and_get_an_id_from_their_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let server = grpc(&broker);
    let flow = serde_json::json!({
        "name": "Orders App",
        "source": {"name": "app", "type": "POSTGRES", "options": {"dsn": "postgres://u@127.0.0.1:1/db", "publication_tables": "public.orders"}},
        "destinations": [{"name": "topics", "type": "Topics"}],
        "wire_format": "WIRE_FORMAT_JSON",
    });
    let path = dir.path().join("orders.json");
    std::fs::write(&path, flow.to_string()).expect("write flow file");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (ok, created, out) = admin(&server, &["--json", "flow", "create", "-f", path.to_str().expect("path")]);
        assert!(ok, "{out}");
        assert_eq!(created["source"]["type"].as_str(), Some("postgres"), "{created}");
        ids.push(created["id"].as_str().expect("id").to_string());
    }
    assert_eq!(ids, ["orders-app", "orders-app-2"], "the second gets the next free id");
    let stored = flows(&broker).await.get_flow(pb::FlowRef { id: "orders-app".into() }).await.expect("get").into_inner();
    assert_eq!(stored.source.expect("source").options.get("slot").map(String::as_str), Some("ductstream_orders_app"));

    std::fs::write(&path, serde_json::json!({"source": {"type": "postgres", "options": {}}}).to_string()).expect("write");
    let (ok, _, out) = admin(&server, &["flow", "create", "-f", path.to_str().expect("path")]);
    assert!(!ok && out.contains("needs an id, or a name"), "{out}");
    std::fs::write(&path, serde_json::json!({"id": "x", "source": {"type": "postgres", "options": {}}, "wire_format": "xml"}).to_string()).expect("write");
    let (ok, _, out) = admin(&server, &["flow", "create", "-f", path.to_str().expect("path")]);
    assert!(!ok && out.contains("unknown wire_format \"xml\""), "{out}");
}

/// A pgstream destination, as the usage guide writes it: every table's changes in the one
/// stream the destination names, pulled and acked with the CLI without a create step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pgstream_destination_feeds_one_stream_pulled_with_the_cli() {
    let (pg, db) = source(
        "CREATE TABLE users (id int PRIMARY KEY, name text); CREATE TABLE orders (id int PRIMARY KEY, total int);
         INSERT INTO users VALUES (1, 'ada'); INSERT INTO orders VALUES (7, 70);",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let server = grpc(&broker);
    let flow = serde_json::json!({
        "id": "shop",
        "name": "shop",
        "source": {"name": "app", "type": "postgres", "options": {
            "dsn": pg.url(), "publication_tables": "public.users,public.orders", "batch_timeout": "100ms"}},
        "destinations": [{"name": "orders", "type": "pgstream", "options": {"format": "json", "dsn": "postgres://ignored"}}],
    });
    create_flow_from(&server, dir.path(), &flow);
    let (ok, _, out) = admin(&server, &["flow", "start", "shop"]);
    assert!(ok, "{out}");
    let mut seen: Vec<(String, String, i64)> = Vec::new();
    let mut changed = false;
    for _ in 0..100 {
        if seen.len() >= 2 && !changed {
            // After the snapshot, so these arrive as changes.
            db.batch_execute("INSERT INTO users VALUES (2, 'bob'); INSERT INTO orders VALUES (8, 80);").await.expect("changes");
            changed = true;
        }
        let (ok, pulled, out) = admin(&server, &["--json", "stream", "pull", "--stream", "orders", "--group", "search", "--max", "10", "--visibility", "30", "--wait", "200ms"]);
        if !ok && out.contains("does not exist") {
            tokio::time::sleep(Duration::from_millis(100)).await; // the flow has not made the stream yet
            continue;
        }
        assert!(ok, "{out}");
        let messages = pulled.as_array().cloned().unwrap_or_default();
        let mut ids = Vec::new();
        for m in &messages {
            ids.push(m["id"].as_str().expect("id").to_string());
            let value: Value = serde_json::from_str(m["value"].as_str().expect("text value")).expect("JSON change");
            seen.push((value["table"].as_str().unwrap_or("?").into(), value["op"].as_str().unwrap_or("?").into(), value["after"]["id"].as_i64().unwrap_or(-1)));
        }
        if !ids.is_empty() {
            let (ok, _, out) = admin(&server, &["stream", "ack", "--stream", "orders", "--group", "search", "--ids", &ids.join(",")]);
            assert!(ok, "{out}");
        }
        if seen.len() >= 4 {
            break;
        }
    }
    seen.sort();
    let expect = |t: &str, op: &str, id: i64| (t.to_string(), op.to_string(), id);
    assert_eq!(seen, [expect("orders", "c", 8), expect("orders", "r", 7), expect("users", "c", 2), expect("users", "r", 1)]);
    let (ok, listed, out) = admin(&server, &["--json", "flow", "get", "shop"]);
    assert!(ok && listed["destinations"][0]["type"] == "pgstream", "{out}");

    // One stream per flow, and only the options it takes.
    let mut both = flow.clone();
    both["id"] = "both".into();
    both["destinations"] = serde_json::json!([{"name": "orders", "type": "pgstream"}, {"name": "topics", "type": "topics"}]);
    std::fs::write(dir.path().join("both.json"), both.to_string()).expect("write");
    let (ok, _, out) = admin(&server, &["flow", "create", "-f", dir.path().join("both.json").to_str().expect("path")]);
    assert!(!ok && out.contains("either one pgstream stream or its per-table topics"), "{out}");
    both["destinations"] = serde_json::json!([{"name": "orders", "type": "pgstream", "options": {"partitions": "3"}}]);
    std::fs::write(dir.path().join("both.json"), both.to_string()).expect("write");
    let (ok, _, out) = admin(&server, &["flow", "create", "-f", dir.path().join("both.json").to_str().expect("path")]);
    assert!(!ok && out.contains("unknown option \"partitions\""), "{out}");
}

/// `--wire-format` (DUCTSTREAM_WIRE_FORMAT) is the format of flows that name none;
/// `--wire-enforce` refuses the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_wire_format_is_the_default_and_can_be_enforced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &["--wire-format", "WIRE_FORMAT_AVRO", "--wire-enforce"]);
    let server = grpc(&broker);
    let flow = |id: &str, wire_format: Option<&str>| {
        let mut flow = serde_json::json!({
            "id": id,
            "source": {"name": "app", "type": "postgres", "options": {"dsn": "postgres://u@127.0.0.1:1/db"}},
            "destinations": [{"name": "topics", "type": "topics"}],
        });
        if let Some(format) = wire_format {
            flow["wire_format"] = format.into();
        }
        let path = dir.path().join(format!("{id}.json"));
        std::fs::write(&path, flow.to_string()).expect("write");
        admin(&server, &["--json", "flow", "create", "-f", path.to_str().expect("path")])
    };
    let (ok, created, out) = flow("plain", None);
    assert!(ok && created["wire_format"] == "avro", "{out}");
    let (ok, _, out) = flow("avro", Some("avro"));
    assert!(ok, "{out}");
    let (ok, _, out) = flow("json", Some("json"));
    assert!(!ok && out.contains("this broker enforces \"avro\""), "{out}");
    drop(broker);

    let bad = Command::new(env!("CARGO_BIN_EXE_ductstream"))
        .args(["--kafka-listen", "127.0.0.1:0", "--storage", "memory", "--wire-format", "xml"])
        .output()
        .expect("run");
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--wire-format \"xml\""));
}

/// DUCTSTREAM_DDL_AUTO_APPLY (and _APPROVE): the gate records each DDL change, decided as it
/// arrives, and the flow goes on without an operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ddl_auto_apply_the_gate_records_and_lets_changes_through() {
    let (pg, db) = source("CREATE TABLE users (id int PRIMARY KEY, name text)").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &["--ddl-gate", "--ddl-auto-apply"]);
    let server = grpc(&broker);
    create_flow(&server, dir.path(), "auto", &pg.url(), &[]);
    admin(&server, &["flow", "start", "auto"]);
    wait_state(&broker, "auto", pb::FlowState::Running).await;
    read_values(&broker, "auto.public.users", "check", 0).await;
    db.batch_execute("ALTER TABLE users ADD COLUMN email text; INSERT INTO users VALUES (2, 'after', 'a@b')").await.expect("ddl");
    let after = read_values(&broker, "auto.public.users", "check", 1).await;
    assert_eq!(after[0]["after"]["email"], "a@b", "no operator was needed");
    let (ok, listed, out) = admin(&server, &["--json", "ddl", "list", "--flow", "auto"]);
    assert!(ok, "{out}");
    assert_eq!(listed[0]["status"], "applied", "{listed}");
}

/// The usage guide's names: `parallel_tables` for snapshot_workers, and
/// `snapshot_consistent=false`, which reads the tables without the slot's exported snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_without_the_exported_snapshot_still_reads_every_row() {
    let (pg, db) = source("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'ada'), (2, 'bob');").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let server = grpc(&broker);
    create_flow(&server, dir.path(), "loose", &pg.url(), &[("snapshot_consistent", "false"), ("parallel_tables", "2")]);
    admin(&server, &["flow", "start", "loose"]);
    let snapshot = read_values(&broker, "loose.public.users", "check", 2).await;
    assert_eq!(ops(&snapshot), [("r".to_string(), 1), ("r".to_string(), 2)]);
    db.batch_execute("INSERT INTO users VALUES (3, 'cy')").await.expect("insert");
    assert_eq!(ops(&read_values(&broker, "loose.public.users", "check", 1).await), [("c".to_string(), 3)]);
}

/// `--schedule` on two brokers sharing one Postgres store: RUNNING flows run at the ticks
/// only, each tick runs each flow once (one broker, one run), and changes arrive tick by tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_on_two_brokers_run_each_flow_once_a_tick() {
    let (pg, db) = source("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'ada');").await;
    let store = TestPostgres::start().expect("store postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = store.url();
    let flags = |node: &'static str| ["--storage", url.as_str(), "--node-id", node, "--schedule", "*/2 * * * * *", "--schedule-empty-reads", "2"];
    let a = Broker::start(&dir.path().join("a"), &flags("1"));
    let b = Broker::start(&dir.path().join("b"), &flags("2"));
    let server = grpc(&a);
    create_flow(&server, dir.path(), "nightly", &pg.url(), &[]);
    admin(&server, &["flow", "start", "nightly"]);
    let snapshot = read_values(&a, "nightly.public.users", "check", 1).await;
    assert_eq!(ops(&snapshot), [("r".to_string(), 1)]);
    db.batch_execute("INSERT INTO users VALUES (2, 'bob')").await.expect("insert");
    assert_eq!(ops(&read_values(&b, "nightly.public.users", "check", 1).await), [("c".to_string(), 2)], "a later tick brings the change");

    // Several ticks later: every run recorded once, by one broker, on its own tick.
    let mut runs = Vec::new();
    for _ in 0..100 {
        let (ok, flow, out) = admin(&grpc(&b), &["--json", "flow", "get", "nightly"]);
        assert!(ok, "{out}");
        runs = flow["scheduled_runs"].as_array().cloned().unwrap_or_default();
        if runs.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(runs.len() >= 4, "runs: {runs:?}");
    let ticks: Vec<&str> = runs.iter().filter_map(|r| r["tick"].as_str()).collect();
    let mut unique = ticks.clone();
    unique.dedup();
    assert_eq!(unique, ticks, "one run per tick");
    assert!(runs.iter().all(|r| r["outcome"] == "caught up"), "{runs:?}");
    let nodes: std::collections::HashSet<i64> = runs.iter().filter_map(|r| r["node_id"].as_i64()).collect();
    assert_eq!(nodes.len(), 1, "the flow's coordinator runs it: {runs:?}");
    drop((a, b));

    let bad = Command::new(env!("CARGO_BIN_EXE_ductstream"))
        .args(["--kafka-listen", "127.0.0.1:0", "--storage", "memory", "--schedule", "*/10 * * * *"])
        .output()
        .expect("run");
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("6 fields, seconds first"), "{bad:?}");
    // The documented DBOS names are taken too.
    let dbos = Command::new(env!("CARGO_BIN_EXE_ductstream"))
        .args(["--kafka-listen", "127.0.0.1:0", "--storage", "memory"])
        .env("DUCTSTREAM_DBOS_ENABLED", "true")
        .env("DUCTSTREAM_DBOS_SCHEDULE", "every ten seconds")
        .output()
        .expect("run");
    assert!(!dbos.status.success() && String::from_utf8_lossy(&dbos.stderr).contains("--schedule \"every ten seconds\""), "{dbos:?}");
}

/// A scheduled run held at the DDL gate stops like any other, and its record says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_held_at_the_ddl_gate_ends_as_ddl_gated() {
    let (pg, db) = source("CREATE TABLE users (id int PRIMARY KEY, name text)").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &["--ddl-gate", "--schedule", "*/1 * * * * *", "--schedule-empty-reads", "2"]);
    let server = grpc(&broker);
    create_flow(&server, dir.path(), "gatedrun", &pg.url(), &[]);
    admin(&server, &["flow", "start", "gatedrun"]);
    read_values(&broker, "gatedrun.public.users", "check", 0).await;
    db.batch_execute("ALTER TABLE users ADD COLUMN email text").await.expect("ddl");
    let mut outcomes: Vec<String> = Vec::new();
    for _ in 0..150 {
        let (ok, flow, out) = admin(&server, &["--json", "flow", "get", "gatedrun"]);
        assert!(ok, "{out}");
        outcomes = flow["scheduled_runs"].as_array().map(|runs| runs.iter().filter_map(|r| r["outcome"].as_str().map(str::to_owned)).collect()).unwrap_or_default();
        if outcomes.iter().any(|o| o == "ddl gated") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(outcomes.iter().any(|o| o == "ddl gated"), "{outcomes:?}");
    let (ok, listed, out) = admin(&server, &["--json", "ddl", "list", "--flow", "gatedrun"]);
    assert!(ok && listed.as_array().is_some_and(|l| l.iter().any(|d| d["status"] == "pending")), "{out}");
}

/// snapshot_state_backend: the snapshot's progress published in the source (postgres, the
/// default), in a file, or nowhere; the flow's own table never streamed; a file that cannot be
/// written fails the flow with what to fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_progress_is_published_where_the_backend_says() {
    let (pg, db) = source("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, 'x' FROM generate_series(1, 40) g;").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let server = grpc(&broker);
    let split = [("partition_column", "id"), ("partition_count", "4")];

    create_flow(&server, dir.path(), "intable", &pg.url(), &[split[0], split[1], ("publication_tables", "")]);
    admin(&server, &["flow", "start", "intable"]);
    assert_eq!(read_values(&broker, "intable.public.users", "check", 40).await.len(), 40);
    // A chunk is marked done after its rows are on the topic: wait for the last mark.
    let mut chunks: Vec<(String, String, bool)> = Vec::new();
    for _ in 0..300 {
        let rows = db
            .query("SELECT chunk_id, table_name, done_at IS NOT NULL FROM ductstream.snapshot_state WHERE flow_id = 'intable' ORDER BY chunk_id", &[])
            .await
            .expect("the snapshot-state table");
        chunks = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
        if chunks.len() == 4 && chunks.iter().all(|c| c.2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(chunks.len(), 4, "{chunks:?}");
    assert!(chunks.iter().all(|(id, table, done)| id.starts_with("public.users#") && table == "public.users" && *done), "{chunks:?}");
    // The flow publishes every table, its own included, and streams none of its own.
    db.batch_execute("INSERT INTO users VALUES (41, 'y')").await.expect("insert");
    let next = read_values(&broker, "intable.public.users", "check", 1).await;
    assert_eq!(ops(&next), [("c".to_string(), 41)]);
    let mut api = StreamServiceClient::connect(grpc(&broker)).await.expect("connect");
    for own in ["intable.ductstream.snapshot_state", "intable.ductstream.source_state"] {
        let config = pb::ConsumerConfig { stream: own.into(), group: "check".into(), ..Default::default() };
        let missing = api.create_consumer(pb::CreateConsumerRequest { config: Some(config) }).await;
        assert!(missing.is_err_and(|s| s.code() == tonic::Code::NotFound), "{own} has no topic");
    }

    let file = dir.path().join("progress.json");
    let path = file.to_str().expect("path");
    create_flow(&server, dir.path(), "infile", &pg.url(), &[split[0], split[1], ("snapshot_state_backend", "file"), ("snapshot_state_path", path)]);
    admin(&server, &["flow", "start", "infile"]);
    assert_eq!(read_values(&broker, "infile.public.users", "check", 41).await.len(), 41);
    let mut published = Value::Null;
    for _ in 0..50 {
        published = std::fs::read(&file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
        if published["complete"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(published["complete"], true, "{published}");
    assert_eq!((published["chunks_total"].as_u64(), published["chunks_done"].as_u64()), (Some(4), Some(4)), "{published}");
    assert_eq!(published["flow_id"], "infile");

    create_flow(&server, dir.path(), "nowhere", &pg.url(), &[("snapshot_state_backend", "none")]);
    admin(&server, &["flow", "start", "nowhere"]);
    assert_eq!(read_values(&broker, "nowhere.public.users", "check", 41).await.len(), 41);
    let nowhere: i64 = db.query_one("SELECT count(*) FROM ductstream.snapshot_state WHERE flow_id = 'nowhere'", &[]).await.expect("count").get(0);
    assert_eq!(nowhere, 0);

    // Deleting a flow removes its rows.
    let (ok, _, out) = admin(&server, &["flow", "delete", "intable"]);
    assert!(ok, "{out}");
    let left: i64 = db.query_one("SELECT count(*) FROM ductstream.snapshot_state WHERE flow_id = 'intable'", &[]).await.expect("count").get(0);
    assert_eq!(left, 0);

    // Bad input: no path, an unknown backend, an unwritable file.
    let refused = |extra: &[(&str, &str)]| {
        let flow = serde_json::json!({
            "id": "bad", "name": "bad",
            "source": {"name": "app", "type": "postgres", "options": extra.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).chain([("dsn".to_string(), Value::String(pg.url()))]).collect::<serde_json::Map<_, _>>()},
            "destinations": [{"name": "topics", "type": "topics"}],
        });
        let file = dir.path().join("bad.json");
        std::fs::write(&file, flow.to_string()).expect("write");
        admin(&server, &["flow", "create", "-f", file.to_str().expect("path")])
    };
    let (ok, _, out) = refused(&[("snapshot_state_backend", "file")]);
    assert!(!ok && out.contains("snapshot_state_path"), "{out}");
    let (ok, _, out) = refused(&[("snapshot_state_backend", "redis")]);
    assert!(!ok && out.contains("redis"), "{out}");
    create_flow(&server, dir.path(), "unwritable", &pg.url(), &[("snapshot_state_backend", "file"), ("snapshot_state_path", "/proc/ductstream/progress.json")]);
    admin(&server, &["flow", "start", "unwritable"]);
    let failed = wait_state(&broker, "unwritable", pb::FlowState::Failed).await;
    assert!(failed.last_error.contains("snapshot_state_path") && failed.last_error.contains("/proc/ductstream"), "{}", failed.last_error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_cdc_topic_holds_its_tables_rows() {
    let (pg, db) = source("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, 'v0' FROM generate_series(1, 30) g;").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &["--log-cleaner-backoff-ms", "100"]);
    let mut kafka = broker.client();
    // Made before the flow writes, so the flow writes into it: segments roll after 100 ms, so
    // all but the last writes can be cleaned.
    let configs = [("cleanup.policy", "compact"), ("segment.ms", "100"), ("min.cleanable.dirty.ratio", "0.01")];
    common::requests::create_topic(&mut kafka, "rows.public.users", 1, &configs);
    let server = grpc(&broker);
    create_flow(&server, dir.path(), "rows", &pg.url(), &[]);
    let (ok, _, out) = admin(&server, &["flow", "start", "rows"]);
    assert!(ok, "{out}");
    assert_eq!(read_values(&broker, "rows.public.users", "snapshot", 30).await.len(), 30);
    for round in 1..=10 {
        db.batch_execute(&format!("UPDATE users SET name = 'v{round}'")).await.expect("update");
    }
    db.batch_execute("DELETE FROM users WHERE id <= 5").await.expect("delete");
    // What comes last stays in the active segment; everything before it rolls.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    db.batch_execute("INSERT INTO users VALUES (100, 'last')").await.expect("insert");

    // The table's rows: each key's last change, once (deleted rows by their delete).
    let mut group = 0;
    let events = loop {
        group += 1;
        let events = read_values(&broker, "rows.public.users", &format!("reader-{group}"), 100_000).await;
        let keys: Vec<(String, i64)> = ops(&events);
        let ids: std::collections::BTreeSet<i64> = keys.iter().map(|(_, id)| *id).collect();
        if ids.len() == events.len() && ids.contains(&100) {
            break events;
        }
        assert!(group < 60, "the topic never compacted: {} events for {} keys; broker log:\n{}", events.len(), ids.len(), broker.stderr());
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut rows: Vec<(String, i64, String)> = events
        .iter()
        .zip(ops(&events))
        .map(|(v, (op, id))| (op, id, v["after"]["name"].as_str().unwrap_or("").to_string()))
        .collect();
    rows.sort_by_key(|(_, id, _)| *id);
    let mut expected: Vec<(String, i64, String)> = (1..=5).map(|id| ("d".to_string(), id, String::new())).collect();
    expected.extend((6..=30).map(|id| ("u".to_string(), id, "v10".to_string())));
    expected.push(("c".to_string(), 100, "last".to_string()));
    assert_eq!(rows, expected);
}
