//! Exponential backoff, shared by the runtime (a batch that failed for now) and destinations
//! that retry single requests themselves (the webhook's `max_retries`).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    pub factor: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: Duration::from_millis(200), max: Duration::from_secs(30), factor: 2.0 }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (1 for the first retry): base × factor^(attempt-1),
    /// at most `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let seconds = self.base.as_secs_f64() * self.factor.max(1.0).powi(exponent);
        Duration::from_secs_f64(seconds.min(self.max.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_its_cap() {
        let b = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(1), factor: 2.0 };
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(3), Duration::from_millis(400));
        assert_eq!(b.delay(10), Duration::from_secs(1));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    }
}
