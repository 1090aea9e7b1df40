#![allow(clippy::expect_used)] // tests: a failed expectation is the report

//! The conformance suite on every engine, plus what only a persistent engine can show.

use std::path::{Path, PathBuf};

use ductstream_storage::{
    testsuite, Batch, EmbeddedStorage, MemoryStorage, ProducerBatch, ProducerState, Storage, TopicSpec,
};

#[tokio::test]
async fn memory_engine_passes_the_suite() {
    testsuite::run_all(&MemoryStorage::new()).await;
}

#[tokio::test]
async fn embedded_engine_passes_the_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = EmbeddedStorage::open(dir.path(), false).expect("open");
    testsuite::run_all(&storage).await;
}

#[tokio::test]
async fn embedded_with_fsync_passes_the_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = EmbeddedStorage::open(dir.path(), true).expect("open");
    testsuite::run_all(&storage).await;
}

#[allow(clippy::expect_used)] // a test helper: a failed expectation is the report
fn segment_batch(count: i32, ts: i64, producer: Option<(i64, i16, i32)>) -> Batch {
    Batch::parse(testsuite::make_batch(count, ts, producer)).expect("valid")
}

#[tokio::test]
async fn embedded_keeps_everything_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first_id;
    let mut state = ProducerState { producer_id: 5, epoch: 1, batches: Vec::new() };
    {
        let s = EmbeddedStorage::open(dir.path(), true).expect("open");
        s.create_topic(TopicSpec { name: "kept".into(), partitions: 2, configs: Default::default() })
            .await
            .expect("create");
        for (i, ts) in [10, 5, 20].into_iter().enumerate() {
            let sequence = i as i32 * 3;
            state.remember(ProducerBatch { first_sequence: sequence, last_sequence: sequence + 2, base_offset: sequence as i64 });
            let batch = segment_batch(3, ts, Some((5, 1, sequence)));
            s.append("kept", 1, batch, Some(state.clone())).await.expect("append");
        }
        s.delete_records("kept", 1, 4).await.expect("trim");
        first_id = s.next_producer_id().await.expect("id");
        save_group_and_offsets(&s).await;
        s.sync().await.expect("sync");
    }
    let s = EmbeddedStorage::open(dir.path(), true).expect("reopen");
    group_and_offsets_are_back(&s).await;
    let topic = s.topic("kept").await.expect("topic").expect("still there");
    assert_eq!(topic.partitions, 2);
    let offsets = s.offsets("kept", 1).await.expect("offsets");
    assert_eq!((offsets.log_start, offsets.high_watermark), (4, 9));
    let read = s.read("kept", 1, 4, 1 << 20).await.expect("read");
    assert_eq!(read.iter().map(Batch::base_offset).collect::<Vec<_>>(), vec![3, 6]);
    assert_eq!(s.producers("kept", 1).await.expect("producers"), vec![state], "producer state rebuilt from the batches");
    assert_eq!(s.batch_at_time("kept", 1, 8).await.expect("time").map(|b| b.base_offset()), Some(6));
    let next = s.append("kept", 1, segment_batch(1, 1, None), None).await.expect("append");
    assert_eq!(next.base_offset, 9, "offsets continue after a reopen");
    let max = s.batch_with_max_timestamp("kept", 1).await.expect("max").map(|b| b.base_offset());
    assert_eq!(max, Some(6));
    assert!(s.next_producer_id().await.expect("id") > first_id, "producer ids never repeat across restarts");
}

/// The segment file of a one-segment partition.
#[allow(clippy::expect_used)] // a test helper: a failed expectation is the report
fn only_segment(root: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("read data dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "catalog"))
        .collect();
    assert_eq!(dirs.len(), 1, "one partition folder");
    dirs[0].join("00000000000000000000.log")
}

#[tokio::test]
async fn embedded_recovers_from_a_torn_tail() {
    for tear in ["cut the last batch in half", "append garbage"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let sizes: Vec<u64> = {
            let s = EmbeddedStorage::open(dir.path(), false).expect("open");
            s.create_topic(TopicSpec { name: "torn".into(), partitions: 1, configs: Default::default() })
                .await
                .expect("create");
            let mut sizes = Vec::new();
            for count in [2, 3, 4] {
                let b = segment_batch(count, 0, None);
                sizes.push(b.len() as u64);
                s.append("torn", 0, b, None).await.expect("append");
            }
            sizes
        };
        let segment = only_segment(dir.path());
        let whole: u64 = sizes.iter().sum();
        let file = std::fs::OpenOptions::new().write(true).open(&segment).expect("open segment");
        let expected_end = if tear == "append garbage" {
            use std::io::{Seek, SeekFrom, Write};
            let mut file = file;
            file.seek(SeekFrom::End(0)).expect("seek");
            file.write_all(&[0xab; 100]).expect("garbage");
            9
        } else {
            file.set_len(whole - sizes[2] / 2).expect("cut");
            5
        };

        let s = EmbeddedStorage::open(dir.path(), false).expect("reopen after a torn write");
        let offsets = s.offsets("torn", 0).await.expect("offsets");
        assert_eq!(offsets.high_watermark, expected_end, "{tear}");
        let read = s.read("torn", 0, 0, 1 << 20).await.expect("read");
        assert_eq!(read.last().map(Batch::next_offset), Some(expected_end), "{tear}");
        let next = s.append("torn", 0, segment_batch(1, 0, None), None).await.expect("append");
        assert_eq!(next.base_offset, expected_end, "{tear}");
        drop(s);

        let s = EmbeddedStorage::open(dir.path(), false).expect("reopen again");
        let read = s.read("torn", 0, 0, 1 << 20).await.expect("read");
        assert_eq!(read.last().map(Batch::base_offset), Some(expected_end), "{tear}: the append after recovery reads back");
    }
}

async fn save_group_and_offsets(s: &dyn Storage) {
    s.save_group(testsuite::sample_group("kept-group", 7, 2)).await.expect("save group");
    s.commit_offsets("kept-group", vec![testsuite::sample_offset("kept", 1, 4)]).await.expect("commit");
}

async fn group_and_offsets_are_back(s: &dyn Storage) {
    assert_eq!(s.load_groups().await.expect("groups"), vec![testsuite::sample_group("kept-group", 7, 2)]);
    assert_eq!(s.committed_offsets("kept-group").await.expect("offsets"), vec![testsuite::sample_offset("kept", 1, 4)]);
}
