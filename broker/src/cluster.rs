//! Cluster membership: which brokers are alive, which one leads each partition and which one
//! coordinates each group.
//!
//! Brokers on a shared store (Postgres) renew a lease there every third of its length; the
//! live brokers, sorted by node id, share out partitions and groups by a stable hash. When a
//! broker's lease runs out its partitions and groups move to the others: clients learn it from
//! NOT_LEADER_OR_FOLLOWER and NOT_COORDINATOR and refresh their metadata. No consensus of our
//! own: the store is the source of truth. On an embedded store the broker is the whole cluster.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ductstream_storage::{BrokerInfo, Storage};
use uuid::Uuid;

use crate::{Broker, BrokerError, Result};

pub struct Cluster {
    me: BrokerInfo,
    lease: Duration,
    live: RwLock<Arc<Vec<BrokerInfo>>>,
}

impl Cluster {
    /// Takes this broker's lease; fails when another live broker holds its node id.
    pub async fn join(storage: &Arc<dyn Storage>, me: BrokerInfo, lease: Duration) -> Result<Cluster> {
        let live = storage.heartbeat_broker(&me, lease).await.map_err(|e| BrokerError::Config(e.to_string()))?;
        let live = RwLock::new(Arc::new(with_me(live, &me)));
        Ok(Cluster { me, lease, live })
    }

    pub fn me(&self) -> &BrokerInfo {
        &self.me
    }

    /// How long a broker's lease lasts unless renewed.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The live brokers, by node id.
    pub fn brokers(&self) -> Arc<Vec<BrokerInfo>> {
        match self.live.read() {
            Ok(live) => live.clone(),
            Err(_) => Arc::new(vec![self.me.clone()]),
        }
    }

    /// The broker that leads `partition` of the topic with id `topic`.
    pub fn leader(&self, topic: Uuid, partition: i32) -> BrokerInfo {
        let mut key = topic.as_bytes().to_vec();
        key.extend_from_slice(&partition.to_be_bytes());
        self.pick(&key)
    }

    pub fn leads(&self, topic: Uuid, partition: i32) -> bool {
        self.leader(topic, partition).node_id == self.me.node_id
    }

    /// The broker that coordinates `group`.
    pub fn coordinator(&self, group: &str) -> BrokerInfo {
        self.pick(group.as_bytes())
    }

    pub fn coordinates(&self, group: &str) -> bool {
        self.coordinator(group).node_id == self.me.node_id
    }

    fn pick(&self, key: &[u8]) -> BrokerInfo {
        let live = self.brokers();
        match live.len() {
            0 => self.me.clone(),
            n => live[(fnv1a(key) % n as u64) as usize].clone(),
        }
    }

    /// Replaces the live list; true when it changed.
    fn update(&self, live: Vec<BrokerInfo>) -> bool {
        let live = with_me(live, &self.me);
        match self.live.write() {
            Ok(mut current) if **current != live => {
                *current = Arc::new(live);
                true
            }
            _ => false,
        }
    }
}

/// The live list always holds this broker: while it serves, it acts as a member.
fn with_me(mut live: Vec<BrokerInfo>, me: &BrokerInfo) -> Vec<BrokerInfo> {
    if !live.iter().any(|b| b.node_id == me.node_id) {
        live.push(me.clone());
        live.sort_by_key(|b| b.node_id);
    }
    live
}

/// FNV-1a: small, stable across builds and platforms (the std hasher is neither promised).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Renews the lease until shutdown, and adapts the broker when the live brokers change.
pub async fn keep_alive(broker: Arc<Broker>) {
    let cluster = &broker.cluster;
    let every = cluster.lease / 3;
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match broker.storage().heartbeat_broker(&cluster.me, cluster.lease).await {
            Ok(live) => {
                if cluster.update(live) {
                    let ids: Vec<i32> = cluster.brokers().iter().map(|b| b.node_id).collect();
                    tracing::info!(brokers = ?ids, "live brokers changed; partitions and groups move");
                    broker.log.leadership_changed();
                    if let Err(e) = broker.groups.forget_uncoordinated(|group| cluster.coordinates(group)).await {
                        tracing::warn!(error = %e, "cannot hand over groups");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew the broker lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: i32) -> BrokerInfo {
        BrokerInfo::single(id, "PLAINTEXT", "127.0.0.1", 9000 + id)
    }

    #[test]
    fn partitions_and_groups_spread_over_live_brokers_and_move_when_one_goes() {
        let cluster = Cluster { me: broker(1), lease: Duration::from_secs(10), live: RwLock::new(Arc::new(vec![broker(1)])) };
        let topic = Uuid::new_v4();
        assert!((0..12).all(|p| cluster.leads(topic, p)), "alone, it leads everything");
        assert!(cluster.update(vec![broker(1), broker(2), broker(3)]));
        let leaders: std::collections::BTreeSet<i32> = (0..12).map(|p| cluster.leader(topic, p).node_id).collect();
        assert_eq!(leaders.len(), 3, "12 partitions spread over 3 brokers: {leaders:?}");
        assert_eq!(cluster.leader(topic, 5), cluster.leader(topic, 5), "stable");
        assert!(cluster.update(vec![broker(1), broker(3)]));
        assert!((0..12).all(|p| cluster.leader(topic, p).node_id != 2), "broker 2's partitions moved");
        assert!(!cluster.update(vec![broker(3), broker(1)].into_iter().rev().collect()), "same set, no change");
        assert!(!cluster.update(vec![broker(3)]), "this broker stays in its own list: nothing changed");
        assert!(cluster.brokers().iter().any(|b| b.node_id == 1));
    }
}
