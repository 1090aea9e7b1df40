#![allow(clippy::expect_used)] // tests: a failed expectation is the report

//! Retention against the real binary: records whose batch's largest timestamp is older
//! than the topic's `retention.ms` are deleted from the front of the log (`-1` keeps them),
//! and whole segments beyond `retention.bytes`.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::requests::{bounds, create_topic, fetch_now, produce_one};
use common::{temp_broker, Client};
use ductstream_storage::testsuite::make_batch;

const OFFSET_OUT_OF_RANGE: i16 = 1;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).expect("clock")
}

fn log_start(client: &mut Client, topic: &str, high_watermark: i64) -> i64 {
    bounds(client, topic, 0, high_watermark).2
}

#[test]
fn records_past_retention_are_deleted_and_others_kept() {
    let (_dir, broker) = temp_broker(&["--log-retention-check-interval-ms", "100"]);
    let mut client = broker.client();
    create_topic(&mut client, "aging", 1, &[("retention.ms", "60000")]);
    create_topic(&mut client, "forever", 1, &[("retention.ms", "-1")]);
    let hour_ago = now_ms() - 3_600_000;
    for topic in ["aging", "forever"] {
        assert_eq!(produce_one(&mut client, topic, 0, make_batch(3, hour_ago, None)), (0, 0));
        assert_eq!(produce_one(&mut client, topic, 0, make_batch(2, hour_ago, None)), (0, 3));
        assert_eq!(produce_one(&mut client, topic, 0, make_batch(1, now_ms(), None)), (0, 5));
    }

    let deadline = Instant::now() + Duration::from_secs(20);
    while log_start(&mut client, "aging", 6) != 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(log_start(&mut client, "aging", 6), 5, "the hour-old batches went, the new one stayed");
    assert_eq!(fetch_now(&mut client, "aging", 0, 0).0, OFFSET_OUT_OF_RANGE);
    let (code, high_watermark, records) = fetch_now(&mut client, "aging", 0, 5);
    assert_eq!((code, high_watermark), (0, 6));
    assert!(!records.is_empty(), "the batch within retention is still there");

    assert_eq!(log_start(&mut client, "forever", 6), 0, "retention.ms=-1 keeps everything");
    assert_eq!(fetch_now(&mut client, "forever", 0, 0).0, 0);
}

#[test]
fn the_broker_default_applies_to_topics_without_their_own() {
    let (_dir, broker) = temp_broker(&["--log-retention-check-interval-ms", "100", "--log-retention-ms", "60000"]);
    let mut client = broker.client();
    create_topic(&mut client, "defaulted", 1, &[]);
    assert_eq!(produce_one(&mut client, "defaulted", 0, make_batch(2, now_ms() - 3_600_000, None)), (0, 0));
    let deadline = Instant::now() + Duration::from_secs(20);
    while log_start(&mut client, "defaulted", 2) != 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(log_start(&mut client, "defaulted", 2), 2, "everything was older than --log-retention-ms");
}

#[test]
fn retention_bytes_deletes_the_oldest_whole_segments() {
    retention_bytes_keeps_at_most_300_bytes(&[]);
}

/// On Postgres the unit is the batch: whole batches go from the front until at most
/// `retention.bytes` stay, never the last one.
#[test]
fn retention_bytes_on_postgres_deletes_the_oldest_batches() {
    let pg = ductstream_storage::postgres::testing::TestPostgres::start().expect("test postgres");
    retention_bytes_keeps_at_most_300_bytes(&["--storage", &pg.url()]);
}

/// Ten 116-byte batches with retention.bytes 300: the log starts at offset 40 (the last two
/// batches, 232 bytes) on either store.
fn retention_bytes_keeps_at_most_300_bytes(store: &[&str]) {
    let mut flags = vec!["--log-retention-check-interval-ms", "100"];
    flags.extend_from_slice(store);
    let (_dir, broker) = temp_broker(&flags);
    let mut client = broker.client();
    // Embedded: two batches to a 250-byte segment, five segments, the last one active.
    create_topic(&mut client, "sized", 1, &[("segment.bytes", "250"), ("retention.bytes", "300")]);
    for i in 0..10 {
        assert_eq!(produce_one(&mut client, "sized", 0, make_batch(5, now_ms(), None)), (0, i * 5));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while log_start(&mut client, "sized", 50) != 40 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(log_start(&mut client, "sized", 50), 40, "whole segments (or batches) go until at most 300 bytes stay");
    let (code, high_watermark, records) = fetch_now(&mut client, "sized", 0, 40);
    assert_eq!((code, high_watermark), (0, 50));
    assert!(!records.is_empty());
}
