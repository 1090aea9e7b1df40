//! Group commit: many appends, one `Storage::sync`.
//!
//! An append registers with the committer and gets a [`Durable`] to wait on. A single task
//! runs `sync` whenever work is pending; everything registered before a sync started is
//! durable when it returns, so concurrent producers share one fsync. Only then are the new
//! high watermarks published, so consumers never read data a crash could take back.

use std::sync::{Arc, Mutex};

use ductstream_storage::Storage;
use tokio::sync::{oneshot, Notify};

use crate::log::PartitionState;

/// Resolves once an append survives a crash, or with the reason it may not.
pub struct Durable(Option<oneshot::Receiver<Result<(), String>>>);

impl Durable {
    /// Waits until the append is durable.
    pub async fn wait(self) -> Result<(), String> {
        match self.0 {
            Some(rx) => rx.await.unwrap_or_else(|_| Err("broker is shutting down".into())),
            None => Ok(()),
        }
    }
}

struct Pending {
    partition: Arc<PartitionState>,
    high_watermark: i64,
    done: oneshot::Sender<Result<(), String>>,
}

pub struct Committer {
    pending: Mutex<Vec<Pending>>,
    wake: Notify,
}

impl Committer {
    /// Starts the commit task on the current runtime.
    pub fn start(storage: Arc<dyn Storage>) -> Arc<Committer> {
        let committer = Arc::new(Committer { pending: Mutex::new(Vec::new()), wake: Notify::new() });
        tokio::spawn(run(committer.clone(), storage));
        committer
    }

    /// Registers an append that moved `partition` to `high_watermark`.
    pub fn register(&self, partition: Arc<PartitionState>, high_watermark: i64) -> Durable {
        let (done, rx) = oneshot::channel();
        match self.pending.lock() {
            Ok(mut pending) => pending.push(Pending { partition, high_watermark, done }),
            Err(_) => return Durable(None),
        }
        self.wake.notify_one();
        Durable(Some(rx))
    }
}

async fn run(committer: Arc<Committer>, storage: Arc<dyn Storage>) {
    let mut failed: Vec<(Arc<PartitionState>, i64)> = Vec::new();
    loop {
        committer.wake.notified().await;
        loop {
            let round = match committer.pending.lock() {
                Ok(mut pending) => std::mem::take(&mut *pending),
                Err(_) => return,
            };
            if round.is_empty() && failed.is_empty() {
                break;
            }
            match storage.sync().await {
                Ok(()) => {
                    for (partition, hw) in failed.drain(..) {
                        partition.publish_high_watermark(hw);
                    }
                    for p in round {
                        p.partition.publish_high_watermark(p.high_watermark);
                        let _ = p.done.send(Ok(()));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "storage sync failed; answering producers with an error");
                    let message = format!("storage sync failed: {e}");
                    for p in round {
                        // The data is stored but not known durable: publish it with the next
                        // sync that succeeds, and let the producer retry meanwhile.
                        failed.push((p.partition, p.high_watermark));
                        let _ = p.done.send(Err(message.clone()));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    break;
                }
            }
        }
    }
}
