//! The loop flows and sinks share: each broker compares what it runs with the stored states
//! every few seconds, and at once when woken, until it shuts down.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Notify;

use crate::{Broker, Result};

/// How often a broker compares what it runs with the stored states.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(2);

/// Runs `reconcile` every [`RECONCILE_EVERY`] and whenever `wake` is notified, until the broker
/// shuts down; a failed round (storage away) is logged and tried again at the next.
pub async fn until_shutdown<F: Future<Output = Result<()>>>(broker: &Broker, wake: &Notify, what: &str, mut reconcile: impl FnMut() -> F) {
    loop {
        if let Err(e) = reconcile().await {
            tracing::warn!(error = %e, "cannot reconcile {what}; retrying");
        }
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(RECONCILE_EVERY) => {}
        }
    }
}
