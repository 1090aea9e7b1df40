//! In-flight request memory is bounded (`--queued-max-request-bytes`): while one client's
//! large request holds most of the pool, another's waits before its bytes are read, and
//! both are answered once the first is done; nothing is refused and nothing is lost.

#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use ductstream_broker::batch_builder::{NewRecord, build};
use kafka_protocol::messages::ApiKey;

use common::requests::{create_topic, fetch_now, produce};
use common::{Broker, Client};

fn batch_of(value_bytes: usize) -> Bytes {
    let record = NewRecord { key: None, value: Some(Bytes::from(vec![7u8; value_bytes])), headers: vec![], timestamp: 1_700_000_000_000 };
    build(&[record]).expect("a batch").into_bytes()
}

/// Waits until the metric reaches `at_least`.
fn wait_for(broker: &Broker, name: &str, at_least: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = broker.metric(name);
        if value >= at_least {
            return value;
        }
        assert!(Instant::now() < deadline, "{name} stayed at {value}, below {at_least}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn produced_at(client: &mut Client) -> (i16, i64) {
    let frame = client.read_frame().expect("a produce response");
    let (_, response) = Client::decode(ApiKey::Produce, 9, frame);
    let response = expect_kind!(response, Produce);
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

#[test]
fn a_spent_pool_delays_the_next_request_until_memory_comes_back() {
    let (_dir, broker) = common::temp_broker(&[
        "--queued-max-request-bytes",
        "1000000",
        "--message-max-bytes",
        "2000000",
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    let mut admin = broker.client();
    create_topic(&mut admin, "big", 1, &[("max.message.bytes", "2000000")]);
    assert_eq!(broker.metric("ductstream_request_memory_limit_bytes"), 1_000_000.0);

    // The first client announces an 800 KB request and sends all but its last bytes: the
    // broker has reserved the whole frame before reading it.
    let mut first = broker.client();
    let (_, large) = first.frame(ApiKey::Produce, 9, &produce("big", 0, batch_of(800_000), -1));
    let cut = large.len() - 16;
    first.send_raw(&large[..cut]).expect("send most of it");
    wait_for(&broker, "ductstream_request_memory_used_bytes", 800_000.0);

    // The second's 300 KB do not fit beside it: its connection waits for memory.
    let mut second = broker.client();
    let (_, medium) = second.frame(ApiKey::Produce, 9, &produce("big", 0, batch_of(300_000), -1));
    second.send_raw(&medium).expect("send");
    wait_for(&broker, "ductstream_request_memory_waits_total", 1.0);

    // The first request completes and is answered; its memory goes back, and the second runs.
    first.send_raw(&large[cut..]).expect("send the rest");
    assert_eq!(produced_at(&mut first), (0, 0));
    assert_eq!(produced_at(&mut second), (0, 1));

    let deadline = Instant::now() + Duration::from_secs(30);
    while broker.metric("ductstream_request_memory_used_bytes") > 0.0 {
        assert!(Instant::now() < deadline, "request memory was not given back");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (error, high_watermark, _) = fetch_now(&mut admin, "big", 0, 0);
    assert_eq!((error, high_watermark), (0, 2), "both records stored");
}

#[test]
fn a_request_larger_than_the_pool_still_runs_alone() {
    let (_dir, broker) = common::temp_broker(&[
        "--queued-max-request-bytes",
        "100000",
        "--message-max-bytes",
        "2000000",
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    let mut client = broker.client();
    create_topic(&mut client, "big", 1, &[("max.message.bytes", "2000000")]);
    let (_, frame) = client.frame(ApiKey::Produce, 9, &produce("big", 0, batch_of(500_000), -1));
    client.send_raw(&frame).expect("send");
    assert_eq!(produced_at(&mut client), (0, 0));
}
