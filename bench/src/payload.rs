//! Message bodies. Filler is pseudo-random text from a 16-letter alphabet
//! (about 4 bits of entropy per byte): compressible, like logs or JSON, but
//! not trivially so, and the same on every run.

/// `len` bytes of filler.
pub fn filler(len: usize) -> Vec<u8> {
    const ALPHABET: &[u8; 16] = b"etaoinshrdlu ,.\n";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state >> 60) as usize]
        })
        .collect()
}

/// Header of a `latency` message: run id, sequence number and send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub run_id: u64,
    pub seq: u64,
    /// Nanoseconds since the run's shared epoch.
    pub sent_nanos: u64,
}

impl Stamp {
    pub const LEN: usize = 24;

    /// Writes the stamp over the first [`Stamp::LEN`] bytes of `buf`.
    pub fn write(&self, buf: &mut [u8]) {
        if buf.len() < Self::LEN {
            return;
        }
        buf[0..8].copy_from_slice(&self.run_id.to_le_bytes());
        buf[8..16].copy_from_slice(&self.seq.to_le_bytes());
        buf[16..24].copy_from_slice(&self.sent_nanos.to_le_bytes());
    }

    /// Reads a stamp from the start of a payload, if it is long enough.
    pub fn read(buf: &[u8]) -> Option<Self> {
        let word = |at: usize| -> Option<u64> {
            let bytes: [u8; 8] = buf.get(at..at + 8)?.try_into().ok()?;
            Some(u64::from_le_bytes(bytes))
        };
        Some(Self {
            run_id: word(0)?,
            seq: word(8)?,
            sent_nanos: word(16)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_has_requested_length_and_is_deterministic() {
        assert_eq!(filler(1024).len(), 1024);
        assert_eq!(filler(100), filler(100));
        assert!(filler(0).is_empty());
    }

    #[test]
    fn stamp_round_trips() {
        let stamp = Stamp {
            run_id: 7,
            seq: 42,
            sent_nanos: 123_456_789,
        };
        let mut buf = filler(64);
        stamp.write(&mut buf);
        assert_eq!(Stamp::read(&buf), Some(stamp));
        assert_eq!(Stamp::read(&buf[..10]), None);
    }
}
