//! The per-record checks Kafka's log validator makes on produce, and the answer it gives
//! (KIP-467): when some records of a batch break a topic rule, the whole batch is refused, and
//! the response names each offending record by its index in the batch, so the client fails
//! exactly those and retries or fails the rest as it chooses (librdkafka reports them as
//! `_INVALID_DIFFERENT_RECORD`).
//!
//! Checked today: a compacted topic (`cleanup.policy` with `compact`) takes no record without
//! a key, since compaction keeps the last record of each key (INVALID_RECORD); on a CreateTime
//! topic, a record's timestamp must lie within `message.timestamp.before.max.ms` behind and
//! `message.timestamp.after.max.ms` ahead of the broker's clock (INVALID_TIMESTAMP). Records
//! are decoded only where such a rule may apply, so ordinary produces keep storing batches
//! without looking inside.

use std::collections::BTreeMap;

use ductstream_storage::Batch;
use kafka_protocol::error::ResponseError;

use crate::{records, topic_config, BrokerError, Result};

/// One refused record: its index in the batch and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub batch_index: i32,
    pub message: String,
}

/// A batch refused because of some of its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub code: ResponseError,
    /// The partition-level message, worded as Kafka words it.
    pub message: String,
    pub records: Vec<RecordError>,
}

/// Kafka lists at most this many record errors in the partition-level message.
const ERRORS_IN_MESSAGE: usize = 3;

/// Checks every record of `batch` against the topic's rules at broker time `now` (ms);
/// `Ok(None)` when all pass.
pub fn check(batch: &Batch, topic: &str, partition: i32, configs: &BTreeMap<String, String>, now: i64) -> Result<Option<Rejected>> {
    let compacted = topic_config::is_compacted(configs);
    // CreateTime topics bound record timestamps around the broker's clock. With Kafka's
    // defaults only the upper bound is set, and the batch header's largest timestamp tells
    // whether any record passes it, so ordinary batches are not decoded.
    let bounds = (!topic_config::log_append_time(configs)).then(|| topic_config::timestamp_bounds(configs));
    let check_timestamps = bounds.is_some_and(|(before, after)| before != i64::MAX || batch.max_timestamp() > now.saturating_add(after));
    if !compacted && !check_timestamps {
        return Ok(None);
    }
    // A record that cannot be read is a corrupt batch, as Kafka answers it.
    let decoded = records::decode(batch).map_err(|e| BrokerError::kafka(ResponseError::CorruptMessage, e.to_string()))?;
    let mut errors = Vec::new();
    let mut bad_timestamp = false;
    for (index, record) in decoded.iter().enumerate() {
        let batch_index = i32::try_from(index).unwrap_or(i32::MAX);
        if compacted && record.key.is_none() {
            errors.push(RecordError {
                batch_index,
                message: format!("Compacted topic cannot accept message without key in topic partition {topic}-{partition}"),
            });
        }
        if let Some((before, after)) = bounds.filter(|_| check_timestamps && record.timestamp != NO_TIMESTAMP) {
            let behind = now.saturating_sub(record.timestamp);
            if behind > before || behind.saturating_neg() > after {
                bad_timestamp = true;
                errors.push(RecordError {
                    batch_index,
                    message: format!(
                        "Timestamp {} of message with offset {} is out of range. The timestamp should be within [{}, {}]",
                        record.timestamp,
                        record.offset,
                        now.wrapping_sub(before),
                        now.wrapping_add(after)
                    ),
                });
            }
        }
    }
    if errors.is_empty() {
        return Ok(None);
    }
    if bad_timestamp {
        let message = "One or more records have been rejected due to invalid timestamp".to_owned();
        return Ok(Some(Rejected { code: ResponseError::InvalidTimestamp, message, records: errors }));
    }
    let shown: Vec<String> = errors
        .iter()
        .take(ERRORS_IN_MESSAGE)
        .map(|e| format!("RecordError(batchIndex={}, message='{}')", e.batch_index, e.message))
        .collect();
    let message = format!(
        "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
        errors.len(),
        shown.join(", ")
    );
    Ok(Some(Rejected { code: ResponseError::InvalidRecord, message, records: errors }))
}

/// A record without a timestamp (old clients); never out of bounds.
const NO_TIMESTAMP: i64 = -1;

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::batch_builder::{build, NewRecord};

    fn record(key: Option<&'static [u8]>) -> NewRecord {
        NewRecord { key: key.map(Bytes::from_static), value: Some(Bytes::from_static(b"v")), headers: vec![], timestamp: 1 }
    }

    #[test]
    fn a_compacted_topic_refuses_records_without_a_key_by_index() {
        let batch = build(&[record(Some(b"k")), record(None), record(Some(b"k")), record(None)]).expect("builds");
        let compacted = BTreeMap::from([("cleanup.policy".to_string(), "delete,compact".to_string())]);
        let rejected = check(&batch, "t", 2, &compacted, 1).expect("decodes").expect("refused");
        assert_eq!(rejected.code, ResponseError::InvalidRecord);
        assert_eq!(rejected.records.iter().map(|e| e.batch_index).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(rejected.records[0].message, "Compacted topic cannot accept message without key in topic partition t-2");
        assert!(rejected.message.starts_with("One or more records have been rejected due to 2 record errors"));
        assert!(check(&batch, "t", 2, &BTreeMap::new(), 1).expect("not decoded").is_none(), "delete policy: no key needed");
    }

    #[test]
    fn timestamps_out_of_bounds_are_refused_by_index() {
        let at = |timestamp| NewRecord { timestamp, ..record(Some(b"k")) };
        let now = 1_000_000;
        let batch = build(&[at(now), at(now + 3_600_001), at(now - 10), at(-1)]).expect("builds");
        // Kafka's defaults: up to an hour ahead, any time behind.
        let rejected = check(&batch, "t", 0, &BTreeMap::new(), now).expect("decodes").expect("refused");
        assert_eq!(rejected.code, ResponseError::InvalidTimestamp);
        assert_eq!(rejected.records.iter().map(|e| e.batch_index).collect::<Vec<_>>(), vec![1]);
        assert_eq!(rejected.message, "One or more records have been rejected due to invalid timestamp");
        let strict = BTreeMap::from([(topic_config::TIMESTAMP_BEFORE_MAX_MS.to_string(), "5".to_string())]);
        let rejected = check(&batch, "t", 0, &strict, now).expect("decodes").expect("refused");
        assert_eq!(rejected.records.iter().map(|e| e.batch_index).collect::<Vec<_>>(), vec![1, 2], "-1 is no timestamp");
        let log_append = BTreeMap::from([(topic_config::MESSAGE_TIMESTAMP_TYPE.to_string(), "LogAppendTime".to_string())]);
        assert!(check(&batch, "t", 0, &log_append, now).expect("not decoded").is_none(), "the broker stamps the time");
    }
}
