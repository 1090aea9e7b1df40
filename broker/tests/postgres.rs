#![allow(clippy::expect_used)] // tests: a failed expectation is the report

//! The broker on Postgres storage: a throwaway cluster started with the system's
//! `initdb`/`pg_ctl`, the real broker binary on it.

mod common;

use std::thread;

use common::requests::{create_topic, fetch, fetch_now, produce_one};
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
    {
        let broker = Broker::start(&dir.path().join("a"), &flags);
        let mut c = broker.client();
        create_topic(&mut c, "pg", 2, &[]);
        assert_eq!(produce_one(&mut c, "pg", 1, make_batch(3, 10, None)), (0, 0));
        assert_eq!(produce_one(&mut c, "pg", 1, make_batch(2, 20, None)), (0, 3));
        broker.kill();
    }
    let broker = Broker::start(&dir.path().join("b"), &flags);
    let mut c = broker.client();
    let (code, hw, records) = fetch_now(&mut c, "pg", 1, 0);
    assert_eq!((code, hw), (0, 5), "acknowledged batches survive a kill -9 of the broker");
    assert!(!records.is_empty());
    assert_eq!(produce_one(&mut c, "pg", 1, make_batch(1, 30, None)), (0, 5), "offsets continue");
}

#[test]
fn a_fetch_on_one_broker_wakes_when_another_broker_appends() {
    let pg = TestPostgres::start().expect("throwaway Postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = pg.url();
    let flags = ["--storage", url.as_str()];
    let a = Broker::start(&dir.path().join("a"), &flags);
    let b = Broker::start(&dir.path().join("b"), &flags);
    let mut consumer = b.client();
    create_topic(&mut consumer, "shared", 1, &[]);
    // Open the partition on broker b, then park a long fetch there.
    assert_eq!(fetch_now(&mut consumer, "shared", 0, 0).1, 0);
    let (correlation, frame) = consumer.frame(ApiKey::Fetch, 12, &fetch("shared", 0, 0, 20_000, 1, 1 << 20));
    consumer.send_raw(&frame).expect("send fetch");
    let addr = a.addr;
    let producer = thread::spawn(move || {
        thread::sleep(std::time::Duration::from_millis(200));
        produce_one(&mut Client::connect(addr), "shared", 0, make_batch(4, 5, None))
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
