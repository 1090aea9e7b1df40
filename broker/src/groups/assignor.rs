//! The broker's own partition assignors, used for KIP-848 consumer groups (and, later, the
//! broker's own consumers). Both are deterministic: the same members and topics always give the
//! same assignment.
//!
//! - `range`: per topic, the subscribed members sorted by id get contiguous ranges of
//!   partitions; the first `partitions % members` get one extra.
//! - `roundrobin` (Kafka's server-side name: `uniform`): every subscribed topic-partition,
//!   sorted by topic and partition, is dealt in turn to the members sorted by id, skipping
//!   members not subscribed to its topic.

use std::collections::BTreeMap;

/// A member as an assignor sees it.
pub struct Subscriber<'a> {
    pub member_id: &'a str,
    pub topics: &'a [String],
}

/// Member id → assigned (topic, partition), sorted.
pub type Assignment = BTreeMap<String, Vec<(String, i32)>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Range,
    RoundRobin,
}

impl Assignor {
    /// The assignor a client names; `uniform` is Kafka's name for the balanced one.
    pub fn named(name: &str) -> Option<Assignor> {
        match name {
            "range" => Some(Assignor::Range),
            "roundrobin" | "uniform" => Some(Assignor::RoundRobin),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "uniform",
        }
    }

    /// Assigns the partitions of `topics` (name → partition count) to `members`.
    pub fn assign(self, members: &[Subscriber], topics: &BTreeMap<String, i32>) -> Assignment {
        let mut out: Assignment = members.iter().map(|m| (m.member_id.to_owned(), Vec::new())).collect();
        let subscribers = |topic: &str| {
            let mut ids: Vec<&str> = members.iter().filter(|m| m.topics.iter().any(|t| t == topic)).map(|m| m.member_id).collect();
            ids.sort_unstable();
            ids
        };
        match self {
            Assignor::Range => {
                for (topic, &count) in topics {
                    let ids = subscribers(topic);
                    if ids.is_empty() {
                        continue;
                    }
                    let (each, extra) = (count / ids.len() as i32, count % ids.len() as i32);
                    let mut next = 0;
                    for (i, id) in ids.iter().enumerate() {
                        let take = each + i32::from((i as i32) < extra);
                        if let Some(list) = out.get_mut(*id) {
                            list.extend((next..next + take).map(|p| (topic.clone(), p)));
                        }
                        next += take;
                    }
                }
            }
            Assignor::RoundRobin => {
                let mut all: Vec<&str> = members.iter().map(|m| m.member_id).collect();
                all.sort_unstable();
                let mut turn = 0usize;
                for (topic, &count) in topics {
                    let ids = subscribers(topic);
                    if ids.is_empty() {
                        continue;
                    }
                    for partition in 0..count {
                        // The next member in the overall order that subscribes to this topic.
                        for step in 0..all.len() {
                            let candidate = all[(turn + step) % all.len()];
                            if ids.contains(&candidate) {
                                if let Some(list) = out.get_mut(candidate) {
                                    list.push((topic.clone(), partition));
                                }
                                turn = (turn + step + 1) % all.len();
                                break;
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> BTreeMap<String, i32> {
        [("a".to_string(), 3), ("b".to_string(), 3)].into_iter().collect()
    }

    fn parts(list: &[(&str, i32)]) -> Vec<(String, i32)> {
        list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    #[test]
    fn range_splits_each_topic_into_contiguous_runs() {
        let both = vec!["a".to_string(), "b".to_string()];
        let members = [Subscriber { member_id: "m2", topics: &both }, Subscriber { member_id: "m1", topics: &both }];
        let got = Assignor::Range.assign(&members, &topics());
        assert_eq!(got["m1"], parts(&[("a", 0), ("a", 1), ("b", 0), ("b", 1)]));
        assert_eq!(got["m2"], parts(&[("a", 2), ("b", 2)]));

        let three = [
            Subscriber { member_id: "x", topics: &both },
            Subscriber { member_id: "y", topics: &both },
            Subscriber { member_id: "z", topics: &both },
        ];
        let got = Assignor::Range.assign(&three, &topics());
        assert_eq!(got["x"], parts(&[("a", 0), ("b", 0)]));
        assert_eq!(got["y"], parts(&[("a", 1), ("b", 1)]));
        assert_eq!(got["z"], parts(&[("a", 2), ("b", 2)]));
    }

    #[test]
    fn roundrobin_deals_all_partitions_in_turn() {
        let both = vec!["a".to_string(), "b".to_string()];
        let members = [Subscriber { member_id: "m1", topics: &both }, Subscriber { member_id: "m2", topics: &both }];
        let got = Assignor::RoundRobin.assign(&members, &topics());
        assert_eq!(got["m1"], parts(&[("a", 0), ("a", 2), ("b", 1)]));
        assert_eq!(got["m2"], parts(&[("a", 1), ("b", 0), ("b", 2)]));

        let three = [
            Subscriber { member_id: "m1", topics: &both },
            Subscriber { member_id: "m2", topics: &both },
            Subscriber { member_id: "m3", topics: &both },
        ];
        let got = Assignor::RoundRobin.assign(&three, &topics());
        assert_eq!(got["m1"], parts(&[("a", 0), ("b", 0)]));
        assert_eq!(got["m2"], parts(&[("a", 1), ("b", 1)]));
        assert_eq!(got["m3"], parts(&[("a", 2), ("b", 2)]));
    }

    #[test]
    fn members_only_get_topics_they_subscribe_to() {
        let only_a = vec!["a".to_string()];
        let only_b = vec!["b".to_string()];
        let members = [Subscriber { member_id: "m1", topics: &only_a }, Subscriber { member_id: "m2", topics: &only_b }];
        for assignor in [Assignor::Range, Assignor::RoundRobin] {
            let got = assignor.assign(&members, &topics());
            assert_eq!(got["m1"], parts(&[("a", 0), ("a", 1), ("a", 2)]), "{assignor:?}");
            assert_eq!(got["m2"], parts(&[("b", 0), ("b", 1), ("b", 2)]), "{assignor:?}");
        }
        assert_eq!(Assignor::named("uniform"), Some(Assignor::RoundRobin));
        assert_eq!(Assignor::named("sticky"), None);
    }
}
