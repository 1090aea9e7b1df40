//! The conformance suite on every engine, plus what only a persistent engine can show.

use ductstream_storage::{testsuite, Batch, MemoryStorage, SledStorage, Storage, TopicSpec};

#[tokio::test]
async fn memory_engine_passes_the_suite() {
    testsuite::run_all(&MemoryStorage::new()).await;
}

#[tokio::test]
async fn sled_engine_passes_the_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = SledStorage::open(dir.path()).expect("open");
    testsuite::run_all(&storage).await;
}

#[tokio::test]
async fn sled_with_fsync_passes_the_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = SledStorage::open_with_fsync(dir.path(), true).expect("open");
    testsuite::run_all(&storage).await;
}

#[tokio::test]
async fn sled_keeps_everything_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first_id;
    {
        let s = SledStorage::open(dir.path()).expect("open");
        s.create_topic(TopicSpec { name: "kept".into(), partitions: 2, configs: Default::default() })
            .await
            .expect("create");
        for ts in [10, 5, 20] {
            let batch = Batch::parse(testsuite::make_batch(3, ts, None)).expect("valid");
            s.append("kept", 1, batch, None).await.expect("append");
        }
        s.delete_records("kept", 1, 4).await.expect("trim");
        first_id = s.next_producer_id().await.expect("id");
        s.sync().await.expect("sync");
    }
    let s = SledStorage::open(dir.path()).expect("reopen");
    let topic = s.topic("kept").await.expect("topic").expect("still there");
    assert_eq!(topic.partitions, 2);
    let offsets = s.offsets("kept", 1).await.expect("offsets");
    assert_eq!((offsets.log_start, offsets.high_watermark), (4, 9));
    let next = s.append("kept", 1, Batch::parse(testsuite::make_batch(1, 1, None)).expect("valid"), None).await.expect("append");
    assert_eq!(next.base_offset, 9, "offsets continue after a reopen");
    let max = s.batch_with_max_timestamp("kept", 1).await.expect("max").map(|b| b.base_offset());
    assert_eq!(max, Some(6));
    assert!(s.next_producer_id().await.expect("id") > first_id, "producer ids never repeat across restarts");
}
