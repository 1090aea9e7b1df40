//! Builds uncompressed v2 record batches for records the broker writes itself: dead letters
//! now, CDC changes later. Produced batches are never rebuilt: they are stored as sent.

use bytes::{BufMut, Bytes, BytesMut};
use ductstream_storage::Batch;

use crate::{BrokerError, Result};

/// A record to write; its offset is assigned by the append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

/// Offset of the attributes field: the CRC covers everything from there on.
const CRC_START: usize = 21;

/// One batch holding `records` in order, with base offset 0 (the append rewrites it).
pub fn build(records: &[NewRecord]) -> Result<Batch> {
    let (Some(base_timestamp), Some(max_timestamp)) =
        (records.iter().map(|r| r.timestamp).min(), records.iter().map(|r| r.timestamp).max())
    else {
        return Err(BrokerError::InvalidArgument("a record batch needs at least one record".into()));
    };
    let count = i32::try_from(records.len()).map_err(|_| BrokerError::InvalidArgument("too many records".into()))?;
    let mut body = BytesMut::new();
    for (delta, record) in records.iter().enumerate() {
        let mut r = BytesMut::new();
        r.put_i8(0); // attributes
        put_varint(&mut r, record.timestamp - base_timestamp);
        put_varint(&mut r, delta as i64);
        put_bytes(&mut r, record.key.as_deref());
        put_bytes(&mut r, record.value.as_deref());
        put_varint(&mut r, record.headers.len() as i64);
        for (name, value) in &record.headers {
            put_bytes(&mut r, Some(name.as_bytes()));
            put_bytes(&mut r, value.as_deref());
        }
        put_varint(&mut body, r.len() as i64);
        body.extend_from_slice(&r);
    }

    let mut batch = BytesMut::with_capacity(61 + body.len());
    batch.put_i64(0); // base offset
    batch.put_i32(0); // batch length, set below
    batch.put_i32(-1); // partition leader epoch
    batch.put_i8(2); // magic
    batch.put_u32(0); // crc, set below
    batch.put_i16(0); // attributes: no compression, create time
    batch.put_i32(count - 1); // last offset delta
    batch.put_i64(base_timestamp);
    batch.put_i64(max_timestamp);
    batch.put_i64(-1); // producer id
    batch.put_i16(-1); // producer epoch
    batch.put_i32(-1); // base sequence
    batch.put_i32(count);
    batch.extend_from_slice(&body);
    let length = i32::try_from(batch.len() - 12).map_err(|_| BrokerError::InvalidArgument("batch too large".into()))?;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    Batch::parse(batch.freeze()).map_err(|e| BrokerError::Encode(format!("built an invalid batch: {e}")))
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
