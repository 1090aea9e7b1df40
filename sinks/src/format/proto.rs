//! Protocol Buffers: each record as a `ductstream.v1.SinkRecord` message
//! (`proto/ductstream/v1/sink.proto`), a file being the messages one after another, each after
//! its length as a varint (what Java's `writeDelimitedTo` and Python's `_VarintBytes` framing
//! read).

use bytes::Bytes;
use prost::Message;

use crate::SinkRecord;

/// `ductstream.v1.SinkRecord`; field numbers as in sink.proto.
#[derive(Clone, PartialEq, Message)]
pub struct SinkRecordMessage {
    #[prost(string, tag = "1")]
    pub topic: String,
    #[prost(int32, tag = "2")]
    pub partition: i32,
    #[prost(int64, tag = "3")]
    pub offset: i64,
    #[prost(int64, tag = "4")]
    pub timestamp_ms: i64,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "6")]
    pub value: Option<Vec<u8>>,
    #[prost(message, repeated, tag = "7")]
    pub headers: Vec<HeaderMessage>,
}

/// `ductstream.v1.SinkRecord.Header`.
#[derive(Clone, PartialEq, Message)]
pub struct HeaderMessage {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub value: Option<Vec<u8>>,
}

pub fn message(r: &SinkRecord) -> SinkRecordMessage {
    SinkRecordMessage {
        topic: r.topic.clone(),
        partition: r.partition,
        offset: r.offset,
        timestamp_ms: r.timestamp,
        key: r.key.as_ref().map(|k| k.to_vec()),
        value: r.value.as_ref().map(|v| v.to_vec()),
        headers: r.headers.iter().map(|(k, v)| HeaderMessage { key: k.clone(), value: v.as_ref().map(|v| v.to_vec()) }).collect(),
    }
}

/// The records as length-delimited messages.
pub fn encode(records: &[SinkRecord]) -> Bytes {
    let mut out = Vec::new();
    for r in records {
        // Writing into a Vec cannot run out of room.
        let _ = message(r).encode_length_delimited(&mut out);
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_back_one_by_one() -> Result<(), prost::DecodeError> {
        let records: Vec<SinkRecord> = (0..3)
            .map(|i| SinkRecord {
                topic: "t".into(),
                partition: 1,
                offset: i,
                timestamp: 5,
                key: (i > 0).then(|| Bytes::from_static(b"k")),
                value: Some(Bytes::new()),
                headers: vec![("h".into(), None)],
            })
            .collect();
        let mut file = encode(&records);
        let mut read = Vec::new();
        while !file.is_empty() {
            read.push(SinkRecordMessage::decode_length_delimited(&mut file)?);
        }
        assert_eq!(read.len(), 3);
        assert_eq!(read[0].key, None);
        assert_eq!(read[1].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(read[2].value.as_deref(), Some(&b""[..]), "an empty value is not a null one");
        Ok(())
    }
}
