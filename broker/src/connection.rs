//! One client connection: frames in, responses out, in request order.
//!
//! Requests are handled one after another, as Kafka does, so a client's pipelined produce
//! requests reach each partition in the order they were sent. A produce waiting for its fsync
//! does not hold up the requests behind it: its response is a future that the writer task
//! awaits in turn, so responses still leave in order.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tracing::Instrument;

use crate::api::{self, Ctx, Outcome};
use crate::frame::{Frame, read_frame};
use crate::request_memory::Reservation;
use crate::request;
use crate::security::Session;
use crate::{Broker, BrokerError, Result};

/// How many answered-but-unsent responses a connection may queue before it stops reading.
const MAX_QUEUED_RESPONSES: usize = 256;

struct Reply {
    correlation_id: i32,
    ctx: Arc<Ctx>,
    outcome: Outcome,
}

/// A reply on its way out, with the request memory its request holds until it is written.
type Queued = (Reply, Reservation);

/// Serves one connection (its two halves, plaintext or TLS) until the client closes it, it
/// misbehaves, or the broker stops.
pub async fn serve<R, W>(broker: Arc<Broker>, read: R, write: W, session: Arc<Session>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let peer = session.peer;
    broker.metrics.connection_opened();
    let (tx, rx) = mpsc::channel(MAX_QUEUED_RESPONSES);
    let writer = tokio::spawn(write_replies(broker.clone(), write, rx));
    match read_requests(&broker, &session, BufReader::with_capacity(64 * 1024, read), tx).await {
        Ok(()) => tracing::debug!(%peer, "connection closed"),
        // Logged where it failed, as the client's doing.
        Err(BrokerError::Authentication(_)) => tracing::debug!(%peer, "connection closed after failed authentication"),
        Err(e) => tracing::warn!(%peer, error = %e, "closing connection"),
    }
    if let Err(e) = writer.await {
        tracing::warn!(%peer, error = %e, "response writer failed");
    }
    broker.metrics.connection_closed();
}

async fn read_requests<R: AsyncRead + Unpin>(
    broker: &Arc<Broker>,
    session: &Arc<Session>,
    mut reader: BufReader<R>,
    replies: mpsc::Sender<Queued>,
) -> Result<()> {
    // Only SASL listeners have authentication state to consult between requests.
    let sasl = session.listener.protocol.uses_sasl();
    loop {
        // Before authentication a client may only be asking to authenticate: keep its frames
        // small, as Kafka does (`sasl.server.max.receive.size`).
        let max = if session.principal().is_some() { broker.config.socket_request_max_bytes } else { MAX_SASL_FRAME };
        // A throttled client (quotas) is not read from until its throttle time has passed.
        if let Some(until) = session.take_mute() {
            tokio::select! {
                _ = broker.shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep_until(until.into()) => {}
            }
        }
        let frame = tokio::select! {
            _ = broker.shutdown.cancelled() => return Ok(()),
            frame = read_frame(&mut reader, max, &broker.request_memory) => frame?,
        };
        let Some(Frame { bytes: frame, memory }) = frame else { return Ok(()) };
        broker.metrics.bytes_in(frame.len() + 4);
        let reply = if sasl && session.expects_raw_token().await {
            raw_sasl_token(broker, session, &frame).await?
        } else {
            handle_frame(broker, session, frame).await?
        };
        if replies.send((reply, memory)).await.is_err() {
            return Ok(()); // the writer is gone: the socket broke
        }
        if sasl && session.failed().await {
            return Err(BrokerError::Authentication(session.peer.to_string()));
        }
    }
}

/// Largest frame read from a connection that has not authenticated.
const MAX_SASL_FRAME: usize = 512 * 1024;

/// A bare SASL token after SaslHandshake v0: answered with a bare token, or the connection
/// closes (there is no error field to carry a failure).
async fn raw_sasl_token(broker: &Arc<Broker>, session: &Arc<Session>, token: &[u8]) -> Result<Reply> {
    let reauth = broker.config.connections_max_reauth;
    let reply = session.authenticate(broker, token, reauth).await?;
    let ctx = Ctx::new(broker.clone(), ApiKey::SaslAuthenticate, 0, String::new(), session.clone());
    Ok(Reply { correlation_id: 0, ctx, outcome: Outcome::Raw(reply.token) })
}

/// Decodes one request and runs its handler.
async fn handle_frame(broker: &Arc<Broker>, session: &Arc<Session>, mut frame: Bytes) -> Result<Reply> {
    let request::Header { api, version, header } = request::header(&mut frame)?;
    let client_id = header.client_id.as_ref().map_or("", |c| c.as_str()).to_owned();
    let span = tracing::info_span!("request", api = ?api, version, client_id = %client_id, correlation_id = header.correlation_id);

    if !api::is_supported(api, version) {
        if api == ApiKey::ApiVersions {
            // KIP-511: answer in v0, whatever version was asked, with the versions we do
            // support, so the client can ask again.
            let ctx = Ctx::new(broker.clone(), api, 0, client_id, session.clone());
            let _ = ctx.code(kafka_protocol::error::ResponseError::UnsupportedVersion);
            let outcome = Outcome::Now(Box::new(ResponseKind::ApiVersions(api::unsupported_version_response())));
            return Ok(Reply { correlation_id: header.correlation_id, ctx, outcome });
        }
        span.in_scope(|| tracing::warn!("unsupported version; closing connection"));
        return Err(BrokerError::UnsupportedVersion { api, version });
    }
    if session.listener.protocol.uses_sasl()
        && let Err(why) = session.admits(api).await
    {
        span.in_scope(|| tracing::warn!(peer = %session.peer, "{why}; closing connection"));
        return Err(BrokerError::Authentication(format!("{api:?}: {why}")));
    }
    let request = request::body(api, version, &mut frame)?;
    let ctx = Ctx::new(broker.clone(), api, version, client_id, session.clone());
    let started = std::time::Instant::now();
    let outcome = api::dispatch(&ctx, request).instrument(span).await?;
    let outcome = api::throttle::request_time(&ctx, started.elapsed(), outcome);
    Ok(Reply { correlation_id: header.correlation_id, ctx, outcome })
}

/// Writes responses in request order. Output is buffered, but flushed whenever the writer
/// would otherwise wait (for the next reply, or for a reply still waiting on its sync), so a
/// busy pipelined connection never holds finished responses back.
async fn write_replies<W: AsyncWrite + Unpin>(broker: Arc<Broker>, write: W, mut replies: mpsc::Receiver<Queued>) {
    let mut out = BufWriter::with_capacity(64 * 1024, write);
    loop {
        // The request's memory goes back to the pool as this iteration ends.
        let (reply, _memory) = match replies.try_recv() {
            Ok(queued) => queued,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                if out.flush().await.is_err() {
                    return;
                }
                match replies.recv().await {
                    Some(queued) => queued,
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
            Outcome::Raw(token) => {
                broker.metrics.request(reply.ctx.api, 0);
                let mut frame = BytesMut::with_capacity(4 + token.len());
                frame.put_i32(token.len() as i32);
                frame.put_slice(&token);
                if out.write_all(&frame).await.is_err() {
                    return;
                }
                continue;
            }
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
