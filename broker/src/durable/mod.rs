//! Durable named consumers: a topic consumed like a queue, as JetStream pull consumers work.
//!
//! Workers pull claimed messages, ack them one by one; a claim that ends unacked makes the
//! message deliverable again; a message that keeps failing goes to a dead-letter topic. The
//! consumer's whole state ([`state::ConsumerState`]) is one storage document, changed only
//! through `Storage::update_document`, so claims are atomic in every engine and across
//! brokers on one Postgres, and a restart loses no ack.

mod acks;
mod admin;
pub(crate) mod dead_letter;
mod pull;
mod ranges;
mod replay;
pub mod settings;
pub mod state;
mod store;

pub use acks::{ack, in_progress, nak, term};
pub use admin::{create, delete, ensure, get, list, update, ConsumerView, PartitionView};
pub use pull::{pull, Pull, Pulled};
pub use replay::{parse_lsn, replay, ReplayFrom, LSN_HEADER};
pub use settings::{DeliverPolicy, Settings};
pub use state::{Applied, MessageId};

use crate::clock::now_ms;
