//! Runs flows: the stored state says which flows should run; each broker runs those it
//! coordinates (every flow, on an embedded store) and reconciles every few seconds, so flows
//! resume after a restart and move when their broker dies.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ductstream_cdc::{Flow, FlowHandle, FlowPhase, FlowSourceOptions, FlowStatus};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::ddl::DdlBoard;
use super::model::{FlowDef, FlowState};
use super::store::{self, StorageCheckpoints};
use super::writer::TopicWriter;
use crate::clock::now_ms;
use crate::reconcile::RECONCILE_EVERY;
use crate::{Broker, BrokerError, Result};

pub struct FlowManager {
    broker: Arc<Broker>,
    running: tokio::sync::Mutex<HashMap<String, Running>>,
    pub ddl: Arc<DdlBoard>,
    /// `DUCTSTREAM_DDL_GATE=true`: flows pause at each DDL change until it is decided.
    ddl_gate_default: bool,
    wake: Notify,
}

struct Running {
    handle: FlowHandle,
    task: JoinHandle<()>,
    /// The definition it runs, to restart it when the stored one changes.
    updated_ms: i64,
}

/// What `publication sync` asks of a flow (see [`FlowManager::sync_publication`]).
#[derive(Debug, Clone, Default)]
pub struct PublicationSync {
    /// `add` (the default) or `sync`.
    pub mode: String,
    /// `schema.table` names for `publication_tables`.
    pub tables: Vec<String>,
    /// Schema names for `publication_schemas`.
    pub schemas: Vec<String>,
    /// Read the named and newly published tables before streaming on.
    pub snapshot: bool,
}

/// A flow with its progress when this broker runs it.
pub struct FlowView {
    pub def: FlowDef,
    pub status: Option<FlowStatus>,
    /// With `--schedule`: the flow's last scheduled runs, oldest first.
    pub scheduled_runs: Vec<super::schedule::Finished>,
}

impl FlowManager {
    pub fn new(broker: Arc<Broker>, ddl_gate_default: bool) -> Arc<FlowManager> {
        Arc::new(FlowManager {
            ddl: Arc::new(DdlBoard::new(broker.storage().clone(), broker.config.ddl_auto)),
            broker,
            running: tokio::sync::Mutex::new(HashMap::new()),
            ddl_gate_default,
            wake: Notify::new(),
        })
    }

    pub(crate) fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    fn storage(&self) -> &dyn ductstream_storage::Storage {
        self.broker.storage().as_ref()
    }

    /// Stores a new flow. One without an id gets one made from its name: the name's slug,
    /// then `-2`, `-3`... until it is free.
    pub async fn create(&self, mut def: FlowDef) -> Result<FlowView> {
        def.apply_wire_policy(&self.broker.config.wire_format, self.broker.config.wire_enforce)?;
        let base = if def.id.is_empty() { Some(FlowDef::id_from_name(&def.name)?) } else { None };
        let now = now_ms();
        (def.state, def.last_error, def.created_ms, def.updated_ms) = (FlowState::Created, String::new(), now, now);
        for n in 1.. {
            let mut candidate = def.clone();
            if let Some(base) = &base {
                candidate.id = if n == 1 { base.clone() } else { format!("{base}-{n}") };
            }
            candidate.name_own_slot_and_publication();
            candidate.validate()?;
            match store::insert(self.storage(), &candidate).await {
                Err(BrokerError::AlreadyExists(_)) if base.is_some() && n < 1000 => continue,
                Err(e) => return Err(e),
                Ok(()) => {
                    tracing::info!(flow = %candidate.id, "created flow");
                    return Ok(FlowView { def: candidate, status: None, scheduled_runs: Vec::new() });
                }
            }
        }
        Err(BrokerError::AlreadyExists(format!("no free flow id made from the name {:?}", def.name)))
    }

    /// Replaces the definition, keeping state, error and creation time.
    pub async fn update(&self, mut def: FlowDef) -> Result<FlowView> {
        def.apply_wire_policy(&self.broker.config.wire_format, self.broker.config.wire_enforce)?;
        let stored = store::load(self.storage(), &def.id).await?;
        def.keep_secrets_of(&stored);
        def.keep_names_of(&stored);
        def.validate()?;
        let now = now_ms();
        let stored = store::update(self.storage(), &def.id, |current| {
            *current = FlowDef {
                state: current.state,
                last_error: current.last_error.clone(),
                created_ms: current.created_ms,
                updated_ms: now,
                ..def.clone()
            };
            Ok(())
        })
        .await?;
        self.wake.notify_one();
        Ok(self.view(stored).await)
    }

    pub async fn get(&self, id: &str) -> Result<FlowView> {
        let def = store::load(self.storage(), id).await?;
        Ok(self.view(def).await)
    }

    pub async fn list(&self) -> Result<Vec<FlowView>> {
        let mut out = Vec::new();
        for def in store::list(self.storage()).await? {
            out.push(self.view(def).await);
        }
        Ok(out)
    }

    /// Stops and forgets the flow, then drops its replication slot unless `keep_slot`.
    /// Returns the slot and what became of it; a slot that cannot be dropped (the source is
    /// unreachable, say) does not keep the flow from being deleted.
    pub async fn delete(&self, id: &str, keep_slot: bool) -> Result<(String, String)> {
        let def = store::load(self.storage(), id).await?;
        self.stop_local(id).await;
        store::delete(self.storage(), id).await?;
        self.ddl.forget(id, false).await?;
        let options = match FlowSourceOptions::from_map(&def.source_options(false)).and_then(|o| o.normalized()) {
            Ok(options) => options,
            Err(e) => return Ok((String::new(), format!("not dropped: source options: {e}"))),
        };
        let outcome = if keep_slot {
            "kept".to_string()
        } else {
            // Long enough for a broker running the flow to notice it is gone (it reconciles
            // every RECONCILE_EVERY) and close its replication connection.
            let patience = RECONCILE_EVERY * 5;
            let dropped = match ductstream_cdc::SourceConfig::parse(&options.dsn) {
                Ok(source) => ductstream_cdc::slot::drop_slot(&source, &options.slot, patience).await,
                Err(e) => Err(e),
            };
            if dropped.is_ok() && let Ok(client) = async { ductstream_cdc::SourceConfig::parse(&options.dsn)?.connect().await }.await {
                ductstream_cdc::state::forget(&client, &options).await;
                ductstream_cdc::snapshot_state::forget(&client, &options).await;
            }
            match dropped {
                Ok(ductstream_cdc::slot::Dropped::Dropped) => "dropped".to_string(),
                Ok(ductstream_cdc::slot::Dropped::NotFound) => "not found".to_string(),
                Err(e) => format!("not dropped: {e}"),
            }
        };
        tracing::info!(flow = id, slot = %options.slot, outcome = %outcome, "deleted flow");
        Ok((options.slot, outcome))
    }

    pub async fn start(&self, id: &str) -> Result<FlowView> {
        self.move_to(id, &[FlowState::Created, FlowState::Paused, FlowState::Failed], FlowState::Running, "start").await
    }

    pub async fn resume(&self, id: &str) -> Result<FlowView> {
        self.move_to(id, &[FlowState::Paused, FlowState::Failed], FlowState::Running, "resume").await
    }

    /// Asks the flow to stop and waits a little for it to reach PAUSED.
    pub async fn stop(&self, id: &str) -> Result<FlowView> {
        self.move_to(id, &[FlowState::Running], FlowState::Stopping, "stop").await?;
        for _ in 0..50 {
            let def = store::load(self.storage(), id).await?;
            if def.state != FlowState::Stopping {
                return Ok(self.view(def).await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.get(id).await
    }

    async fn move_to(&self, id: &str, from: &[FlowState], to: FlowState, verb: &str) -> Result<FlowView> {
        let def = store::update(self.storage(), id, |flow| {
            if !from.contains(&flow.state) {
                return Err(BrokerError::FailedPrecondition(format!("cannot {verb} flow {id:?}: it is {:?}", flow.state)));
            }
            flow.state = to;
            if to == FlowState::Running {
                flow.last_error.clear();
            }
            Ok(())
        })
        .await?;
        tracing::info!(flow = id, state = ?to, "flow state changed");
        self.wake.notify_one();
        Ok(self.view(def).await)
    }

    /// Runs a flow that is not running until it has written nothing new for `idle`, then
    /// stops it. Returns its last progress.
    pub async fn run_once(&self, id: &str, idle: Duration, timeout: Duration) -> Result<(FlowView, FlowStatus)> {
        let def = store::load(self.storage(), id).await?;
        if matches!(def.state, FlowState::Running | FlowState::Stopping) || self.running.lock().await.contains_key(id) {
            return Err(BrokerError::FailedPrecondition(format!("flow {id:?} is running: stop it before running it once")));
        }
        let status = self.run_until_idle(&def, idle, timeout).await?;
        Ok((self.get(id).await?, status))
    }

    /// One scheduled run of a RUNNING flow (see [`super::schedule`]): until it has written
    /// nothing new for `empty_reads` batch timeouts. Returns the outcome as the run record
    /// keeps it, and the records written.
    pub(crate) async fn run_scheduled(&self, def: &FlowDef, empty_reads: u32, timeout: Duration) -> (String, u64) {
        let batch_timeout = FlowSourceOptions::from_map(&def.source_options(self.ddl_gate_default))
            .map(|o| o.batch_timeout)
            .unwrap_or(Duration::from_secs(1));
        let idle = (batch_timeout * empty_reads.max(1)).max(Duration::from_millis(200));
        match self.run_until_idle(def, idle, timeout).await {
            Err(e) => (format!("failed: {e}"), 0),
            Ok(status) => {
                let gated = self.ddl.list(&def.id).await.map(|l| l.iter().any(|d| d.status == super::ddl::DdlStatus::Pending));
                let outcome = if gated.unwrap_or(false) { "ddl gated" } else { "caught up" };
                (outcome.to_owned(), status.records_written)
            }
        }
    }

    /// Runs the flow here until it has written nothing new for `idle` (or `timeout`), then
    /// stops it; returns its last progress.
    async fn run_until_idle(&self, def: &FlowDef, idle: Duration, timeout: Duration) -> Result<FlowStatus> {
        let id = def.id.as_str();
        let (handle, task) = self.spawn(def, false)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = (u64::MAX, tokio::time::Instant::now());
        loop {
            let status = handle.status();
            match &status.phase {
                FlowPhase::Failed(e) => {
                    let _ = task.await;
                    return Err(BrokerError::InvalidArgument(format!("flow {id:?} failed: {e}")));
                }
                FlowPhase::Stopped => break,
                FlowPhase::Streaming if status.records_written == last.0 && last.1.elapsed() >= idle => break,
                FlowPhase::Streaming if status.records_written != last.0 => last = (status.records_written, tokio::time::Instant::now()),
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        handle.stop();
        let _ = task.await;
        Ok(FlowStatus { phase: FlowPhase::Stopped, ..handle.status() })
    }

    /// The flow's publication and its tables; with `sync`, first made to match the flow's
    /// `publication_tables` ("add" or "sync" mode).
    pub async fn publication(&self, id: &str, sync: Option<&str>) -> Result<(String, Vec<String>)> {
        let def = store::load(self.storage(), id).await?;
        let mut map = def.source_options(false);
        if let Some(mode) = sync {
            map.insert("sync_publication".into(), "true".into());
            map.insert("sync_publication_mode".into(), if mode.is_empty() { "add".into() } else { mode.to_owned() });
        }
        let options = FlowSourceOptions::from_map(&map)
            .and_then(|o| o.normalized())
            .map_err(|e| BrokerError::InvalidArgument(format!("source options: {e}")))?;
        let source = ductstream_cdc::SourceConfig::parse(&options.dsn).map_err(|e| BrokerError::InvalidArgument(e.to_string()))?;
        let unavailable = |e: ductstream_cdc::CdcError| BrokerError::FailedPrecondition(format!("source: {e}"));
        let client = source.connect().await.map_err(unavailable)?;
        if sync.is_some() {
            ductstream_cdc::publication::prepare_publication(&client, &options).await.map_err(unavailable)?;
        }
        let tables = ductstream_cdc::publication::published_tables(&client, &options.publication).await.map_err(unavailable)?;
        Ok((options.publication.clone(), tables.iter().map(|t| format!("{}.{}", t.schema, t.name)).collect()))
    }

    /// `publication sync`: adds `sync.tables` and `sync.schemas` to the flow's
    /// `publication_tables` and `publication_schemas` (mode `sync` replaces them), makes the
    /// publication match, and with `sync.snapshot` plans a backfill of the tables named and of
    /// those the sync published. A snapshot needs the flow stopped, so that it reads the new
    /// tables before it streams on. Returns the publication and the tables planned.
    pub async fn sync_publication(&self, id: &str, sync: &PublicationSync) -> Result<(String, Vec<String>, Vec<String>)> {
        let mode = if sync.mode.is_empty() { "add" } else { sync.mode.as_str() };
        if !matches!(mode, "add" | "sync") {
            return Err(BrokerError::InvalidArgument(format!("publication sync mode {mode:?}: use add or sync")));
        }
        let def = store::load(self.storage(), id).await?;
        if sync.snapshot && matches!(def.state, FlowState::Running | FlowState::Stopping) {
            return Err(BrokerError::FailedPrecondition(format!(
                "flow {id:?} is {:?}: stop it to snapshot tables (ductstream-admin publication sync --pause --resume)",
                def.state
            )));
        }
        let before = if sync.snapshot { self.publication(id, None).await?.1 } else { Vec::new() };
        if !sync.tables.is_empty() || !sync.schemas.is_empty() {
            store::update(self.storage(), id, |flow| {
                for (key, names) in [("publication_tables", &sync.tables), ("publication_schemas", &sync.schemas)] {
                    if names.is_empty() {
                        continue;
                    }
                    let options = &mut flow.source.options;
                    let mut list: Vec<String> = match (mode, options.get(key)) {
                        ("add", Some(current)) => current.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect(),
                        _ => Vec::new(),
                    };
                    for name in names {
                        if !list.contains(name) {
                            list.push(name.clone());
                        }
                    }
                    options.insert(key.to_owned(), list.join(","));
                }
                flow.updated_ms = now_ms();
                Ok(())
            })
            .await?;
            self.wake.notify_one();
        }
        let (name, after) = self.publication(id, Some(mode)).await?;
        let mut planned = Vec::new();
        if sync.snapshot {
            let named = sync.tables.iter().map(|t| ductstream_cdc::publication::TableName::parse(t).to_string());
            planned = after.iter().filter(|t| !before.contains(t)).cloned().chain(named).collect();
            planned.dedup();
            planned.sort();
            planned.dedup();
            self.plan_backfill(id, &planned).await?;
        }
        Ok((name, after, planned))
    }

    /// Marks `tables` of a stopped flow to be read again before it streams on. A flow that has
    /// not run yet reads every published table at its first start, so it needs no plan.
    async fn plan_backfill(&self, id: &str, tables: &[String]) -> Result<()> {
        use ductstream_cdc::CheckpointStore;
        if tables.is_empty() {
            return Ok(());
        }
        let checkpoints = StorageCheckpoints(self.broker.storage().clone());
        let failed = |e: ductstream_cdc::CdcError| BrokerError::Storage(ductstream_storage::StorageError::Engine(e.to_string()));
        let Some(mut checkpoint) = checkpoints.load(id).await.map_err(failed)? else { return Ok(()) };
        let def = store::load(self.storage(), id).await?;
        let options = FlowSourceOptions::from_map(&def.source_options(false))
            .and_then(|o| o.normalized())
            .map_err(|e| BrokerError::InvalidArgument(format!("source options: {e}")))?;
        super::backfill::plan(&options, tables, &mut checkpoint).await?;
        checkpoints.save(id, &checkpoint).await.map_err(failed)
    }

    pub async fn checkpoint(&self, id: &str) -> Result<Option<ductstream_cdc::Checkpoint>> {
        store::load(self.storage(), id).await?;
        let bytes = self.storage().document(store::CHECKPOINT_KIND, id).await?;
        bytes.map(|b| serde_json::from_slice(&b).map_err(|e| BrokerError::Storage(e.into()))).transpose()
    }

    pub async fn checkpoints(&self) -> Result<Vec<(String, ductstream_cdc::Checkpoint)>> {
        let all = self.storage().documents(store::CHECKPOINT_KIND).await?;
        all.into_iter()
            .map(|(id, b)| Ok((id, serde_json::from_slice(&b).map_err(|e| BrokerError::Storage(e.into()))?)))
            .collect()
    }

    /// Starts, stops and restarts this broker's flows to match their stored states.
    pub async fn reconcile(&self) -> Result<()> {
        let flows = store::list(self.storage()).await?;
        let mut running = self.running.lock().await;
        running.retain(|_, r| !r.task.is_finished());
        let mut stop = Vec::new();
        for def in &flows {
            let mine = self.broker.cluster.coordinates(&format!("flow:{}", def.id));
            let here = running.get(&def.id);
            // On a schedule, RUNNING flows run at its ticks only.
            let wanted = mine && def.state == FlowState::Running && self.broker.config.schedule.is_none();
            match (wanted, here) {
                (true, Some(r)) if r.updated_ms == def.updated_ms => {}
                (true, _) => {
                    if let Some(r) = running.remove(&def.id) {
                        stop.push(r); // its definition changed
                    }
                    match self.spawn(def, true) {
                        Ok((handle, task)) => {
                            running.insert(def.id.clone(), Running { handle, task, updated_ms: def.updated_ms });
                        }
                        Err(e) => fail(self.broker.clone(), &def.id, e.to_string()).await,
                    }
                }
                (false, Some(_)) => stop.extend(running.remove(&def.id)),
                (false, None) => {}
            }
        }
        // Flows deleted meanwhile.
        let known: std::collections::HashSet<&str> = flows.iter().map(|f| f.id.as_str()).collect();
        let gone: Vec<String> = running.keys().filter(|id| !known.contains(id.as_str())).cloned().collect();
        for id in gone {
            stop.extend(running.remove(&id));
        }
        drop(running);
        for r in stop {
            r.handle.stop();
            let _ = r.task.await;
        }
        // A stopping flow that no longer runs here is paused.
        for def in flows.iter().filter(|f| f.state == FlowState::Stopping) {
            if self.broker.cluster.coordinates(&format!("flow:{}", def.id)) {
                let _ = store::update(self.storage(), &def.id, |f| {
                    if f.state == FlowState::Stopping {
                        f.state = FlowState::Paused;
                    }
                    Ok(())
                })
                .await;
            }
        }
        Ok(())
    }

    /// Reconciles until the broker shuts down, then stops every flow (each writes and confirms
    /// what it has read).
    pub async fn run(self: Arc<Self>) {
        crate::reconcile::until_shutdown(&self.broker, &self.wake, "flows", || self.reconcile()).await;
        let running: Vec<Running> = self.running.lock().await.drain().map(|(_, r)| r).collect();
        for r in running {
            r.handle.stop();
            let _ = r.task.await;
        }
    }

    async fn stop_local(&self, id: &str) {
        let found = self.running.lock().await.remove(id);
        if let Some(r) = found {
            r.handle.stop();
            let _ = r.task.await;
        }
    }

    async fn view(&self, def: FlowDef) -> FlowView {
        let status = self.running.lock().await.get(&def.id).map(|r| r.handle.status());
        let scheduled_runs = match super::schedule::record(self.storage(), &def.id).await {
            Ok(record) => record.map(|r| r.history).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(flow = %def.id, error = %e, "cannot read the flow's scheduled runs");
                Vec::new()
            }
        };
        FlowView { def, status, scheduled_runs }
    }

    /// Starts the flow's CDC task; when `record_failure`, a failure marks the stored flow FAILED.
    fn spawn(&self, def: &FlowDef, record_failure: bool) -> Result<(FlowHandle, JoinHandle<()>)> {
        let options = FlowSourceOptions::from_map(&def.source_options(self.ddl_gate_default))
            .map_err(|e| BrokerError::InvalidArgument(format!("source options: {e}")))?;
        let writer = Arc::new(TopicWriter::new(self.broker.log.clone(), self.broker.config.num_partitions));
        let checkpoints = Arc::new(StorageCheckpoints(self.broker.storage().clone()));
        let mut flow = Flow::new(options, writer, checkpoints).map_err(|e| BrokerError::InvalidArgument(e.to_string()))?;
        if let Some(gate) = flow.take_ddl_gate() {
            tokio::spawn(self.ddl.clone().serve(def.id.clone(), gate));
        }
        let handle = flow.handle();
        let (broker, id) = (self.broker.clone(), def.id.clone());
        tracing::info!(flow = %id, "flow starting");
        let task = tokio::spawn(async move {
            match flow.run().await {
                Ok(()) => tracing::info!(flow = %id, "flow stopped"),
                // The source or the store went away: the flow stays RUNNING and the next
                // reconcile starts it again from its checkpoint.
                Err(e) if record_failure && e.is_transient() => {
                    tracing::warn!(flow = %id, error = %e, "flow interrupted; retrying");
                    note_error(broker, &id, e.to_string()).await;
                    tokio::time::sleep(RECONCILE_EVERY).await;
                }
                Err(e) => {
                    tracing::warn!(flow = %id, error = %e, "flow failed");
                    if record_failure {
                        fail(broker, &id, e.to_string()).await;
                    }
                }
            }
        });
        Ok((handle, task))
    }
}

/// Records the error of an interrupted flow that will be retried.
async fn note_error(broker: Arc<Broker>, id: &str, error: String) {
    let stored = store::update(broker.storage().as_ref(), id, |f| {
        f.last_error = format!("{error} (retrying)");
        Ok(())
    })
    .await;
    if let Err(e) = stored {
        tracing::warn!(flow = id, error = %e, "cannot record the flow's error");
    }
}

/// Marks a running flow FAILED with `error`.
async fn fail(broker: Arc<Broker>, id: &str, error: String) {
    let stored = store::update(broker.storage().as_ref(), id, |f| {
        if matches!(f.state, FlowState::Running | FlowState::Stopping) {
            f.state = FlowState::Failed;
            f.last_error = error.clone();
        }
        Ok(())
    })
    .await;
    if let Err(e) = stored {
        tracing::warn!(flow = id, error = %e, "cannot record the flow's failure");
    }
}
