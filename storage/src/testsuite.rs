#![allow(clippy::expect_used)] // a test suite: a failed expectation is the report
//! The conformance suite every [`Storage`] engine must pass.
//!
//! Each engine's test file calls [`run_all`] with a fresh, empty store. The suite is public so
//! that engines in other crates (and the Postgres engine) run exactly the same checks.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

use crate::{
    Compression, LogRange,
    Batch, CommittedOffset, GroupState, MemberState, ProducerBatch, ProducerState, Storage, StorageError, TopicSpec,
};

/// Runs every check against `storage`, which must start empty.
pub async fn run_all(storage: &dyn Storage) {
    topics_lifecycle(storage).await;
    append_assigns_contiguous_offsets(storage).await;
    stored_bytes_are_the_producers_bytes(storage).await;
    read_returns_whole_batches_within_max_bytes(storage).await;
    read_outside_the_log_is_out_of_range(storage).await;
    time_index_finds_first_batch_at_or_after(storage).await;
    time_lookups_after_deleting_the_batch_that_set_the_max(storage).await;
    delete_records_moves_log_start(storage).await;
    producer_state_is_stored_with_the_batch(storage).await;
    recreated_topic_starts_empty(storage).await;
    unknown_topics_and_partitions_are_errors(storage).await;
    producer_ids_are_unique(storage).await;
    groups_are_saved_and_replaced(storage).await;
    offsets_are_committed_replaced_and_deleted(storage).await;
    append_many_stores_batches_in_order(storage).await;
    append_partitions_writes_each_partition(storage).await;
    documents_are_stored_listed_and_deleted(storage).await;
    document_updates_are_atomic(storage).await;
    compaction_replaces_ranges_keeping_offsets(storage).await;
}

/// A sample group with `members` members, for tests.
pub fn sample_group(group_id: &str, generation: i32, members: usize) -> GroupState {
    GroupState {
        group_id: group_id.into(),
        protocol_type: "consumer".into(),
        protocol: Some("range".into()),
        generation,
        leader: Some("m-0".into()),
        members: (0..members)
            .map(|i| MemberState {
                member_id: format!("m-{i}"),
                group_instance_id: (i == 0).then(|| "static-0".to_string()),
                client_id: "client".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout_ms: 45_000,
                rebalance_timeout_ms: 300_000,
                subscription: vec![0, 1, i as u8],
                assignment: vec![9, i as u8],
            })
            .collect(),
    }
}

/// A sample commit, for tests.
pub fn sample_offset(topic: &str, partition: i32, offset: i64) -> CommittedOffset {
    CommittedOffset {
        topic: topic.into(),
        partition,
        offset,
        leader_epoch: -1,
        metadata: format!("meta-{offset}"),
        commit_timestamp: 1_700_000_000_000 + offset,
    }
}

pub async fn groups_are_saved_and_replaced(s: &dyn Storage) {
    assert!(s.load_groups().await.expect("load").iter().all(|g| g.group_id != "g1"));
    s.save_group(sample_group("g1", 1, 2)).await.expect("save");
    s.save_group(sample_group("g2", 4, 1)).await.expect("save");
    s.save_group(sample_group("g1", 2, 3)).await.expect("replace");
    let mut groups = s.load_groups().await.expect("load");
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    let g1 = groups.iter().find(|g| g.group_id == "g1").expect("g1");
    assert_eq!(g1, &sample_group("g1", 2, 3));
    s.delete_group("g2").await.expect("delete");
    assert!(s.load_groups().await.expect("load").iter().all(|g| g.group_id != "g2"));
}

pub async fn offsets_are_committed_replaced_and_deleted(s: &dyn Storage) {
    assert!(s.committed_offsets("readers").await.expect("none yet").is_empty());
    s.commit_offsets("readers", vec![sample_offset("b", 1, 10), sample_offset("a", 0, 5), sample_offset("b", 0, 7)])
        .await
        .expect("commit");
    s.commit_offsets("readers", vec![sample_offset("b", 1, 12)]).await.expect("commit again");
    s.commit_offsets("others", vec![sample_offset("a", 0, 1)]).await.expect("commit other group");
    // Metadata is any string: librdkafka sends a trailing NUL.
    let mut odd = sample_offset("z", 0, 3);
    odd.metadata = "é\u{0}".into();
    s.commit_offsets("odd", vec![odd.clone()]).await.expect("commit metadata with NUL");
    assert_eq!(s.committed_offsets("odd").await.expect("offsets"), vec![odd]);
    let got = s.committed_offsets("readers").await.expect("offsets");
    assert_eq!(got, vec![sample_offset("a", 0, 5), sample_offset("b", 0, 7), sample_offset("b", 1, 12)]);
    let mut with_offsets = s.groups_with_offsets().await.expect("groups");
    with_offsets.sort();
    assert!(with_offsets.contains(&"readers".to_string()) && with_offsets.contains(&"others".to_string()));
    let all = s.all_committed_offsets().await.expect("all offsets");
    let ours: Vec<(String, String, i32, i64)> = all
        .into_iter()
        .filter(|(g, _)| ["odd", "others", "readers"].contains(&g.as_str()))
        .map(|(g, o)| (g, o.topic, o.partition, o.offset))
        .collect();
    let expected = [("odd", "z", 0, 3), ("others", "a", 0, 1), ("readers", "a", 0, 5), ("readers", "b", 0, 7), ("readers", "b", 1, 12)];
    assert_eq!(ours, expected.map(|(g, t, p, o)| (g.to_string(), t.to_string(), p, o)), "every group's, by group, topic and partition");

    s.delete_offsets("readers", &[("b".to_string(), 0), ("zzz".to_string(), 3)]).await.expect("delete offsets");
    let got = s.committed_offsets("readers").await.expect("offsets");
    assert_eq!(got, vec![sample_offset("a", 0, 5), sample_offset("b", 1, 12)]);

    s.save_group(sample_group("readers", 3, 1)).await.expect("save");
    s.delete_group("readers").await.expect("delete group");
    assert!(s.committed_offsets("readers").await.expect("offsets").is_empty());
    assert!(!s.groups_with_offsets().await.expect("groups").contains(&"readers".to_string()));
    assert!(s.load_groups().await.expect("load").iter().all(|g| g.group_id != "readers"));
    assert_eq!(s.committed_offsets("others").await.expect("offsets").len(), 1, "other groups untouched");
}

pub async fn producer_ids_are_unique(s: &dyn Storage) {
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.push(s.next_producer_id().await.expect("producer id"));
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
    assert!(ids.iter().all(|id| *id >= 0));
}

fn spec(name: &str, partitions: i32) -> TopicSpec {
    TopicSpec { name: name.into(), partitions, configs: BTreeMap::new() }
}

fn batch(count: i32, ts: i64) -> Batch {
    Batch::parse(make_batch(count, ts, None)).expect("suite batches are valid")
}

pub async fn topics_lifecycle(s: &dyn Storage) {
    let mut configs = BTreeMap::new();
    configs.insert("retention.ms".to_string(), "1000".to_string());
    let created = s
        .create_topic(TopicSpec { name: "lifecycle".into(), partitions: 3, configs: configs.clone() })
        .await
        .expect("create");
    assert_eq!(created.partitions, 3);
    assert_eq!(created.configs, configs);
    assert!(matches!(s.create_topic(spec("lifecycle", 1)).await, Err(StorageError::TopicExists(_))));
    assert!(matches!(s.create_topic(spec("zero", 0)).await, Err(StorageError::InvalidPartitions(_))));
    assert_eq!(s.topic("lifecycle").await.expect("get"), Some(created.clone()));
    assert!(s.topics().await.expect("list").iter().any(|t| t.name == "lifecycle"));

    let grown = s.create_partitions("lifecycle", 5).await.expect("grow");
    assert_eq!(grown.partitions, 5);
    assert!(matches!(s.create_partitions("lifecycle", 4).await, Err(StorageError::InvalidPartitions(_))));
    s.append("lifecycle", 4, batch(1, 0), None).await.expect("append to a new partition");

    let mut changed = BTreeMap::new();
    changed.insert("cleanup.policy".to_string(), "delete".to_string());
    assert_eq!(s.set_topic_configs("lifecycle", changed.clone()).await.expect("configs").configs, changed);
    assert_eq!(s.topic("lifecycle").await.expect("get").map(|t| t.configs), Some(changed));

    let deleted = s.delete_topic("lifecycle").await.expect("delete");
    assert_eq!(deleted.id, created.id);
    assert_eq!(s.topic("lifecycle").await.expect("get"), None);
    assert!(matches!(s.delete_topic("lifecycle").await, Err(StorageError::UnknownTopic(_))));
}

pub async fn append_assigns_contiguous_offsets(s: &dyn Storage) {
    s.create_topic(spec("offsets", 2)).await.expect("create");
    let mut bases = Vec::new();
    for count in [3, 2, 1] {
        let outcome = s.append("offsets", 1, batch(count, 100), None).await.expect("append");
        bases.push(outcome.base_offset);
    }
    assert_eq!(bases, vec![0, 3, 5]);
    let offsets = s.offsets("offsets", 1).await.expect("offsets");
    assert_eq!((offsets.log_start, offsets.high_watermark), (0, 6));
    let other = s.offsets("offsets", 0).await.expect("offsets");
    assert_eq!((other.log_start, other.high_watermark), (0, 0), "partitions are independent");
    // Engines that count a partition's bytes count exactly the batches.
    let stored: u64 = s.read("offsets", 1, 0, 1 << 20).await.expect("read").iter().map(|b| b.len() as u64).sum();
    for (partition, bytes) in [(1, stored), (0, 0)] {
        if let Some(size) = s.partition_size("offsets", partition).await.expect("size") {
            assert_eq!(size, bytes, "partition {partition}'s size");
        }
    }
    s.sync().await.expect("sync");
}

pub async fn stored_bytes_are_the_producers_bytes(s: &dyn Storage) {
    s.create_topic(spec("bytes", 1)).await.expect("create");
    s.append("bytes", 0, batch(2, 5), None).await.expect("append");
    let sent = make_batch(4, 77, None);
    s.append("bytes", 0, Batch::parse(sent.clone()).expect("valid"), None).await.expect("append");
    let read = s.read("bytes", 0, 2, 1 << 20).await.expect("read");
    assert_eq!(read.len(), 1);
    let stored = read[0].bytes();
    assert_eq!(read[0].base_offset(), 2);
    assert_eq!(&stored[8..], &sent[8..], "only the base offset may change");
    Batch::parse(stored.clone()).expect("stored batch still passes its CRC");
}

pub async fn read_returns_whole_batches_within_max_bytes(s: &dyn Storage) {
    s.create_topic(spec("reads", 1)).await.expect("create");
    for _ in 0..4 {
        s.append("reads", 0, batch(5, 0), None).await.expect("append");
    }
    let one = batch(5, 0).len();
    let from_middle = s.read("reads", 0, 7, 1 << 20).await.expect("read");
    assert_eq!(from_middle.iter().map(Batch::base_offset).collect::<Vec<_>>(), vec![5, 10, 15]);
    let limited = s.read("reads", 0, 0, 2 * one + 1).await.expect("read");
    assert_eq!(limited.len(), 2);
    let tiny = s.read("reads", 0, 0, 1).await.expect("read");
    assert_eq!(tiny.len(), 1, "the first batch comes back even when larger than max_bytes");
    assert!(s.read("reads", 0, 20, 1 << 20).await.expect("read at the end").is_empty());
}

pub async fn read_outside_the_log_is_out_of_range(s: &dyn Storage) {
    s.create_topic(spec("range", 1)).await.expect("create");
    s.append("range", 0, batch(2, 0), None).await.expect("append");
    assert!(matches!(
        s.read("range", 0, 3, 100).await,
        Err(StorageError::OffsetOutOfRange { requested: 3, log_start: 0, high_watermark: 2 })
    ));
    assert!(matches!(s.read("range", 0, -1, 100).await, Err(StorageError::OffsetOutOfRange { .. })));
}

/// Time lookups answer for the batches still stored after DeleteRecords removed the batch
/// whose timestamp had been the partition's running maximum: a later batch with a smaller
/// timestamp is found again.
pub async fn time_lookups_after_deleting_the_batch_that_set_the_max(s: &dyn Storage) {
    s.create_topic(TopicSpec { name: "trimmed-times".into(), partitions: 1, configs: BTreeMap::new() }).await.expect("create");
    // Offsets 0..4 with max timestamps 300, 50, 100, 200, 400.
    for ts in [300, 50, 100, 200, 400] {
        s.append("trimmed-times", 0, batch(1, ts), None).await.expect("append");
    }
    let at = |ts: i64| async move {
        s.batch_at_time("trimmed-times", 0, ts).await.expect("lookup").map(|b| b.base_offset())
    };
    assert_eq!(at(40).await, Some(0));
    assert_eq!(s.delete_records("trimmed-times", 0, 1).await.expect("delete"), 1);
    assert_eq!(at(40).await, Some(1), "the first stored batch at or after 40 is offset 1 (50)");
    assert_eq!(at(60).await, Some(2), "then offset 2 (100)");
    assert_eq!(at(150).await, Some(3), "then offset 3 (200)");
    assert_eq!(at(300).await, Some(4), "the batch with 300 is gone; 400 is next");
    assert_eq!(at(401).await, None);
    let max = s.batch_with_max_timestamp("trimmed-times", 0).await.expect("max").map(|b| b.base_offset());
    assert_eq!(max, Some(4));
    // With the largest timestamp deleted too, the largest of the rest is found.
    s.append("trimmed-times", 0, batch(1, 10), None).await.expect("append");
    assert_eq!(s.delete_records("trimmed-times", 0, 5).await.expect("delete"), 5);
    let max = s.batch_with_max_timestamp("trimmed-times", 0).await.expect("max").map(|b| b.base_offset());
    assert_eq!(max, Some(5));
    assert_eq!(at(5).await, Some(5));
    assert_eq!(at(11).await, None);
}

pub async fn time_index_finds_first_batch_at_or_after(s: &dyn Storage) {
    s.create_topic(spec("times", 1)).await.expect("create");
    assert!(s.batch_at_time("times", 0, 0).await.expect("lookup").is_none());
    // base timestamps 1000, 3000, 2000 (late), 5000; each batch of 2 records spans ts..ts+1
    for ts in [1000, 3000, 2000, 5000] {
        s.append("times", 0, batch(2, ts), None).await.expect("append");
    }
    let base_at = |b: Option<Batch>| b.map(|b| b.base_offset());
    assert_eq!(base_at(s.batch_at_time("times", 0, 0).await.expect("t")), Some(0));
    assert_eq!(base_at(s.batch_at_time("times", 0, 1001).await.expect("t")), Some(0));
    assert_eq!(base_at(s.batch_at_time("times", 0, 1002).await.expect("t")), Some(2));
    assert_eq!(base_at(s.batch_at_time("times", 0, 4000).await.expect("t")), Some(6));
    assert_eq!(base_at(s.batch_at_time("times", 0, 6000).await.expect("t")), None);
    assert_eq!(base_at(s.batch_with_max_timestamp("times", 0).await.expect("max")), Some(6));
}

pub async fn delete_records_moves_log_start(s: &dyn Storage) {
    s.create_topic(spec("trim", 1)).await.expect("create");
    for _ in 0..3 {
        s.append("trim", 0, batch(4, 0), None).await.expect("append");
    }
    assert_eq!(s.delete_records("trim", 0, 6).await.expect("delete"), 6);
    let offsets = s.offsets("trim", 0).await.expect("offsets");
    assert_eq!((offsets.log_start, offsets.high_watermark), (6, 12));
    assert!(matches!(s.read("trim", 0, 3, 100).await, Err(StorageError::OffsetOutOfRange { .. })));
    let read = s.read("trim", 0, 6, 1 << 20).await.expect("read");
    assert_eq!(read.first().map(Batch::base_offset), Some(4), "the batch holding log start stays whole");
    assert_eq!(s.delete_records("trim", 0, 2).await.expect("no-op"), 6, "log start never moves back");
    assert!(matches!(s.delete_records("trim", 0, 13).await, Err(StorageError::OffsetOutOfRange { .. })));
    assert_eq!(s.delete_records("trim", 0, 12).await.expect("delete all"), 12);
    assert!(s.read("trim", 0, 12, 100).await.expect("read").is_empty());
    let next = s.append("trim", 0, batch(1, 9), None).await.expect("append after trim");
    assert_eq!(next.base_offset, 12);
    assert_eq!(s.batch_at_time("trim", 0, 0).await.expect("t").map(|b| b.base_offset()), Some(12));
}

pub async fn producer_state_is_stored_with_the_batch(s: &dyn Storage) {
    s.create_topic(spec("producers", 1)).await.expect("create");
    let mut state = ProducerState { producer_id: 42, epoch: 3, batches: Vec::new() };
    let b = Batch::parse(make_batch(2, 0, Some((42, 3, 0)))).expect("valid");
    state.remember(ProducerBatch { first_sequence: 0, last_sequence: 1, base_offset: 0 });
    s.append("producers", 0, b, Some(state.clone())).await.expect("append");
    assert_eq!(s.producers("producers", 0).await.expect("producers"), vec![state]);
}

pub async fn recreated_topic_starts_empty(s: &dyn Storage) {
    s.create_topic(spec("again", 1)).await.expect("create");
    s.append("again", 0, batch(3, 0), None).await.expect("append");
    s.delete_topic("again").await.expect("delete");
    s.create_topic(spec("again", 1)).await.expect("re-create");
    let offsets = s.offsets("again", 0).await.expect("offsets");
    assert_eq!(offsets.high_watermark, 0);
    assert!(s.producers("again", 0).await.expect("producers").is_empty());
}

pub async fn unknown_topics_and_partitions_are_errors(s: &dyn Storage) {
    assert!(matches!(s.append("nope", 0, batch(1, 0), None).await, Err(StorageError::UnknownTopic(_))));
    s.create_topic(spec("known", 1)).await.expect("create");
    assert!(matches!(s.read("known", 1, 0, 10).await, Err(StorageError::UnknownPartition { .. })));
    assert!(matches!(s.offsets("known", -1).await, Err(StorageError::UnknownPartition { .. })));
}

/// Builds an uncompressed v2 batch of `count` records with keys `k<i>`, values `v<i>` and
/// timestamps `base_timestamp + i`; `producer` is (id, epoch, base sequence).
pub fn make_batch(count: i32, base_timestamp: i64, producer: Option<(i64, i16, i32)>) -> Bytes {
    let mut records = BytesMut::new();
    for i in 0..count {
        let key = format!("k{i}");
        let value = format!("v{i}");
        let mut body = BytesMut::new();
        body.put_i8(0); // attributes
        put_varlong(&mut body, i as i64); // timestamp delta
        put_varlong(&mut body, i as i64); // offset delta
        put_varlong(&mut body, key.len() as i64);
        body.put_slice(key.as_bytes());
        put_varlong(&mut body, value.len() as i64);
        body.put_slice(value.as_bytes());
        put_varlong(&mut body, 0); // headers
        put_varlong(&mut records, body.len() as i64);
        records.put_slice(&body);
    }
    let (producer_id, epoch, sequence) = producer.unwrap_or((-1, -1, -1));
    let mut tail = BytesMut::new(); // from attributes to the end: what the CRC covers
    tail.put_i16(0);
    tail.put_i32(count - 1);
    tail.put_i64(base_timestamp);
    tail.put_i64(base_timestamp + count as i64 - 1);
    tail.put_i64(producer_id);
    tail.put_i16(epoch);
    tail.put_i32(sequence);
    tail.put_i32(count);
    tail.put_slice(&records);
    let mut out = BytesMut::new();
    out.put_i64(0);
    out.put_i32((4 + 1 + 4 + tail.len()) as i32);
    out.put_i32(-1); // partition leader epoch
    out.put_i8(2);
    out.put_u32(crc32c::crc32c(&tail));
    out.put_slice(&tail);
    out.freeze()
}

fn put_varlong(buf: &mut BytesMut, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

pub async fn documents_are_stored_listed_and_deleted(s: &dyn Storage) {
    assert_eq!(s.document("suite", "a").await.expect("get"), None);
    let put = |bytes: &'static [u8]| move |_: Option<&[u8]>| Ok(Some(bytes.to_vec()));
    assert_eq!(s.update_document("suite", "b/1", &mut put(b"one")).await.expect("put"), Some(b"one".to_vec()));
    s.update_document("suite", "a", &mut put(b"zero")).await.expect("put");
    s.update_document("other", "a", &mut put(b"elsewhere")).await.expect("put");
    assert_eq!(s.document("suite", "a").await.expect("get"), Some(b"zero".to_vec()));
    assert_eq!(
        s.documents("suite").await.expect("list"),
        vec![("a".to_string(), b"zero".to_vec()), ("b/1".to_string(), b"one".to_vec())]
    );

    // A refusing update changes nothing and its error comes back as it was.
    let refused = s
        .update_document("suite", "a", &mut |_| Err(StorageError::Rejected("no thanks".into())))
        .await
        .expect_err("refused");
    assert!(matches!(refused, StorageError::Rejected(ref m) if m == "no thanks"), "{refused:?}");
    assert_eq!(s.document("suite", "a").await.expect("get"), Some(b"zero".to_vec()));

    let mut seen = None;
    let deleted = s
        .update_document("suite", "a", &mut |current| {
            seen = current.map(<[u8]>::to_vec);
            Ok(None)
        })
        .await
        .expect("delete");
    assert_eq!((deleted, seen), (None, Some(b"zero".to_vec())));
    assert_eq!(s.document("suite", "a").await.expect("get"), None);
    assert_eq!(s.documents("suite").await.expect("list").len(), 1);
    assert_eq!(s.documents("other").await.expect("list").len(), 1);
}

/// Concurrent read-modify-write updates of one document lose none of each other's changes.
pub async fn document_updates_are_atomic(s: &dyn Storage) {
    async fn add_ones(s: &dyn Storage, times: usize) {
        for _ in 0..times {
            s.update_document("suite", "counter", &mut |current| {
                let n: u64 = current.map_or(Ok(0), |b| {
                    std::str::from_utf8(b).ok().and_then(|t| t.parse().ok()).ok_or(StorageError::Corrupt("counter".into()))
                })?;
                Ok(Some((n + 1).to_string().into_bytes()))
            })
            .await
            .expect("increment");
        }
    }
    tokio::join!(add_ones(s, 25), add_ones(s, 25), add_ones(s, 25), add_ones(s, 25));
    assert_eq!(s.document("suite", "counter").await.expect("get"), Some(b"100".to_vec()));
}

/// `append_many` gives the same offsets, reads, time lookups and producer states as appends
/// one by one, and fails alone for an unknown partition.
pub async fn append_many_stores_batches_in_order(s: &dyn Storage) {
    s.create_topic(TopicSpec { name: "many".into(), partitions: 1, configs: BTreeMap::new() }).await.expect("create");
    s.append("many", 0, batch(2, 1_000), None).await.expect("first");
    let producer = |last_sequence: i32, base_offset: i64| ProducerState {
        producer_id: 77,
        epoch: 1,
        batches: vec![ProducerBatch { first_sequence: 0, last_sequence, base_offset }],
    };
    let outcomes = s
        .append_many(
            "many",
            0,
            vec![
                (batch(3, 5_000), None),
                (Batch::parse(make_batch(1, 2_000, Some((77, 1, 0)))).expect("valid"), Some(producer(0, 5))),
                (batch(4, 9_000), None),
            ],
        )
        .await;
    let outcomes: Vec<_> = outcomes.into_iter().map(|o| o.expect("stored")).collect();
    assert_eq!(
        outcomes.iter().map(|o| (o.base_offset, o.high_watermark)).collect::<Vec<_>>(),
        vec![(2, 5), (5, 6), (6, 10)]
    );
    assert_eq!(s.offsets("many", 0).await.expect("offsets").high_watermark, 10);
    let read = s.read("many", 0, 5, 1 << 20).await.expect("read");
    assert_eq!(read.iter().map(Batch::base_offset).collect::<Vec<_>>(), vec![5, 6]);
    assert_eq!(s.read("many", 0, 3, 1).await.expect("read")[0].base_offset(), 2);
    let at = s.batch_at_time("many", 0, 4_000).await.expect("time").expect("a batch");
    assert_eq!(at.base_offset(), 2, "the first batch whose max timestamp reaches 4000 (5002)");
    assert_eq!(s.batch_with_max_timestamp("many", 0).await.expect("max").map(|b| b.base_offset()), Some(6));
    assert_eq!(s.producers("many", 0).await.expect("producers"), vec![producer(0, 5)]);
    assert!(s.append_many("many", 0, Vec::new()).await.is_empty());
    let failed = s.append_many("many", 9, vec![(batch(1, 0), None), (batch(1, 0), None)]).await;
    assert!(failed.iter().all(Result::is_err));
    assert!(matches!(failed[0], Err(StorageError::UnknownPartition { .. })), "{:?}", failed[0]);
    assert_eq!(s.offsets("many", 0).await.expect("offsets").high_watermark, 10);
}

/// `append_partitions` appends each partition's batches as `append_many` would.
pub async fn append_partitions_writes_each_partition(s: &dyn Storage) {
    s.create_topic(TopicSpec { name: "wide".into(), partitions: 3, configs: BTreeMap::new() }).await.expect("create");
    s.append("wide", 1, batch(5, 0), None).await.expect("first");
    let write = |partition: i32, batches: Vec<Batch>| crate::PartitionWrite {
        topic: "wide".into(),
        partition,
        batches: batches.into_iter().map(|b| (b, None)).collect(),
    };
    let results = s
        .append_partitions(vec![write(0, vec![batch(2, 0), batch(3, 0)]), write(1, vec![batch(1, 0)]), write(2, Vec::new())])
        .await;
    let offsets: Vec<Vec<(i64, i64)>> = results
        .into_iter()
        .map(|r| r.into_iter().map(|o| o.map(|o| (o.base_offset, o.high_watermark)).expect("stored")).collect())
        .collect();
    assert_eq!(offsets, vec![vec![(0, 2), (2, 5)], vec![(5, 6)], vec![]]);
    let failed = s.append_partitions(vec![write(7, vec![batch(1, 0)])]).await;
    assert!(failed[0][0].is_err());
    for (partition, hw) in [(0, 5), (1, 6), (2, 0)] {
        assert_eq!(s.offsets("wide", partition).await.expect("offsets").high_watermark, hw);
    }
}

/// Compaction's primitive: a compactable range (never the last batch) is replaced by batches
/// covering the same offsets, which reads then return, from any offset in it; a rewrite that
/// does not cover the range is refused, and one of a range retention removed is RangeChanged.
pub async fn compaction_replaces_ranges_keeping_offsets(s: &dyn Storage) {
    // segment.bytes=1: the embedded engine seals a segment per batch, so it has ranges too.
    let configs = BTreeMap::from([("segment.bytes".to_string(), "1".to_string())]);
    s.create_topic(TopicSpec { name: "compacted".into(), partitions: 1, configs }).await.expect("create");
    for _ in 0..4 {
        s.append("compacted", 0, batch(2, 10), None).await.expect("append");
    }
    let ranges = s.compactable_ranges("compacted", 0).await.expect("ranges");
    if ranges.is_empty() {
        return; // the engine does not compact
    }
    assert!(ranges.iter().all(|r| r.end <= 6), "the last batch is never compactable: {ranges:?}");
    assert_eq!(ranges[0].start, 0);
    let range = ranges[0];
    let before = s.offsets("compacted", 0).await.expect("offsets");
    let template = s.read("compacted", 0, range.start, 1).await.expect("read")[0].clone();
    let width = i32::try_from(range.end - range.start).expect("small");
    // Every record gone: one empty batch holds the range's offsets.
    let empty = template.with_records(&[], 0, Compression::None, width - 1).expect("rewrite");

    let short = template.with_records(&[], 0, Compression::None, width - 2).expect("rewrite");
    assert!(matches!(s.replace_range("compacted", 0, range, vec![short]).await, Err(StorageError::Rejected(_))));

    s.replace_range("compacted", 0, range, vec![empty.clone()]).await.expect("replace");
    assert_eq!(s.offsets("compacted", 0).await.expect("offsets"), before, "offsets never move");
    for offset in [range.start, range.end - 1] {
        let read = s.read("compacted", 0, offset, 1 << 20).await.expect("read");
        assert_eq!(read[0].bytes(), empty.bytes(), "read from {offset}");
        assert_eq!(read[1].base_offset(), range.end, "the next batch follows");
        assert_eq!(read.last().map(Batch::next_offset), Some(8));
    }

    s.delete_records("compacted", 0, range.end).await.expect("delete");
    assert!(matches!(
        s.replace_range("compacted", 0, range, vec![empty]).await,
        Err(StorageError::RangeChanged(_))
    ));
    let left: Vec<LogRange> = s.compactable_ranges("compacted", 0).await.expect("ranges");
    assert!(left.iter().all(|r| r.start >= range.end), "{left:?}");
}
