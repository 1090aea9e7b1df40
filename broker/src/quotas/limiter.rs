//! Throttling by token bucket: each bucket fills at its quota's rate and holds at most one
//! second of it; what a request takes beyond what is there is a debt, and the client waits
//! until it is paid (the throttle time Kafka puts in the response and then holds the
//! connection for).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The longest a client is told to wait (Kafka's quota window: 11 one-second samples); the
/// debt a bucket can carry is bounded to match, so one huge request is not punished forever.
pub const MAX_THROTTLE: Duration = Duration::from_secs(11);
/// How much unused quota a quiet client may spend at once.
const BURST: f64 = 1.0;

struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Default)]
pub struct Limiter {
    buckets: HashMap<String, Bucket>,
}

impl Limiter {
    /// Takes `amount` from the bucket `key` filling at `rate` per second; returns how long the
    /// client must wait.
    pub fn take(&mut self, key: &str, rate: f64, amount: f64, now: Instant) -> Duration {
        let bucket = self.buckets.entry(key.to_string()).or_insert(Bucket { tokens: rate * BURST, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        let floor = -rate * MAX_THROTTLE.as_secs_f64();
        bucket.tokens = ((bucket.tokens + elapsed * rate).min(rate * BURST) - amount).max(floor);
        bucket.at = now;
        if bucket.tokens >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-bucket.tokens / rate).min(MAX_THROTTLE)
    }

    /// Forgets buckets idle long enough to be full again (they would start full anyway).
    pub fn forget_idle(&mut self, now: Instant) {
        let idle = Duration::from_secs(60);
        self.buckets.retain(|_, b| now.saturating_duration_since(b.at) < idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_client_over_its_rate_waits_for_the_excess() {
        let mut limiter = Limiter::default();
        let start = Instant::now();
        // 1,000 B/s: the first second's worth passes, then each 500 B costs 0.5 s.
        assert_eq!(limiter.take("k", 1000.0, 1000.0, start), Duration::ZERO);
        assert_eq!(limiter.take("k", 1000.0, 500.0, start), Duration::from_millis(500));
        // Half a second later the debt is paid.
        assert_eq!(limiter.take("k", 1000.0, 0.0, start + Duration::from_millis(500)), Duration::ZERO);
        // A huge request waits at most MAX_THROTTLE, and the debt stays bounded.
        assert_eq!(limiter.take("k", 1000.0, 1e9, start + Duration::from_secs(1)), MAX_THROTTLE);
        assert_eq!(limiter.take("k", 1000.0, 0.0, start + Duration::from_secs(12)), Duration::ZERO);
        // Other buckets are not affected.
        assert_eq!(limiter.take("other", 1000.0, 10.0, start), Duration::ZERO);
    }
}
