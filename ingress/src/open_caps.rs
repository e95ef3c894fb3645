//! Caps on requests that stay open: long-polls (a waitlist entry's, a user's
//! notifications; per user and per client address) and seat-map streams (per client
//! address; a stream carries no token). A rate limit counts requests as they come; a
//! long-poll or a stream costs for as long as it stays open, so it is counted while open,
//! and the count is released when it ends.
//!
//! The map holds only keys with something open, so its size is bounded by the open
//! requests themselves.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Open requests per key, at most `max` each.
pub(crate) struct OpenCounts<K: Hash + Eq + Clone> {
    counts: Mutex<HashMap<K, usize>>,
    max: usize,
}

/// One open request's place under the cap; dropping it frees the place.
pub(crate) struct OpenPlace<K: Hash + Eq + Clone> {
    counts: Arc<OpenCounts<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> OpenCounts<K> {
    pub(crate) fn new(max: usize) -> OpenCounts<K> {
        assert!(max > 0);
        OpenCounts {
            counts: Mutex::new(HashMap::new()),
            max,
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, usize>> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A place for `key`, or `None` when `max` are open for it.
    pub(crate) fn open(self: &Arc<Self>, key: K) -> Option<OpenPlace<K>> {
        let mut counts = self.lock();
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(OpenPlace {
            counts: Arc::clone(self),
            key,
        })
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.lock().len()
    }
}

impl<K: Hash + Eq + Clone> Drop for OpenPlace<K> {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_capped_per_key_and_freed_on_drop() {
        let counts = Arc::new(OpenCounts::new(2));
        let first = counts.open("a").unwrap();
        let second = counts.open("a").unwrap();
        assert!(counts.open("a").is_none(), "over the cap");
        let other = counts.open("b").unwrap();
        drop(first);
        let third = counts.open("a").unwrap();
        drop((second, third, other));
        assert_eq!(counts.keys(), 0, "nothing open, nothing kept");
    }
}
