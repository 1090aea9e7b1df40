//! CDC flows: definitions and state in storage, run by the broker that coordinates them,
//! writing through the partition log ([`writer::TopicWriter`]).

pub mod backfill;
pub mod ddl;
mod manager;
pub mod model;
pub mod schedule;
pub mod store;
pub mod writer;

pub use manager::{FlowManager, FlowView, PublicationSync};
pub use model::{Endpoint, FlowDef, FlowState, WIRE_FORMATS};
