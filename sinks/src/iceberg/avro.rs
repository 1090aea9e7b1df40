//! The Avro object container files Iceberg keeps its manifests in: written with the schema
//! text given (Iceberg's field ids live in it, which a general Avro library may drop), no
//! codec; and read back, for files written so, as raw record bytes to decode.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{Result, SinkError};

const MAGIC: &[u8; 4] = b"Obj\x01";

/// Appends Avro's binary encoding of values to a buffer.
#[derive(Default)]
pub struct Encoder {
    out: BytesMut,
}

impl Encoder {
    pub fn long(&mut self, v: i64) -> &mut Self {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            self.out.put_u8((z as u8) | 0x80);
            z >>= 7;
        }
        self.out.put_u8(z as u8);
        self
    }

    pub fn int(&mut self, v: i32) -> &mut Self {
        self.long(i64::from(v))
    }

    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.long(v.len() as i64);
        self.out.put_slice(v);
        self
    }

    pub fn string(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    /// The null branch of a `["null", T]` union.
    pub fn null(&mut self) -> &mut Self {
        self.long(0)
    }

    /// The value branch of a `["null", T]` union; the value follows.
    pub fn some(&mut self) -> &mut Self {
        self.long(1)
    }

    pub fn finish(self) -> Bytes {
        self.out.freeze()
    }
}

/// Reads Avro's binary encoding.
pub struct Decoder {
    input: Bytes,
}

impl Decoder {
    pub fn new(input: Bytes) -> Decoder {
        Decoder { input }
    }

    pub fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    pub fn long(&mut self) -> Result<i64> {
        let mut z: u64 = 0;
        for shift in (0..64).step_by(7) {
            if self.input.is_empty() {
                return Err(corrupt("a number runs past the end"));
            }
            let b = self.input.get_u8();
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err(corrupt("a number longer than 10 bytes"))
    }

    pub fn int(&mut self) -> Result<i32> {
        i32::try_from(self.long()?).map_err(|_| corrupt("an int out of range"))
    }

    pub fn bytes(&mut self) -> Result<Bytes> {
        let len = usize::try_from(self.long()?).map_err(|_| corrupt("a negative length"))?;
        if len > self.input.len() {
            return Err(corrupt("a value runs past the end"));
        }
        Ok(self.input.split_to(len))
    }

    pub fn string(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| corrupt("a string that is not UTF-8"))
    }

    /// Whether a `["null", T]` union holds a value.
    pub fn some(&mut self) -> Result<bool> {
        match self.long()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(corrupt(&format!("union branch {other}"))),
        }
    }

    pub fn boolean(&mut self) -> Result<bool> {
        if self.input.is_empty() {
            return Err(corrupt("a boolean past the end"));
        }
        Ok(self.input.get_u8() != 0)
    }
}

fn corrupt(what: &str) -> SinkError {
    SinkError::Fatal(format!("an Iceberg manifest is not valid Avro: {what}"))
}

/// A container file of `records` (each already encoded) with `schema` and `metadata`.
pub fn write_file(schema: &str, metadata: &[(&str, String)], records: &[Bytes]) -> Bytes {
    // Any 16 bytes serve, as long as the file repeats them after each block.
    let sync: [u8; 16] = *b"ductstream.avro!";
    let mut header = Encoder::default();
    header.out.put_slice(MAGIC);
    header.long(metadata.len() as i64 + 2);
    header.string("avro.schema").string(schema);
    header.string("avro.codec").string("null");
    for (k, v) in metadata {
        header.string(k).string(v);
    }
    header.long(0);
    header.out.put_slice(&sync);
    if !records.is_empty() {
        let size: usize = records.iter().map(Bytes::len).sum();
        header.long(records.len() as i64).long(size as i64);
        for r in records {
            header.out.put_slice(r);
        }
        header.out.put_slice(&sync);
    }
    header.finish()
}

/// The records of a container file written without a codec, each as one [`Decoder`] over
/// the file's blocks (records must then be decoded one after another from it).
pub fn read_file(file: Bytes) -> Result<(Vec<(String, String)>, Decoder)> {
    if file.len() < 4 || &file[..4] != MAGIC {
        return Err(corrupt("no Avro magic"));
    }
    let mut d = Decoder::new(file.slice(4..));
    let mut metadata: Vec<(String, Bytes)> = Vec::new();
    loop {
        let count = d.long()?;
        if count == 0 {
            break;
        }
        if count < 0 {
            d.long()?; // the block's size in bytes
        }
        for _ in 0..count.unsigned_abs() {
            let key = d.string()?;
            let value = d.bytes()?;
            metadata.push((key, value));
        }
    }
    let codec = metadata.iter().find(|(k, _)| k == "avro.codec").map(|(_, v)| v.clone());
    if codec.is_some_and(|c| &c[..] != b"null") {
        return Err(SinkError::Fatal("an Iceberg manifest list is compressed: another writer changed the table".into()));
    }
    if d.input.len() < 16 {
        return Err(corrupt("no sync marker"));
    }
    let sync = d.input.split_to(16);
    let mut records = BytesMut::new();
    while !d.is_empty() {
        let _count = d.long()?;
        let data = d.bytes()?;
        records.put_slice(&data);
        if d.input.len() < 16 || d.input.split_to(16) != sync {
            return Err(corrupt("a block without its sync marker"));
        }
    }
    let metadata = metadata.into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned())).collect();
    Ok((metadata, Decoder::new(records.freeze())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_strings_and_files_round_trip() -> Result<()> {
        let mut e = Encoder::default();
        e.long(0).long(-1).long(1).long(i64::MAX).long(i64::MIN).string("héllo").null().some().int(-7);
        let mut d = Decoder::new(e.finish());
        assert_eq!([d.long()?, d.long()?, d.long()?, d.long()?, d.long()?], [0, -1, 1, i64::MAX, i64::MIN]);
        assert_eq!(d.string()?, "héllo");
        assert!(!d.some()? && d.some()?);
        assert_eq!(d.int()?, -7);
        assert!(d.is_empty());

        let records: Vec<Bytes> = (0..3).map(|i| { let mut e = Encoder::default(); e.long(i).string("x"); e.finish() }).collect();
        let file = write_file("{\"type\":\"record\"}", &[("format-version", "2".into())], &records);
        let (metadata, mut d) = read_file(file)?;
        assert!(metadata.contains(&("format-version".into(), "2".into())));
        for i in 0..3 {
            assert_eq!((d.long()?, d.string()?), (i, "x".to_string()));
        }
        assert!(d.is_empty());
        Ok(())
    }
}
