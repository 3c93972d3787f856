//! Twitch delivers EventSub messages at least once, and a repeat carries the same message id:
//! [`Dedup`] remembers the last `capacity` ids (a set and their arrival order; the oldest is
//! forgotten first), shared by every session, shard and the webhook endpoint.

use std::collections::{HashSet, VecDeque};

#[derive(Debug)]
pub struct Dedup {
    seen: HashSet<Box<str>>,
    order: VecDeque<Box<str>>,
    capacity: usize,
}

impl Dedup {
    pub fn new(capacity: usize) -> Dedup {
        Dedup {
            seen: HashSet::with_capacity(capacity.min(1 << 16)),
            order: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity: capacity.max(1),
        }
    }

    /// True the first time `id` is seen (within the window), false for a repeat.
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        while self.order.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        let id: Box<str> = id.into();
        self.seen.insert(id.clone());
        self.order.push_back(id);
        true
    }

    /// Whether `id` was seen (without remembering it).
    pub fn contains(&self, id: &str) -> bool {
        self.seen.contains(id)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_caught_within_the_window_and_memory_stays_bounded() {
        let mut d = Dedup::new(3);
        assert!(d.first_time("a"));
        assert!(!d.first_time("a"));
        for id in ["b", "c", "d"] {
            assert!(d.first_time(id));
        }
        assert_eq!(d.len(), 3);
        assert!(d.first_time("a"), "a fell out of the window");
        assert!(!d.first_time("d"));
    }
}
