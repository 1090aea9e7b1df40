//! Builds uncompressed v2 record batches for records the broker writes itself: dead letters
//! now, CDC changes later. Produced batches are never rebuilt: they are stored as sent.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use ductstream_storage::Batch;

use crate::{BrokerError, Result};

/// A record to write; its offset is assigned by the append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// Names borrowed where they are constants (CDC headers), owned where a client sent them.
    pub headers: Vec<(Cow<'static, str>, Option<Bytes>)>,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

/// Offset of the attributes field: the CRC covers everything from there on.
const CRC_START: usize = 21;

/// One batch holding `records` in order, with base offset 0 (the append rewrites it).
pub fn build(records: &[NewRecord]) -> Result<Batch> {
    encode(records, Header { attributes: 0, producer_id: -1, producer_epoch: -1 })
}

/// Attributes of a transaction marker: transactional (0x10) and control (0x20).
const CONTROL_ATTRIBUTES: i16 = 0x30;

/// A transaction marker (KIP-98): a control batch of one record whose key says commit (1) or
/// abort (0) and whose value carries the coordinator epoch, written by the transaction
/// coordinator to every partition of a transaction as the producer.
pub fn transaction_marker(producer_id: i64, producer_epoch: i16, commit: bool, timestamp: i64) -> Result<Batch> {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0); // version
    key.put_i16(i16::from(commit)); // type: 0 abort, 1 commit
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0); // version
    value.put_i32(0); // coordinator epoch
    let record = NewRecord { key: Some(key.freeze()), value: Some(value.freeze()), headers: Vec::new(), timestamp };
    encode(&[record], Header { attributes: CONTROL_ATTRIBUTES, producer_id, producer_epoch })
}

/// The batch header fields a caller chooses.
struct Header {
    attributes: i16,
    producer_id: i64,
    producer_epoch: i16,
}

fn encode(records: &[NewRecord], header: Header) -> Result<Batch> {
    let (Some(base_timestamp), Some(max_timestamp)) =
        (records.iter().map(|r| r.timestamp).min(), records.iter().map(|r| r.timestamp).max())
    else {
        return Err(BrokerError::InvalidArgument("a record batch needs at least one record".into()));
    };
    let count = i32::try_from(records.len()).map_err(|_| BrokerError::InvalidArgument("too many records".into()))?;
    // Sized up front and written in one pass: a CDC flow builds a batch per append, and
    // growing buffers and copying records between them cost more than the encoding.
    let lengths: Vec<usize> = records.iter().enumerate().map(|(delta, r)| record_len(r, r.timestamp - base_timestamp, delta as i64)).collect();
    let body: usize = lengths.iter().map(|&len| varint_len(len as i64) + len).sum();
    let mut batch = BytesMut::with_capacity(RECORDS_AT + body);
    batch.put_i64(0); // base offset
    batch.put_i32(0); // batch length, set below
    batch.put_i32(-1); // partition leader epoch
    batch.put_i8(2); // magic
    batch.put_u32(0); // crc, set below
    batch.put_i16(header.attributes); // no compression, create time
    batch.put_i32(count - 1); // last offset delta
    batch.put_i64(base_timestamp);
    batch.put_i64(max_timestamp);
    batch.put_i64(header.producer_id);
    batch.put_i16(header.producer_epoch);
    batch.put_i32(-1); // base sequence
    batch.put_i32(count);
    for (delta, (record, len)) in records.iter().zip(&lengths).enumerate() {
        put_varint(&mut batch, *len as i64);
        batch.put_i8(0); // attributes
        put_varint(&mut batch, record.timestamp - base_timestamp);
        put_varint(&mut batch, delta as i64);
        put_bytes(&mut batch, record.key.as_deref());
        put_bytes(&mut batch, record.value.as_deref());
        put_varint(&mut batch, record.headers.len() as i64);
        for (name, value) in &record.headers {
            put_bytes(&mut batch, Some(name.as_bytes()));
            put_bytes(&mut batch, value.as_deref());
        }
    }
    debug_assert_eq!(batch.len(), RECORDS_AT + body);
    let length = i32::try_from(batch.len() - 12).map_err(|_| BrokerError::InvalidArgument("batch too large".into()))?;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    // The CRC was computed just above: the header is checked, the CRC not computed twice.
    Batch::from_stored(batch.freeze()).map_err(|e| BrokerError::Encode(format!("built an invalid batch: {e}")))
}

/// Where the records start: the v2 batch header's length.
const RECORDS_AT: usize = 61;

/// A record's length after its length prefix.
fn record_len(record: &NewRecord, timestamp_delta: i64, offset_delta: i64) -> usize {
    let headers: usize = record.headers.iter().map(|(name, value)| bytes_len(Some(name.as_bytes())) + bytes_len(value.as_deref())).sum();
    1 + varint_len(timestamp_delta)
        + varint_len(offset_delta)
        + bytes_len(record.key.as_deref())
        + bytes_len(record.value.as_deref())
        + varint_len(record.headers.len() as i64)
        + headers
}

fn bytes_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => varint_len(-1),
        Some(b) => varint_len(b.len() as i64) + b.len(),
    }
}

/// Bytes of a zigzag varint.
fn varint_len(value: i64) -> usize {
    let v = ((value << 1) ^ (value >> 63)) as u64;
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(buf: &mut BytesMut, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        buf.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn put_bytes(buf: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, b.len() as i64);
            buf.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_marker_is_a_valid_control_batch() -> Result<()> {
        let marker = transaction_marker(42, 3, true, 1_700_000_000_000)?;
        let checked = Batch::parse(marker.bytes().clone()).map_err(|e| BrokerError::Decode(e.to_string()))?;
        assert!(checked.is_control() && checked.is_transactional());
        assert_eq!((checked.producer_id(), checked.producer_epoch(), checked.base_sequence(), checked.record_count()), (42, 3, -1, 1));
        let record = &crate::records::decode(&checked)?[0];
        assert_eq!(record.key.as_deref(), Some(&[0u8, 0, 0, 1][..]));
        Ok(())
    }

    #[test]
    fn varint_lengths_match_what_is_written() {
        for v in [0i64, 1, -1, 63, 64, -65, 8191, 8192, 1 << 20, i64::MAX, i64::MIN] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v), "{v}");
        }
    }

    #[test]
    fn a_built_batch_passes_the_checks_and_decodes_to_its_records() -> Result<()> {
        let records: Vec<NewRecord> = (0..300)
            .map(|i| NewRecord {
                key: (i % 3 != 0).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'v'; i * 37])),
                headers: vec![("h".into(), Some(Bytes::from_static(b"x"))), ("none".into(), None)],
                timestamp: 1_700_000_000_000 + i as i64 * 1000,
            })
            .collect();
        let batch = build(&records)?;
        let checked = Batch::parse(batch.bytes().clone()).map_err(|e| BrokerError::Decode(e.to_string()))?;
        let decoded = crate::records::decode(&checked)?;
        assert_eq!(decoded.len(), records.len());
        for (d, r) in decoded.iter().zip(&records) {
            assert_eq!((&d.key, &d.value, d.timestamp), (&r.key, &r.value, r.timestamp));
            assert_eq!(d.headers.len(), 2);
        }
        Ok(())
    }
}
