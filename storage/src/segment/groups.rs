//! `groups.json` and `offsets.json`: consumer group membership and committed offsets, each
//! rewritten whole and atomically on a change.
//!
//! Commits arrive every few seconds per consumer, so rewriting a small file is cheap enough
//! today; a compacted append-only log would be the next step for thousands of groups.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::files;
use crate::{CommittedOffset, GroupState, Result, StorageError};

const GROUPS_FILE: &str = "groups.json";
const OFFSETS_FILE: &str = "offsets.json";

type Offsets = BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>;

pub(super) struct GroupStore {
    dir: PathBuf,
    groups: BTreeMap<String, GroupState>,
    offsets: Offsets,
}

impl GroupStore {
    pub(super) fn load(dir: &Path) -> Result<GroupStore> {
        let groups: Vec<GroupState> = read_json(&dir.join(GROUPS_FILE))?.unwrap_or_default();
        let offsets: BTreeMap<String, Vec<CommittedOffset>> = read_json(&dir.join(OFFSETS_FILE))?.unwrap_or_default();
        Ok(GroupStore {
            dir: dir.to_owned(),
            groups: groups.into_iter().map(|g| (g.group_id.clone(), g)).collect(),
            offsets: offsets
                .into_iter()
                .map(|(group, list)| (group, list.into_iter().map(|o| ((o.topic.clone(), o.partition), o)).collect()))
                .collect(),
        })
    }

    pub(super) fn save_group(&mut self, group: GroupState) -> Result<()> {
        self.groups.insert(group.group_id.clone(), group);
        self.write_groups()
    }

    pub(super) fn groups(&self) -> Vec<GroupState> {
        self.groups.values().cloned().collect()
    }

    pub(super) fn delete_group(&mut self, group_id: &str) -> Result<()> {
        if self.groups.remove(group_id).is_some() {
            self.write_groups()?;
        }
        if self.offsets.remove(group_id).is_some() {
            self.write_offsets()?;
        }
        Ok(())
    }

    pub(super) fn commit(&mut self, group_id: &str, offsets: Vec<CommittedOffset>) -> Result<()> {
        let stored = self.offsets.entry(group_id.to_owned()).or_default();
        for offset in offsets {
            stored.insert((offset.topic.clone(), offset.partition), offset);
        }
        self.write_offsets()
    }

    pub(super) fn committed(&self, group_id: &str) -> Vec<CommittedOffset> {
        self.offsets.get(group_id).map(|o| o.values().cloned().collect()).unwrap_or_default()
    }

    pub(super) fn delete_offsets(&mut self, group_id: &str, partitions: &[(String, i32)]) -> Result<()> {
        let Some(stored) = self.offsets.get_mut(group_id) else { return Ok(()) };
        for key in partitions {
            stored.remove(key);
        }
        if stored.is_empty() {
            self.offsets.remove(group_id);
        }
        self.write_offsets()
    }

    pub(super) fn groups_with_offsets(&self) -> Vec<String> {
        self.offsets.keys().cloned().collect()
    }

    fn write_groups(&self) -> Result<()> {
        let list: Vec<&GroupState> = self.groups.values().collect();
        write_json(&self.dir.join(GROUPS_FILE), &list)
    }

    fn write_offsets(&self) -> Result<()> {
        let map: BTreeMap<&String, Vec<&CommittedOffset>> =
            self.offsets.iter().map(|(group, o)| (group, o.values().collect())).collect();
        write_json(&self.dir.join(OFFSETS_FILE), &map)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let Some(bytes) = files::read_optional(path)? else { return Ok(None) };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| StorageError::Corrupt(format!("{}: {e}", path.display())))
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| StorageError::Engine(format!("cannot encode {}: {e}", path.display())))?;
    files::write_atomically(path, &bytes)
}
