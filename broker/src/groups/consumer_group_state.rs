//! What is saved of a KIP-848 consumer group, so that the broker that coordinates it next (after
//! a restart, or when its coordinator died or handed it over on a shared Postgres) carries on
//! where the last one stopped: members keep their ids, epochs and assignments, and a partition
//! being moved between members still waits for its previous owner to let go. Without this, a
//! new coordinator would answer every member UNKNOWN_MEMBER_ID and they would all rejoin,
//! losing their partitions at once.
//!
//! The group is kept as a JSON storage document (kind [`KIND`], key the group id), saved
//! whenever a heartbeat or an expiry changed anything but the members' last-heartbeat times.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

use super::assignor::Assignor;
use super::consumer_group::{ConsumerGroup, ConsumerMember, TopicPartition};

/// The storage document kind of KIP-848 groups.
pub const KIND: &str = "consumer_group";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedConsumerGroup {
    pub group_id: String,
    pub epoch: i32,
    pub assignment_epoch: i32,
    /// `range` or `uniform`.
    pub assignor: String,
    pub members: Vec<SavedConsumerMember>,
    /// Each member's target assignment.
    pub target: BTreeMap<String, Vec<TopicPartition>>,
    /// The topic layout the target was computed from: name → (id, partition count).
    pub topics: BTreeMap<String, (Uuid, i32)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedConsumerMember {
    pub id: String,
    pub epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed: Vec<String>,
    pub owned: Vec<TopicPartition>,
    pub assigned: Vec<TopicPartition>,
}

impl ConsumerGroup {
    /// The group as it is saved (everything but heartbeat times).
    pub fn snapshot(&self) -> SavedConsumerGroup {
        SavedConsumerGroup {
            group_id: self.id.clone(),
            epoch: self.epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor.name().to_owned(),
            members: self
                .members
                .values()
                .map(|m| SavedConsumerMember {
                    id: m.id.clone(),
                    epoch: m.epoch,
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed: m.subscribed.clone(),
                    owned: m.owned.iter().copied().collect(),
                    assigned: m.assigned.iter().copied().collect(),
                })
                .collect(),
            target: self.target.iter().map(|(id, set)| (id.clone(), set.iter().copied().collect())).collect(),
            topics: self.topics.clone(),
        }
    }

    /// A group restored from what was saved. Its members' sessions start over at `now`, so a
    /// member that is gone for good expires one session timeout later, as it would have.
    pub fn restore(saved: SavedConsumerGroup, session_timeout: Duration, now: Instant) -> ConsumerGroup {
        let mut group = ConsumerGroup::new(&saved.group_id, session_timeout);
        group.epoch = saved.epoch;
        group.assignment_epoch = saved.assignment_epoch;
        group.assignor = Assignor::named(&saved.assignor).unwrap_or(group.assignor);
        group.members = saved
            .members
            .iter()
            .map(|m| {
                let member = ConsumerMember {
                    id: m.id.clone(),
                    epoch: m.epoch,
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed: m.subscribed.clone(),
                    owned: m.owned.iter().copied().collect(),
                    assigned: m.assigned.iter().copied().collect(),
                    last_heartbeat: now,
                };
                (m.id.clone(), member)
            })
            .collect();
        group.target = saved.target.iter().map(|(id, list)| (id.clone(), list.iter().copied().collect())).collect();
        group.topics = saved.topics.clone();
        group.saved = Some(saved);
        group
    }

    /// The snapshot to save if the group changed since it was last saved or restored.
    pub fn changed_since_saved(&self) -> Option<SavedConsumerGroup> {
        let now = self.snapshot();
        (self.saved.as_ref() != Some(&now)).then_some(now)
    }

    /// Notes that `saved` is what storage holds now.
    pub fn mark_saved(&mut self, saved: SavedConsumerGroup) {
        self.saved = Some(saved);
    }
}

#[cfg(test)]
mod tests {
    use super::super::consumer_group::Heartbeat;
    use super::*;

    #[test]
    fn a_restored_group_goes_on_at_the_same_epochs() {
        let topic = Uuid::new_v4();
        let topics: super::super::consumer_group::Topics = [("t".to_string(), (topic, 2))].into_iter().collect();
        let now = Instant::now();
        let hb = |member: &str, epoch: i32, owned: Option<Vec<TopicPartition>>| Heartbeat {
            member_id: member.into(),
            member_epoch: epoch,
            instance_id: None,
            rack_id: None,
            subscribed: (epoch == 0).then(|| vec!["t".to_string()]),
            server_assignor: Some("range".into()),
            owned,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
        };
        let mut g = ConsumerGroup::new("g", Duration::from_secs(45));
        let a = g.heartbeat(hb("a", 0, None), topics.clone(), now).expect("a joins");
        let saved = g.changed_since_saved().expect("a join changes the group");
        g.mark_saved(saved.clone());
        let _ = g.heartbeat(hb("a", a.member_epoch, Some(vec![(topic, 0), (topic, 1)])), topics.clone(), now).expect("a owns");
        let saved = g.changed_since_saved().expect("what a owns changed");
        g.mark_saved(saved.clone());
        let _ = g.heartbeat(hb("a", a.member_epoch, Some(vec![(topic, 0), (topic, 1)])), topics.clone(), now).expect("again");
        assert!(g.changed_since_saved().is_none(), "a plain heartbeat saves nothing");

        let json = serde_json::to_vec(&saved).expect("encodes");
        let back: SavedConsumerGroup = serde_json::from_slice(&json).expect("decodes");
        let mut restored = ConsumerGroup::restore(back, Duration::from_secs(45), now);
        assert_eq!(restored.snapshot(), g.snapshot());
        assert!(restored.changed_since_saved().is_none());
        let again = restored.heartbeat(hb("a", a.member_epoch, Some(vec![(topic, 0), (topic, 1)])), topics, now).expect("known");
        assert_eq!(again.member_epoch, a.member_epoch);
        assert_eq!(restored.state(), "Stable");
    }
}
