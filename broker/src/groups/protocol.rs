//! The consumer protocol's subscription metadata (ConsumerProtocolSubscription), as far as the
//! broker needs to read it: the subscribed topics.

use bytes::Buf;

/// The topics in a consumer's subscription metadata; empty when it cannot be read (a
/// non-consumer protocol type, or bytes from a client we do not understand).
pub fn subscription_topics(metadata: &[u8]) -> Vec<String> {
    parse(metadata).unwrap_or_default()
}

fn parse(mut buf: &[u8]) -> Option<Vec<String>> {
    if buf.remaining() < 6 {
        return None;
    }
    let _version = buf.get_i16();
    let count = buf.get_i32();
    let mut topics = Vec::with_capacity(count.clamp(0, 1024) as usize);
    for _ in 0..count.max(0) {
        if buf.remaining() < 2 {
            return None;
        }
        let len = usize::try_from(buf.get_i16()).ok()?;
        if buf.remaining() < len {
            return None;
        }
        topics.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        buf.advance(len);
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    #[test]
    fn reads_topics_and_survives_garbage() {
        let mut buf = Vec::new();
        buf.put_i16(1);
        buf.put_i32(2);
        for t in ["orders", "users"] {
            buf.put_i16(t.len() as i16);
            buf.put_slice(t.as_bytes());
        }
        buf.put_i32(-1); // user data
        assert_eq!(subscription_topics(&buf), vec!["orders", "users"]);
        assert!(subscription_topics(&buf[..9]).is_empty());
        assert!(subscription_topics(b"").is_empty());
    }
}
