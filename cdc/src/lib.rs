//! Change data capture from Postgres into DuctStream topics.
//!
//! A [`Flow`] streams one database's changes through logical replication (the `pgoutput`
//! plugin, read by this crate's own [`replication`] client), turns them into
//! [`ChangeEvent`]s, encodes them as JSON records ([`encode`]) and appends them through a
//! [`ChangeWriter`] (implemented by the broker, so this crate never depends on it), one topic
//! per table: `<topic_prefix>.<schema>.<table>`. Positions are confirmed to the replication
//! slot only after the writer reports the records durable, and kept in a [`CheckpointStore`].
//!
//! Wiring a flow:
//! ```no_run
//! # async fn demo(writer: std::sync::Arc<dyn ductstream_cdc::ChangeWriter>,
//! #               store: std::sync::Arc<dyn ductstream_cdc::CheckpointStore>,
//! #               map: std::collections::HashMap<String, String>) -> ductstream_cdc::Result<()> {
//! let options = ductstream_cdc::FlowSourceOptions::from_map(&map)?;
//! let flow = ductstream_cdc::Flow::new(options, writer, store)?;
//! let handle = flow.handle(); // stop() and status() from elsewhere
//! tokio::spawn(flow.run());
//! # let _ = handle; Ok(()) }
//! ```

pub mod changes;
pub mod checkpoint;
pub mod ddl;
pub mod encode;
pub mod error;
pub mod event;
pub mod flow;
pub mod lsn;
pub mod memory;
pub mod options;
pub mod pgoutput;
mod pgwire;
pub mod publication;
pub mod relation;
pub mod replication;
pub mod slot;
pub mod snapshot;
pub mod snapshot_state;
pub mod source;
pub mod state;
mod time;
pub mod types;
pub mod validate;
pub mod value;
pub mod wire;
pub mod wire_json;

pub use checkpoint::{Checkpoint, CheckpointStore, SnapshotProgress};
pub use ddl::{DdlApprovalRequest, DdlDecision, DdlGate, install_ddl_capture, uninstall_ddl_capture};
pub use error::{CdcError, Result};
pub use event::{ChangeEvent, ColumnValue, DdlEvent, Op, Row};
pub use flow::{Flow, FlowHandle, FlowPhase, FlowStatus};
pub use lsn::Lsn;
pub use memory::{MemoryCheckpointStore, MemoryWriter};
pub use options::{FlowSourceOptions, SnapshotStateBackend, SyncPublicationMode};
pub use source::SourceConfig;
pub use wire::WireFormat;
pub use writer::{ChangeWriter, OutRecord};

pub mod writer;
