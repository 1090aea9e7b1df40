//! Kafka framing: a 4-byte big-endian length, then that many bytes.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{BrokerError, Result};

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, max_size: usize) -> Result<Option<Bytes>> {
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
    let mut buf = BytesMut::zeroed(len as usize);
    reader.read_exact(&mut buf).await?;
    Ok(Some(buf.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_frames_and_refuses_oversized_ones() {
        let mut input: &[u8] = &[0, 0, 0, 3, 1, 2, 3, 0x7f, 0xff, 0xff, 0xff];
        assert_eq!(read_frame(&mut input, 100).await.expect("ok"), Some(Bytes::from_static(&[1, 2, 3])));
        assert!(matches!(read_frame(&mut input, 100).await, Err(BrokerError::FrameTooLarge { .. })));
        let mut empty: &[u8] = &[];
        assert_eq!(read_frame(&mut empty, 100).await.expect("clean end"), None);
        let mut truncated: &[u8] = &[0, 0, 0, 9, 1];
        assert!(matches!(read_frame(&mut truncated, 100).await, Err(BrokerError::Io(_))));
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xfe];
        assert!(matches!(read_frame(&mut negative, 100).await, Err(BrokerError::InvalidFrameLength(-2))));
    }
}
