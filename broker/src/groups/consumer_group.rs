//! A KIP-848 consumer group (`group.protocol=consumer`): the broker assigns partitions itself
//! and members converge on the target assignment through their heartbeats.
//!
//! Every change of membership, subscriptions or topic partitions bumps the group epoch and the
//! assignor computes a new target. A member gets its target in steps: first it is told to drop
//! the partitions that are no longer its own (keeping its epoch); once it reports having
//! dropped them, its epoch moves to the target's, and it gets each new partition as soon as no
//! other member still owns it. So no partition is ever owned by two members at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use super::assignor::{Assignor, Subscriber};

/// A partition by topic id, as the protocol names it.
pub type TopicPartition = (Uuid, i32);

/// Topic name → (topic id, partition count), for the subscribed topics that exist.
pub type Topics = BTreeMap<String, (Uuid, i32)>;

pub struct ConsumerMember {
    pub id: String,
    pub epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed: Vec<String>,
    /// What the member last said it owns.
    pub owned: BTreeSet<TopicPartition>,
    /// What the broker last told it to own.
    pub assigned: BTreeSet<TopicPartition>,
    pub(super) last_heartbeat: Instant,
}

/// One ConsumerGroupHeartbeat as the group sees it.
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub subscribed: Option<Vec<String>>,
    pub server_assignor: Option<String>,
    pub owned: Option<Vec<TopicPartition>>,
    pub client_id: String,
    pub client_host: String,
}

/// The answer: the member's id and epoch, and its assignment when it changed.
#[derive(Debug)]
pub struct HeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    pub assignment: Option<BTreeSet<TopicPartition>>,
}

pub struct ConsumerGroup {
    pub id: String,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: Assignor,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, BTreeSet<TopicPartition>>,
    /// The topic layout the target was computed from.
    pub(super) topics: Topics,
    session_timeout: Duration,
    /// What storage holds of the group, to save only changes.
    pub(super) saved: Option<super::consumer_group_state::SavedConsumerGroup>,
    /// Set when this broker no longer serves the group (deleted, or handed over to another
    /// coordinator): its timer task ends and nothing more is saved.
    pub gone: bool,
}

/// An epoch of -1 leaves the group; -2 leaves it as a static member that will come back.
const LEAVE: i32 = -1;
const STATIC_LEAVE: i32 = -2;

impl ConsumerGroup {
    pub fn new(id: &str, session_timeout: Duration) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_owned(),
            epoch: 0,
            assignment_epoch: 0,
            assignor: Assignor::RoundRobin,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            topics: Topics::new(),
            session_timeout,
            saved: None,
            gone: false,
        }
    }

    /// The topics every member subscribes to, for the caller to look up.
    pub fn subscribed_topics(&self, extra: Option<&[String]>) -> BTreeSet<String> {
        self.members.values().flat_map(|m| m.subscribed.iter().cloned()).chain(extra.into_iter().flatten().cloned()).collect()
    }

    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch != self.epoch {
            "Assigning"
        } else if self.members.values().any(|m| m.epoch != self.assignment_epoch || Some(&m.assigned) != self.target.get(&m.id)) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    pub fn heartbeat(&mut self, hb: Heartbeat, topics: Topics, now: Instant) -> Result<HeartbeatReply, (ResponseError, String)> {
        if hb.member_epoch == LEAVE || hb.member_epoch == STATIC_LEAVE {
            if self.members.remove(&hb.member_id).is_none() {
                return Err((ResponseError::UnknownMemberId, "no such member".into()));
            }
            self.epoch += 1;
            return Ok(HeartbeatReply { member_id: hb.member_id, member_epoch: hb.member_epoch, assignment: None });
        }
        if let Some(name) = &hb.server_assignor {
            match Assignor::named(name) {
                Some(assignor) if self.members.is_empty() || hb.member_epoch == 0 => self.assignor = assignor,
                Some(_) => {}
                None => return Err((ResponseError::UnsupportedAssignor, format!("no server assignor {name:?}: use range or uniform"))),
            }
        }
        let joining = hb.member_epoch == 0;
        let member_id = if joining { self.join(&hb, now)? } else { self.check(&hb)? };
        // Joining, a new subscription and new partitions each change the group: one new epoch.
        let mut changed = joining;
        let Some(member) = self.members.get_mut(&member_id) else {
            return Err((ResponseError::UnknownMemberId, "no such member".into()));
        };
        member.last_heartbeat = now;
        if let Some(subscribed) = hb.subscribed {
            let mut sorted = subscribed;
            sorted.sort();
            sorted.dedup();
            if sorted != member.subscribed {
                member.subscribed = sorted;
                changed = true;
            }
        }
        if let Some(owned) = hb.owned {
            member.owned = owned.into_iter().collect();
        }
        if topics != self.topics {
            self.topics = topics;
            changed = true;
        }
        if changed {
            self.epoch += 1;
        }
        if self.assignment_epoch != self.epoch {
            self.compute_target();
        }
        let assignment = self.reconcile(&member_id, joining);
        let epoch = self.members.get(&member_id).map_or(-1, |m| m.epoch);
        Ok(HeartbeatReply { member_id, member_epoch: epoch, assignment })
    }

    fn join(&mut self, hb: &Heartbeat, now: Instant) -> Result<String, (ResponseError, String)> {
        if hb.subscribed.is_none() {
            return Err((ResponseError::InvalidRequest, "a joining member must name its subscription".into()));
        }
        let id = if hb.member_id.is_empty() { Uuid::new_v4().to_string() } else { hb.member_id.clone() };
        // A static member comes back once its previous incarnation has left (epoch -2) or
        // expired; while that one is still in the group, the newcomer is refused, as Kafka
        // does (UNRELEASED_INSTANCE_ID, fatal to the client): two live consumers with one
        // group.instance.id is a configuration error, and fencing the older one would hide it.
        if let Some(instance) = &hb.instance_id
            && let Some(holder) = self.members.values().find(|m| m.instance_id.as_ref() == Some(instance) && m.id != id)
        {
            return Err((
                ResponseError::UnreleasedInstanceId,
                format!("instance id {instance} is in use by member {}; it must leave (epoch -2) first", holder.id),
            ));
        }
        self.members.insert(
            id.clone(),
            ConsumerMember {
                id: id.clone(),
                epoch: 0,
                instance_id: hb.instance_id.clone(),
                rack_id: hb.rack_id.clone(),
                client_id: hb.client_id.clone(),
                client_host: hb.client_host.clone(),
                subscribed: Vec::new(),
                owned: BTreeSet::new(),
                assigned: BTreeSet::new(),
                last_heartbeat: now,
            },
        );
        Ok(id)
    }

    fn check(&self, hb: &Heartbeat) -> Result<String, (ResponseError, String)> {
        let Some(member) = self.members.get(&hb.member_id) else {
            return Err((ResponseError::UnknownMemberId, "no such member; rejoin with epoch 0".into()));
        };
        if hb.member_epoch != member.epoch {
            return Err((
                ResponseError::FencedMemberEpoch,
                format!("member epoch {} is not the current {}; rejoin with epoch 0", hb.member_epoch, member.epoch),
            ));
        }
        Ok(member.id.clone())
    }

    fn compute_target(&mut self) {
        let topic_counts: BTreeMap<String, i32> = self.topics.iter().map(|(name, (_, count))| (name.clone(), *count)).collect();
        let subscribers: Vec<Subscriber> = self.members.values().map(|m| Subscriber { member_id: &m.id, topics: &m.subscribed }).collect();
        let assignment = self.assignor.assign(&subscribers, &topic_counts);
        self.target = assignment
            .into_iter()
            .map(|(member, list)| {
                let set = list.into_iter().filter_map(|(topic, p)| self.topics.get(&topic).map(|(id, _)| (*id, p))).collect();
                (member, set)
            })
            .collect();
        self.assignment_epoch = self.epoch;
    }

    /// Moves a member one step towards its target; returns its assignment if it changed.
    fn reconcile(&mut self, member_id: &str, joining: bool) -> Option<BTreeSet<TopicPartition>> {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let busy: BTreeSet<TopicPartition> = self
            .members
            .values()
            .filter(|m| m.id != member_id)
            .flat_map(|m| m.owned.iter().chain(m.assigned.iter()).copied())
            .collect();
        let assignment_epoch = self.assignment_epoch;
        let member = self.members.get_mut(member_id)?;
        let held: BTreeSet<TopicPartition> = member.owned.union(&member.assigned).copied().collect();
        let next: BTreeSet<TopicPartition> = if held.is_subset(&target) {
            member.epoch = assignment_epoch;
            target.iter().filter(|p| member.owned.contains(p) || member.assigned.contains(p) || !busy.contains(p)).copied().collect()
        } else {
            // Revoke first: the member keeps its epoch until it has let go.
            held.intersection(&target).copied().collect()
        };
        let changed = next != member.assigned || joining;
        member.assigned = next.clone();
        changed.then_some(next)
    }

    /// Expires members whose session ran out; returns when to call again.
    pub fn tick(&mut self, now: Instant) -> Option<Instant> {
        let expired: Vec<String> =
            self.members.values().filter(|m| now >= m.last_heartbeat + self.session_timeout).map(|m| m.id.clone()).collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "session expired");
            self.members.remove(&id);
            self.epoch += 1;
        }
        self.members.values().map(|m| m.last_heartbeat + self.session_timeout).min()
    }

    /// Checks an offset commit from `member_id` at `epoch` (KIP-848 commits carry the member
    /// epoch).
    pub fn check_commit(&self, member_id: &str, epoch: i32) -> Result<(), ResponseError> {
        match self.members.get(member_id) {
            None if epoch < 0 && self.members.is_empty() => Ok(()),
            None => Err(ResponseError::UnknownMemberId),
            Some(m) if m.epoch != epoch => Err(ResponseError::StaleMemberEpoch),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> (Topics, Uuid) {
        let id = Uuid::new_v4();
        ([("t".to_string(), (id, 4))].into_iter().collect(), id)
    }

    fn hb(member: &str, epoch: i32, owned: Option<Vec<TopicPartition>>) -> Heartbeat {
        Heartbeat {
            member_id: member.into(),
            member_epoch: epoch,
            instance_id: None,
            rack_id: None,
            subscribed: (epoch == 0).then(|| vec!["t".to_string()]),
            server_assignor: Some("range".into()),
            owned,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
        }
    }

    #[test]
    fn partitions_move_only_after_the_old_owner_lets_go() {
        let (topics, id) = topics();
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g", Duration::from_secs(45));
        let a = g.heartbeat(hb("a", 0, None), topics.clone(), now).expect("a joins");
        assert_eq!(a.member_epoch, 1);
        let all: BTreeSet<_> = (0..4).map(|p| (id, p)).collect();
        assert_eq!(a.assignment.as_ref(), Some(&all));

        // b joins: its target is partitions 2 and 3, still owned by a.
        let b = g.heartbeat(hb("b", 0, None), topics.clone(), now).expect("b joins");
        assert_eq!(b.assignment, Some(BTreeSet::new()), "nothing free yet");
        assert_eq!(g.state(), "Reconciling");

        // a is told to keep only 0 and 1, and keeps its old epoch until it has let go.
        let a = g.heartbeat(hb("a", 1, Some(all.iter().copied().collect())), topics.clone(), now).expect("a");
        assert_eq!(a.member_epoch, 1);
        assert_eq!(a.assignment, Some([(id, 0), (id, 1)].into_iter().collect()));
        let a = g.heartbeat(hb("a", 1, Some(vec![(id, 0), (id, 1)])), topics.clone(), now).expect("a revoked");
        assert_eq!(a.member_epoch, 2);

        let b = g.heartbeat(hb("b", 2, Some(vec![])), topics.clone(), now).expect("b");
        assert_eq!(b.assignment, Some([(id, 2), (id, 3)].into_iter().collect()));
        let _ = g.heartbeat(hb("b", 2, Some(vec![(id, 2), (id, 3)])), topics.clone(), now).expect("b owns");
        assert_eq!(g.state(), "Stable");
    }

    #[test]
    fn stale_epochs_unknown_members_and_expiry() {
        let (topics, _) = topics();
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g", Duration::from_secs(10));
        g.heartbeat(hb("a", 0, None), topics.clone(), now).expect("join");
        let stale = g.heartbeat(hb("a", 7, None), topics.clone(), now).map_err(|e| e.0);
        assert_eq!(stale.err(), Some(ResponseError::FencedMemberEpoch));
        let unknown = g.heartbeat(hb("zz", 1, None), topics.clone(), now).map_err(|e| e.0);
        assert_eq!(unknown.err(), Some(ResponseError::UnknownMemberId));
        assert_eq!(g.check_commit("a", 1), Ok(()));
        assert_eq!(g.check_commit("a", 0), Err(ResponseError::StaleMemberEpoch));
        g.tick(now + Duration::from_secs(11));
        assert!(g.members.is_empty(), "expired");
        assert_eq!(g.state(), "Empty");
    }

    #[test]
    fn a_second_live_consumer_with_the_same_instance_id_is_refused() {
        let (topics, _) = topics();
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g", Duration::from_secs(10));
        let with_instance = |member: &str, epoch: i32| Heartbeat { instance_id: Some("i1".into()), ..hb(member, epoch, None) };
        let a = g.heartbeat(with_instance("a", 0), topics.clone(), now).expect("a joins");
        let b = g.heartbeat(with_instance("b", 0), topics.clone(), now).map_err(|e| e.0);
        assert_eq!(b.err(), Some(ResponseError::UnreleasedInstanceId));
        // Once a leaves as a static member (-2), its instance id is free again.
        g.heartbeat(with_instance("a", STATIC_LEAVE), topics.clone(), now).expect("a leaves");
        let b = g.heartbeat(with_instance("b", 0), topics.clone(), now).expect("b takes the instance id");
        assert!(b.member_epoch > a.member_epoch);
    }
}
