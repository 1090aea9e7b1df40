//! Client quotas (DescribeClientQuotas, AlterClientQuotas): produce and fetch byte rates and
//! request-handling time per user, client id, or both, enforced as Kafka does: the response
//! carries `throttle_time_ms` and the connection reads nothing more from the client until
//! that time has passed.
//!
//! The configuration is one document in the broker's storage, so brokers sharing a Postgres
//! share it; each broker reads it again every second and counts its own traffic (a quota is
//! per broker, as in Kafka).

mod limiter;
pub mod model;

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ductstream_storage::Storage;

use crate::{documents, Result};
pub use limiter::MAX_THROTTLE;
use model::{Entity, QuotaConfig};

const KIND: &str = "client_quotas";
const KEY: &str = "all";
/// How stale another broker's quota changes may be here.
const REFRESH: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Quotas {
    config: RwLock<Arc<QuotaConfig>>,
    limiter: Mutex<limiter::Limiter>,
}

/// One change of one entity's value: set, or removed (None).
pub type Change = (String, Option<f64>);

impl Quotas {
    pub fn config(&self) -> Arc<QuotaConfig> {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn replace(&self, config: QuotaConfig) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }

    /// Whether any quota is configured (the hot paths ask first and skip the rest).
    pub fn any(&self) -> bool {
        !self.config().entries.is_empty()
    }

    /// Counts `amount` of `key` (bytes for a byte rate, percent-seconds of handling time for
    /// `request_percentage`) for `user` with `client_id`; returns how long the client must
    /// wait, zero when no quota applies.
    pub fn record(&self, key: &str, user: &str, client_id: &str, amount: f64) -> Duration {
        let config = self.config();
        if config.entries.is_empty() {
            return Duration::ZERO;
        }
        let Some((rate, bucket)) = model::resolve(&config, key, user, client_id) else {
            return Duration::ZERO;
        };
        let mut limiter = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        limiter.take(&bucket, rate, amount, Instant::now())
    }

    pub async fn refresh(&self, storage: &dyn Storage) -> Result<()> {
        let stored: QuotaConfig = documents::load_or_default(storage, KIND, KEY, "quotas").await?;
        self.replace(stored);
        Ok(())
    }

    /// Applies each entity's changes in one stored update.
    pub async fn alter(&self, storage: &dyn Storage, changes: &[(Entity, Vec<Change>)]) -> Result<()> {
        let (stored, ()) = documents::upsert(storage, KIND, KEY, |config: &mut QuotaConfig| {
            for (entity, ops) in changes {
                let key = model::entity_key(entity);
                let (_, values) = config.entries.entry(key.clone()).or_insert_with(|| (entity.clone(), Default::default()));
                for (name, value) in ops {
                    match value {
                        Some(v) => values.insert(name.clone(), *v),
                        None => values.remove(name),
                    };
                }
                if values.is_empty() {
                    config.entries.remove(&key);
                }
            }
            Ok(())
        })
        .await?;
        self.replace(stored);
        Ok(())
    }

    /// Keeps the copy current with other brokers' changes until `stop`.
    pub async fn follow(self: Arc<Self>, storage: Arc<dyn Storage>, stop: tokio_util::sync::CancellationToken) {
        loop {
            if let Err(e) = self.refresh(storage.as_ref()).await {
                tracing::warn!(error = %e, "cannot read the client quotas; keeping the last ones read");
            }
            self.limiter.lock().unwrap_or_else(|p| p.into_inner()).forget_idle(Instant::now());
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(REFRESH) => {}
            }
        }
    }
}
