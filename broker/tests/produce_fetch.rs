//! Produce and fetch against the real binary: stored bytes come back as sent, long polls wake
//! on appends, limits are respected, pipelined requests are answered in order.

#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use std::thread;

use bytes::Bytes;
use common::requests::{create_topic, fetch, fetch_now, produce, produce_one};
use common::{Broker, Client};
use ductstream_storage::testsuite::make_batch;
use ductstream_storage::Batch;
use kafka_protocol::messages::ApiKey;

fn broker() -> (tempfile::TempDir, Broker) {
    common::temp_broker(&[])
}

fn batches(mut records: Bytes) -> Vec<Batch> {
    let mut out = Vec::new();
    while let Some(batch) = Batch::split_first(&mut records) {
        out.push(batch.expect("fetched batches are valid"));
    }
    out
}

#[test]
fn fetched_batches_are_the_produced_bytes_with_offsets_assigned() {
    let (_dir, broker) = broker();
    let mut client = broker.client();
    create_topic(&mut client, "bytes", 2, &[]);
    let sent: Vec<Bytes> = (1..=3).map(|n| make_batch(n, 1_000 * n as i64, None)).collect();
    let mut bases = Vec::new();
    for batch in &sent {
        let (code, base) = produce_one(&mut client, "bytes", 1, batch.clone());
        assert_eq!(code, 0);
        bases.push(base);
    }
    assert_eq!(bases, vec![0, 1, 3]);
    let (code, hw, records) = fetch_now(&mut client, "bytes", 1, 0);
    assert_eq!((code, hw), (0, 6));
    let got = batches(records);
    assert_eq!(got.len(), 3);
    for ((batch, sent), base) in got.iter().zip(&sent).zip(&bases) {
        assert_eq!(batch.base_offset(), *base);
        assert_eq!(&batch.bytes()[8..], &sent[8..]);
    }
    let (_, _, from_middle) = fetch_now(&mut client, "bytes", 1, 4);
    assert_eq!(batches(from_middle)[0].base_offset(), 3, "the batch holding offset 4 comes whole");
    assert_eq!(fetch_now(&mut client, "bytes", 1, 6).2.len(), 0, "at the high watermark: nothing, no error");
    assert_eq!(fetch_now(&mut client, "bytes", 1, 7).0, 1, "OFFSET_OUT_OF_RANGE past the end");
    assert_eq!(fetch_now(&mut client, "bytes", 0, 0).1, 0, "the other partition is empty");
}

#[test]
fn a_long_poll_returns_when_another_client_produces() {
    let (_dir, broker) = broker();
    let mut consumer = broker.client();
    create_topic(&mut consumer, "wake", 1, &[]);
    let addr = broker.addr;
    // Waits up to 20 s for one byte: only an append can end it early.
    let (correlation, frame) = consumer.frame(ApiKey::Fetch, 12, &fetch("wake", 0, 0, 20_000, 1, 1 << 20));
    consumer.send_raw(&frame).expect("send fetch");
    let producer = thread::spawn(move || {
        let mut producer = Client::connect(addr);
        thread::sleep(std::time::Duration::from_millis(200));
        produce_one(&mut producer, "wake", 0, make_batch(2, 5, None))
    });
    let reply = consumer.read_frame().expect("fetch answered");
    let (got, response) = Client::decode(ApiKey::Fetch, 12, reply);
    assert_eq!(got, correlation);
    let response = expect_kind!(response, Fetch);
    let records = response.responses[0].partitions[0].records.clone().unwrap_or_default();
    assert_eq!(batches(records).len(), 1, "the fetch carries the new batch");
    assert_eq!(producer.join().expect("producer"), (0, 0));
}

#[test]
fn a_long_poll_with_no_data_returns_empty_after_max_wait() {
    let (_dir, broker) = broker();
    let mut client = broker.client();
    create_topic(&mut client, "quiet", 1, &[]);
    let response = expect_kind!(client.call(ApiKey::Fetch, 12, &fetch("quiet", 0, 0, 300, 1, 1 << 20)), Fetch);
    let p = &response.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 0));
    assert_eq!(p.records.as_ref().map(Bytes::len), Some(0));
    assert_eq!(response.session_id, 0, "fetch sessions are declined (KIP-227)");
}

#[test]
fn max_bytes_limits_the_response_but_the_first_batch_always_comes() {
    let (_dir, broker) = broker();
    let mut client = broker.client();
    create_topic(&mut client, "limits", 1, &[]);
    let one = make_batch(10, 0, None);
    for _ in 0..5 {
        assert_eq!(produce_one(&mut client, "limits", 0, one.clone()).0, 0);
    }
    let fetch_with = |client: &mut Client, max: i32| {
        let response = expect_kind!(client.call(ApiKey::Fetch, 12, &fetch("limits", 0, 0, 0, 0, max)), Fetch);
        batches(response.responses[0].partitions[0].records.clone().unwrap_or_default()).len()
    };
    assert_eq!(fetch_with(&mut client, (one.len() * 2 + 10) as i32), 2);
    assert_eq!(fetch_with(&mut client, 10), 1, "KIP-74: one batch even when larger than max_bytes");
    assert_eq!(fetch_with(&mut client, 1 << 20), 5);
}

#[test]
fn partitions_share_the_response_budget_in_request_order() {
    let (_dir, broker) = broker();
    let mut client = broker.client();
    create_topic(&mut client, "shared-budget", 3, &[]);
    let one = make_batch(10, 0, None);
    for partition in 0..3 {
        for _ in 0..2 {
            assert_eq!(produce_one(&mut client, "shared-budget", partition, one.clone()).0, 0);
        }
    }
    let size = one.len() as i32;
    let fetch_all = |client: &mut Client, max_bytes: i32| {
        let mut request = fetch("shared-budget", 0, 0, 0, 0, max_bytes);
        request.topics[0].partitions = (0..3)
            .map(|p| {
                kafka_protocol::messages::fetch_request::FetchPartition::default()
                    .with_partition(p)
                    .with_partition_max_bytes(2 * size + 10)
            })
            .collect();
        let response = expect_kind!(client.call(ApiKey::Fetch, 12, &request), Fetch);
        let partitions = &response.responses[0].partitions;
        assert!(partitions.iter().all(|p| p.error_code == 0 && p.high_watermark == 20));
        partitions.iter().map(|p| batches(p.records.clone().unwrap_or_default()).len()).collect::<Vec<_>>()
    };
    assert_eq!(fetch_all(&mut client, 1 << 20), vec![2, 2, 2], "each partition up to its own limit");
    assert_eq!(
        fetch_all(&mut client, 3 * size + 10),
        vec![2, 1, 0],
        "the first partitions in the request take the budget, as if read one after another"
    );
}

#[test]
fn fetch_sessions_that_do_not_exist_are_refused() {
    let (_dir, broker) = broker();
    let mut client = broker.client();
    create_topic(&mut client, "sessions", 1, &[]);
    let request = fetch("sessions", 0, 0, 0, 0, 1024).with_session_id(1234).with_session_epoch(1);
    let response = expect_kind!(client.call(ApiKey::Fetch, 12, &request), Fetch);
    assert_eq!(response.error_code, 70, "FETCH_SESSION_ID_NOT_FOUND");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (_dir, broker) = broker();
    let mut client = broker.client();
    create_topic(&mut client, "pipeline", 1, &[]);
    let mut expected = Vec::new();
    let mut burst = Vec::new();
    for i in 0..50 {
        let (correlation, frame) = if i % 2 == 0 {
            client.frame(ApiKey::Produce, 9, &produce("pipeline", 0, make_batch(1, i, None), -1))
        } else {
            client.frame(ApiKey::Metadata, 12, &kafka_protocol::messages::MetadataRequest::default())
        };
        expected.push((correlation, if i % 2 == 0 { ApiKey::Produce } else { ApiKey::Metadata }));
        burst.extend_from_slice(&frame);
    }
    client.send_raw(&burst).expect("send burst");
    let mut produced = Vec::new();
    for (correlation, key) in expected {
        let version = if key == ApiKey::Produce { 9 } else { 12 };
        let (got, response) = Client::decode(key, version, client.read_frame().expect("response"));
        assert_eq!(got, correlation, "responses in request order");
        if let kafka_protocol::messages::ResponseKind::Produce(r) = response {
            produced.push(r.responses[0].partition_responses[0].base_offset);
        }
    }
    assert_eq!(produced, (0..25).collect::<Vec<i64>>(), "appends in request order");
}

#[test]
fn acks_zero_gets_no_response_but_is_stored() {
    let (_dir, broker) = broker();
    let mut client = broker.client();
    create_topic(&mut client, "fire", 1, &[]);
    let (_, frame) = client.frame(ApiKey::Produce, 9, &produce("fire", 0, make_batch(3, 0, None), 0));
    client.send_raw(&frame).expect("send");
    // The next response on this connection is the fetch's own: no produce response came first.
    let (correlation, frame) = client.frame(ApiKey::Fetch, 12, &fetch("fire", 0, 0, 5_000, 1, 1 << 20));
    client.send_raw(&frame).expect("send");
    let (got, response) = Client::decode(ApiKey::Fetch, 12, client.read_frame().expect("fetch"));
    assert_eq!(got, correlation);
    let response = expect_kind!(response, Fetch);
    assert_eq!(response.responses[0].partitions[0].high_watermark, 3);
}

#[test]
fn every_fetch_and_produce_version_encodes() {
    let (_dir, broker) = broker();
    let mut client = broker.client();
    create_topic(&mut client, "versions", 1, &[]);
    for version in 3..=9 {
        let response = expect_kind!(client.call(ApiKey::Produce, version, &produce("versions", 0, make_batch(1, 0, None), -1)), Produce);
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0, "produce v{version}");
    }
    for version in 4..=12 {
        let response = expect_kind!(client.call(ApiKey::Fetch, version, &fetch("versions", 0, 0, 0, 0, 1 << 20)), Fetch);
        assert_eq!(response.responses[0].partitions[0].high_watermark, 7, "fetch v{version}");
    }
}

#[test]
fn deleting_a_topic_under_a_parked_fetch_answers_it_with_an_error() {
    let (_dir, broker) = broker();
    let mut consumer = broker.client();
    create_topic(&mut consumer, "doomed", 1, &[]);
    assert_eq!(produce_one(&mut consumer, "doomed", 0, make_batch(1, 0, None)).0, 0);
    let (correlation, frame) = consumer.frame(ApiKey::Fetch, 12, &fetch("doomed", 0, 1, 3_000, 1, 1 << 20));
    consumer.send_raw(&frame).expect("send fetch");
    thread::sleep(std::time::Duration::from_millis(200)); // let the fetch park
    let mut admin = broker.client();
    let delete = kafka_protocol::messages::DeleteTopicsRequest::default().with_topic_names(vec![common::name("doomed")]);
    let r = expect_kind!(admin.call(ApiKey::DeleteTopics, 5, &delete), DeleteTopics);
    assert_eq!(r.responses[0].error_code, 0);
    // The deletion wakes the parked fetch, which must answer with a partition error rather
    // than drop the connection.
    let reply = consumer.read_frame().expect("the fetch is answered");
    let (got, response) = Client::decode(ApiKey::Fetch, 12, reply);
    assert_eq!(got, correlation);
    let response = expect_kind!(response, Fetch);
    assert_eq!(response.responses[0].partitions[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let metadata = kafka_protocol::messages::MetadataRequest::default();
    expect_kind!(consumer.call(ApiKey::Metadata, 12, &metadata), Metadata);
}

#[test]
fn log_append_time_topics_are_stamped_by_the_broker() {
    let (_dir, broker) = broker();
    let mut client = broker.client();
    create_topic(&mut client, "stamped", 1, &[("message.timestamp.type", "LogAppendTime")]);
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let response = expect_kind!(client.call(ApiKey::Produce, 9, &produce("stamped", 0, make_batch(2, 1_000, None), -1)), Produce);
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0);
    assert!(p.log_append_time_ms >= before, "the produce response carries the append time");
    let (_, _, records) = fetch_now(&mut client, "stamped", 0, 0);
    let batch = &batches(records)[0];
    assert!(batch.is_log_append_time());
    assert_eq!(batch.max_timestamp(), p.log_append_time_ms);
}
