use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use regex::Regex;
use tokio_util::sync::CancellationToken;

use super::partition::{PartitionCursor, Taken};
use super::{Cut, MemoryBudget, OnError, RuntimeOptions, SinkPhase, SinkSource, SinkStatus, TopicPartition};
use crate::retry::Backoff;
use crate::{Refusal, Result, Sink, SinkBatch, SinkError, SinkRecord};

/// How often topics and partitions are looked up again (new partitions, topics matching a
/// pattern).
const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// The longest wait for data, so stops and refreshes are seen.
const LONGEST_WAIT: Duration = Duration::from_secs(1);
/// The most one read asks for.
const READ_MAX_BYTES: usize = 4 << 20;

/// Headers of a dead letter, naming where the record came from and why it is there.
pub const DLQ_SINK_HEADER: &str = "ductstream.sink.id";
pub const DLQ_TOPIC_HEADER: &str = "ductstream.sink.topic";
pub const DLQ_PARTITION_HEADER: &str = "ductstream.sink.partition";
pub const DLQ_OFFSET_HEADER: &str = "ductstream.sink.offset";
pub const DLQ_ERROR_HEADER: &str = "ductstream.sink.error";

/// Runs `$attempt` (an expression giving a future, evaluated anew for each try) until it
/// succeeds, backing off after retriable failures: `Ok(Some(value))`, `Ok(None)` when stopped
/// first, or the failure that retrying cannot cure. (A macro: async closures that borrow the
/// runner do not yet make futures the scheduler may move between threads.)
macro_rules! retrying {
    ($stop:expr, $status:expr, $attempt:expr) => {{
        let mut tries = 0u32;
        loop {
            if $stop.is_cancelled() {
                break Ok(None);
            }
            match $attempt.await {
                Ok(v) => {
                    if tries > 0 {
                        $status.set_error("");
                    }
                    break Ok(Some(v));
                }
                Err(e) if e.is_retriable() => {
                    tries += 1;
                    if !back_off($stop, &$status, &e, tries).await {
                        break Ok(None);
                    }
                }
                Err(e) => break Err(e),
            }
        }
    }};
}

/// Shows a retriable failure and waits before try `tries + 1`; false when stopped meanwhile.
async fn back_off(stop: &CancellationToken, status: &SinkStatus, e: &SinkError, tries: u32) -> bool {
    status.retried();
    status.set_error(&format!("{e} (retrying)"));
    status.set_phase(SinkPhase::Retrying);
    tracing::warn!(error = %e, attempt = tries, "sink step failed; retrying");
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(Backoff::default().delay(tries)) => true,
    }
}

/// Which topics a sink reads: these names, and every topic whose whole name matches the
/// pattern (CDC flows create a topic per table as tables appear).
#[derive(Debug, Clone, Default)]
pub struct TopicSelector {
    pub names: Vec<String>,
    pub pattern: Option<Regex>,
}

impl TopicSelector {
    /// Whether the sink reads `topic`. A pattern never selects a dead-letter topic (`*.dlq`):
    /// a sink must not read what it dead-letters.
    pub fn selects(&self, topic: &str) -> bool {
        self.names.iter().any(|n| n == topic) || self.pattern.as_ref().is_some_and(|p| p.is_match(topic) && !topic.ends_with(".dlq"))
    }
}

/// Drives one sink: reads its topics from the committed offsets on, cuts batches, records each
/// cut, writes it, and commits past it once written.
pub struct SinkRunner {
    id: String,
    group: String,
    topics: TopicSelector,
    sink: Box<dyn Sink>,
    options: RuntimeOptions,
    source: Arc<dyn SinkSource>,
    budget: MemoryBudget,
    status: Arc<SinkStatus>,
    cursors: BTreeMap<TopicPartition, PartitionCursor>,
    committed: BTreeMap<TopicPartition, i64>,
    cuts: Vec<Cut>,
}

impl SinkRunner {
    /// The runner of sink `id`, whose consumer group is `group`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: &str,
        group: &str,
        topics: TopicSelector,
        sink: Box<dyn Sink>,
        options: RuntimeOptions,
        source: Arc<dyn SinkSource>,
        budget: MemoryBudget,
    ) -> SinkRunner {
        SinkRunner {
            id: id.to_owned(),
            group: group.to_owned(),
            topics,
            sink,
            options,
            source,
            budget,
            status: Arc::new(SinkStatus::default()),
            cursors: BTreeMap::new(),
            committed: BTreeMap::new(),
            cuts: Vec::new(),
        }
    }

    pub fn status(&self) -> Arc<SinkStatus> {
        self.status.clone()
    }

    /// Runs until `stop` is cancelled (Ok) or the sink fails for good (Err, also shown in the
    /// status). A stop in the middle of a batch leaves its cut recorded and uncommitted: the
    /// next run writes it again.
    pub async fn run(mut self, stop: CancellationToken) -> Result<()> {
        let outcome = self.run_until_stopped(&stop).await;
        if let Err(e) = self.sink.close().await {
            tracing::warn!(sink = %self.id, error = %e, "closing the destination failed");
        }
        match &outcome {
            Ok(()) => self.status.set_phase(SinkPhase::Stopped),
            Err(e) => {
                self.status.set_error(&e.to_string());
                self.status.set_phase(SinkPhase::Failed(e.to_string()));
            }
        }
        outcome
    }

    async fn run_until_stopped(&mut self, stop: &CancellationToken) -> Result<()> {
        self.status.set_phase(SinkPhase::Starting);
        let (sink, status) = (&mut self.sink, &self.status);
        if retrying!(stop, status, sink.open())?.is_none() {
            return Ok(());
        }
        let (source, group, id) = (&self.source, &self.group, &self.id);
        let Some(committed) = retrying!(stop, status, source.committed(group))? else { return Ok(()) };
        self.committed = committed.into_iter().collect();
        let Some(cuts) = retrying!(stop, status, source.load_cuts(id))? else { return Ok(()) };
        if let Err(e) = self.refresh().await {
            tracing::warn!(sink = %self.id, error = %e, "cannot look up the sink's topics yet");
        }
        if !self.take_destination_offsets(stop).await? {
            return Ok(());
        }
        for tp in self.committed.keys() {
            self.status.set_committed(tp, self.committed[tp]);
        }
        if !self.replay(cuts, stop).await? {
            return Ok(());
        }
        self.status.set_phase(SinkPhase::Running);
        let mut refreshed: Option<Instant> = None;
        let mut read_failing = false;
        while !stop.is_cancelled() {
            if refreshed.is_none_or(|t| t.elapsed() >= REFRESH_EVERY) {
                if let Err(e) = self.refresh().await {
                    tracing::warn!(sink = %self.id, error = %e, "cannot look up the sink's topics; retrying");
                    self.status.set_error(&e.to_string());
                }
                refreshed = Some(Instant::now());
            }
            let mut progressed = match self.fill().await {
                Ok(read) => {
                    if std::mem::take(&mut read_failing) {
                        self.status.set_error("");
                    }
                    read
                }
                Err(e) => {
                    tracing::warn!(sink = %self.id, error = %e, "cannot read the sink's topics; retrying");
                    self.status.set_error(&format!("{e} (retrying)"));
                    read_failing = true;
                    false
                }
            };
            let now = Instant::now();
            let mut ready: Vec<TopicPartition> =
                self.cursors.values().filter(|c| c.ready(&self.options.limits, now)).map(|c| c.tp.clone()).collect();
            if ready.is_empty() && self.budget.available() == 0 {
                // The memory budget is spent: write the largest buffer now rather than wait
                // for a limit that the budget keeps the buffers from reaching.
                ready.extend(self.cursors.values().filter(|c| c.buffered() > 0).max_by_key(|c| c.buffered()).map(|c| c.tp.clone()));
            }
            for tp in ready {
                let Some(taken) = self.cursors.get_mut(&tp).and_then(|c| c.take(&self.options.limits)) else { continue };
                let bytes = taken.bytes;
                let delivered = self.deliver(&tp, taken, stop).await;
                if let Some(c) = self.cursors.get(&tp) {
                    c.release(bytes);
                }
                if !delivered? {
                    return Ok(());
                }
                progressed = true;
            }
            if !progressed {
                self.wait(stop).await;
            }
        }
        Ok(())
    }

    /// Where the destination keeps offsets of its own (in its transactions) and they are
    /// further than the broker's, the broker's are moved up to them: the broker died after the
    /// destination committed a batch and before it did.
    async fn take_destination_offsets(&mut self, stop: &CancellationToken) -> Result<bool> {
        let partitions: Vec<TopicPartition> = self.cursors.keys().cloned().collect();
        let (sink, status) = (&mut self.sink, self.status.clone());
        let Some(offsets) = retrying!(stop, status, sink.committed(&partitions))? else { return Ok(false) };
        let ahead: Vec<(TopicPartition, i64)> =
            offsets.into_iter().filter(|(tp, offset)| self.committed.get(tp).is_none_or(|c| c < offset)).collect();
        if ahead.is_empty() {
            return Ok(true);
        }
        let (source, group) = (self.source.clone(), &self.group);
        if retrying!(stop, status, source.commit(group, &ahead))?.is_none() {
            return Ok(false);
        }
        for (tp, offset) in ahead {
            tracing::info!(sink = %self.id, topic = %tp.0, partition = tp.1, offset, "the destination had committed further");
            if let Some(cursor) = self.cursors.get_mut(&tp) {
                cursor.next = cursor.next.max(offset);
            }
            self.committed.insert(tp, offset);
        }
        Ok(true)
    }

    /// Writes again, as they were cut, the batches recorded but not committed before a crash.
    async fn replay(&mut self, cuts: Vec<Cut>, stop: &CancellationToken) -> Result<bool> {
        for cut in cuts {
            let tp = (cut.topic.clone(), cut.partition);
            if self.committed.get(&tp).is_some_and(|c| *c >= cut.next) {
                continue; // committed before the crash
            }
            let mut records = Vec::new();
            let mut offset = cut.first;
            while offset < cut.next {
                let (source, status) = (&self.source, &self.status);
                let Some(read) = retrying!(stop, status, source.read(&tp.0, tp.1, offset, READ_MAX_BYTES))? else {
                    return Ok(false);
                };
                if read.next_offset <= offset {
                    break; // the rest was deleted
                }
                records.extend(read.records.into_iter().filter(|r| r.offset < cut.next));
                offset = read.next_offset;
            }
            tracing::info!(sink = %self.id, topic = %tp.0, partition = tp.1, first = cut.first, next = cut.next, "writing a cut batch again");
            let taken = Taken { bytes: 0, first: cut.first, next: cut.next, records };
            if !self.deliver(&tp, taken, stop).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Adds a cursor for every partition of the selected topics that has none yet.
    async fn refresh(&mut self) -> Result<()> {
        let mut names = self.topics.names.clone();
        if self.topics.pattern.is_some() {
            let all = self.source.topics().await?;
            names.extend(all.into_iter().filter(|t| self.topics.selects(t)));
        }
        names.sort();
        names.dedup();
        for topic in names {
            let Some(partitions) = self.source.partitions(&topic).await? else { continue };
            for p in 0..partitions {
                let tp = (topic.clone(), p);
                if !self.cursors.contains_key(&tp) {
                    let next = self.committed.get(&tp).copied().unwrap_or(0);
                    self.cursors.insert(tp.clone(), PartitionCursor::new(tp, next, self.budget.clone()));
                }
            }
        }
        Ok(())
    }

    /// Reads into every cursor that has room, within the memory budget. True if anything came.
    async fn fill(&mut self) -> Result<bool> {
        let mut progressed = false;
        let limits = self.options.limits;
        for cursor in self.cursors.values_mut() {
            if !cursor.wants_more(&limits) {
                continue;
            }
            let budget = self.budget.available();
            if budget == 0 {
                break; // backpressure: written batches free the budget
            }
            let max_bytes = cursor.room(&limits).min(budget).clamp(1, READ_MAX_BYTES);
            let read = self.source.read(&cursor.tp.0, cursor.tp.1, cursor.next, max_bytes).await?;
            self.status.set_high_watermark(&cursor.tp, read.high_watermark);
            if read.next_offset > cursor.next || !read.records.is_empty() {
                progressed |= !read.records.is_empty();
                cursor.push(read.records, read.next_offset);
            }
        }
        Ok(progressed)
    }

    /// Waits for new records on any partition with room, or until the next batch is due.
    async fn wait(&self, stop: &CancellationToken) {
        let now = Instant::now();
        let limits = &self.options.limits;
        let due = self.cursors.values().filter_map(|c| c.until_due(limits, now)).min().unwrap_or(LONGEST_WAIT);
        let timeout = due.min(LONGEST_WAIT);
        let positions: Vec<(TopicPartition, i64)> =
            self.cursors.values().filter(|c| c.wants_more(limits)).map(|c| (c.tp.clone(), c.next)).collect();
        if positions.is_empty() || self.budget.available() == 0 {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(timeout) => {}
            }
            return;
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = self.source.wait(&positions, timeout) => {}
        }
    }

    /// Records the cut, writes the batch, handles refusals, commits. False when stopped first.
    async fn deliver(&mut self, tp: &TopicPartition, taken: Taken, stop: &CancellationToken) -> Result<bool> {
        let cut = Cut { topic: tp.0.clone(), partition: tp.1, first: taken.first, next: taken.next };
        // Cuts already committed are forgotten the next time the list is saved.
        let committed = &self.committed;
        self.cuts.retain(|c| committed.get(&(c.topic.clone(), c.partition)).is_none_or(|done| *done < c.next) && c != &cut);
        self.cuts.push(cut.clone());
        let (source, status) = (self.source.clone(), self.status.clone());
        let (id, cuts) = (&self.id, &self.cuts);
        if retrying!(stop, status, source.save_cuts(id, cuts))?.is_none() {
            return Ok(false);
        }
        let batch = SinkBatch { topic: tp.0.clone(), partition: tp.1, first_offset: cut.first, last_offset: cut.next - 1, records: taken.records };
        let started = Instant::now();
        let sink = &mut self.sink;
        let Some(refusals) = retrying!(stop, status, sink.write(&batch))? else { return Ok(false) };
        let took = started.elapsed();
        if !refusals.is_empty() && !self.refused(&batch, refusals, stop).await? {
            return Ok(false);
        }
        let group = &self.group;
        let offsets = [(tp.clone(), cut.next)];
        if retrying!(stop, status, source.commit(group, &offsets))?.is_none() {
            return Ok(false);
        }
        self.committed.insert(tp.clone(), cut.next);
        if let Some(cursor) = self.cursors.get_mut(tp) {
            // A batch written again after a crash: reading goes on after it.
            cursor.next = cursor.next.max(cut.next);
        }
        let bytes: usize = batch.records.iter().map(SinkRecord::size).sum();
        self.status.written(batch.records.len(), bytes, took);
        self.status.set_committed(tp, cut.next);
        self.status.set_phase(SinkPhase::Running);
        Ok(true)
    }

    /// Dead-letters the refused records, or fails the sink when it pauses on errors.
    async fn refused(&mut self, batch: &SinkBatch, refusals: Vec<Refusal>, stop: &CancellationToken) -> Result<bool> {
        if self.options.on_error == OnError::Pause {
            let first = &refusals[0];
            return Err(SinkError::Fatal(format!(
                "the destination refused {}/{} offset {}: {} (on_error=pause)",
                batch.topic, batch.partition, first.offset, first.reason
            )));
        }
        let text = |s: String| Some(Bytes::from(s));
        let letters: Vec<SinkRecord> = refusals
            .iter()
            .filter_map(|refusal| {
                let original = batch.records.iter().find(|r| r.offset == refusal.offset)?;
                let mut letter = original.clone();
                letter.headers.extend([
                    (DLQ_SINK_HEADER.to_owned(), text(self.id.clone())),
                    (DLQ_TOPIC_HEADER.to_owned(), text(batch.topic.clone())),
                    (DLQ_PARTITION_HEADER.to_owned(), text(batch.partition.to_string())),
                    (DLQ_OFFSET_HEADER.to_owned(), text(refusal.offset.to_string())),
                    (DLQ_ERROR_HEADER.to_owned(), text(refusal.reason.clone())),
                ]);
                Some(letter)
            })
            .collect();
        let count = letters.len();
        let (source, status, topic) = (&self.source, &self.status, &self.options.dead_letter_topic);
        if retrying!(stop, status, source.dead_letter(topic, letters.clone()))?.is_none() {
            return Ok(false);
        }
        tracing::warn!(sink = %self.id, topic = %batch.topic, partition = batch.partition, count, dlq = %topic, reason = %refusals[0].reason, "dead-lettered refused records");
        self.status.dead_lettered(count);
        Ok(true)
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_never_selects_a_dead_letter_topic() -> std::result::Result<(), regex::Error> {
        let selector = TopicSelector { names: vec!["orders".into(), "orders.dlq".into()], pattern: Some(Regex::new(r"^app\..+$")?) };
        assert!(selector.selects("app.public.users"));
        assert!(!selector.selects("app.lake.dlq"), "the flow sink's own dead letters");
        assert!(selector.selects("orders.dlq"), "named explicitly, it is read");
        assert!(!selector.selects("other"));
        Ok(())
    }
}
