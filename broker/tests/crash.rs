//! kill -9 in the middle of an acks=all stream: every acknowledged batch survives, in order,
//! and offsets continue after the restart.

#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::requests::{create_topic, fetch_now, produce_one};
use common::{Broker, Client};
use ductstream_storage::testsuite::make_batch;
use ductstream_storage::Batch;

#[test]
fn acknowledged_batches_survive_kill_dash_nine() {
    acknowledged_batches_survive_kill_dash_nine_with(&["--storage", "embedded"]);
}

#[test]
fn acknowledged_batches_survive_kill_dash_nine_with_fsync() {
    acknowledged_batches_survive_kill_dash_nine_with(&["--storage", "embedded", "--fsync"]);
}

/// Kill -9 twenty times under two acks=all producers, on a topic whose tiny segments roll
/// (and get index files and producer snapshots) all the time: after each restart, every
/// batch acknowledged in any round is there, unchanged, and offsets continue.
#[test]
fn twenty_kill_dash_nine_rounds_lose_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut acked: Vec<(i32, i64, Bytes)> = Vec::new();
    for round in 0..20 {
        let broker = Broker::start(&data, &["--storage", "embedded"]);
        if round == 0 {
            create_topic(&mut broker.client(), "crash", 2, &[("segment.bytes", "4096")]);
        } else {
            check_every_acknowledged_batch_is_there(&broker, &acked, false);
        }
        acked.extend(produce_until_killed(broker, 40));
    }
    let broker = Broker::start(&data, &["--storage", "embedded"]);
    check_every_acknowledged_batch_is_there(&broker, &acked, true);
}

fn acknowledged_batches_survive_kill_dash_nine_with(engine: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let broker = Broker::start(&data, engine);
    create_topic(&mut broker.client(), "crash", 2, &[]);
    let acked = produce_until_killed(broker, 300);
    assert!(acked.len() >= 300, "only {} batches acknowledged before the deadline", acked.len());
    let broker = Broker::start(&data, engine);
    check_every_acknowledged_batch_is_there(&broker, &acked, true);
}

/// Two producers, each on its own connection and partition of `crash`, until `want` batches
/// are acknowledged; then SIGKILL mid-stream. Returns the batches acknowledged.
fn produce_until_killed(broker: Broker, want: usize) -> Vec<(i32, i64, Bytes)> {
    let acked: Arc<Mutex<Vec<(i32, i64, Bytes)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..2)
        .map(|partition| {
            let (addr, acked, stop) = (broker.addr, acked.clone(), stop.clone());
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let batch = make_batch(1 + i % 5, 1_000_000 + i as i64, None);
                    let (correlation, frame) = client.frame(
                        kafka_protocol::messages::ApiKey::Produce,
                        9,
                        &common::requests::produce("crash", partition, batch.clone(), -1),
                    );
                    if client.send_raw(&frame).is_err() {
                        return;
                    }
                    let Some(reply) = client.read_frame() else { return };
                    let (got, response) = Client::decode(kafka_protocol::messages::ApiKey::Produce, 9, reply);
                    assert_eq!(got, correlation);
                    let response = expect_kind!(response, Produce);
                    let p = &response.responses[0].partition_responses[0];
                    assert_eq!(p.error_code, 0);
                    acked.lock().expect("lock").push((partition, p.base_offset, batch));
                }
            })
        })
        .collect();
    acked_count_reaches(&acked, want);
    broker.kill(); // SIGKILL while both producers are mid-stream
    stop.store(true, Ordering::Relaxed);
    for p in producers {
        p.join().expect("producer thread");
    }
    acked.lock().expect("lock").clone()
}

fn acked_count_reaches(acked: &Mutex<Vec<(i32, i64, Bytes)>>, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().expect("lock").len() < want && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads both partitions whole: no gaps, every acknowledged batch unchanged; with `append`, a
/// new batch then lands right after the last one.
fn check_every_acknowledged_batch_is_there(broker: &Broker, acked: &[(i32, i64, Bytes)], append: bool) {
    let mut client = broker.client();
    for partition in 0..2 {
        let mut stored = Vec::new();
        let mut offset = 0;
        loop {
            let (code, hw, mut records) = fetch_now(&mut client, "crash", partition, offset);
            assert_eq!(code, 0);
            while let Some(batch) = Batch::split_first(&mut records) {
                let batch = batch.expect("valid stored batch");
                offset = batch.next_offset();
                stored.push(batch);
            }
            if offset >= hw {
                break;
            }
        }
        let mut expected_offset = 0;
        for batch in &stored {
            assert_eq!(batch.base_offset(), expected_offset, "no gaps, no overlaps");
            expected_offset = batch.next_offset();
        }
        for (_, base, sent) in acked.iter().filter(|(p, ..)| *p == partition) {
            let batch = stored.iter().find(|b| b.base_offset() == *base).unwrap_or_else(|| panic!("acked batch at {base} lost"));
            assert_eq!(&batch.bytes()[8..], &sent[8..], "acked batch at {base} changed");
        }
        if append {
            let (code, next) = produce_one(&mut client, "crash", partition, make_batch(1, 0, None));
            assert_eq!((code, next), (0, expected_offset), "offsets continue after the restart");
        }
    }
}
