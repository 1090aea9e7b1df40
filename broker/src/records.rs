//! Looking inside a stored batch: decompression and the per-record offset and timestamp.
//!
//! The produce and fetch paths never do this; only lookups by time and durable consumers (which
//! hand out single messages) need it.

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

/// One record, whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// In the order the producer wrote them; a key may repeat.
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl Record {
    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        self.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.as_ref())
    }
}

/// One record as stored, with what compaction decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    /// A null value: the key's tombstone.
    pub is_tombstone: bool,
    /// The record's encoding, its length prefix included: copied as it is into a rewritten
    /// batch with the same base offset.
    pub bytes: Bytes,
}

/// Room to reserve for a batch's records: its count, as the producer stated it, but never
/// more than its bytes (a record takes several), so a stated count of 2^31 in a small batch
/// does not reserve gigabytes (a failed reservation aborts the process).
fn expected_records(batch: &Batch) -> usize {
    (batch.record_count().max(0) as usize).min(batch.len())
}

/// Every record of the batch as stored, in order.
pub fn raw_records(batch: &Batch) -> Result<Vec<RawRecord>> {
    let mut out = Vec::with_capacity(expected_records(batch));
    each_record_raw(batch, |RecordPosition { offset, timestamp }, rest, bytes| {
        let key = bytes_field(rest)?;
        let value_length = varint(rest)?;
        out.push(RawRecord { offset, timestamp, key, is_tombstone: value_length < 0, bytes: bytes.clone() });
        Ok(())
    })?;
    Ok(out)
}

/// Every record's offset and timestamp, in order.
pub fn positions(batch: &Batch) -> Result<Vec<RecordPosition>> {
    let mut out = Vec::with_capacity(expected_records(batch));
    each_record(batch, |position, _| {
        out.push(position);
        Ok(())
    })?;
    Ok(out)
}

/// Every record of the batch, in order.
pub fn decode(batch: &Batch) -> Result<Vec<Record>> {
    let mut out = Vec::with_capacity(expected_records(batch));
    each_record(batch, |RecordPosition { offset, timestamp }, rest| {
        let key = bytes_field(rest)?;
        let value = bytes_field(rest)?;
        let count = varint(rest)?;
        let mut headers = Vec::with_capacity(count.clamp(0, 64) as usize);
        for _ in 0..count {
            let name = bytes_field(rest)?.ok_or_else(|| corrupt("header without a name"))?;
            let name = String::from_utf8(name.to_vec()).map_err(|_| corrupt("header name is not UTF-8"))?;
            headers.push((name, bytes_field(rest)?));
        }
        out.push(Record { offset, timestamp, key, value, headers });
        Ok(())
    })?;
    Ok(out)
}

/// Walks the records, handing each one's position and its fields after the offset delta.
fn each_record(batch: &Batch, mut f: impl FnMut(RecordPosition, &mut Bytes) -> Result<()>) -> Result<()> {
    each_record_raw(batch, |position, rest, _| f(position, rest))
}

/// [`each_record`], also handing each record's whole encoding.
fn each_record_raw(batch: &Batch, mut f: impl FnMut(RecordPosition, &mut Bytes, &Bytes) -> Result<()>) -> Result<()> {
    let codec = batch.compression().map_err(|e| BrokerError::Decode(e.to_string()))?;
    let mut records = decompress(codec, batch.records())?;
    for _ in 0..batch.record_count() {
        let before = records.clone();
        let length = usize::try_from(varint(&mut records)?).map_err(|_| corrupt("negative record length"))?;
        if length > records.len() {
            return Err(corrupt("record runs past the end of its batch"));
        }
        let whole = before.slice(..before.len() - records.len() + length);
        let mut record = records.split_to(length);
        if !record.has_remaining() {
            return Err(corrupt("empty record"));
        }
        record.advance(1); // attributes
        let timestamp_delta = varint(&mut record)?;
        let offset_delta = varint(&mut record)?;
        // The deltas are the producer's: a sum past i64 is a corrupt record, not a panic.
        let timestamp = if batch.is_log_append_time() {
            batch.max_timestamp()
        } else {
            batch.base_timestamp().checked_add(timestamp_delta).ok_or_else(|| corrupt("timestamp delta out of range"))?
        };
        let offset = batch.base_offset().checked_add(offset_delta).ok_or_else(|| corrupt("offset delta out of range"))?;
        f(RecordPosition { offset, timestamp }, &mut record, &whole)?;
    }
    Ok(())
}

/// A varint length (-1 for null) and that many bytes.
fn bytes_field(buf: &mut Bytes) -> Result<Option<Bytes>> {
    let length = varint(buf)?;
    if length < 0 {
        return Ok(None);
    }
    let length = usize::try_from(length).map_err(|_| corrupt("field length"))?;
    if length > buf.len() {
        return Err(corrupt("field runs past the end of its record"));
    }
    Ok(Some(buf.split_to(length)))
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

/// The most a batch's records may take once decompressed. A producer's batch is at most
/// `message.max.bytes` compressed; a few kilobytes of zeros can say gigabytes, and reading
/// them whole would take the broker's memory.
pub const MAX_DECOMPRESSED: usize = 256 << 20;

pub fn decompress(codec: Compression, data: Bytes) -> Result<Bytes> {
    decompress_within(codec, data, MAX_DECOMPRESSED)
}

fn decompress_within(codec: Compression, data: Bytes, limit: usize) -> Result<Bytes> {
    let mut out = Vec::new();
    // Reads at most one byte past the limit, to tell "exactly the limit" from "more".
    let bounded = |reader: &mut dyn Read, out: &mut Vec<u8>, what: &str| -> Result<()> {
        reader.take(limit as u64 + 1).read_to_end(out).map_err(|e| corrupt(&format!("{what}: {e}")))?;
        if out.len() > limit {
            return Err(corrupt(&format!("{what}: the records take more than {limit} bytes decompressed")));
        }
        Ok(())
    };
    match codec {
        Compression::None => return Ok(data),
        Compression::Gzip => bounded(&mut flate2::read::GzDecoder::new(&data[..]), &mut out, "gzip")?,
        Compression::Lz4 => bounded(&mut lz4_flex::frame::FrameDecoder::new(&data[..]), &mut out, "lz4")?,
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(&data[..]).map_err(|e| corrupt(&format!("zstd: {e}")))?;
            bounded(&mut decoder, &mut out, "zstd")?;
        }
        Compression::Snappy => {
            let snappy_len = |block: &[u8]| -> Result<()> {
                let len = snap::raw::decompress_len(block).map_err(|e| corrupt(&format!("snappy: {e}")))?;
                match len > limit {
                    true => Err(corrupt(&format!("snappy: the records take more than {limit} bytes decompressed"))),
                    false => Ok(()),
                }
            };
            if data.starts_with(XERIAL_MAGIC) {
                // magic, then version and compatible version (4 bytes each), then blocks
                let mut rest = data.slice((XERIAL_MAGIC.len() + 8).min(data.len())..);
                while rest.remaining() >= 4 {
                    let len = rest.get_u32() as usize;
                    if len > rest.len() {
                        return Err(corrupt("snappy block runs past the end"));
                    }
                    let block = rest.split_to(len);
                    snappy_len(&block)?;
                    out.extend(snap::raw::Decoder::new().decompress_vec(&block).map_err(|e| corrupt(&format!("snappy: {e}")))?);
                    if out.len() > limit {
                        return Err(corrupt(&format!("snappy: the records take more than {limit} bytes decompressed")));
                    }
                }
            } else {
                snappy_len(&data)?;
                out = snap::raw::Decoder::new().decompress_vec(&data).map_err(|e| corrupt(&format!("snappy: {e}")))?;
            }
        }
    }
    Ok(Bytes::from(out))
}

/// Compresses a records section with `codec`, as producers do (snappy without the Java
/// clients' framing, as librdkafka writes it; every client reads both).
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let failed = |what: &str, e: std::io::Error| BrokerError::Decode(format!("{what} compression failed: {e}"));
    Ok(match codec {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data).map_err(|e| failed("gzip", e))?;
            encoder.finish().map_err(|e| failed("gzip", e))?
        }
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(data).map_err(|e| failed("lz4", e))?;
            encoder.finish().map_err(|e| failed("lz4", std::io::Error::other(e)))?
        }
        Compression::Zstd => zstd::stream::encode_all(data, 3).map_err(|e| failed("zstd", e))?,
        Compression::Snappy => snap::raw::Encoder::new().compress_vec(data).map_err(|e| failed("snappy", std::io::Error::other(e)))?,
    })
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
    fn decompression_stops_at_the_limit_in_every_codec() {
        let zeros = vec![0u8; 3 << 20];
        for codec in [Compression::Gzip, Compression::Lz4, Compression::Zstd, Compression::Snappy] {
            let small = Bytes::from(compress(codec, &zeros[..1 << 20]).expect("compress"));
            assert_eq!(decompress_within(codec, small, 2 << 20).expect("within the limit").len(), 1 << 20, "{codec:?}");
            let bomb = Bytes::from(compress(codec, &zeros).expect("compress"));
            let refused = decompress_within(codec, bomb, 2 << 20).expect_err("past the limit");
            assert!(refused.to_string().contains("decompressed"), "{codec:?}: {refused}");
        }
    }

    #[test]
    fn a_stated_record_count_of_billions_reserves_no_more_than_the_batch() {
        let batch = Batch::parse(make_batch(3, 1000, None)).expect("valid");
        let mut bytes = batch.bytes().to_vec();
        // Record count and last offset delta agree on 2^31-1; the CRC is made right again.
        bytes[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        bytes[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        let lying = Batch::parse(Bytes::from(bytes)).expect("a batch that states 2^31-1 records");
        assert!(expected_records(&lying) <= lying.len());
        // The fourth record is not there: refused as corrupt, after reserving little.
        let refused = decode(&lying).expect_err("fewer records than stated");
        assert!(refused.to_string().contains("record"), "{refused}");
    }

    #[test]
    fn a_timestamp_delta_past_i64_is_a_corrupt_record() {
        // Found by the record_batch fuzzer: the sum overflowed (a panic in a debug build).
        let mut bytes = make_batch(3, 0, None).to_vec();
        // Base timestamp (the records' deltas are 0, 1, 2) and max timestamp, CRC made right.
        bytes[27..35].copy_from_slice(&(i64::MAX - 1).to_be_bytes());
        bytes[35..43].copy_from_slice(&i64::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        let batch = Batch::parse(Bytes::from(bytes)).expect("a valid header");
        let refused = decode(&batch).expect_err("the third record's timestamp is past i64");
        assert!(refused.to_string().contains("timestamp delta out of range"), "{refused}");
    }

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

    #[test]
    fn decodes_what_the_builder_wrote() {
        let records = vec![
            crate::batch_builder::NewRecord {
                key: Some(Bytes::from_static(b"k")),
                value: None,
                headers: vec![("a".into(), Some(Bytes::from_static(b"1"))), ("a".into(), None)],
                timestamp: 5000,
            },
            crate::batch_builder::NewRecord { key: None, value: Some(Bytes::from_static(b"v")), headers: vec![], timestamp: 4000 },
        ];
        let batch = crate::batch_builder::build(&records).expect("builds").with_base_offset(7);
        let decoded = decode(&batch).expect("decodes");
        assert_eq!(decoded[0].offset, 7);
        assert_eq!(decoded[0].key.as_deref(), Some(&b"k"[..]));
        let written: Vec<(String, Option<Bytes>)> = records[0].headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        assert_eq!(decoded[0].headers, written);
        assert_eq!(decoded[0].header("a").map(|v| v.as_ref()), Some(&b"1"[..]));
        assert_eq!((decoded[1].offset, decoded[1].timestamp, decoded[1].value.as_deref()), (8, 4000, Some(&b"v"[..])));
        assert_eq!(batch.max_timestamp(), 5000);
    }
}
