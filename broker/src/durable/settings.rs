//! A durable consumer's settings, as JetStream pull consumers have them, with their defaults
//! and limits.

use serde::{Deserialize, Serialize};

use crate::{BrokerError, Result};

pub const DEFAULT_ACK_WAIT_MS: u64 = 30_000;
pub const DEFAULT_MAX_ACK_PENDING: u32 = 1_000;
/// The longest claim a pull, ack wait, backoff step or nak delay may ask for: 12 hours.
pub const MAX_VISIBILITY_MS: u64 = 12 * 60 * 60 * 1000;
/// The longest a pull may wait for messages.
pub const MAX_PULL_WAIT_MS: u64 = 5 * 60 * 1000;
/// The most messages one pull hands out.
pub const MAX_PULL_MESSAGES: u32 = 10_000;

/// Where a new consumer starts in every partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliverPolicy {
    All,
    New,
    ByStartOffset(i64),
    /// Milliseconds since the epoch.
    ByStartTime(i64),
    LastPerKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub deliver_policy: DeliverPolicy,
    pub ack_wait_ms: u64,
    /// 0: no limit.
    pub max_deliver: u32,
    pub backoff_ms: Vec<u64>,
    pub max_ack_pending: u32,
    pub dead_letter_topic: String,
}

impl Settings {
    /// Deliver all, and zeros that [`Settings::normalized`] fills with the defaults.
    pub fn defaults() -> Settings {
        Settings {
            deliver_policy: DeliverPolicy::All,
            ack_wait_ms: 0,
            max_deliver: 0,
            backoff_ms: Vec::new(),
            max_ack_pending: 0,
            dead_letter_topic: String::new(),
        }
    }

    /// Fills defaults for zero values and checks the limits.
    pub fn normalized(mut self, stream: &str) -> Result<Settings> {
        if self.ack_wait_ms == 0 {
            self.ack_wait_ms = DEFAULT_ACK_WAIT_MS;
        }
        if self.max_ack_pending == 0 {
            self.max_ack_pending = DEFAULT_MAX_ACK_PENDING;
        }
        if self.dead_letter_topic.is_empty() {
            self.dead_letter_topic = format!("{stream}.dlq");
        }
        check_duration("ack_wait_ms", self.ack_wait_ms)?;
        for step in &self.backoff_ms {
            check_duration("backoff_ms", *step)?;
        }
        if self.dead_letter_topic == stream {
            return Err(BrokerError::InvalidArgument("the dead-letter topic cannot be the stream itself".into()));
        }
        if let DeliverPolicy::ByStartOffset(offset) = self.deliver_policy
            && offset < 0
        {
            return Err(BrokerError::InvalidArgument(format!("start offset {offset} is negative")));
        }
        Ok(self)
    }

    /// How long the `delivery`-th delivery (1 for the first) stays claimed, given what the pull
    /// asked for: redeliveries follow the backoff schedule when there is one.
    pub fn visibility_for(&self, delivery: u32, asked_ms: u64) -> u64 {
        if delivery <= 1 || self.backoff_ms.is_empty() {
            return asked_ms;
        }
        let step = (delivery as usize - 2).min(self.backoff_ms.len() - 1);
        self.backoff_ms[step]
    }
}

/// A visibility timeout, ack wait or backoff step: at least 1 ms and at most 12 hours.
pub fn check_duration(what: &str, ms: u64) -> Result<()> {
    if ms == 0 || ms > MAX_VISIBILITY_MS {
        return Err(BrokerError::InvalidArgument(format!(
            "{what} of {ms} ms is out of range: give 1 ms to {MAX_VISIBILITY_MS} ms (12 hours)"
        )));
    }
    Ok(())
}
