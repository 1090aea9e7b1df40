//! Scheduled runs (`--schedule`, or the documented `DUCTSTREAM_DBOS_SCHEDULE`): RUNNING flows do
//! not stream continuously; at each tick of a 6-field cron (seconds first, UTC) each runs once,
//! on the broker that coordinates it, until it has caught up (no new record for
//! `--schedule-empty-reads` batch timeouts), then stops.
//!
//! A durable run record per flow (a storage document) says which tick is running where, so a
//! tick does not start a run while the previous one goes on, and keeps the last runs: with
//! several brokers on one store each tick runs each flow once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::manager::FlowManager;
use super::model::FlowState;
use super::store;
use crate::clock::now_ms;
use crate::{documents, BrokerError, Result};

/// The document kind of run records, keyed by flow id.
const KIND: &str = "flow_run";
/// Finished runs a record keeps.
const HISTORY: usize = 20;
/// A run another broker started this long ago and never finished is taken over.
const STALE_AFTER_MS: i64 = 10 * 60 * 1000;
/// The longest one scheduled run may take.
const MAX_RUN: Duration = Duration::from_secs(3600);

/// A flow's scheduled runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run going on: its tick, broker and start.
    pub running: Option<Started>,
    /// The last finished runs, oldest first.
    pub history: Vec<Finished>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub tick_ms: i64,
    pub node_id: i32,
    pub since_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub tick_ms: i64,
    pub node_id: i32,
    /// "caught up", "ddl gated" or "failed: …".
    pub outcome: String,
    pub records: u64,
}

/// Parses a 6-field cron (seconds first), as the schedule setting takes it.
pub fn parse(cron: &str) -> std::result::Result<cron::Schedule, String> {
    if cron.split_whitespace().count() != 6 {
        return Err(format!("{cron:?}: a schedule has 6 fields, seconds first (e.g. \"*/10 * * * * *\")"));
    }
    cron.parse().map_err(|e| format!("{cron:?}: {e}"))
}

/// A flow's run record, if it ever ran on a schedule.
pub async fn record(storage: &dyn ductstream_storage::Storage, flow_id: &str) -> Result<Option<RunRecord>> {
    let bytes = storage.document(KIND, flow_id).await?;
    bytes.map(|b| serde_json::from_slice(&b).map_err(|e| BrokerError::Storage(e.into()))).transpose()
}

/// Ticks until the broker shuts down.
pub async fn run(manager: Arc<FlowManager>, schedule: cron::Schedule, empty_reads: u32) {
    let broker = manager.broker().clone();
    let mine: Arc<Mutex<HashSet<String>>> = Arc::default();
    tracing::info!(schedule = %schedule, "flows run on a schedule");
    loop {
        let Some(next) = schedule.upcoming(Utc).next() else {
            tracing::warn!(schedule = %schedule, "the schedule has no more ticks");
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if let Err(e) = tick(&manager, next.timestamp_millis(), empty_reads, &mine).await {
            tracing::warn!(error = %e, "a scheduled tick failed; trying again at the next");
        }
    }
}

/// Starts a run of every RUNNING flow this broker coordinates whose previous run is over.
async fn tick(manager: &Arc<FlowManager>, tick_ms: i64, empty_reads: u32, mine: &Arc<Mutex<HashSet<String>>>) -> Result<()> {
    let broker = manager.broker().clone();
    let node = broker.config.node_id;
    for def in store::list(broker.storage().as_ref()).await? {
        if def.state != FlowState::Running || !broker.cluster.coordinates(&format!("flow:{}", def.id)) {
            continue;
        }
        let here = mine.lock().map(|m| m.contains(&def.id)).unwrap_or(true);
        if !claim(broker.storage().as_ref(), &def.id, tick_ms, node, here).await? {
            tracing::debug!(flow = %def.id, tick_ms, "the previous run goes on; skipping this tick");
            continue;
        }
        if let Ok(mut m) = mine.lock() {
            m.insert(def.id.clone());
        }
        let (manager, mine) = (manager.clone(), mine.clone());
        tokio::spawn(async move {
            let (outcome, records) = manager.run_scheduled(&def, empty_reads, MAX_RUN).await;
            tracing::info!(flow = %def.id, tick_ms, %outcome, records, "scheduled run ended");
            let finished = Finished { tick_ms, node_id: node, outcome, records };
            if let Err(e) = finish(manager.broker().storage().as_ref(), &def.id, finished).await {
                tracing::warn!(flow = %def.id, error = %e, "cannot record the end of a scheduled run");
            }
            if let Ok(mut m) = mine.lock() {
                m.remove(&def.id);
            }
        });
    }
    Ok(())
}

/// Marks the flow's run of `tick_ms` as started by `node`, unless one is going on: true when
/// this broker is to run it. A run recorded as this broker's that it does not have (it
/// restarted) or another broker's that is stale is taken over.
async fn claim(storage: &dyn ductstream_storage::Storage, flow_id: &str, tick_ms: i64, node: i32, here: bool) -> Result<bool> {
    let now = now_ms();
    let mut claimed = false;
    documents::upsert(storage, KIND, flow_id, |record: &mut RunRecord| {
        claimed = false;
        let busy = match &record.running {
            None => false,
            Some(r) if r.tick_ms == tick_ms => true,
            Some(r) if r.node_id == node => here,
            Some(r) => now - r.since_ms < STALE_AFTER_MS,
        };
        if !busy {
            record.running = Some(Started { tick_ms, node_id: node, since_ms: now });
            claimed = true;
        }
        Ok(())
    })
    .await?;
    Ok(claimed)
}

async fn finish(storage: &dyn ductstream_storage::Storage, flow_id: &str, run: Finished) -> Result<()> {
    documents::upsert(storage, KIND, flow_id, |record: &mut RunRecord| {
        if record.running.as_ref().is_some_and(|r| r.tick_ms == run.tick_ms && r.node_id == run.node_id) {
            record.running = None;
        }
        record.history.push(run.clone());
        let excess = record.history.len().saturating_sub(HISTORY);
        record.history.drain(..excess);
        Ok(())
    })
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_have_six_fields_seconds_first() {
        let every_ten = parse("*/10 * * * * *").expect("valid");
        let ticks: Vec<_> = every_ten.upcoming(Utc).take(2).collect();
        assert_eq!((ticks[1] - ticks[0]).num_seconds(), 10);
        assert!(parse("* * * * *").expect_err("5 fields").contains("6 fields"));
        assert!(parse("61 * * * * *").is_err());
        assert!(parse("soon").is_err());
    }
}
