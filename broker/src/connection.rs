//! One client connection: frames in, responses out, in request order.
//!
//! Requests are handled one after another, as Kafka does, so a client's pipelined produce
//! requests reach each partition in the order they were sent. A produce waiting for its fsync
//! does not hold up the requests behind it: its response is a future that the writer task
//! awaits in turn, so responses still leave in order.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tracing::Instrument;

use crate::api::{self, Ctx, Outcome};
use crate::frame::read_frame;
use crate::{Broker, BrokerError, Result};

/// How many answered-but-unsent responses a connection may queue before it stops reading.
const MAX_QUEUED_RESPONSES: usize = 256;

struct Reply {
    correlation_id: i32,
    ctx: Arc<Ctx>,
    outcome: Outcome,
}

/// Serves one connection until the client closes it, it misbehaves, or the broker stops.
pub async fn serve(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    broker.metrics.connection_opened();
    let (read, write) = stream.into_split();
    let (tx, rx) = mpsc::channel(MAX_QUEUED_RESPONSES);
    let writer = tokio::spawn(write_replies(broker.clone(), write, rx));
    match read_requests(&broker, peer, BufReader::with_capacity(64 * 1024, read), tx).await {
        Ok(()) => tracing::debug!(%peer, "connection closed"),
        Err(e) => tracing::warn!(%peer, error = %e, "closing connection"),
    }
    if let Err(e) = writer.await {
        tracing::warn!(%peer, error = %e, "response writer failed");
    }
    broker.metrics.connection_closed();
}

async fn read_requests(
    broker: &Arc<Broker>,
    peer: SocketAddr,
    mut reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    replies: mpsc::Sender<Reply>,
) -> Result<()> {
    loop {
        let frame = tokio::select! {
            _ = broker.shutdown.cancelled() => return Ok(()),
            frame = read_frame(&mut reader, broker.config.socket_request_max_bytes) => frame?,
        };
        let Some(frame) = frame else { return Ok(()) };
        broker.metrics.bytes_in(frame.len() + 4);
        let reply = handle_frame(broker, peer, frame).await?;
        if replies.send(reply).await.is_err() {
            return Ok(()); // the writer is gone: the socket broke
        }
    }
}

/// Decodes one request and runs its handler.
async fn handle_frame(broker: &Arc<Broker>, peer: SocketAddr, mut frame: Bytes) -> Result<Reply> {
    if frame.len() < 8 {
        return Err(BrokerError::Decode(format!("request of {} bytes is too short for a header", frame.len())));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(raw_key).map_err(|_| BrokerError::UnknownApiKey(raw_key))?;
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| BrokerError::Decode(format!("{api:?} v{version} header: {e}")))?;
    let client_id = header.client_id.as_ref().map_or("", |c| c.as_str()).to_owned();
    let span = tracing::info_span!("request", api = ?api, version, client_id = %client_id, correlation_id = header.correlation_id);

    if !api::is_supported(api, version) {
        if api == ApiKey::ApiVersions {
            // KIP-511: answer in v0, whatever version was asked, with the versions we do
            // support, so the client can ask again.
            let ctx = Ctx::new(broker.clone(), api, 0, client_id, format!("/{}", peer.ip()));
            let _ = ctx.code(kafka_protocol::error::ResponseError::UnsupportedVersion);
            let outcome = Outcome::Now(Box::new(ResponseKind::ApiVersions(api::unsupported_version_response())));
            return Ok(Reply { correlation_id: header.correlation_id, ctx, outcome });
        }
        span.in_scope(|| tracing::warn!("unsupported version; closing connection"));
        return Err(BrokerError::UnsupportedVersion { api, version });
    }
    let request = RequestKind::decode(api, &mut frame, version)
        .map_err(|e| BrokerError::Decode(format!("{api:?} v{version}: {e}")))?;
    let ctx = Ctx::new(broker.clone(), api, version, client_id, format!("/{}", peer.ip()));
    let outcome = api::dispatch(&ctx, request).instrument(span).await?;
    Ok(Reply { correlation_id: header.correlation_id, ctx, outcome })
}

/// Writes responses in request order. Output is buffered, but flushed whenever the writer
/// would otherwise wait (for the next reply, or for a reply still waiting on its sync), so a
/// busy pipelined connection never holds finished responses back.
async fn write_replies(broker: Arc<Broker>, write: OwnedWriteHalf, mut replies: mpsc::Receiver<Reply>) {
    let mut out = BufWriter::with_capacity(64 * 1024, write);
    loop {
        let reply = match replies.try_recv() {
            Ok(reply) => reply,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                if out.flush().await.is_err() {
                    return;
                }
                match replies.recv().await {
                    Some(reply) => reply,
                    None => break,
                }
            }
        };
        let response = match reply.outcome {
            Outcome::Now(response) => Some(*response),
            Outcome::Later(mut response) => match (&mut response).now_or_never() {
                Some(ready) => Some(ready),
                None => {
                    if out.flush().await.is_err() {
                        return;
                    }
                    Some(response.await)
                }
            },
            Outcome::Silent => None,
        };
        broker.metrics.request(reply.ctx.api, reply.ctx.first_error());
        let Some(response) = response else { continue };
        let frame = match encode(reply.correlation_id, &reply.ctx, &response) {
            Ok(frame) => frame,
            Err(e) => {
                tracing::error!(api = ?reply.ctx.api, version = reply.ctx.version, error = %e, "cannot encode response");
                return;
            }
        };
        broker.metrics.bytes_out(frame.len());
        if out.write_all(&frame).await.is_err() {
            return;
        }
    }
    let _ = out.flush().await;
}

fn encode(correlation_id: i32, ctx: &Ctx, response: &ResponseKind) -> Result<Bytes> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // length, filled in below
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, ctx.api.response_header_version(ctx.version))
        .map_err(|e| BrokerError::Encode(e.to_string()))?;
    response.encode(&mut buf, ctx.version).map_err(|e| BrokerError::Encode(e.to_string()))?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}
