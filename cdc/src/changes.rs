//! Turns decoded pgoutput messages into change events: keeps the relation and type caches and
//! the current transaction.

use std::collections::HashMap;

use tokio_postgres::Client;

use crate::ddl::{DDL_PREFIX, parse_ddl_message};
use crate::error::{CdcError, Result};
use crate::event::{ChangeEvent, DdlEvent, Op};
use crate::lsn::Lsn;
use crate::pgoutput::{OldTuple, PgOutputMessage};
use crate::relation::{TableInfo, primary_key};
use crate::time::pg_to_unix_micros;
use crate::types::TypeRegistry;

/// Prefix of the heartbeat messages the flow emits on idle sources.
pub const HEARTBEAT_PREFIX: &str = "ductstream.heartbeat";

/// What one pgoutput message amounts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Change(ChangeEvent),
    Ddl(DdlEvent),
    /// A transaction ended; everything up to `end_lsn` is decoded.
    Commit { end_lsn: Lsn, xid: u32, commit_ts_micros: i64, changes: usize },
    /// A non-transactional message outside any transaction: the source has nothing pending
    /// before `lsn` that was not already delivered.
    Heartbeat { lsn: Lsn },
}

struct Transaction {
    xid: u32,
    final_lsn: Lsn,
    commit_ts_micros: i64,
    changes: usize,
}

/// Stateful decoder from pgoutput messages to events.
pub struct ChangeDecoder {
    relations: HashMap<u32, TableInfo>,
    registry: TypeRegistry,
    transaction: Option<Transaction>,
}

impl ChangeDecoder {
    pub fn new(resolve_types: bool) -> Self {
        ChangeDecoder { relations: HashMap::new(), registry: TypeRegistry::new(resolve_types), transaction: None }
    }

    /// Applies one message. `catalog` is a normal connection to the source, used to look up
    /// primary keys and non-built-in types when a Relation message arrives.
    pub async fn apply(&mut self, catalog: &Client, message: PgOutputMessage) -> Result<Vec<Decoded>> {
        let mut out = Vec::new();
        match message {
            PgOutputMessage::Begin { final_lsn, commit_ts, xid } => {
                self.transaction =
                    Some(Transaction { xid, final_lsn, commit_ts_micros: pg_to_unix_micros(commit_ts), changes: 0 });
            }
            PgOutputMessage::Commit { end_lsn, .. } => {
                let t = self.transaction.take().ok_or_else(|| CdcError::decode("Commit without Begin"))?;
                out.push(Decoded::Commit { end_lsn, xid: t.xid, commit_ts_micros: t.commit_ts_micros, changes: t.changes });
            }
            PgOutputMessage::Relation { oid, schema, name, columns, .. } => {
                for column in &columns {
                    self.registry.ensure(catalog, column.type_oid).await?;
                }
                // The table may be gone again by now; then the replica identity flags stand in.
                let pk = primary_key(catalog, oid).await.ok().flatten();
                self.relations.insert(oid, TableInfo::from_relation(oid, schema, name, &columns, pk.as_deref()));
            }
            PgOutputMessage::Type { oid, .. } => self.registry.ensure(catalog, oid).await?,
            PgOutputMessage::Origin { .. } => {}
            PgOutputMessage::Insert { relation, new } => {
                let table = self.relation(relation)?;
                let after = table.row(&self.registry, &new);
                let event = self.event(Op::Insert, table, table.key_of(&after), None, Some(after))?;
                out.push(Decoded::Change(event));
            }
            PgOutputMessage::Update { relation, old, new } => {
                let table = self.relation(relation)?;
                let after = table.row(&self.registry, &new);
                let before = match &old {
                    Some(OldTuple::Full(values)) => Some(table.row(&self.registry, values)),
                    Some(OldTuple::Key(values)) => Some(table.key_row(&self.registry, values)),
                    None => None,
                };
                let event = self.event(Op::Update, table, table.key_of(&after), before, Some(after))?;
                out.push(Decoded::Change(event));
            }
            PgOutputMessage::Delete { relation, old } => {
                let table = self.relation(relation)?;
                let before = match &old {
                    OldTuple::Full(values) => table.row(&self.registry, values),
                    OldTuple::Key(values) => table.key_row(&self.registry, values),
                };
                let event = self.event(Op::Delete, table, table.key_of(&before), Some(before), None)?;
                out.push(Decoded::Change(event));
            }
            PgOutputMessage::Truncate { relations, .. } => {
                for oid in relations {
                    let table = self.relation(oid)?;
                    out.push(Decoded::Change(self.event(Op::Truncate, table, None, None, None)?));
                }
            }
            PgOutputMessage::Message { transactional, lsn, prefix, content } => {
                if prefix == DDL_PREFIX {
                    let (xid, final_lsn, ts) = match &self.transaction {
                        Some(t) => (Some(t.xid), t.final_lsn, t.commit_ts_micros),
                        None => (None, lsn, crate::time::now_unix_micros()),
                    };
                    out.push(Decoded::Ddl(parse_ddl_message(&content, final_lsn, xid, ts)?));
                } else if !transactional && self.transaction.is_none() {
                    // Heartbeats, and any other non-transactional message, mark a point the
                    // flow may confirm once everything before it is written.
                    out.push(Decoded::Heartbeat { lsn });
                }
            }
        }
        if let Some(t) = &mut self.transaction {
            t.changes += out.iter().filter(|d| matches!(d, Decoded::Change(_) | Decoded::Ddl(_))).count();
        }
        Ok(out)
    }

    fn relation(&self, oid: u32) -> Result<&TableInfo> {
        self.relations.get(&oid).ok_or_else(|| CdcError::decode(format!("change for relation {oid} before its Relation message")))
    }

    fn event(
        &self,
        op: Op,
        table: &TableInfo,
        key: Option<crate::event::Row>,
        before: Option<crate::event::Row>,
        after: Option<crate::event::Row>,
    ) -> Result<ChangeEvent> {
        let t = self.transaction.as_ref().ok_or_else(|| CdcError::decode("row change outside a transaction"))?;
        Ok(ChangeEvent {
            op,
            schema: table.schema.clone(),
            table: table.name.clone(),
            key,
            before,
            after,
            lsn: t.final_lsn,
            commit_ts_micros: t.commit_ts_micros,
            xid: Some(t.xid),
        })
    }
}
