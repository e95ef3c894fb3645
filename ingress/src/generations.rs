//! A bounded cache that forgets by generations: the ingress's caches of verified tokens
//! (`auth`), current pseudonyms (`privacy`) and pseudonyms the personal-data store holds
//! (`personal_data`), each a saving of work a miss does again (a token's signature, an
//! HMAC, a RocksDB look-up).
//!
//! They used to be emptied when full: every active user was forgotten at once, and the
//! next request of each came back to the full check together. Here new entries go into
//! the young map; when it holds half the bound, the old map is dropped and the young one
//! becomes the old one, and a hit in the old map moves its entry back into the young one.
//! So at most `max` entries are kept, an entry used at least once every `max / 2`
//! insertions is never forgotten, and a turn of generations frees at most `max / 2`.

use crate::read_model::FastMap;
use std::borrow::Borrow;
use std::hash::Hash;

pub(crate) struct Generations<K, V> {
    young: FastMap<K, V>,
    old: FastMap<K, V>,
    /// Entries the young map takes before it turns old: half the bound.
    generation_max: usize,
}

impl<K: Hash + Eq, V> Generations<K, V> {
    /// A cache of at most `max` entries (at least 2).
    ///
    /// Both maps are made at their full size at once. Perf: a map grown by doubling moved
    /// every entry it held into a new table, in one insert, on an HTTP thread and under
    /// the cache's lock: 114,688 entries at once when the pseudonyms the personal-data
    /// store holds passed 114,688, milliseconds for every request that needed the cache
    /// meanwhile. A table made in full costs its control bytes now (a byte an entry); its
    /// entries' pages are touched as they fill.
    pub(crate) fn new(max: usize) -> Generations<K, V> {
        assert!(max >= 2, "two generations of at least one entry");
        let generation_max = max / 2;
        Generations {
            young: FastMap::with_capacity_and_hasher(generation_max, Default::default()),
            old: FastMap::with_capacity_and_hasher(generation_max, Default::default()),
            generation_max,
        }
    }

    /// `read` of `key`'s value, if kept (a hit in the old generation makes it young).
    pub(crate) fn get<Q, R>(&mut self, key: &Q, read: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(value) = self.young.get(key) {
            return Some(read(value));
        }
        let (key, value) = self.old.remove_entry(key)?;
        let read = read(&value);
        self.insert(key, value);
        Some(read)
    }

    /// `write` to `key`'s value, if kept (as [`Generations::get`]: an old one turns young).
    pub(crate) fn update<Q, R>(&mut self, key: &Q, write: impl FnOnce(&mut V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(value) = self.young.get_mut(key) {
            return Some(write(value));
        }
        let (key, mut value) = self.old.remove_entry(key)?;
        let written = write(&mut value);
        self.insert(key, value);
        Some(written)
    }

    /// Whether `key` is kept (as [`Generations::get`]: an old one turns young).
    pub(crate) fn contains<Q>(&mut self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key, |_| ()).is_some()
    }

    /// Keeps `value` for `key` (replacing what was kept for it).
    pub(crate) fn insert(&mut self, key: K, value: V) {
        self.old.remove(&key);
        if self.young.len() >= self.generation_max && !self.young.contains_key(&key) {
            // The young map turns old and the old one's table, emptied, becomes the young
            // one. Perf: a fresh map grew by doubling to `generation_max`, each step a new
            // table on pages never touched (the kernel zeroing them on the HTTP thread).
            std::mem::swap(&mut self.young, &mut self.old);
            self.young.clear();
        }
        self.young.insert(key, value);
        debug_assert!(self.len() <= 2 * self.generation_max);
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.young.remove(key);
        self.old.remove(key);
    }

    pub(crate) fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_maps_are_made_full_size_and_never_grow() {
        let mut cache: Generations<u32, u32> = Generations::new(1_000);
        let capacity = cache.young.capacity();
        assert!(capacity >= 500, "a generation fits at once: {capacity}");
        assert_eq!(cache.old.capacity(), capacity);
        for key in 0..10_000 {
            cache.insert(key, key);
            if key % 7 == 0 {
                cache.get(&(key / 2), |value| *value); // an old hit turns young
            }
            // (An entry removed from a map leaves a tombstone, which counts against its
            // capacity until the map is cleared: less, never more, than it was made.)
            assert!(
                cache.young.capacity() <= capacity && cache.old.capacity() <= capacity,
                "no table grows: {} and {} against {capacity} at insertion {key}",
                cache.young.capacity(),
                cache.old.capacity()
            );
        }
    }

    #[test]
    fn an_entry_used_every_half_bound_is_never_forgotten_and_the_bound_holds() {
        let mut cache: Generations<u32, u32> = Generations::new(10);
        cache.insert(0, 100);
        for key in 1..1_000 {
            cache.insert(key, key * 10);
            assert!(cache.len() <= 10, "at most the bound");
            if key % 5 == 0 {
                assert_eq!(
                    cache.get(&0, |value| *value),
                    Some(100),
                    "used every 5 insertions"
                );
            }
        }
        assert_eq!(cache.get(&999, |value| *value), Some(9_990));
        assert_eq!(cache.get(&900, |value| *value), None, "long gone");
    }

    #[test]
    fn an_old_hit_turns_young_a_replaced_value_is_the_only_one_and_a_removal_is_from_both() {
        let mut cache: Generations<&str, u32> = Generations::new(4);
        cache.insert("a", 1);
        cache.insert("b", 2);
        cache.insert("c", 3); // a and b turn old
        assert_eq!(cache.get("a", |value| *value), Some(1)); // young again
        cache.insert("d", 4); // young full (c, a): c and a turn old, b is dropped
        assert_eq!(cache.get("b", |value| *value), None);
        assert_eq!(cache.get("c", |value| *value), Some(3));
        cache.insert("a", 10);
        assert_eq!(cache.get("a", |value| *value), Some(10));
        assert!(cache.len() <= 4);
        cache.remove("a");
        assert_eq!(cache.get("a", |value| *value), None);
        // An update writes the kept value in place, an old one turning young; a key not
        // kept is left out.
        cache.insert("e", 5); // young: e; old: d, c
        assert_eq!(
            cache.update("c", |value| std::mem::replace(value, 30)),
            Some(3)
        );
        assert_eq!(cache.get("c", |value| *value), Some(30));
        assert!(
            cache.young.contains_key("c"),
            "an old entry updated turns young"
        );
        assert_eq!(cache.update("zz", |value| *value), None);
        assert_eq!(cache.get("zz", |value| *value), None);
    }
}
