#![allow(clippy::expect_used)] // tests: a failed expectation is the report
//! Sinks through the real broker: a CDC flow's webhook destination gets every change, as a
//! sink kept in step with the flow; `ductstream-worker --sink-id` runs a stopped sink until it
//! has caught up.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{admin, Broker};
use ductstream_broker::batch_builder::{self, NewRecord};
use ductstream_storage::postgres::testing::TestPostgres;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// One request received: its headers (names in lower case) and its JSON body.
type Received = (Vec<(String, String)>, Value);

/// A real HTTP/1.1 server that answers 200 to every POST and keeps each request.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut read = BufReader::new(read);
                    loop {
                        let mut headers = Vec::new();
                        let mut line = String::new();
                        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return; // the client closed the connection
                        }
                        loop {
                            line.clear();
                            if read.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                                break;
                            }
                            if let Some((k, v)) = line.trim_end().split_once(':') {
                                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                            }
                        }
                        let length = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
                        let mut body = vec![0; length];
                        if read.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        sink.lock().expect("lock").push((headers, value));
                        if write.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Receiver { url, got }
    }

    fn bodies(&self) -> Vec<Value> {
        self.got.lock().expect("lock").iter().map(|(_, v)| v.clone()).collect()
    }

    async fn wait_for(&self, count: usize) -> Vec<Value> {
        for _ in 0..300 {
            if self.bodies().len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.bodies()
    }
}

fn grpc(broker: &Broker) -> String {
    format!("http://{}", broker.grpc.expect("grpc"))
}

fn write_json(dir: &std::path::Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).expect("write file");
    path.to_str().expect("path").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flows_webhook_destination_gets_every_change() {
    let pg = TestPostgres::start().expect("test postgres");
    let (db, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    db.batch_execute("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'ada');").await.expect("schema");
    let hook = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let server = grpc(&broker);
    let flow = json!({
        "id": "app", "name": "app",
        "source": {"name": "pg", "type": "postgres", "options": {
            "dsn": pg.url(), "publication_tables": "public.users", "batch_timeout": "100ms"}},
        "destinations": [
            {"name": "topics", "type": "topics"},
            {"name": "hooks", "type": "http", "options": {"url": hook.url, "body": "value"}}],
    });
    let flow_file = write_json(dir.path(), "app.json", &flow);
    let (ok, _, out) = admin(&server, &["flow", "create", "-f", &flow_file]);
    assert!(ok, "{out}");
    let (ok, _, out) = admin(&server, &["flow", "start", "app"]);
    assert!(ok, "{out}");
    // The snapshot first, then changes made after it.
    assert_eq!(hook.wait_for(1).await.len(), 1);
    db.batch_execute("INSERT INTO users VALUES (2, 'bob'); UPDATE users SET name = 'ada2' WHERE id = 1;").await.expect("changes");

    let bodies = hook.wait_for(3).await;
    // Order is kept per key (row); different rows may arrive side by side.
    let ops = |id: i64| -> Vec<String> {
        bodies.iter().filter(|v| v["key"]["id"] == id).map(|v| v["op"].as_str().unwrap_or_default().to_owned()).collect()
    };
    assert_eq!((ops(1), ops(2), bodies.len()), (vec!["r".to_string(), "u".to_string()], vec!["c".to_string()], 3), "{bodies:?}");
    let keys: Vec<String> = hook
        .got
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|(h, _)| h.iter().find(|(k, _)| k == "idempotency-key").map(|(_, v)| v.clone()))
        .collect();
    assert_eq!(keys.len(), 3);
    let (ok, listed, out) = admin(&server, &["--json", "sink", "list"]);
    assert!(ok, "{out}");
    assert_eq!(listed[0]["id"], "app.hooks");
    assert_eq!(listed[0]["flow_id"], "app");
    assert_eq!(listed[0]["group"], "ductstream-sink-app.hooks");
    // A flow's sink is the flow's to remove.
    let (ok, _, out) = admin(&server, &["sink", "delete", "app.hooks"]);
    assert!(!ok && out.contains("remove it from the flow"), "{out}");

    // The destination taken out of the flow: its sink goes.
    let mut without = flow.clone();
    without["destinations"] = json!([{"name": "topics", "type": "topics"}]);
    let (ok, _, out) = admin(&server, &["flow", "update", "-f", &write_json(dir.path(), "app.json", &without)]);
    assert!(ok, "{out}");
    let mut gone = false;
    for _ in 0..100 {
        let (_, listed, _) = admin(&server, &["--json", "sink", "list"]);
        if listed.as_array().is_some_and(Vec::is_empty) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the flow's sink is deleted with its destination");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_a_stopped_sink_until_caught_up() {
    let hook = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let broker = Broker::start(&data, &[]);
    let server = grpc(&broker);
    let mut client = broker.client();
    common::requests::create_topic(&mut client, "orders", 1, &[]);
    let records: Vec<NewRecord> = ["a", "b", "c"]
        .iter()
        .map(|v| NewRecord { key: None, value: Some(Bytes::from_static(v.as_bytes())), headers: Vec::new(), timestamp: 1_700_000_000_000 })
        .collect();
    let (code, _) = common::requests::produce_one(&mut client, "orders", 0, batch_builder::build(&records).expect("batch").into_bytes());
    assert_eq!(code, 0);
    let sink = json!({"id": "orders-hook", "topics": ["orders"],
        "destination": {"name": "h", "type": "http", "options": {"url": hook.url}}});
    let (ok, created, out) = admin(&server, &["--json", "sink", "create", "--paused", "-f", &write_json(dir.path(), "sink.json", &sink)]);
    assert!(ok && created["state"] == "PAUSED", "{out}");
    drop(client);
    drop(broker);

    let output = Command::new(env!("CARGO_BIN_EXE_ductstream-worker"))
        .args(["--storage", "embedded", "--data-dir"])
        .arg(&data)
        .args(["--sink-id", "orders-hook", "--max-empty-reads", "2"])
        .output()
        .expect("run ductstream-worker");
    assert!(output.status.success(), "worker failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let mut values: Vec<String> = hook.bodies().iter().map(|b| b["value"].as_str().unwrap_or_default().to_owned()).collect();
    values.sort();
    assert_eq!(values, ["a", "b", "c"]);

    // Its offsets are the sink's: a broker started again has nothing left to write.
    let broker = Broker::start(&data, &[]);
    let (ok, got, out) = admin(&grpc(&broker), &["--json", "sink", "get", "orders-hook"]);
    assert!(ok && got["lag"] == 0 && got["partitions"][0]["committed"] == 3, "{out}");
}
