//! Kafka framing: a 4-byte big-endian length, then that many bytes.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::request_memory::{RequestMemory, Reservation};
use crate::{BrokerError, Result};

/// One frame, and the request memory its bytes hold until it is dropped.
#[derive(Debug)]
pub struct Frame {
    pub bytes: Bytes,
    pub memory: Reservation,
}

/// Reads one frame, reserving its bytes from `memory` before reading them. `Ok(None)` is a
/// clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, max_size: usize, memory: &RequestMemory) -> Result<Option<Frame>> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = i32::from_be_bytes(len);
    if len < 0 {
        return Err(BrokerError::InvalidFrameLength(len));
    }
    if len as usize > max_size {
        return Err(BrokerError::FrameTooLarge { size: len as u64, max: max_size });
    }
    let reservation = memory.reserve(len as usize).await;
    let mut buf = BytesMut::zeroed(len as usize);
    reader.read_exact(&mut buf).await?;
    Ok(Some(Frame { bytes: buf.freeze(), memory: reservation }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_frames_and_refuses_oversized_ones() {
        let memory = RequestMemory::new(1000);
        let mut input: &[u8] = &[0, 0, 0, 3, 1, 2, 3, 0x7f, 0xff, 0xff, 0xff];
        let frame = read_frame(&mut input, 100, &memory).await.expect("ok").expect("a frame");
        assert_eq!(frame.bytes, Bytes::from_static(&[1, 2, 3]));
        assert_eq!(memory.used(), 3, "held while the frame lives");
        drop(frame);
        assert_eq!(memory.used(), 0);
        assert!(matches!(read_frame(&mut input, 100, &memory).await, Err(BrokerError::FrameTooLarge { .. })));
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, 100, &memory).await.expect("clean end").is_none());
        let mut truncated: &[u8] = &[0, 0, 0, 9, 1];
        assert!(matches!(read_frame(&mut truncated, 100, &memory).await, Err(BrokerError::Io(_))));
        assert_eq!(memory.used(), 0, "a frame that never arrived holds nothing");
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xfe];
        assert!(matches!(read_frame(&mut negative, 100, &memory).await, Err(BrokerError::InvalidFrameLength(-2))));
    }
}
