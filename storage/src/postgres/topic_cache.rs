//! Topics this broker looked up recently. Produce and fetch name their topics in every request;
//! asking Postgres each time was most of the statements a consumer's long polls ran.
//!
//! This engine's own topic changes replace or drop the entry at once. Another broker's
//! changes show after at most [`FRESH_FOR`], as Kafka brokers' metadata caches also lag one
//! another: until then a request may see the old partition count or a deleted topic, and
//! the statements that resolve the topic by name answer for what is really there.
//! Absent topics are not cached, so a topic created elsewhere is found at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Topic;

/// How long a looked-up topic is used without asking Postgres again.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(crate) struct TopicCache {
    entries: Mutex<HashMap<String, (Topic, Instant)>>,
}

impl TopicCache {
    pub(crate) fn get(&self, name: &str) -> Option<Topic> {
        let entries = self.entries.lock().ok()?;
        let (topic, at) = entries.get(name)?;
        (at.elapsed() < FRESH_FOR).then(|| topic.clone())
    }

    pub(crate) fn put(&self, topic: &Topic) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(topic.name.clone(), (topic.clone(), Instant::now()));
        }
    }

    pub(crate) fn forget(&self, name: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TopicCache;
    use crate::Topic;

    fn topic(name: &str, partitions: i32) -> Topic {
        Topic { id: uuid::Uuid::new_v4(), name: name.into(), partitions, configs: Default::default() }
    }

    #[test]
    fn keeps_replaces_and_forgets() {
        let cache = TopicCache::default();
        assert!(cache.get("a").is_none());
        cache.put(&topic("a", 1));
        cache.put(&topic("a", 3));
        assert_eq!(cache.get("a").map(|t| t.partitions), Some(3));
        cache.forget("a");
        assert!(cache.get("a").is_none());
    }
}
