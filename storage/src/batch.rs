//! The Kafka RecordBatch (magic v2): the unit DuctStream stores.
//!
//! A batch is validated once on the way in (length, magic, CRC-32C, offsets) and then kept as
//! the producer's bytes. Only the base offset is rewritten when the log assigns offsets; the CRC
//! covers the bytes after the CRC field, so it stays valid.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Size of the fixed RecordBatch header, up to and including the record count.
pub const RECORD_BATCH_OVERHEAD: usize = 61;

const BATCH_LENGTH_AT: usize = 8;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;

/// The timestamp-type bit of the attributes: set for LogAppendTime.
const LOG_APPEND_TIME: i16 = 0x08;

/// Why a batch was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch of {0} bytes is shorter than its {RECORD_BATCH_OVERHEAD}-byte header")]
    TooShort(usize),
    #[error("record batch says it is {declared} bytes long but {actual} bytes are present")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("unsupported record batch magic {0} (only v2 batches are accepted)")]
    UnsupportedMagic(i8),
    #[error("record batch CRC mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("record batch holds {count} records but its last offset delta is {last_offset_delta}")]
    BadOffsets { count: i32, last_offset_delta: i32 },
    #[error("unknown compression codec {0}")]
    UnknownCompression(i16),
}

/// The codec a batch's records are compressed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The codec's number in a batch's attributes.
    pub fn code(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// One validated v2 record batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    bytes: Bytes,
}

impl Batch {
    /// Checks that `bytes` hold exactly one well-formed v2 batch, as a producer sends it: one
    /// offset per record.
    pub fn parse(bytes: Bytes) -> Result<Batch, BatchError> {
        let batch = Self::parse_stored(bytes)?;
        let (count, last_offset_delta) = (batch.record_count(), batch.last_offset_delta());
        if count < 1 || last_offset_delta != count - 1 {
            return Err(BatchError::BadOffsets { count, last_offset_delta });
        }
        Ok(batch)
    }

    /// Checks `bytes` as a batch the log may hold, CRC included: as [`Batch::parse`], except
    /// that a batch compaction rewrote keeps its offsets with fewer records than offsets, or
    /// none.
    pub fn parse_stored(bytes: Bytes) -> Result<Batch, BatchError> {
        let batch = Self::parse_unchecked_crc(bytes)?;
        let expected = batch.crc();
        let actual = crc32c::crc32c(&batch.bytes[ATTRIBUTES_AT..]);
        if expected != actual {
            return Err(BatchError::CrcMismatch { expected, actual });
        }
        Ok(batch)
    }

    /// Reads back a batch this process stored earlier: the header is checked, the CRC is not
    /// recomputed (it was checked on the way in).
    pub fn from_stored(bytes: Bytes) -> Result<Batch, BatchError> {
        Self::parse_unchecked_crc(bytes)
    }

    fn parse_unchecked_crc(bytes: Bytes) -> Result<Batch, BatchError> {
        if bytes.len() < RECORD_BATCH_OVERHEAD {
            return Err(BatchError::TooShort(bytes.len()));
        }
        let declared = i32_at(&bytes, BATCH_LENGTH_AT) as i64 + 12;
        if declared != bytes.len() as i64 {
            return Err(BatchError::LengthMismatch {
                declared: declared.max(0) as usize,
                actual: bytes.len(),
            });
        }
        let magic = bytes[MAGIC_AT] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let batch = Batch { bytes };
        let (count, last_offset_delta) = (batch.record_count(), batch.last_offset_delta());
        if count < 0 || last_offset_delta < 0 || i64::from(count) > i64::from(last_offset_delta) + 1 {
            return Err(BatchError::BadOffsets { count, last_offset_delta });
        }
        batch.compression()?;
        Ok(batch)
    }

    /// Splits the first batch off `bytes` by its length field, leaving the rest in `bytes`.
    /// Returns `None` when `bytes` is empty.
    pub fn split_first(bytes: &mut Bytes) -> Option<Result<Batch, BatchError>> {
        if bytes.is_empty() {
            return None;
        }
        if bytes.len() < 12 {
            let len = bytes.len();
            bytes.advance(len);
            return Some(Err(BatchError::TooShort(len)));
        }
        let declared = i32_at(bytes, BATCH_LENGTH_AT) as i64 + 12;
        if declared < RECORD_BATCH_OVERHEAD as i64 || declared > bytes.len() as i64 {
            let actual = bytes.len();
            bytes.advance(actual);
            return Some(Err(BatchError::LengthMismatch { declared: declared.max(0) as usize, actual }));
        }
        Some(Batch::parse(bytes.split_to(declared as usize)))
    }

    /// The same batch with its base offset set to `base_offset`.
    pub fn with_base_offset(self, base_offset: i64) -> Batch {
        if self.base_offset() == base_offset {
            return self;
        }
        let mut bytes = BytesMut::with_capacity(self.bytes.len());
        bytes.put_i64(base_offset);
        bytes.put_slice(&self.bytes[8..]);
        Batch { bytes: bytes.freeze() }
    }

    /// The same batch stamped with the broker's append time, as topics with
    /// `message.timestamp.type=LogAppendTime` want: the timestamp-type attribute is set and the
    /// max timestamp becomes `time` (consumers then read it as every record's timestamp). Both
    /// sit under the CRC, so it is recomputed.
    pub fn with_log_append_time(self, time: i64) -> Batch {
        let mut bytes = BytesMut::from(&self.bytes[..]);
        let attributes = self.attributes() | LOG_APPEND_TIME;
        bytes[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        bytes[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&time.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[ATTRIBUTES_AT..]);
        bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        Batch { bytes: bytes.freeze() }
    }

    /// The same batch (offsets, timestamps, producer and flags) holding other records, as
    /// compaction rewrites it: `records` are `count` encoded records, compressed with
    /// `compression`, whose offset deltas stay those of the original records; the batch now
    /// ends `last_offset_delta` after its base offset. Length and CRC are computed again.
    pub fn with_records(&self, records: &[u8], count: i32, compression: Compression, last_offset_delta: i32) -> Result<Batch, BatchError> {
        let mut bytes = BytesMut::with_capacity(RECORD_BATCH_OVERHEAD + records.len());
        bytes.put_slice(&self.bytes[..RECORD_BATCH_OVERHEAD]);
        bytes.put_slice(records);
        let length = i32::try_from(bytes.len() - 12).map_err(|_| BatchError::TooShort(0))?;
        bytes[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
        let attributes = (self.attributes() & !0x7) | compression.code();
        bytes[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        bytes[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4].copy_from_slice(&last_offset_delta.to_be_bytes());
        bytes[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[ATTRIBUTES_AT..]);
        bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        Batch::parse_stored(bytes.freeze())
    }

    /// True when the broker stamped the batch (every record's timestamp is the max timestamp).
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & LOG_APPEND_TIME != 0
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    pub fn base_offset(&self) -> i64 {
        i64_at(&self.bytes, 0)
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + self.last_offset_delta() as i64
    }
    /// One past the last offset: where the next batch starts.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    pub fn crc(&self) -> u32 {
        i32_at(&self.bytes, CRC_AT) as u32
    }
    pub fn attributes(&self) -> i16 {
        (&self.bytes[ATTRIBUTES_AT..]).get_i16()
    }
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Ok(match self.attributes() & 0x7 {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(BatchError::UnknownCompression(other)),
        })
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & 0x20 != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        i32_at(&self.bytes, LAST_OFFSET_DELTA_AT)
    }
    pub fn base_timestamp(&self) -> i64 {
        i64_at(&self.bytes, BASE_TIMESTAMP_AT)
    }
    pub fn max_timestamp(&self) -> i64 {
        i64_at(&self.bytes, MAX_TIMESTAMP_AT)
    }
    pub fn producer_id(&self) -> i64 {
        i64_at(&self.bytes, PRODUCER_ID_AT)
    }
    pub fn producer_epoch(&self) -> i16 {
        (&self.bytes[PRODUCER_EPOCH_AT..]).get_i16()
    }
    pub fn base_sequence(&self) -> i32 {
        i32_at(&self.bytes, BASE_SEQUENCE_AT)
    }
    /// The sequence number of the last record, wrapping at `i32::MAX` as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        let last = self.base_sequence() as i64 + self.last_offset_delta() as i64;
        if last > i32::MAX as i64 { (last - i32::MAX as i64 - 1) as i32 } else { last as i32 }
    }
    pub fn record_count(&self) -> i32 {
        i32_at(&self.bytes, RECORD_COUNT_AT)
    }
    /// The records section (compressed as the attributes say).
    pub fn records(&self) -> Bytes {
        self.bytes.slice(RECORD_BATCH_OVERHEAD..)
    }
    /// True when the producer asked for idempotent delivery (a producer id is set).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id() >= 0
    }
}

fn i32_at(bytes: &[u8], at: usize) -> i32 {
    (&bytes[at..at + 4]).get_i32()
}

fn i64_at(bytes: &[u8], at: usize) -> i64 {
    (&bytes[at..at + 8]).get_i64()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds an uncompressed batch of `count` empty-keyed records, for tests.
    pub fn sample_batch(count: i32, base_timestamp: i64, producer: Option<(i64, i16, i32)>) -> Bytes {
        crate::testsuite::make_batch(count, base_timestamp, producer)
    }

    #[test]
    fn round_trips_and_rewrites_base_offset() {
        let batch = Batch::parse(sample_batch(3, 1000, None)).expect("valid");
        assert_eq!(batch.record_count(), 3);
        assert_eq!(batch.last_offset_delta(), 2);
        let moved = batch.with_base_offset(42);
        assert_eq!(moved.base_offset(), 42);
        assert_eq!(moved.last_offset(), 44);
        Batch::parse(moved.into_bytes()).expect("CRC still valid after rewriting base offset");
    }

    #[test]
    fn refuses_bad_crc_magic_and_length() {
        let good = sample_batch(1, 0, None);
        let mut bad_crc = BytesMut::from(&good[..]);
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0xff;
        assert!(matches!(Batch::parse(bad_crc.freeze()), Err(BatchError::CrcMismatch { .. })));

        let mut bad_magic = BytesMut::from(&good[..]);
        bad_magic[MAGIC_AT] = 1;
        assert_eq!(Batch::parse(bad_magic.freeze()), Err(BatchError::UnsupportedMagic(1)));

        assert!(matches!(Batch::parse(good.slice(..30)), Err(BatchError::TooShort(30))));
        assert!(matches!(
            Batch::parse(good.slice(..good.len() - 1)),
            Err(BatchError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn splits_concatenated_batches() {
        let mut two = BytesMut::new();
        two.put_slice(&sample_batch(1, 0, None));
        two.put_slice(&sample_batch(2, 0, None));
        let mut bytes = two.freeze();
        assert_eq!(Batch::split_first(&mut bytes).map(|b| b.map(|b| b.record_count())), Some(Ok(1)));
        assert_eq!(Batch::split_first(&mut bytes).map(|b| b.map(|b| b.record_count())), Some(Ok(2)));
        assert!(Batch::split_first(&mut bytes).is_none());
    }

    #[test]
    fn log_append_time_restamps_and_keeps_the_crc_valid() {
        let batch = Batch::parse(sample_batch(2, 1000, None)).expect("valid").with_log_append_time(99_000);
        assert!(batch.is_log_append_time());
        assert_eq!((batch.max_timestamp(), batch.base_timestamp()), (99_000, 1000));
        Batch::parse(batch.into_bytes()).expect("CRC recomputed");
    }

    #[test]
    fn sequence_wraps_like_kafka() {
        let batch = Batch::parse(sample_batch(3, 0, Some((7, 0, i32::MAX - 1)))).expect("valid");
        assert_eq!(batch.last_sequence(), 0);
    }
}
