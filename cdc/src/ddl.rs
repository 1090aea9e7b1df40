//! DDL capture: an event trigger on the source emits each DDL statement as a transactional
//! logical message (`pg_logical_emit_message(true, 'ductstream.ddl', json)`), so it reaches
//! the flow in commit order with the data changes around it. An optional gate pauses the
//! flow on each DDL event until someone approves it.

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Client;

use crate::error::{CdcError, Result};
use crate::event::DdlEvent;
use crate::lsn::Lsn;

/// Prefix of DDL messages.
pub const DDL_PREFIX: &str = "ductstream.ddl";

/// The function and event triggers. Drops report only the objects the statement named
/// (`original`), not every dependent object (array types, indexes, ...).
const INSTALL_SQL: &str = r#"
CREATE OR REPLACE FUNCTION public.ductstream_capture_ddl() RETURNS event_trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    objects json;
BEGIN
    IF TG_EVENT = 'ddl_command_end' THEN
        SELECT coalesce(json_agg(json_build_object(
                   'command_tag', command_tag, 'object_type', object_type,
                   'schema', schema_name, 'identity', object_identity)), '[]'::json)
          INTO objects FROM pg_event_trigger_ddl_commands();
    ELSE
        SELECT coalesce(json_agg(json_build_object(
                   'command_tag', TG_TAG, 'object_type', object_type,
                   'schema', schema_name, 'identity', object_identity)), '[]'::json)
          INTO objects FROM pg_event_trigger_dropped_objects() WHERE original;
    END IF;
    IF json_array_length(objects) > 0 THEN
        PERFORM pg_logical_emit_message(true, 'ductstream.ddl', json_build_object(
            'event', TG_EVENT, 'tag', TG_TAG, 'query', current_query(), 'objects', objects)::text);
    END IF;
END
$fn$;
DROP EVENT TRIGGER IF EXISTS ductstream_ddl_command_end;
DROP EVENT TRIGGER IF EXISTS ductstream_sql_drop;
CREATE EVENT TRIGGER ductstream_ddl_command_end ON ddl_command_end
    EXECUTE FUNCTION public.ductstream_capture_ddl();
CREATE EVENT TRIGGER ductstream_sql_drop ON sql_drop
    EXECUTE FUNCTION public.ductstream_capture_ddl();
"#;

const UNINSTALL_SQL: &str = r#"
DROP EVENT TRIGGER IF EXISTS ductstream_ddl_command_end;
DROP EVENT TRIGGER IF EXISTS ductstream_sql_drop;
DROP FUNCTION IF EXISTS public.ductstream_capture_ddl();
"#;

/// Installs (or replaces) the DDL capture triggers. Needs a superuser (event triggers do).
pub async fn install_ddl_capture(client: &Client) -> Result<()> {
    client.batch_execute(INSTALL_SQL).await.map_err(|e| CdcError::from_pg(e, ""))
}

/// Removes the DDL capture triggers.
pub async fn uninstall_ddl_capture(client: &Client) -> Result<()> {
    client.batch_execute(UNINSTALL_SQL).await.map_err(|e| CdcError::from_pg(e, ""))
}

/// Parses a DDL message's content.
pub fn parse_ddl_message(content: &[u8], lsn: Lsn, xid: Option<u32>, commit_ts_micros: i64) -> Result<DdlEvent> {
    let value: serde_json::Value =
        serde_json::from_slice(content).map_err(|e| CdcError::decode(format!("DDL message is not JSON: {e}")))?;
    let text = |name: &str| value.get(name).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    Ok(DdlEvent {
        lsn,
        xid,
        commit_ts_micros,
        event: text("event"),
        tag: text("tag"),
        query: text("query"),
        objects: value.get("objects").cloned().unwrap_or(serde_json::Value::Null),
    })
}

/// What an approver decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DdlDecision {
    Approve,
    /// The flow stops with [`CdcError::DdlRejected`] before the DDL event; nothing after it
    /// is confirmed, so a restarted flow asks again.
    Reject(String),
}

/// A DDL event waiting for a decision.
#[derive(Debug)]
pub struct DdlApprovalRequest {
    pub event: DdlEvent,
    respond: oneshot::Sender<DdlDecision>,
}

impl DdlApprovalRequest {
    pub fn approve(self) {
        let _ = self.respond.send(DdlDecision::Approve);
    }

    pub fn reject(self, reason: impl Into<String>) {
        let _ = self.respond.send(DdlDecision::Reject(reason.into()));
    }
}

/// The approver's side of the gate: one request per DDL event, in commit order. While a
/// request is unanswered the flow waits (with every change before the DDL already written).
#[derive(Debug)]
pub struct DdlGate {
    rx: mpsc::Receiver<DdlApprovalRequest>,
}

impl DdlGate {
    /// The next DDL event to decide on; `None` once the flow has ended.
    pub async fn next(&mut self) -> Option<DdlApprovalRequest> {
        self.rx.recv().await
    }
}

/// The flow's side of the gate.
#[derive(Debug, Clone)]
pub(crate) struct DdlGateSender {
    tx: mpsc::Sender<DdlApprovalRequest>,
}

pub(crate) fn ddl_gate() -> (DdlGateSender, DdlGate) {
    let (tx, rx) = mpsc::channel(1);
    (DdlGateSender { tx }, DdlGate { rx })
}

impl DdlGateSender {
    /// Asks for a decision; a gate nobody listens to, or a dropped request, rejects.
    pub(crate) async fn ask(&self, event: DdlEvent) -> DdlDecision {
        let (respond, answer) = oneshot::channel();
        if self.tx.send(DdlApprovalRequest { event, respond }).await.is_err() {
            return DdlDecision::Reject("nobody is listening on the DDL gate".into());
        }
        answer.await.unwrap_or_else(|_| DdlDecision::Reject("the approval request was dropped".into()))
    }
}
