//! The per-record checks Kafka's log validator makes on produce, and the answer it gives
//! (KIP-467): when some records of a batch break a topic rule, the whole batch is refused, and
//! the response names each offending record by its index in the batch, so the client fails
//! exactly those and retries or fails the rest as it chooses (librdkafka reports them as
//! `_INVALID_DIFFERENT_RECORD`).
//!
//! Checked today: a compacted topic (`cleanup.policy` with `compact`) takes no record without
//! a key, since compaction keeps the last record of each key. Records are decoded only for
//! topics with such a rule, so ordinary produces keep storing batches without looking inside.

use std::collections::BTreeMap;

use ductstream_storage::Batch;
use kafka_protocol::error::ResponseError;

use crate::{records, BrokerError, Result};

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

/// True when `configs` make the topic compacted (`compact` or `compact,delete`).
pub fn is_compacted(configs: &BTreeMap<String, String>) -> bool {
    configs.get("cleanup.policy").is_some_and(|p| p.split(',').any(|v| v.trim() == "compact"))
}

/// Checks every record of `batch` against the topic's rules; `Ok(None)` when all pass.
pub fn check(batch: &Batch, topic: &str, partition: i32, configs: &BTreeMap<String, String>) -> Result<Option<Rejected>> {
    if !is_compacted(configs) {
        return Ok(None);
    }
    let mut errors = Vec::new();
    // A record that cannot be read is a corrupt batch, as Kafka answers it.
    let decoded = records::decode(batch).map_err(|e| BrokerError::kafka(ResponseError::CorruptMessage, e.to_string()))?;
    for (index, record) in decoded.iter().enumerate() {
        if record.key.is_none() {
            errors.push(RecordError {
                batch_index: i32::try_from(index).unwrap_or(i32::MAX),
                message: format!("Compacted topic cannot accept message without key in topic partition {topic}-{partition}"),
            });
        }
    }
    if errors.is_empty() {
        return Ok(None);
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
        let rejected = check(&batch, "t", 2, &compacted).expect("decodes").expect("refused");
        assert_eq!(rejected.code, ResponseError::InvalidRecord);
        assert_eq!(rejected.records.iter().map(|e| e.batch_index).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(rejected.records[0].message, "Compacted topic cannot accept message without key in topic partition t-2");
        assert!(rejected.message.starts_with("One or more records have been rejected due to 2 record errors"));
        assert!(check(&batch, "t", 2, &BTreeMap::new()).expect("not decoded").is_none(), "delete policy: no key needed");
    }
}
