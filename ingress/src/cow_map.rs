//! A hash map whose copy costs a pointer per shard: the read model's large tables keyed
//! by name (each user's bookings, the users whose notifications are kept); those keyed by
//! an engine id are `dense_map`s (arrays by id, the same copies).
//!
//! Why: the outcome follower hands a copy of the whole read model to its snapshot thread
//! (`follower_state`), and while it copies, no write is answered. With deep copies that
//! pause grew with the model: 0.6-0.8 s after 500,000 purchases (BENCHMARKS.md, "Read-model
//! snapshot pause"), every `snapshot_every_outcomes` or `snapshot_interval`. Here the
//! entries live in shards behind `Arc`s: a copy clones the shard pointers, and the first
//! write to a shard after a copy copies that shard alone (`Arc::make_mut`).
//!
//! Which shard a key is in ([`ShardKey`]): ids by range (`id >> 10`), so the entries a busy
//! model writes (the newest holds and bookings) share few shards and a copy's cost stays
//! in them; names by hash (a seeded hasher, as the model's other maps, since clients
//! choose names). Not `engine::chunked::ChunkedMap`: its look-up is a binary search over
//! the chunks' first keys, a cache miss per step at a million entries, on the follower's
//! path; here a look-up finds the shard by its place (shard numbers are dense) and probes
//! its hash map once.
//!
//! Encodes exactly like the `FastMap`s it replaces did (a map in key order, as a `BTreeMap`
//! encodes, so one model always encodes to the same bytes: snapshots are compared and
//! checksummed as bytes), and decodes what they wrote, so snapshots are unchanged.

use crate::read_model::FastMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

/// How many ids share a shard (`id >> ID_SHARD_BITS`).
const ID_SHARD_BITS: u32 = 10;
/// How many shards names are spread over.
const NAME_SHARDS: u64 = 1024;

/// The shard a key belongs to. `hasher` is the map's own (seeded per process).
pub(crate) trait ShardKey {
    fn shard(&self, hasher: &foldhash::fast::RandomState) -> u64;
}

macro_rules! id_shard {
    ($($id:ty),*) => {$(
        impl ShardKey for $id {
            fn shard(&self, _: &foldhash::fast::RandomState) -> u64 {
                u64::from(self.0) >> ID_SHARD_BITS
            }
        }
    )*};
}
id_shard!(
    engine::HoldId,
    engine::BookingId,
    engine::WaiterId,
    engine::DeskTicketId
);

impl ShardKey for str {
    fn shard(&self, hasher: &foldhash::fast::RandomState) -> u64 {
        hasher.hash_one(self) % NAME_SHARDS
    }
}

impl ShardKey for String {
    fn shard(&self, hasher: &foldhash::fast::RandomState) -> u64 {
        self.as_str().shard(hasher)
    }
}

impl ShardKey for Arc<str> {
    fn shard(&self, hasher: &foldhash::fast::RandomState) -> u64 {
        (**self).shard(hasher)
    }
}

/// See the module docs. Shard `first + i` is at place `i`, `None` while it holds nothing;
/// the first and last places hold shards. Perf: shard numbers are dense (ids by range, names
/// below [`NAME_SHARDS`]), so finding a shard is an index, not a hash look-up.
#[derive(Clone, Debug)]
pub(crate) struct CowMap<K, V> {
    shards: VecDeque<Option<Arc<FastMap<K, V>>>>,
    first: u64,
    /// Chooses a name's shard; cloned with the map, so a copy finds what the original does.
    hasher: foldhash::fast::RandomState,
    len: usize,
    /// The most entries a shard has held: a new shard is made this large at once. Perf:
    /// ids fill their shards one after the other to the same size, and a shard grown by
    /// doubling rehashed into fresh tables every time (a fifth of the follower's time went
    /// to zeroing their new pages).
    shard_len_max: usize,
}

impl<K, V> Default for CowMap<K, V> {
    fn default() -> Self {
        CowMap {
            shards: VecDeque::new(),
            first: 0,
            hasher: foldhash::fast::RandomState::default(),
            len: 0,
            shard_len_max: 0,
        }
    }
}

impl<K: Hash + Eq + ShardKey + Clone, V: Clone> CowMap<K, V> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The place of shard `shard` in `shards`, if it is within them.
    fn place(&self, shard: u64) -> Option<usize> {
        let place = usize::try_from(shard.checked_sub(self.first)?).ok()?;
        (place < self.shards.len()).then_some(place)
    }

    fn shard_of<Q: ShardKey + ?Sized>(&self, key: &Q) -> Option<&Arc<FastMap<K, V>>> {
        let place = self.place(key.shard(&self.hasher))?;
        self.shards[place].as_ref()
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ShardKey + ?Sized,
    {
        self.shard_of(key)?.get(key)
    }

    /// The value under `key`, to change: its shard is copied first if a copy of the map
    /// shares it. A key that is not there copies nothing.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ShardKey + ?Sized,
    {
        self.shard_to_change(key)?.1.get_mut(key)
    }

    /// The place and the shard of `key`, to change (copied first if a copy of the map shares
    /// it), when it may hold `key`; `None` when it surely does not, copying nothing.
    fn shard_to_change<Q>(&mut self, key: &Q) -> Option<(usize, &mut FastMap<K, V>)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ShardKey + ?Sized,
    {
        let place = self.place(key.shard(&self.hasher))?;
        let shard = self.shards[place].as_mut()?;
        // Perf: no probe here when no copy shares the shard (nearly always).
        if Arc::get_mut(shard).is_none() && !shard.contains_key(key) {
            return None;
        }
        Some((place, Arc::make_mut(shard)))
    }

    /// Inserts `value` under `key`, returning the value it replaces.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let index = key.shard(&self.hasher);
        if self.shards.is_empty() {
            self.first = index;
        }
        while index < self.first {
            self.shards.push_front(None);
            self.first -= 1;
        }
        let place = usize::try_from(index - self.first).expect("shards are dense");
        while self.shards.len() <= place {
            self.shards.push_back(None);
        }
        let capacity = self.shard_len_max;
        let shard = self.shards[place].get_or_insert_with(|| {
            Arc::new(FastMap::with_capacity_and_hasher(
                capacity,
                Default::default(),
            ))
        });
        let shard = Arc::make_mut(shard);
        let replaced = shard.insert(key, value);
        if replaced.is_none() {
            self.len += 1;
            self.shard_len_max = self.shard_len_max.max(shard.len());
        }
        replaced
    }

    /// Removes `key`, returning its value (and the shard, once empty).
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ShardKey + ?Sized,
    {
        let (place, shard) = self.shard_to_change(key)?;
        let removed = shard.remove(key)?;
        let emptied = shard.is_empty();
        self.len -= 1;
        if emptied {
            self.shards[place] = None;
            while matches!(self.shards.front(), Some(None)) {
                self.shards.pop_front();
                self.first += 1;
            }
            while matches!(self.shards.back(), Some(None)) {
                self.shards.pop_back();
            }
        }
        Some(removed)
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.shards.iter().flatten().flat_map(|shard| shard.iter())
    }

    /// Every value, to change (every shard a copy shares is copied).
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> + '_ {
        self.shards
            .iter_mut()
            .flatten()
            .flat_map(|shard| Arc::make_mut(shard).values_mut())
    }

    /// How many shards a copy clones (tests).
    #[cfg(test)]
    fn shard_count(&self) -> usize {
        self.shards.iter().flatten().count()
    }
}

/// Encodes like a `BTreeMap` of the entries (length, then the entries in key order).
impl<K, V> Serialize for CowMap<K, V>
where
    K: Serialize + Ord + Hash + Eq + ShardKey + Clone,
    V: Serialize + Clone,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.iter()
            .collect::<BTreeMap<&K, &V>>()
            .serialize(serializer)
    }
}

/// Decodes what a map of the entries wrote (this map, or the `FastMap` before it).
impl<'de, K, V> Deserialize<'de> for CowMap<K, V>
where
    K: Deserialize<'de> + Hash + Eq + ShardKey + Clone,
    V: Deserialize<'de> + Clone,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = FastMap::<K, V>::deserialize(deserializer)?;
        let mut map = CowMap::default();
        for (key, value) in entries {
            map.insert(key, value);
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::BookingId;

    #[test]
    fn a_copy_keeps_its_entries_while_the_original_changes() {
        let mut map: CowMap<BookingId, String> = CowMap::default();
        for id in 0..5_000 {
            map.insert(BookingId(id), format!("b{id}"));
        }
        assert_eq!(map.shard_count(), 5, "ids share a shard by range");
        let copy = map.clone();
        *map.get_mut(&BookingId(7)).unwrap() = "changed".into();
        assert_eq!(map.remove(&BookingId(4_999)), Some("b4999".into()));
        map.insert(BookingId(9_000), "new".into());
        assert_eq!(copy.get(&BookingId(7)).unwrap(), "b7");
        assert_eq!(copy.get(&BookingId(4_999)).unwrap(), "b4999");
        assert_eq!(copy.get(&BookingId(9_000)), None);
        assert_eq!((copy.len(), map.len()), (5_000, 5_000));
        assert_eq!(map.get(&BookingId(7)).unwrap(), "changed");
        // Only the shards written were copied: the others are still shared.
        let shared = map
            .shards
            .iter()
            .zip(&copy.shards)
            .filter(|(ours, theirs)| match (ours, theirs) {
                (Some(ours), Some(theirs)) => Arc::ptr_eq(ours, theirs),
                _ => false,
            })
            .count();
        assert_eq!(shared, 3, "shards 1, 2, 3 untouched");
    }

    #[test]
    fn shards_emptied_at_the_front_go_and_far_keys_are_simply_absent() {
        let mut map: CowMap<BookingId, u64> = CowMap::default();
        for id in 1_000..4_000 {
            map.insert(BookingId(id), id);
        }
        // Forgotten oldest first, as the ended holds are.
        for id in 1_000..2_100 {
            assert_eq!(map.remove(&BookingId(id)), Some(id));
        }
        assert_eq!((map.first, map.shards.len(), map.len()), (2, 2, 1_900));
        assert_eq!(map.get(&BookingId(2_099)), None);
        assert_eq!(map.get(&BookingId(2_100)), Some(&2_100));
        assert_eq!(map.get(&BookingId(u64::MAX)), None);
        assert_eq!(map.get_mut(&BookingId(7)), None);
        assert_eq!(map.remove(&BookingId(1 << 40)), None);
        // An older id than the first shard's still goes in (in front).
        map.insert(BookingId(5), 5);
        assert_eq!((map.first, map.get(&BookingId(5))), (0, Some(&5)));
        assert_eq!(map.iter().count(), 1_901);
    }

    #[test]
    fn an_emptied_shard_is_dropped_and_missing_keys_copy_nothing() {
        let mut map: CowMap<String, u32> = CowMap::default();
        map.insert("alice".into(), 1);
        let copy = map.clone();
        assert_eq!(map.get_mut("bob"), None);
        assert_eq!(map.remove("bob"), None);
        let only = |map: &CowMap<String, u32>| map.shards.iter().flatten().next().unwrap().clone();
        assert!(Arc::ptr_eq(&only(&map), &only(&copy)));
        assert_eq!(map.remove("alice"), Some(1));
        assert_eq!((map.len(), map.shard_count()), (0, 0));
        assert_eq!(copy.get("alice"), Some(&1));
    }

    #[test]
    fn it_encodes_its_entries_in_key_order_as_the_map_it_replaces_and_decodes_that() {
        /// What the read model's maps were written as: the hash map's entries in key order.
        #[derive(Serialize)]
        struct Before {
            map: BTreeMap<BookingId, String>,
        }
        #[derive(Serialize, Deserialize)]
        struct After {
            map: CowMap<BookingId, String>,
        }
        let entries: Vec<(BookingId, String)> = [3_000u64, 5, 1_024, 1, 77_777]
            .into_iter()
            .map(|id| (BookingId(id), format!("b{id}")))
            .collect();
        let before = Before {
            map: entries.iter().cloned().collect(),
        };
        let mut after = After {
            map: CowMap::default(),
        };
        for (key, value) in entries {
            after.map.insert(key, value);
        }
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&before, config).unwrap();
        assert_eq!(
            bincode::serde::encode_to_vec(&after, config).unwrap(),
            bytes
        );
        let (decoded, _): (After, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(decoded.map.len(), 5);
        assert_eq!(decoded.map.get(&BookingId(77_777)).unwrap(), "b77777");
        assert_eq!(
            bincode::serde::encode_to_vec(&decoded, config).unwrap(),
            bytes
        );
    }
}
