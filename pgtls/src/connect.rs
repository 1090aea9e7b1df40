//! rustls under tokio-postgres, and the SSLRequest exchange for raw streams.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::{TlsError, TlsSettings};

/// A `MakeTlsConnect` for tokio-postgres: `Config::connect(connector)`.
#[derive(Clone)]
pub struct MakeRustlsConnect {
    config: Arc<ClientConfig>,
}

impl MakeRustlsConnect {
    pub(crate) fn new(config: Arc<ClientConfig>) -> MakeRustlsConnect {
        MakeRustlsConnect { config }
    }

    fn server_name(domain: &str) -> Result<ServerName<'static>, TlsError> {
        ServerName::try_from(domain.to_string()).map_err(|e| TlsError::Parameter("host", format!("{domain:?}: {e}")))
    }
}

impl<S> MakeTlsConnect<S> for MakeRustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = TlsError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, TlsError> {
        Ok(RustlsConnect { config: self.config.clone(), name: Self::server_name(domain)? })
    }
}

/// One connection's handshake.
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let stream = TlsConnector::from(self.config).connect(self.name, stream).await?;
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// An encrypted connection.
pub struct RustlsStream<S>(Box<TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    // SCRAM then runs without channel binding, as over a plain connection.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// A raw connection after the SSLRequest exchange: encrypted, or plain where the mode allows.
pub enum Negotiated<S> {
    Plain(S),
    Tls(RustlsStream<S>),
}

/// The SSLRequest message: length 8, code 1234 5679.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// Asks the server for TLS on `stream` (a TCP connection to `host`) as `settings` say, before
/// the startup message is sent: `sslmode=disable` skips the question, a refusal is an error
/// unless the mode allows plain connections.
pub async fn negotiate<S>(
    mut stream: S,
    host: &str,
    settings: &TlsSettings,
    connector: &MakeRustlsConnect,
) -> Result<Negotiated<S>, TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if settings.mode != crate::SslMode::Disable {
        stream.write_all(&SSL_REQUEST).await?;
        stream.flush().await?;
        match stream.read_u8().await? {
            b'S' => {
                let name = MakeRustlsConnect::server_name(host)?;
                let tls = TlsConnector::from(connector.config.clone()).connect(name, stream).await?;
                return Ok(Negotiated::Tls(RustlsStream(Box::new(tls))));
            }
            b'N' if settings.mode.allows_plain() => {}
            b'N' => return Err(TlsError::Refused(settings.mode.name())),
            other => {
                return Err(TlsError::Io(io::Error::other(format!("unexpected answer {other:#04x} to SSLRequest"))));
            }
        }
    }
    Ok(Negotiated::Plain(stream))
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Negotiated<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Negotiated::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Negotiated::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Negotiated<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Negotiated::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Negotiated::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Negotiated::Plain(s) => Pin::new(s).poll_flush(cx),
            Negotiated::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Negotiated::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Negotiated::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SslMode, split_dsn};

    /// A server that answers the SSLRequest with `answer`, then echoes a byte back.
    async fn server(answer: u8) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 8];
                if socket.read_exact(&mut request).await.is_err() || request != SSL_REQUEST {
                    continue;
                }
                let _ = socket.write_all(&[answer]).await;
                if let Ok(byte) = socket.read_u8().await {
                    let _ = socket.write_all(&[byte]).await;
                }
            }
        });
        addr
    }

    async fn try_mode(addr: std::net::SocketAddr, mode: SslMode) -> Result<Negotiated<tokio::net::TcpStream>, TlsError> {
        let (_, settings) = split_dsn(&format!("postgres://u@127.0.0.1/db?sslmode={}", mode.name())).expect("dsn");
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        negotiate(stream, "127.0.0.1", &settings, &settings.connector().expect("connector")).await
    }

    #[tokio::test]
    async fn a_server_without_tls_is_refused_unless_the_mode_allows_plain() {
        let addr = server(b'N').await;
        for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            if mode != SslMode::Require && crate::verify::client_config(&TlsSettings { mode, root_cert: None }).is_err() {
                continue; // no system roots on this machine: the connector cannot be built
            }
            assert!(matches!(try_mode(addr, mode).await, Err(TlsError::Refused(_))), "{mode:?}");
        }
        let Ok(Negotiated::Plain(mut stream)) = try_mode(addr, SslMode::Prefer).await else {
            panic!("prefer falls back to plain");
        };
        stream.write_all(b"x").await.expect("write");
        assert_eq!(stream.read_u8().await.expect("echo"), b'x', "the stream carries on after the exchange");
    }

    #[tokio::test]
    async fn disable_does_not_ask() {
        // A server that would fail the exchange: nothing may be sent before the startup message.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            socket.read_u8().await.expect("a byte")
        });
        let Ok(Negotiated::Plain(mut stream)) = try_mode(addr, SslMode::Disable).await else {
            panic!("disable is plain");
        };
        stream.write_all(&[7]).await.expect("write");
        assert_eq!(server.await.expect("server"), 7, "the first byte is the caller's, not an SSLRequest");
    }
}
