use std::time::Duration;

use crate::{Options, Result, SinkError};

/// When the runtime cuts a partition's buffered records into a batch: at `records` records, at
/// `bytes` bytes, or once the oldest has waited `interval` (so idle partitions flush too).
/// For files these are the rotation limits: one batch is one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub records: usize,
    pub bytes: usize,
    pub interval: Duration,
}

/// What happens to a record the destination refuses for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Appended to the dead-letter topic with headers saying why; the sink goes on.
    DeadLetter,
    /// The sink stops (FAILED, with the reason) before committing past the record.
    Pause,
}

/// The options every destination shares, which the runtime applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    pub limits: BatchLimits,
    pub on_error: OnError,
    /// Defaults to `<sink id>.dlq`.
    pub dead_letter_topic: String,
}

impl RuntimeOptions {
    /// Takes `batch_records`, `batch_bytes`, `batch_interval` (or their file names
    /// `rotate_records`, `rotate_bytes`, `rotate_interval`), `on_error` and `dead_letter_topic`
    /// out of `options`, with the destination's own defaults.
    pub fn take(options: &mut Options, defaults: BatchLimits, sink_id: &str) -> Result<RuntimeOptions> {
        let records = take_either(options, "batch_records", "rotate_records", defaults.records)?;
        let bytes = take_either(options, "batch_bytes", "rotate_bytes", defaults.bytes)?;
        let interval = match options.string("rotate_interval") {
            Some(v) => {
                let mut alias = Options::new("sink", &[("rotate_interval".to_string(), v)].into());
                alias.duration("rotate_interval", defaults.interval)?
            }
            None => options.duration("batch_interval", defaults.interval)?,
        };
        if records == 0 || bytes == 0 {
            return Err(SinkError::Config("batch_records and batch_bytes must be at least 1".into()));
        }
        let on_error = match options.choice("on_error", "dead_letter", &["dead_letter", "pause"])?.as_str() {
            "pause" => OnError::Pause,
            _ => OnError::DeadLetter,
        };
        let dead_letter_topic = options.string_or("dead_letter_topic", &format!("{sink_id}.dlq"));
        Ok(RuntimeOptions { limits: BatchLimits { records, bytes, interval }, on_error, dead_letter_topic })
    }
}

fn take_either(options: &mut Options, name: &str, alias: &str, default: usize) -> Result<usize> {
    let aliased = options.parse::<usize>(alias, default)?;
    options.parse::<usize>(name, aliased)
}
