//! Rewriting a range of batches without the records compaction drops, keeping every offset
//! where it was.
//!
//! A batch that keeps all its records stays byte for byte. One that keeps some is written
//! again with those records (their encodings copied, compressed as the batch was) under the
//! same header, so its base and last offsets do not move: the shape Kafka's cleaner leaves.
//! One that keeps none gives its offsets to the batch before it, whose last offset grows over
//! them (as Kafka's does when a batch's last records are cleaned away); when there is no such
//! batch (the range starts there, or a transaction marker comes before), an empty batch keeps
//! its offsets. The range thus stays tiled with batches back to back, which every engine and
//! every reader relies on, and clients see only shapes Kafka itself produces.

use ductstream_storage::{Batch, Compression};

use crate::records::{self, RawRecord};
use crate::{BrokerError, Result};

/// The batches of a range with only the records `keep` keeps. Transaction markers (control
/// batches) are kept whole.
pub fn rewrite(batches: &[Batch], mut keep: impl FnMut(&Batch, &RawRecord) -> bool) -> Result<Vec<Batch>> {
    let mut out: Vec<Batch> = Vec::with_capacity(batches.len());
    for batch in batches {
        if batch.is_control() {
            out.push(batch.clone());
            continue;
        }
        let all = records::raw_records(batch)?;
        let kept: Vec<&RawRecord> = all.iter().filter(|r| keep(batch, r)).collect();
        if !kept.is_empty() && kept.len() == all.len() {
            out.push(batch.clone());
        } else if !kept.is_empty() {
            out.push(with_only(batch, &kept)?);
        } else {
            give_offsets_away(&mut out, batch)?;
        }
    }
    Ok(out)
}

/// `batch` holding only `kept`, compressed as it was.
fn with_only(batch: &Batch, kept: &[&RawRecord]) -> Result<Batch> {
    let codec = batch.compression().map_err(|e| BrokerError::Decode(e.to_string()))?;
    let mut body = Vec::with_capacity(kept.iter().map(|r| r.bytes.len()).sum());
    for record in kept {
        body.extend_from_slice(&record.bytes);
    }
    let records = records::compress(codec, &body)?;
    let count = i32::try_from(kept.len()).map_err(|_| BrokerError::Decode("too many records in a batch".into()))?;
    batch.with_records(&records, count, codec, batch.last_offset_delta()).map_err(|e| BrokerError::Decode(e.to_string()))
}

/// Hands the offsets of `emptied`, whose records all went, to the batch before it, or to an
/// empty batch in its place.
fn give_offsets_away(out: &mut Vec<Batch>, emptied: &Batch) -> Result<()> {
    let decode = |e: ductstream_storage::BatchError| BrokerError::Decode(e.to_string());
    if let Some(previous) = out.last_mut().filter(|p| !p.is_control() && p.next_offset() == emptied.base_offset())
        && let Ok(delta) = i32::try_from(emptied.last_offset() - previous.base_offset())
    {
        let codec = previous.compression().map_err(decode)?;
        *previous = previous.with_records(&previous.records(), previous.record_count(), codec, delta).map_err(decode)?;
        return Ok(());
    }
    out.push(emptied.with_records(&[], 0, Compression::None, emptied.last_offset_delta()).map_err(decode)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;
    use crate::batch_builder::transaction_marker;
    use ductstream_storage::testsuite::make_batch;

    /// Three records keyed k0, k1, k2 at `base`.
    fn three(base: i64) -> Batch {
        Batch::parse(make_batch(3, 1000, None)).expect("valid").with_base_offset(base)
    }

    fn offsets(batch: &Batch) -> Vec<i64> {
        records::raw_records(batch).expect("decodes").iter().map(|r| r.offset).collect()
    }

    #[test]
    fn untouched_batches_stay_byte_for_byte() {
        let batches = vec![three(0), three(3)];
        assert_eq!(rewrite(&batches, |_, _| true).expect("rewrite"), batches);
    }

    #[test]
    fn emptied_batches_give_their_offsets_to_the_batch_before() {
        // Keep only offsets 1 and 8: the first batch keeps one record, the second goes to it,
        // the third keeps one.
        let batches = vec![three(0), three(3), three(6)];
        let out = rewrite(&batches, |_, r| r.offset == 1 || r.offset == 8).expect("rewrite");
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].base_offset(), out[0].next_offset(), out[0].record_count()), (0, 6, 1));
        assert_eq!(offsets(&out[0]), vec![1]);
        assert_eq!((out[1].base_offset(), out[1].next_offset(), offsets(&out[1])), (6, 9, vec![8]));
        for batch in &out {
            Batch::parse_stored(batch.bytes().clone()).expect("a valid stored batch, CRC included");
        }
    }

    #[test]
    fn a_range_that_loses_everything_is_one_empty_batch() {
        let out = rewrite(&[three(10), three(13)], |_, _| false).expect("rewrite");
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].base_offset(), out[0].next_offset(), out[0].record_count()), (10, 16, 0));
    }

    #[test]
    fn markers_stay_and_never_take_offsets() {
        let marker = transaction_marker(7, 0, true, 5).expect("marker").with_base_offset(3);
        let out = rewrite(&[three(0), marker.clone(), three(4)], |_, r| r.offset < 3).expect("rewrite");
        assert_eq!(out.len(), 3);
        assert_eq!(out[1], marker);
        assert_eq!((out[2].base_offset(), out[2].next_offset(), out[2].record_count()), (4, 7, 0));
    }

    #[test]
    fn compressed_batches_are_compressed_again_with_their_codec() {
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let plain = three(0);
            let packed = records::compress(codec, &plain.records()).expect("compress");
            let batch = plain.with_records(&packed, 3, codec, 2).expect("compressed batch");
            let out = rewrite(std::slice::from_ref(&batch), |_, r| r.offset == 2).expect("rewrite");
            assert_eq!(out[0].compression(), Ok(codec));
            let kept = records::raw_records(&out[0]).expect("decodes");
            assert_eq!(kept.iter().map(|r| (r.offset, r.key.clone())).collect::<Vec<_>>(), vec![(2, Some("k2".into()))], "{codec:?}");
            assert_eq!(out[0].next_offset(), 3);
        }
    }
}
