//! The group coordinator: every consumer group this broker coordinates, their timers, and
//! their persistence. The membership rules live in [`group`]; this module owns the groups,
//! runs one timer task per group and saves a group whenever its membership settles.

pub mod assignor;
pub mod consumer_group;
pub mod consumer_group_state;
pub mod group;
pub mod protocol;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ductstream_storage::Storage;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::{BrokerError, Result};
use consumer_group::ConsumerGroup;
use consumer_group_state::SavedConsumerGroup;
use group::{Group, State};

/// Group settings from the command line.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    /// Kafka's `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay: Duration,
    /// Kafka's `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    /// KIP-848 groups: Kafka's `group.consumer.session.timeout.ms` and
    /// `group.consumer.heartbeat.interval.ms`.
    pub consumer_session_timeout: Duration,
    pub consumer_heartbeat_interval: Duration,
}

/// A group and what wakes its timer task.
pub struct Handle<G> {
    pub group: tokio::sync::Mutex<G>,
    wake: Notify,
}

impl<G> Handle<G> {
    fn new(group: G) -> Arc<Handle<G>> {
        Arc::new(Handle { group: tokio::sync::Mutex::new(group), wake: Notify::new() })
    }

    /// Tells the timer task the group changed, so it recomputes its next deadline.
    pub fn changed(&self) {
        self.wake.notify_one();
    }

    /// Sleeps until `deadline` or until the group changes.
    async fn wait(&self, deadline: Option<Instant>) {
        let sleep = match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline),
            None => tokio::time::sleep(Duration::from_secs(3600)),
        };
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = sleep => {}
        }
    }
}

/// A classic group.
pub type GroupHandle = Handle<Group>;
/// A KIP-848 consumer group.
pub type ConsumerGroupHandle = Handle<ConsumerGroup>;

pub struct Coordinator {
    storage: Arc<dyn Storage>,
    pub config: GroupConfig,
    groups: Mutex<HashMap<String, Arc<GroupHandle>>>,
    /// KIP-848 groups live apart from classic ones; both are saved, so whichever broker
    /// coordinates a group next restores it (`consumer_group_state`).
    consumer_groups: Mutex<HashMap<String, Arc<ConsumerGroupHandle>>>,
    /// Group ids looked up and found with no saved KIP-848 state, so that commits of classic
    /// groups do not read storage each time. Only a group's coordinator saves that state, so
    /// the answer holds until what this broker coordinates changes; then the set is emptied.
    no_consumer_group: Mutex<HashSet<String>>,
}

/// Past this many remembered ids the set starts over (ids come from clients).
const NO_CONSUMER_GROUP_MAX: usize = 100_000;

impl Coordinator {
    /// A coordinator over `storage`. Saved groups are restored when first asked for, by the
    /// broker that coordinates them.
    pub fn new(storage: Arc<dyn Storage>, config: GroupConfig) -> Arc<Coordinator> {
        Arc::new(Coordinator {
            storage,
            config,
            groups: Mutex::new(HashMap::new()),
            consumer_groups: Mutex::new(HashMap::new()),
            no_consumer_group: Mutex::new(HashSet::new()),
        })
    }

    fn table(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Arc<GroupHandle>>>> {
        self.groups.lock().map_err(|_| BrokerError::Config("group table lock poisoned".into()))
    }

    /// Puts `group` in the table (unless another request got there first) and starts its timer.
    fn insert(self: &Arc<Self>, id: &str, group: Group) -> Result<Arc<GroupHandle>> {
        let mut table = self.table()?;
        if let Some(handle) = table.get(id) {
            return Ok(handle.clone());
        }
        let handle = Handle::new(group);
        table.insert(id.to_owned(), handle.clone());
        drop(table);
        tokio::spawn(drive(self.clone(), handle.clone()));
        Ok(handle)
    }

    /// The group, restored from storage if this broker has not served it since it started.
    pub async fn group(self: &Arc<Self>, id: &str) -> Result<Option<Arc<GroupHandle>>> {
        if let Some(handle) = self.table()?.get(id) {
            return Ok(Some(handle.clone()));
        }
        let saved = self.storage.load_groups().await?.into_iter().find(|g| g.group_id == id);
        match saved {
            Some(saved) => {
                let group = Group::restore(saved, self.config.initial_rebalance_delay, Instant::now());
                Ok(Some(self.insert(id, group)?))
            }
            None => Ok(None),
        }
    }

    pub async fn group_or_create(self: &Arc<Self>, id: &str) -> Result<Arc<GroupHandle>> {
        match self.group(id).await? {
            Some(handle) => Ok(handle),
            None => self.insert(id, Group::new(id, self.config.initial_rebalance_delay)),
        }
    }

    /// Hands over the groups this broker no longer coordinates: they leave memory (their saved
    /// state stays for the new coordinator) and their waiting members are told to look again.
    pub async fn forget_uncoordinated(&self, coordinated: impl Fn(&str) -> bool) -> Result<()> {
        let leaving: Vec<Arc<GroupHandle>> = {
            let mut table = self.table()?;
            let ids: Vec<String> = table.keys().filter(|id| !coordinated(id)).cloned().collect();
            ids.iter().filter_map(|id| table.remove(id)).collect()
        };
        for handle in leaving {
            handle.group.lock().await.hand_over();
            handle.changed();
        }
        let leaving: Vec<Arc<ConsumerGroupHandle>> = {
            let mut table = self.consumer_table()?;
            let ids: Vec<String> = table.keys().filter(|id| !coordinated(id)).cloned().collect();
            ids.iter().filter_map(|id| table.remove(id)).collect()
        };
        for handle in leaving {
            // Its saved state stays as it is, for the new coordinator to restore.
            handle.group.lock().await.gone = true;
            handle.changed();
        }
        // Groups this broker takes over may have been saved by their last coordinator.
        self.absent_table()?.clear();
        Ok(())
    }

    /// Every group in memory.
    pub fn groups(&self) -> Result<Vec<Arc<GroupHandle>>> {
        Ok(self.table()?.values().cloned().collect())
    }

    /// Forgets a group in memory (its stored state is deleted by the caller).
    pub fn forget(&self, id: &str) -> Result<()> {
        self.table()?.remove(id);
        Ok(())
    }

    fn absent_table(&self) -> Result<std::sync::MutexGuard<'_, HashSet<String>>> {
        self.no_consumer_group.lock().map_err(|_| BrokerError::Config("group table lock poisoned".into()))
    }

    fn consumer_table(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Arc<ConsumerGroupHandle>>>> {
        self.consumer_groups.lock().map_err(|_| BrokerError::Config("group table lock poisoned".into()))
    }

    /// The KIP-848 group, restored from storage if this broker has not served it since it
    /// started or since it took over its coordination.
    pub async fn consumer_group(self: &Arc<Self>, id: &str) -> Result<Option<Arc<ConsumerGroupHandle>>> {
        if let Some(handle) = self.consumer_table()?.get(id) {
            return Ok(Some(handle.clone()));
        }
        if self.absent_table()?.contains(id) {
            return Ok(None);
        }
        let Some(bytes) = self.storage.document(consumer_group_state::KIND, id).await? else {
            let mut absent = self.absent_table()?;
            if absent.len() >= NO_CONSUMER_GROUP_MAX {
                absent.clear();
            }
            absent.insert(id.to_owned());
            return Ok(None);
        };
        let saved: SavedConsumerGroup = serde_json::from_slice(&bytes).map_err(ductstream_storage::StorageError::from)?;
        tracing::info!(group = id, members = saved.members.len(), epoch = saved.epoch, "restored consumer group");
        let group = ConsumerGroup::restore(saved, self.config.consumer_session_timeout, Instant::now());
        Ok(Some(self.insert_consumer_group(id, group)?))
    }

    pub async fn consumer_group_or_create(self: &Arc<Self>, id: &str) -> Result<Arc<ConsumerGroupHandle>> {
        match self.consumer_group(id).await? {
            Some(handle) => Ok(handle),
            None => self.insert_consumer_group(id, ConsumerGroup::new(id, self.config.consumer_session_timeout)),
        }
    }

    /// Puts `group` in the table (unless another request got there first) and starts its timer.
    fn insert_consumer_group(self: &Arc<Self>, id: &str, group: ConsumerGroup) -> Result<Arc<ConsumerGroupHandle>> {
        let mut table = self.consumer_table()?;
        if let Some(handle) = table.get(id) {
            return Ok(handle.clone());
        }
        let handle = Handle::new(group);
        table.insert(id.to_owned(), handle.clone());
        drop(table);
        self.absent_table()?.remove(id);
        tokio::spawn(drive_consumer_group(self.clone(), handle.clone()));
        Ok(handle)
    }

    /// The ids of the KIP-848 groups saved in storage (served here or not).
    pub async fn saved_consumer_groups(&self) -> Result<Vec<String>> {
        Ok(self.storage.documents(consumer_group_state::KIND).await?.into_iter().map(|(id, _)| id).collect())
    }

    /// Saves the KIP-848 group if it changed since it was last saved. The caller holds the
    /// group's lock, so saves of one group happen in the order of its changes.
    pub async fn save_consumer_group_if_changed(&self, group: &mut ConsumerGroup) {
        if group.gone {
            return;
        }
        let Some(snapshot) = group.changed_since_saved() else {
            return;
        };
        let bytes = match serde_json::to_vec(&snapshot) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(group = %group.id, error = %e, "cannot encode consumer group state");
                return;
            }
        };
        match self.storage.update_document(consumer_group_state::KIND, &group.id, &mut |_| Ok(Some(bytes.clone()))).await {
            Ok(_) => group.mark_saved(snapshot),
            Err(e) => tracing::error!(group = %group.id, error = %e, "cannot save consumer group state"),
        }
    }

    /// Deletes an empty KIP-848 group: it leaves memory and storage, and its timer task ends.
    /// The caller holds the group's lock (`group`), so no member joins in between.
    pub async fn forget_consumer_group(&self, group: &mut ConsumerGroup) -> Result<()> {
        group.gone = true;
        self.consumer_table()?.remove(&group.id);
        self.storage.update_document(consumer_group_state::KIND, &group.id, &mut |_| Ok(None)).await?;
        Ok(())
    }

    pub fn consumer_groups(&self) -> Result<Vec<Arc<ConsumerGroupHandle>>> {
        Ok(self.consumer_table()?.values().cloned().collect())
    }

    /// Saves the group if its membership changed since the last save.
    pub async fn save_if_changed(&self, group: &mut Group) {
        if !group.take_dirty() || group.state == State::Dead {
            return;
        }
        if let Err(e) = self.storage.save_group(group.snapshot()).await {
            tracing::error!(group = %group.id, error = %e, "cannot save group state");
        }
    }
}

/// The group's timer task: runs its deadlines (join phase end, session expiry) until the
/// group is deleted.
async fn drive(coordinator: Arc<Coordinator>, handle: Arc<GroupHandle>) {
    loop {
        let next = {
            let mut group = handle.group.lock().await;
            if group.state == State::Dead {
                return;
            }
            let next = group.tick(Instant::now());
            coordinator.save_if_changed(&mut group).await;
            next
        };
        handle.wait(next).await;
    }
}

/// A KIP-848 group's timer task: expires members whose session ran out, until the group is
/// deleted or handed over.
async fn drive_consumer_group(coordinator: Arc<Coordinator>, handle: Arc<ConsumerGroupHandle>) {
    loop {
        let next = {
            let mut group = handle.group.lock().await;
            if group.gone {
                return;
            }
            let next = group.tick(Instant::now());
            coordinator.save_consumer_group_if_changed(&mut group).await;
            next
        };
        handle.wait(next).await;
    }
}
