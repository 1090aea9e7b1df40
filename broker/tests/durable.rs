#![allow(clippy::expect_used)] // tests: a failed expectation is the report
//! Durable consumers through the real broker's gRPC API: pull, ack, nak, in progress, term,
//! dead letters, concurrent workers, replay, restarts, and bad input.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::requests::{create_topic, produce_one};
use common::{temp_broker, Broker};
use ductstream_proto::v1 as pb;
use ductstream_proto::v1::stream_service_client::StreamServiceClient;
use ductstream_broker::batch_builder::{self, NewRecord};
use tonic::transport::Channel;
use tonic::Code;

type Api = StreamServiceClient<Channel>;

async fn api(broker: &Broker) -> Api {
    let addr = broker.grpc.expect("the broker serves gRPC");
    StreamServiceClient::connect(format!("http://{addr}")).await.expect("connect to gRPC")
}

/// A batch of records `key-<i>`/`value-<i>` for i in `range`, each with the given headers.
fn batch(range: std::ops::Range<usize>, timestamp: i64, headers: &[(&str, String)]) -> Bytes {
    let records: Vec<NewRecord> = range
        .map(|i| NewRecord {
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: headers.iter().map(|(k, v)| ((*k).to_owned().into(), Some(Bytes::from(v.clone())))).collect(),
            timestamp,
        })
        .collect();
    batch_builder::build(&records).expect("build batch").into_bytes()
}

fn produce(broker: &Broker, topic: &str, partition: i32, records: Bytes) {
    let (code, _) = produce_one(&mut broker.client(), topic, partition, records);
    assert_eq!(code, 0, "produce to {topic}");
}

fn config(stream: &str, group: &str) -> pb::ConsumerConfig {
    pb::ConsumerConfig { stream: stream.into(), group: group.into(), ..Default::default() }
}

async fn create(api: &mut Api, config: pb::ConsumerConfig) -> pb::Consumer {
    api.create_consumer(pb::CreateConsumerRequest { config: Some(config) }).await.expect("create consumer").into_inner()
}

async fn pull(api: &mut Api, stream: &str, group: &str, max: u32, visibility_ms: u64) -> Vec<pb::Message> {
    let request = pb::PullRequest {
        stream: stream.into(),
        group: group.into(),
        max_messages: max,
        visibility_timeout_ms: Some(visibility_ms),
        consumer_id: "test".into(),
        max_wait_ms: 0,
        no_create: false,
    };
    api.pull(request).await.expect("pull").into_inner().messages
}

async fn ack(api: &mut Api, stream: &str, group: &str, ids: &[String]) -> Result<pb::AckResponse, tonic::Status> {
    api.ack(pb::AckRequest { stream: stream.into(), group: group.into(), ids: ids.to_vec() }).await.map(|r| r.into_inner())
}

async fn get(api: &mut Api, stream: &str, group: &str) -> pb::Consumer {
    api.get_consumer(pb::ConsumerRef { stream: stream.into(), group: group.into() }).await.expect("get").into_inner()
}

fn ids(messages: &[pb::Message]) -> Vec<String> {
    messages.iter().map(|m| m.id.clone()).collect()
}

fn header<'m>(m: &'m pb::Message, key: &str) -> Option<&'m str> {
    m.headers.iter().find(|h| h.key == key).and_then(|h| h.value.as_deref()).and_then(|v| std::str::from_utf8(v).ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_ack_redelivery_nak_progress_and_term() {
    let (_dir, broker) = temp_broker(&[]);
    create_topic(&mut broker.client(), "orders", 1, &[]);
    produce(&broker, "orders", 0, batch(0..6, 1_000, &[("trace", "t1".into())]));
    let mut api = api(&broker).await;
    let created = create(&mut api, pb::ConsumerConfig { max_deliver: 0, ..config("orders", "search") }).await;
    assert_eq!(created.config.as_ref().map(|c| c.dead_letter_topic.as_str()), Some("orders.dlq"));
    assert_eq!(created.stats.as_ref().map(|s| s.lag), Some(6));

    // Worker A takes two with a short claim; worker B gets the next ones, never A's.
    let a = pull(&mut api, "orders", "search", 2, 1_500).await;
    assert_eq!(ids(&a), ["0-0", "0-1"]);
    assert_eq!((a[0].key.as_deref(), a[0].value.as_deref()), (Some(&b"key-0"[..]), Some(&b"value-0"[..])));
    assert_eq!((a[0].delivery_count, header(&a[0], "trace")), (1, Some("t1")));
    let b = pull(&mut api, "orders", "search", 2, 60_000).await;
    assert_eq!(ids(&b), ["0-2", "0-3"]);
    assert_eq!(ack(&mut api, "orders", "search", &ids(&b)).await.expect("ack").applied, 2);

    // A's claim ends unacked: the messages come back, counted as second deliveries.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let again = pull(&mut api, "orders", "search", 2, 60_000).await;
    assert_eq!(ids(&again), ["0-0", "0-1"]);
    assert!(again.iter().all(|m| m.delivery_count == 2));

    // Nak with a delay: not before the delay, then back.
    api.nak(pb::NakRequest { stream: "orders".into(), group: "search".into(), ids: vec!["0-0".into()], delay_ms: 1_500 })
        .await
        .expect("nak");
    assert_eq!(ids(&pull(&mut api, "orders", "search", 1, 60_000).await), ["0-4"]);
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let naked = pull(&mut api, "orders", "search", 1, 60_000).await;
    assert_eq!((ids(&naked), naked[0].delivery_count), (vec!["0-0".to_string()], 3));

    // In progress restarts the claim: a message held with a short claim stays held.
    let held = pull(&mut api, "orders", "search", 1, 1_000).await;
    assert_eq!(ids(&held), ["0-5"]);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        api.in_progress(pb::AckRequest { stream: "orders".into(), group: "search".into(), ids: ids(&held) })
            .await
            .expect("in progress");
    }
    assert!(pull(&mut api, "orders", "search", 10, 60_000).await.is_empty(), "0-5 is still claimed");

    // Term: never again, and a dead letter saying why.
    let termed = api
        .term(pb::TermRequest { stream: "orders".into(), group: "search".into(), ids: vec!["0-5".into()], reason: "bad payload".into() })
        .await
        .expect("term")
        .into_inner();
    assert_eq!(termed.applied, 1);
    let stats = get(&mut api, "orders", "search").await.stats.expect("stats");
    assert_eq!((stats.terminated, stats.dead_lettered, stats.acked, stats.pending), (1, 1, 2, 3));

    create(&mut api, config("orders.dlq", "inspect")).await;
    let dead = pull(&mut api, "orders.dlq", "inspect", 10, 60_000).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value.as_deref(), Some(&b"value-5"[..]));
    assert_eq!(header(&dead[0], "ductstream.dlq.reason"), Some("terminated: bad payload"));
    assert_eq!(header(&dead[0], "ductstream.dlq.offset"), Some("5"));
    assert_eq!(header(&dead[0], "ductstream.dlq.consumer"), Some("search"));
    assert_eq!(header(&dead[0], "trace"), Some("t1"), "the original headers travel along");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_deliver_sends_to_the_dead_letter_topic_with_headers() {
    let (_dir, broker) = temp_broker(&["--metrics-listen", "127.0.0.1:0"]);
    create_topic(&mut broker.client(), "jobs", 1, &[]);
    produce(&broker, "jobs", 0, batch(0..2, 1_000, &[]));
    let mut api = api(&broker).await;
    let settings = pb::ConsumerConfig { max_deliver: 2, dead_letter_topic: "jobs.failed".into(), ..config("jobs", "w") };
    create(&mut api, settings).await;
    let first = pull(&mut api, "jobs", "w", 10, 100).await;
    assert_eq!(ids(&first), ["0-0", "0-1"]);
    ack(&mut api, "jobs", "w", &["0-1".into()]).await.expect("ack");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let second = pull(&mut api, "jobs", "w", 10, 100).await;
    assert_eq!((ids(&second), second[0].delivery_count), (vec!["0-0".to_string()], 2));
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Delivered twice and never acked: the next pull moves 0-0 instead of handing it out.
    assert!(pull(&mut api, "jobs", "w", 10, 100).await.is_empty());
    let stats = get(&mut api, "jobs", "w").await.stats.expect("stats");
    assert_eq!((stats.dead_lettered, stats.pending, stats.lag), (1, 0, 0));
    let metrics = broker.metrics_text();
    for line in [
        "ductstream_durable_dead_lettered_total{stream=\"jobs\",group=\"w\"} 1",
        "ductstream_durable_redelivered_total{stream=\"jobs\",group=\"w\"} 1",
        "ductstream_durable_acked_total{stream=\"jobs\",group=\"w\"} 1",
        "ductstream_durable_pending{stream=\"jobs\",group=\"w\"} 0",
        "ductstream_durable_lag{stream=\"jobs\",group=\"w\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }

    create(&mut api, config("jobs.failed", "inspect")).await;
    let dead = pull(&mut api, "jobs.failed", "inspect", 10, 60_000).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key.as_deref(), Some(&b"key-0"[..]));
    assert_eq!(header(&dead[0], "ductstream.dlq.reason"), Some("max deliveries (2) reached"));
    assert_eq!(header(&dead[0], "ductstream.dlq.deliveries"), Some("2"));
    assert_eq!(header(&dead[0], "ductstream.dlq.stream"), Some("jobs"));
    assert_eq!(header(&dead[0], "ductstream.dlq.partition"), Some("0"));
    assert_eq!(header(&dead[0], "ductstream.dlq.offset"), Some("0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_ack_100k_messages_exactly_once() {
    let (_dir, broker) = temp_broker(&[]);
    create_topic(&mut broker.client(), "work", 4, &[]);
    const TOTAL: usize = 100_000;
    for chunk in 0..(TOTAL / 1000) {
        produce(&broker, "work", (chunk % 4) as i32, batch(chunk * 1000..(chunk + 1) * 1000, 1_000, &[]));
    }
    let mut api0 = api(&broker).await;
    create(&mut api0, config("work", "pool")).await;

    // Every value seen, and which worker saw it; a value seen twice fails the test.
    let seen: Arc<Mutex<HashSet<Bytes>>> = Arc::new(Mutex::new(HashSet::new()));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (seen, mut api) = (seen.clone(), api(&broker).await);
        workers.push(tokio::spawn(async move {
            let mut acked = 0usize;
            loop {
                let got = pull(&mut api, "work", "pool", 500, 120_000).await;
                if got.is_empty() {
                    return acked;
                }
                {
                    let mut seen = seen.lock().expect("lock");
                    for m in &got {
                        let value = Bytes::from(m.value.clone().expect("value"));
                        assert!(seen.insert(value.clone()), "{value:?} was handed out twice");
                    }
                }
                let applied = ack(&mut api, "work", "pool", &ids(&got)).await.expect("ack").applied as usize;
                assert_eq!(applied, got.len());
                acked += applied;
            }
        }));
    }
    let mut total = 0;
    for worker in workers {
        total += worker.await.expect("worker");
    }
    assert_eq!(total, TOTAL);
    assert_eq!(seen.lock().expect("lock").len(), TOTAL);
    let consumer = get(&mut api0, "work", "pool").await;
    let stats = consumer.stats.expect("stats");
    assert_eq!((stats.acked, stats.pending, stats.lag, stats.redelivered), (TOTAL as u64, 0, 0, 0));
    assert!(consumer.partitions.iter().all(|p| p.ack_floor == p.high_watermark));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_by_offset_time_and_lsn() {
    let (_dir, broker) = temp_broker(&[]);
    create_topic(&mut broker.client(), "cdc", 1, &[]);
    // Three batches as CDC writes them: increasing times and LSNs.
    produce(&broker, "cdc", 0, batch(0..2, 10_000, &[("ductstream.lsn", "0/16B6C50".into())]));
    produce(&broker, "cdc", 0, batch(2..4, 20_000, &[("ductstream.lsn", "0/16B7000".into())]));
    produce(&broker, "cdc", 0, batch(4..6, 30_000, &[("ductstream.lsn", "1/0".into())]));
    let mut api = api(&broker).await;
    create(&mut api, pb::ConsumerConfig { deliver_policy: pb::DeliverPolicy::New as i32, ..config("cdc", "r") }).await;
    assert!(pull(&mut api, "cdc", "r", 10, 60_000).await.is_empty(), "deliver new starts at the end");

    let replay = |from| pb::ReplayRequest { stream: "cdc".into(), group: "r".into(), from: Some(from) };
    api.replay(replay(pb::replay_request::From::Offset(3))).await.expect("replay offset");
    assert_eq!(ids(&pull(&mut api, "cdc", "r", 10, 60_000).await), ["0-3", "0-4", "0-5"]);

    let since = ductstream_proto::Timestamp { seconds: 15, nanos: 0 };
    api.replay(replay(pb::replay_request::From::Since(since))).await.expect("replay time");
    assert_eq!(ids(&pull(&mut api, "cdc", "r", 10, 60_000).await), ["0-2", "0-3", "0-4", "0-5"]);

    api.replay(replay(pb::replay_request::From::Lsn("0/16B6D00".into()))).await.expect("replay lsn");
    assert_eq!(ids(&pull(&mut api, "cdc", "r", 10, 60_000).await), ["0-2", "0-3", "0-4", "0-5"]);
    api.replay(replay(pb::replay_request::From::Lsn("0/0".into()))).await.expect("replay lsn");
    assert_eq!(pull(&mut api, "cdc", "r", 10, 60_000).await.len(), 6);

    // Deliver last per key: a second write of key-0 replaces the first.
    produce(&broker, "cdc", 0, batch(0..1, 40_000, &[]));
    create(&mut api, pb::ConsumerConfig { deliver_policy: pb::DeliverPolicy::LastPerKey as i32, ..config("cdc", "latest") }).await;
    assert_eq!(ids(&pull(&mut api, "cdc", "latest", 10, 60_000).await), ["0-1", "0-2", "0-3", "0-4", "0-5", "0-6"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_changes_nothing() {
    let (_dir, broker) = temp_broker(&[]);
    create_topic(&mut broker.client(), "s", 1, &[]);
    produce(&broker, "s", 0, batch(0..5, 1_000, &[]));
    let mut api = api(&broker).await;
    create(&mut api, config("s", "a")).await;
    create(&mut api, config("s", "b")).await;
    let got = pull(&mut api, "s", "a", 2, 60_000).await;
    pull(&mut api, "s", "b", 4, 60_000).await;
    let before = get(&mut api, "s", "a").await;

    let err = ack(&mut api, "s", "a", &["0-0".into(), "0-3".into()]).await.expect_err("0-3 went to b, not a");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("0-3") && err.message().contains("never delivered"), "{}", err.message());
    let err = ack(&mut api, "s", "a", &["zero".into()]).await.expect_err("not an id");
    assert!(err.message().contains("<partition>-<offset>"), "{}", err.message());
    assert_eq!(get(&mut api, "s", "a").await, before, "a refused ack changes nothing");

    for visibility in [0, 366 * 24 * 3600 * 1000] {
        let request = pb::PullRequest {
            stream: "s".into(),
            group: "a".into(),
            max_messages: 1,
            visibility_timeout_ms: Some(visibility),
            ..Default::default()
        };
        let err = api.pull(request).await.expect_err("visibility out of range");
        assert_eq!(err.code(), Code::InvalidArgument, "{visibility}");
        assert!(err.message().contains("12 hours"), "{}", err.message());
    }

    let err = api.get_consumer(pb::ConsumerRef { stream: "s".into(), group: "nobody".into() }).await.expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    let err = api.create_consumer(pb::CreateConsumerRequest { config: Some(config("nope", "a")) }).await.expect_err("no stream");
    assert_eq!(err.code(), Code::NotFound);
    let err = api.create_consumer(pb::CreateConsumerRequest { config: Some(config("s", "a")) }).await.expect_err("exists");
    assert_eq!(err.code(), Code::AlreadyExists);

    // A replay before the start of the topic (records below 3 deleted) is refused.
    let (code, _) = common::requests::delete_records(&mut broker.client(), "s", 0, 3);
    assert_eq!(code, 0);
    let err = api
        .replay(pb::ReplayRequest { stream: "s".into(), group: "a".into(), from: Some(pb::replay_request::From::Offset(1)) })
        .await
        .expect_err("before the log start");
    assert_eq!(err.code(), Code::OutOfRange);
    assert!(err.message().contains("offsets 3 to 4"), "{}", err.message());
    let err = api
        .replay(pb::ReplayRequest { stream: "s".into(), group: "a".into(), from: Some(pb::replay_request::From::Lsn("nope".into())) })
        .await
        .expect_err("bad lsn");
    assert_eq!(err.code(), Code::InvalidArgument);

    // Still consistent: a's claims on deleted records are dropped, the rest goes on.
    ack(&mut api, "s", "a", &ids(&got)).await.expect("acks of claims on deleted records are accepted");
    assert_eq!(ids(&pull(&mut api, "s", "a", 10, 60_000).await), ["0-3", "0-4"]);
}

/// Claims, acks and counters survive a kill -9; unacked claims come back once their time is up.
async fn claims_survive_a_restart(extra: &[&str], data_dir: &std::path::Path) {
    let broker = Broker::start(data_dir, extra);
    create_topic(&mut broker.client(), "r", 1, &[]);
    produce(&broker, "r", 0, batch(0..4, 1_000, &[]));
    let mut api0 = api(&broker).await;
    create(&mut api0, config("r", "g")).await;
    let got = pull(&mut api0, "r", "g", 3, 5_000).await;
    assert_eq!(ids(&got), ["0-0", "0-1", "0-2"]);
    ack(&mut api0, "r", "g", &["0-1".into()]).await.expect("ack");
    let listen = broker.addr.to_string();
    broker.kill();

    let broker = Broker::start_at(data_dir, &listen, extra);
    let mut api1 = api(&broker).await;
    let stats = get(&mut api1, "r", "g").await.stats.expect("stats");
    assert_eq!((stats.acked, stats.pending, stats.delivered), (1, 2, 3));
    assert_eq!(ids(&pull(&mut api1, "r", "g", 10, 60_000).await), ["0-3"], "claims held before the kill stay held");
    tokio::time::sleep(Duration::from_millis(5_100)).await;
    let back = pull(&mut api1, "r", "g", 10, 60_000).await;
    assert_eq!(ids(&back), ["0-0", "0-2"], "the acked message never comes back");
    assert!(back.iter().all(|m| m.delivery_count == 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_survive_a_restart_on_the_embedded_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    claims_survive_a_restart(&[], &dir.path().join("data")).await;
}

/// Twenty kill -9 rounds, each producing records (acks=all) and acking what a worker pulled:
/// after every restart the acks are all counted and no acked message comes back; at the end
/// every produced record was acked or is still delivered, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_survive_twenty_kill_dash_nine_rounds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut acked: HashSet<String> = HashSet::new();
    let mut produced = 0;
    for round in 0..20 {
        let broker = Broker::start(&data, &[]);
        let mut api = api(&broker).await;
        if round == 0 {
            create_topic(&mut broker.client(), "loop", 1, &[("segment.bytes", "2048")]);
            create(&mut api, config("loop", "g")).await;
        } else {
            let stats = get(&mut api, "loop", "g").await.stats.expect("stats");
            assert_eq!(stats.acked as usize, acked.len(), "round {round}: every ack before the kill is kept");
        }
        produce(&broker, "loop", 0, batch(produced..produced + 20, 1_000, &[]));
        produced += 20;
        let got = pull(&mut api, "loop", "g", 15, 60_000).await;
        assert!(!got.is_empty(), "round {round}: something to pull");
        for m in &got {
            assert!(!acked.contains(&m.id), "round {round}: {} was acked before and came back", m.id);
        }
        assert_eq!(ack(&mut api, "loop", "g", &ids(&got)).await.expect("ack").applied as usize, got.len());
        acked.extend(ids(&got));
        broker.kill();
    }
    let broker = Broker::start(&data, &[]);
    let mut api = api(&broker).await;
    let mut rest: HashSet<String> = HashSet::new();
    loop {
        let got = pull(&mut api, "loop", "g", 100, 60_000).await;
        if got.is_empty() {
            break;
        }
        for m in got {
            assert!(!acked.contains(&m.id) && rest.insert(m.id.clone()), "{} delivered again", m.id);
        }
    }
    assert_eq!(acked.len() + rest.len(), produced, "every produced record acked or delivered now");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_survive_a_restart_on_postgres() {
    let pg = ductstream_storage::postgres::testing::TestPostgres::start().expect("test postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    claims_survive_a_restart(&["--storage", &pg.url()], &dir.path().join("unused")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_wakes_on_an_append() {
    let (_dir, broker) = temp_broker(&[]);
    create_topic(&mut broker.client(), "wait", 1, &[]);
    let mut api = api(&broker).await;
    create(&mut api, config("wait", "g")).await;
    let request = pb::PullRequest {
        stream: "wait".into(),
        group: "g".into(),
        max_messages: 5,
        max_wait_ms: 30_000,
        ..Default::default()
    };
    let waiting = tokio::spawn(async move { api.pull(request).await.map(|r| r.into_inner().messages) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "nothing to hand out yet");
    produce(&broker, "wait", 0, batch(0..1, 1_000, &[]));
    let got = tokio::time::timeout(Duration::from_secs(20), waiting).await.expect("woken").expect("task").expect("pull");
    assert_eq!(ids(&got), ["0-0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_on_two_brokers_sharing_postgres_get_disjoint_messages() {
    let pg = ductstream_storage::postgres::testing::TestPostgres::start().expect("test postgres");
    let url = pg.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let one = Broker::start(&dir.path().join("one"), &["--storage", &url, "--node-id", "1"]);
    let two = Broker::start(&dir.path().join("two"), &["--storage", &url, "--node-id", "2"]);
    create_topic(&mut one.client(), "shared", 2, &[]);
    const TOTAL: usize = 10_000;
    for chunk in 0..(TOTAL / 500) {
        produce(&one, "shared", (chunk % 2) as i32, batch(chunk * 500..(chunk + 1) * 500, 1_000, &[]));
    }
    let mut admin = api(&one).await;
    create(&mut admin, config("shared", "pool")).await;

    let seen: Arc<Mutex<HashSet<Bytes>>> = Arc::new(Mutex::new(HashSet::new()));
    let mut workers = Vec::new();
    for broker in [&one, &two] {
        let (seen, mut api) = (seen.clone(), api(broker).await);
        workers.push(tokio::spawn(async move {
            let mut acked = 0usize;
            loop {
                let got = pull(&mut api, "shared", "pool", 200, 120_000).await;
                if got.is_empty() {
                    return acked;
                }
                for m in &got {
                    let value = Bytes::from(m.value.clone().expect("value"));
                    assert!(seen.lock().expect("lock").insert(value.clone()), "{value:?} was handed out twice");
                }
                acked += ack(&mut api, "shared", "pool", &ids(&got)).await.expect("ack").applied as usize;
            }
        }));
    }
    let mut total = 0;
    for worker in workers {
        total += worker.await.expect("worker");
    }
    assert_eq!(total, TOTAL);
    let stats = get(&mut api(&two).await, "shared", "pool").await.stats.expect("stats");
    assert_eq!((stats.acked, stats.pending, stats.lag), (TOTAL as u64, 0, 0));
}
