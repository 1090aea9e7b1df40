//! A set of offsets kept as sorted, disjoint, half-open ranges: acks mostly arrive in runs, so
//! a consumer that acks a million messages out of order above one stuck message still stores
//! a handful of ranges.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OffsetRanges(Vec<(i64, i64)>);

impl OffsetRanges {
    pub fn contains(&self, offset: i64) -> bool {
        let i = self.0.partition_point(|&(_, end)| end <= offset);
        self.0.get(i).is_some_and(|&(start, _)| start <= offset)
    }

    pub fn insert(&mut self, offset: i64) {
        if self.contains(offset) {
            return;
        }
        // The first range ending at or after `offset`: it may start right after it.
        let i = self.0.partition_point(|&(_, end)| end < offset);
        let joins_left = self.0.get(i).is_some_and(|&(_, end)| end == offset);
        let right = if joins_left { i + 1 } else { i };
        let joins_right = self.0.get(right).is_some_and(|&(start, _)| start == offset + 1);
        match (joins_left, joins_right) {
            (true, true) => {
                let end = self.0[right].1;
                self.0[i].1 = end;
                self.0.remove(right);
            }
            (true, false) => self.0[i].1 = offset + 1,
            (false, true) => self.0[right].0 = offset,
            (false, false) => self.0.insert(i, (offset, offset + 1)),
        }
    }

    /// Removes the run starting exactly at `floor` and returns where it ends, or `floor` when
    /// none starts there; ranges wholly below `floor` are dropped too.
    pub fn take_run_from(&mut self, floor: i64) -> i64 {
        self.0.retain(|&(_, end)| end > floor);
        match self.0.first() {
            Some(&(start, end)) if start <= floor => {
                self.0.remove(0);
                end
            }
            _ => floor,
        }
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// How many offsets the set holds.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|(s, e)| (e - s) as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_merge_neighbours() {
        let mut r = OffsetRanges::default();
        for o in [5, 7, 6, 1, 2, 10] {
            r.insert(o);
        }
        assert_eq!(r.0, vec![(1, 3), (5, 8), (10, 11)]);
        assert!(r.contains(6) && r.contains(10) && !r.contains(3) && !r.contains(8) && !r.contains(0));
        r.insert(9);
        r.insert(8);
        assert_eq!(r.0, vec![(1, 3), (5, 11)]);
        assert_eq!(r.len(), 8);
    }

    #[test]
    fn a_run_at_the_floor_is_taken() {
        let mut r = OffsetRanges::default();
        for o in [3, 4, 5, 9] {
            r.insert(o);
        }
        assert_eq!(r.take_run_from(2), 2);
        assert_eq!(r.take_run_from(3), 6);
        assert_eq!(r.0, vec![(9, 10)]);
        assert_eq!(r.take_run_from(12), 12);
        assert!(r.0.is_empty());
    }
}
