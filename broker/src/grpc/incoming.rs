//! The connections of the gRPC API and the web console: accepted on their TCP listener and,
//! with `--grpc-tls` or `--console-tls`, wrapped in TLS (the Kafka listeners' certificate, key
//! and client CA, reloaded alike) before HTTP starts. Each connection tells the services its
//! peer address and client certificate subject.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::security::tls::ReloadingTls;
use crate::Broker;

/// What a service learns about the connection a call came on (a request extension).
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The client certificate's subject (RFC 2253), when the client presented one.
    pub certificate_subject: Option<String>,
}

pub enum Connection {
    Plain(TcpStream, Peer),
    Tls(Box<TlsStream<TcpStream>>, Peer),
}

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        match self {
            Connection::Plain(_, peer) | Connection::Tls(_, peer) => peer.clone(),
        }
    }
}

/// Accepts connections for `service` (named in the logs) until `stop`; TLS handshakes run
/// beside the accepting, so a slow client holds up no one else.
pub fn accept(
    service: &'static str,
    listener: TcpListener,
    tls: Option<Arc<ReloadingTls>>,
    broker: Arc<Broker>,
    stop: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<Connection>> {
    let (ready, connections) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, addr) = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(service, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // No Nagle: a reply's last short segment must not wait ~40 ms for the client's ACK.
            let _ = stream.set_nodelay(true);
            let Some(tls) = tls.clone() else {
                if ready.send(Ok(Connection::Plain(stream, Peer { addr, certificate_subject: None }))).await.is_err() {
                    return;
                }
                continue;
            };
            let (ready, broker) = (ready.clone(), broker.clone());
            tokio::spawn(async move {
                match tls.accept(stream).await {
                    Ok((stream, certificate_subject)) => {
                        let _ = ready.send(Ok(Connection::Tls(Box::new(stream), Peer { addr, certificate_subject }))).await;
                    }
                    Err(why) => {
                        tracing::info!(service, peer = %addr, error = %why, "TLS handshake failed; closing connection");
                        broker.metrics.tls_handshake_failed();
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(connections)
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s, _) => Pin::new(s).poll_read(cx, buf),
            Connection::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s, _) => Pin::new(s).poll_write(cx, buf),
            Connection::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
            Connection::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Plain(s, _) => s.is_write_vectored(),
            Connection::Tls(s, _) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s, _) => Pin::new(s).poll_flush(cx),
            Connection::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s, _) => Pin::new(s).poll_shutdown(cx),
            Connection::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
