//! Behaviour only this engine has: rolling, file deletion, recovery and on-disk leftovers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::testsuite::make_batch;
use crate::{ProducerBatch, PRODUCER_BATCHES_KEPT};

fn spec(name: &str, partitions: i32) -> TopicSpec {
    TopicSpec { name: name.into(), partitions, configs: BTreeMap::new() }
}

fn batch(count: i32, ts: i64) -> Batch {
    Batch::parse(make_batch(count, ts, None)).expect("valid")
}

/// Room for two of the 116-byte batches of 5 records these tests append.
const SMALL: u64 = 250;

fn segment_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
}

async fn partition_path(s: &SegmentStorage, topic: &str, partition: i32) -> PathBuf {
    let id = s.topic(topic).await.expect("topic").expect("exists").id;
    partition_dir(&s.engine.dir, id, partition)
}

fn bases(batches: &[Batch]) -> Vec<i64> {
    batches.iter().map(Batch::base_offset).collect()
}

#[tokio::test]
async fn rolls_segments_and_reads_across_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SegmentStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("open");
    s.create_topic(spec("roll", 1)).await.expect("create");
    for i in 0..10 {
        s.append("roll", 0, batch(5, i), None).await.expect("append");
    }
    let path = partition_path(&s, "roll", 0).await;
    let names = segment_names(&path);
    assert!(names.len() >= 4, "expected several segments, got {names:?}");
    assert_eq!(names[0], "00000000000000000000.log");

    let all = s.read("roll", 0, 0, 1 << 20).await.expect("read");
    assert_eq!(bases(&all), (0..10).map(|i| i * 5).collect::<Vec<_>>());
    for b in &all {
        Batch::parse(b.bytes().clone()).expect("stored bytes keep their CRC");
    }
    let from_middle = s.read("roll", 0, 23, 3 * all[0].len()).await.expect("read");
    assert_eq!(bases(&from_middle), vec![20, 25, 30]);
    assert_eq!(s.batch_at_time("roll", 0, 7).await.expect("t").map(|b| b.base_offset()), Some(15));

    drop(s);
    let s = SegmentStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("reopen");
    assert_eq!(bases(&s.read("roll", 0, 0, 1 << 20).await.expect("read")), bases(&all));
    assert_eq!(s.append("roll", 0, batch(1, 0), None).await.expect("append").base_offset, 50);
}

#[tokio::test]
async fn delete_records_removes_whole_segments_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SegmentStorage::open_with_segment_bytes(dir.path(), true, SMALL).expect("open");
    s.create_topic(spec("trim", 1)).await.expect("create");
    // Max timestamps 104, 4, 54, 24, 34, 44: the largest sits in the first batch.
    for ts in [100, 0, 50, 20, 30, 40] {
        s.append("trim", 0, batch(5, ts), None).await.expect("append");
    }
    let path = partition_path(&s, "trim", 0).await;
    let before = segment_names(&path);

    assert_eq!(s.delete_records("trim", 0, 12).await.expect("delete"), 12);
    let after = segment_names(&path);
    assert!(after.len() < before.len(), "old segments deleted: {before:?} -> {after:?}");
    assert!(!after.contains(&"00000000000000000000.log".to_string()));
    assert_eq!(bases(&s.read("trim", 0, 12, 1 << 20).await.expect("read")), vec![10, 15, 20, 25]);
    // The batch with the largest timestamp is gone; the rest stay findable by time.
    assert_eq!(s.batch_with_max_timestamp("trim", 0).await.expect("max").map(|b| b.base_offset()), Some(10));
    assert_eq!(s.batch_at_time("trim", 0, 0).await.expect("t").map(|b| b.base_offset()), Some(10));

    // Deleting everything keeps the active segment; appends go on from the high watermark.
    assert_eq!(s.delete_records("trim", 0, 30).await.expect("delete all"), 30);
    assert_eq!(segment_names(&path).len(), 1);
    assert_eq!(s.append("trim", 0, batch(1, 7), None).await.expect("append").base_offset, 30);
    s.sync().await.expect("sync");

    drop(s);
    let s = SegmentStorage::open_with_segment_bytes(dir.path(), true, SMALL).expect("reopen");
    let offsets = s.offsets("trim", 0).await.expect("offsets");
    assert_eq!((offsets.log_start, offsets.high_watermark), (30, 31));
    assert_eq!(bases(&s.read("trim", 0, 30, 1 << 20).await.expect("read")), vec![30]);
}

#[tokio::test]
async fn producers_survive_deleted_segments_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SegmentStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("open");
    s.create_topic(spec("idem", 1)).await.expect("create");
    let mut state = ProducerState { producer_id: 9, epoch: 2, batches: Vec::new() };
    for i in 0..7 {
        let b = Batch::parse(make_batch(5, 0, Some((9, 2, i * 5)))).expect("valid");
        state.remember(ProducerBatch { first_sequence: i * 5, last_sequence: i * 5 + 4, base_offset: i as i64 * 5 });
        s.append("idem", 0, b, Some(state.clone())).await.expect("append");
    }
    // Plain batches after, so the producer's own batches all end up in deleted segments.
    for _ in 0..4 {
        s.append("idem", 0, batch(5, 0), None).await.expect("append");
    }
    assert_eq!(s.delete_records("idem", 0, 50).await.expect("delete"), 50);
    assert!(!segment_names(&partition_path(&s, "idem", 0).await).contains(&"00000000000000000000.log".to_string()));
    drop(s);

    let s = SegmentStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("reopen");
    assert_eq!(s.producers("idem", 0).await.expect("producers"), vec![state.clone()]);
    assert_eq!(state.batches.len(), PRODUCER_BATCHES_KEPT);
}

#[tokio::test]
async fn damage_before_the_end_cuts_the_log_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SegmentStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("open");
    s.create_topic(spec("bitrot", 1)).await.expect("create");
    for _ in 0..8 {
        s.append("bitrot", 0, batch(5, 0), None).await.expect("append");
    }
    let path = partition_path(&s, "bitrot", 0).await;
    let names = segment_names(&path);
    drop(s);

    // Flip a byte in the last batch of the second segment.
    let second = path.join(&names[1]);
    let mut bytes = std::fs::read(&second).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&second, &bytes).expect("write");

    let s = SegmentStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("reopen");
    let read = s.read("bitrot", 0, 0, 1 << 20).await.expect("read");
    let hw = s.offsets("bitrot", 0).await.expect("offsets").high_watermark;
    assert_eq!(read.last().map(Batch::next_offset), Some(hw));
    assert!(hw < 40 && hw > 0, "log cut inside the second segment, at {hw}");
    assert_eq!(segment_names(&path).len(), 2, "later segments set aside");
    assert!(std::fs::read_dir(&path).expect("dir").any(|e| e.expect("entry").file_name().to_string_lossy().ends_with(".dropped")));
    assert_eq!(s.append("bitrot", 0, batch(1, 0), None).await.expect("append").base_offset, hw);
}

#[tokio::test]
async fn log_start_past_the_data_starts_a_new_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = {
        let s = SegmentStorage::open(dir.path(), false).expect("open");
        s.create_topic(spec("gap", 1)).await.expect("create");
        s.append("gap", 0, batch(5, 0), None).await.expect("append");
        partition_path(&s, "gap", 0).await
    };
    // As after a power loss that kept the log start but not the batches below it.
    std::fs::write(path.join(partition::LOG_START_FILE), "20").expect("write");
    let s = SegmentStorage::open(dir.path(), false).expect("reopen");
    let offsets = s.offsets("gap", 0).await.expect("offsets");
    assert_eq!((offsets.log_start, offsets.high_watermark), (20, 20));
    assert_eq!(s.append("gap", 0, batch(2, 0), None).await.expect("append").base_offset, 20);
    drop(s);
    let s = SegmentStorage::open(dir.path(), false).expect("reopen");
    assert_eq!(bases(&s.read("gap", 0, 20, 1 << 20).await.expect("read")), vec![20]);
    assert_eq!(s.offsets("gap", 0).await.expect("offsets").high_watermark, 22);
}

#[tokio::test]
async fn folders_follow_the_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (kept, gone) = {
        let s = SegmentStorage::open(dir.path(), false).expect("open");
        s.create_topic(spec("kept", 2)).await.expect("create");
        s.create_topic(spec("gone", 1)).await.expect("create");
        s.append("gone", 0, batch(1, 0), None).await.expect("append");
        (partition_path(&s, "kept", 1).await, partition_path(&s, "gone", 0).await)
    };
    std::fs::remove_dir_all(&kept).expect("remove");
    // As if the process died between rewriting topics.json and removing the folders.
    let topics: Vec<Topic> = manifest::load(dir.path()).expect("load").into_iter().filter(|t| t.name != "gone").collect();
    manifest::save(dir.path(), topics.iter()).expect("save");

    let s = SegmentStorage::open(dir.path(), false).expect("reopen");
    assert!(kept.is_dir(), "missing partition folder recreated");
    assert!(!gone.exists(), "folder of an unknown topic removed");
    assert_eq!(s.offsets("kept", 1).await.expect("offsets").high_watermark, 0);
    assert!(s.topic("gone").await.expect("topic").is_none());
}

#[tokio::test]
async fn delete_topic_removes_its_folders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SegmentStorage::open(dir.path(), true).expect("open");
    s.create_topic(spec("doomed", 2)).await.expect("create");
    s.append("doomed", 1, batch(1, 0), None).await.expect("append");
    let path = partition_path(&s, "doomed", 1).await;
    s.delete_topic("doomed").await.expect("delete");
    assert!(!path.exists());
    s.sync().await.expect("sync still works with the folder gone");
}

#[tokio::test]
async fn one_process_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SegmentStorage::open(dir.path(), false).expect("open");
    assert!(matches!(SegmentStorage::open(dir.path(), false), Err(StorageError::Engine(_))));
    drop(s);
    SegmentStorage::open(dir.path(), false).expect("reopen after the first closed");
}

#[tokio::test]
async fn sync_fsyncs_what_was_written_since_the_last_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SegmentStorage::open(dir.path(), true).expect("open");
    s.create_topic(spec("durable", 2)).await.expect("create");
    for p in [0, 1, 0] {
        s.append("durable", p, batch(1, 0), None).await.expect("append");
    }
    // Two segment files, once each, and their two new directory entries.
    assert_eq!(s.engine.shared.dirty.pending(), 4);
    s.sync().await.expect("sync");
    assert_eq!(s.engine.shared.dirty.pending(), 0);
    s.append("durable", 0, batch(1, 0), None).await.expect("append");
    assert_eq!(s.engine.shared.dirty.pending(), 1);
    s.sync().await.expect("sync");

    let lazy = tempfile::tempdir().expect("tempdir");
    let s = SegmentStorage::open(lazy.path(), false).expect("open");
    s.create_topic(spec("lazy", 1)).await.expect("create");
    s.append("lazy", 0, batch(1, 0), None).await.expect("append");
    assert_eq!(s.engine.shared.dirty.pending(), 0, "nothing tracked without fsync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_whole_contiguous_batches_while_appends_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Arc::new(SegmentStorage::open_with_segment_bytes(dir.path(), false, 4096).expect("open"));
    s.create_topic(spec("busy", 1)).await.expect("create");
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..2000 {
                s.append("busy", 0, batch(1 + i % 7, i as i64), None).await.expect("append");
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        let hw = s.offsets("busy", 0).await.expect("offsets").high_watermark;
        let mut next = 0;
        while next < hw {
            let batches = s.read("busy", 0, next, 64 << 10).await.expect("read");
            for b in &batches {
                assert_eq!(b.base_offset(), next, "contiguous");
                next = b.next_offset();
            }
        }
        reads += 1;
        tokio::task::yield_now().await;
    }
    writer.await.expect("writer");
    assert!(segment_names(&partition_path(&s, "busy", 0).await).len() > 10);
}
