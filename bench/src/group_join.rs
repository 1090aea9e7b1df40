//! `group-join`: how long a new consumer of a cold (never used) consumer
//! group waits from `subscribe()` to its first record.
//!
//! Each run creates a consumer with a brand-new `group.id`, subscribes, and
//! polls until the first record arrives. The assignment callback
//! (`post_rebalance`) splits the wait into the join (FindCoordinator,
//! JoinGroup, the broker's initial rebalance delay, SyncGroup) and the fetch
//! (OffsetFetch, the `auto.offset.reset=earliest` lookup, the first Fetch).
//! A broker that implements Kafka's `group.initial.rebalance.delay.ms` shows
//! that delay plus some tens to hundreds of milliseconds.
//!
//! Also home to [`ensure_records`], which `group-failover` shares: make sure
//! the topic exists and holds records.

use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::{Value, json};

use crate::client::{Acks, ClientOpts, Compression, ErrorPrinter, ProducerSettings};
use crate::delivery::DeliveryTracker;
use crate::payload::filler;
use crate::stats::Report;
use crate::topic::{REQUEST_TIMEOUT, ensure_topic, watermarks};

#[derive(Debug, Args)]
pub struct GroupJoinArgs {
    /// Topic to subscribe to (created and filled if absent or empty).
    #[arg(long)]
    pub topic: String,
    /// Partitions to create the topic with when it does not exist.
    #[arg(long, default_value_t = 6)]
    pub partitions: u32,
    /// Records to produce first when the topic is empty.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: u64,
    /// Value size in bytes of those records.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Number of joins to time, each with a new group.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: u64,
    /// The broker's `--group-initial-rebalance-delay-ms`, as you configured
    /// it: printed next to the figures for comparison, never checked.
    #[arg(long, default_value_t = 3000)]
    pub expected_delay_ms: u64,
    /// Give up on a run (and exit non-zero) when no record arrived after this
    /// many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
}

/// How long one `poll` may block; bounds how late the timeout is noticed.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Milliseconds since the Unix epoch, with a fractional part. Used where
/// separate processes on one machine compare times.
pub fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// A name no earlier run used: process id and start time.
pub fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos:x}", std::process::id())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// What [`ensure_records`] found or did.
#[derive(Debug, Clone, Copy)]
pub struct TopicData {
    pub partitions: u32,
    /// Records the topic holds (sum of high minus low watermarks).
    pub records: u64,
    /// Records produced now because the topic was empty.
    pub produced: u64,
}

/// Creates `topic` if absent and, if it holds no records, produces
/// `messages` records of `size` bytes (no key, so spread over the
/// partitions).
pub fn ensure_records(
    opts: &ClientOpts,
    topic: &str,
    partitions: u32,
    messages: u64,
    size: usize,
) -> Result<TopicData> {
    let partitions = ensure_topic(opts, topic, partitions)?;
    let settings = ProducerSettings {
        acks: Acks::All,
        compression: Compression::None,
        linger_ms: 5,
        batch_size: 1_000_000,
        message_timeout_ms: 30_000,
    };
    let producer: ThreadedProducer<DeliveryTracker> = opts
        .config(&settings.to_config())
        .create_with_context(DeliveryTracker::new(Instant::now())?)
        .context("creating producer")?;
    let held = |producer: &ThreadedProducer<DeliveryTracker>| -> Result<u64> {
        Ok(watermarks(producer.client(), topic, partitions)?
            .iter()
            .map(|(low, high)| u64::try_from(high - low).unwrap_or(0))
            .sum())
    };
    let records = held(&producer)?;
    if records > 0 {
        return Ok(TopicData {
            partitions,
            records,
            produced: 0,
        });
    }

    let tracker = producer.context();
    let payload = filler(size);
    for n in 0..messages {
        let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, tracker.stamp())
            .payload(payload.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    thread::sleep(Duration::from_millis(1));
                    record = returned;
                }
                Err((error, _)) => bail!("producing record {n} to `{topic}`: {error}"),
            }
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .with_context(|| format!("flushing records to `{topic}`"))?;
    let deadline = Instant::now() + Duration::from_secs(1);
    while tracker.completed() < messages && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    let delivery = tracker.snapshot();
    if delivery.failed > 0 || delivery.delivered < messages {
        bail!(
            "filling `{topic}`: {} of {messages} records delivered, {} failed (first error: {})",
            delivery.delivered,
            delivery.failed,
            delivery.first_error.as_deref().unwrap_or("none")
        );
    }
    Ok(TopicData {
        partitions,
        records: held(&producer)?,
        produced: delivery.delivered,
    })
}

/// Deletes consumer groups a mode created, best effort: a broker without
/// DeleteGroups, or a group not yet empty, only earns a warning.
pub fn delete_groups(opts: &ClientOpts, groups: &[String]) {
    if groups.is_empty() {
        return;
    }
    let admin: AdminClient<DefaultClientContext> = match opts.config(&[]).create() {
        Ok(admin) => admin,
        Err(error) => {
            eprintln!("ductstream-bench: could not delete the bench's groups: {error}");
            return;
        }
    };
    let names: Vec<&str> = groups.iter().map(String::as_str).collect();
    let options = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
    match futures::executor::block_on(admin.delete_groups(&names, &options)) {
        Ok(results) => {
            for result in results {
                if let Err((group, code)) = result {
                    eprintln!("ductstream-bench: deleting group `{group}`: {code}");
                }
            }
        }
        Err(error) => eprintln!("ductstream-bench: deleting the bench's groups: {error}"),
    }
}

/// Consumer context recording when the first assignment arrived.
struct JoinContext {
    errors: ErrorPrinter,
    state: Mutex<JoinState>,
}

#[derive(Default)]
struct JoinState {
    /// When the first (non-empty) assignment was applied, and its size.
    assigned: Option<(Instant, usize)>,
    /// Assignment callbacks seen (an empty one counts too).
    assignments: u32,
    rebalance_error: Option<String>,
}

impl JoinContext {
    fn new() -> Self {
        Self {
            errors: ErrorPrinter::default(),
            state: Mutex::new(JoinState::default()),
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut JoinState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ClientContext for JoinContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.report(&error, reason);
    }
}

impl ConsumerContext for JoinContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let now = Instant::now();
        self.with_state(|state| match rebalance {
            Rebalance::Assign(list) => {
                state.assignments += 1;
                if state.assigned.is_none() && list.count() > 0 {
                    state.assigned = Some((now, list.count()));
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => {
                state
                    .rebalance_error
                    .get_or_insert_with(|| error.to_string());
            }
        });
    }
}

/// One timed join.
struct JoinRun {
    group: String,
    /// `subscribe()` to the assignment callback.
    to_assignment: Option<Duration>,
    assigned_partitions: usize,
    /// `subscribe()` to the first record.
    to_first_record: Option<Duration>,
    /// Assignment callbacks before the first record (1 unless the group
    /// rebalanced again).
    assignments: u32,
    error: Option<String>,
}

impl JoinRun {
    fn json(&self) -> Value {
        json!({
            "group": self.group,
            "to_assignment_ms": self.to_assignment.map(ms),
            "to_first_record_ms": self.to_first_record.map(ms),
            "fetch_ms": self.fetch().map(ms),
            "assigned_partitions": self.assigned_partitions,
            "assignments": self.assignments,
            "error": self.error,
        })
    }

    /// Assignment to first record.
    fn fetch(&self) -> Option<Duration> {
        Some(self.to_first_record?.saturating_sub(self.to_assignment?))
    }
}

fn time_one_join(opts: &ClientOpts, args: &GroupJoinArgs, group: String) -> Result<JoinRun> {
    let consumer: BaseConsumer<JoinContext> = opts
        .config(&[
            ("group.id", group.clone()),
            ("auto.offset.reset", "earliest".to_string()),
            // Nothing is committed: the group stays without offsets and can
            // be deleted at the end.
            ("enable.auto.commit", "false".to_string()),
            ("enable.partition.eof", "false".to_string()),
        ])
        .create_with_context(JoinContext::new())
        .context("creating consumer")?;

    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.timeout_s);
    consumer
        .subscribe(&[args.topic.as_str()])
        .with_context(|| format!("subscribing to `{}`", args.topic))?;
    let mut first_record = None;
    let mut poll_error = None;
    while first_record.is_none() && Instant::now() < deadline {
        match consumer.poll(POLL_INTERVAL) {
            Some(Ok(_)) => first_record = Some(Instant::now()),
            Some(Err(error)) if poll_error.is_none() => {
                eprintln!("ductstream-bench: group-join: {error}");
                poll_error = Some(error.to_string());
            }
            Some(Err(_)) | None => {}
        }
    }
    let (assigned, assignments, rebalance_error) = consumer
        .context()
        .with_state(|s| (s.assigned, s.assignments, s.rebalance_error.clone()));
    let error = if first_record.is_none() {
        Some(format!(
            "no record within {} s{}",
            args.timeout_s,
            match (&rebalance_error, &poll_error, assigned) {
                (Some(e), _, _) => format!(" (rebalance error: {e})"),
                (None, Some(e), _) => format!(" (poll error: {e})"),
                (None, None, None) => " (never assigned)".to_string(),
                (None, None, Some(_)) => " (assigned, but nothing fetched)".to_string(),
            }
        ))
    } else {
        None
    };
    // Leave the group (LeaveGroup) and close; not part of the figures.
    consumer.unsubscribe();
    drop(consumer);
    Ok(JoinRun {
        group,
        to_assignment: assigned.map(|(at, _)| at.duration_since(start)),
        assigned_partitions: assigned.map_or(0, |(_, n)| n),
        to_first_record: first_record.map(|at| at.duration_since(start)),
        assignments,
        error,
    })
}

pub fn run(opts: &ClientOpts, args: &GroupJoinArgs) -> Result<GroupJoinReport> {
    let data = ensure_records(opts, &args.topic, args.partitions, args.messages, args.size)?;
    let suffix = unique_suffix();
    let mut runs = Vec::new();
    for n in 1..=args.runs {
        let group = format!("ductstream-bench-join-{suffix}-{n}");
        runs.push(time_one_join(opts, args, group)?);
    }
    let groups: Vec<String> = runs.iter().map(|r| r.group.clone()).collect();
    delete_groups(opts, &groups);
    Ok(GroupJoinReport {
        topic: args.topic.clone(),
        data,
        expected_delay_ms: args.expected_delay_ms,
        runs,
    })
}

pub struct GroupJoinReport {
    topic: String,
    data: TopicData,
    expected_delay_ms: u64,
    runs: Vec<JoinRun>,
}

/// p50 (nearest rank) and max of the values, in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MedianMax {
    pub p50_ms: f64,
    pub max_ms: f64,
    pub count: usize,
}

pub fn median_max(values: impl IntoIterator<Item = Duration>) -> Option<MedianMax> {
    let mut values: Vec<Duration> = values.into_iter().collect();
    values.sort();
    let max = *values.last()?;
    // Nearest rank: the ceil(n/2)-th smallest.
    let p50 = values[values.len().div_ceil(2) - 1];
    Some(MedianMax {
        p50_ms: ms(p50),
        max_ms: ms(max),
        count: values.len(),
    })
}

fn fmt_median_max(figures: Option<MedianMax>) -> String {
    figures.map_or_else(
        || "n/a".to_string(),
        |f| format!("p50={:.1} max={:.1}", f.p50_ms, f.max_ms),
    )
}

fn median_max_json(figures: Option<MedianMax>) -> Value {
    figures.map_or(
        Value::Null,
        |f| json!({"p50_ms": f.p50_ms, "max_ms": f.max_ms, "count": f.count}),
    )
}

impl GroupJoinReport {
    fn to_assignment(&self) -> Option<MedianMax> {
        median_max(self.runs.iter().filter_map(|r| r.to_assignment))
    }
    fn to_first_record(&self) -> Option<MedianMax> {
        median_max(self.runs.iter().filter_map(|r| r.to_first_record))
    }
    fn fetch(&self) -> Option<MedianMax> {
        median_max(self.runs.iter().filter_map(JoinRun::fetch))
    }
}

impl Report for GroupJoinReport {
    fn human(&self) -> String {
        let mut out = format!(
            "group-join: {} runs; ms from subscribe to assignment {}, to first record {} \
             (assignment to first record {}); expected delay {} ms",
            self.runs.len(),
            fmt_median_max(self.to_assignment()),
            fmt_median_max(self.to_first_record()),
            fmt_median_max(self.fetch()),
            self.expected_delay_ms,
        );
        out.push_str(&format!(
            "\n  topic={} partitions={} records={}",
            self.topic, self.data.partitions, self.data.records
        ));
        if self.data.produced > 0 {
            out.push_str(&format!(" (produced {} now)", self.data.produced));
        }
        let per_run: Vec<String> = self
            .runs
            .iter()
            .map(|r| {
                let f =
                    |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.0}", ms(d)));
                format!("{}/{}", f(r.to_assignment), f(r.to_first_record))
            })
            .collect();
        out.push_str(&format!(
            "\n  per run, assignment/first record ms: {}",
            per_run.join(" ")
        ));
        let partial: Vec<String> = self
            .runs
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.to_assignment.is_some()
                    && r.assigned_partitions as u64 != u64::from(self.data.partitions)
            })
            .map(|(i, r)| format!("run {} got {} partitions", i + 1, r.assigned_partitions))
            .collect();
        if !partial.is_empty() {
            out.push_str(&format!(
                "\n  first assignment not the whole topic: {}",
                partial.join(", ")
            ));
        }
        let rebalanced = self.runs.iter().filter(|r| r.assignments > 1).count();
        if rebalanced > 0 {
            out.push_str(&format!(
                "\n  {rebalanced} runs saw more than one assignment before the first record"
            ));
        }
        if let Some(failure) = self.failure() {
            out.push_str(&format!("\n  FAILED: {failure}"));
        }
        out
    }

    fn json(&self) -> Value {
        json!({
            "mode": "group-join",
            "topic": self.topic,
            "partitions": self.data.partitions,
            "records": self.data.records,
            "produced": self.data.produced,
            "expected_delay_ms": self.expected_delay_ms,
            "to_assignment": median_max_json(self.to_assignment()),
            "to_first_record": median_max_json(self.to_first_record()),
            "fetch": median_max_json(self.fetch()),
            "runs": self.runs.iter().map(JoinRun::json).collect::<Vec<_>>(),
        })
    }

    fn failure(&self) -> Option<String> {
        let failed: Vec<String> = self
            .runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.error.as_ref().map(|e| format!("run {}: {e}", i + 1)))
            .collect();
        (!failed.is_empty()).then(|| failed.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_nearest_rank() {
        let d = Duration::from_millis;
        let odd = median_max([d(30), d(10), d(20)]);
        assert_eq!(
            odd,
            Some(MedianMax {
                p50_ms: 20.0,
                max_ms: 30.0,
                count: 3
            })
        );
        let even = median_max([d(40), d(10), d(30), d(20)]);
        assert_eq!(even.map(|m| m.p50_ms), Some(20.0));
        assert_eq!(median_max(std::iter::empty()), None);
    }
}
