//! DDL changes waiting at the gate of flows this broker runs, and the decisions on them.

use std::sync::Mutex;

use ductstream_cdc::{DdlApprovalRequest, DdlGate};

use crate::durable::now_ms;
use crate::{BrokerError, Result};

/// Decided entries kept for listing, per broker.
const DECIDED_KEPT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// One DDL change as listed.
#[derive(Debug, Clone)]
pub struct DdlEntry {
    pub flow_id: String,
    pub id: u64,
    pub lsn: String,
    pub tag: String,
    pub query: String,
    pub status: DdlStatus,
    pub received_ms: i64,
}

#[derive(Default)]
pub struct DdlBoard {
    inner: Mutex<Board>,
}

#[derive(Default)]
struct Board {
    next_id: u64,
    entries: Vec<(DdlEntry, Option<DdlApprovalRequest>)>,
}

impl DdlBoard {
    /// Takes the gate's requests until the flow ends.
    pub async fn serve(self: std::sync::Arc<Self>, flow_id: String, mut gate: DdlGate) {
        while let Some(request) = gate.next().await {
            tracing::info!(flow = %flow_id, tag = %request.event.tag, "DDL change waits for a decision");
            if let Ok(mut board) = self.inner.lock() {
                board.next_id += 1;
                let entry = DdlEntry {
                    flow_id: flow_id.clone(),
                    id: board.next_id,
                    lsn: request.event.lsn.to_string(),
                    tag: request.event.tag.clone(),
                    query: request.event.query.clone(),
                    status: DdlStatus::Pending,
                    received_ms: now_ms(),
                };
                board.entries.push((entry, Some(request)));
                let decided = board.entries.iter().filter(|(e, _)| e.status != DdlStatus::Pending).count();
                if decided > DECIDED_KEPT
                    && let Some(at) = board.entries.iter().position(|(e, _)| e.status != DdlStatus::Pending)
                {
                    board.entries.remove(at);
                }
            }
        }
        // The flow ended: its undecided requests are gone with it.
        if let Ok(mut board) = self.inner.lock() {
            board.entries.retain(|(e, r)| !(e.flow_id == flow_id && r.is_some()));
        }
    }

    pub fn list(&self, flow_id: &str) -> Vec<DdlEntry> {
        match self.inner.lock() {
            Ok(board) => board
                .entries
                .iter()
                .filter(|(e, _)| flow_id.is_empty() || e.flow_id == flow_id)
                .map(|(e, _)| e.clone())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Decides a pending change: `Approved` or `Applied` let the flow go on, `Rejected` stops it.
    pub fn decide(&self, flow_id: &str, id: u64, status: DdlStatus, reason: &str) -> Result<DdlEntry> {
        let mut board = self.inner.lock().map_err(|_| BrokerError::Encode("DDL board lock poisoned".into()))?;
        let Some((entry, request)) = board.entries.iter_mut().find(|(e, _)| e.flow_id == flow_id && e.id == id) else {
            return Err(BrokerError::NotFound(format!(
                "flow {flow_id:?} has no DDL change {id} waiting on this broker (list them with ddl list)"
            )));
        };
        let Some(request) = request.take() else {
            return Err(BrokerError::FailedPrecondition(format!("DDL change {id} is already {}", entry.status.as_str())));
        };
        match status {
            DdlStatus::Rejected => request.reject(if reason.is_empty() { "rejected by an operator" } else { reason }),
            _ => request.approve(),
        }
        entry.status = status;
        tracing::info!(flow = flow_id, id, status = status.as_str(), "DDL change decided");
        Ok(entry.clone())
    }
}
