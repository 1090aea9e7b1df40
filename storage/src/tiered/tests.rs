#![allow(clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;

use super::*;
use crate::testsuite::make_batch;
use crate::{EmbeddedStorage, MemoryStorage};

const CACHE: u64 = 4 << 20;

fn tiered(inner: Arc<dyn Storage>) -> (TieredStorage, Arc<InMemory>) {
    let store = Arc::new(InMemory::new());
    (TieredStorage::new(inner, store.clone(), "tier/", CACHE), store)
}

async fn objects(store: &InMemory) -> Vec<String> {
    let listed: Vec<_> = store.list(None).try_collect().await.expect("list");
    listed.into_iter().map(|m| m.location.to_string()).collect()
}

/// A topic on an embedded store with 4 KiB segments, holding `batches` batches of 10 records
/// (timestamps 1000, 2000, ...), and the batches as appended.
async fn filled(dir: &std::path::Path, batches: i64) -> (TieredStorage, Arc<InMemory>, Topic, Vec<Batch>) {
    let inner = EmbeddedStorage::open_with_segment_bytes(dir, false, 4096).expect("open");
    let (tier, store) = tiered(Arc::new(inner));
    let topic = tier.create_topic(TopicSpec { name: "old".into(), partitions: 1, configs: BTreeMap::new() }).await.expect("create");
    let mut sent = Vec::new();
    for i in 0..batches {
        let batch = Batch::parse(make_batch(10, 1000 * (i + 1), None)).expect("batch");
        let outcome = tier.append("old", 0, batch.clone(), None).await.expect("append");
        sent.push(batch.with_base_offset(outcome.base_offset));
    }
    (tier, store, topic, sent)
}

async fn upload_all(tier: &TieredStorage, topic: &Topic) -> usize {
    let mut n = 0;
    while tier.upload_next(topic, 0).await.expect("upload").is_some() {
        n += 1;
    }
    n
}

async fn read_all(tier: &TieredStorage, from: i64) -> Vec<Batch> {
    let end = tier.offsets("old", 0).await.expect("offsets").high_watermark;
    let mut out: Vec<Batch> = Vec::new();
    let mut at = from;
    while at < end {
        let read = tier.read("old", 0, at, 3000).await.expect("read");
        assert!(!read.is_empty(), "nothing read at {at}");
        at = read.last().map(Batch::next_offset).expect("batch");
        out.extend(read);
    }
    out
}

#[tokio::test]
async fn passes_the_conformance_suite_over_memory() {
    let (tier, _) = tiered(Arc::new(MemoryStorage::new()));
    crate::testsuite::run_all(&tier).await;
}

#[tokio::test]
async fn passes_the_conformance_suite_over_embedded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tier, _) = tiered(Arc::new(EmbeddedStorage::open_with_segment_bytes(dir.path(), false, 4096).expect("open")));
    crate::testsuite::run_all(&tier).await;
}

#[tokio::test]
async fn uploaded_data_reads_back_byte_for_byte_after_the_local_log_is_trimmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tier, store, topic, sent) = filled(dir.path(), 60).await;
    let uploaded = upload_all(&tier, &topic).await;
    assert!(uploaded >= 2, "sealed segments were uploaded: {uploaded}");
    let manifest = tier.manifest(&topic, 0, true).await.expect("manifest").expect("exists");
    assert_eq!(manifest.log_start, 0);
    assert_eq!(objects(&store).await.len(), manifest.segments.len());

    let cut = tier.trim_local(&topic, 0, LocalRetention { older_than: Some(i64::MAX), max_bytes: None }).await.expect("trim");
    assert_eq!(cut, Some(manifest.end()), "everything uploaded left the engine, nothing else");
    assert_eq!(tier.inner().offsets("old", 0).await.expect("local").log_start, manifest.end());
    assert_eq!(tier.offsets("old", 0).await.expect("offsets").log_start, 0, "clients still see the whole log");

    let read = read_all(&tier, 0).await;
    assert_eq!(read, sent, "every batch, remote then local, as stored");
    // From the middle of a remote batch: the batch holding it comes first.
    let middle = tier.read("old", 0, 15, 1).await.expect("read");
    assert_eq!(middle, vec![sent[1].clone()]);
    assert!(tier.cached_bytes() > 0);
}

#[tokio::test]
async fn time_lookups_reach_below_the_local_log_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tier, _store, topic, sent) = filled(dir.path(), 60).await;
    upload_all(&tier, &topic).await;
    tier.trim_local(&topic, 0, LocalRetention { older_than: None, max_bytes: Some(0) }).await.expect("trim");
    let local_start = tier.inner().offsets("old", 0).await.expect("local").log_start;
    assert!(local_start > 100, "size retention trimmed the uploaded segments: {local_start}");
    let found = tier.batch_at_time("old", 0, 2500).await.expect("lookup").expect("found");
    assert_eq!(found, sent[2]);
    let found = tier.batch_at_time("old", 0, 1).await.expect("lookup").expect("found");
    assert_eq!(found, sent[0]);
    let last = tier.batch_with_max_timestamp("old", 0).await.expect("lookup").expect("found");
    assert_eq!(last, sent[59]);
}

#[tokio::test]
async fn delete_records_deletes_remote_objects_below_the_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tier, store, topic, sent) = filled(dir.path(), 60).await;
    upload_all(&tier, &topic).await;
    tier.trim_local(&topic, 0, LocalRetention { older_than: Some(i64::MAX), max_bytes: None }).await.expect("trim");
    let before = objects(&store).await.len();
    let first = tier.manifest(&topic, 0, true).await.expect("manifest").expect("exists").segments[0].clone();
    assert_eq!(tier.delete_records("old", 0, first.end + 5).await.expect("delete"), first.end + 5);
    assert_eq!(objects(&store).await.len(), before - 1, "the first object went");
    assert_eq!(tier.offsets("old", 0).await.expect("offsets").log_start, first.end + 5);
    assert!(matches!(tier.read("old", 0, 0, 100).await, Err(StorageError::OffsetOutOfRange { .. })));
    let read = read_all(&tier, first.end + 5).await;
    assert_eq!(read.first().map(Batch::base_offset), Some(first.end), "the batch holding the log start");
    assert_eq!(read.last(), sent.last());
}

#[tokio::test]
async fn size_retention_counts_remote_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tier, _store, topic, _) = filled(dir.path(), 60).await;
    upload_all(&tier, &topic).await;
    tier.trim_local(&topic, 0, LocalRetention { older_than: Some(i64::MAX), max_bytes: None }).await.expect("trim");
    let manifest = tier.manifest(&topic, 0, true).await.expect("manifest").expect("exists");
    let local = tier.inner().partition_size("old", 0).await.expect("size").expect("known");
    let keep = local + manifest.bytes() - manifest.segments[0].bytes;
    assert_eq!(tier.retention_cut_for_bytes("old", 0, keep).await.expect("cut"), Some(manifest.segments[0].end));
    assert_eq!(tier.retention_cut_for_bytes("old", 0, local + manifest.bytes()).await.expect("cut"), None);
}

#[tokio::test]
async fn deleting_the_topic_deletes_its_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tier, store, topic, _) = filled(dir.path(), 30).await;
    upload_all(&tier, &topic).await;
    assert!(!objects(&store).await.is_empty());
    tier.delete_topic("old").await.expect("delete");
    assert!(objects(&store).await.is_empty());
    assert!(tier.inner().document(manifest::KIND, &manifest::key(topic.id, 0)).await.expect("doc").is_none());
}

#[tokio::test]
async fn a_missing_or_damaged_object_is_an_error_never_other_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tier, store, topic, _) = filled(dir.path(), 60).await;
    upload_all(&tier, &topic).await;
    tier.trim_local(&topic, 0, LocalRetention { older_than: Some(i64::MAX), max_bytes: None }).await.expect("trim");
    let manifest = tier.manifest(&topic, 0, true).await.expect("manifest").expect("exists");
    let (first, second) = (&manifest.segments[0], &manifest.segments[1]);
    store.delete(&Path::from(first.object.as_str())).await.expect("delete");
    let err = tier.read("old", 0, 0, 100).await.expect_err("missing");
    assert!(matches!(&err, StorageError::Remote(m) if m.contains("missing")), "{err}");
    // A byte flipped inside a batch fails its CRC.
    let mut bytes = store.get(&Path::from(second.object.as_str())).await.expect("get").bytes().await.expect("bytes").to_vec();
    bytes[100] ^= 0xff;
    store.put(&Path::from(second.object.as_str()), bytes.into()).await.expect("put");
    let err = tier.read("old", 0, second.start, 100).await.expect_err("corrupt");
    assert!(matches!(&err, StorageError::Corrupt(m) if m.contains("CRC") || m.contains("crc")), "{err}");
}

#[tokio::test]
async fn uploads_resume_without_duplicates_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tier, store, topic, sent) = filled(dir.path(), 60).await;
    assert!(tier.upload_next(&topic, 0).await.expect("upload").is_some());
    // A crash between an object's upload and its manifest entry leaves the object alone.
    let manifest = tier.manifest(&topic, 0, true).await.expect("manifest").expect("exists");
    drop(tier);
    let inner = EmbeddedStorage::open_with_segment_bytes(dir.path(), false, 4096).expect("reopen");
    let tier = TieredStorage::new(Arc::new(inner), store.clone(), "tier/", CACHE);
    assert_eq!(tier.manifest(&topic, 0, false).await.expect("manifest").expect("exists"), manifest);
    upload_all(&tier, &topic).await;
    let manifest = tier.manifest(&topic, 0, true).await.expect("manifest").expect("exists");
    for pair in manifest.segments.windows(2) {
        assert_eq!(pair[0].end, pair[1].start, "back to back, no overlap");
    }
    assert_eq!(objects(&store).await.len(), manifest.segments.len());
    tier.trim_local(&topic, 0, LocalRetention { older_than: Some(i64::MAX), max_bytes: None }).await.expect("trim");
    assert_eq!(read_all(&tier, 0).await, sent);
}

#[tokio::test]
async fn uploads_start_at_a_log_start_moved_before_the_first_upload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tier, store, topic, sent) = filled(dir.path(), 60).await;
    assert_eq!(tier.delete_records("old", 0, 105).await.expect("delete"), 105);
    upload_all(&tier, &topic).await;
    let manifest = tier.manifest(&topic, 0, true).await.expect("manifest").expect("exists");
    assert_eq!(manifest.log_start, 105);
    assert_eq!(manifest.segments[0].start, 100, "the object starts with the batch the log start cuts through");
    assert_eq!(objects(&store).await.len(), manifest.segments.len());
    tier.trim_local(&topic, 0, LocalRetention { older_than: Some(i64::MAX), max_bytes: None }).await.expect("trim");
    assert_eq!(read_all(&tier, 105).await, sent[10..].to_vec());
}
