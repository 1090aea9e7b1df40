//! `group-failover`: how long a consumer group takes to settle after a member
//! dies (SIGKILL: the broker only notices when its session times out) and,
//! with `--leave`, after a member leaves cleanly (SIGTERM: the member closes
//! its consumer, which sends LeaveGroup).
//!
//! The members are child processes running this binary's hidden
//! `group-member` subcommand ([`run_member`]). Each prints one JSON line on
//! stdout per assignment change:
//!
//! ```text
//! {"event":"assigned","member":"member-1","partitions":[0,1],"t_ms":1763859123456.789}
//! ```
//!
//! where `partitions` is the member's whole assignment after the change and
//! `t_ms` the time of the change in milliseconds since the Unix epoch (the
//! parent compares it with its own clock: same machine). A member leaves its
//! group and exits on SIGTERM, SIGINT, a `leave` line on stdin, or the end of
//! stdin (so members do not outlive a parent that was killed).
//!
//! The parent waits until the group is stable, kills one member and waits
//! until the survivors' latest assignments, all made after the kill, cover
//! every partition exactly once. With `--leave` it then starts a replacement
//! (back to `--members` members), waits for stability again, sends SIGTERM to
//! one member and times the settling the same way.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use serde_json::{Value, json};

use crate::client::{ClientOpts, ErrorPrinter};
use crate::group_join::{TopicData, delete_groups, ensure_records, unique_suffix, unix_ms};
use crate::stats::Report;

#[derive(Debug, Args)]
pub struct GroupFailoverArgs {
    /// Topic the group subscribes to (created and filled if absent or empty).
    #[arg(long)]
    pub topic: String,
    /// Partitions to create the topic with when it does not exist.
    #[arg(long, default_value_t = 6)]
    pub partitions: u32,
    /// Records to produce first when the topic is empty.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: u64,
    /// Group members (child processes) to start.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(2..=64))]
    pub members: u64,
    /// `session.timeout.ms` of the members (the broker's minimum by default).
    #[arg(long, default_value_t = 6000)]
    pub session_timeout_ms: u64,
    /// `heartbeat.interval.ms` of the members.
    #[arg(long, default_value_t = 1000)]
    pub heartbeat_interval_ms: u64,
    /// Also time a clean leave: a replacement member joins, then one member
    /// gets SIGTERM and closes its consumer (LeaveGroup).
    #[arg(long)]
    pub leave: bool,
    /// Bound on the whole run; members are killed when it runs out.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
}

/// The hidden `group-member` subcommand: one member of a group.
#[derive(Debug, Args)]
pub struct GroupMemberArgs {
    #[arg(long)]
    pub group: String,
    #[arg(long)]
    pub topic: String,
    #[arg(long, default_value_t = 6000)]
    pub session_timeout_ms: u64,
    #[arg(long, default_value_t = 1000)]
    pub heartbeat_interval_ms: u64,
    /// Name in the event lines (and `client.id`).
    #[arg(long, default_value = "member")]
    pub name: String,
}

// ---------------------------------------------------------------------------
// The member (child process)
// ---------------------------------------------------------------------------

/// How long a member's `poll` may block; bounds how late it notices a
/// request to leave.
const MEMBER_POLL: Duration = Duration::from_millis(100);
/// A member commits what it consumed at most this often.
const COMMIT_EVERY: Duration = Duration::from_millis(500);

/// Why a member stops; 0 while running.
const RUNNING: u8 = 0;
const STOP_SIGTERM: u8 = 1;
const STOP_SIGINT: u8 = 2;
const STOP_STDIN_LEAVE: u8 = 3;
const STOP_STDIN_EOF: u8 = 4;
const STOP_OUTPUT_GONE: u8 = 5;

fn stop_reason(code: u8) -> &'static str {
    match code {
        STOP_SIGTERM => "SIGTERM",
        STOP_SIGINT => "SIGINT",
        STOP_STDIN_LEAVE => "leave command",
        STOP_STDIN_EOF => "end of stdin",
        STOP_OUTPUT_GONE => "stdout closed",
        _ => "unknown",
    }
}

/// Event lines on stdout, shared by the poll loop and librdkafka callbacks.
struct EventOut {
    name: String,
    stop: Arc<AtomicU8>,
    lock: Mutex<()>,
}

impl EventOut {
    fn emit(&self, event: &str, mut fields: serde_json::Map<String, Value>) {
        fields.insert("event".into(), json!(event));
        fields.insert("member".into(), json!(self.name));
        fields.insert("t_ms".into(), json!(unix_ms()));
        let line = Value::Object(fields).to_string();
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // The parent is gone: leave the group and exit.
            let _ = self.stop.compare_exchange(
                RUNNING,
                STOP_OUTPUT_GONE,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }
}

fn fields(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

struct MemberContext {
    out: Arc<EventOut>,
    topic: String,
    errors: ErrorPrinter,
}

impl MemberContext {
    /// The partitions of our topic in `list`, sorted.
    fn partitions(&self, list: &TopicPartitionList) -> Vec<i32> {
        let mut partitions: Vec<i32> = list
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        partitions.sort_unstable();
        partitions
    }
}

impl ClientContext for MemberContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.report(&error, reason);
    }
}

impl ConsumerContext for MemberContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // The whole assignment after the change (with the default, eager
        // assignors: everything after an assign, nothing after a revoke).
        let current = match consumer.assignment() {
            Ok(list) => self.partitions(&list),
            Err(error) => {
                self.out.emit(
                    "error",
                    fields(json!({"where": "assignment", "error": error.to_string()})),
                );
                return;
            }
        };
        match rebalance {
            Rebalance::Assign(delta) => self.out.emit(
                "assigned",
                fields(json!({"partitions": current, "delta": self.partitions(delta)})),
            ),
            Rebalance::Revoke(delta) => self.out.emit(
                "revoked",
                fields(json!({"partitions": current, "delta": self.partitions(delta)})),
            ),
            Rebalance::Error(error) => self.out.emit(
                "error",
                fields(json!({"where": "rebalance", "error": error.to_string()})),
            ),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        // Commits rejected during a rebalance are expected; the parent
        // counts them.
        if let Err(error) = result {
            self.out
                .emit("commit_error", fields(json!({"error": error.to_string()})));
        }
    }
}

/// Sets `stop` on SIGTERM or SIGINT. Returns once the handlers are in place.
fn watch_signals(stop: Arc<AtomicU8>) -> Result<()> {
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = ready_tx.send(Err(error.to_string()));
                    return;
                }
            };
            runtime.block_on(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let (mut term, mut int) = match (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) {
                    (Ok(term), Ok(int)) => (term, int),
                    (Err(error), _) | (_, Err(error)) => {
                        let _ = ready_tx.send(Err(error.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let code = tokio::select! {
                    _ = term.recv() => STOP_SIGTERM,
                    _ = int.recv() => STOP_SIGINT,
                };
                let _ = stop.compare_exchange(RUNNING, code, Ordering::AcqRel, Ordering::Acquire);
            });
        })
        .context("starting the signal thread")?;
    ready_rx
        .recv()
        .context("signal thread died")?
        .map_err(|e| anyhow!("installing signal handlers: {e}"))
}

/// Sets `stop` on a `leave` line or the end of stdin.
fn watch_stdin(stop: Arc<AtomicU8>) -> Result<()> {
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut code = STOP_STDIN_EOF;
            for line in std::io::stdin().lock().lines() {
                match line {
                    Ok(line) if line.trim() == "leave" => {
                        code = STOP_STDIN_LEAVE;
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            let _ = stop.compare_exchange(RUNNING, code, Ordering::AcqRel, Ordering::Acquire);
        })
        .context("starting the stdin thread")?;
    Ok(())
}

/// Runs one group member until asked to leave; see the module docs.
pub fn run_member(opts: &ClientOpts, args: &GroupMemberArgs) -> Result<()> {
    let stop = Arc::new(AtomicU8::new(RUNNING));
    watch_signals(Arc::clone(&stop))?;
    watch_stdin(Arc::clone(&stop))?;
    let out = Arc::new(EventOut {
        name: args.name.clone(),
        stop: Arc::clone(&stop),
        lock: Mutex::new(()),
    });
    let context = MemberContext {
        out: Arc::clone(&out),
        topic: args.topic.clone(),
        errors: ErrorPrinter::default(),
    };
    let consumer: BaseConsumer<MemberContext> = opts
        .config(&[
            ("client.id", args.name.clone()),
            ("group.id", args.group.clone()),
            ("auto.offset.reset", "earliest".to_string()),
            ("enable.auto.commit", "false".to_string()),
            ("enable.partition.eof", "false".to_string()),
            ("session.timeout.ms", args.session_timeout_ms.to_string()),
            (
                "heartbeat.interval.ms",
                args.heartbeat_interval_ms.to_string(),
            ),
        ])
        .create_with_context(context)
        .context("creating consumer")?;
    consumer
        .subscribe(&[args.topic.as_str()])
        .with_context(|| format!("subscribing to `{}`", args.topic))?;
    out.emit(
        "subscribed",
        fields(json!({"pid": std::process::id(), "group": args.group})),
    );

    let mut consumed = 0u64;
    let mut uncommitted = false;
    let mut last_commit = Instant::now();
    let mut poll_errors = 0u64;
    while stop.load(Ordering::Acquire) == RUNNING {
        match consumer.poll(MEMBER_POLL) {
            Some(Ok(_)) => {
                consumed += 1;
                uncommitted = true;
            }
            Some(Err(error)) => {
                poll_errors += 1;
                if poll_errors <= 5 {
                    out.emit(
                        "error",
                        fields(json!({"where": "poll", "error": error.to_string()})),
                    );
                }
            }
            None => {}
        }
        if uncommitted && last_commit.elapsed() >= COMMIT_EVERY {
            // Commits the offsets after the records polled so far.
            if let Err(error) = consumer.commit_consumer_state(CommitMode::Async) {
                out.emit("commit_error", fields(json!({"error": error.to_string()})));
            }
            uncommitted = false;
            last_commit = Instant::now();
        }
    }
    let reason = stop_reason(stop.load(Ordering::Acquire));
    out.emit(
        "leaving",
        fields(json!({"reason": reason, "consumed": consumed})),
    );
    if uncommitted && let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        out.emit("commit_error", fields(json!({"error": error.to_string()})));
    }
    // Closing revokes the assignment and sends LeaveGroup.
    consumer.unsubscribe();
    drop(consumer);
    out.emit("closed", fields(json!({"reason": reason})));
    Ok(())
}

// ---------------------------------------------------------------------------
// The parent
// ---------------------------------------------------------------------------

/// What a member process said, or that its stdout ended.
enum MemberEvent {
    Line(Value),
    Exited,
}

struct Member {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    state: MemberState,
    closed_at_ms: Option<f64>,
    exited: bool,
}

/// What the parent knows of a member's place in the group.
#[derive(Debug, Clone, Default)]
struct MemberState {
    /// Running and not yet told to go.
    active: bool,
    /// Its assignment after the latest change (empty before the first).
    partitions: Vec<i32>,
    /// When it last got an assignment (`t_ms` of the `assigned` event).
    assigned_at_ms: Option<f64>,
    /// Its latest change was a revocation: it is in the middle of a
    /// rebalance.
    revoked: bool,
}

/// If the active members' latest assignments all date from after `since_ms`
/// and together cover partitions `0..partitions` exactly once: the time of
/// the latest of those assignments.
fn settled<'a>(
    members: impl IntoIterator<Item = &'a MemberState>,
    partitions: u32,
    since_ms: f64,
) -> Option<f64> {
    let mut all = Vec::new();
    let mut latest = since_ms;
    let mut any = false;
    for member in members.into_iter().filter(|m| m.active) {
        any = true;
        let at = member.assigned_at_ms?;
        if member.revoked || at <= since_ms {
            return None;
        }
        latest = latest.max(at);
        all.extend_from_slice(&member.partitions);
    }
    all.sort_unstable();
    let expected: Vec<i32> = (0..i32::try_from(partitions).ok()?).collect();
    (any && all == expected).then_some(latest)
}

/// The member processes; killed (SIGKILL) and reaped when dropped, so an
/// error or a timeout leaves none behind.
struct Members {
    list: Vec<Member>,
    tx: Sender<(usize, MemberEvent)>,
    rx: Receiver<(usize, MemberEvent)>,
    /// When the latest assignment change arrived.
    last_change: Instant,
    commit_errors: u64,
    /// A member that exited without being told to.
    unexpected_exit: Option<String>,
    /// Every event line, for `--json`.
    log: Vec<Value>,
}

impl Drop for Members {
    fn drop(&mut self) {
        for member in &mut self.list {
            if let Ok(None) = member.child.try_wait() {
                let _ = member.child.kill();
            }
            let _ = member.child.wait();
        }
    }
}

/// Settings every member gets.
struct MemberSpec<'a> {
    opts: &'a ClientOpts,
    group: &'a str,
    topic: &'a str,
    session_timeout_ms: u64,
    heartbeat_interval_ms: u64,
}

impl Members {
    fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Self {
            list: Vec::new(),
            tx,
            rx,
            last_change: Instant::now(),
            commit_errors: 0,
            unexpected_exit: None,
            log: Vec::new(),
        }
    }

    fn spawn(&mut self, spec: &MemberSpec<'_>) -> Result<usize> {
        let index = self.list.len();
        let name = format!("member-{}", index + 1);
        let exe = std::env::current_exe().context("locating the bench binary")?;
        let mut command = Command::new(exe);
        command.arg("--bootstrap").arg(&spec.opts.bootstrap);
        for (key, value) in &spec.opts.overrides {
            command.arg("--set").arg(format!("{key}={value}"));
        }
        command
            .arg("group-member")
            .args([
                "--group", spec.group, "--topic", spec.topic, "--name", &name,
            ])
            .arg("--session-timeout-ms")
            .arg(spec.session_timeout_ms.to_string())
            .arg("--heartbeat-interval-ms")
            .arg(spec.heartbeat_interval_ms.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("{name}: no stdout pipe"))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow!("{name}: no stderr pipe"))?;
        // Push the member first, so Drop kills it if a thread fails to start.
        self.list.push(Member {
            name: name.clone(),
            child,
            stdin,
            state: MemberState {
                active: true,
                ..MemberState::default()
            },
            closed_at_ms: None,
            exited: false,
        });
        let tx = self.tx.clone();
        let prefix = name.clone();
        thread::Builder::new()
            .name(format!("{name}-out"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    match serde_json::from_str::<Value>(&line) {
                        Ok(value) => {
                            if tx.send((index, MemberEvent::Line(value))).is_err() {
                                return;
                            }
                        }
                        Err(_) => eprintln!("[{prefix}] {line}"),
                    }
                }
                let _ = tx.send((index, MemberEvent::Exited));
            })
            .context("starting a reader thread")?;
        thread::Builder::new()
            .name(format!("{name}-err"))
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("[{name}] {line}");
                }
            })
            .context("starting a reader thread")?;
        Ok(index)
    }

    fn apply(&mut self, index: usize, event: MemberEvent) {
        let Some(member) = self.list.get_mut(index) else {
            return;
        };
        let value = match event {
            MemberEvent::Exited => {
                member.exited = true;
                if member.state.active && self.unexpected_exit.is_none() {
                    self.unexpected_exit = Some(format!("{} exited unexpectedly", member.name));
                }
                member.state.active = false;
                return;
            }
            MemberEvent::Line(value) => value,
        };
        let t_ms = value.get("t_ms").and_then(Value::as_f64);
        let partitions = || -> Vec<i32> {
            value
                .get("partitions")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_i64)
                        .filter_map(|p| i32::try_from(p).ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        match value.get("event").and_then(Value::as_str) {
            Some("assigned") => {
                member.state.partitions = partitions();
                member.state.assigned_at_ms = t_ms;
                member.state.revoked = false;
                self.last_change = Instant::now();
            }
            Some("revoked") => {
                member.state.partitions = partitions();
                member.state.revoked = true;
                self.last_change = Instant::now();
            }
            Some("closed") => member.closed_at_ms = t_ms,
            Some("commit_error") => {
                // Not logged: there can be many.
                self.commit_errors += 1;
                return;
            }
            Some("error") => eprintln!("[{}] {value}", member.name),
            _ => {}
        }
        self.log.push(value);
    }

    /// Applies events until `done` returns a value or `deadline` passes
    /// (`None`), or a member exits unexpectedly (an error).
    fn wait_for<T>(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&Members) -> Option<T>,
    ) -> Result<Option<T>> {
        loop {
            if let Some(failure) = &self.unexpected_exit {
                bail!("{failure}");
            }
            if let Some(value) = done(self) {
                return Ok(Some(value));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = (deadline - now).min(Duration::from_millis(50));
            match self.rx.recv_timeout(wait) {
                Ok((index, event)) => self.apply(index, event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => bail!("member reader threads gone"),
            }
        }
    }

    /// See [`settled`].
    fn settled(&self, partitions: u32, since_ms: f64) -> Option<f64> {
        settled(self.list.iter().map(|m| &m.state), partitions, since_ms)
    }

    fn active_count(&self) -> usize {
        self.list.iter().filter(|m| m.state.active).count()
    }

    /// `member-2=[0,1] member-3=[2,3]` for the active members.
    fn assignments(&self) -> BTreeMap<String, Vec<i32>> {
        self.list
            .iter()
            .filter(|m| m.state.active)
            .map(|m| (m.name.clone(), m.state.partitions.clone()))
            .collect()
    }

    /// Closes every member's stdin (they leave their group and exit), waits
    /// until `grace` has passed for them to exit; Drop kills the rest.
    fn shut_down(&mut self, grace: Duration) {
        for member in &mut self.list {
            member.state.active = false;
            member.stdin = None;
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline
            && self
                .list
                .iter_mut()
                .any(|m| matches!(m.child.try_wait(), Ok(None)))
        {
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Sends SIGTERM to a process through `kill(1)` (the standard library only
/// sends SIGKILL).
fn sigterm(pid: u32) -> Result<()> {
    let status = Command::new("kill")
        .args(["-s", "TERM", &pid.to_string()])
        .status()
        .context("running kill(1)")?;
    if !status.success() {
        bail!("kill -s TERM {pid}: {status}");
    }
    Ok(())
}

/// One member removed and the survivors' settling timed.
#[derive(Debug, Clone, Default)]
pub struct Departure {
    /// `SIGKILL` or `SIGTERM` (or `stdin EOF` when kill(1) was unavailable).
    how: String,
    member: String,
    /// Removal to the survivors' last new assignment.
    settle_ms: Option<f64>,
    /// The survivors' assignments once settled.
    assignments: BTreeMap<String, Vec<i32>>,
    /// Clean leave: SIGTERM to the member's `closed` event.
    close_ms: Option<f64>,
}

impl Departure {
    fn json(&self) -> Value {
        json!({
            "how": self.how,
            "member": self.member,
            "settle_ms": self.settle_ms,
            "assignments": self.assignments,
            "close_ms": self.close_ms,
        })
    }
}

pub struct GroupFailoverReport {
    topic: String,
    group: String,
    data: Option<TopicData>,
    members: u64,
    session_timeout_ms: u64,
    heartbeat_interval_ms: u64,
    /// Members started to a stable group.
    stable_ms: Option<f64>,
    kill: Option<Departure>,
    /// Replacement started to a stable group again (`--leave`).
    replacement_ms: Option<f64>,
    leave: Option<Departure>,
    leave_requested: bool,
    commit_errors: u64,
    events: Vec<Value>,
    failure: Option<String>,
}

/// Runs the mode. Errors that happen once members run end up in the
/// report's failure (with the figures so far) rather than in `Err`.
pub fn run(opts: &ClientOpts, args: &GroupFailoverArgs) -> Result<GroupFailoverReport> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.timeout_s);
    let data = ensure_records(opts, &args.topic, args.partitions, args.messages, 100)?;
    let group = format!("ductstream-bench-failover-{}", unique_suffix());
    let mut report = GroupFailoverReport {
        topic: args.topic.clone(),
        group: group.clone(),
        data: Some(data),
        members: args.members,
        session_timeout_ms: args.session_timeout_ms,
        heartbeat_interval_ms: args.heartbeat_interval_ms,
        stable_ms: None,
        kill: None,
        replacement_ms: None,
        leave: None,
        leave_requested: args.leave,
        commit_errors: 0,
        events: Vec::new(),
        failure: None,
    };
    let spec = MemberSpec {
        opts,
        group: &group,
        topic: &args.topic,
        session_timeout_ms: args.session_timeout_ms,
        heartbeat_interval_ms: args.heartbeat_interval_ms,
    };
    let mut members = Members::new();
    let outcome = phases(
        &mut members,
        &spec,
        args,
        data.partitions,
        deadline,
        &mut report,
    );
    if let Err(error) = outcome {
        report.failure = Some(format!("{error:#}"));
    }
    // Let the members leave cleanly (so the group can be deleted), then kill
    // whoever is left.
    let grace = deadline
        .saturating_duration_since(Instant::now())
        .clamp(Duration::from_secs(1), Duration::from_secs(5));
    members.shut_down(grace);
    while let Ok((index, event)) = members.rx.try_recv() {
        members.apply(index, event);
    }
    report.commit_errors = members.commit_errors;
    report.events = std::mem::take(&mut members.log);
    drop(members);
    if report.failure.is_none() {
        delete_groups(opts, std::slice::from_ref(&group));
    }
    Ok(report)
}

fn phases(
    members: &mut Members,
    spec: &MemberSpec<'_>,
    args: &GroupFailoverArgs,
    partitions: u32,
    deadline: Instant,
    report: &mut GroupFailoverReport,
) -> Result<()> {
    // A rebalance in progress shows within a heartbeat: wait that long (and
    // a little) without assignment changes before calling the group stable.
    let quiet = Duration::from_millis(args.heartbeat_interval_ms + 500);
    let stable = |members: &Members, since_ms: f64, count: usize| {
        (members.active_count() == count && members.last_change.elapsed() >= quiet)
            .then(|| members.settled(partitions, since_ms))
            .flatten()
    };
    let count = usize::try_from(args.members)?;

    // 1. Start the members, wait for a stable group.
    let started_ms = unix_ms();
    for _ in 0..count {
        members.spawn(spec)?;
    }
    let Some(at) = members.wait_for(deadline, |m| stable(m, started_ms, count))? else {
        bail!(
            "timed out waiting for {count} members to share the {partitions} partitions: {:?}",
            members.assignments()
        );
    };
    report.stable_ms = Some(at - started_ms);

    // 2. SIGKILL the first member; the survivors settle after its session
    // times out.
    let victim = 0;
    let mut kill = Departure {
        how: "SIGKILL".into(),
        member: members.list[victim].name.clone(),
        ..Departure::default()
    };
    let kill_ms = unix_ms();
    members.list[victim].state.active = false;
    members.list[victim]
        .child
        .kill()
        .with_context(|| format!("killing {}", kill.member))?;
    let _ = members.list[victim].child.wait();
    let settled = members.wait_for(deadline, |m| m.settled(partitions, kill_ms))?;
    kill.settle_ms = settled.map(|at| at - kill_ms);
    kill.assignments = members.assignments();
    report.kill = Some(kill);
    if settled.is_none() {
        bail!(
            "timed out waiting for the survivors to cover the partitions after the kill: {:?}",
            members.assignments()
        );
    }
    if !args.leave {
        return Ok(());
    }

    // 3. A replacement joins: back to `count` members.
    let joined_ms = unix_ms();
    members.spawn(spec)?;
    let Some(at) = members.wait_for(deadline, |m| stable(m, joined_ms, count))? else {
        bail!(
            "timed out waiting for the replacement member to join: {:?}",
            members.assignments()
        );
    };
    report.replacement_ms = Some(at - joined_ms);

    // 4. SIGTERM the oldest member: it closes its consumer (LeaveGroup).
    let Some(leaver) = members.list.iter().position(|m| m.state.active) else {
        bail!("no member left to leave");
    };
    let mut leave = Departure {
        member: members.list[leaver].name.clone(),
        ..Departure::default()
    };
    let leave_ms = unix_ms();
    members.list[leaver].state.active = false;
    match sigterm(members.list[leaver].child.id()) {
        Ok(()) => leave.how = "SIGTERM".into(),
        Err(error) => {
            eprintln!("ductstream-bench: {error:#}; closing the member's stdin instead");
            members.list[leaver].stdin = None;
            leave.how = "stdin EOF".into();
        }
    }
    let settled = members.wait_for(deadline, |m| m.settled(partitions, leave_ms))?;
    leave.settle_ms = settled.map(|at| at - leave_ms);
    leave.assignments = members.assignments();
    // Its close normally ends before the survivors settle; give it until the
    // deadline.
    members.wait_for(deadline, |m| m.list[leaver].exited.then_some(()))?;
    leave.close_ms = members.list[leaver].closed_at_ms.map(|at| at - leave_ms);
    report.leave = Some(leave);
    if settled.is_none() {
        bail!(
            "timed out waiting for the survivors to cover the partitions after the clean leave: {:?}",
            members.assignments()
        );
    }
    Ok(())
}

fn fmt_opt_ms(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.1} ms"))
}

fn fmt_assignments(assignments: &BTreeMap<String, Vec<i32>>) -> String {
    assignments
        .iter()
        .map(|(name, parts)| format!("{name}={parts:?}").replace(", ", ","))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Report for GroupFailoverReport {
    fn human(&self) -> String {
        let settle = |d: &Option<Departure>| fmt_opt_ms(d.as_ref().and_then(|d| d.settle_ms));
        let leave = if self.leave_requested {
            settle(&self.leave)
        } else {
            "not measured (add --leave)".to_string()
        };
        let mut out = format!(
            "group-failover: session.timeout.ms={}; settled after kill (SIGKILL) {}, after clean leave (SIGTERM) {}",
            self.session_timeout_ms,
            settle(&self.kill),
            leave,
        );
        out.push_str(&format!(
            "\n  topic={} partitions={} members={} heartbeat.interval.ms={} group={}",
            self.topic,
            self.data.map_or(0, |d| d.partitions),
            self.members,
            self.heartbeat_interval_ms,
            self.group
        ));
        out.push_str(&format!(
            "\n  stable {} after start",
            fmt_opt_ms(self.stable_ms)
        ));
        if let Some(kill) = &self.kill {
            out.push_str(&format!(
                "; killed {}, survivors then: {}",
                kill.member,
                fmt_assignments(&kill.assignments)
            ));
        }
        if self.replacement_ms.is_some() {
            out.push_str(&format!(
                "\n  replacement joined in {}",
                fmt_opt_ms(self.replacement_ms)
            ));
        }
        if let Some(leave) = &self.leave {
            out.push_str(&format!(
                "; {} to {} (closed after {}), survivors then: {}",
                leave.how,
                leave.member,
                fmt_opt_ms(leave.close_ms),
                fmt_assignments(&leave.assignments)
            ));
        }
        if self.commit_errors > 0 {
            out.push_str(&format!(
                "\n  {} commits failed (expected while a rebalance is under way)",
                self.commit_errors
            ));
        }
        if let Some(failure) = self.failure() {
            out.push_str(&format!("\n  FAILED: {failure}"));
        }
        out
    }

    fn json(&self) -> Value {
        json!({
            "mode": "group-failover",
            "topic": self.topic,
            "group": self.group,
            "partitions": self.data.map(|d| d.partitions),
            "records": self.data.map(|d| d.records),
            "members": self.members,
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "stable_ms": self.stable_ms,
            "kill": self.kill.as_ref().map(Departure::json),
            "replacement_ms": self.replacement_ms,
            "leave": self.leave.as_ref().map(Departure::json),
            "commit_errors": self.commit_errors,
            "events": self.events,
        })
    }

    fn failure(&self) -> Option<String> {
        self.failure.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(partitions: &[i32], at: f64) -> MemberState {
        MemberState {
            active: true,
            partitions: partitions.to_vec(),
            assigned_at_ms: Some(at),
            revoked: false,
        }
    }

    #[test]
    fn settled_needs_fresh_exact_cover() {
        let mut members = vec![state(&[0, 1, 2], 10.0), state(&[3, 4, 5], 12.0)];
        assert_eq!(settled(&members, 6, 5.0), Some(12.0));
        // An assignment from before the reference time does not count.
        assert_eq!(settled(&members, 6, 11.0), None);
        // Overlap or a gap is not settled.
        members[1].partitions = vec![2, 3, 4, 5];
        assert_eq!(settled(&members, 6, 5.0), None);
        members[1].partitions = vec![3, 4];
        assert_eq!(settled(&members, 6, 5.0), None);
        // Mid-rebalance (revoked) is not settled.
        members[1].partitions = vec![3, 4, 5];
        members[1].revoked = true;
        assert_eq!(settled(&members, 6, 5.0), None);
        // Never assigned is not settled.
        members[1].revoked = false;
        members[1].assigned_at_ms = None;
        assert_eq!(settled(&members, 6, 5.0), None);
        // Inactive members are ignored, but someone must be active.
        members[1].active = false;
        members[0].partitions = vec![0, 1, 2, 3, 4, 5];
        assert_eq!(settled(&members, 6, 5.0), Some(10.0));
        members[0].active = false;
        assert_eq!(settled(&members, 6, 5.0), None);
        // Members with no partitions (more members than partitions) count.
        let members = vec![state(&[0], 10.0), state(&[], 11.0)];
        assert_eq!(settled(&members, 1, 5.0), Some(11.0));
    }
}
