//! Accepting connections, and stopping gracefully.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::{connection, Broker};

/// Serves Kafka clients on `listener` until `broker.shutdown` is cancelled, then lets
/// in-flight requests finish (for at most `grace`) and syncs storage.
pub async fn run(listener: TcpListener, broker: Arc<Broker>, grace: Duration) {
    let connections = TaskTracker::new();
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(connection::serve(broker.clone(), stream, peer));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    connections.close();
    tracing::info!(connections = connections.len(), "shutting down: finishing in-flight requests");
    if tokio::time::timeout(grace, connections.wait()).await.is_err() {
        tracing::warn!("shutdown grace period over; dropping remaining connections");
    }
    if let Err(e) = broker.storage().sync().await {
        tracing::error!(error = %e, "final storage sync failed");
    }
}
