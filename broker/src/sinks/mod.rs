//! Sinks: definitions and state in storage, run by the broker that coordinates them through
//! the `ductstream-sinks` runtime, reading the partition log ([`source::LogSource`]).

mod flow_sinks;
mod manager;
pub mod model;
pub mod source;
pub mod staging;
pub mod store;

pub use manager::{runner as sink_runner, SinkManager, SinkView};
pub use model::{SinkDef, SinkState};
