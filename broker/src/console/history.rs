//! What the console charts: every sample interval (`--console-sample-interval-ms`, 10 s by
//! default) this broker's bytes in and out, each topic's end offsets (summed over its
//! partitions), each group's total lag and its lag on each partition, the last [`KEPT`]
//! samples of each in memory. The
//! console's short memory, lost on restart: Prometheus (`--metrics-listen`) keeps the long one.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ductstream_storage::Topic;

use crate::clock::now_ms;
use crate::{Broker, Result};

/// Samples kept of each series: an hour at the default interval.
pub const KEPT: usize = 360;
/// Most topics, and most groups, sampled (the first by name): each is a series of [`KEPT`]
/// samples, and each topic's partitions are looked up every sample.
const MOST_SERIES: usize = 1000;
/// Most partitions whose lag is kept, over all groups (each series holds [`KEPT`] samples).
const MOST_PARTITION_SERIES: usize = 2000;

#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Series {
    BytesIn,
    BytesOut,
    /// A topic's end offsets, summed: its records produced, as a counter.
    TopicEnd(String),
    GroupLag(String),
    /// A group's lag on one partition: group, topic, partition.
    PartitionLag(String, String, i32),
}

pub struct History {
    pub every: Duration,
    series: Mutex<HashMap<Series, VecDeque<(i64, i64)>>>,
}

impl History {
    pub fn new(every: Duration) -> Arc<History> {
        Arc::new(History { every, series: Mutex::new(HashMap::new()) })
    }

    /// The series' samples, oldest first: (milliseconds since the epoch, value).
    pub fn samples(&self, series: &Series) -> Vec<(i64, f64)> {
        let all = self.series.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        all.get(series).map_or_else(Vec::new, |s| s.iter().map(|&(at, v)| (at, v as f64)).collect())
    }

    /// A counter's rate per second between consecutive samples (0 where it went back: a topic
    /// deleted and made again).
    pub fn rate(&self, series: &Series) -> Vec<(i64, f64)> {
        rates(&self.samples(series))
    }

    /// The sum of the rates of every topic's end offsets: records produced per second.
    pub fn records_in(&self) -> Vec<(i64, f64)> {
        let all = self.series.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut total: std::collections::BTreeMap<i64, f64> = std::collections::BTreeMap::new();
        for (series, samples) in all.iter() {
            if let Series::TopicEnd(_) = series {
                let samples: Vec<(i64, f64)> = samples.iter().map(|&(at, v)| (at, v as f64)).collect();
                for (at, rate) in rates(&samples) {
                    *total.entry(at).or_default() += rate;
                }
            }
        }
        total.into_iter().collect()
    }

    fn record(&self, at: i64, values: Vec<(Series, i64)>) {
        let mut all = self.series.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (series, value) in values {
            let samples = all.entry(series).or_default();
            if samples.len() == KEPT {
                samples.pop_front();
            }
            samples.push_back((at, value));
        }
        // A topic or group gone for longer than the window is forgotten.
        let window = self.every.as_millis() as i64 * KEPT as i64;
        all.retain(|_, samples| samples.back().is_some_and(|&(last, _)| at - last <= window));
    }

    /// Samples until the broker shuts down; a failed sample is skipped (and logged).
    pub async fn run(self: Arc<Self>, broker: Arc<Broker>) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = broker.shutdown.cancelled() => return,
                _ = tick.tick() => match sample(&broker).await {
                    Ok(values) => self.record(now_ms(), values),
                    Err(e) => tracing::warn!(error = %e, "the console could not sample throughput and lag"),
                },
            }
        }
    }
}

fn rates(samples: &[(i64, f64)]) -> Vec<(i64, f64)> {
    samples
        .windows(2)
        .filter(|w| w[1].0 > w[0].0)
        .map(|w| (w[1].0, ((w[1].1 - w[0].1) * 1000.0 / (w[1].0 - w[0].0) as f64).max(0.0)))
        .collect()
}

async fn sample(broker: &Arc<Broker>) -> Result<Vec<(Series, i64)>> {
    let (bytes_in, bytes_out) = broker.metrics.bytes_totals();
    let mut values = vec![(Series::BytesIn, bytes_in as i64), (Series::BytesOut, bytes_out as i64)];
    let mut topics = broker.storage().topics().await?;
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let mut ends: HashMap<String, (Topic, Vec<i64>)> = HashMap::new();
    for topic in topics.into_iter().take(MOST_SERIES) {
        let mut partition_ends = Vec::with_capacity(topic.partitions as usize);
        for p in 0..topic.partitions {
            partition_ends.push(broker.log.offsets(&topic, p).await?.high_watermark);
        }
        values.push((Series::TopicEnd(topic.name.clone()), partition_ends.iter().sum()));
        ends.insert(topic.name.clone(), (topic, partition_ends));
    }
    // One read of every group's offsets (one query on Postgres), not one per group.
    let mut lags: Vec<(String, i64)> = Vec::new();
    let mut partition_series = 0;
    for (group, c) in broker.storage().all_committed_offsets().await? {
        if lags.last().is_none_or(|(last, _)| *last != group) {
            if lags.len() == MOST_SERIES {
                break;
            }
            lags.push((group.clone(), 0));
        }
        let end = ends.get(&c.topic).and_then(|(_, ends)| ends.get(usize::try_from(c.partition).ok()?));
        let Some(end) = end else { continue };
        let lag = (end - c.offset).max(0);
        if let Some((_, total)) = lags.last_mut() {
            *total += lag;
        }
        if partition_series < MOST_PARTITION_SERIES {
            partition_series += 1;
            values.push((Series::PartitionLag(group, c.topic, c.partition), lag));
        }
    }
    values.extend(lags.into_iter().map(|(group, lag)| (Series::GroupLag(group), lag)));
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_per_second_and_never_negative() {
        assert_eq!(rates(&[(0, 0.0), (2000, 100.0), (3000, 100.0), (4000, 0.0)]), vec![(2000, 50.0), (3000, 0.0), (4000, 0.0)]);
    }

    #[test]
    fn keeps_the_last_samples_and_forgets_what_is_gone() {
        let history = History::new(Duration::from_millis(10));
        for i in 0..(KEPT as i64 + 5) {
            history.record(i * 10, vec![(Series::BytesIn, i)]);
        }
        let kept = history.samples(&Series::BytesIn);
        assert_eq!((kept.len(), kept[0].1, kept[KEPT - 1].1), (KEPT, 5.0, (KEPT + 4) as f64));
        history.record(KEPT as i64 * 10 + 50, vec![(Series::GroupLag("g".into()), 3)]);
        history.record(KEPT as i64 * 30, vec![(Series::GroupLag("g".into()), 4)]);
        assert!(history.samples(&Series::BytesIn).is_empty());
        assert_eq!(history.samples(&Series::GroupLag("g".into())).len(), 2);
    }
}
