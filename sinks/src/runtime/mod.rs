//! The one runtime that drives every sink: read, cut, write, retry, dead-letter, commit.

mod budget;
mod cuts;
mod limits;
mod partition;
mod runner;
mod source;
mod status;

pub use budget::MemoryBudget;
pub use cuts::Cut;
pub use limits::{BatchLimits, OnError, RuntimeOptions};
pub use runner::{SinkRunner, TopicSelector};
pub use source::{Read, SinkSource, TopicPartition};
pub use status::{PartitionLag, SinkPhase, SinkStatus, StatusSnapshot};
