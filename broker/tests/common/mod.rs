//! Test harness: the real `ductstream` binary on port 0, and a raw Kafka client built on the
//! `kafka-protocol` crate, so tests can send exactly the bytes they mean to.
#![allow(dead_code, clippy::expect_used)] // test harness: a failed expectation is the report

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// A running broker process, killed when dropped.
pub struct Broker {
    pub child: Child,
    pub addr: SocketAddr,
    pub metrics: Option<SocketAddr>,
    /// The gRPC API (on a free port unless `extra` names one).
    pub grpc: Option<SocketAddr>,
    pub data_dir: PathBuf,
    stderr_log: PathBuf,
}

/// A broker with extra flags on a fresh data folder; keep the folder alive as long as the broker.
pub fn temp_broker(extra: &[&str]) -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), extra);
    (dir, broker)
}

impl Broker {
    /// Starts the broker (sled unless `extra` says otherwise) in `data_dir` with extra flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Broker {
        Broker::start_at(data_dir, "127.0.0.1:0", extra)
    }

    /// [`Broker::start`] on a given listen address (to restart a broker where it was).
    pub fn start_at(data_dir: &Path, listen: &str, extra: &[&str]) -> Broker {
        let stderr_log = data_dir.with_extension("stderr.log");
        let stderr = std::fs::File::create(&stderr_log).expect("stderr log");
        let grpc_flag: &[&str] = if extra.contains(&"--grpc-listen") { &[] } else { &["--grpc-listen", "127.0.0.1:0"] };
        let mut child = Command::new(env!("CARGO_BIN_EXE_ductstream"))
            .args(["--kafka-listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(grpc_flag)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn ductstream");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut addr, mut metrics, mut grpc) = (None, None, None);
        for line in lines.by_ref() {
            let line = line.expect("read stdout");
            if let Some(a) = line.strip_prefix("listening grpc=") {
                grpc = Some(a.parse().expect("grpc addr"));
            }
            if let Some(a) = line.strip_prefix("listening metrics=") {
                metrics = Some(a.parse().expect("metrics addr"));
            }
            if let Some(a) = line.strip_prefix("listening kafka=") {
                addr = Some(a.parse().expect("kafka addr"));
                break;
            }
        }
        let Some(addr) = addr else {
            let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
            panic!("broker did not start; stderr:\n{log}");
        };
        // Keep draining stdout so the broker never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Broker { child, addr, metrics, grpc, data_dir: data_dir.to_owned(), stderr_log }
    }

    /// The Prometheus text on `GET /metrics` (the broker must have `--metrics-listen`).
    pub fn metrics_text(&self) -> String {
        let mut http = TcpStream::connect(self.metrics.expect("started with --metrics-listen")).expect("connect");
        http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
        let mut body = String::new();
        http.read_to_string(&mut body).expect("response");
        body
    }

    /// One unlabelled series' value from [`Broker::metrics_text`].
    pub fn metric(&self, name: &str) -> f64 {
        let text = self.metrics_text();
        let line = text.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("no {name} in:\n{text}"));
        line.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a number")
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// kill -9.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        self.child.wait().expect("wait")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ductstream-admin --server SERVER ARGS`: (success, stdout as JSON or null, stdout and
/// stderr as text).
pub fn admin(server: &str, args: &[&str]) -> (bool, serde_json::Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ductstream-admin"))
        .args(["--server", server])
        .args(args)
        .output()
        .expect("run ductstream-admin");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (output.status.success(), json, format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)))
}

/// A blocking raw Kafka connection.
pub struct Client {
    pub stream: TcpStream,
    next_correlation: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        Client { stream, next_correlation: 1 }
    }

    /// Encodes a request frame without sending it.
    pub fn frame<R: Encodable>(&mut self, key: ApiKey, version: i16, request: &R) -> (i32, Bytes) {
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("ductstream-tests")));
        let mut body = BytesMut::new();
        header.encode(&mut body, key.request_header_version(version)).expect("encode header");
        request.encode(&mut body, version).expect("encode request");
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        (correlation, frame.freeze())
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one response frame; `None` when the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).ok()?;
        Some(Bytes::from(buf))
    }

    /// Decodes a response frame for `key` at `version`, returning its correlation id.
    pub fn decode(key: ApiKey, version: i16, mut frame: Bytes) -> (i32, ResponseKind) {
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version)).expect("response header");
        let response = ResponseKind::decode(key, &mut frame, version).expect("response body");
        assert!(!frame.has_remaining(), "{key:?} v{version} response has {} trailing bytes", frame.remaining());
        (header.correlation_id, response)
    }

    /// Sends one request and reads its response.
    pub fn call<R: Encodable>(&mut self, key: ApiKey, version: i16, request: &R) -> ResponseKind {
        let (correlation, frame) = self.frame(key, version, request);
        self.send_raw(&frame).expect("send");
        let response = self.read_frame().unwrap_or_else(|| panic!("{key:?} v{version}: connection closed"));
        let (got, body) = Client::decode(key, version, response);
        assert_eq!(got, correlation, "correlation id");
        body
    }

    /// True when the broker closed this connection (reading gives EOF or a reset).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }
}

pub fn name(s: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(StrBytes::from_string(s.to_owned()))
}

pub fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Unwraps a response of the expected kind.
#[macro_export]
macro_rules! expect_kind {
    ($response:expr, $kind:ident) => {
        match $response {
            kafka_protocol::messages::ResponseKind::$kind(r) => r,
            other => panic!("expected {}, got {other:?}", stringify!($kind)),
        }
    };
}

pub mod requests {
    use bytes::Bytes;
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::*;

    use super::{name, str, Client};

    pub fn produce(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
        ProduceRequest::default().with_acks(acks).with_timeout_ms(30_000).with_topic_data(vec![
            TopicProduceData::default().with_name(name(topic)).with_partition_data(vec![
                PartitionProduceData::default().with_index(partition).with_records(Some(records)),
            ]),
        ])
    }

    pub fn fetch(topic: &str, partition: i32, offset: i64, max_wait_ms: i32, min_bytes: i32, max_bytes: i32) -> FetchRequest {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(min_bytes)
            .with_max_bytes(max_bytes)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(vec![
                FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(max_bytes),
            ])])
    }

    /// Creates a topic and asserts it worked.
    pub fn create_topic(client: &mut Client, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
        let request = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| CreatableTopicConfig::default().with_name(str(k)).with_value(Some(str(v))))
                        .collect(),
                ),
        ]);
        let response = expect_kind!(client.call(ApiKey::CreateTopics, 7, &request), CreateTopics);
        assert_eq!(response.topics[0].error_code, 0, "create {topic}: {:?}", response.topics[0].error_message);
    }

    /// Produces one batch (acks=all) and returns (error code, base offset).
    pub fn produce_one(client: &mut Client, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
        let response = expect_kind!(client.call(ApiKey::Produce, 9, &produce(topic, partition, records, -1)), Produce);
        let p = &response.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }

    /// Deletes records below `offset` and returns (error code, new low watermark).
    pub fn delete_records(client: &mut Client, topic: &str, partition: i32, offset: i64) -> (i16, i64) {
        use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
        let request = kafka_protocol::messages::DeleteRecordsRequest::default().with_timeout_ms(10_000).with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(partition).with_offset(offset)]),
        ]);
        let response = expect_kind!(client.call(ApiKey::DeleteRecords, 2, &request), DeleteRecords);
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.low_watermark)
    }

    /// Fetches (no waiting) and returns (error code, high watermark, records bytes).
    pub fn fetch_now(client: &mut Client, topic: &str, partition: i32, offset: i64) -> (i16, i64, Bytes) {
        let response = expect_kind!(client.call(ApiKey::Fetch, 12, &fetch(topic, partition, offset, 0, 0, 50 << 20)), Fetch);
        let p = &response.responses[0].partitions[0];
        (p.error_code, p.high_watermark, p.records.clone().unwrap_or_default())
    }

    /// Fetches at `offset` (no waiting, no data wanted) and returns (error code, high
    /// watermark, log start offset).
    pub fn bounds(client: &mut Client, topic: &str, partition: i32, offset: i64) -> (i16, i64, i64) {
        let response = expect_kind!(client.call(ApiKey::Fetch, 12, &fetch(topic, partition, offset, 0, 0, 0)), Fetch);
        let p = &response.responses[0].partitions[0];
        (p.error_code, p.high_watermark, p.log_start_offset)
    }
}
