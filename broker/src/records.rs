//! Looking inside a stored batch: decompression and the per-record offset and timestamp.
//!
//! The produce and fetch paths never do this; only lookups by time need it.

use std::io::Read;

use bytes::{Buf, Bytes};
use ductstream_storage::{Batch, Compression};

use crate::{BrokerError, Result};

/// The offset and timestamp of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPosition {
    pub offset: i64,
    pub timestamp: i64,
}

/// Every record's offset and timestamp, in order.
pub fn positions(batch: &Batch) -> Result<Vec<RecordPosition>> {
    let codec = batch.compression().map_err(|e| BrokerError::Decode(e.to_string()))?;
    let mut records = decompress(codec, batch.records())?;
    let mut out = Vec::with_capacity(batch.record_count().max(0) as usize);
    for _ in 0..batch.record_count() {
        let length = usize::try_from(varint(&mut records)?).map_err(|_| corrupt("negative record length"))?;
        if length > records.len() {
            return Err(corrupt("record runs past the end of its batch"));
        }
        let mut record = records.split_to(length);
        if !record.has_remaining() {
            return Err(corrupt("empty record"));
        }
        record.advance(1); // attributes
        let timestamp_delta = varint(&mut record)?;
        let offset_delta = varint(&mut record)?;
        let timestamp = if batch.is_log_append_time() {
            batch.max_timestamp()
        } else {
            batch.base_timestamp() + timestamp_delta
        };
        out.push(RecordPosition { offset: batch.base_offset() + offset_delta, timestamp });
    }
    Ok(out)
}

/// The first record at or after `timestamp`.
pub fn first_at_or_after(batch: &Batch, timestamp: i64) -> Result<Option<RecordPosition>> {
    Ok(positions(batch)?.into_iter().find(|r| r.timestamp >= timestamp))
}

/// The first record holding the batch's largest timestamp.
pub fn max_timestamp(batch: &Batch) -> Result<Option<RecordPosition>> {
    let positions = positions(batch)?;
    let max = positions.iter().map(|r| r.timestamp).max();
    Ok(max.and_then(|m| positions.into_iter().find(|r| r.timestamp == m)))
}

/// Xerial's framing around snappy blocks, as Kafka's Java clients write it.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";

pub fn decompress(codec: Compression, data: Bytes) -> Result<Bytes> {
    let mut out = Vec::new();
    match codec {
        Compression::None => return Ok(data),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(&data[..]).read_to_end(&mut out).map_err(|e| corrupt(&format!("gzip: {e}")))?;
        }
        Compression::Lz4 => {
            lz4_flex::frame::FrameDecoder::new(&data[..]).read_to_end(&mut out).map_err(|e| corrupt(&format!("lz4: {e}")))?;
        }
        Compression::Zstd => {
            out = zstd::stream::decode_all(&data[..]).map_err(|e| corrupt(&format!("zstd: {e}")))?;
        }
        Compression::Snappy => {
            if data.starts_with(XERIAL_MAGIC) {
                // magic, then version and compatible version (4 bytes each), then blocks
                let mut rest = data.slice((XERIAL_MAGIC.len() + 8).min(data.len())..);
                while rest.remaining() >= 4 {
                    let len = rest.get_u32() as usize;
                    if len > rest.len() {
                        return Err(corrupt("snappy block runs past the end"));
                    }
                    let block = rest.split_to(len);
                    out.extend(snap::raw::Decoder::new().decompress_vec(&block).map_err(|e| corrupt(&format!("snappy: {e}")))?);
                }
            } else {
                out = snap::raw::Decoder::new().decompress_vec(&data).map_err(|e| corrupt(&format!("snappy: {e}")))?;
            }
        }
    }
    Ok(Bytes::from(out))
}

/// A zigzag varint, as record fields are written.
fn varint(buf: &mut Bytes) -> Result<i64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        if !buf.has_remaining() {
            return Err(corrupt("record ends inside a varint"));
        }
        let byte = buf.get_u8();
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    Err(corrupt("varint longer than 10 bytes"))
}

fn corrupt(what: &str) -> BrokerError {
    BrokerError::Decode(format!("corrupt record batch: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ductstream_storage::testsuite::make_batch;

    #[test]
    fn reads_offsets_and_timestamps() {
        let batch = Batch::parse(make_batch(3, 1000, None)).expect("valid").with_base_offset(10);
        let p = positions(&batch).expect("decodes");
        assert_eq!(p, vec![
            RecordPosition { offset: 10, timestamp: 1000 },
            RecordPosition { offset: 11, timestamp: 1001 },
            RecordPosition { offset: 12, timestamp: 1002 },
        ]);
        assert_eq!(first_at_or_after(&batch, 1001).expect("ok").map(|r| r.offset), Some(11));
        assert_eq!(max_timestamp(&batch).expect("ok").map(|r| r.offset), Some(12));
    }
}
