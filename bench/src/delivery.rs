//! Producer context that turns delivery reports into counts and a latency
//! histogram, without a future per message.
//!
//! Each message carries its send time as the delivery opaque (nanoseconds
//! since the tracker's epoch, a plain `usize`, so nothing is allocated per
//! message); the delivery callback, run on the `ThreadedProducer`'s polling
//! thread, records `now - sent`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Result;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::ProducerContext;

use crate::client::ErrorPrinter;
use crate::stats::{LatencyHistogram, LatencySummary};

pub struct DeliveryTracker {
    epoch: Instant,
    /// Delivery reports received, successful or not.
    completed: AtomicU64,
    state: Mutex<DeliveryState>,
    pub errors: ErrorPrinter,
}

struct DeliveryState {
    latency: LatencyHistogram,
    delivered: u64,
    bytes: u64,
    failed: u64,
    first_error: Option<String>,
    last_report: Option<Instant>,
}

/// What the delivery reports said so far.
#[derive(Debug, Clone)]
pub struct DeliverySnapshot {
    pub delivered: u64,
    pub bytes: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    pub latency: LatencySummary,
    pub last_report: Option<Instant>,
}

impl DeliverySnapshot {
    /// What went wrong with deliveries, if anything did.
    pub fn failure(&self) -> Option<String> {
        (self.failed > 0).then(|| {
            format!("{} deliveries failed, first error: {}", self.failed, self.first_error.as_deref().unwrap_or("unknown"))
        })
    }
}

impl DeliveryTracker {
    pub fn new(epoch: Instant) -> Result<Self> {
        Ok(Self {
            epoch,
            completed: AtomicU64::new(0),
            state: Mutex::new(DeliveryState {
                latency: LatencyHistogram::new()?,
                delivered: 0,
                bytes: 0,
                failed: 0,
                first_error: None,
                last_report: None,
            }),
            errors: ErrorPrinter::default(),
        })
    }

    /// The delivery opaque for a message sent now.
    pub fn stamp(&self) -> usize {
        usize::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(usize::MAX)
    }

    /// Delivery reports received so far (successes and failures).
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Acquire)
    }

    pub fn snapshot(&self) -> DeliverySnapshot {
        let state = self.lock();
        DeliverySnapshot {
            delivered: state.delivered,
            bytes: state.bytes,
            failed: state.failed,
            first_error: state.first_error.clone(),
            latency: state.latency.summary(),
            last_report: state.last_report,
        }
    }

    fn lock(&self) -> MutexGuard<'_, DeliveryState> {
        // A panic elsewhere cannot leave the counters inconsistent enough to
        // matter for a benchmark report.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ClientContext for DeliveryTracker {
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.report(&error, reason);
    }
}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at_nanos: usize) {
        let now = Instant::now();
        let sent_at = self.epoch + Duration::from_nanos(sent_at_nanos as u64);
        let mut state = self.lock();
        match result {
            Ok(message) => {
                state.delivered += 1;
                state.bytes +=
                    (message.payload_len() + message.key().map_or(0, <[u8]>::len)) as u64;
                state.latency.record(now.saturating_duration_since(sent_at));
            }
            Err((error, _)) => {
                state.failed += 1;
                if state.first_error.is_none() {
                    state.first_error = Some(error.to_string());
                }
            }
        }
        state.last_report = Some(now);
        drop(state);
        self.completed.fetch_add(1, Ordering::Release);
    }
}
