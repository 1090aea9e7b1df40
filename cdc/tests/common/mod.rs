//! Shared helpers: a throwaway Postgres, flows with the in-memory writer, record parsing.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ductstream_cdc::{Flow, FlowHandle, FlowPhase, FlowSourceOptions, MemoryCheckpointStore, MemoryWriter, Result};
use ductstream_storage::postgres::testing::TestPostgres;
use serde_json::Value;

/// Long enough never to fire on a loaded 2-core machine; only there to end a hung test.
pub const PATIENCE: Duration = Duration::from_secs(180);

pub fn cluster() -> TestPostgres {
    TestPostgres::start().unwrap_or_else(|e| panic!("cannot start a test postgres: {e}"))
}

pub async fn sql(pg: &TestPostgres) -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.expect("connect to the test postgres");
    tokio::spawn(connection);
    client
}

/// Options for a flow on `pg` with short timeouts, plus `extra`.
pub fn options(pg: &TestPostgres, extra: &[(&str, &str)]) -> FlowSourceOptions {
    let mut map: HashMap<String, String> = HashMap::from([
        ("dsn".to_string(), pg.url()),
        ("batch_timeout".to_string(), "50ms".to_string()),
        ("status_interval".to_string(), "1s".to_string()),
        ("heartbeat_interval".to_string(), "1s".to_string()),
        ("topic_prefix".to_string(), "cdc".to_string()),
    ]);
    for (k, v) in extra {
        map.insert(k.to_string(), v.to_string());
    }
    FlowSourceOptions::from_map(&map).expect("valid options")
}

pub struct Running {
    pub handle: FlowHandle,
    pub task: tokio::task::JoinHandle<Result<()>>,
}

impl Running {
    pub async fn streaming(&self) {
        let ok = self
            .handle
            .wait_for(PATIENCE, |s| matches!(s.phase, FlowPhase::Streaming | FlowPhase::Failed(_) | FlowPhase::Stopped))
            .await;
        assert!(ok, "flow did not start streaming: {:?}", self.handle.status());
        assert_eq!(self.handle.status().phase, FlowPhase::Streaming, "flow: {:?}", self.handle.status());
    }

    pub async fn stop(self) -> Result<()> {
        self.handle.stop();
        tokio::time::timeout(PATIENCE, self.task).await.expect("flow stops").expect("flow task")
    }
}

pub fn start(options: FlowSourceOptions, writer: &Arc<MemoryWriter>, store: &Arc<MemoryCheckpointStore>) -> Running {
    let flow = Flow::new(options, writer.clone(), store.clone()).expect("flow");
    let handle = flow.handle();
    Running { handle, task: tokio::spawn(flow.run()) }
}

/// Runs a flow that is expected to fail at start-up and returns its error.
pub async fn start_error(options: FlowSourceOptions) -> ductstream_cdc::CdcError {
    let flow = Flow::new(options, Arc::new(MemoryWriter::new()), Arc::new(MemoryCheckpointStore::new())).expect("flow");
    match tokio::time::timeout(PATIENCE, flow.run()).await.expect("flow ends") {
        Ok(()) => panic!("the flow was expected to fail"),
        Err(e) => e,
    }
}

/// Parsed record values of a topic.
pub fn values(writer: &MemoryWriter, topic: &str) -> Vec<Value> {
    writer
        .records(topic)
        .iter()
        .map(|r| serde_json::from_slice(r.value.as_deref().expect("value")).expect("JSON value"))
        .collect()
}

pub async fn wait_records(writer: &MemoryWriter, topic: &str, count: usize) {
    let ok = writer.wait_until(PATIENCE, |t| t.get(topic).is_some_and(|r| r.len() >= count)).await;
    assert!(ok, "expected {count} records on {topic}, have {}", writer.records(topic).len());
}

pub fn lsn(value: &Value) -> ductstream_cdc::Lsn {
    value["lsn"].as_str().expect("lsn").parse().expect("lsn text")
}
