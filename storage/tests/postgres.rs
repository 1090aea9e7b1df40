#![cfg(feature = "postgres")]
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

//! The Postgres engine on a throwaway cluster (`initdb`/`pg_ctl` must be on PATH): the
//! conformance suite, reopening, concurrent writers, LISTEN/NOTIFY and a server restart.
//! Run with `cargo test -p ductstream-storage --features postgres`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ductstream_storage::postgres::testing::TestPostgres;
use ductstream_storage::postgres::PartitionNotice;
use ductstream_storage::{
    testsuite, Batch, PostgresStorage, ProducerBatch, ProducerState, Storage, StorageError, TopicSpec,
};

fn cluster() -> TestPostgres {
    TestPostgres::start().unwrap_or_else(|e| panic!("cannot start a test postgres: {e}"))
}

async fn connect(pg: &TestPostgres) -> PostgresStorage {
    PostgresStorage::connect(&pg.url()).await.unwrap_or_else(|e| panic!("connect: {e}\n{}", pg.log()))
}

fn batch(count: i32, ts: i64) -> Batch {
    Batch::parse(testsuite::make_batch(count, ts, None)).expect("valid")
}

fn spec(name: &str, partitions: i32) -> TopicSpec {
    TopicSpec { name: name.into(), partitions, configs: Default::default() }
}

#[tokio::test]
async fn postgres_engine_passes_the_suite() {
    let pg = cluster();
    let storage = connect(&pg).await;
    assert_eq!(storage.engine(), "postgres");
    testsuite::run_all(&storage).await;
}

#[tokio::test]
async fn postgres_keeps_everything_across_reconnect() {
    let pg = cluster();
    let first_id;
    let mut state = ProducerState { producer_id: 5, epoch: 1, batches: Vec::new() };
    {
        let s = connect(&pg).await;
        s.create_topic(spec("kept", 2)).await.expect("create");
        for (i, ts) in [10, 5, 20].into_iter().enumerate() {
            let sequence = i as i32 * 3;
            state.remember(ProducerBatch { first_sequence: sequence, last_sequence: sequence + 2, base_offset: sequence as i64 });
            let b = Batch::parse(testsuite::make_batch(3, ts, Some((5, 1, sequence)))).expect("valid");
            s.append("kept", 1, b, Some(state.clone())).await.expect("append");
        }
        s.delete_records("kept", 1, 4).await.expect("trim");
        first_id = s.next_producer_id().await.expect("id");
        s.save_group(testsuite::sample_group("kept-group", 7, 2)).await.expect("save group");
        s.commit_offsets("kept-group", vec![testsuite::sample_offset("kept", 1, 4)]).await.expect("commit");
        s.sync().await.expect("sync");
    }
    // A second connect applies no migration twice and sees everything.
    let s = connect(&pg).await;
    assert_eq!(s.load_groups().await.expect("groups"), vec![testsuite::sample_group("kept-group", 7, 2)]);
    assert_eq!(s.committed_offsets("kept-group").await.expect("offsets"), vec![testsuite::sample_offset("kept", 1, 4)]);
    assert_eq!(s.topic("kept").await.expect("topic").expect("still there").partitions, 2);
    let offsets = s.offsets("kept", 1).await.expect("offsets");
    assert_eq!((offsets.log_start, offsets.high_watermark), (4, 9));
    let read = s.read("kept", 1, 4, 1 << 20).await.expect("read");
    assert_eq!(read.iter().map(Batch::base_offset).collect::<Vec<_>>(), vec![3, 6]);
    assert_eq!(s.producers("kept", 1).await.expect("producers"), vec![state]);
    assert_eq!(s.batch_at_time("kept", 1, 8).await.expect("time").map(|b| b.base_offset()), Some(6));
    let next = s.append("kept", 1, batch(1, 1), None).await.expect("append");
    assert_eq!(next.base_offset, 9, "offsets continue after a reconnect");
    let max = s.batch_with_max_timestamp("kept", 1).await.expect("max").map(|b| b.base_offset());
    assert_eq!(max, Some(6));
    assert!(s.next_producer_id().await.expect("id") > first_id, "producer ids never repeat");
}

#[tokio::test]
async fn time_lookups_after_deleting_the_batch_with_the_max_timestamp() {
    let pg = cluster();
    let s = connect(&pg).await;
    s.create_topic(spec("late", 1)).await.expect("create");
    // offsets 0-1 at ts 50, 2-3 at ts 10, 4-5 at ts 30
    for ts in [50, 10, 30] {
        s.append("late", 0, batch(2, ts), None).await.expect("append");
    }
    assert_eq!(s.batch_with_max_timestamp("late", 0).await.expect("max").map(|b| b.base_offset()), Some(0));
    assert_eq!(s.batch_at_time("late", 0, 20).await.expect("t").map(|b| b.base_offset()), Some(0));
    s.delete_records("late", 0, 2).await.expect("trim");
    assert_eq!(s.batch_with_max_timestamp("late", 0).await.expect("max").map(|b| b.base_offset()), Some(4));
    assert_eq!(s.batch_at_time("late", 0, 0).await.expect("t").map(|b| b.base_offset()), Some(2));
    assert_eq!(s.batch_at_time("late", 0, 20).await.expect("t").map(|b| b.base_offset()), Some(4));
    assert_eq!(s.batch_at_time("late", 0, 40).await.expect("t").map(|b| b.base_offset()), None);
}

#[tokio::test]
async fn two_engines_appending_to_one_partition_get_contiguous_offsets() {
    let pg = cluster();
    let a = connect(&pg).await;
    let b = connect(&pg).await;
    a.create_topic(spec("shared", 1)).await.expect("create");
    const APPENDS: usize = 200;
    let writer = |s: PostgresStorage, count: i32| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..APPENDS {
                let outcome = s.append("shared", 0, batch(count, i as i64), None).await.expect("append");
                got.push((outcome.base_offset, count));
            }
            got
        })
    };
    let (from_a, from_b) = tokio::join!(writer(a.clone(), 2), writer(b.clone(), 3));
    let mut all: Vec<(i64, i32)> = from_a.expect("task a").into_iter().chain(from_b.expect("task b")).collect();
    all.sort_unstable();
    let mut expected = 0;
    for (base, count) in &all {
        assert_eq!(*base, expected, "offsets are contiguous, without duplicates");
        expected += i64::from(*count);
    }
    assert_eq!(expected, (APPENDS * 5) as i64);
    assert_eq!(b.offsets("shared", 0).await.expect("offsets").high_watermark, expected);
    // What is stored agrees with what the writers were told.
    let mut stored = Vec::new();
    let mut from = 0;
    while from < expected {
        let read = a.read("shared", 0, from, 64 << 10).await.expect("read");
        for batch in &read {
            stored.push((batch.base_offset(), batch.record_count()));
            from = batch.next_offset();
        }
    }
    assert_eq!(stored, all);
}

#[tokio::test]
async fn appends_notify_listeners_on_other_engines() {
    let pg = cluster();
    let listener = connect(&pg).await;
    let writer = connect(&pg).await;
    let topic = writer.create_topic(spec("woken", 2)).await.expect("create");
    let mut wakeups = listener.subscribe_appends().await.expect("subscribe");
    writer.append("woken", 1, batch(3, 0), None).await.expect("append");
    writer.append("woken", 0, batch(2, 0), None).await.expect("append");
    let mut got = Vec::new();
    while got.len() < 2 {
        let wake = tokio::time::timeout(Duration::from_secs(10), wakeups.recv())
            .await
            .expect("a notification within 10 s")
            .expect("channel open");
        got.push(wake);
    }
    let bounds = |n: &PartitionNotice| (n.topic_id, n.partition, n.offsets.high_watermark, n.offsets.log_start);
    assert_eq!(got.iter().map(bounds).collect::<Vec<_>>(), vec![(topic.id, 1, 3, 0), (topic.id, 0, 2, 0)]);
    // A failed append (unknown partition) notifies nobody.
    assert!(matches!(
        writer.append("woken", 7, batch(1, 0), None).await,
        Err(StorageError::UnknownPartition { .. })
    ));
    writer.append("woken", 1, batch(1, 0), None).await.expect("append");
    let wake = tokio::time::timeout(Duration::from_secs(10), wakeups.recv()).await.expect("in time");
    assert_eq!(wake.as_ref().map(bounds), Some((topic.id, 1, 4, 0)));
    // DeleteRecords tells the other brokers the new log start.
    writer.delete_records("woken", 1, 2).await.expect("delete records");
    let wake = tokio::time::timeout(Duration::from_secs(10), wakeups.recv()).await.expect("in time");
    assert_eq!(wake.as_ref().map(bounds), Some((topic.id, 1, 4, 2)));
}

#[tokio::test]
async fn appends_resume_after_a_postgres_restart() {
    let pg = cluster();
    let s = connect(&pg).await;
    s.create_topic(spec("restarted", 1)).await.expect("create");
    let mut wakeups = s.subscribe_appends().await.expect("subscribe");
    s.append("restarted", 0, batch(2, 0), None).await.expect("append before the restart");
    pg.restart().expect("pg_ctl restart");

    let mut errors = Vec::new();
    let outcome = loop {
        match s.append("restarted", 0, batch(2, 0), None).await {
            Ok(outcome) => break outcome,
            Err(StorageError::Engine(message)) if errors.len() < 5 => {
                errors.push(message);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("append after restart: {e} (earlier: {errors:?})"),
        }
    };
    eprintln!("append after restart succeeded after {} retriable error(s): {errors:?}", errors.len());
    assert_eq!(outcome.base_offset, 2, "after {} retriable errors: {errors:?}", errors.len());
    assert!(errors.len() <= 1, "at most the one call on the dead connection fails: {errors:?}");
    assert_eq!(s.offsets("restarted", 0).await.expect("offsets").high_watermark, 4);

    // The listener's connection died with the server: its channel ends, so the broker knows
    // to wake everyone and subscribe again.
    let mut ended = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(None) = tokio::time::timeout(Duration::from_secs(1), wakeups.recv()).await {
            ended = true;
            break;
        }
    }
    assert!(ended, "the wake-up channel closes when its connection is lost");
    let mut wakeups = s.subscribe_appends().await.expect("subscribe again");
    s.append("restarted", 0, batch(1, 0), None).await.expect("append");
    let wake = tokio::time::timeout(Duration::from_secs(10), wakeups.recv()).await.expect("in time");
    assert_eq!(wake.map(|n| (n.partition, n.offsets.high_watermark)), Some((0, 5)));
}

#[tokio::test]
async fn while_postgres_is_away_calls_fail_fast_and_it_is_found_again() {
    let pg = cluster();
    let s = connect(&pg).await;
    s.create_topic(spec("away", 1)).await.expect("create");
    s.append("away", 0, batch(2, 0), None).await.expect("append before the stop");
    pg.stop().expect("pg_ctl stop");

    // Every call fails with a retriable engine error; after the first failed connect, the
    // calls in the pause are answered without trying again.
    let mut paused = 0;
    for _ in 0..20 {
        match s.append("away", 0, batch(1, 0), None).await {
            Err(StorageError::Engine(message)) => paused += usize::from(message.contains("next attempt in")),
            other => panic!("an append while postgres is stopped: {other:?}"),
        }
    }
    assert!(paused > 0, "calls during the pause after a failed connect are answered at once");

    pg.start_again().expect("pg_ctl start");
    let deadline = Instant::now() + Duration::from_secs(10);
    let outcome = loop {
        match s.append("away", 0, batch(1, 0), None).await {
            Ok(outcome) => break outcome,
            Err(e) if Instant::now() < deadline => {
                assert!(matches!(e, StorageError::Engine(_)), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("postgres is back but appends still fail: {e}"),
        }
    };
    assert_eq!(outcome.base_offset, 2, "nothing was stored while it was away");
}

#[tokio::test]
async fn tls_connections_follow_sslmode() {
    let pg = TestPostgres::start_with_tls().unwrap_or_else(|e| panic!("cannot start a TLS test postgres: {e}"));
    let url = pg.url();
    let root = pg.tls_root_cert().expect("a root certificate").display().to_string();
    let error = |result: Result<PostgresStorage, StorageError>| match result {
        Ok(_) => panic!("connected"),
        Err(e) => e.to_string(),
    };

    // The server takes TCP connections over TLS only.
    let plain = error(PostgresStorage::connect(&format!("{url}?sslmode=disable")).await);
    assert!(plain.contains("no encryption"), "{plain}");

    // require: encrypted, the certificate unchecked; appends and notifications work over it.
    let s = PostgresStorage::connect(&format!("{url}?sslmode=require")).await.expect("sslmode=require");
    s.create_topic(spec("sealed", 1)).await.expect("create");
    let mut wakeups = s.subscribe_appends().await.expect("subscribe over TLS");
    s.append("sealed", 0, batch(3, 0), None).await.expect("append over TLS");
    let wake = tokio::time::timeout(Duration::from_secs(10), wakeups.recv()).await.expect("in time");
    assert_eq!(wake.map(|n| n.offsets.high_watermark), Some(3));

    // prefer, the default, takes TLS when offered.
    let s = PostgresStorage::connect(&url).await.expect("no sslmode");
    assert_eq!(s.offsets("sealed", 0).await.expect("offsets").high_watermark, 3);

    // verify-ca and verify-full check the chain against sslrootcert (and the name, 127.0.0.1).
    for mode in ["verify-ca", "verify-full"] {
        let s = PostgresStorage::connect(&format!("{url}?sslmode={mode}&sslrootcert={root}")).await;
        assert!(s.is_ok(), "{mode}: {}", s.err().map(|e| e.to_string()).unwrap_or_default());
    }
    // Without it, the throwaway CA is not among the system's roots.
    let unknown = error(PostgresStorage::connect(&format!("{url}?sslmode=verify-full")).await);
    assert!(unknown.contains("certificate") || unknown.contains("root"), "{unknown}");
    let missing = error(PostgresStorage::connect(&format!("{url}?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt")).await);
    assert!(missing.contains("sslrootcert /nonexistent/ca.crt"), "{missing}");
    let bad_mode = error(PostgresStorage::connect(&format!("{url}?sslmode=sometimes")).await);
    assert!(bad_mode.contains("sslmode"), "{bad_mode}");
}

#[tokio::test]
async fn concurrent_connects_migrate_once() {
    let pg = cluster();
    let url = pg.url();
    let connects: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStorage::connect(&url).await.map(|_| ()) })
        })
        .collect();
    for connect in connects {
        connect.await.expect("task").expect("connect while others migrate");
    }
    let s = connect(&pg).await;
    s.create_topic(spec("after", 1)).await.expect("schema is usable");
    let ids: BTreeSet<i64> = [s.next_producer_id().await.expect("id"), s.next_producer_id().await.expect("id")].into();
    assert_eq!(ids.len(), 2);
}

#[tokio::test]
async fn connect_to_a_dead_server_is_an_engine_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let url = format!("postgres://postgres@127.0.0.1:{port}/ductstream?connect_timeout=2");
    match PostgresStorage::connect(&url).await {
        Err(StorageError::Engine(message)) => assert!(message.contains("cannot connect"), "{message}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("connected to nothing"),
    }
}

/// A v2 batch of `count` records with `value_len`-byte values (varied bytes), for measurements.
fn sized_batch(count: i32, value_len: usize, base_timestamp: i64) -> Batch {
    use bytes::{BufMut, BytesMut};
    fn varlong(buf: &mut BytesMut, value: i64) {
        let mut v = ((value << 1) ^ (value >> 63)) as u64;
        while v >= 0x80 {
            buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        buf.put_u8(v as u8);
    }
    let mut records = BytesMut::new();
    for i in 0..count {
        let value: Vec<u8> = (0..value_len).map(|j| (j as u32).wrapping_mul(2_654_435_761).wrapping_add(i as u32) as u8).collect();
        let mut body = BytesMut::new();
        body.put_i8(0);
        varlong(&mut body, i64::from(i));
        varlong(&mut body, i64::from(i));
        varlong(&mut body, -1); // no key
        varlong(&mut body, value.len() as i64);
        body.put_slice(&value);
        varlong(&mut body, 0);
        varlong(&mut records, body.len() as i64);
        records.put_slice(&body);
    }
    let mut tail = BytesMut::new();
    tail.put_i16(0);
    tail.put_i32(count - 1);
    tail.put_i64(base_timestamp);
    tail.put_i64(base_timestamp + i64::from(count) - 1);
    tail.put_i64(-1);
    tail.put_i16(-1);
    tail.put_i32(-1);
    tail.put_i32(count);
    tail.put_slice(&records);
    let mut out = BytesMut::new();
    out.put_i64(0);
    out.put_i32((4 + 1 + 4 + tail.len()) as i32);
    out.put_i32(-1);
    out.put_i8(2);
    out.put_u32(crc32c::crc32c(&tail));
    out.put_slice(&tail);
    Batch::parse(out.freeze()).expect("valid")
}

/// The `read` statement from queries.sql, for EXPLAIN.
fn read_sql() -> String {
    let text = include_str!("../src/postgres/queries.sql");
    let start = text.find("-- name: read\n").expect("read query");
    let body = &text[start + "-- name: read\n".len()..];
    let end = body.find("\n-- name:").unwrap_or(body.len());
    body[..end].lines().filter(|l| !l.starts_with("--")).collect::<Vec<_>>().join("\n")
}

/// Append throughput (one connection, 100 × 1 KiB records per batch, ~10 s) and the time of a
/// fetch from the middle of a deep partition: 1,000,000 records by default,
/// `DUCTSTREAM_PG_DEEP_RECORDS=10000000` for ten million (filled with batches of 1,000 records
/// of 100 B, so the size on disk stays near 1 GB). `DUCTSTREAM_PG_FSYNC=1` runs the server with
/// fsync on.
/// `cargo test -p ductstream-storage --features postgres --release --test postgres -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand"]
async fn measure_append_throughput_and_deep_fetch() {
    let fsync = std::env::var("DUCTSTREAM_PG_FSYNC").is_ok_and(|v| v == "1");
    let pg = TestPostgres::start_with_fsync(fsync).expect("start postgres");
    let one = PostgresStorage::connect_with_pool_size(&pg.url(), 1).await.expect("connect");
    one.create_topic(spec("throughput", 1)).await.expect("create");
    let template = sized_batch(100, 1024, 1_700_000_000_000);
    let batch_bytes = template.len();

    let started = Instant::now();
    let mut batches = 0u64;
    while started.elapsed() < Duration::from_secs(10) {
        one.append("throughput", 0, template.clone(), None).await.expect("append");
        batches += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "append, one connection, fsync={}: {batches} batches of 100 x 1 KiB ({batch_bytes} B) in {secs:.1} s = {:.0} batches/s, {:.0} records/s, {:.1} MB/s",
        if fsync { "on" } else { "off" },
        batches as f64 / secs,
        batches as f64 * 100.0 / secs,
        batches as f64 * batch_bytes as f64 / secs / 1e6
    );

    // The deep partition: batches of 1,000 records of 100 B, written by two connections.
    let deep: i64 = std::env::var("DUCTSTREAM_PG_DEEP_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let per_writer = deep / 1_000 / 2;
    let fill_template = sized_batch(1_000, 100, 1_700_000_000_000);
    let fill = PostgresStorage::connect_with_pool_size(&pg.url(), 2).await.expect("connect");
    fill.create_topic(spec("deep", 1)).await.expect("create");
    let fill_started = Instant::now();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let s = fill.clone();
            let template = fill_template.clone();
            tokio::spawn(async move {
                for i in 0..per_writer {
                    // LogAppendTime stamps: max timestamps grow along the log.
                    let b = template.clone().with_log_append_time(1_700_000_000_000 + (i * 2 + w) * 100);
                    s.append("deep", 0, b, None).await.expect("append");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    let hw = fill.offsets("deep", 0).await.expect("offsets").high_watermark;
    assert_eq!(hw, per_writer * 2 * 1_000);
    println!("filled {hw} records (two connections, 1,000 x 100 B per batch) in {:.1} s", fill_started.elapsed().as_secs_f64());

    let reader = PostgresStorage::connect_with_pool_size(&pg.url(), 1).await.expect("connect");
    let mut times = Vec::new();
    let at = |fraction: f64| ((hw as f64 * fraction) as i64).min(hw - 1);
    for (i, offset) in [0.5, 0.50005, 0.250013, 0.750077, 0.499999, 0.123456, 0.876543, 0.600001, 0.40004, 0.99995]
        .into_iter()
        .map(at)
        .enumerate()
    {
        let t = Instant::now();
        let read = reader.read("deep", 0, offset, 1 << 20).await.expect("read");
        let elapsed = t.elapsed();
        let bytes: usize = read.iter().map(Batch::len).sum();
        assert!(read.first().is_some_and(|b| b.base_offset() <= offset && b.last_offset() >= offset));
        if i == 0 {
            println!("first read at offset {offset} (1 MiB max): {} batches, {bytes} B in {:.2} ms", read.len(), elapsed.as_secs_f64() * 1e3);
        }
        times.push(elapsed);
    }
    times.sort();
    println!(
        "reads from the middle (1 MiB max, 10 offsets): median {:.2} ms, max {:.2} ms",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let at_time = reader.batch_at_time("deep", 0, 1_700_000_000_000 + per_writer * 100).await.expect("time");
    println!("batch_at_time in the middle: base offset {:?} in {:.2} ms", at_time.map(|b| b.base_offset()), t.elapsed().as_secs_f64() * 1e3);

    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    for analyzed in [false, true] {
        if analyzed {
            client.batch_execute("ANALYZE").await.expect("analyze");
        }
        explain_read(&client, analyzed).await;
    }
    let t = Instant::now();
    let read = reader.read("deep", 0, at(0.7), 1 << 20).await.expect("read");
    println!("after ANALYZE: read at {}: {} batches in {:.2} ms", at(0.7), read.len(), t.elapsed().as_secs_f64() * 1e3);
}

async fn explain_read(client: &tokio_postgres::Client, analyzed: bool) {
    // The engine runs `read` as a prepared statement: show its generic plan.
    println!("EXPLAIN of read at offset 500000, generic plan ({}):", if analyzed { "after ANALYZE" } else { "no statistics yet" });
    let script = format!(
        "SET plan_cache_mode = force_generic_plan; PREPARE r (text, integer, bigint, bigint) AS {}; \
         EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) EXECUTE r('deep', 0, 500000, 1048576); DEALLOCATE r; RESET plan_cache_mode",
        read_sql()
    );
    for message in client.simple_query(&script).await.expect("explain") {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            println!("  {}", row.get(0).unwrap_or_default());
        }
    }
}

#[tokio::test]
async fn broker_leases_are_taken_renewed_refused_and_expire() {
    use ductstream_storage::BrokerInfo;
    use std::time::Duration;
    let pg = cluster();
    let (a, b) = (connect(&pg).await, connect(&pg).await);
    let one = BrokerInfo::single(1, "PLAINTEXT", "127.0.0.1", 9092);
    // A broker with two listeners: both are kept, each address under its name.
    let mut two = BrokerInfo::single(2, "PLAINTEXT", "127.0.0.1", 9093);
    two.listeners.push(ductstream_storage::Endpoint { listener: "SSL".into(), host: "::1".into(), port: 9094 });
    assert_eq!(a.heartbeat_broker(&one, Duration::from_secs(30)).await.expect("one"), vec![one.clone()]);
    let live = b.heartbeat_broker(&two, Duration::from_millis(300)).await.expect("two");
    assert_eq!(live, vec![one.clone(), two.clone()]);
    assert_eq!(live[1].endpoint("SSL"), Some(("::1", 9094)));
    assert_eq!(live[1].endpoint("SASL_SSL"), None);
    let impostor = BrokerInfo::single(1, "PLAINTEXT", "127.0.0.1", 9999);
    let refused = b.heartbeat_broker(&impostor, Duration::from_secs(30)).await;
    assert!(refused.expect_err("node id 1 is taken").to_string().contains("127.0.0.1:9092"));
    // Broker two stops renewing: its lease runs out and it drops from the live list.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let live = a.heartbeat_broker(&one, Duration::from_secs(30)).await.expect("renew");
        if live == vec![one.clone()] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "broker two never expired: {live:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Once expired, its node id may be taken by a broker at another address.
    let moved = BrokerInfo::single(2, "PLAINTEXT", "127.0.0.1", 7777);
    assert!(b.heartbeat_broker(&moved, Duration::from_secs(30)).await.expect("taken over").contains(&moved));
}

#[tokio::test]
async fn embedded_engines_are_a_one_broker_cluster() {
    use ductstream_storage::{BrokerInfo, MemoryStorage};
    let me = BrokerInfo::single(7, "PLAINTEXT", "h", 1);
    let live = MemoryStorage::new().heartbeat_broker(&me, std::time::Duration::from_secs(1)).await.expect("live");
    assert_eq!(live, vec![me]);
}
