//! Accepting connections on every listener, and stopping gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use crate::connection_limits::ConnectionLimits;
use crate::security::{Listener, Principal, Session};
use crate::{connection, Broker};

/// Serves Kafka clients on `listeners` until `broker.shutdown` is cancelled, then lets
/// in-flight requests finish (for at most `grace`) and syncs storage.
pub async fn run(listeners: Vec<(TcpListener, Arc<Listener>)>, broker: Arc<Broker>, grace: Duration) {
    let connections = TaskTracker::new();
    let limits = ConnectionLimits::new(broker.config.max_connections_per_ip, broker.config.max_connections);
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|(socket, listener)| tokio::spawn(accept(socket, listener, broker.clone(), connections.clone(), limits.clone())))
        .collect();
    for task in accepting {
        let _ = task.await;
    }
    connections.close();
    tracing::info!(connections = connections.len(), "shutting down: finishing in-flight requests");
    if tokio::time::timeout(grace, connections.wait()).await.is_err() {
        tracing::warn!("shutdown grace period over; dropping remaining connections");
    }
    if let Err(e) = broker.storage().sync().await {
        tracing::error!(error = %e, "final storage sync failed");
    }
}

async fn accept(socket: TcpListener, listener: Arc<Listener>, broker: Arc<Broker>, connections: TaskTracker, limits: Arc<ConnectionLimits>) {
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            accepted = socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Some(place) = limits.admit(peer.ip()) else {
                        // Dropping the stream closes it.
                        tracing::debug!(%peer, listener = %listener.name, "too many connections; closing the new one");
                        broker.metrics.connection_refused();
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let (listener, broker) = (listener.clone(), broker.clone());
                    connections.spawn(async move {
                        open(stream, peer, listener, broker).await;
                        drop(place);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, listener = %listener.name, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Runs the TLS handshake where the listener has TLS, then serves the connection.
async fn open(stream: TcpStream, peer: SocketAddr, listener: Arc<Listener>, broker: Arc<Broker>) {
    let Some(tls) = &listener.tls else {
        let session = Arc::new(Session::new(listener.clone(), peer, None));
        let (read, write) = stream.into_split();
        return connection::serve(broker, read, write, session).await;
    };
    let (stream, subject) = match tls.accept(stream).await {
        Ok(accepted) => accepted,
        Err(why) => {
            tracing::info!(%peer, listener = %listener.name, error = %why, "TLS handshake failed; closing connection");
            broker.metrics.tls_handshake_failed();
            return;
        }
    };
    let subject = subject.map(Principal::user);
    let session = Arc::new(Session::new(listener.clone(), peer, subject));
    let (read, write) = tokio::io::split(stream);
    connection::serve(broker, read, write, session).await;
}
