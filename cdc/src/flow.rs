//! A flow: one Postgres source streamed into topics, durably and in commit order.
//!
//! Start-up: validate the source, prepare the publication (and DDL capture), then either
//! create the slot with an exported snapshot and read the existing rows, resume an unfinished
//! snapshot (see [`crate::snapshot`]), or just continue from the slot. Streaming: changes are
//! grouped into batches (`batch_size` records or `batch_timeout`), appended to
//! `<prefix>.<schema>.<table>` in commit order, and only after the writer reports them durable
//! is the commit LSN confirmed to the slot and saved in the checkpoint. A crash therefore
//! replays at most the unconfirmed tail; records carry their commit LSN so consumers can drop
//! the repeats.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_postgres::Client;

use crate::changes::{ChangeDecoder, Decoded, HEARTBEAT_PREFIX};
use crate::checkpoint::{Checkpoint, CheckpointStore, SnapshotProgress};
use crate::ddl::{DdlDecision, DdlGate, DdlGateSender, ddl_gate, install_ddl_capture};
use crate::encode::{
    avro_schema_record, ddl_topic, encode_change, encode_ddl, encode_empty_transaction, schemas_topic,
    transactions_topic,
};
use crate::wire::WireFormat;
use crate::error::{CdcError, Result};
use crate::lsn::Lsn;
use crate::options::FlowSourceOptions;
use crate::pgoutput::decode;
use crate::publication::{prepare_publication, published_tables};
use crate::replication::{ReplicationClient, ReplicationStream};
use crate::snapshot::{self, SnapshotJob};
use crate::snapshot_state;
use crate::source::SourceConfig;
use crate::validate::validate_replication;
use crate::writer::{ChangeWriter, OutRecord};

/// How often a streaming flow puts the server's WAL end and how far it has read into its status
/// (for consoles and status APIs; nothing waits on it).
const REPORT_POSITIONS_EVERY: Duration = Duration::from_secs(1);

/// Where a flow is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FlowPhase {
    #[default]
    Starting,
    Snapshot,
    Streaming,
    Stopped,
    Failed(String),
}

/// A flow's progress, for status APIs and tests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlowStatus {
    pub phase: FlowPhase,
    /// The last LSN confirmed to the slot (everything before it is durable in the topics).
    pub confirmed_lsn: Lsn,
    pub snapshot_chunks_done: usize,
    pub snapshot_chunks_total: usize,
    /// Records appended by the streaming phase since start.
    pub records_written: u64,
    /// The end of the source's WAL as the server last said; `server_lsn - read_lsn` is how many
    /// bytes of WAL the flow has yet to read (not all of them its tables' changes).
    pub server_lsn: Lsn,
    /// What the stream has confirmed to the server: `confirmed_lsn` (the checkpoint), or past
    /// it where the server's keepalives said an idle stream had read everything.
    pub read_lsn: Lsn,
}

/// Controls a running flow from elsewhere.
#[derive(Debug, Clone)]
pub struct FlowHandle {
    stop: watch::Sender<bool>,
    status: watch::Receiver<FlowStatus>,
}

impl FlowHandle {
    /// Asks the flow to stop: it writes and confirms what it has, then [`Flow::run`] returns.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    pub fn status(&self) -> FlowStatus {
        self.status.borrow().clone()
    }

    /// Waits until `done` holds for the status, or `timeout` passes; returns whether it held.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&FlowStatus) -> bool) -> bool {
        let mut status = self.status.clone();
        tokio::time::timeout(timeout, status.wait_for(|s| done(s))).await.is_ok_and(|r| r.is_ok())
    }
}

/// A CDC flow from one Postgres database.
pub struct Flow {
    options: FlowSourceOptions,
    source: SourceConfig,
    writer: Arc<dyn ChangeWriter>,
    checkpoints: Arc<dyn CheckpointStore>,
    gate: Option<DdlGateSender>,
    gate_rx: Option<DdlGate>,
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
    status: watch::Sender<FlowStatus>,
}

impl Flow {
    /// Checks the options; connects to nothing yet.
    pub fn new(options: FlowSourceOptions, writer: Arc<dyn ChangeWriter>, checkpoints: Arc<dyn CheckpointStore>) -> Result<Flow> {
        let options = options.normalized()?;
        let source = SourceConfig::parse(&options.dsn)?;
        let (gate, gate_rx) = if options.ddl_gate {
            let (tx, rx) = ddl_gate();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let (status, _) = watch::channel(FlowStatus::default());
        Ok(Flow { options, source, writer, checkpoints, gate, gate_rx, stop_tx, stop_rx, status })
    }

    pub fn options(&self) -> &FlowSourceOptions {
        &self.options
    }

    pub fn handle(&self) -> FlowHandle {
        FlowHandle { stop: self.stop_tx.clone(), status: self.status.subscribe() }
    }

    /// The approver's side of the DDL gate (once, before [`Flow::run`]; `None` unless `ddl_gate` is on).
    /// Not taken by then, the gate rejects every DDL event.
    pub fn take_ddl_gate(&mut self) -> Option<DdlGate> {
        self.gate_rx.take()
    }

    /// Runs until stopped (`Ok`) or an error.
    pub async fn run(mut self) -> Result<()> {
        // A gate nobody took would hold the first DDL forever; dropped, it rejects instead.
        drop(self.gate_rx.take());
        let result = self.run_inner().await;
        self.status.send_modify(|s| {
            s.phase = match &result {
                Ok(()) => FlowPhase::Stopped,
                Err(e) => FlowPhase::Failed(e.to_string()),
            }
        });
        result
    }

    async fn run_inner(&mut self) -> Result<()> {
        let options = self.options.clone();
        let user = self.source.user().to_string();
        let catalog = self.source.connect().await?;
        if options.validate_replication {
            validate_replication(&catalog, &user).await?;
        }
        prepare_publication(&catalog, &options).await?;
        // Before the DDL capture, which would otherwise see the table made.
        crate::state::record_start(&catalog, &options).await;
        crate::snapshot_state::prepare(&catalog, &options).await;
        if options.capture_ddl {
            install_ddl_capture(&catalog).await?;
        }
        if options.format == WireFormat::Avro {
            // Consumers find the schema of the values beside them.
            let topic = schemas_topic(&options.topic_prefix);
            self.writer.ensure_topic(&topic).await?;
            let now_ms = crate::time::now_unix_micros().div_euclid(1000);
            self.writer.append(&topic, vec![avro_schema_record(now_ms)]).await?;
        }
        let mut checkpoint = self.checkpoints.load(&options.flow_id).await?.unwrap_or_default();
        let slot = wait_for_idle_slot(&catalog, &options.slot).await?;
        let mut replication = ReplicationClient::connect(&self.source).await?;
        match slot {
            None => {
                if !options.create_slot {
                    return Err(CdcError::MissingSlot { slot: options.slot.clone() });
                }
                let export = options.snapshot && options.snapshot_consistent;
                let created = replication.create_slot(&options.slot, export).await?;
                tracing::info!(slot = %options.slot, lsn = %created.consistent_point, "created replication slot");
                checkpoint = Checkpoint { lsn: created.consistent_point, snapshot: None };
                if options.snapshot {
                    let tables: Vec<_> = published_tables(&catalog, &options.publication)
                        .await?
                        .into_iter()
                        .filter(|t| !crate::state::is_own_table(&options, &t.schema, &t.name))
                        .collect();
                    let chunks = snapshot::plan(&catalog, &tables, &options).await?;
                    checkpoint.snapshot = Some(SnapshotProgress {
                        consistent_point: created.consistent_point,
                        chunks,
                        ..SnapshotProgress::default()
                    });
                    self.checkpoints.save(&options.flow_id, &checkpoint).await?;
                    // The replication connection stays idle until the snapshot is read: its
                    // exported snapshot lives only that long.
                    self.snapshot(&mut checkpoint, created.snapshot_name, created.consistent_point).await?;
                } else {
                    self.checkpoints.save(&options.flow_id, &checkpoint).await?;
                }
            }
            Some(_) => {
                if checkpoint.snapshot.as_ref().is_some_and(|s| !s.complete) {
                    tracing::warn!(flow = %options.flow_id, "resuming an interrupted snapshot without its exported snapshot");
                    let now = current_lsn(&catalog).await?;
                    self.snapshot(&mut checkpoint, None, now).await?;
                }
            }
        }
        if *self.stop_rx.borrow() {
            return Ok(());
        }
        let start = slot_state(&catalog, &options.slot).await?.map(|s| s.confirmed_flush).unwrap_or_default();
        let stream = replication.start(&options.slot, start, &options.publication, options.status_interval).await?;
        self.status.send_modify(|s| {
            s.phase = FlowPhase::Streaming;
            s.confirmed_lsn = start;
        });
        tracing::info!(slot = %options.slot, lsn = %start, "streaming");
        let heartbeat = spawn_heartbeat(self.source.clone(), options.heartbeat_interval);
        let result = self.stream(catalog, stream, checkpoint, start).await;
        if let Some(task) = heartbeat {
            task.abort();
        }
        result
    }

    /// Reads the chunks not yet done, saving progress after each.
    async fn snapshot(&mut self, checkpoint: &mut Checkpoint, snapshot_name: Option<String>, lsn: Lsn) -> Result<()> {
        let Some(progress) = checkpoint.snapshot.clone() else { return Ok(()) };
        let todo: Vec<_> = progress.chunks.iter().filter(|c| !progress.done.contains(&c.id)).cloned().collect();
        self.status.send_modify(|s| {
            s.phase = FlowPhase::Snapshot;
            s.snapshot_chunks_total = progress.chunks.len();
            s.snapshot_chunks_done = progress.done.len();
        });
        let job = SnapshotJob {
            source: self.source.clone(),
            options: self.options.clone(),
            writer: self.writer.clone(),
            snapshot_name,
            lsn,
        };
        let published = snapshot_state::connect(&self.source, &self.options).await;
        snapshot_state::planned(published.as_ref(), &self.options, &progress).await?;
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let run = snapshot::run(job, todo, done_tx);
        tokio::pin!(run);
        let mut stop = self.stop_rx.clone();
        let mut finished = false;
        loop {
            tokio::select! {
                result = &mut run, if !finished => {
                    result?;
                    finished = true;
                }
                id = done_rx.recv() => {
                    let Some(id) = id else { break };
                    if let Some(p) = checkpoint.snapshot.as_mut() {
                        p.done.insert(id.clone());
                        let done = p.done.len();
                        self.status.send_modify(|s| s.snapshot_chunks_done = done);
                    }
                    self.checkpoints.save(&self.options.flow_id, checkpoint).await?;
                    if let Some(p) = &checkpoint.snapshot {
                        snapshot_state::chunk_done(published.as_ref(), &self.options, p, &id).await?;
                    }
                }
                _ = stopped(&mut stop) => return Ok(()),
            }
        }
        if let Some(p) = checkpoint.snapshot.as_mut() {
            p.complete = p.chunks.iter().all(|c| p.done.contains(&c.id));
        }
        self.checkpoints.save(&self.options.flow_id, checkpoint).await?;
        if let Some(p) = &checkpoint.snapshot {
            snapshot_state::complete(&self.options, p)?;
        }
        tracing::info!(flow = %self.options.flow_id, "snapshot complete");
        Ok(())
    }

    async fn stream(&mut self, catalog: Client, mut stream: ReplicationStream, checkpoint: Checkpoint, start: Lsn) -> Result<()> {
        let mut state = StreamState {
            decoder: ChangeDecoder::new(self.options.resolve_types),
            batch: Vec::new(),
            batch_started: None,
            safe_lsn: start,
            confirmed: start,
            topics: HashSet::new(),
            checkpoint,
            stopped_at_gate: false,
            last_topic: None,
        };
        let mut stop = self.stop_rx.clone();
        let mut report = tokio::time::interval(REPORT_POSITIONS_EVERY);
        loop {
            let deadline = state.batch_started.map(|t| t + self.options.batch_timeout);
            tokio::select! {
                _ = report.tick() => self.report_positions(&stream),
                _ = stopped(&mut stop) => {
                    self.flush(&mut state, &stream).await?;
                    stream.close().await;
                    crate::state::record_stop(&catalog, &self.options, state.confirmed).await;
                    return Ok(());
                }
                message = stream.recv() => {
                    let message = message?;
                    let decoded = state.decoder.apply(&catalog, decode(message.data)?).await?;
                    for item in decoded {
                        self.handle_item(&mut state, &stream, item).await?;
                        if state.stopped_at_gate {
                            // Everything before the DDL change is written and confirmed; the
                            // change comes again (and is asked again) when the flow restarts.
                            stream.close().await;
                            return Ok(());
                        }
                    }
                    if state.batch.len() >= self.options.batch_size {
                        self.flush(&mut state, &stream).await?;
                    } else if state.batch.is_empty() && state.safe_lsn > state.confirmed {
                        // Nothing waits to be written: confirm at once so an idle slot advances.
                        self.flush(&mut state, &stream).await?;
                    }
                }
                _ = sleep_until(deadline), if deadline.is_some() => self.flush(&mut state, &stream).await?,
            }
        }
    }

    async fn handle_item(&mut self, state: &mut StreamState, stream: &ReplicationStream, item: Decoded) -> Result<()> {
        match item {
            // The flow's own bookkeeping in the source (a FOR ALL TABLES publication holds it).
            Decoded::Change(event) if crate::state::is_own_table(&self.options, &event.schema, &event.table) => {}
            Decoded::Change(event) => {
                let topic = state.topic_of(&self.options, &event.schema, &event.table);
                state.push(topic, encode_change(&event, self.options.format));
            }
            Decoded::Ddl(event) => {
                if let Some(gate) = self.gate.clone() {
                    // Everything before the DDL is written first, so an approver sees the
                    // topics exactly up to it.
                    self.flush(state, stream).await?;
                    // Held here, the flow shows how much of the source waits behind the change.
                    self.report_positions(stream);
                    // A stop does not wait for a decision that may never come.
                    let mut stop = self.stop_rx.clone();
                    let decision = tokio::select! {
                        decision = gate.ask(event.clone()) => decision,
                        _ = stopped(&mut stop) => {
                            state.stopped_at_gate = true;
                            return Ok(());
                        }
                    };
                    if let DdlDecision::Reject(reason) = decision {
                        return Err(CdcError::DdlRejected { lsn: event.lsn, reason });
                    }
                }
                state.push(ddl_topic(&self.options.topic_prefix).into(), encode_ddl(&event));
            }
            Decoded::Commit { end_lsn, xid, commit_ts_micros, changes } => {
                if changes == 0 && self.options.emit_empty {
                    state.push(transactions_topic(&self.options.topic_prefix).into(), encode_empty_transaction(end_lsn, xid, commit_ts_micros));
                }
                state.safe_lsn = state.safe_lsn.max(end_lsn);
            }
            Decoded::Heartbeat { lsn } => state.safe_lsn = state.safe_lsn.max(lsn),
        }
        Ok(())
    }

    /// Publishes where the server's WAL ends and how far the stream has read. The checkpoint
    /// (`confirmed_lsn`) moves only with written batches.
    fn report_positions(&self, stream: &ReplicationStream) {
        let (server, read) = (stream.server_end(), stream.confirmed());
        self.status.send_if_modified(|s| {
            let changed = s.server_lsn != server || s.read_lsn != read;
            s.server_lsn = server;
            s.read_lsn = read;
            changed
        });
    }

    /// Writes the batch (durably), then confirms and checkpoints the last complete commit.
    async fn flush(&mut self, state: &mut StreamState, stream: &ReplicationStream) -> Result<()> {
        let records = std::mem::take(&mut state.batch);
        state.batch_started = None;
        let count = records.len() as u64;
        // One append per topic and run of records, in commit order.
        let mut runs: Vec<(Arc<str>, Vec<OutRecord>)> = Vec::new();
        for (topic, record) in records {
            match runs.last_mut() {
                Some((last, run)) if *last == topic => run.push(record),
                _ => runs.push((topic, vec![record])),
            }
        }
        for (topic, records) in runs {
            if !state.topics.contains(&*topic) {
                self.writer.ensure_topic(&topic).await?;
                state.topics.insert(topic.to_string());
            }
            self.writer.append(&topic, records).await?;
        }
        if state.safe_lsn > state.confirmed {
            stream.confirm(state.safe_lsn);
            state.confirmed = state.safe_lsn;
            state.checkpoint.lsn = state.safe_lsn;
            self.checkpoints.save(&self.options.flow_id, &state.checkpoint).await?;
        }
        let confirmed = state.confirmed;
        self.status.send_modify(|s| {
            s.confirmed_lsn = confirmed;
            s.records_written += count;
        });
        Ok(())
    }
}

struct StreamState {
    decoder: ChangeDecoder,
    batch: Vec<(Arc<str>, OutRecord)>,
    /// The last change's schema, table and topic: consecutive changes are mostly of one table,
    /// and its records share the topic's name.
    last_topic: Option<(String, String, Arc<str>)>,
    batch_started: Option<Instant>,
    /// The LSN that may be confirmed once the batch is written.
    safe_lsn: Lsn,
    confirmed: Lsn,
    topics: HashSet<String>,
    checkpoint: Checkpoint,
    /// Stopped while a DDL change waited at the gate: nothing after it may be written.
    stopped_at_gate: bool,
}

impl StreamState {
    fn topic_of(&mut self, options: &FlowSourceOptions, schema: &str, table: &str) -> Arc<str> {
        match &self.last_topic {
            Some((s, t, topic)) if s == schema && t == table => topic.clone(),
            _ => {
                let topic: Arc<str> = options.table_topic(schema, table).into();
                self.last_topic = Some((schema.to_owned(), table.to_owned(), topic.clone()));
                topic
            }
        }
    }

    fn push(&mut self, topic: Arc<str>, record: OutRecord) {
        if self.batch.is_empty() {
            self.batch_started = Some(Instant::now());
        }
        self.batch.push((topic, record));
    }
}

/// Resolves once a stop was asked for (or every handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await (it is not Send).
    let _ = stop.wait_for(|s| *s).await.is_ok();
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

struct SlotState {
    active_pid: Option<i32>,
    confirmed_flush: Lsn,
}

async fn slot_state(client: &Client, slot: &str) -> Result<Option<SlotState>> {
    let row = client
        .query_opt(
            "SELECT active_pid, confirmed_flush_lsn::text FROM pg_replication_slots \
             WHERE slot_name = $1 AND database = current_database()",
            &[&slot],
        )
        .await
        .map_err(|e| CdcError::from_pg(e, ""))?;
    Ok(row.map(|r| SlotState {
        active_pid: r.get(0),
        confirmed_flush: r.get::<_, Option<String>>(1).and_then(|t| t.parse().ok()).unwrap_or_default(),
    }))
}

/// The slot's state, once no other connection is using it. A previous run's walsender can
/// take a moment to exit after its connection closed, so an active slot is looked at a few
/// more times before the flow gives up with [`CdcError::SlotInUse`].
async fn wait_for_idle_slot(client: &Client, slot: &str) -> Result<Option<SlotState>> {
    const ATTEMPTS: u32 = 10;
    for attempt in 1..=ATTEMPTS {
        let state = slot_state(client, slot).await?;
        match state.as_ref().and_then(|s| s.active_pid) {
            None => return Ok(state),
            Some(pid) if attempt == ATTEMPTS => {
                return Err(CdcError::SlotInUse { slot: slot.to_string(), message: format!("active for PID {pid}") });
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    Ok(None)
}

async fn current_lsn(client: &Client) -> Result<Lsn> {
    let row = client.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.map_err(|e| CdcError::from_pg(e, ""))?;
    row.get::<_, String>(0).parse().map_err(CdcError::protocol)
}

/// Emits a non-transactional heartbeat message every `interval`, so that on an idle database
/// the flow sees a position it may confirm and the slot does not hold WAL forever.
fn spawn_heartbeat(source: SourceConfig, interval: Duration) -> Option<tokio::task::JoinHandle<()>> {
    if interval.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut client = None;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if client.is_none() {
                client = source.connect().await.inspect_err(|e| tracing::warn!(error = %e, "heartbeat connection failed")).ok();
            }
            let Some(c) = &client else { continue };
            let sql = format!("SELECT pg_logical_emit_message(false, '{HEARTBEAT_PREFIX}', now()::text)");
            if let Err(e) = c.batch_execute(&sql).await {
                tracing::warn!(error = %e, "heartbeat failed");
                client = None;
            }
        }
    }))
}
