//! Behaviour only this engine has: rolling, file deletion, recovery and on-disk leftovers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::testsuite::make_batch;
use self::segment_index::SegmentIndex;
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
    names_ending(dir, ".log")
}

fn index_names(dir: &Path) -> Vec<String> {
    names_ending(dir, ".index")
}

fn names_ending(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

async fn partition_path(s: &EmbeddedStorage, topic: &str, partition: i32) -> PathBuf {
    let id = s.topic(topic).await.expect("topic").expect("exists").id;
    partition_dir(&s.engine.dir, id, partition)
}

fn bases(batches: &[Batch]) -> Vec<i64> {
    batches.iter().map(Batch::base_offset).collect()
}

#[tokio::test]
async fn rolls_segments_and_reads_across_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("open");
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
    let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("reopen");
    assert_eq!(bases(&s.read("roll", 0, 0, 1 << 20).await.expect("read")), bases(&all));
    assert_eq!(s.append("roll", 0, batch(1, 0), None).await.expect("append").base_offset, 50);
}

#[tokio::test]
async fn delete_records_removes_whole_segments_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), true, SMALL).expect("open");
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
    assert!(!path.join("00000000000000000000.index").exists(), "their indexes too");
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
    let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), true, SMALL).expect("reopen");
    let offsets = s.offsets("trim", 0).await.expect("offsets");
    assert_eq!((offsets.log_start, offsets.high_watermark), (30, 31));
    assert_eq!(bases(&s.read("trim", 0, 30, 1 << 20).await.expect("read")), vec![30]);
}

#[tokio::test]
async fn producers_survive_deleted_segments_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("open");
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

    let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("reopen");
    assert_eq!(s.producers("idem", 0).await.expect("producers"), vec![state.clone()]);
    assert_eq!(state.batches.len(), PRODUCER_BATCHES_KEPT);
}

#[tokio::test]
async fn damage_before_the_end_cuts_the_log_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("open");
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

    let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("reopen");
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
        let s = EmbeddedStorage::open(dir.path(), false).expect("open");
        s.create_topic(spec("gap", 1)).await.expect("create");
        s.append("gap", 0, batch(5, 0), None).await.expect("append");
        partition_path(&s, "gap", 0).await
    };
    // As after a power loss that kept the log start but not the batches below it.
    {
        let s = EmbeddedStorage::open(dir.path(), false).expect("reopen");
        let id = s.topic("gap").await.expect("topic").expect("exists").id;
        s.engine.shared.catalog.save_log_start(id, 0, 20, None).expect("log start");
        s.engine.shared.catalog.flush().expect("flush");
    }
    assert!(path.is_dir());
    let s = EmbeddedStorage::open(dir.path(), false).expect("reopen");
    let offsets = s.offsets("gap", 0).await.expect("offsets");
    assert_eq!((offsets.log_start, offsets.high_watermark), (20, 20));
    assert_eq!(s.append("gap", 0, batch(2, 0), None).await.expect("append").base_offset, 20);
    drop(s);
    let s = EmbeddedStorage::open(dir.path(), false).expect("reopen");
    assert_eq!(bases(&s.read("gap", 0, 20, 1 << 20).await.expect("read")), vec![20]);
    assert_eq!(s.offsets("gap", 0).await.expect("offsets").high_watermark, 22);
}

#[tokio::test]
async fn folders_follow_the_catalog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (kept, gone) = {
        let s = EmbeddedStorage::open(dir.path(), false).expect("open");
        s.create_topic(spec("kept", 2)).await.expect("create");
        s.create_topic(spec("gone", 1)).await.expect("create");
        s.append("gone", 0, batch(1, 0), None).await.expect("append");
        (partition_path(&s, "kept", 1).await, partition_path(&s, "gone", 0).await)
    };
    std::fs::remove_dir_all(&kept).expect("remove");
    // As if the process died between removing the topic from the catalog and its folders.
    {
        let s = EmbeddedStorage::open(dir.path(), false).expect("reopen");
        let topic = s.topic("gone").await.expect("topic").expect("exists");
        s.engine.shared.catalog.remove_topic(&topic).expect("remove");
        s.engine.shared.catalog.flush().expect("flush");
    }

    let s = EmbeddedStorage::open(dir.path(), false).expect("reopen");
    assert!(kept.is_dir(), "missing partition folder recreated");
    assert!(!gone.exists(), "folder of an unknown topic removed");
    assert_eq!(s.offsets("kept", 1).await.expect("offsets").high_watermark, 0);
    assert!(s.topic("gone").await.expect("topic").is_none());
}

#[tokio::test]
async fn delete_topic_removes_its_folders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedStorage::open(dir.path(), true).expect("open");
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
    let s = EmbeddedStorage::open(dir.path(), false).expect("open");
    assert!(matches!(EmbeddedStorage::open(dir.path(), false), Err(StorageError::Engine(_))));
    drop(s);
    EmbeddedStorage::open(dir.path(), false).expect("reopen after the first closed");
}

#[tokio::test]
async fn sync_fsyncs_what_was_written_since_the_last_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedStorage::open(dir.path(), true).expect("open");
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
    let s = EmbeddedStorage::open(lazy.path(), false).expect("open");
    s.create_topic(spec("lazy", 1)).await.expect("create");
    s.append("lazy", 0, batch(1, 0), None).await.expect("append");
    assert_eq!(s.engine.shared.dirty.pending(), 0, "nothing tracked without fsync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_whole_contiguous_batches_while_appends_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Arc::new(EmbeddedStorage::open_with_segment_bytes(dir.path(), false, 4096).expect("open"));
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


fn open_partition_handle(s: &EmbeddedStorage, topic: &str) -> Arc<Partition> {
    s.engine.partition(topic, 0).expect("partition")
}

#[tokio::test]
async fn sealed_segments_open_from_their_index_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("open");
    s.create_topic(spec("indexed", 1)).await.expect("create");
    for i in 0..10 {
        s.append("indexed", 0, batch(5, i * 10), None).await.expect("append");
    }
    let path = partition_path(&s, "indexed", 0).await;
    let (segments, indexes) = (segment_names(&path), index_names(&path));
    assert_eq!(indexes.len(), segments.len() - 1, "every sealed segment has its index: {indexes:?}");
    let before: Vec<SegmentIndex> = open_partition_handle(&s, "indexed").lock().expect("lock").segments.iter().map(|g| g.index.clone()).collect();
    drop(s);

    let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("reopen");
    let after: Vec<SegmentIndex> = open_partition_handle(&s, "indexed").lock().expect("lock").segments.iter().map(|g| g.index.clone()).collect();
    assert_eq!(after, before, "indexes read back as they were built");
    assert_eq!(bases(&s.read("indexed", 0, 0, 1 << 20).await.expect("read")), (0..10).map(|i| i * 5).collect::<Vec<_>>());
    assert_eq!(s.batch_at_time("indexed", 0, 45).await.expect("time").map(|b| b.base_offset()), Some(25), "max timestamps are ts + 4");
    assert_eq!(s.batch_with_max_timestamp("indexed", 0).await.expect("max").map(|b| b.base_offset()), Some(45));
}

#[tokio::test]
async fn a_damaged_index_or_a_cut_sealed_segment_is_scanned_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = {
        let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("open");
        s.create_topic(spec("scan", 1)).await.expect("create");
        for _ in 0..8 {
            s.append("scan", 0, batch(5, 0), None).await.expect("append");
        }
        partition_path(&s, "scan", 0).await
    };
    let indexes = index_names(&path);
    // A flipped byte in the first index; the second segment cut by 10 bytes.
    let first = path.join(&indexes[0]);
    let mut bytes = std::fs::read(&first).expect("read");
    bytes[20] ^= 0x01;
    std::fs::write(&first, &bytes).expect("write");
    let second = path.join(&segment_names(&path)[1]);
    let len = std::fs::metadata(&second).expect("meta").len();
    std::fs::OpenOptions::new().write(true).open(&second).expect("open").set_len(len - 10).expect("cut");

    let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("reopen");
    let hw = s.offsets("scan", 0).await.expect("offsets").high_watermark;
    let read = s.read("scan", 0, 0, 1 << 20).await.expect("read");
    assert_eq!(read.last().map(Batch::next_offset), Some(hw), "the log ends at the cut, contiguous");
    assert_eq!(hw, 15, "first segment whole, the second cut after its first batch");
    assert_eq!(std::fs::read(&first).expect("rewritten").len(), bytes.len(), "the damaged index was written anew");
    assert!(segment_index::decode(&std::fs::read(&first).expect("read")).is_ok());
}

#[tokio::test]
async fn the_index_stays_sparse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedStorage::open(dir.path(), false).expect("open");
    s.create_topic(spec("tiny", 1)).await.expect("create");
    for i in 0..2000 {
        s.append("tiny", 0, batch(1, i), None).await.expect("append");
    }
    let p = open_partition_handle(&s, "tiny");
    let (entries, size) = {
        let st = p.lock().expect("lock");
        (st.segments.iter().map(|g| g.index.entries.len()).sum::<usize>(), st.segments.iter().map(|g| g.size).sum::<u64>())
    };
    assert!(entries as u64 <= size / segment_index::INDEX_INTERVAL_BYTES + 1, "{entries} entries for {size} bytes");
    for offset in [0, 1, 777, 1998, 1999] {
        let got = s.read("tiny", 0, offset, 1).await.expect("read");
        assert_eq!(bases(&got), vec![offset], "one batch at {offset}");
    }
    assert_eq!(s.batch_at_time("tiny", 0, 1500).await.expect("time").map(|b| b.base_offset()), Some(1500));
}

#[tokio::test]
async fn segment_ms_and_segment_bytes_of_the_topic_roll_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedStorage::open(dir.path(), false).expect("open");
    let configs = BTreeMap::from([("segment.ms".to_string(), "1".to_string())]);
    s.create_topic(TopicSpec { name: "timed".into(), partitions: 1, configs }).await.expect("create");
    for _ in 0..3 {
        s.append("timed", 0, batch(1, 0), None).await.expect("append");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(segment_names(&partition_path(&s, "timed", 0).await).len(), 3, "a segment per append");

    s.create_topic(spec("sized", 1)).await.expect("create");
    s.set_topic_configs("sized", BTreeMap::from([("segment.bytes".to_string(), "250".to_string())])).await.expect("configs");
    for _ in 0..6 {
        s.append("sized", 0, batch(5, 0), None).await.expect("append");
    }
    assert_eq!(segment_names(&partition_path(&s, "sized", 0).await).len(), 3, "two 116-byte batches a segment");
}

#[tokio::test]
async fn a_store_of_the_earlier_segment_layout_is_imported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = uuid::Uuid::new_v4();
    let topic = Topic { id, name: "old".into(), partitions: 1, configs: BTreeMap::new() };
    let folder = partition_dir(dir.path(), id, 0);
    std::fs::create_dir_all(&folder).expect("mkdir");
    let mut log = Vec::new();
    let mut state = ProducerState { producer_id: 3, epoch: 0, batches: Vec::new() };
    for i in 0..4 {
        let b = Batch::parse(make_batch(2, 0, Some((3, 0, i * 2)))).expect("valid").with_base_offset(i as i64 * 2);
        state.remember(ProducerBatch { first_sequence: i * 2, last_sequence: i * 2 + 1, base_offset: i as i64 * 2 });
        log.extend_from_slice(b.bytes());
    }
    std::fs::write(folder.join("00000000000000000000.log"), &log).expect("segment");
    std::fs::write(folder.join("log-start"), "2").expect("log start");
    std::fs::write(dir.path().join("topics.json"), serde_json::json!({"version": 1, "topics": [topic]}).to_string()).expect("topics");
    let group = crate::testsuite::sample_group("g", 3, 1);
    std::fs::write(dir.path().join("groups.json"), serde_json::to_vec(&vec![&group]).expect("json")).expect("groups");
    let offset = crate::testsuite::sample_offset("old", 0, 6);
    std::fs::write(dir.path().join("offsets.json"), serde_json::json!({"g": [offset]}).to_string()).expect("offsets");
    std::fs::write(dir.path().join("producer-ids"), "2000").expect("ids");
    let docs = dir.path().join("documents").join("6b").join("6131"); // kind "k", key "a1"
    std::fs::create_dir_all(docs.parent().expect("parent")).expect("mkdir");
    std::fs::write(&docs, b"{}").expect("doc");

    let s = EmbeddedStorage::open(dir.path(), false).expect("open imports");
    let offsets = s.offsets("old", 0).await.expect("offsets");
    assert_eq!((offsets.log_start, offsets.high_watermark), (2, 8));
    assert_eq!(bases(&s.read("old", 0, 2, 1 << 20).await.expect("read")), vec![2, 4, 6]);
    assert_eq!(s.producers("old", 0).await.expect("producers"), vec![state]);
    assert_eq!(s.load_groups().await.expect("groups"), vec![group]);
    assert_eq!(s.committed_offsets("g").await.expect("offsets"), vec![offset]);
    assert_eq!(s.document("k", "a1").await.expect("doc"), Some(b"{}".to_vec()));
    assert!(s.next_producer_id().await.expect("id") >= 2000, "ids of the earlier store are not handed out again");
    for gone in ["topics.json", "groups.json", "offsets.json", "producer-ids", "documents"] {
        assert!(!dir.path().join(gone).exists(), "{gone} imported and removed");
    }
    assert!(!folder.join("log-start").exists());
}

#[tokio::test]
async fn a_store_of_the_earlier_sled_engine_is_imported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = uuid::Uuid::new_v4();
    let topic = Topic { id, name: "sledded".into(), partitions: 2, configs: BTreeMap::new() };
    let group = crate::testsuite::sample_group("g", 1, 1);
    let offset = crate::testsuite::sample_offset("sledded", 1, 3);
    let state = ProducerState { producer_id: 0, epoch: 0, batches: vec![ProducerBatch { first_sequence: 0, last_sequence: 2, base_offset: 3 }] };
    {
        let old = sled::Config::new().path(dir.path()).open().expect("old sled");
        old.open_tree("topics").expect("tree").insert("sledded", serde_json::to_vec(&topic).expect("json")).expect("topic");
        let tree = old.open_tree(format!("partition/{id}/1")).expect("tree");
        for base in [0i64, 3, 6] {
            let b = Batch::parse(make_batch(3, base, None)).expect("valid").with_base_offset(base);
            let mut key = vec![b'b'];
            key.extend_from_slice(&(base as u64).to_be_bytes());
            tree.insert(key, b.bytes().as_ref()).expect("batch");
        }
        tree.insert(b"s", &3u64.to_be_bytes()).expect("log start");
        let mut key = vec![b'p'];
        key.extend_from_slice(&0u64.to_be_bytes());
        tree.insert(key, serde_json::to_vec(&state).expect("json")).expect("producer");
        old.open_tree("groups").expect("tree").insert("g", serde_json::to_vec(&group).expect("json")).expect("group");
        let mut key = b"g\0sledded\0".to_vec();
        key.extend_from_slice(&1i32.to_be_bytes());
        old.open_tree("offsets").expect("tree").insert(key, serde_json::to_vec(&offset).expect("json")).expect("offset");
        old.open_tree("documents").expect("tree").insert(b"flows\0f1", b"{\"id\":\"f1\"}".as_ref()).expect("doc");
        for _ in 0..5 {
            old.generate_id().expect("id");
        }
        old.flush().expect("flush");
    }
    let s = reopen_after_sled(dir.path()).await;
    let offsets = s.offsets("sledded", 1).await.expect("offsets");
    assert_eq!((offsets.log_start, offsets.high_watermark), (3, 9));
    assert_eq!(bases(&s.read("sledded", 1, 3, 1 << 20).await.expect("read")), vec![3, 6]);
    assert_eq!(s.offsets("sledded", 0).await.expect("offsets").high_watermark, 0);
    assert_eq!(s.producers("sledded", 1).await.expect("producers"), vec![state]);
    assert_eq!(s.load_groups().await.expect("groups"), vec![group]);
    assert_eq!(s.committed_offsets("g").await.expect("offsets"), vec![offset]);
    assert_eq!(s.documents("flows").await.expect("docs"), vec![("f1".to_string(), b"{\"id\":\"f1\"}".to_vec())]);
    assert!(s.next_producer_id().await.expect("id") > 4, "sled's earlier ids are not handed out again");
    assert!(!dir.path().join("conf").exists() && dir.path().join("sled-imported").join("conf").exists(), "sled's files set aside");
    assert_eq!(s.append("sledded", 1, batch(1, 0), None).await.expect("append").base_offset, 9);
}

/// sled releases its lock from a background thread after the last handle drops.
async fn reopen_after_sled(dir: &Path) -> EmbeddedStorage {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match EmbeddedStorage::open(dir, false) {
            Ok(s) => return s,
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("lock") => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("open: {e}"),
        }
    }
}

#[tokio::test]
async fn a_damaged_catalog_is_refused_with_a_clear_message() {
    for damage in ["garbage over the log", "the log cut to nothing", "its config gone"] {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = EmbeddedStorage::open(dir.path(), false).expect("open");
            s.create_topic(spec("kept", 1)).await.expect("create");
            s.commit_offsets("g", vec![crate::testsuite::sample_offset("kept", 0, 1)]).await.expect("commit");
            // As after a checkpoint: everything in sled, the journal empty.
            s.engine.shared.catalog.flush().expect("flush");
            s.engine.shared.catalog.truncate_journal().expect("truncate");
        }
        let catalog = dir.path().join(catalog::FOLDER);
        match damage {
            "garbage over the log" => {
                let db = catalog.join("db");
                let len = std::fs::metadata(&db).expect("meta").len() as usize;
                std::fs::write(&db, vec![0x5a; len]).expect("garbage");
            }
            "the log cut to nothing" => std::fs::OpenOptions::new().write(true).open(catalog.join("db")).expect("open").set_len(0).expect("cut"),
            _ => std::fs::remove_file(catalog.join("conf")).expect("remove conf"),
        }
        let partitions: Vec<PathBuf> = std::fs::read_dir(dir.path()).expect("dir").map(|e| e.expect("entry").path()).collect();
        match EmbeddedStorage::open(dir.path(), false) {
            Err(e) => assert!(e.to_string().contains("the catalog in") && e.to_string().contains("damaged"), "{damage}: {e}"),
            Ok(s) => {
                // Opening is only fine when nothing was lost.
                assert!(s.topic("kept").await.expect("topic").is_some(), "{damage}: opened without the topic");
                assert_eq!(s.committed_offsets("g").await.expect("offsets").len(), 1, "{damage}: opened without the commit");
            }
        }
        for path in partitions {
            assert!(path.exists(), "{damage}: {} left alone", path.display());
        }
    }
    // The whole catalog gone: the partition folders are not taken for leftovers.
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = EmbeddedStorage::open(dir.path(), false).expect("open");
        s.create_topic(spec("kept", 1)).await.expect("create");
    }
    std::fs::remove_dir_all(dir.path().join(catalog::FOLDER)).expect("remove catalog");
    let err = EmbeddedStorage::open(dir.path(), false).err().expect("refused");
    assert!(err.to_string().contains("no catalog/"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").filter(|e| e.as_ref().expect("entry").path().is_dir()).count(), 2, "partition folder kept");
}

/// Opening reads sealed segments' index files and does not scan them: a flipped byte inside a
/// sealed segment (not its last batch, which the index check reads) goes unnoticed at open,
/// where a scan would have cut the log there. Without the index file, the scan finds it.
#[tokio::test]
async fn sealed_segments_are_not_scanned_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = {
        let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("open");
        s.create_topic(spec("quick", 1)).await.expect("create");
        for _ in 0..8 {
            s.append("quick", 0, batch(5, 0), None).await.expect("append");
        }
        partition_path(&s, "quick", 0).await
    };
    let first = path.join(&segment_names(&path)[0]);
    let mut bytes = std::fs::read(&first).expect("read");
    bytes[70] ^= 0xff; // inside the first of its two batches
    std::fs::write(&first, &bytes).expect("write");

    let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("reopen");
    assert_eq!(s.offsets("quick", 0).await.expect("offsets").high_watermark, 40, "nothing scanned, nothing cut");
    drop(s);
    std::fs::remove_file(path.join(&index_names(&path)[0])).expect("remove index");
    let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("reopen");
    assert_eq!(s.offsets("quick", 0).await.expect("offsets").high_watermark, 0, "scanned: the log ends at the damage");
}

#[tokio::test]
async fn partition_size_is_the_segment_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("open");
    s.create_topic(spec("sized", 1)).await.expect("create");
    assert_eq!(s.partition_size("sized", 0).await.expect("size"), Some(0));
    let mut total = 0;
    for _ in 0..5 {
        let b = batch(5, 0);
        total += b.len() as u64;
        s.append("sized", 0, b, None).await.expect("append");
    }
    assert_eq!(s.partition_size("sized", 0).await.expect("size"), Some(total));
    let path = partition_path(&s, "sized", 0).await;
    let on_disk: u64 = segment_names(&path).iter().map(|n| std::fs::metadata(path.join(n)).expect("meta").len()).sum();
    assert_eq!(on_disk, total);
}

#[tokio::test]
async fn a_compacted_segment_reopens_and_a_cut_off_cleaning_leaves_the_old_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("open");
    s.create_topic(spec("cleaned", 1)).await.expect("create");
    for i in 0..6 {
        s.append("cleaned", 0, batch(5, i), None).await.expect("append");
    }
    let path = partition_path(&s, "cleaned", 0).await;
    let ranges = s.compactable_ranges("cleaned", 0).await.expect("ranges");
    let (first, second) = (ranges[0], ranges[1]);
    let old = s.read("cleaned", 0, first.start, 1).await.expect("read")[0].clone();
    let empty = old.with_records(&[], 0, crate::Compression::None, i32::try_from(first.end - first.start - 1).expect("small")).expect("empty");
    s.replace_range("cleaned", 0, first, vec![empty.clone()]).await.expect("replace");
    let file = path.join(segment_names(&path)[0].clone());
    assert_eq!(std::fs::metadata(&file).expect("segment").len(), empty.len() as u64, "the segment file is the compacted one");
    assert_eq!(index_names(&path).len(), segment_names(&path).len() - 1, "its index was written again");

    // A cleaning cut off before its rename leaves a `.cleaned` file beside a whole segment.
    let second_name = segment_names(&path).into_iter().find(|n| n.starts_with(&format!("{:020}", second.start))).expect("second");
    std::fs::write(path.join(format!("{second_name}.cleaned")), b"half written").expect("leftover");
    drop(s);

    let s = EmbeddedStorage::open_with_segment_bytes(dir.path(), false, SMALL).expect("reopen");
    assert!(names_ending(&path, ".cleaned").is_empty(), "the leftover is removed at open");
    let all = s.read("cleaned", 0, 0, 1 << 20).await.expect("read");
    assert_eq!(all[0].bytes(), empty.bytes());
    assert_eq!(bases(&all[1..]), (1..6).map(|i| i * 5).filter(|b| *b >= first.end).collect::<Vec<_>>());
    assert_eq!(s.offsets("cleaned", 0).await.expect("offsets").high_watermark, 30);
}
