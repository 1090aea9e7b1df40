//! Latency histograms, throughput figures and the report printing shared by
//! every mode.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Bytes in a "MB" as printed by the bench (decimal, like most load tools).
const BYTES_PER_MB: f64 = 1_000_000.0;

/// Largest latency the histogram tracks exactly: one hour, in microseconds.
/// Larger values are clamped to it.
const MAX_TRACKED_MICROS: u64 = 3_600_000_000;

/// A latency histogram with microsecond resolution and 3 significant digits.
pub struct LatencyHistogram {
    hist: Histogram<u64>,
}

impl LatencyHistogram {
    pub fn new() -> Result<Self> {
        let hist = Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, 3)
            .context("creating latency histogram")?;
        Ok(Self { hist })
    }

    /// Records one latency. Values below 1 µs count as 1 µs, values above the
    /// tracked range are clamped.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.hist
            .saturating_record(micros.clamp(1, MAX_TRACKED_MICROS));
    }

    /// Adds every sample of `other` (workers keep their own histogram and
    /// the mode merges them at the end, so recording takes no lock).
    pub fn merge(&mut self, other: &LatencyHistogram) -> Result<()> {
        self.hist
            .add(&other.hist)
            .map_err(|e| anyhow::anyhow!("merging latency histograms: {e:?}"))
    }

    pub fn summary(&self) -> LatencySummary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let count = self.hist.len();
        if count == 0 {
            return LatencySummary::default();
        }
        LatencySummary {
            count,
            mean_ms: self.hist.mean() / 1000.0,
            p50_ms: ms(self.hist.value_at_quantile(0.50)),
            p99_ms: ms(self.hist.value_at_quantile(0.99)),
            p999_ms: ms(self.hist.value_at_quantile(0.999)),
            max_ms: ms(self.hist.max()),
        }
    }
}

/// Percentiles of a [`LatencyHistogram`], in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// `p50=1.2 p99=4.5 p99.9=8.0`, plus ` max=12.3` when `with_max`.
    pub fn human(&self, with_max: bool) -> String {
        if self.count == 0 {
            return "n/a (no samples)".to_string();
        }
        let mut line = format!(
            "p50={} p99={} p99.9={}",
            fmt_ms(self.p50_ms),
            fmt_ms(self.p99_ms),
            fmt_ms(self.p999_ms)
        );
        if with_max {
            line.push_str(&format!(" max={}", fmt_ms(self.max_ms)));
        }
        line
    }

    pub fn json(&self) -> Value {
        json!({
            "count": self.count,
            "mean_ms": self.mean_ms,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "p99_9_ms": self.p999_ms,
            "max_ms": self.max_ms,
        })
    }
}

/// Milliseconds with more digits for sub-millisecond values.
fn fmt_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.1}")
    }
}

/// How many messages and bytes moved in how long.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    pub messages: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Throughput {
    pub fn msgs_per_s(&self) -> f64 {
        per_second(self.messages as f64, self.elapsed)
    }

    pub fn mb_per_s(&self) -> f64 {
        per_second(self.bytes as f64 / BYTES_PER_MB, self.elapsed)
    }

    /// `1000000 msgs, 1024.0 MB in 3.21 s: 311526 msgs/s, 319.0 MB/s`
    pub fn human(&self) -> String {
        format!(
            "{} msgs, {:.1} MB in {:.2} s: {:.0} msgs/s, {:.1} MB/s",
            self.messages,
            self.bytes as f64 / BYTES_PER_MB,
            self.elapsed.as_secs_f64(),
            self.msgs_per_s(),
            self.mb_per_s()
        )
    }

    /// Adds the throughput fields to a JSON object.
    pub fn add_json(&self, obj: &mut serde_json::Map<String, Value>) {
        obj.insert("messages".into(), json!(self.messages));
        obj.insert("bytes".into(), json!(self.bytes));
        obj.insert("elapsed_s".into(), json!(self.elapsed.as_secs_f64()));
        obj.insert("msgs_per_s".into(), json!(self.msgs_per_s()));
        obj.insert("mb_per_s".into(), json!(self.mb_per_s()));
    }
}

fn per_second(amount: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { amount / secs } else { 0.0 }
}

/// The outcome of one bench mode.
pub trait Report {
    /// One human-readable line (may be followed by detail lines).
    fn human(&self) -> String;
    /// A single JSON object with the same figures.
    fn json(&self) -> Value;
    /// Why the run must exit non-zero although it has figures to show.
    fn failure(&self) -> Option<String>;
}

/// Prints a report to stdout in the chosen format.
pub fn print_report(report: &dyn Report, as_json: bool) -> std::io::Result<()> {
    let text = if as_json {
        let mut value = report.json();
        if let Value::Object(obj) = &mut value {
            let failure = report.failure();
            obj.insert("ok".into(), json!(failure.is_none()));
            obj.insert("error".into(), json!(failure));
        }
        value.to_string()
    } else {
        report.human()
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_uniform_latencies() -> Result<()> {
        let mut hist = LatencyHistogram::new()?;
        for ms in 1..=1000u64 {
            hist.record(Duration::from_millis(ms));
        }
        let s = hist.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99_ms - 990.0).abs() < 1.0, "{s:?}");
        assert!((s.max_ms - 1000.0).abs() < 1.0, "{s:?}");
        Ok(())
    }

    #[test]
    fn throughput_line_matches_documented_format() {
        let t = Throughput {
            messages: 1_000_000,
            bytes: 1_024_000_000,
            elapsed: Duration::from_millis(3210),
        };
        assert_eq!(
            t.human(),
            "1000000 msgs, 1024.0 MB in 3.21 s: 311526 msgs/s, 319.0 MB/s"
        );
    }

    #[test]
    fn empty_histogram_has_no_samples() -> Result<()> {
        let hist = LatencyHistogram::new()?;
        assert_eq!(hist.summary().human(true), "n/a (no samples)");
        Ok(())
    }
}
