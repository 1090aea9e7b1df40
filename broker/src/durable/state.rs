//! A durable consumer's stored state and the pure operations on it: claim, ack, nak, extend,
//! terminate, dead-letter, replay.
//!
//! The whole state is one storage document, changed only inside
//! `Storage::update_document`, so a claim is atomic in every engine and across brokers on one
//! Postgres. Every function here takes the time as an argument: no clocks, no I/O.
//!
//! Per partition, every offset in `[ack_floor, next)` is either done (acked, terminated or
//! dead-lettered) or claimed; offsets from `next` on were never delivered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ranges::OffsetRanges;
use super::settings::Settings;
use crate::{BrokerError, Result};

/// How long a message being moved to the dead-letter topic stays claimed by the broker moving
/// it: if that broker dies between the two steps, another one moves it after this.
pub const DEAD_LETTER_CLAIM_MS: i64 = 30_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerState {
    pub stream: String,
    pub group: String,
    /// The topic the state belongs to: a deleted and re-created topic is another stream.
    pub topic_id: Uuid,
    pub settings: Settings,
    pub created_ms: i64,
    pub partitions: BTreeMap<i32, Cursor>,
    pub stats: Counters,
    /// Where the next pull starts looking, so partitions take turns.
    pub next_partition: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub ack_floor: i64,
    pub next: i64,
    pub done: OffsetRanges,
    pub claims: BTreeMap<i64, Claim>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// 1 on the first delivery.
    pub deliveries: u32,
    /// Milliseconds since the epoch when the claim ends.
    pub visible_at: i64,
    /// The visibility timeout of the current delivery, for InProgress.
    pub timeout_ms: u64,
    /// Set while the message is being moved to the dead-letter topic, with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub delivered: u64,
    pub acked: u64,
    pub redelivered: u64,
    pub dead_lettered: u64,
    pub terminated: u64,
}

/// A message's place: what its id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId {
    pub partition: i32,
    pub offset: i64,
}

impl MessageId {
    /// Parses "<partition>-<offset>".
    pub fn parse(text: &str) -> Result<MessageId> {
        let bad = || BrokerError::InvalidArgument(format!("message id {text:?} is not <partition>-<offset>"));
        let (p, o) = text.trim().split_once('-').ok_or_else(bad)?;
        let id = MessageId { partition: p.parse().map_err(|_| bad())?, offset: o.parse().map_err(|_| bad())? };
        if id.partition < 0 || id.offset < 0 {
            return Err(bad());
        }
        Ok(id)
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.partition, self.offset)
    }
}

/// A partition's bounds when a pull looks at it.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub log_start: i64,
    pub high_watermark: i64,
}

/// One message a pull hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub id: MessageId,
    pub deliveries: u32,
    pub visible_at: i64,
}

/// What a pull claimed.
#[derive(Debug, Default)]
pub struct Claimed {
    pub deliveries: Vec<Delivery>,
    /// Messages to move to the dead-letter topic, with their delivery count and reason.
    pub dead: Vec<(MessageId, u32, String)>,
    /// The earliest time a claim still held ends, when the pull got nothing: a waiting pull
    /// looks again then.
    pub next_expiry: Option<i64>,
}

/// What a pull asks for.
#[derive(Debug, Clone, Copy)]
pub struct PullAsk {
    pub max: usize,
    pub visibility_ms: u64,
    pub now: i64,
}

/// How an ack-like request went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub applied: u32,
    pub already_done: u32,
}

impl ConsumerState {
    /// A new consumer starting at `starts` (per partition).
    pub fn new(
        stream: &str,
        group: &str,
        topic_id: Uuid,
        settings: Settings,
        created_ms: i64,
        starts: BTreeMap<i32, i64>,
    ) -> ConsumerState {
        let partitions = starts.into_iter().map(|(p, at)| (p, Cursor::starting_at(at))).collect();
        ConsumerState {
            stream: stream.to_owned(),
            group: group.to_owned(),
            topic_id,
            settings,
            created_ms,
            partitions,
            stats: Counters::default(),
            next_partition: 0,
        }
    }

    /// Marks offsets of a partition that must never be delivered (deliver last per key).
    pub fn skip(&mut self, partition: i32, offsets: impl IntoIterator<Item = i64>) {
        let Some(cursor) = self.partitions.get_mut(&partition) else { return };
        for offset in offsets {
            if offset >= cursor.next {
                cursor.done.insert(offset);
            }
        }
        if cursor.ack_floor == cursor.next {
            cursor.ack_floor = cursor.done.take_run_from(cursor.ack_floor);
            cursor.next = cursor.next.max(cursor.ack_floor);
        }
    }

    /// Delivered and not yet done.
    pub fn pending(&self) -> u64 {
        self.partitions.values().map(|c| c.claims.values().filter(|c| c.dead.is_none()).count() as u64).sum()
    }

    /// Claims up to `ask.max` messages: first those whose claim ended (redeliveries), then new
    /// ones while fewer than max_ack_pending are pending. Messages past max_deliver are
    /// claimed for the dead-letter topic instead. Partitions unknown to the state (the topic
    /// grew) start at their log start.
    pub fn claim(&mut self, bounds: &BTreeMap<i32, Bounds>, ask: PullAsk) -> Claimed {
        let mut out = Claimed::default();
        for (&p, b) in bounds {
            let cursor = self.partitions.entry(p).or_insert_with(|| Cursor::starting_at(b.log_start));
            cursor.skip_deleted(b.log_start);
        }
        let order: Vec<i32> = {
            let (after, before): (Vec<i32>, Vec<i32>) =
                bounds.keys().copied().partition(|&p| p >= self.next_partition);
            after.into_iter().chain(before).collect()
        };
        let settings = self.settings.clone();

        // Redeliveries and dead letters first: they are older.
        for &p in &order {
            let Some(cursor) = self.partitions.get_mut(&p) else { continue };
            for (&offset, claim) in cursor.claims.iter_mut() {
                if claim.visible_at > ask.now {
                    continue;
                }
                let id = MessageId { partition: p, offset };
                let exhausted = settings.max_deliver > 0 && claim.deliveries >= settings.max_deliver;
                if claim.dead.is_some() || exhausted {
                    let reason = claim.dead.get_or_insert_with(|| format!("max deliveries ({}) reached", settings.max_deliver));
                    out.dead.push((id, claim.deliveries, reason.clone()));
                    claim.visible_at = ask.now + DEAD_LETTER_CLAIM_MS;
                    continue;
                }
                if out.deliveries.len() >= ask.max {
                    continue;
                }
                claim.deliveries += 1;
                claim.timeout_ms = settings.visibility_for(claim.deliveries, ask.visibility_ms);
                claim.visible_at = ask.now + claim.timeout_ms as i64;
                self.stats.redelivered += 1;
                self.stats.delivered += 1;
                out.deliveries.push(Delivery { id, deliveries: claim.deliveries, visible_at: claim.visible_at });
            }
        }

        // New messages, while the pending limit allows.
        let mut pending = self.pending();
        for &p in &order {
            let (Some(cursor), Some(b)) = (self.partitions.get_mut(&p), bounds.get(&p)) else { continue };
            while out.deliveries.len() < ask.max && pending < u64::from(settings.max_ack_pending) && cursor.next < b.high_watermark {
                let offset = cursor.next;
                cursor.next += 1;
                if cursor.done.contains(offset) {
                    continue; // skipped at creation (deliver last per key)
                }
                let visible_at = ask.now + ask.visibility_ms as i64;
                cursor.claims.insert(offset, Claim { deliveries: 1, visible_at, timeout_ms: ask.visibility_ms, dead: None });
                pending += 1;
                self.stats.delivered += 1;
                out.deliveries.push(Delivery { id: MessageId { partition: p, offset }, deliveries: 1, visible_at });
            }
            if out.deliveries.len() >= ask.max {
                self.next_partition = p + 1;
                break;
            }
        }
        if out.deliveries.is_empty() {
            out.next_expiry = self.partitions.values().flat_map(|c| c.claims.values().map(|c| c.visible_at)).min();
        }
        out
    }

    /// Marks messages done. Every id must have been delivered to this consumer: otherwise
    /// nothing changes and the error names the first unknown id.
    pub fn ack(&mut self, ids: &[MessageId]) -> Result<Applied> {
        let applied = self.for_claims(ids, |cursor, id, _| cursor.finish(id.offset))?;
        self.stats.acked += u64::from(applied.applied);
        Ok(applied)
    }

    /// Makes claimed messages visible again after `delay_ms`.
    pub fn nak(&mut self, ids: &[MessageId], delay_ms: u64, now: i64) -> Result<Applied> {
        self.for_claims(ids, |_, _, claim| claim.visible_at = now + delay_ms as i64)
    }

    /// Starts claimed messages' visibility timeouts again.
    pub fn in_progress(&mut self, ids: &[MessageId], now: i64) -> Result<Applied> {
        self.for_claims(ids, |_, _, claim| claim.visible_at = now + claim.timeout_ms as i64)
    }

    /// Claims messages for the dead-letter topic with `reason`; the caller moves them and then
    /// calls [`ConsumerState::dead_lettered`]. Returns each id with its delivery count.
    pub fn terminate(&mut self, ids: &[MessageId], reason: &str, now: i64) -> Result<Vec<(MessageId, u32)>> {
        let mut doomed = Vec::new();
        self.for_claims(ids, |_, id, claim| {
            claim.dead = Some(format!("terminated: {reason}"));
            claim.visible_at = now + DEAD_LETTER_CLAIM_MS;
            doomed.push((id, claim.deliveries));
        })?;
        self.stats.terminated += doomed.len() as u64;
        Ok(doomed)
    }

    /// Marks messages that reached the dead-letter topic as done.
    pub fn dead_lettered(&mut self, ids: &[MessageId]) {
        for id in ids {
            if let Some(cursor) = self.partitions.get_mut(&id.partition)
                && cursor.claims.get(&id.offset).is_some_and(|c| c.dead.is_some())
            {
                cursor.finish(id.offset);
                self.stats.dead_lettered += 1;
            }
        }
    }

    /// Restarts every partition at `starts`: nothing below is delivered again, everything from
    /// there is delivered as new; claims are dropped.
    pub fn replay(&mut self, starts: &BTreeMap<i32, i64>) {
        for (&p, &at) in starts {
            self.partitions.insert(p, Cursor::starting_at(at));
        }
        self.next_partition = 0;
    }

    /// Applies `f` to the claim of every id after checking them all: an id that is done, or on
    /// its way to the dead-letter topic, counts as already done; an id never delivered fails
    /// the whole request.
    fn for_claims(&mut self, ids: &[MessageId], mut f: impl FnMut(&mut Cursor, MessageId, &mut Claim)) -> Result<Applied> {
        for id in ids {
            let known = self.partitions.get(&id.partition).is_some_and(|c| c.is_done(id.offset) || c.claims.contains_key(&id.offset));
            if !known {
                return Err(BrokerError::InvalidArgument(format!(
                    "message {id} was never delivered to consumer {:?} of stream {:?}",
                    self.group, self.stream
                )));
            }
        }
        let mut result = Applied::default();
        for &id in ids {
            let Some(cursor) = self.partitions.get_mut(&id.partition) else { continue };
            let mut claim = match cursor.claims.get(&id.offset) {
                Some(claim) if claim.dead.is_none() => claim.clone(),
                _ => {
                    result.already_done += 1;
                    continue;
                }
            };
            f(cursor, id, &mut claim);
            // `f` may have finished the message, which removes its claim.
            if let Some(slot) = cursor.claims.get_mut(&id.offset) {
                *slot = claim;
            }
            result.applied += 1;
        }
        Ok(result)
    }
}

impl Cursor {
    fn starting_at(offset: i64) -> Cursor {
        Cursor { ack_floor: offset, next: offset, ..Cursor::default() }
    }

    fn is_done(&self, offset: i64) -> bool {
        (offset < self.ack_floor || self.done.contains(offset)) && offset < self.next
    }

    /// Marks `offset` done and raises the floor over every done offset above it.
    fn finish(&mut self, offset: i64) {
        self.claims.remove(&offset);
        if offset == self.ack_floor {
            self.ack_floor = self.done.take_run_from(offset + 1);
        } else {
            self.done.insert(offset);
        }
    }

    /// Records below the log start were deleted: they can be neither delivered nor acked.
    fn skip_deleted(&mut self, log_start: i64) {
        if self.ack_floor >= log_start {
            return;
        }
        self.claims.retain(|&offset, _| offset >= log_start);
        self.next = self.next.max(log_start);
        // Offsets from the log start keep their state: done ones raise the floor.
        self.ack_floor = self.done.take_run_from(log_start);
    }
}

#[cfg(test)]
mod tests {
    use super::super::settings::DeliverPolicy;
    use super::*;

    fn settings(max_deliver: u32, max_ack_pending: u32, backoff_ms: Vec<u64>) -> Settings {
        Settings {
            deliver_policy: DeliverPolicy::All,
            ack_wait_ms: 1000,
            max_deliver,
            backoff_ms,
            max_ack_pending,
            dead_letter_topic: "s.dlq".into(),
        }
    }

    fn consumer(s: Settings) -> ConsumerState {
        ConsumerState::new("s", "g", Uuid::nil(), s, 0, [(0, 0), (1, 0)].into())
    }

    fn bounds(hw0: i64, hw1: i64) -> BTreeMap<i32, Bounds> {
        [(0, Bounds { log_start: 0, high_watermark: hw0 }), (1, Bounds { log_start: 0, high_watermark: hw1 })].into()
    }

    fn ids(c: &Claimed) -> Vec<String> {
        c.deliveries.iter().map(|d| d.id.to_string()).collect()
    }

    fn id(p: i32, o: i64) -> MessageId {
        MessageId { partition: p, offset: o }
    }

    #[test]
    fn pulls_hand_out_disjoint_messages_across_partitions() {
        let mut c = consumer(settings(0, 100, vec![]));
        let first = c.claim(&bounds(3, 2), PullAsk { max: 2, visibility_ms: 1000, now: 0 });
        let second = c.claim(&bounds(3, 2), PullAsk { max: 10, visibility_ms: 1000, now: 0 });
        assert_eq!(ids(&first), ["0-0", "0-1"]);
        assert_eq!(ids(&second), ["1-0", "1-1", "0-2"]);
        assert!(c.claim(&bounds(3, 2), PullAsk { max: 10, visibility_ms: 1000, now: 999 }).deliveries.is_empty());
        assert_eq!(c.pending(), 5);
    }

    #[test]
    fn acks_raise_the_floor_and_unknown_ids_change_nothing() {
        let mut c = consumer(settings(0, 100, vec![]));
        c.claim(&bounds(4, 0), PullAsk { max: 4, visibility_ms: 1000, now: 0 });
        assert_eq!(c.ack(&[id(0, 1), id(0, 2)]).expect("ack"), Applied { applied: 2, already_done: 0 });
        assert_eq!(c.partitions[&0].ack_floor, 0);
        let before = c.clone();
        let err = c.ack(&[id(0, 0), id(0, 9)]).expect_err("offset 9 was never delivered");
        assert!(err.to_string().contains("0-9"), "{err}");
        assert_eq!(c, before);
        assert_eq!(c.ack(&[id(0, 0), id(0, 1)]).expect("ack"), Applied { applied: 1, already_done: 1 });
        assert_eq!(c.partitions[&0].ack_floor, 3);
        assert_eq!(c.stats.acked, 3);
        assert!(c.ack(&[id(1, 0)]).is_err(), "partition 1 delivered nothing");
    }

    #[test]
    fn expired_claims_come_back_with_backoff_then_go_to_the_dead_letter_topic() {
        let mut c = consumer(settings(3, 100, vec![5000, 7000]));
        let b = bounds(1, 0);
        let first = c.claim(&b, PullAsk { max: 1, visibility_ms: 1000, now: 0 });
        assert_eq!(first.deliveries[0].visible_at, 1000);
        let second = c.claim(&b, PullAsk { max: 1, visibility_ms: 1000, now: 1000 });
        assert_eq!((second.deliveries[0].deliveries, second.deliveries[0].visible_at), (2, 6000));
        let third = c.claim(&b, PullAsk { max: 1, visibility_ms: 1000, now: 6000 });
        assert_eq!((third.deliveries[0].deliveries, third.deliveries[0].visible_at), (3, 13000));
        let fourth = c.claim(&b, PullAsk { max: 1, visibility_ms: 1000, now: 13000 });
        assert!(fourth.deliveries.is_empty());
        assert_eq!(fourth.dead, vec![(id(0, 0), 3, "max deliveries (3) reached".to_string())]);
        // Workers can no longer ack it; the broker finishes the move.
        assert_eq!(c.ack(&[id(0, 0)]).expect("ack"), Applied { applied: 0, already_done: 1 });
        c.dead_lettered(&[id(0, 0)]);
        assert_eq!((c.partitions[&0].ack_floor, c.stats.dead_lettered, c.stats.redelivered), (1, 1, 2));
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn max_ack_pending_stops_new_messages_but_not_redeliveries() {
        let mut c = consumer(settings(0, 2, vec![]));
        let b = bounds(10, 0);
        assert_eq!(ids(&c.claim(&b, PullAsk { max: 10, visibility_ms: 100, now: 0 })), ["0-0", "0-1"]);
        assert!(c.claim(&b, PullAsk { max: 10, visibility_ms: 100, now: 50 }).deliveries.is_empty());
        assert_eq!(ids(&c.claim(&b, PullAsk { max: 10, visibility_ms: 100, now: 100 })), ["0-0", "0-1"]);
        c.ack(&[id(0, 0)]).expect("ack");
        assert_eq!(ids(&c.claim(&b, PullAsk { max: 10, visibility_ms: 100, now: 150 })), ["0-2"]);
    }

    #[test]
    fn nak_in_progress_and_term() {
        let mut c = consumer(settings(0, 100, vec![]));
        let b = bounds(3, 0);
        c.claim(&b, PullAsk { max: 3, visibility_ms: 1000, now: 0 });
        c.nak(&[id(0, 0)], 0, 10).expect("nak");
        c.nak(&[id(0, 1)], 500, 10).expect("nak");
        assert_eq!(ids(&c.claim(&b, PullAsk { max: 3, visibility_ms: 1000, now: 10 })), ["0-0"]);
        c.in_progress(&[id(0, 2)], 900).expect("in progress");
        assert_eq!(ids(&c.claim(&b, PullAsk { max: 3, visibility_ms: 1000, now: 1000 })), ["0-1"]);
        let termed = c.terminate(&[id(0, 2)], "bad payload", 1000).expect("term");
        assert_eq!(termed, vec![(id(0, 2), 1)]);
        let later = c.claim(&b, PullAsk { max: 3, visibility_ms: 1000, now: 1000 + DEAD_LETTER_CLAIM_MS });
        assert_eq!(later.dead, vec![(id(0, 2), 1, "terminated: bad payload".to_string())], "an unfinished move is retried");
        c.dead_lettered(&[id(0, 2)]);
        assert_eq!((c.stats.terminated, c.stats.dead_lettered), (1, 1));
    }

    #[test]
    fn replay_restarts_and_deleted_records_are_skipped() {
        let mut c = consumer(settings(0, 100, vec![]));
        c.claim(&bounds(5, 0), PullAsk { max: 5, visibility_ms: 1000, now: 0 });
        c.ack(&[id(0, 0), id(0, 1)]).expect("ack");
        c.replay(&[(0, 1), (1, 0)].into());
        assert_eq!(ids(&c.claim(&bounds(5, 0), PullAsk { max: 2, visibility_ms: 1000, now: 0 })), ["0-1", "0-2"]);
        let deleted = [(0, Bounds { log_start: 4, high_watermark: 5 })].into();
        assert_eq!(ids(&c.claim(&deleted, PullAsk { max: 5, visibility_ms: 1000, now: 0 })), ["0-4"]);
        assert_eq!(c.partitions[&0].ack_floor, 4);
    }

    #[test]
    fn skipped_offsets_are_never_delivered() {
        let mut c = consumer(settings(0, 100, vec![]));
        c.skip(0, [0, 1, 3]);
        assert_eq!(c.partitions[&0].ack_floor, 2);
        assert_eq!(ids(&c.claim(&bounds(5, 0), PullAsk { max: 5, visibility_ms: 1000, now: 0 })), ["0-2", "0-4"]);
        c.ack(&[id(0, 2)]).expect("ack");
        assert_eq!(c.partitions[&0].ack_floor, 4);
        assert!(c.ack(&[id(0, 3)]).expect("a skipped offset is done").already_done == 1);
    }

    #[test]
    fn message_ids_parse_strictly() {
        assert_eq!(MessageId::parse("3-17").expect("id"), id(3, 17));
        for bad in ["", "3", "a-1", "1-b", "-1-2", "1--2"] {
            assert!(MessageId::parse(bad).is_err(), "{bad}");
        }
    }
}
