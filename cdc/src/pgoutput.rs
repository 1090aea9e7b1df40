//! Decoding of pgoutput (protocol version 1) messages, as carried in XLogData.

use bytes::{Buf, Bytes};

use crate::error::{CdcError, Result};
use crate::lsn::Lsn;

/// One column value in a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue {
    Null,
    /// A TOASTed value that did not change and that the server did not send ('u').
    UnchangedToast,
    /// The value in its text output form.
    Text(String),
}

/// A column as a Relation message describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity (the key pgoutput sends for updates and deletes).
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

/// A decoded pgoutput message.
#[derive(Debug, Clone, PartialEq)]
pub enum PgOutputMessage {
    Begin { final_lsn: Lsn, commit_ts: i64, xid: u32 },
    Commit { flags: u8, commit_lsn: Lsn, end_lsn: Lsn, commit_ts: i64 },
    Origin { lsn: Lsn, name: String },
    Relation { oid: u32, schema: String, name: String, replica_identity: u8, columns: Vec<RelationColumn> },
    Type { oid: u32, schema: String, name: String },
    Insert { relation: u32, new: Vec<TupleValue> },
    /// `old` is the old key ('K') or the whole old row ('O', replica identity full) when sent.
    Update { relation: u32, old: Option<OldTuple>, new: Vec<TupleValue> },
    Delete { relation: u32, old: OldTuple },
    Truncate { options: u8, relations: Vec<u32> },
    /// A logical message (`pg_logical_emit_message`); `transactional` ones sit inside Begin/Commit.
    Message { transactional: bool, lsn: Lsn, prefix: String, content: Bytes },
}

/// The old row of an update or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldTuple {
    /// Only the replica identity columns (others are null placeholders).
    Key(Vec<TupleValue>),
    /// The whole old row (REPLICA IDENTITY FULL).
    Full(Vec<TupleValue>),
}

impl OldTuple {
    pub fn values(&self) -> &[TupleValue] {
        match self {
            OldTuple::Key(v) | OldTuple::Full(v) => v,
        }
    }
}

/// Decodes one pgoutput message.
pub fn decode(mut buf: Bytes) -> Result<PgOutputMessage> {
    let tag = u8(&mut buf)?;
    let message = match tag {
        b'B' => PgOutputMessage::Begin { final_lsn: Lsn(u64(&mut buf)?), commit_ts: i64(&mut buf)?, xid: u32(&mut buf)? },
        b'C' => PgOutputMessage::Commit {
            flags: u8(&mut buf)?,
            commit_lsn: Lsn(u64(&mut buf)?),
            end_lsn: Lsn(u64(&mut buf)?),
            commit_ts: i64(&mut buf)?,
        },
        b'O' => PgOutputMessage::Origin { lsn: Lsn(u64(&mut buf)?), name: cstr(&mut buf)? },
        b'R' => {
            let oid = u32(&mut buf)?;
            let schema = cstr(&mut buf)?;
            let name = cstr(&mut buf)?;
            let replica_identity = u8(&mut buf)?;
            let count = i16(&mut buf)?;
            let mut columns = Vec::with_capacity(count.max(0) as usize);
            for _ in 0..count {
                let flags = u8(&mut buf)?;
                columns.push(RelationColumn {
                    key: flags & 1 == 1,
                    name: cstr(&mut buf)?,
                    type_oid: u32(&mut buf)?,
                    type_modifier: i32(&mut buf)?,
                });
            }
            PgOutputMessage::Relation { oid, schema, name, replica_identity, columns }
        }
        b'Y' => PgOutputMessage::Type { oid: u32(&mut buf)?, schema: cstr(&mut buf)?, name: cstr(&mut buf)? },
        b'I' => {
            let relation = u32(&mut buf)?;
            expect(&mut buf, b'N')?;
            PgOutputMessage::Insert { relation, new: tuple(&mut buf)? }
        }
        b'U' => {
            let relation = u32(&mut buf)?;
            let old = match u8(&mut buf)? {
                b'K' => {
                    let old = Some(OldTuple::Key(tuple(&mut buf)?));
                    expect(&mut buf, b'N')?;
                    old
                }
                b'O' => {
                    let old = Some(OldTuple::Full(tuple(&mut buf)?));
                    expect(&mut buf, b'N')?;
                    old
                }
                b'N' => None,
                other => return Err(CdcError::decode(format!("update: unexpected tuple kind {:?}", other as char))),
            };
            PgOutputMessage::Update { relation, old, new: tuple(&mut buf)? }
        }
        b'D' => {
            let relation = u32(&mut buf)?;
            let old = match u8(&mut buf)? {
                b'K' => OldTuple::Key(tuple(&mut buf)?),
                b'O' => OldTuple::Full(tuple(&mut buf)?),
                other => return Err(CdcError::decode(format!("delete: unexpected tuple kind {:?}", other as char))),
            };
            PgOutputMessage::Delete { relation, old }
        }
        b'T' => {
            let count = i32(&mut buf)?;
            let options = u8(&mut buf)?;
            let mut relations = Vec::with_capacity(count.clamp(0, 1024) as usize);
            for _ in 0..count {
                relations.push(u32(&mut buf)?);
            }
            PgOutputMessage::Truncate { options, relations }
        }
        b'M' => {
            let flags = u8(&mut buf)?;
            let lsn = Lsn(u64(&mut buf)?);
            let prefix = cstr(&mut buf)?;
            let len = i32(&mut buf)?;
            let len = usize::try_from(len).map_err(|_| CdcError::decode("negative message length"))?;
            if buf.remaining() < len {
                return Err(CdcError::decode("message content is cut short"));
            }
            PgOutputMessage::Message { transactional: flags & 1 == 1, lsn, prefix, content: buf.split_to(len) }
        }
        other => return Err(CdcError::decode(format!("unknown message type {:?}", other as char))),
    };
    Ok(message)
}

fn tuple(buf: &mut Bytes) -> Result<Vec<TupleValue>> {
    let count = i16(buf)?;
    let mut values = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        values.push(match u8(buf)? {
            b'n' => TupleValue::Null,
            b'u' => TupleValue::UnchangedToast,
            b't' => {
                let len = usize::try_from(i32(buf)?).map_err(|_| CdcError::decode("negative value length"))?;
                if buf.remaining() < len {
                    return Err(CdcError::decode("value is cut short"));
                }
                let raw = buf.split_to(len);
                TupleValue::Text(String::from_utf8(raw.to_vec()).map_err(|_| CdcError::decode("value is not UTF-8"))?)
            }
            other => return Err(CdcError::decode(format!("unsupported column kind {:?} (binary is not requested)", other as char))),
        });
    }
    Ok(values)
}

fn expect(buf: &mut Bytes, wanted: u8) -> Result<()> {
    let got = u8(buf)?;
    if got != wanted {
        return Err(CdcError::decode(format!("expected {:?}, got {:?}", wanted as char, got as char)));
    }
    Ok(())
}

fn need(buf: &Bytes, n: usize) -> Result<()> {
    if buf.remaining() < n {
        return Err(CdcError::decode("message is cut short"));
    }
    Ok(())
}

fn u8(buf: &mut Bytes) -> Result<u8> {
    need(buf, 1)?;
    Ok(buf.get_u8())
}

fn i16(buf: &mut Bytes) -> Result<i16> {
    need(buf, 2)?;
    Ok(buf.get_i16())
}

fn i32(buf: &mut Bytes) -> Result<i32> {
    need(buf, 4)?;
    Ok(buf.get_i32())
}

fn u32(buf: &mut Bytes) -> Result<u32> {
    need(buf, 4)?;
    Ok(buf.get_u32())
}

fn i64(buf: &mut Bytes) -> Result<i64> {
    need(buf, 8)?;
    Ok(buf.get_i64())
}

fn u64(buf: &mut Bytes) -> Result<u64> {
    need(buf, 8)?;
    Ok(buf.get_u64())
}

fn cstr(buf: &mut Bytes) -> Result<String> {
    let end = buf.iter().position(|b| *b == 0).ok_or_else(|| CdcError::decode("missing string terminator"))?;
    let text = String::from_utf8(buf.split_to(end).to_vec()).map_err(|_| CdcError::decode("name is not UTF-8"))?;
    buf.advance(1);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    #[test]
    fn decodes_update_with_old_key_and_unchanged_toast() {
        let mut b = BytesMut::new();
        b.put_u8(b'U');
        b.put_u32(42);
        b.put_u8(b'K');
        b.put_i16(2);
        b.put_u8(b't');
        b.put_i32(1);
        b.put_slice(b"1");
        b.put_u8(b'n');
        b.put_u8(b'N');
        b.put_i16(2);
        b.put_u8(b't');
        b.put_i32(1);
        b.put_slice(b"2");
        b.put_u8(b'u');
        let decoded = decode(b.freeze()).map_err(|e| e.to_string());
        assert_eq!(
            decoded,
            Ok(PgOutputMessage::Update {
                relation: 42,
                old: Some(OldTuple::Key(vec![TupleValue::Text("1".into()), TupleValue::Null])),
                new: vec![TupleValue::Text("2".into()), TupleValue::UnchangedToast],
            })
        );
    }

    #[test]
    fn rejects_truncated_input() {
        assert!(decode(Bytes::from_static(b"B\0\0")).is_err());
        assert!(decode(Bytes::from_static(b"")).is_err());
        assert!(decode(Bytes::from_static(b"Z")).is_err());
    }
}
