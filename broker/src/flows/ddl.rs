//! DDL changes waiting at the gates of running flows, and the decisions on them.
//!
//! Each change is a storage document (`ddl`, key `<flow>/<id>`), so any broker lists and
//! decides it; the broker running the flow holds the gate's request and answers it when the
//! document is decided (at once when the decision is made through it, else at its next look,
//! every [`LOOK_EVERY`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ductstream_cdc::{DdlApprovalRequest, DdlGate};
use ductstream_storage::{Storage, StorageError};
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::config::DdlAuto;
use crate::{documents, BrokerError, Result};

const KIND: &str = "ddl";
/// Per flow, the last id handed out.
const SEQUENCE_KIND: &str = "ddl_sequence";
/// How often the broker running a flow looks for decisions made through other brokers.
const LOOK_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DdlStatus {
    Pending,
    Approved,
    Rejected,
    Applied,
}

impl DdlStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DdlStatus::Pending => "pending",
            DdlStatus::Approved => "approved",
            DdlStatus::Rejected => "rejected",
            DdlStatus::Applied => "applied",
        }
    }
}

/// One DDL change as stored and listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DdlEntry {
    pub flow_id: String,
    pub id: u64,
    pub lsn: String,
    pub tag: String,
    pub query: String,
    pub status: DdlStatus,
    #[serde(default)]
    pub reason: String,
    pub received_ms: i64,
}

fn key(flow_id: &str, id: u64) -> String {
    // Zero-padded so keys sort by id.
    format!("{flow_id}/{id:020}")
}

pub struct DdlBoard {
    storage: Arc<dyn Storage>,
    /// `--ddl-auto-approve` / `--ddl-auto-apply`: decide each change as it arrives.
    auto: DdlAuto,
    /// The gate requests of flows this broker runs, by (flow, id).
    requests: Mutex<HashMap<(String, u64), DdlApprovalRequest>>,
}

impl DdlBoard {
    pub fn new(storage: Arc<dyn Storage>, auto: DdlAuto) -> DdlBoard {
        DdlBoard { storage, auto, requests: Mutex::new(HashMap::new()) }
    }

    /// Takes the gate's requests until the flow ends: stores each change and waits for its
    /// decision (the flow waits meanwhile).
    pub async fn serve(self: Arc<Self>, flow_id: String, mut gate: DdlGate) {
        // Changes a previous run of the flow left undecided are asked again by this run.
        if let Err(e) = self.forget(&flow_id, true).await {
            tracing::warn!(flow = %flow_id, error = %e, "cannot clear the flow's undecided DDL changes");
        }
        while let Some(request) = gate.next().await {
            tracing::info!(flow = %flow_id, tag = %request.event.tag, "DDL change waits for a decision");
            match self.store(&flow_id, &request).await {
                Ok(id) => {
                    if let Ok(mut requests) = self.requests.lock() {
                        requests.insert((flow_id.clone(), id), request);
                    }
                    let auto = match self.auto {
                        DdlAuto::Wait => None,
                        DdlAuto::Approve => Some((DdlStatus::Approved, "approved automatically (--ddl-auto-approve)")),
                        DdlAuto::Apply => Some((DdlStatus::Applied, "applied automatically (--ddl-auto-apply)")),
                    };
                    if let Some((status, reason)) = auto
                        && let Err(e) = self.decide(&flow_id, id, status, reason).await
                    {
                        tracing::warn!(flow = %flow_id, id, error = %e, "cannot decide a DDL change automatically; it waits for an operator");
                    }
                    self.wait_for_decision(&flow_id, id).await;
                }
                Err(e) => request.reject(format!("cannot record the DDL change for a decision: {e}")),
            }
        }
    }

    async fn store(&self, flow_id: &str, request: &DdlApprovalRequest) -> Result<u64> {
        let mut id = 0;
        self.storage
            .update_document(SEQUENCE_KIND, flow_id, &mut |current| {
                let last: u64 = match current {
                    Some(bytes) => serde_json::from_slice(bytes)?,
                    None => 0,
                };
                id = last + 1;
                Ok(Some(serde_json::to_vec(&id)?))
            })
            .await?;
        let entry = DdlEntry {
            flow_id: flow_id.to_owned(),
            id,
            lsn: request.event.lsn.to_string(),
            tag: request.event.tag.clone(),
            query: request.event.query.clone(),
            status: DdlStatus::Pending,
            reason: String::new(),
            received_ms: now_ms(),
        };
        let bytes = serde_json::to_vec(&entry).map_err(StorageError::from)?;
        self.storage.update_document(KIND, &key(flow_id, id), &mut |_| Ok(Some(bytes.clone()))).await?;
        Ok(id)
    }

    /// Looks at the stored change until it is decided, then answers the gate; returns at once
    /// when the decision was made through this broker (and answered already).
    async fn wait_for_decision(&self, flow_id: &str, id: u64) {
        loop {
            let answered = self.requests.lock().map_or(true, |r| !r.contains_key(&(flow_id.to_owned(), id)));
            if answered {
                return;
            }
            if let Ok(Some(entry)) = self.load(flow_id, id).await
                && entry.status != DdlStatus::Pending
            {
                self.answer(&entry);
                return;
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }

    async fn load(&self, flow_id: &str, id: u64) -> Result<Option<DdlEntry>> {
        let bytes = self.storage.document(KIND, &key(flow_id, id)).await?;
        Ok(bytes.map(|b| serde_json::from_slice(&b)).transpose().map_err(StorageError::from)?)
    }

    /// Hands a decided change's decision to its flow, when this broker holds its request.
    fn answer(&self, entry: &DdlEntry) {
        let request = self.requests.lock().ok().and_then(|mut r| r.remove(&(entry.flow_id.clone(), entry.id)));
        let Some(request) = request else { return };
        match entry.status {
            DdlStatus::Rejected => {
                request.reject(if entry.reason.is_empty() { "rejected by an operator".to_string() } else { entry.reason.clone() })
            }
            _ => request.approve(),
        }
    }

    /// Deletes the flow's stored changes: the undecided ones, or all of them.
    pub async fn forget(&self, flow_id: &str, only_pending: bool) -> Result<()> {
        for entry in self.list(flow_id).await? {
            if !only_pending || entry.status == DdlStatus::Pending {
                self.storage.update_document(KIND, &key(flow_id, entry.id), &mut |_| Ok(None)).await?;
            }
        }
        if !only_pending {
            self.storage.update_document(SEQUENCE_KIND, flow_id, &mut |_| Ok(None)).await?;
        }
        Ok(())
    }

    /// The changes of `flow_id` (of every flow when empty), pending and decided, by id.
    pub async fn list(&self, flow_id: &str) -> Result<Vec<DdlEntry>> {
        let documents = self.storage.documents(KIND).await?;
        let mut entries = Vec::new();
        for (_, bytes) in documents {
            let entry: DdlEntry = serde_json::from_slice(&bytes).map_err(StorageError::from)?;
            if flow_id.is_empty() || entry.flow_id == flow_id {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// Decides a pending change: `Approved` or `Applied` let the flow go on, `Rejected` stops it.
    /// An empty `flow_id` means the one flow with a pending change `id` (ids count per flow).
    pub async fn decide(&self, flow_id: &str, id: u64, status: DdlStatus, reason: &str) -> Result<DdlEntry> {
        let owner;
        let flow_id = if flow_id.is_empty() {
            owner = self.flow_pending(id).await?;
            owner.as_str()
        } else {
            flow_id
        };
        let missing = || BrokerError::NotFound(format!("flow {flow_id:?} has no DDL change {id} (list them with ddl list)"));
        let (entry, ()) = documents::update(self.storage.as_ref(), KIND, &key(flow_id, id), missing, |entry: &mut DdlEntry| {
            if entry.status != DdlStatus::Pending {
                return Err(BrokerError::FailedPrecondition(format!("DDL change {id} is already {}", entry.status.as_str())));
            }
            entry.status = status;
            entry.reason = reason.to_owned();
            Ok(())
        })
        .await?;
        tracing::info!(flow = flow_id, id, status = status.as_str(), "DDL change decided");
        self.answer(&entry);
        Ok(entry)
    }

    /// The flow whose pending change is `id`, when exactly one flow has one.
    async fn flow_pending(&self, id: u64) -> Result<String> {
        let mut flows: Vec<String> =
            self.list("").await?.into_iter().filter(|e| e.id == id && e.status == DdlStatus::Pending).map(|e| e.flow_id).collect();
        match flows.len() {
            0 => Err(BrokerError::NotFound(format!("no flow has a pending DDL change {id} (list them with ddl list)"))),
            1 => Ok(flows.remove(0)),
            _ => Err(BrokerError::FailedPrecondition(format!(
                "DDL change {id} is pending in flows {}: name the flow (--flow-id)",
                flows.join(", ")
            ))),
        }
    }
}
