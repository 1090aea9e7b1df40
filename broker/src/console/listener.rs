//! The console's connections for axum: plain, or TLS with `--console-tls` (accepted as the gRPC
//! API's are, handshakes beside the accepting). Each request learns its [`Peer`]: the address,
//! and the client certificate's subject, which logs the visitor in as that user.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::server::Connected as _;

use crate::grpc::incoming::{self, Connection, Peer};
use crate::security::tls::ReloadingTls;
use crate::Broker;

pub struct ConsoleListener {
    connections: ReceiverStream<io::Result<Connection>>,
    local: SocketAddr,
}

impl ConsoleListener {
    pub fn new(listener: TcpListener, tls: Option<Arc<ReloadingTls>>, broker: Arc<Broker>) -> io::Result<ConsoleListener> {
        let local = listener.local_addr()?;
        let connections = incoming::accept("console", listener, tls, broker.clone(), broker.shutdown.clone());
        Ok(ConsoleListener { connections, local })
    }
}

impl axum::serve::Listener for ConsoleListener {
    type Io = Connection;
    type Addr = Peer;

    async fn accept(&mut self) -> (Connection, Peer) {
        loop {
            match self.connections.next().await {
                Some(Ok(connection)) => {
                    let peer = connection.connect_info();
                    return (connection, peer);
                }
                // Accept errors are logged (and retried) where they happen.
                Some(Err(_)) => continue,
                // Accepting stopped: the broker is shutting down, and so is the server.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Peer> {
        Ok(Peer { addr: self.local, certificate_subject: None })
    }
}

impl Connected<IncomingStream<'_, ConsoleListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, ConsoleListener>) -> Peer {
        stream.remote_addr().clone()
    }
}
