//! A map keyed by an engine id, in blocks of consecutive ids behind `Arc`s: the read
//! model's holds, bookings, waitlist entries and desk tickets.
//!
//! Why not [`crate::cow_map::CowMap`] (a hash map per shard of 1,024 ids): the engine gives
//! these ids out in sequence, so a block of them is an array, not a hash table. A look-up
//! is an index (no hash, no probe: the follower's confirm and the handlers' "whose hold is
//! this" each found a hold by probing a table that misses the processor's caches), and a
//! block takes the entries' size, where a hash table sized for 1,024 entries took 2,048
//! buckets of them (its load factor), half of them pages the kernel zeroed and nobody
//! used. Copies cost what `CowMap`'s do: a pointer per block, and the first write to a
//! block after a copy copies that block alone (`Arc::make_mut`).
//!
//! With several engine shards, shard `k` of `n` gives out the ids `k, k + n, k + 2n, ...`
//! (`engine::ShardPlace`): the map spaces its slots by the model's `stride` (`n`,
//! [`DenseMap::set_stride`]) so each block stays full. Each slot keeps its key, so a
//! stride that does not fit the ids is seen at the first clash, and the map lays itself
//! out again with one that fits them all (the common divisor of the two): sparser, never
//! wrong.
//!
//! Encodes like the maps before it (a map in key order, as a `BTreeMap` encodes: the
//! blocks are already in key order), and decodes what they wrote, so snapshots are
//! unchanged.

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, VecDeque};
// Perf: `triomphe`'s `Arc`, as the engine's chunks: `make_mut` on a block no copy shares (every
// write between snapshots) checks the count with a load, where `std`'s takes an atomic
// compare-and-swap, a full barrier on x86 that waits for the stores before it.
use triomphe::Arc;

/// How many slots share a block (`local >> BLOCK_BITS`).
const BLOCK_BITS: u32 = 10;
const BLOCK_SLOTS: usize = 1 << BLOCK_BITS;

/// An id a [`DenseMap`] is keyed by: its number.
pub(crate) trait DenseKey: Copy + Eq + Ord {
    fn number(self) -> u64;
}

macro_rules! dense_key {
    ($($id:ty),*) => {$(
        impl DenseKey for $id {
            #[inline]
            fn number(self) -> u64 {
                u64::from(self.0)
            }
        }
    )*};
}
dense_key!(
    engine::HoldId,
    engine::BookingId,
    engine::WaiterId,
    engine::DeskTicketId
);

#[derive(Debug)]
struct Block<K, V> {
    /// Up to the highest slot ever written (at most [`BLOCK_SLOTS`]), made at that
    /// capacity at once so it never moves.
    slots: Vec<Option<(K, V)>>,
    len: usize,
}

/// A copy (the first write to a block a snapshot shares) keeps the whole capacity: the
/// newest block goes on filling after it, and a `Vec`'s own clone would grow it again by
/// doubling.
impl<K: Clone, V: Clone> Clone for Block<K, V> {
    fn clone(&self) -> Self {
        let mut slots = Vec::with_capacity(BLOCK_SLOTS);
        slots.extend(self.slots.iter().cloned());
        Block {
            slots,
            len: self.len,
        }
    }
}

/// See the module docs. Block `first + i` is at place `i`, `None` while it holds nothing;
/// the first and last places hold blocks.
#[derive(Clone, Debug)]
pub(crate) struct DenseMap<K, V> {
    blocks: VecDeque<Option<Arc<Block<K, V>>>>,
    first: u64,
    len: usize,
    /// The spacing of the ids (the engine's shard count), at least 1.
    stride: u64,
}

impl<K, V> Default for DenseMap<K, V> {
    fn default() -> Self {
        DenseMap {
            blocks: VecDeque::new(),
            first: 0,
            len: 0,
            stride: 1,
        }
    }
}

impl<K: DenseKey, V: Clone> DenseMap<K, V> {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Spaces the slots `stride` ids apart (the engine's shard count: see the module
    /// docs), laying the entries out again if it changes.
    pub(crate) fn set_stride(&mut self, stride: u64) {
        assert!(stride >= 1, "a stride of at least 1");
        if stride != self.stride {
            self.relayout(stride);
        }
    }

    fn relayout(&mut self, stride: u64) {
        let entries: Vec<(K, V)> = std::mem::take(self).into_entries().collect();
        self.stride = stride;
        for (key, value) in entries {
            self.insert(key, value);
        }
    }

    /// The block number and slot of `key`.
    #[inline]
    fn locate(&self, key: K) -> (u64, usize) {
        let local = key.number() / self.stride;
        (local >> BLOCK_BITS, (local as usize) & (BLOCK_SLOTS - 1))
    }

    /// The place of block `block` in `blocks`, if it is within them.
    #[inline]
    fn place(&self, block: u64) -> Option<usize> {
        let place = usize::try_from(block.checked_sub(self.first)?).ok()?;
        (place < self.blocks.len()).then_some(place)
    }

    /// The place of `key`'s block and its slot, if the key is there.
    fn find(&self, key: &K) -> Option<(usize, usize)> {
        let (block, slot) = self.locate(*key);
        let place = self.place(block)?;
        match self.blocks[place].as_ref()?.slots.get(slot)? {
            Some((stored, _)) if stored == key => Some((place, slot)),
            _ => None,
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        let (place, slot) = self.find(key)?;
        let block = self.blocks[place].as_ref().expect("found");
        block.slots[slot].as_ref().map(|(_, value)| value)
    }

    /// The value under `key`, to change: its block is copied first if a copy of the map
    /// shares it. A key that is not there copies nothing.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let (place, slot) = self.find(key)?;
        let block = Arc::make_mut(self.blocks[place].as_mut().expect("found"));
        block.slots[slot].as_mut().map(|(_, value)| value)
    }

    /// Inserts `value` under `key`, returning the value it replaces.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let (index, slot) = self.locate(key);
        if self.blocks.is_empty() {
            self.first = index;
        }
        while index < self.first {
            self.blocks.push_front(None);
            self.first -= 1;
        }
        let place = usize::try_from(index - self.first).expect("blocks are dense");
        while self.blocks.len() <= place {
            self.blocks.push_back(None);
        }
        let block = Arc::make_mut(self.blocks[place].get_or_insert_with(|| {
            Arc::new(Block {
                slots: Vec::with_capacity(BLOCK_SLOTS),
                len: 0,
            })
        }));
        if block.slots.len() <= slot {
            block.slots.resize_with(slot + 1, || None);
        }
        if let Some((stored, _)) = &block.slots[slot] {
            if *stored != key {
                // Two keys in one slot: the stride does not fit these ids (one guessed
                // from a snapshot's ids, or a bug in what set it). Every key so far and
                // this one are alike modulo the common divisor of the stride and their
                // difference, so that stride fits them all.
                let stride = gcd(self.stride, stored.number().abs_diff(key.number()));
                self.relayout(stride);
                return self.insert(key, value);
            }
        }
        match &mut block.slots[slot] {
            Some((_, stored)) => Some(std::mem::replace(stored, value)),
            empty @ None => {
                *empty = Some((key, value));
                block.len += 1;
                self.len += 1;
                None
            }
        }
    }

    /// Removes `key`, returning its value (and the block, once empty).
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let (place, slot) = self.find(key)?;
        let block = Arc::make_mut(self.blocks[place].as_mut().expect("found"));
        let (_, removed) = block.slots[slot].take().expect("found");
        block.len -= 1;
        self.len -= 1;
        if block.len == 0 {
            self.blocks[place] = None;
            while matches!(self.blocks.front(), Some(None)) {
                self.blocks.pop_front();
                self.first += 1;
            }
            while matches!(self.blocks.back(), Some(None)) {
                self.blocks.pop_back();
            }
        }
        Some(removed)
    }

    /// Every entry, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.blocks.iter().flatten().flat_map(|block| {
            block
                .slots
                .iter()
                .flatten()
                .map(|(key, value)| (key, value))
        })
    }

    fn into_entries(self) -> impl Iterator<Item = (K, V)> {
        self.blocks.into_iter().flatten().flat_map(|block| {
            Arc::try_unwrap(block)
                .unwrap_or_else(|shared| (*shared).clone())
                .slots
                .into_iter()
                .flatten()
        })
    }

    /// How many blocks a copy clones (tests).
    #[cfg(test)]
    fn block_count(&self) -> usize {
        self.blocks.iter().flatten().count()
    }
}

/// Encodes like a `BTreeMap` of the entries (length, then the entries in key order).
impl<K, V> Serialize for DenseMap<K, V>
where
    K: Serialize + DenseKey,
    V: Serialize + Clone,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (key, value) in self.iter() {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// Decodes what a map of the entries wrote (this map, or the hash maps before it), spaced
/// by the widest stride the ids allow (their greatest common difference): the model's
/// owner sets the real one ([`DenseMap::set_stride`]), usually the same.
impl<'de, K, V> Deserialize<'de> for DenseMap<K, V>
where
    K: Deserialize<'de> + DenseKey,
    V: Deserialize<'de> + Clone,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = BTreeMap::<K, V>::deserialize(deserializer)?;
        let mut keys = entries.keys().map(|key| key.number());
        let stride = match keys.next() {
            Some(lowest) => keys.fold(0, |common, number| gcd(common, number - lowest)),
            None => 0,
        };
        let mut map = DenseMap {
            stride: stride.max(1),
            ..DenseMap::default()
        };
        for (key, value) in entries {
            map.insert(key, value);
        }
        Ok(map)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{BookingId, HoldId};

    #[test]
    fn a_copy_keeps_its_entries_while_the_original_changes() {
        let mut map: DenseMap<BookingId, String> = DenseMap::default();
        for id in 0..5_000 {
            map.insert(BookingId(id), format!("b{id}"));
        }
        assert_eq!(map.block_count(), 5, "ids share a block by range");
        let copy = map.clone();
        *map.get_mut(&BookingId(7)).unwrap() = "changed".into();
        assert_eq!(map.remove(&BookingId(4_999)), Some("b4999".into()));
        assert_eq!(map.insert(BookingId(9_000), "new".into()), None);
        assert_eq!(
            map.insert(BookingId(9_000), "newer".into()),
            Some("new".into())
        );
        assert_eq!(copy.get(&BookingId(7)).unwrap(), "b7");
        assert_eq!(copy.get(&BookingId(4_999)).unwrap(), "b4999");
        assert_eq!(copy.get(&BookingId(9_000)), None);
        assert_eq!((copy.len(), map.len()), (5_000, 5_000));
        assert_eq!(map.get(&BookingId(7)).unwrap(), "changed");
        let written = map.blocks[4].as_ref().unwrap();
        assert_eq!(
            written.slots.capacity(),
            BLOCK_SLOTS,
            "a copied block keeps its room"
        );
        // Only the blocks written were copied: the others are still shared.
        let shared = map
            .blocks
            .iter()
            .zip(&copy.blocks)
            .filter(|(ours, theirs)| match (ours, theirs) {
                (Some(ours), Some(theirs)) => Arc::ptr_eq(ours, theirs),
                _ => false,
            })
            .count();
        assert_eq!(shared, 3, "blocks 1, 2, 3 untouched");
    }

    #[test]
    fn blocks_emptied_at_the_front_go_and_far_keys_are_simply_absent() {
        let mut map: DenseMap<BookingId, u64> = DenseMap::default();
        for id in 1_000..4_000 {
            map.insert(BookingId(id), id);
        }
        // Forgotten oldest first, as the ended holds are.
        for id in 1_000..2_100 {
            assert_eq!(map.remove(&BookingId(id)), Some(id));
        }
        assert_eq!((map.first, map.blocks.len(), map.len()), (2, 2, 1_900));
        assert_eq!(map.get(&BookingId(2_099)), None);
        assert_eq!(map.get(&BookingId(2_100)), Some(&2_100));
        assert_eq!(map.get(&BookingId(u64::MAX)), None);
        assert_eq!(map.get_mut(&BookingId(7)), None);
        assert_eq!(map.remove(&BookingId(1 << 40)), None);
        assert_eq!(map.remove(&BookingId(2_099)), None, "already gone");
        // An older id than the first block's still goes in (in front).
        map.insert(BookingId(5), 5);
        assert_eq!((map.first, map.get(&BookingId(5))), (0, Some(&5)));
        let keys: Vec<u64> = map.iter().map(|(key, _)| key.0).collect();
        assert_eq!(keys.len(), 1_901);
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "key order");
        // Emptied whole: nothing is left behind.
        for id in keys {
            map.remove(&BookingId(id));
        }
        assert_eq!((map.len(), map.block_count(), map.blocks.len()), (0, 0, 0));
    }

    #[test]
    fn a_shard_s_ids_fill_its_blocks_and_a_stride_that_does_not_fit_is_mended() {
        // Shard 2 of 4 gives out 2, 6, 10, ...: with the stride, 1,024 of them a block.
        let mut map: DenseMap<HoldId, u64> = DenseMap::default();
        map.set_stride(4);
        for local in 0..2_048u64 {
            map.insert(HoldId(local * 4 + 2), local);
        }
        assert_eq!(map.block_count(), 2);
        assert_eq!(map.get(&HoldId(6)), Some(&1));
        assert_eq!(
            map.get(&HoldId(5)),
            None,
            "another shard's id is simply absent"
        );
        assert_eq!(map.get(&HoldId(4)), None);
        // An id the stride does not fit (it clashes with 2's slot): laid out again, and
        // nothing is lost.
        map.insert(HoldId(3), 99);
        assert_eq!(map.stride, 1);
        assert_eq!(map.len(), 2_049);
        assert_eq!(map.get(&HoldId(3)), Some(&99));
        assert_eq!(map.get(&HoldId(2)), Some(&0));
        assert_eq!(map.get(&HoldId(2_047 * 4 + 2)), Some(&2_047));
        // Setting the same stride again changes nothing; another lays out again.
        map.set_stride(1);
        map.set_stride(2);
        map.insert(HoldId(7), 7);
        assert_eq!(map.stride, 1, "2 and 3 clash at stride 2: 1 again at once");
        assert_eq!(map.len(), 2_050);
    }

    #[test]
    fn it_encodes_its_entries_in_key_order_as_the_maps_before_it_and_decodes_that() {
        // A shard's ids, 3 apart, one far from the others.
        let entries: Vec<(BookingId, String)> = [3_001u64, 4, 1_024 * 3 + 1, 1, 77_776]
            .into_iter()
            .map(|id| (BookingId(id), format!("b{id}")))
            .collect();
        let mut map = DenseMap::default();
        for (key, value) in entries.iter().cloned() {
            map.insert(key, value);
        }
        let mut decoded = crate::cow_map::check_encodes_as_btree_map(&entries, &map);
        assert_eq!(decoded.stride, 3, "the ids' common difference");
        assert_eq!(decoded.len(), 5);
        assert_eq!(decoded.get(&BookingId(77_776)).unwrap(), "b77776");
        decoded.set_stride(1);
        crate::cow_map::check_encodes_as_btree_map(&entries, &decoded);
        let nothing: &[(BookingId, String)] = &[];
        let empty: DenseMap<BookingId, String> =
            crate::cow_map::check_encodes_as_btree_map(nothing, &DenseMap::default());
        assert_eq!((empty.len(), empty.stride), (0, 1));
    }

    #[derive(Clone, Debug)]
    enum Step {
        Insert(u64, u32),
        Remove(u64),
        /// Takes a copy (as the snapshot does) and checks it after the next steps.
        Copy,
        Stride(u64),
    }

    fn step(
        ids: impl proptest::strategy::Strategy<Value = u64> + Clone,
    ) -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            6 => (ids.clone(), any::<u32>()).prop_map(|(id, value)| Step::Insert(id, value)),
            3 => ids.prop_map(Step::Remove),
            1 => Just(Step::Copy),
            1 => (1u64..6).prop_map(Step::Stride),
        ]
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// The map against a `BTreeMap` (the reference), with copies that must not see
        /// later changes and strides that may or may not fit the ids: the same entries,
        /// in the same order, after every step.
        #[test]
        fn behaves_as_an_ordered_map(
            steps in proptest::collection::vec(
                step(proptest::prop_oneof![0u64..3_000, (0u64..40).prop_map(|n| n * 5 + 1)]),
                1..400,
            ),
        ) {
            let mut map: DenseMap<HoldId, u32> = DenseMap::default();
            let mut reference: BTreeMap<u64, u32> = BTreeMap::new();
            let mut copies: Vec<(DenseMap<HoldId, u32>, BTreeMap<u64, u32>)> = Vec::new();
            for step in steps {
                match step {
                    Step::Insert(id, value) => {
                        proptest::prop_assert_eq!(
                            map.insert(HoldId(id), value),
                            reference.insert(id, value)
                        );
                    }
                    Step::Remove(id) => {
                        proptest::prop_assert_eq!(map.remove(&HoldId(id)), reference.remove(&id));
                    }
                    Step::Copy => copies.push((map.clone(), reference.clone())),
                    Step::Stride(stride) => map.set_stride(stride),
                }
                proptest::prop_assert_eq!(map.len(), reference.len());
                let entries: Vec<(u64, u32)> = map.iter().map(|(key, value)| (key.0, *value)).collect();
                let expected: Vec<(u64, u32)> = reference.iter().map(|(key, value)| (*key, *value)).collect();
                proptest::prop_assert_eq!(entries, expected);
            }
            for id in 0..3_200 {
                proptest::prop_assert_eq!(map.get(&HoldId(id)), reference.get(&id));
            }
            // Emptied, it holds no block (nothing kept for ids long gone).
            let mut emptied = map.clone();
            for id in reference.keys() {
                emptied.remove(&HoldId(*id));
            }
            proptest::prop_assert_eq!((emptied.len(), emptied.blocks.len()), (0, 0));
            for (copy, expected) in copies {
                let entries: Vec<(u64, u32)> = copy.iter().map(|(key, value)| (key.0, *value)).collect();
                let expected: Vec<(u64, u32)> = expected.into_iter().collect();
                proptest::prop_assert_eq!(entries, expected);
            }
        }
    }
}
