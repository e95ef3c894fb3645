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
//! Which shard a key is in: by the name's hash (a seeded hasher, as the model's other maps,
//! since clients choose names), bits 32 and up; the shard's table files the key under the
//! same hash (its low bits choose a bucket, its top seven the tag), so a look-up hashes
//! the name once. Perf: the shards were `HashMap`s, which hash again, and a new buyer's
//! notification looked its name up four or five times (the table, the least recently told
//! user's record, the insert), two hashes of a 43-byte pseudonym each. Not
//! `engine::chunked::ChunkedMap`: its look-up is a binary search over the chunks' first
//! keys, a cache miss per step at a million entries, on the follower's path; here a
//! look-up finds the shard by its place (shard numbers are dense) and probes its table
//! once.
//!
//! Encodes exactly like the `FastMap`s it replaces did (a map in key order, as a `BTreeMap`
//! encodes, so one model always encodes to the same bytes: snapshots are compared and
//! checksummed as bytes), and decodes what they wrote, so snapshots are unchanged.

use crate::read_model::FastMap;
use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, Hash};
// Perf: `triomphe`'s `Arc`, as the engine's chunks: `make_mut` on a shard no copy shares (every
// write between snapshots) checks the count with a load, where `std`'s takes an atomic
// compare-and-swap, a full barrier on x86 that waits for the stores before it.
use triomphe::Arc;

/// How many shards names are spread over.
pub(crate) const NAME_SHARDS: u64 = 1024;

/// The shard of a key whose hash is `hash`: bits the shard's own table does not use for
/// a bucket (the low ones) or a tag (the top seven).
#[inline]
fn shard_number(hash: u64) -> u64 {
    (hash >> 32) % NAME_SHARDS
}

/// A shard's entries, filed under the map's hash of their key.
type Shard<K, V> = HashTable<(K, V)>;

/// See the module docs. Shard `first + i` is at place `i`, `None` while it holds nothing;
/// the first and last places hold shards. Perf: shard numbers are dense (below
/// [`NAME_SHARDS`]), so finding a shard is an index, not a hash look-up.
#[derive(Clone, Debug)]
pub(crate) struct CowMap<K, V> {
    shards: VecDeque<Option<Arc<Shard<K, V>>>>,
    first: u64,
    /// Hashes the keys (for their shard and within it); cloned with the map, so a copy
    /// finds what the original does.
    hasher: foldhash::fast::RandomState,
    /// The most entries a shard has held: a new shard is made this large at once. Perf:
    /// a shard grown by doubling rehashed into fresh tables every time (a fifth of the
    /// follower's time went to zeroing their new pages).
    shard_len_max: usize,
}

impl<K, V> Default for CowMap<K, V> {
    fn default() -> Self {
        CowMap {
            shards: VecDeque::new(),
            first: 0,
            hasher: foldhash::fast::RandomState::default(),
            shard_len_max: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> CowMap<K, V> {
    /// (A count over the shards: for tests.)
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().flatten().map(|shard| shard.len()).sum()
    }

    /// The place of shard `shard` in `shards`, if it is within them.
    fn place(&self, shard: u64) -> Option<usize> {
        let place = usize::try_from(shard.checked_sub(self.first)?).ok()?;
        (place < self.shards.len()).then_some(place)
    }

    /// The key's hash: the one hash a look-up makes (`K: Borrow<Q>` hashes alike).
    #[inline]
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let place = self.place(shard_number(hash))?;
        let (_, value) = self.shards[place]
            .as_ref()?
            .find(hash, |(stored, _)| stored.borrow() == key)?;
        Some(value)
    }

    /// The place of shard `shard`, made (empty places around it too) if it is not there.
    fn place_to_insert(&mut self, shard: u64) -> usize {
        if self.shards.is_empty() {
            self.first = shard;
        }
        while shard < self.first {
            self.shards.push_front(None);
            self.first -= 1;
        }
        let place = usize::try_from(shard - self.first).expect("shards are dense");
        while self.shards.len() <= place {
            self.shards.push_back(None);
        }
        place
    }

    /// Inserts `value` under `key`, returning the value it replaces. (Decoding and tests:
    /// the follower's changes go through `get_or_insert_with`.)
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let mut new = Some(value);
        let slot = self.get_or_insert_with(&key, || new.take().expect("made once"));
        new.map(|value| std::mem::replace(slot, value))
    }

    /// The value under `key`, to change; `make` makes it (under a clone of `key`) when
    /// there is none. One hash and one probe, where `get_mut` then `insert` made two.
    pub(crate) fn get_or_insert_with(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V {
        let hash = self.hash(key);
        let place = self.place_to_insert(shard_number(hash));
        let (entry, len) = shard_entry(
            &mut self.shards[place],
            self.shard_len_max,
            &self.hasher,
            key,
            hash,
        );
        let (_, value) = match entry {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                self.shard_len_max = self.shard_len_max.max(len + 1);
                entry.insert((key.clone(), make())).into_mut()
            }
        };
        value
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.shards
            .iter()
            .flatten()
            .flat_map(|shard| shard.iter().map(|(key, value)| (key, value)))
    }

    /// Keeps the entries of shard `shard` (below [`NAME_SHARDS`]) that `keep` says to keep (it may change them);
    /// returns how many the shard had (0 when there is none). A step of an incremental
    /// sweep: the pause is one shard's entries, not the map's. The shard is copied first
    /// if a copy of the map shares it.
    pub(crate) fn retain_in_shard(
        &mut self,
        shard: u64,
        mut keep: impl FnMut(&K, &mut V) -> bool,
    ) -> usize {
        let Some(place) = self.place(shard) else {
            return 0;
        };
        let Some(stored) = self.shards[place].as_mut() else {
            return 0;
        };
        let table = Arc::make_mut(stored);
        let visited = table.len();
        table.retain(|(key, value)| keep(key, value));
        if table.is_empty() {
            self.shards[place] = None;
            while matches!(self.shards.front(), Some(None)) {
                self.shards.pop_front();
                self.first += 1;
            }
            while matches!(self.shards.back(), Some(None)) {
                self.shards.pop_back();
            }
        }
        visited
    }

    /// How many shards a copy clones (tests).
    #[cfg(test)]
    fn shard_count(&self) -> usize {
        self.shards.iter().flatten().count()
    }
}

/// The entry of `key` (whose hash is `hash`) in the shard at `place`, to change: the
/// shard made (with room for `capacity` entries) if there is none, copied first if a copy
/// of the map shares it; and how many entries the shard had.
fn shard_entry<'a, K: Eq + Hash + Clone, V: Clone>(
    place: &'a mut Option<Arc<Shard<K, V>>>,
    capacity: usize,
    hasher: &foldhash::fast::RandomState,
    key: &K,
    hash: u64,
) -> (Entry<'a, (K, V)>, usize) {
    let shard =
        Arc::make_mut(place.get_or_insert_with(|| Arc::new(HashTable::with_capacity(capacity))));
    let len = shard.len();
    let entry = shard.entry(
        hash,
        |(stored, _)| stored == key,
        |(stored, _)| hasher.hash_one(stored),
    );
    (entry, len)
}

/// Encodes like a `BTreeMap` of the entries (length, then the entries in key order).
impl<K, V> Serialize for CowMap<K, V>
where
    K: Serialize + Ord + Hash + Eq + Clone,
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
    K: Deserialize<'de> + Hash + Eq + Clone,
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

/// Tests of the read model's maps: `map`, holding `entries`, encodes as a `BTreeMap` of
/// them (what the model's maps were written as), and what that wrote decodes into a map
/// that encodes the same bytes again; returns that map.
#[cfg(test)]
pub(crate) fn check_encodes_as_btree_map<K, V, M>(entries: &[(K, V)], map: &M) -> M
where
    K: Serialize + Ord + Clone,
    V: Serialize + Clone,
    M: Serialize + serde::de::DeserializeOwned,
{
    let config = bincode::config::standard();
    let before: BTreeMap<K, V> = entries.iter().cloned().collect();
    let bytes = bincode::serde::encode_to_vec(&before, config).unwrap();
    assert_eq!(bincode::serde::encode_to_vec(map, config).unwrap(), bytes);
    let (decoded, _): (M, usize) = bincode::serde::decode_from_slice(&bytes, config).unwrap();
    assert_eq!(
        bincode::serde::encode_to_vec(&decoded, config).unwrap(),
        bytes
    );
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shard's entries kept as `keep` says; the entries visited.
    fn retain_all(
        map: &mut CowMap<String, u32>,
        mut keep: impl FnMut(&String, &mut u32) -> bool,
    ) -> usize {
        (0..NAME_SHARDS)
            .map(|shard| map.retain_in_shard(shard, &mut keep))
            .sum()
    }

    #[test]
    fn a_shard_s_entries_are_kept_changed_or_dropped_emptied_shards_go_and_a_copy_keeps_its_own() {
        let mut map: CowMap<String, u32> = CowMap::default();
        map.insert("alice".into(), 1);
        map.insert("bob".into(), 2);
        let copy = map.clone();
        let visited = retain_all(&mut map, |name, value| {
            *value += 10;
            name == "bob"
        });
        assert_eq!(visited, 2);
        assert_eq!((map.get("alice"), map.get("bob")), (None, Some(&12)));
        assert_eq!((copy.get("alice"), copy.get("bob")), (Some(&1), Some(&2)));
        assert_eq!(retain_all(&mut map, |_, _| false), 1);
        assert_eq!((map.len(), map.shard_count()), (0, 0));
        assert_eq!(copy.len(), 2);
        assert_eq!(map.retain_in_shard(NAME_SHARDS + 1, |_, _| true), 0);
    }

    #[test]
    fn it_encodes_its_entries_in_key_order_as_the_map_it_replaces_and_decodes_that() {
        let entries: Vec<(String, u64)> = ["mia", "ana", "zoe", "bo", "lea"]
            .into_iter()
            .zip(1..)
            .map(|(name, number)| (name.to_string(), number))
            .collect();
        let mut map = CowMap::default();
        for (key, value) in entries.iter().cloned() {
            map.insert(key, value);
        }
        let decoded = check_encodes_as_btree_map(&entries, &map);
        assert_eq!(decoded.len(), 5);
        assert_eq!(decoded.get("zoe"), Some(&3));
    }

    #[test]
    fn get_or_insert_with_makes_a_value_once_and_copies_a_shared_shard_first() {
        let mut map: CowMap<String, Vec<u32>> = CowMap::default();
        let ana = "ana".to_string();
        map.get_or_insert_with(&ana, Vec::new).push(1);
        let copy = map.clone();
        // Found, not made again; the shard the copy shares is copied before the change.
        map.get_or_insert_with(&ana, || unreachable!("ana has a value"))
            .push(2);
        map.get_or_insert_with(&"bo".to_string(), || vec![7])
            .push(8);
        assert_eq!(map.get("ana"), Some(&vec![1, 2]));
        assert_eq!(map.get("bo"), Some(&vec![7, 8]));
        assert_eq!(copy.get("ana"), Some(&vec![1]));
        assert_eq!(copy.get("bo"), None);
        assert_eq!((map.len(), copy.len()), (2, 1));
        // Many names over many shards, each found again under the one hash.
        for n in 0..5_000 {
            map.get_or_insert_with(&format!("user-{n}"), || vec![n]);
        }
        for n in 0..5_000 {
            assert_eq!(map.get(format!("user-{n}").as_str()), Some(&vec![n]));
        }
        assert_eq!(map.len(), 5_002);
    }

    /// A sweep shard by shard over many shards drops what it is told to and nothing else.
    #[test]
    fn a_sweep_shard_by_shard_visits_every_entry_once() {
        let mut map: CowMap<String, u32> = CowMap::default();
        for n in 0..5_000u32 {
            map.insert(format!("user-{n}"), n);
        }
        map.insert("ana".into(), 1);
        assert!(map.shard_count() > 900, "{} shards", map.shard_count());
        assert_eq!(
            retain_all(&mut map, |name, _| !name.starts_with("user-")),
            5_001
        );
        assert_eq!((map.len(), map.shard_count()), (1, 1));
        assert_eq!(map.get("ana"), Some(&1));
    }
}
