//! Runs sinks: the stored state says which sinks should run; each broker runs those it
//! coordinates (every sink, on an embedded store) and reconciles every few seconds, so sinks
//! resume after a restart and move when their broker dies.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ductstream_sinks::runtime::{MemoryBudget, PartitionLag, SinkRunner, SinkStatus, StatusSnapshot, TopicPartition};
use ductstream_sinks::SinkError;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::model::{SinkDef, SinkState};
use super::source::LogSource;
use super::{flow_sinks, store};
use crate::clock::now_ms;
use crate::{Broker, BrokerError, Result};

/// How long creating a sink waits for its destination to answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SinkManager {
    broker: Arc<Broker>,
    budget: MemoryBudget,
    running: tokio::sync::Mutex<HashMap<String, Running>>,
    wake: Notify,
}

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
    status: Arc<SinkStatus>,
    /// The definition it runs, to restart it when the stored one changes.
    updated_ms: i64,
}

/// A sink with its progress: counters when this broker runs it, lag from storage always.
pub struct SinkView {
    pub def: SinkDef,
    pub progress: Option<StatusSnapshot>,
    pub partitions: BTreeMap<TopicPartition, PartitionLag>,
}

impl SinkView {
    pub fn lag(&self) -> i64 {
        self.partitions.values().map(PartitionLag::lag).sum()
    }
}

impl SinkManager {
    /// `memory_bytes` is the budget every sink of this process shares for buffered records.
    pub fn new(broker: Arc<Broker>, memory_bytes: usize) -> Arc<SinkManager> {
        Arc::new(SinkManager { broker, budget: MemoryBudget::new(memory_bytes), running: Default::default(), wake: Notify::new() })
    }

    fn storage(&self) -> &dyn ductstream_storage::Storage {
        self.broker.storage().as_ref()
    }

    /// Validates the sink, checks that its destination takes it (a missing bucket or wrong
    /// credentials are refused now; an unreachable one is not: the sink retries), stores it.
    pub async fn create(&self, mut def: SinkDef, paused: bool) -> Result<SinkView> {
        def.validate()?;
        check_destination(&def).await?;
        let now = now_ms();
        def.state = if paused { SinkState::Paused } else { SinkState::Running };
        (def.last_error, def.flow_id, def.created_ms, def.updated_ms) = (String::new(), String::new(), now, now);
        store::insert(self.storage(), &def).await?;
        tracing::info!(sink = %def.id, kind = %def.destination.kind, "created sink");
        self.wake.notify_one();
        Ok(self.view(def).await)
    }

    pub async fn get(&self, id: &str) -> Result<SinkView> {
        let def = store::load(self.storage(), id).await?;
        Ok(self.view(def).await)
    }

    pub async fn list(&self) -> Result<Vec<SinkView>> {
        let topics = self.storage().topics().await?;
        let mut out = Vec::new();
        for def in store::list(self.storage()).await? {
            out.push(self.view_with(def, &topics).await);
        }
        Ok(out)
    }

    pub async fn start(&self, id: &str) -> Result<SinkView> {
        let def = store::update(self.storage(), id, |sink| {
            if sink.state == SinkState::Running {
                return Err(BrokerError::FailedPrecondition(format!("sink {id:?} is running")));
            }
            sink.state = SinkState::Running;
            sink.last_error.clear();
            Ok(())
        })
        .await?;
        tracing::info!(sink = id, "sink started");
        self.wake.notify_one();
        Ok(self.view(def).await)
    }

    /// Pauses the sink; returns once this broker's runner, if any, has stopped.
    pub async fn stop(&self, id: &str) -> Result<SinkView> {
        let def = store::update(self.storage(), id, |sink| {
            if sink.state != SinkState::Running {
                return Err(BrokerError::FailedPrecondition(format!("sink {id:?} is not running: it is {:?}", sink.state)));
            }
            sink.state = SinkState::Paused;
            Ok(())
        })
        .await?;
        self.stop_local(id).await;
        tracing::info!(sink = id, "sink stopped");
        Ok(self.view(def).await)
    }

    pub async fn delete(&self, id: &str) -> Result<()> {
        let def = store::load(self.storage(), id).await?;
        if !def.flow_id.is_empty() {
            return Err(BrokerError::FailedPrecondition(format!(
                "sink {id:?} is flow {:?}'s destination: remove it from the flow instead",
                def.flow_id
            )));
        }
        self.stop_local(id).await;
        store::delete(self.storage(), id).await?;
        tracing::info!(sink = id, "deleted sink");
        Ok(())
    }

    /// Moves a stopped sink to the start (`earliest`) or the end (`latest`) of its topics.
    pub async fn reset(&self, id: &str, to: &str) -> Result<SinkView> {
        let def = store::load(self.storage(), id).await?;
        if def.state == SinkState::Running || self.running.lock().await.contains_key(id) {
            return Err(BrokerError::FailedPrecondition(format!("sink {id:?} is running: stop it before resetting it")));
        }
        store::forget_progress(self.storage(), id).await?;
        match to {
            "" | "earliest" => {}
            "latest" => {
                let source = LogSource::new(self.broker.log.clone());
                let mut offsets = Vec::new();
                let selector = def.selector()?;
                for topic in self.storage().topics().await?.into_iter().filter(|t| selector.selects(&t.name)) {
                    for p in 0..topic.partitions {
                        offsets.push(((topic.name.clone(), p), self.broker.log.offsets(&topic, p).await?.high_watermark));
                    }
                }
                ductstream_sinks::runtime::SinkSource::commit(&source, &def.group(), &offsets)
                    .await
                    .map_err(|e| BrokerError::Storage(ductstream_storage::StorageError::Engine(e.to_string())))?;
            }
            other => return Err(BrokerError::InvalidArgument(format!("reset to {other:?}: use earliest or latest"))),
        }
        tracing::info!(sink = id, to, "sink reset");
        Ok(self.view(def).await)
    }

    /// Starts, stops and restarts this broker's sinks to match their stored states.
    pub async fn reconcile(&self) -> Result<()> {
        let mut sinks = store::list(self.storage()).await?;
        if flow_sinks::sync(self.storage(), &sinks).await? {
            sinks = store::list(self.storage()).await?;
        }
        let mut running = self.running.lock().await;
        running.retain(|_, r| !r.task.is_finished());
        let mut stop = Vec::new();
        for def in &sinks {
            let wanted = def.state == SinkState::Running && self.broker.cluster.coordinates(&format!("sink:{}", def.id));
            match (wanted, running.get(&def.id)) {
                (true, Some(r)) if r.updated_ms == def.updated_ms => {}
                (true, _) => {
                    stop.extend(running.remove(&def.id)); // its definition changed
                    match self.spawn(def) {
                        Ok(r) => {
                            running.insert(def.id.clone(), r);
                        }
                        Err(e) => fail(self.broker.clone(), &def.id, e.to_string()).await,
                    }
                }
                (false, Some(_)) => stop.extend(running.remove(&def.id)),
                (false, None) => {}
            }
        }
        let known: std::collections::HashSet<&str> = sinks.iter().map(|s| s.id.as_str()).collect();
        let gone: Vec<String> = running.keys().filter(|id| !known.contains(id.as_str())).cloned().collect();
        for id in gone {
            stop.extend(running.remove(&id));
        }
        drop(running);
        for r in stop {
            self.finish(r).await;
        }
        self.publish_statuses().await;
        Ok(())
    }

    /// Reconciles until the broker shuts down, then stops every sink.
    pub async fn run(self: Arc<Self>) {
        crate::reconcile::until_shutdown(&self.broker, &self.wake, "sinks", || self.reconcile()).await;
        let running: Vec<Running> = self.running.lock().await.drain().map(|(_, r)| r).collect();
        for r in running {
            self.finish(r).await;
        }
    }

    async fn stop_local(&self, id: &str) {
        let found = self.running.lock().await.remove(id);
        if let Some(r) = found {
            self.finish(r).await;
        }
        self.publish_statuses().await;
    }

    async fn finish(&self, r: Running) {
        r.stop.cancel();
        let _ = r.task.await;
    }

    /// The statuses of the sinks this broker runs, for metrics.
    async fn publish_statuses(&self) {
        let statuses: BTreeMap<String, Arc<SinkStatus>> =
            self.running.lock().await.iter().map(|(id, r)| (id.clone(), r.status.clone())).collect();
        if let Ok(mut shown) = self.broker.sink_statuses.lock() {
            *shown = statuses;
        }
    }

    fn spawn(&self, def: &SinkDef) -> Result<Running> {
        let runner = runner(def, Arc::new(LogSource::new(self.broker.log.clone())), self.budget.clone())?;
        let status = runner.status();
        let stop = CancellationToken::new();
        let (broker, id, token) = (self.broker.clone(), def.id.clone(), stop.clone());
        tracing::info!(sink = %id, "sink starting");
        let task = tokio::spawn(async move {
            match runner.run(token).await {
                Ok(()) => tracing::info!(sink = %id, "sink stopped"),
                Err(e) => {
                    tracing::warn!(sink = %id, error = %e, "sink failed");
                    fail(broker, &id, e.to_string()).await;
                }
            }
        });
        Ok(Running { stop, task, status, updated_ms: def.updated_ms })
    }

    async fn view(&self, def: SinkDef) -> SinkView {
        let topics = self.storage().topics().await.unwrap_or_default();
        self.view_with(def, &topics).await
    }

    /// The sink's view, its lag taken over those of `topics` it reads.
    async fn view_with(&self, def: SinkDef, topics: &[ductstream_storage::Topic]) -> SinkView {
        let progress = self.running.lock().await.get(&def.id).map(|r| r.status.snapshot());
        let mut partitions = BTreeMap::new();
        let committed: HashMap<TopicPartition, i64> = match self.storage().committed_offsets(&def.group()).await {
            Ok(offsets) => offsets.into_iter().map(|o| ((o.topic, o.partition), o.offset)).collect(),
            Err(_) => HashMap::new(),
        };
        let selector = def.selector().unwrap_or_default();
        for topic in topics.iter().filter(|t| selector.selects(&t.name)) {
            for p in 0..topic.partitions {
                let Ok(bounds) = self.broker.log.offsets(topic, p).await else { continue };
                let tp = (topic.name.clone(), p);
                let done = committed.get(&tp).copied();
                let lag = PartitionLag { committed: done.unwrap_or(-1), high_watermark: bounds.high_watermark };
                partitions.insert(tp, lag);
            }
        }
        SinkView { def: def.redacted(), progress, partitions }
    }
}

/// The runner of `def` on `source`.
pub fn runner(def: &SinkDef, source: Arc<dyn ductstream_sinks::runtime::SinkSource>, budget: MemoryBudget) -> Result<SinkRunner> {
    let (sink, options) = ductstream_sinks::open_sink(&def.destination, &def.id).map_err(|e| BrokerError::InvalidArgument(e.to_string()))?;
    Ok(SinkRunner::new(&def.id, &def.group(), def.selector()?, sink, options, source, budget))
}

/// Opens the destination once: what it refuses for good is refused at create time.
async fn check_destination(def: &SinkDef) -> Result<()> {
    let (mut sink, _) = ductstream_sinks::open_sink(&def.destination, &def.id).map_err(|e| BrokerError::InvalidArgument(e.to_string()))?;
    let checked = tokio::time::timeout(CHECK_TIMEOUT, sink.open()).await;
    let _ = sink.close().await;
    match checked {
        Ok(Err(SinkError::Fatal(reason))) => Err(BrokerError::FailedPrecondition(format!("sink {:?}: {reason}", def.id))),
        Ok(Err(SinkError::Config(reason))) => Err(BrokerError::InvalidArgument(format!("sink {:?}: {reason}", def.id))),
        Ok(Err(e)) => {
            tracing::warn!(sink = %def.id, error = %e, "the sink's destination does not answer yet; the sink will retry");
            Ok(())
        }
        Ok(Ok(())) => Ok(()),
        Err(_) => {
            tracing::warn!(sink = %def.id, "the sink's destination did not answer in time; the sink will retry");
            Ok(())
        }
    }
}

/// Marks a running sink FAILED with `error`.
async fn fail(broker: Arc<Broker>, id: &str, error: String) {
    let stored = store::update(broker.storage().as_ref(), id, |s| {
        if s.state == SinkState::Running {
            s.state = SinkState::Failed;
            s.last_error = error.clone();
        }
        Ok(())
    })
    .await;
    if let Err(e) = stored {
        tracing::warn!(sink = id, error = %e, "cannot record the sink's failure");
    }
}
