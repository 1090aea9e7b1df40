#![allow(clippy::expect_used)] // tests: a failed expectation is the report

//! The broker on Postgres storage: a throwaway cluster started with the system's
//! `initdb`/`pg_ctl`, the real broker binary on it.

mod common;

use std::thread;

use common::requests::{bounds, create_topic, delete_records, fetch, fetch_now, produce_one};
use common::{Broker, Client};
use ductstream_storage::postgres::testing::TestPostgres;
use ductstream_storage::testsuite::make_batch;
use kafka_protocol::messages::ApiKey;

#[test]
fn produce_fetch_and_restart_on_postgres() {
    let pg = TestPostgres::start().expect("throwaway Postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = pg.url();
    let flags = ["--storage", url.as_str()];
    // The restarted broker comes back at the same address, so it may take its own lease again.
    let listen = free_address();
    {
        let broker = Broker::start_at(&dir.path().join("a"), &listen, &flags);
        let mut c = broker.client();
        create_topic(&mut c, "pg", 2, &[]);
        assert_eq!(produce_one(&mut c, "pg", 1, make_batch(3, 10, None)), (0, 0));
        assert_eq!(produce_one(&mut c, "pg", 1, make_batch(2, 20, None)), (0, 3));
        broker.kill();
    }
    let broker = Broker::start_at(&dir.path().join("b"), &listen, &flags);
    let mut c = broker.client();
    let (code, hw, records) = fetch_now(&mut c, "pg", 1, 0);
    assert_eq!((code, hw), (0, 5), "acknowledged batches survive a kill -9 of the broker");
    assert!(!records.is_empty());
    assert_eq!(produce_one(&mut c, "pg", 1, make_batch(1, 30, None)), (0, 5), "offsets continue");
}

#[test]
fn a_fetch_on_one_broker_wakes_when_another_broker_appends() {
    let (_pg, _dir, a, b) = two_brokers();
    let mut consumer = b.client();
    create_topic(&mut consumer, "shared", 16, &[]);
    // A partition that broker a leads (16 partitions over 2 brokers: a leads some).
    let partition = (0..16).find(|p| leader_address(&mut consumer, "shared", *p) == a.addr).expect("a leads a partition");
    // Open the partition on broker b, then park a long fetch there.
    assert_eq!(fetch_now(&mut consumer, "shared", partition, 0).1, 0);
    let (correlation, frame) = consumer.frame(ApiKey::Fetch, 12, &fetch("shared", partition, 0, 20_000, 1, 1 << 20));
    consumer.send_raw(&frame).expect("send fetch");
    let addr = a.addr;
    let producer = thread::spawn(move || {
        thread::sleep(std::time::Duration::from_millis(200));
        produce_one(&mut Client::connect(addr), "shared", partition, make_batch(4, 5, None))
    });
    let reply = consumer.read_frame().expect("the parked fetch is answered");
    let (got, response) = Client::decode(ApiKey::Fetch, 12, reply);
    assert_eq!(got, correlation);
    let response = expect_kind!(response, Fetch);
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.high_watermark, 4, "broker b learned of broker a's append through NOTIFY");
    assert!(!p.records.as_ref().expect("records").is_empty());
    assert_eq!(producer.join().expect("producer"), (0, 0));
}

#[test]
fn records_deleted_through_one_broker_are_gone_from_the_other() {
    let (_pg, _dir, a, b) = two_brokers();
    let mut on_a = a.client();
    let mut on_b = b.client();
    create_topic(&mut on_a, "trimmed", 1, &[]);
    let leader = leader_address(&mut on_a, "trimmed", 0);
    assert_eq!(produce_one(&mut Client::connect(leader), "trimmed", 0, make_batch(5, 1, None)), (0, 0));
    // Both brokers have the partition open, with its log start in memory.
    assert_eq!(fetch_now(&mut on_a, "trimmed", 0, 0).0, 0);
    assert_eq!(fetch_now(&mut on_b, "trimmed", 0, 0).0, 0);

    assert_eq!(delete_records(&mut on_a, "trimmed", 0, 5), (0, 5));
    assert_eq!(fetch_now(&mut on_a, "trimmed", 0, 0).0, 1, "OFFSET_OUT_OF_RANGE on the broker that deleted");
    // A fetch at the high watermark reads nothing from storage: broker b answers with the log
    // start it heard of through the same notification as appends.
    let log_start = |client: &mut Client| {
        let (code, high_watermark, log_start) = bounds(client, "trimmed", 0, 5);
        assert_eq!((code, high_watermark), (0, 5));
        log_start
    };
    assert_eq!(log_start(&mut on_a), 5);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log_start(&mut on_b) != 5 && std::time::Instant::now() < deadline {
        thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(log_start(&mut on_b), 5, "broker b learned the log start set through broker a");
    assert_eq!(fetch_now(&mut on_b, "trimmed", 0, 0).0, 1, "OFFSET_OUT_OF_RANGE below it");
}

/// Brokers 1 and 2 on one throwaway Postgres (kept alive by the first two values).
fn two_brokers() -> (TestPostgres, tempfile::TempDir, Broker, Broker) {
    let pg = TestPostgres::start().expect("throwaway Postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = pg.url();
    let a = Broker::start(&dir.path().join("a"), &["--storage", url.as_str(), "--node-id", "1"]);
    let b = Broker::start(&dir.path().join("b"), &["--storage", url.as_str(), "--node-id", "2"]);
    (pg, dir, a, b)
}

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

/// The address of the broker that metadata names as the partition's leader.
fn leader_address(client: &mut Client, topic: &str, partition: i32) -> std::net::SocketAddr {
    let request = kafka_protocol::messages::MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(Some(common::name(topic))),
    ]));
    let m = expect_kind!(client.call(ApiKey::Metadata, 12, &request), Metadata);
    let leader = m.topics[0].partitions[partition as usize].leader_id;
    let b = m.brokers.iter().find(|b| b.node_id == leader).expect("the leader is a listed broker");
    format!("{}:{}", b.host, b.port).parse().expect("address")
}

#[test]
fn partitions_spread_over_brokers_and_move_when_one_dies() {
    let pg = TestPostgres::start().expect("throwaway Postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = pg.url();
    let flags = |id: &'static str| ["--storage", url.as_str(), "--node-id", id, "--broker-lease-ms", "1500"].map(str::to_owned);
    let fa = flags("1");
    let fb = flags("2");
    let a = Broker::start(&dir.path().join("a"), &fa.iter().map(String::as_str).collect::<Vec<_>>());
    let b = Broker::start(&dir.path().join("b"), &fb.iter().map(String::as_str).collect::<Vec<_>>());
    let mut c = b.client();
    create_topic(&mut c, "spread", 8, &[]);

    let request = kafka_protocol::messages::MetadataRequest::default();
    // Broker a joined first: it sees b at its next lease renewal.
    let mut on_a = a.client();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for client in [&mut c, &mut on_a] {
        while expect_kind!(client.call(ApiKey::Metadata, 12, &request), Metadata).brokers.len() != 2 {
            assert!(std::time::Instant::now() < deadline, "the brokers never saw each other");
            thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let leaders: Vec<std::net::SocketAddr> = (0..8).map(|p| leader_address(&mut c, "spread", p)).collect();
    assert!(leaders.contains(&a.addr) && leaders.contains(&b.addr), "partitions are spread: {leaders:?}");

    // Produce to each partition through its leader; the other broker refuses.
    let mut acked = Vec::new();
    for (p, leader) in leaders.iter().enumerate() {
        let other = if *leader == a.addr { b.addr } else { a.addr };
        assert_eq!(produce_one(&mut Client::connect(other), "spread", p as i32, make_batch(1, 1, None)).0, 6, "NOT_LEADER_OR_FOLLOWER");
        let (code, offset) = produce_one(&mut Client::connect(*leader), "spread", p as i32, make_batch(2, 2, None));
        assert_eq!(code, 0);
        acked.push((p as i32, offset));
    }

    // Broker a dies; once its lease runs out, b leads everything.
    a.kill();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let m = expect_kind!(c.call(ApiKey::Metadata, 12, &request), Metadata);
        if m.brokers.len() == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "broker a never left the metadata");
        thread::sleep(std::time::Duration::from_millis(100));
    }
    for p in 0..8 {
        assert_eq!(leader_address(&mut c, "spread", p), b.addr);
        let (code, offset) = produce_one(&mut c, "spread", p, make_batch(1, 3, None));
        assert_eq!((code, offset), (0, 2), "partition {p}: offsets continue where the dead leader left them");
    }
    for (p, offset) in acked {
        let (code, hw, records) = fetch_now(&mut c, "spread", p, offset);
        assert_eq!((code, hw), (0, 3));
        assert!(!records.is_empty(), "partition {p}: the dead broker's acknowledged records are there");
    }
}

#[test]
fn postgres_restarted_under_load_loses_nothing_acknowledged() {
    let pg = TestPostgres::start().expect("throwaway Postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = pg.url();
    let broker = Broker::start(&dir.path().join("a"), &["--storage", url.as_str()]);
    let mut admin = broker.client();
    create_topic(&mut admin, "steady", 1, &[]);
    let addr = broker.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut client = Client::connect(addr);
            let (mut acked, mut retriable) = (Vec::new(), 0);
            let mut i = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match produce_one(&mut client, "steady", 0, make_batch(1, i, None)) {
                    (0, offset) => {
                        acked.push((offset, i));
                        i += 1;
                    }
                    // KAFKA_STORAGE_ERROR while Postgres is away: retriable, the client retries.
                    (56, _) => {
                        retriable += 1;
                        thread::sleep(std::time::Duration::from_millis(20));
                    }
                    (code, _) => panic!("unexpected produce error {code}"),
                }
            }
            (acked, retriable)
        })
    };
    thread::sleep(std::time::Duration::from_millis(500));
    pg.restart().expect("pg_ctl restart -m fast");
    // Keep producing until well after the restart, so appends must have reconnected.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let before = fetch_now(&mut broker.client(), "steady", 0, 0).1;
    loop {
        thread::sleep(std::time::Duration::from_millis(100));
        let mut c = broker.client();
        let (code, hw, _) = fetch_now(&mut c, "steady", 0, 0);
        if code == 0 && hw > before + 20 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the broker never recovered from the restart");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acked, _retriable) = producer.join().expect("producer");
    // Every acknowledged batch is there, at its offset, with its timestamp.
    let mut c = broker.client();
    let mut stored = std::collections::BTreeMap::new();
    let mut offset = 0;
    loop {
        let (code, hw, mut records) = fetch_now(&mut c, "steady", 0, offset);
        assert_eq!(code, 0);
        while let Some(batch) = ductstream_storage::Batch::split_first(&mut records) {
            let batch = batch.expect("valid");
            offset = batch.next_offset();
            stored.insert(batch.base_offset(), batch.base_timestamp());
        }
        if offset >= hw {
            break;
        }
    }
    for (offset, ts) in acked {
        assert_eq!(stored.get(&offset), Some(&ts), "acknowledged batch {offset} is stored");
    }
}
