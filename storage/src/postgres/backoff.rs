//! Reconnecting with backoff: while Postgres cannot be reached (restarting, a network cut),
//! the pool tries to connect again after a growing pause instead of on every request, and
//! answers the requests in between at once with the last failure, which clients see as a
//! retriable error. A successful connect ends the pause.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The pause after the first failed connect; it doubles with each failure after that.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause: a restarted Postgres is found within this.
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

#[derive(Default)]
pub(crate) struct Backoff {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
}

impl Backoff {
    /// `Err` with the last failure while a pause runs; `Ok` when a connect may be tried.
    pub(crate) fn check(&self, now: Instant) -> Result<(), String> {
        let Ok(state) = self.state.lock() else { return Ok(()) };
        match state.retry_at {
            Some(at) if now < at => Err(format!(
                "{} (next attempt in {} ms)",
                state.last_error,
                at.duration_since(now).as_millis()
            )),
            _ => Ok(()),
        }
    }

    pub(crate) fn failed(&self, now: Instant, error: String) {
        if let Ok(mut state) = self.state.lock() {
            let pause = FIRST_PAUSE.saturating_mul(1 << state.failures.min(16)).min(LONGEST_PAUSE);
            state.failures = state.failures.saturating_add(1);
            state.retry_at = Some(now + pause);
            state.last_error = error;
        }
    }

    pub(crate) fn succeeded(&self) {
        if let Ok(mut state) = self.state.lock() {
            *state = State::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_a_bound_and_end_on_success() {
        let backoff = Backoff::default();
        let start = Instant::now();
        assert!(backoff.check(start).is_ok());
        backoff.failed(start, "refused".into());
        let err = backoff.check(start).expect_err("paused");
        assert!(err.starts_with("refused"), "{err}");
        assert!(backoff.check(start + FIRST_PAUSE).is_ok(), "the first pause is FIRST_PAUSE");
        for _ in 0..20 {
            backoff.failed(start, "refused".into());
        }
        assert!(backoff.check(start + LONGEST_PAUSE - Duration::from_millis(1)).is_err());
        assert!(backoff.check(start + LONGEST_PAUSE).is_ok(), "never longer than LONGEST_PAUSE");
        backoff.failed(start, "refused".into());
        backoff.succeeded();
        assert!(backoff.check(start).is_ok());
    }
}
