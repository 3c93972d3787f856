//! Bounded, deterministic containers for runtime state: nothing a chatter can do grows memory
//! without limit.
//!
//! [`ExpiringMap`] holds entries with an expiry time (cooldowns, warnings, permits), at most
//! `cap` of them. Two ways in, for two kinds of state:
//!
//! - [`ExpiringMap::insert`] always takes the entry: when the map is full it first drops
//!   expired entries, then the eighth of the entries that expire soonest (counted in
//!   [`ExpiringMap::evicted`]). For state where losing an almost-expired entry is harmless
//!   (per-user cooldowns, link permits).
//! - [`ExpiringMap::try_insert`] never drops a live entry: when the map is full of live
//!   entries a new key is refused (counted in [`ExpiringMap::refused`]) and existing keys keep
//!   their entries. For state a flood of fresh accounts must not be able to wipe (filter
//!   warnings).
//!
//! Expired entries are dropped lazily; the map tracks its earliest expiry so that a full map
//! of live entries costs O(log n) per refused insert, not a scan. It is a `BTreeMap` so that
//! iteration (and therefore eviction) is deterministic.

use std::collections::BTreeMap;

/// A map whose entries expire at a given time (ms since the epoch) and whose size is capped.
#[derive(Debug, Clone)]
pub struct ExpiringMap<K: Ord, V> {
    entries: BTreeMap<K, (u64, V)>,
    cap: usize,
    /// No entry expires before this (a lower bound; exact after a purge).
    earliest: u64,
    evicted: u64,
    refused: u64,
}

impl<K: Ord + Clone, V> ExpiringMap<K, V> {
    /// An empty map holding at most `cap` entries (at least one).
    pub fn new(cap: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            cap: cap.max(1),
            earliest: u64::MAX,
            evicted: 0,
            refused: 0,
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
        self.put(key, value, expires_ms);
    }

    /// Inserts or replaces `key` unless that would need a live entry dropped: a new key in a
    /// map full of live entries is refused (and counted). Returns whether the entry is in.
    pub fn try_insert(&mut self, key: K, value: V, expires_ms: u64, now_ms: u64) -> bool {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.cap {
            self.purge(now_ms);
            if self.entries.len() >= self.cap {
                self.refused += 1;
                return false;
            }
        }
        self.put(key, value, expires_ms);
        true
    }

    fn put(&mut self, key: K, value: V, expires_ms: u64) {
        self.earliest = self.earliest.min(expires_ms);
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

    /// The most entries the map holds.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Live entries dropped to make room since the map was made.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// New keys refused by [`ExpiringMap::try_insert`] since the map was made.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Every entry with its expiry, in key order (expired ones not yet dropped included).
    pub fn iter(&self) -> impl Iterator<Item = (&K, u64, &V)> {
        self.entries.iter().map(|(k, (e, v))| (k, *e, v))
    }

    /// Drops expired entries, if any can have expired by `now_ms`.
    fn purge(&mut self, now_ms: u64) {
        if self.earliest > now_ms {
            return;
        }
        self.entries.retain(|_, (expires, _)| *expires > now_ms);
        self.earliest = self
            .entries
            .values()
            .map(|(e, _)| *e)
            .min()
            .unwrap_or(u64::MAX);
    }

    /// Drops expired entries; if still full, the eighth of the map that expires soonest, so
    /// the cost of a full map is amortised over many inserts.
    fn evict(&mut self, now_ms: u64) {
        self.purge(now_ms);
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
        self.evicted += batch as u64;
        // The earliest expiry is now at least the evicted batch's latest: a lower bound.
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
        assert_eq!(map.evicted(), 2);
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

    #[test]
    fn try_insert_refuses_new_keys_while_full_of_live_entries_and_keeps_the_old_ones() {
        let mut map = ExpiringMap::new(4);
        for i in 0..4u64 {
            assert!(map.try_insert(i, (), 1000 + i, 0));
        }
        for i in 10..10_000u64 {
            assert!(!map.try_insert(i, (), 5000, 1));
        }
        assert_eq!(map.refused(), 9990);
        assert_eq!(map.evicted(), 0);
        assert!((0..4).all(|i| map.contains(&i, 1)), "no live entry lost");
        assert!(map.try_insert(0, (), 9000, 2), "an existing key is renewed");
        assert!(map.contains(&0, 5000));
        // Once entries expire there is room again.
        assert!(map.try_insert(50, (), 9000, 1001));
        assert!(map.contains(&50, 1001) && !map.contains(&1, 1001));
        assert_eq!(map.len(), 4, "the expired entries were dropped for it");
    }
}
