//! A request frame read as bytes alone: its header, then, once the broker has agreed to answer
//! that API at that version, its body. Nothing here trusts the client: every length and count
//! comes off the wire and is checked before it is used.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

use crate::{BrokerError, Result};

/// A decoded request header, with the API and version it names.
#[derive(Debug)]
pub struct Header {
    pub api: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
}

/// Reads the header off the front of `frame`, leaving the body.
pub fn header(frame: &mut Bytes) -> Result<Header> {
    if frame.len() < 8 {
        return Err(BrokerError::Decode(format!("request of {} bytes is too short for a header", frame.len())));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(raw_key).map_err(|_| BrokerError::UnknownApiKey(raw_key))?;
    let header = RequestHeader::decode(frame, api.request_header_version(version))
        .map_err(|e| BrokerError::Decode(format!("{api:?} v{version} header: {e}")))?;
    Ok(Header { api, version, header })
}

/// Reads the body of an `api` request at `version` (one the broker supports).
pub fn body(api: ApiKey, version: i16, frame: &mut Bytes) -> Result<RequestKind> {
    RequestKind::decode(api, frame, version).map_err(|e| BrokerError::Decode(format!("{api:?} v{version}: {e}")))
}
