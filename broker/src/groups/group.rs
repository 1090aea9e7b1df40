//! One consumer group's membership state machine (the classic protocol), free of I/O: every
//! call takes the current time, and replies to waiting JoinGroup and SyncGroup requests go out
//! through oneshot channels. The coordinator drives timers and persistence around it.
//!
//! States as in Kafka: Empty → PreparingRebalance (members join; the first rebalance of an
//! empty group waits `initial_delay` for more) → CompletingRebalance (the leader computes the
//! assignment) → Stable; any join, leave or expiry sends it back to PreparingRebalance.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use ductstream_storage::{GroupState, MemberState};
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl State {
    /// The name DescribeGroups and ListGroups use.
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
            State::Dead => "Dead",
        }
    }
}

/// What a JoinGroup gets back once the rebalance completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: Option<ResponseError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member's subscription, for the leader only: (member id, instance id, metadata).
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    pub fn error(error: ResponseError, member_id: &str) -> JoinResult {
        JoinResult {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            member_id: member_id.to_owned(),
            members: Vec::new(),
        }
    }
}

/// What a SyncGroup gets back: the member's assignment, or an error.
pub type SyncResult = Result<Bytes, ResponseError>;

/// A JoinGroup as the group sees it.
pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// KIP-394: from v4 a new member must come back with the member id it is given.
    pub require_known_member_id: bool,
}

/// What the coordinator should do after a call.
pub enum JoinOutcome {
    /// Answer now.
    Done(JoinResult),
    /// Wait for the rebalance to complete.
    Wait(oneshot::Receiver<JoinResult>),
}

pub struct Member {
    pub id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    last_heartbeat: Instant,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    /// The member's subscription metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(name, _)| name == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

pub struct Group {
    pub id: String,
    pub state: State,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// By member id; the order members joined in is kept for choosing a leader.
    pub members: BTreeMap<String, Member>,
    join_order: Vec<String>,
    /// KIP-394: member ids handed out and not yet used, with when they expire.
    pending: HashMap<String, Instant>,
    static_members: HashMap<String, String>,
    initial_delay: Duration,
    /// When the current join phase must end.
    rebalance_deadline: Option<Instant>,
    /// When the first rebalance of an empty group may complete at the earliest.
    delay_deadline: Option<Instant>,
    /// Set when the group changed in a way that must be saved.
    dirty: bool,
}

impl Group {
    pub fn new(id: &str, initial_delay: Duration) -> Group {
        Group {
            id: id.to_owned(),
            state: State::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            join_order: Vec::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            initial_delay,
            rebalance_deadline: None,
            delay_deadline: None,
            dirty: false,
        }
    }

    /// A group restored from storage after a restart: its members keep their ids, generation
    /// and assignments and go on heartbeating; members that are gone expire as usual.
    pub fn restore(saved: GroupState, initial_delay: Duration, now: Instant) -> Group {
        let mut group = Group::new(&saved.group_id, initial_delay);
        group.generation = saved.generation;
        group.protocol_type = Some(saved.protocol_type).filter(|t| !t.is_empty());
        group.protocol = saved.protocol;
        group.leader = saved.leader;
        for m in saved.members {
            let protocol = group.protocol.clone().unwrap_or_default();
            if let Some(instance) = &m.group_instance_id {
                group.static_members.insert(instance.clone(), m.member_id.clone());
            }
            group.join_order.push(m.member_id.clone());
            group.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocols: vec![(protocol, Bytes::from(m.subscription))],
                    assignment: Bytes::from(m.assignment),
                    last_heartbeat: now,
                    join_waiter: None,
                    sync_waiter: None,
                },
            );
        }
        group.state = if group.members.is_empty() { State::Empty } else { State::Stable };
        group
    }

    /// What to save: the membership as of now.
    pub fn snapshot(&self) -> GroupState {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupState {
            group_id: self.id.clone(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: self.protocol.clone(),
            generation: self.generation,
            leader: self.leader.clone(),
            members: self
                .members
                .values()
                .map(|m| MemberState {
                    member_id: m.id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    subscription: m.metadata(&protocol).to_vec(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        }
    }

    /// True once, after a change that must be saved.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    pub fn join(&mut self, request: JoinRequest, now: Instant) -> JoinOutcome {
        let error = |e| JoinOutcome::Done(JoinResult::error(e, &request.member_id));
        if self.state == State::Dead {
            return error(ResponseError::CoordinatorNotAvailable);
        }
        if !self.members.is_empty() && self.protocol_type.as_deref() != Some(request.protocol_type.as_str()) {
            return error(ResponseError::InconsistentGroupProtocol);
        }
        if !self.members.is_empty() && !self.supports_any(&request.protocols, &request.member_id) {
            return error(ResponseError::InconsistentGroupProtocol);
        }

        let member_id = if request.member_id.is_empty() {
            let new_id = format!("{}-{}", request.group_instance_id.as_deref().unwrap_or(&request.client_id), uuid::Uuid::new_v4());
            if let Some(instance) = &request.group_instance_id {
                return self.join_static(instance.clone(), new_id, request, now);
            }
            if request.require_known_member_id {
                self.pending.insert(new_id.clone(), now + request.session_timeout);
                return JoinOutcome::Done(JoinResult::error(ResponseError::MemberIdRequired, &new_id));
            }
            new_id
        } else {
            let known = self.members.contains_key(&request.member_id);
            if !known && self.pending.remove(&request.member_id).is_none() {
                return error(ResponseError::UnknownMemberId);
            }
            if let Some(instance) = &request.group_instance_id
                && self.static_members.get(instance).is_some_and(|m| m != &request.member_id)
            {
                return error(ResponseError::FencedInstanceId);
            }
            request.member_id.clone()
        };
        self.add_or_update(member_id, request, now)
    }

    /// KIP-345: a static member rejoining under a new member id takes its old place.
    fn join_static(&mut self, instance: String, new_id: String, request: JoinRequest, now: Instant) -> JoinOutcome {
        let Some(old_id) = self.static_members.get(&instance).cloned() else {
            self.static_members.insert(instance, new_id.clone());
            return self.add_or_update(new_id, request, now);
        };
        let Some(mut member) = self.members.remove(&old_id) else {
            self.static_members.insert(instance, new_id.clone());
            return self.add_or_update(new_id, request, now);
        };
        // The old incarnation is fenced.
        if let Some(waiter) = member.join_waiter.take() {
            let _ = waiter.send(JoinResult::error(ResponseError::FencedInstanceId, &old_id));
        }
        if let Some(waiter) = member.sync_waiter.take() {
            let _ = waiter.send(Err(ResponseError::FencedInstanceId));
        }
        let unchanged = member.same_protocols(&request.protocols);
        member.id = new_id.clone();
        member.last_heartbeat = now;
        member.session_timeout = request.session_timeout;
        member.rebalance_timeout = request.rebalance_timeout;
        self.members.insert(new_id.clone(), member);
        self.static_members.insert(instance, new_id.clone());
        if let Some(slot) = self.join_order.iter_mut().find(|m| **m == old_id) {
            *slot = new_id.clone();
        }
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        self.dirty = true;
        if self.state == State::Stable && unchanged {
            // Same subscription: no rebalance; the member syncs to get its assignment back.
            // As Kafka does, a returning leader is answered with its old id as the leader, so
            // it does not take itself for the leader and compute an assignment nobody applies.
            let mut result = self.join_result(&new_id, false);
            if result.leader == new_id {
                result.leader = old_id;
            }
            return JoinOutcome::Done(result);
        }
        self.add_or_update(new_id, request, now)
    }

    fn add_or_update(&mut self, member_id: String, request: JoinRequest, now: Instant) -> JoinOutcome {
        let (tx, rx) = oneshot::channel();
        let existing = self.members.get(&member_id).map(|m| m.same_protocols(&request.protocols));
        match (self.state, existing) {
            // A follower rejoining unchanged while the group is settled gets the current state.
            (State::Stable | State::CompletingRebalance, Some(true)) if self.leader.as_deref() != Some(member_id.as_str()) => {
                if let Some(m) = self.members.get_mut(&member_id) {
                    m.last_heartbeat = now;
                }
                return JoinOutcome::Done(self.join_result(&member_id, false));
            }
            _ => {}
        }
        if let Some(member) = self.members.get_mut(&member_id) {
            member.protocols = request.protocols;
            member.session_timeout = request.session_timeout;
            member.rebalance_timeout = request.rebalance_timeout;
            member.last_heartbeat = now;
            member.join_waiter = Some(tx);
        } else {
            if let Some(instance) = &request.group_instance_id {
                self.static_members.insert(instance.clone(), member_id.clone());
            }
            self.join_order.push(member_id.clone());
            self.members.insert(
                member_id.clone(),
                Member {
                    id: member_id.clone(),
                    group_instance_id: request.group_instance_id,
                    client_id: request.client_id,
                    client_host: request.client_host,
                    session_timeout: request.session_timeout,
                    rebalance_timeout: request.rebalance_timeout,
                    protocols: request.protocols,
                    assignment: Bytes::new(),
                    last_heartbeat: now,
                    join_waiter: Some(tx),
                    sync_waiter: None,
                },
            );
        }
        if self.protocol_type.is_none() || self.members.len() == 1 {
            self.protocol_type = Some(request.protocol_type);
        }
        self.prepare_rebalance(now);
        self.try_complete_join(now);
        JoinOutcome::Wait(rx)
    }

    /// Whether `protocols` shares a protocol with every other member.
    fn supports_any(&self, protocols: &[(String, Bytes)], except: &str) -> bool {
        protocols.iter().any(|(name, _)| {
            self.members.values().filter(|m| m.id != except).all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// Enters PreparingRebalance (if not already there): waiting syncs learn of it.
    fn prepare_rebalance(&mut self, now: Instant) {
        // A forming group's delay is not extended as more members arrive (Kafka extends it):
        // the first member never waits longer than the configured delay.
        if self.state == State::PreparingRebalance {
            return;
        }
        for member in self.members.values_mut() {
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(Err(ResponseError::RebalanceInProgress));
            }
        }
        let timeout = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or_default();
        self.rebalance_deadline = Some(now + timeout);
        self.delay_deadline = (self.state == State::Empty && !self.initial_delay.is_zero()).then(|| now + self.initial_delay);
        self.state = State::PreparingRebalance;
    }

    /// Completes the join phase when everyone has rejoined (and a forming group's delay is
    /// over), or when the rebalance timeout has passed, dropping whoever did not rejoin.
    fn try_complete_join(&mut self, now: Instant) {
        if self.state != State::PreparingRebalance {
            return;
        }
        let everyone_joined = self.members.values().all(|m| m.join_waiter.is_some()) && self.pending.is_empty();
        let delay_over = self.delay_deadline.is_none_or(|d| now >= d);
        let timed_out = self.rebalance_deadline.is_some_and(|d| now >= d);
        if !(timed_out || everyone_joined && delay_over) {
            return;
        }
        let gone: Vec<String> = self.members.values().filter(|m| m.join_waiter.is_none()).map(|m| m.id.clone()).collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.pending.clear();
        self.generation += 1;
        self.rebalance_deadline = None;
        self.delay_deadline = None;
        self.dirty = true;
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.choose_protocol();
        if self.leader.as_ref().is_none_or(|l| !self.members.contains_key(l)) {
            self.leader = self.join_order.iter().find(|m| self.members.contains_key(*m)).cloned();
        }
        self.state = State::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            let result = self.join_result(&id, is_leader);
            if let Some(member) = self.members.get_mut(&id) {
                member.last_heartbeat = now;
                if let Some(waiter) = member.join_waiter.take() {
                    let _ = waiter.send(result);
                }
            }
        }
        // The leader must sync within the rebalance timeout.
        let timeout = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or_default();
        self.rebalance_deadline = Some(now + timeout);
    }

    /// The protocol every member supports that most members prefer (Kafka's vote).
    fn choose_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| self.members.values().all(|m| m.protocols.iter().any(|(p, _)| p == *n)))
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates
            .iter()
            .map(|c| {
                let count = self
                    .members
                    .values()
                    .filter(|m| m.protocols.iter().map(|(n, _)| n).find(|n| candidates.contains(n)) == Some(*c))
                    .count();
                (count, *c)
            })
            .collect();
        // Most votes wins; ties go to the first member's preference order.
        votes.sort_by_key(|(count, _)| std::cmp::Reverse(*count));
        votes.first().map(|(_, name)| (*name).clone())
    }

    fn join_result(&self, member_id: &str, with_members: bool) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_owned(),
            members: if with_members {
                self.join_order
                    .iter()
                    .filter_map(|id| self.members.get(id))
                    .map(|m| (m.id.clone(), m.group_instance_id.clone(), m.metadata(&protocol)))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Checks that `member_id` (with `instance`) belongs to generation `generation`.
    pub fn check_member(&self, member_id: &str, instance: Option<&str>, generation: i32) -> Result<(), ResponseError> {
        self.check_identity(member_id, instance)?;
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    /// Checks that `member_id` is a member, and the current one of its static `instance`. The
    /// instance is looked at first, as Kafka does: an incarnation replaced by a newer one with
    /// the same `group.instance.id` is no longer a member, and must learn it is fenced
    /// (FENCED_INSTANCE_ID, fatal to the client) rather than unknown (which would make it
    /// rejoin and fence the newer one in turn).
    fn check_identity(&self, member_id: &str, instance: Option<&str>) -> Result<(), ResponseError> {
        if let Some(instance) = instance {
            match self.static_members.get(instance) {
                None => return Err(ResponseError::UnknownMemberId),
                Some(current) if current != member_id => return Err(ResponseError::FencedInstanceId),
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        Ok(())
    }

    /// OffsetCommit from `member_id` at `generation`, in Kafka's order: a simple committer
    /// (generation -1, no member) only while the group is empty; a member must be known and of
    /// the current generation, whatever the state, so a member that has not rejoined yet keeps
    /// committing while the others join (PreparingRebalance); only once the join phase is over
    /// (CompletingRebalance) does a member of the new generation get REBALANCE_IN_PROGRESS,
    /// and one of the old generation ILLEGAL_GENERATION.
    pub fn check_commit(&self, member_id: &str, instance: Option<&str>, generation: i32) -> Result<(), ResponseError> {
        match self.state {
            State::Dead => return Err(ResponseError::CoordinatorNotAvailable),
            State::Empty if generation < 0 => return Ok(()),
            _ => {}
        }
        if generation >= 0 || !member_id.is_empty() || instance.is_some() {
            self.check_member(member_id, instance, generation)?;
        } else if self.state != State::Empty {
            return Err(ResponseError::UnknownMemberId);
        }
        if self.state == State::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    /// SyncGroup: the leader hands out assignments; everyone gets theirs.
    pub fn sync(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Result<oneshot::Receiver<SyncResult>, ResponseError> {
        self.check_member(member_id, instance, generation)?;
        let (tx, rx) = oneshot::channel();
        match self.state {
            State::PreparingRebalance => return Err(ResponseError::RebalanceInProgress),
            State::Stable => {
                let assignment = self.members.get(member_id).map(|m| m.assignment.clone()).unwrap_or_default();
                let _ = tx.send(Ok(assignment));
                return Ok(rx);
            }
            State::Empty | State::Dead => return Err(ResponseError::UnknownMemberId),
            State::CompletingRebalance => {}
        }
        if let Some(member) = self.members.get_mut(member_id) {
            member.sync_waiter = Some(tx);
            member.last_heartbeat = now;
        }
        if self.leader.as_deref() == Some(member_id) {
            let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
            for member in self.members.values_mut() {
                member.assignment = given.remove(&member.id).unwrap_or_default();
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(Ok(member.assignment.clone()));
                }
            }
            self.state = State::Stable;
            self.rebalance_deadline = None;
            self.dirty = true;
        }
        Ok(rx)
    }

    /// Heartbeat: keeps a member alive and tells it when to rejoin.
    pub fn heartbeat(&mut self, member_id: &str, instance: Option<&str>, generation: i32, now: Instant) -> Result<(), ResponseError> {
        if matches!(self.state, State::Empty | State::Dead) {
            return Err(ResponseError::UnknownMemberId);
        }
        self.check_member(member_id, instance, generation)?;
        if let Some(member) = self.members.get_mut(member_id) {
            member.last_heartbeat = now;
        }
        if self.state == State::PreparingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    /// LeaveGroup for one member (by id, or by instance id for a static member).
    pub fn leave(&mut self, member_id: &str, instance: Option<&str>, now: Instant) -> Result<(), ResponseError> {
        let id = match instance {
            Some(instance) => {
                let Some(id) = self.static_members.get(instance).cloned() else {
                    return Err(ResponseError::UnknownMemberId);
                };
                if !member_id.is_empty() && member_id != id {
                    return Err(ResponseError::FencedInstanceId);
                }
                id
            }
            None => member_id.to_owned(),
        };
        if !self.members.contains_key(&id) {
            self.pending.remove(&id);
            return Err(ResponseError::UnknownMemberId);
        }
        self.remove_member(&id);
        self.after_departure(now);
        Ok(())
    }

    fn remove_member(&mut self, id: &str) {
        if let Some(mut member) = self.members.remove(id) {
            if let Some(waiter) = member.join_waiter.take() {
                let _ = waiter.send(JoinResult::error(ResponseError::UnknownMemberId, id));
            }
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(Err(ResponseError::UnknownMemberId));
            }
            if let Some(instance) = &member.group_instance_id {
                self.static_members.remove(instance);
            }
        }
        self.join_order.retain(|m| m != id);
        self.dirty = true;
    }

    /// After a member left or expired: rebalance the rest, or empty the group.
    fn after_departure(&mut self, now: Instant) {
        match self.state {
            State::Stable | State::CompletingRebalance => {
                if self.members.is_empty() {
                    self.become_empty();
                } else {
                    self.prepare_rebalance(now);
                }
            }
            State::PreparingRebalance => {
                if self.members.is_empty() && self.pending.is_empty() {
                    self.become_empty();
                } else {
                    self.try_complete_join(now);
                }
            }
            State::Empty | State::Dead => {}
        }
    }

    fn become_empty(&mut self) {
        self.state = State::Empty;
        self.generation += 1;
        self.protocol = None;
        self.leader = None;
        self.rebalance_deadline = None;
        self.delay_deadline = None;
        self.dirty = true;
    }

    /// Timers: completes a join phase whose wait is over, drops a leader that never synced,
    /// and expires members whose session ran out. Returns when to call again.
    pub fn tick(&mut self, now: Instant) -> Option<Instant> {
        self.pending.retain(|_, expires| *expires > now);
        if self.state == State::PreparingRebalance {
            self.try_complete_join(now);
        }
        if self.state == State::CompletingRebalance && self.rebalance_deadline.is_some_and(|d| now >= d) {
            // The leader never sent the assignment: start over without the members that did
            // not sync.
            let silent: Vec<String> = self.members.values().filter(|m| m.sync_waiter.is_none()).map(|m| m.id.clone()).collect();
            for id in silent {
                self.remove_member(&id);
            }
            self.after_departure(now);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.sync_waiter.is_none() && now >= m.last_heartbeat + m.session_timeout)
            .map(|m| m.id.clone())
            .collect();
        if !expired.is_empty() {
            for id in &expired {
                tracing::info!(group = %self.id, member = %id, "session expired");
                self.remove_member(id);
            }
            self.after_departure(now);
        }
        self.next_deadline()
    }

    fn next_deadline(&self) -> Option<Instant> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.sync_waiter.is_none())
            .map(|m| m.last_heartbeat + m.session_timeout);
        let pending = self.pending.values().copied();
        let phase = [self.rebalance_deadline, self.delay_deadline].into_iter().flatten();
        sessions.chain(pending).chain(phase).min()
    }

    /// Marks the group deleted: waiting members are told it is gone.
    pub fn kill(&mut self) {
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            self.remove_member(&id);
        }
        self.state = State::Dead;
    }

    /// This broker stops coordinating the group: members waiting for a join or sync are told
    /// to find the new coordinator, and the saved state stays as it is for that one.
    pub fn hand_over(&mut self) {
        for member in self.members.values_mut() {
            if let Some(waiter) = member.join_waiter.take() {
                let _ = waiter.send(JoinResult::error(ResponseError::NotCoordinator, &member.id));
            }
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(Err(ResponseError::NotCoordinator));
            }
        }
        self.state = State::Dead;
        self.dirty = false;
    }

    /// The topics the members subscribe to (for OffsetDelete's check).
    pub fn subscribed_topics(&self) -> Vec<String> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members.values().flat_map(|m| super::protocol::subscription_topics(&m.metadata(&protocol))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(member: &str) -> JoinRequest {
        JoinRequest {
            member_id: member.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            require_known_member_id: false,
        }
    }

    fn waiting(outcome: JoinOutcome) -> oneshot::Receiver<JoinResult> {
        match outcome {
            JoinOutcome::Wait(rx) => rx,
            JoinOutcome::Done(result) => panic!("expected to wait, got {result:?}"),
        }
    }

    #[test]
    fn a_forming_group_waits_the_initial_delay_and_no_longer() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::from_secs(3));
        let mut first = waiting(g.join(request(""), t0));
        assert_eq!(g.tick(t0 + Duration::from_secs(1)), Some(t0 + Duration::from_secs(3)));
        assert!(first.try_recv().is_err(), "still waiting for more members");
        let mut second = waiting(g.join(request(""), t0 + Duration::from_secs(2)));
        g.tick(t0 + Duration::from_secs(3));
        let (a, b) = (first.try_recv().expect("first answered at the delay"), second.try_recv().expect("second too"));
        assert_eq!((a.generation, b.generation), (1, 1));
        assert_eq!(a.members.len() + b.members.len(), 2, "only the leader sees the members");
        assert_eq!(g.state, State::CompletingRebalance);
    }

    #[test]
    fn a_silent_member_expires_and_the_rest_rebalance() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::ZERO);
        let mut a = waiting(g.join(request(""), t0));
        let a_id = a.try_recv().expect("a alone: no delay").member_id;
        let mut b = waiting(g.join(request(""), t0));
        let _rejoined = waiting(g.join(request(&a_id), t0));
        let b_result = b.try_recv().expect("both joined");
        let leader = b_result.leader.clone();
        let assignments = vec![(a_id.clone(), Bytes::from_static(b"A")), (b_result.member_id.clone(), Bytes::from_static(b"B"))];
        let _synced = g.sync(&leader, None, 2, assignments, t0).expect("leader syncs");
        assert_eq!(g.state, State::Stable);
        // b never heartbeats again; a does.
        g.heartbeat(&a_id, None, 2, t0 + Duration::from_secs(8)).expect("a alive");
        g.tick(t0 + Duration::from_secs(10));
        assert!(!g.members.contains_key(&b_result.member_id), "b expired");
        assert_eq!(g.state, State::PreparingRebalance);
        assert_eq!(g.heartbeat(&a_id, None, 2, t0 + Duration::from_secs(11)), Err(ResponseError::RebalanceInProgress));
    }

    fn stable_group(instance: Option<&str>) -> (Group, String, i32) {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::ZERO);
        let mut join = request("");
        join.group_instance_id = instance.map(str::to_owned);
        let joined = waiting(g.join(join, t0)).try_recv().expect("alone: no delay");
        let (id, generation) = (joined.member_id, joined.generation);
        let _synced = g.sync(&id, instance, generation, vec![(id.clone(), Bytes::from_static(b"A"))], t0).expect("leader syncs");
        assert_eq!(g.state, State::Stable);
        (g, id, generation)
    }

    #[test]
    fn a_replaced_static_member_is_fenced_not_unknown() {
        let (mut g, old, generation) = stable_group(Some("i1"));
        let mut again = request("");
        again.group_instance_id = Some("i1".into());
        let JoinOutcome::Done(rejoined) = g.join(again, Instant::now()) else { panic!("same subscription: answered at once") };
        assert_ne!(rejoined.member_id, old);
        let now = Instant::now();
        assert_eq!(g.heartbeat(&old, Some("i1"), generation, now), Err(ResponseError::FencedInstanceId));
        assert_eq!(g.check_commit(&old, Some("i1"), generation), Err(ResponseError::FencedInstanceId));
        assert_eq!(g.sync(&old, Some("i1"), generation, vec![], now).err(), Some(ResponseError::FencedInstanceId));
        assert_eq!(g.heartbeat(&rejoined.member_id, Some("i1"), generation, now), Ok(()));
        assert_eq!(g.heartbeat(&old, Some("other"), generation, now), Err(ResponseError::UnknownMemberId));
    }

    #[test]
    fn commits_follow_kafkas_order_during_a_rebalance() {
        let (mut g, a, generation) = stable_group(None);
        let t0 = Instant::now();
        // b joins: PreparingRebalance, a has not rejoined and still commits at its generation.
        let _b = waiting(g.join(request(""), t0));
        assert_eq!(g.state, State::PreparingRebalance);
        assert_eq!(g.check_commit(&a, None, generation), Ok(()));
        assert_eq!(g.check_commit(&a, None, generation + 1), Err(ResponseError::IllegalGeneration));
        assert_eq!(g.check_commit("", None, -1), Err(ResponseError::UnknownMemberId));
        let mut a_rejoin = waiting(g.join(request(&a), t0));
        assert_eq!(g.state, State::CompletingRebalance);
        let next = a_rejoin.try_recv().expect("everyone joined").generation;
        // The old generation is stale; the new one waits for the assignment.
        assert_eq!(g.check_commit(&a, None, generation), Err(ResponseError::IllegalGeneration));
        assert_eq!(g.check_commit(&a, None, next), Err(ResponseError::RebalanceInProgress));
        assert_eq!(g.check_commit("nobody", None, next), Err(ResponseError::UnknownMemberId));
    }
}
