//! Gathers the writes of all partitions into one storage call, for stores where that is one
//! transaction (Postgres): while a call is with storage, the partitions' next groups wait
//! here and go together in the next, so the store commits (and flushes its WAL) once for
//! them all instead of once per partition. When much is waiting, up to [`MAX_CALLS`] calls
//! run at once, so a store with several connections writes in parallel: small writes are
//! grouped for latency, large ones spread for throughput.

use std::sync::{Arc, Mutex};

use ductstream_storage::{AppendOutcome, PartitionWrite, Storage, StorageError};
use tokio::sync::oneshot;

type Results = Vec<ductstream_storage::Result<AppendOutcome>>;

/// Calls with storage at once, at most.
const MAX_CALLS: usize = 8;
/// Waiting bytes that justify another call while one is running.
const PARALLEL_BYTES: usize = 256 << 10;
/// Bytes one call takes, at most (it always takes at least one write).
const CALL_BYTES: usize = 2 << 20;

pub struct Gatherer {
    storage: Arc<dyn Storage>,
    line: Mutex<Line>,
}

#[derive(Default)]
struct Line {
    waiting: std::collections::VecDeque<(PartitionWrite, oneshot::Sender<Results>)>,
    waiting_bytes: usize,
    /// Calls running; each takes what waits until nothing does.
    calls: usize,
}

fn bytes(write: &PartitionWrite) -> usize {
    write.batches.iter().map(|(b, _)| b.len()).sum()
}

impl Gatherer {
    pub fn new(storage: Arc<dyn Storage>) -> Arc<Gatherer> {
        Arc::new(Gatherer { storage, line: Mutex::new(Line::default()) })
    }

    /// Stores one partition's batches with whatever else is waiting; one result per batch.
    pub async fn write(self: &Arc<Self>, write: PartitionWrite) -> Results {
        let count = write.batches.len();
        let (reply, answer) = oneshot::channel();
        let start = match self.line.lock() {
            Ok(mut line) => {
                line.waiting_bytes += bytes(&write);
                line.waiting.push_back((write, reply));
                let start = line.calls == 0 || (line.calls < MAX_CALLS && line.waiting_bytes >= PARALLEL_BYTES);
                if start {
                    line.calls += 1;
                }
                start
            }
            Err(_) => return failed(count, "the write line's lock is poisoned"),
        };
        if start {
            let this = self.clone();
            tokio::spawn(async move { this.run().await });
        }
        answer.await.unwrap_or_else(|_| failed(count, "the write was dropped unanswered"))
    }

    async fn run(&self) {
        loop {
            let waiting = match self.line.lock() {
                Ok(mut line) => {
                    let mut taken = Vec::new();
                    let mut taken_bytes = 0;
                    while let Some(next) = line.waiting.front() {
                        let size = bytes(&next.0);
                        if !taken.is_empty() && taken_bytes + size > CALL_BYTES {
                            break;
                        }
                        taken_bytes += size;
                        taken.extend(line.waiting.pop_front());
                    }
                    line.waiting_bytes -= taken_bytes;
                    if taken.is_empty() {
                        line.calls -= 1;
                    }
                    taken
                }
                Err(_) => return,
            };
            if waiting.is_empty() {
                return;
            }
            let (writes, replies): (Vec<PartitionWrite>, Vec<_>) = waiting.into_iter().unzip();
            let results = self.storage.append_partitions(writes).await;
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
    }
}

fn failed(count: usize, why: &str) -> Results {
    (0..count).map(|_| Err(StorageError::Engine(why.to_string()))).collect()
}
