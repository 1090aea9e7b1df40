//! Process behaviour: flags, graceful shutdown, metrics.

#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use common::requests::{create_topic, fetch, produce_one};
use common::{Broker, Client};
use ductstream_storage::testsuite::make_batch;
use kafka_protocol::messages::ApiKey;

#[test]
fn sigterm_answers_in_flight_requests_then_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let broker = Broker::start(&data, &[]);
    let mut client = broker.client();
    create_topic(&mut client, "bye", 1, &[]);
    assert_eq!(produce_one(&mut client, "bye", 0, make_batch(2, 0, None)).0, 0);
    let (correlation, frame) = client.frame(ApiKey::Fetch, 12, &fetch("bye", 0, 2, 25_000, 1, 1 << 20));
    client.send_raw(&frame).expect("send");
    std::thread::sleep(std::time::Duration::from_millis(200)); // let the fetch start waiting
    let status = broker.terminate();
    let reply = client.read_frame().expect("the waiting fetch is answered before exit");
    assert_eq!(Client::decode(ApiKey::Fetch, 12, reply).0, correlation);
    assert!(status.success(), "exit status {status:?}");

    let broker = Broker::start(&data, &[]);
    let mut client = broker.client();
    assert_eq!(common::requests::fetch_now(&mut client, "bye", 0, 0).1, 2, "data kept across a clean restart");
}

#[test]
fn metrics_count_requests_bytes_and_high_watermarks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &["--metrics-listen", "127.0.0.1:0"]);
    let mut client = broker.client();
    create_topic(&mut client, "measured", 1, &[]);
    assert_eq!(produce_one(&mut client, "measured", 0, make_batch(4, 0, None)).0, 0);
    assert_eq!(produce_one(&mut client, "missing", 0, make_batch(1, 0, None)).0, 3);
    let mut http = TcpStream::connect(broker.metrics.expect("metrics address")).expect("connect");
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    let mut body = String::new();
    http.read_to_string(&mut body).expect("response");
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("ductstream_requests_total{api=\"Produce\",error=\"NONE\"} 1"), "{body}");
    assert!(body.contains("ductstream_requests_total{api=\"Produce\",error=\"UnknownTopicOrPartition\"} 1"), "{body}");
    assert!(body.contains("ductstream_high_watermark{topic=\"measured\",partition=\"0\"} 4"), "{body}");
    assert!(body.contains("ductstream_bytes_in_total"));
}

#[test]
fn an_unreachable_postgres_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("postgres://ductstream:secret@127.0.0.1:{port}/db");
    // --storage, and the documented DUCTSTREAM_POSTGRES_DSN in its place.
    let by_flag = Command::new(env!("CARGO_BIN_EXE_ductstream")).args(["--kafka-listen", "127.0.0.1:0", "--storage", &url]).output();
    let by_env = Command::new(env!("CARGO_BIN_EXE_ductstream"))
        .args(["--kafka-listen", "127.0.0.1:0"])
        .env("DUCTSTREAM_POSTGRES_DSN", &url)
        .env("DUCTSTREAM_GRPC_LISTEN", ":0")
        .output();
    for output in [by_flag.expect("run"), by_env.expect("run")] {
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("cannot open Postgres storage"), "{stderr}");
        assert!(!stderr.contains("secret"), "the password is not logged: {stderr}");
    }
}

/// The documented checkpoint settings: a bad backend or an unwritable path stop the broker at
/// start with a message that says so.
#[test]
fn checkpoint_settings_that_cannot_hold_are_refused_at_start() {
    let run = |env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ductstream"));
        command.args(["--kafka-listen", "127.0.0.1:0", "--grpc-listen", "off"]);
        for (k, v) in env {
            command.env(k, v);
        }
        let output = command.output().expect("run");
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    assert!(run(&[("DUCTSTREAM_CHECKPOINT_BACKEND", "etcd")]).contains("unknown checkpoint backend \"etcd\""));
    let stderr = run(&[("DUCTSTREAM_CHECKPOINT_BACKEND", "sqlite"), ("DUCTSTREAM_CHECKPOINT_PATH", "/proc/ductstream-checkpoints")]);
    assert!(stderr.contains("/proc/ductstream-checkpoints"), "{stderr}");
}

#[test]
fn flags_are_also_environment_variables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_ductstream"))
        .env("DUCTSTREAM_KAFKA_LISTEN", "127.0.0.1:0")
        .env("DUCTSTREAM_DATA_DIR", dir.path())
        .env("DUCTSTREAM_STORAGE", "nonsense")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown storage \"nonsense\""));
}

#[test]
fn the_memory_engine_serves_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("unused"), &["--storage", "memory"]);
    let mut client = broker.client();
    create_topic(&mut client, "mem", 1, &[]);
    assert_eq!(produce_one(&mut client, "mem", 0, make_batch(2, 0, None)), (0, 0));
    assert_eq!(common::requests::fetch_now(&mut client, "mem", 0, 0).1, 2);
}

#[test]
fn the_earlier_engine_names_open_the_embedded_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    {
        let broker = Broker::start(&data, &["--storage", "sled"]);
        let mut client = broker.client();
        create_topic(&mut client, "named", 1, &[]);
        assert_eq!(produce_one(&mut client, "named", 0, make_batch(2, 0, None)), (0, 0));
    }
    let broker = Broker::start(&data, &["--storage", "segment"]);
    let mut client = broker.client();
    assert_eq!(common::requests::fetch_now(&mut client, "named", 0, 0).1, 2, "the same store, both names");
    let output = Command::new(env!("CARGO_BIN_EXE_ductstream"))
        .args(["--kafka-listen", "127.0.0.1:0", "--storage", "rocks", "--data-dir"])
        .arg(dir.path().join("other"))
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("use embedded, memory or a postgres:// URL"));
}
