//! The few parts of the Postgres frontend/backend protocol a replication connection needs:
//! framing, startup with md5 / SCRAM-SHA-256 authentication, the simple query protocol and
//! error responses. Message builders and the authentication maths come from
//! `postgres-protocol`; its backend parser does not know CopyBothResponse, so backend
//! messages are framed here.

use bytes::{Buf, Bytes, BytesMut};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{CdcError, Result};

/// A byte stream to the server (TCP or a Unix socket).
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// One backend message: its tag and body (without the length).
#[derive(Debug)]
pub(crate) struct BackendMessage {
    pub tag: u8,
    pub body: Bytes,
}

/// An ErrorResponse, reduced to what callers map into [`CdcError`].
#[derive(Debug, Clone)]
pub(crate) struct ServerError {
    pub code: String,
    pub message: String,
}

impl ServerError {
    pub(crate) fn parse(body: &[u8]) -> ServerError {
        let mut code = String::new();
        let mut message = String::new();
        let mut detail = String::new();
        for field in body.split(|b| *b == 0) {
            let Some((&kind, value)) = field.split_first() else { continue };
            let value = String::from_utf8_lossy(value).into_owned();
            match kind {
                b'C' => code = value,
                b'M' => message = value,
                b'D' => detail = value,
                _ => {}
            }
        }
        if !detail.is_empty() {
            message = format!("{message} ({detail})");
        }
        ServerError { code, message }
    }
}

/// Reads whole messages from a buffered stream half.
pub(crate) struct FrameReader<R> {
    read: R,
    buf: BytesMut,
}

/// Largest backend message accepted (pgoutput sends whole rows; 1 GiB is Postgres' own limit).
const MAX_MESSAGE: usize = 1 << 30;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(read: R) -> Self {
        FrameReader { read, buf: BytesMut::with_capacity(64 * 1024) }
    }

    /// A complete message already buffered, if any.
    pub(crate) fn try_frame(&mut self) -> Result<Option<BackendMessage>> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let tag = self.buf[0];
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if !(4..=MAX_MESSAGE).contains(&len) {
            return Err(CdcError::protocol(format!("invalid message length {len} for tag {:?}", tag as char)));
        }
        if self.buf.len() < len + 1 {
            self.buf.reserve(len + 1 - self.buf.len());
            return Ok(None);
        }
        let mut frame = self.buf.split_to(len + 1);
        frame.advance(5);
        Ok(Some(BackendMessage { tag, body: frame.freeze() }))
    }

    /// Reads more bytes once. Cancel safe: nothing is lost when the future is dropped.
    pub(crate) async fn fill(&mut self) -> Result<()> {
        let n = self.read.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(CdcError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
        Ok(())
    }

    pub(crate) async fn next(&mut self) -> Result<BackendMessage> {
        loop {
            if let Some(frame) = self.try_frame()? {
                return Ok(frame);
            }
            self.fill().await?;
        }
    }
}

/// Result rows of a simple query, every value as text.
#[derive(Debug, Default)]
pub(crate) struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl QueryResult {
    pub(crate) fn get(&self, row: usize, column: &str) -> Option<&str> {
        let index = self.columns.iter().position(|c| c == column)?;
        self.rows.get(row)?.get(index)?.as_deref()
    }
}

pub(crate) fn parse_row_description(mut body: Bytes) -> Result<Vec<String>> {
    let count = read_i16(&mut body)?;
    let mut names = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        names.push(read_cstr(&mut body)?);
        if body.remaining() < 18 {
            return Err(CdcError::protocol("short RowDescription"));
        }
        body.advance(18);
    }
    Ok(names)
}

pub(crate) fn parse_data_row(mut body: Bytes) -> Result<Vec<Option<String>>> {
    let count = read_i16(&mut body)?;
    let mut values = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        let len = read_i32(&mut body)?;
        if len < 0 {
            values.push(None);
            continue;
        }
        let len = len as usize;
        if body.remaining() < len {
            return Err(CdcError::protocol("short DataRow"));
        }
        let value = body.split_to(len);
        values.push(Some(String::from_utf8_lossy(&value).into_owned()));
    }
    Ok(values)
}

fn read_i16(body: &mut Bytes) -> Result<i16> {
    if body.remaining() < 2 {
        return Err(CdcError::protocol("message too short"));
    }
    Ok(body.get_i16())
}

fn read_i32(body: &mut Bytes) -> Result<i32> {
    if body.remaining() < 4 {
        return Err(CdcError::protocol("message too short"));
    }
    Ok(body.get_i32())
}

fn read_cstr(body: &mut Bytes) -> Result<String> {
    let end = body.iter().position(|b| *b == 0).ok_or_else(|| CdcError::protocol("missing string terminator"))?;
    let text = String::from_utf8_lossy(&body[..end]).into_owned();
    body.advance(end + 1);
    Ok(text)
}

/// Who is connecting, for startup and for error messages.
pub(crate) struct Credentials<'a> {
    pub user: &'a str,
    pub password: Option<&'a [u8]>,
}

/// Sends the startup message and answers authentication until the server is ready.
pub(crate) async fn startup<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    reader_buf: &mut FrameReader<R>,
    writer: &mut W,
    params: &[(&str, &str)],
    credentials: &Credentials<'_>,
) -> Result<()> {
    let mut buf = BytesMut::new();
    frontend::startup_message(params.iter().copied(), &mut buf)?;
    writer.write_all(&buf).await?;
    let mut scram: Option<ScramSha256> = None;
    loop {
        let message = reader_buf.next().await?;
        match message.tag {
            b'R' => {
                let mut body = message.body;
                let kind = read_i32(&mut body)?;
                buf.clear();
                match kind {
                    0 => continue,
                    3 => {
                        let password = password(credentials)?;
                        frontend::password_message(password, &mut buf)?;
                    }
                    5 => {
                        let password = password(credentials)?;
                        if body.remaining() < 4 {
                            return Err(CdcError::protocol("short md5 salt"));
                        }
                        let salt = [body[0], body[1], body[2], body[3]];
                        let hashed = md5_hash(credentials.user.as_bytes(), password, salt);
                        frontend::password_message(hashed.as_bytes(), &mut buf)?;
                    }
                    10 => {
                        let mechanisms: Vec<&[u8]> = body.split(|b| *b == 0).filter(|m| !m.is_empty()).collect();
                        if !mechanisms.contains(&&b"SCRAM-SHA-256"[..]) {
                            return Err(CdcError::protocol("the server offers no SASL mechanism this client supports (SCRAM-SHA-256)"));
                        }
                        let password = password(credentials)?;
                        // No TLS here, so there is no channel to bind to.
                        let client = ScramSha256::new(password, ChannelBinding::unsupported());
                        frontend::sasl_initial_response("SCRAM-SHA-256", client.message(), &mut buf)?;
                        scram = Some(client);
                    }
                    11 => {
                        let client = scram.as_mut().ok_or_else(|| CdcError::protocol("SASL continue without start"))?;
                        client.update(&body).map_err(|e| CdcError::protocol(format!("SCRAM: {e}")))?;
                        frontend::sasl_response(client.message(), &mut buf)?;
                    }
                    12 => {
                        let client = scram.as_mut().ok_or_else(|| CdcError::protocol("SASL final without start"))?;
                        client.finish(&body).map_err(|e| CdcError::protocol(format!("SCRAM server signature: {e}")))?;
                        continue;
                    }
                    other => return Err(CdcError::protocol(format!("unsupported authentication method {other}"))),
                }
                writer.write_all(&buf).await?;
            }
            b'E' => {
                let error = ServerError::parse(&message.body);
                return Err(CdcError::from_server(&error.code, &error.message, credentials.user, ""));
            }
            b'Z' => return Ok(()),
            // ParameterStatus, BackendKeyData, NoticeResponse
            _ => {}
        }
    }
}

fn password<'a>(credentials: &Credentials<'a>) -> Result<&'a [u8]> {
    credentials.password.ok_or_else(|| CdcError::Authentication {
        user: credentials.user.to_string(),
        message: "the server asks for a password and the dsn has none".into(),
    })
}
