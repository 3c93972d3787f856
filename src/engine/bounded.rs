//! Bounded, deterministic containers for runtime state: nothing a chatter can do grows memory
//! without limit.
//!
//! [`ExpiringMap`] holds entries with an expiry time (cooldowns, warnings, permits). When it is
//! full it first drops expired entries, then the eighth of the entries that expire soonest. It is a `BTreeMap`
//! so that iteration (and therefore eviction) is deterministic.

use std::collections::BTreeMap;

/// A map whose entries expire at a given time (ms since the epoch) and whose size is capped.
#[derive(Debug, Clone)]
pub struct ExpiringMap<K: Ord, V> {
    entries: BTreeMap<K, (u64, V)>,
    cap: usize,
}

impl<K: Ord + Clone, V> ExpiringMap<K, V> {
    /// An empty map holding at most `cap` entries (at least one).
    pub fn new(cap: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            cap: cap.max(1),
        }
    }

    /// The live value for `key` at time `now_ms`, if any.
    pub fn get(&self, key: &K, now_ms: u64) -> Option<&V> {
        match self.entries.get(key) {
            Some((expires, value)) if *expires > now_ms => Some(value),
            _ => None,
        }
    }

    /// Whether `key` has a live entry at `now_ms`.
    pub fn contains(&self, key: &K, now_ms: u64) -> bool {
        self.get(key, now_ms).is_some()
    }

    /// Inserts or replaces `key`, live until `expires_ms`, evicting if the map is full.
    pub fn insert(&mut self, key: K, value: V, expires_ms: u64, now_ms: u64) {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.cap {
            self.evict(now_ms);
        }
        self.entries.insert(key, (expires_ms, value));
    }

    /// Removes `key` and returns its value if it was live.
    pub fn remove(&mut self, key: &K, now_ms: u64) -> Option<V> {
        match self.entries.remove(key) {
            Some((expires, value)) if expires > now_ms => Some(value),
            _ => None,
        }
    }

    /// Removes every entry whose key `doomed` picks (live or not); returns how many went.
    pub fn remove_where(&mut self, mut doomed: impl FnMut(&K) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|key, _| !doomed(key));
        before - self.entries.len()
    }

    /// Number of entries held (live or not yet evicted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map holds no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops expired entries; if still full, the eighth of the map that expires soonest, so
    /// the cost of a full map is amortised over many inserts.
    fn evict(&mut self, now_ms: u64) {
        self.entries.retain(|_, (expires, _)| *expires > now_ms);
        if self.entries.len() < self.cap {
            return;
        }
        let batch = (self.cap / 8).max(1);
        let mut by_expiry: Vec<(u64, K)> = self
            .entries
            .iter()
            .map(|(key, (expires, _))| (*expires, key.clone()))
            .collect();
        by_expiry.select_nth_unstable_by_key(batch - 1, |(expires, _)| *expires);
        for (_, key) in by_expiry.into_iter().take(batch) {
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_evicts_a_batch_of_the_soonest_expiring() {
        let mut map = ExpiringMap::new(16);
        for i in 0..16u64 {
            map.insert(i, (), 1000 + i, 0);
        }
        map.insert(99, (), 5000, 1);
        assert_eq!(map.len(), 15, "two soonest dropped, one added");
        assert!(!map.contains(&0, 1) && !map.contains(&1, 1) && map.contains(&2, 1));
        assert!(map.contains(&99, 1));
    }

    #[test]
    fn entries_expire_and_the_cap_evicts_expired_then_soonest() {
        let mut map = ExpiringMap::new(2);
        map.insert("a", 1, 100, 0);
        map.insert("b", 2, 200, 0);
        assert_eq!(map.get(&"a", 50), Some(&1));
        assert_eq!(map.get(&"a", 100), None);
        map.insert("c", 3, 300, 10);
        assert_eq!(map.len(), 2);
        assert!(!map.contains(&"a", 10), "soonest-expiring entry evicted");
        map.insert("d", 4, 400, 250);
        assert_eq!(map.len(), 2);
        assert!(map.contains(&"c", 250) && map.contains(&"d", 250));
        assert_eq!(map.remove(&"c", 250), Some(3));
        assert_eq!(map.remove(&"d", 500), None);
        assert!(map.is_empty());
    }
}
