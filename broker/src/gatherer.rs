//! Gathers the writes of all partitions into one storage call, for stores where that is one
//! transaction (Postgres): while one call is with storage, the partitions' next groups wait
//! here and go together in the next, so the store commits (and flushes its WAL) once for
//! them all instead of once per partition.

use std::sync::{Arc, Mutex};

use ductstream_storage::{AppendOutcome, PartitionWrite, Storage, StorageError};
use tokio::sync::oneshot;

type Results = Vec<ductstream_storage::Result<AppendOutcome>>;

pub struct Gatherer {
    storage: Arc<dyn Storage>,
    line: Mutex<Line>,
}

#[derive(Default)]
struct Line {
    waiting: Vec<(PartitionWrite, oneshot::Sender<Results>)>,
    /// A call is with storage; whoever finds it idle starts the next.
    busy: bool,
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
                line.waiting.push((write, reply));
                !std::mem::replace(&mut line.busy, true)
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
                    let waiting = std::mem::take(&mut line.waiting);
                    if waiting.is_empty() {
                        line.busy = false;
                    }
                    waiting
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
