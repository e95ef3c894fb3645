//! Copy-on-write containers made of fixed-capacity chunks behind `Arc`s, beside
//! [`crate::snapshot::CowVec`]: a copy of one copies a pointer per chunk, and the first
//! write to a chunk after a copy copies that chunk alone (`Chunk::make_mut`, whose check
//! is a load of the count: see [`crate::snapshot::CowVec`]). They replace the persistent
//! maps (`imbl`) the idempotency window and the waitlist queues were, so
//! the engine thread's pause to hand a state copy to the snapshot thread grows with the
//! number of chunks, never with the entries, and no operation costs more than a chunk.
//!
//! - [`ChunkedMap`]: an ordered map as a list of sorted chunks (a two-level B-tree whose
//!   leaves are shared). Iterated in key order; encodes exactly like a `BTreeMap` (and
//!   like the `imbl::OrdMap` it replaces).
//! - [`ChunkedDeque`]: a double-ended queue indexed by position, used mostly as a queue
//!   that grows at the back and shrinks at the front (the idempotency window, the ended
//!   holds and their queue, the timer lanes; in the ingress's read model, the order in
//!   which holds, waitlist entries and desk tickets ended). Encodes exactly like a
//!   `VecDeque`. The one public item of this module.

use crate::snapshot::Chunk;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;

/// An ordered map stored as sorted chunks of at most `CHUNK` entries behind `Arc`s,
/// every key of a chunk below every key of the next, no chunk empty.
///
/// Costs (n entries, c = n / CHUNK chunks): `clone` copies c pointers; a look-up is a
/// binary search over the chunks' first keys, then within one chunk; an insert or a
/// removal shifts at most one chunk's entries, and copies that chunk first if a copy
/// shares it, and may insert or remove one pointer in the list of chunks (O(c) pointer
/// moves). Any two neighbouring chunks hold more than `CHUNK / 2` entries together
/// (smaller pairs are merged), so c stays below `4n / CHUNK + 1` whatever the order of
/// inserts and removals.
#[derive(Clone)]
pub(crate) struct ChunkedMap<K, V, const CHUNK: usize> {
    chunks: Vec<Chunk<Vec<(K, V)>>>,
    len: usize,
}

impl<K, V, const CHUNK: usize> ChunkedMap<K, V, CHUNK> {
    const CHUNK_HOLDS_FOUR: () = assert!(CHUNK >= 4, "a chunk splits in two halves of 2+");

    pub(crate) fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHUNK_HOLDS_FOUR;
        ChunkedMap {
            chunks: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries in key order.
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        fn pair<K, V>((key, value): &(K, V)) -> (&K, &V) {
            (key, value)
        }
        fn entries<K, V>(chunk: &Chunk<Vec<(K, V)>>) -> EntryIter<'_, K, V> {
            chunk.iter().map(pair)
        }
        self.chunks.iter().flat_map(entries)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, value)| value)
    }

    /// How many chunks hold the entries (what a copy copies).
    #[cfg(test)]
    pub(crate) fn chunk_count(&self) -> usize {
        self.chunks.len()
    }
}

impl<K: Ord, V, const CHUNK: usize> ChunkedMap<K, V, CHUNK> {
    /// The chunk that holds `key` if any does: the last one whose first key is at most
    /// `key` (the first chunk for a key below every key). `None` while empty.
    fn chunk_of(&self, key: &K) -> Option<usize> {
        if self.chunks.is_empty() {
            return None;
        }
        let after = self.chunks.partition_point(|chunk| chunk[0].0 <= *key);
        Some(after.saturating_sub(1))
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        let chunk = &self.chunks[self.chunk_of(key)?];
        let at = chunk.binary_search_by(|(probe, _)| probe.cmp(key)).ok()?;
        Some(&chunk[at].1)
    }

    /// The entry with the greatest key.
    pub(crate) fn last_key_value(&self) -> Option<(&K, &V)> {
        let (key, value) = self.chunks.last()?.last()?;
        Some((key, value))
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// How many entries have keys at most `key` (`BTreeMap::range(..=key).count()`), in a
    /// binary search per chunk boundary, not a walk over the entries.
    pub(crate) fn count_through(&self, key: &K) -> usize {
        let Some(index) = self.chunk_of(key) else {
            return 0;
        };
        let before: usize = self.chunks[..index].iter().map(|chunk| chunk.len()).sum();
        before + self.chunks[index].partition_point(|(probe, _)| probe <= key)
    }

    /// The first entry whose key is at least `key` (`BTreeMap::range(key..).next()`).
    pub(crate) fn first_from(&self, key: &K) -> Option<(&K, &V)> {
        let index = self.chunk_of(key)?;
        let chunk = &self.chunks[index];
        let at = chunk.partition_point(|(probe, _)| probe < key);
        chunk
            .get(at)
            .or_else(|| self.chunks.get(index + 1).map(|next| &next[0]))
            .map(|(key, value)| (key, value))
    }

    /// Asserts the structure's invariants (for `check_invariants`): chunks non-empty and
    /// within capacity, keys strictly increasing across chunks, neighbours not both small,
    /// and the length.
    pub(crate) fn check(&self) {
        let mut counted = 0;
        for (index, chunk) in self.chunks.iter().enumerate() {
            assert!(
                !chunk.is_empty() && chunk.len() <= CHUNK,
                "chunk sizes in 1..=CHUNK"
            );
            assert!(
                chunk.windows(2).all(|pair| pair[0].0 < pair[1].0),
                "keys increase within a chunk"
            );
            if let Some(next) = self.chunks.get(index + 1) {
                assert!(
                    chunk.last().expect("non-empty").0 < next[0].0,
                    "keys increase across chunks"
                );
                assert!(
                    chunk.len() + next.len() > CHUNK / 2,
                    "small neighbouring chunks are merged"
                );
            }
            counted += chunk.len();
        }
        assert_eq!(counted, self.len, "the length counts the entries");
    }
}

impl<K: Ord + Clone, V: Clone, const CHUNK: usize> ChunkedMap<K, V, CHUNK> {
    /// Inserts `value` under `key`, returning the value it replaces.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let Some(index) = self.chunk_of(&key) else {
            self.chunks.push(Chunk::new(vec![(key, value)]));
            self.len = 1;
            return None;
        };
        let last = index + 1 == self.chunks.len();
        let chunk = Chunk::make_mut(&mut self.chunks[index]);
        let at = match chunk.binary_search_by(|(probe, _)| probe.cmp(&key)) {
            Ok(at) => return Some(std::mem::replace(&mut chunk[at].1, value)),
            Err(at) => at,
        };
        self.len += 1;
        if chunk.len() < CHUNK {
            chunk.insert(at, (key, value));
        } else if last && at == CHUNK {
            // Appending to a full last chunk (a queue's newest place) starts a new one,
            // so a map filled in key order keeps full chunks.
            let mut next = Vec::with_capacity(CHUNK);
            next.push((key, value));
            self.chunks.push(Chunk::new(next));
        } else {
            let mut right = Vec::with_capacity(CHUNK);
            right.extend(chunk.drain(CHUNK / 2..));
            if at <= CHUNK / 2 {
                chunk.insert(at, (key, value));
            } else {
                right.insert(at - CHUNK / 2, (key, value));
            }
            self.chunks.insert(index + 1, Chunk::new(right));
        }
        None
    }

    /// The value under `key`, to change (its chunk copied first if a copy shares it). A
    /// key that is not there copies nothing.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let index = self.chunk_of(key)?;
        let at = self.chunks[index]
            .binary_search_by(|(probe, _)| probe.cmp(key))
            .ok()?;
        Some(&mut Chunk::make_mut(&mut self.chunks[index])[at].1)
    }

    /// Removes `key`, returning its value. A key that is not there copies nothing.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let index = self.chunk_of(key)?;
        let at = self.chunks[index]
            .binary_search_by(|(probe, _)| probe.cmp(key))
            .ok()?;
        let chunk = Chunk::make_mut(&mut self.chunks[index]);
        let (_, value) = chunk.remove(at);
        self.len -= 1;
        if chunk.is_empty() {
            self.chunks.remove(index);
            // Its neighbours are neighbours now.
            if index > 0 {
                self.merge_if_small(index - 1);
            }
        } else {
            self.merge_if_small(index);
            if index > 0 {
                self.merge_if_small(index - 1);
            }
        }
        Some(value)
    }

    /// Merges chunk `index + 1` into chunk `index` when both together hold at most
    /// `CHUNK / 2` entries (so neighbours are never both small).
    fn merge_if_small(&mut self, index: usize) {
        let Some(next) = self.chunks.get(index + 1) else {
            return;
        };
        if self.chunks[index].len() + next.len() > CHUNK / 2 {
            return;
        }
        let next = self.chunks.remove(index + 1);
        let chunk = Chunk::make_mut(&mut self.chunks[index]);
        match Chunk::try_unwrap(next) {
            Ok(entries) => chunk.extend(entries),
            Err(shared) => chunk.extend(shared.iter().cloned()),
        }
    }

    /// A map of `entries`, which must be in strictly increasing key order.
    pub(crate) fn from_sorted(entries: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut map = Self::new();
        let mut chunk = Vec::with_capacity(CHUNK);
        for (key, value) in entries {
            let previous = chunk
                .last()
                .or_else(|| map.chunks.last().and_then(|last| last.last()));
            if let Some((previous, _)) = previous {
                assert!(*previous < key, "entries in strictly increasing key order");
            }
            chunk.push((key, value));
            if chunk.len() == CHUNK {
                map.len += CHUNK;
                map.chunks.push(Chunk::new(std::mem::replace(
                    &mut chunk,
                    Vec::with_capacity(CHUNK),
                )));
            }
        }
        if !chunk.is_empty() {
            map.len += chunk.len();
            map.chunks.push(Chunk::new(chunk));
        }
        map
    }
}

impl<K: Ord, V, const CHUNK: usize> std::ops::Index<&K> for ChunkedMap<K, V, CHUNK> {
    type Output = V;

    fn index(&self, key: &K) -> &V {
        self.get(key).expect("the key is in the map")
    }
}

impl<K, V, const CHUNK: usize> Default for ChunkedMap<K, V, CHUNK> {
    fn default() -> Self {
        Self::new()
    }
}

/// Equal entries in the same order, however they are chunked.
impl<K: PartialEq, V: PartialEq, const CHUNK: usize> PartialEq for ChunkedMap<K, V, CHUNK> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<K: Eq, V: Eq, const CHUNK: usize> Eq for ChunkedMap<K, V, CHUNK> {}

impl<K: fmt::Debug, V: fmt::Debug, const CHUNK: usize> fmt::Debug for ChunkedMap<K, V, CHUNK> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A chunk's entries as pairs of references.
type EntryIter<'a, K, V> =
    std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

/// A [`ChunkedMap`]'s entries in key order.
pub(crate) type Iter<'a, K, V> = std::iter::FlatMap<
    std::slice::Iter<'a, Chunk<Vec<(K, V)>>>,
    EntryIter<'a, K, V>,
    fn(&'a Chunk<Vec<(K, V)>>) -> EntryIter<'a, K, V>,
>;

impl<'a, K, V, const CHUNK: usize> IntoIterator for &'a ChunkedMap<K, V, CHUNK> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Encodes like a `BTreeMap` (length, then the entries in key order).
impl<K: Serialize, V: Serialize, const CHUNK: usize> Serialize for ChunkedMap<K, V, CHUNK> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::engine::sorted_map::serialize_entries(serializer, self.len, self.iter())
    }
}

/// Decodes what a `BTreeMap` (or an `imbl::OrdMap`) wrote.
impl<'de, K, V, const CHUNK: usize> Deserialize<'de> for ChunkedMap<K, V, CHUNK>
where
    K: Ord + Clone + Deserialize<'de>,
    V: Clone + Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::from_sorted(BTreeMap::<K, V>::deserialize(
            deserializer,
        )?))
    }
}

/// A queue stored as full chunks of `CHUNK` elements behind `Arc`s, then an owned back of
/// fewer than `2 * CHUNK`: pushed at the back, popped at the front, read by position;
/// pushed at the front and popped at the back too. The first block's (the first chunk's,
/// or the back's when there is no chunk) first `head` elements are popped already (kept
/// until the whole block is).
///
/// Costs: `clone` copies a pointer per chunk and the back; a push at the back writes into
/// the back (no check of a chunk's count) and seals its first block into a chunk once it
/// holds two; a pop at the front writes nothing (it moves `head`, and
/// drops the first chunk once it is all popped); a read by position is two index
/// operations.
///
/// The back is two blocks, each its own `Vec` of capacity `CHUNK`, so that sealing moves
/// the first block's `Vec` into its chunk and the second takes its place: nothing is
/// copied. Perf: a back of one `Vec` copied its first half out and moved its second half
/// down (two copies of a chunk per chunk pushed; about 2% of the standard mix).
#[derive(Clone)]
pub struct ChunkedDeque<T, const CHUNK: usize> {
    chunks: VecDeque<Chunk<Vec<T>>>,
    /// The back's first block: at most `CHUNK` elements.
    back: Vec<T>,
    /// The back's second block, under `CHUNK` elements, begun once `back` is full.
    back_next: Vec<T>,
    head: usize,
    len: usize,
}

impl<T, const CHUNK: usize> ChunkedDeque<T, CHUNK> {
    const CHUNK_IS_POWER_OF_TWO: () = assert!(CHUNK.is_power_of_two());

    pub fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHUNK_IS_POWER_OF_TWO;
        ChunkedDeque {
            chunks: VecDeque::new(),
            back: Vec::new(),
            back_next: Vec::new(),
            head: 0,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The element `index` places behind the front.
    #[inline]
    pub fn get(&self, index: usize) -> Option<&T> {
        (index < self.len).then(|| {
            let at = self.head + index;
            match self.chunks.get(at / CHUNK) {
                Some(chunk) => &chunk[at % CHUNK],
                None if at / CHUNK == self.chunks.len() => &self.back[at % CHUNK],
                None => &self.back_next[at % CHUNK],
            }
        })
    }

    /// Perf: the first block's place `head`, without `get`'s arithmetic (the timer lanes
    /// and the ended holds look at their fronts on every command).
    #[inline]
    pub fn front(&self) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        match self.chunks.front() {
            Some(chunk) => chunk.get(self.head),
            None => self.back.get(self.head),
        }
    }

    /// Perf: the last stored element (the popped ones are at the front), without `get`'s
    /// arithmetic (a timer is filed after a look at its lane's back).
    #[inline]
    pub fn back(&self) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        match self.back_next.last().or_else(|| self.back.last()) {
            Some(last) => Some(last),
            None => self.chunks.back().and_then(|chunk| chunk.last()),
        }
    }

    /// Drops the front element (it stays in its block, unreachable, until the block goes).
    /// Perf: always inlined (a timer fired, an ended hold forgotten; the compiler kept the
    /// call).
    #[inline(always)]
    pub fn pop_front(&mut self) {
        assert!(self.len > 0, "pop from an empty queue");
        self.head += 1;
        self.len -= 1;
        if self.len == 0 {
            self.clear();
        } else if self.head == CHUNK {
            self.drop_front_block();
        }
    }

    /// Drops the first block, all popped: the first chunk, or the back's first block
    /// (then its second takes its place, and its room is kept for the next). Perf: out of
    /// line, once per `CHUNK` pops.
    #[cold]
    #[inline(never)]
    fn drop_front_block(&mut self) {
        if self.chunks.pop_front().is_none() {
            std::mem::swap(&mut self.back, &mut self.back_next);
            self.back_next.clear();
        }
        self.head = 0;
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.back.clear();
        self.back_next.clear();
        self.head = 0;
        self.len = 0;
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks
            .iter()
            .flat_map(|chunk| chunk.iter())
            .chain(self.back.iter())
            .chain(self.back_next.iter())
            .skip(self.head)
    }

    /// How many chunks hold the elements (what a copy copies, beside the back).
    #[cfg(test)]
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Asserts the layout: every chunk full, the back under two, `head` inside the first
    /// block, the length.
    pub fn check(&self) {
        assert!(
            self.chunks.iter().all(|chunk| chunk.len() == CHUNK),
            "every chunk is full"
        );
        assert!(
            self.back.len() <= CHUNK && self.back_next.len() < CHUNK,
            "the back holds less than two chunks"
        );
        assert!(
            self.back_next.is_empty() || self.back.len() == CHUNK,
            "the back's second block follows a full first one"
        );
        let first_block = if self.chunks.is_empty() {
            self.back.len().clamp(1, CHUNK)
        } else {
            CHUNK
        };
        assert!(
            self.head < first_block,
            "the popped part is inside the first block"
        );
        assert_eq!(
            self.chunks.len() * CHUNK + self.back.len() + self.back_next.len(),
            self.head + self.len,
            "the length counts the elements"
        );
    }
}

/// Asks the cache for the place two cache lines past the end of `values`, a block filled
/// at its back, when its capacity reaches that far. Perf: the hold timers' lane takes a
/// 16-byte key per hold at its back, a new line every fourth hold, and that line (in a
/// block last used minutes of log time before, or fresh) was a store miss: the stores
/// after it waited behind it, and a later load that needed them (a hold's view copied
/// into its reply) waited for it. Asked for two lines ahead, the line is there when the
/// key is written: the standard mix +3.0% in one process (two runs of 30 alternated
/// rounds, faster in 24 and 25 of 30; BENCHMARKS.md, session 45). The same for the
/// growing tables' backs (`CowVec::append`) gave nothing (0.997), so only the deque asks.
#[inline(always)]
fn hint_ahead<T>(values: &mut Vec<T>) {
    let ahead = 128 / std::mem::size_of::<T>().max(1);
    if let Some(place) = values.spare_capacity_mut().get(ahead) {
        crate::engine::prefetch::hint(place);
    }
}

impl<T: Clone, const CHUNK: usize> ChunkedDeque<T, CHUNK> {
    #[inline]
    pub fn push_back(&mut self, value: T) {
        self.len += 1;
        if self.back.len() < CHUNK {
            self.back.push(value);
            hint_ahead(&mut self.back);
            if self.back.len() == CHUNK {
                self.back_filled();
            }
        } else {
            self.back_next.push(value);
            hint_ahead(&mut self.back_next);
            if self.back_next.len() == CHUNK {
                self.seal_back();
            }
        }
    }

    /// The back's first block is full: the second gets its room at once, not grown (and
    /// copied) step by step. Out of line, once per `CHUNK` pushes.
    #[cold]
    #[inline(never)]
    fn back_filled(&mut self) {
        self.back_next.reserve_exact(CHUNK);
    }

    /// Seals the back's full first block into a chunk (or drops it, all popped), and its
    /// second block takes its place. Perf: out of line, once per `CHUNK` pushes, so that
    /// a push inlines.
    #[cold]
    #[inline(never)]
    fn seal_back(&mut self) {
        debug_assert_eq!((self.back.len(), self.back_next.len()), (CHUNK, CHUNK));
        // (A first block all popped was dropped when its last element was.)
        debug_assert!(self.head < CHUNK);
        let next = std::mem::replace(&mut self.back_next, Vec::with_capacity(CHUNK));
        let first = std::mem::replace(&mut self.back, next);
        self.chunks.push_back(Chunk::new(first));
    }

    /// Puts `value` before the front: into the first block's popped part, or a new first
    /// chunk (full: its other places are copies of `value`, popped already).
    pub fn push_front(&mut self, value: T) {
        if self.len == 0 {
            self.clear();
            self.push_back(value);
            return;
        }
        if self.head == 0 {
            self.chunks
                .push_front(Chunk::new(vec![value.clone(); CHUNK]));
            self.head = CHUNK;
        }
        self.head -= 1;
        *self.slot_mut(self.head) = value;
        self.len += 1;
    }

    /// The front element, removed.
    pub fn take_front(&mut self) -> Option<T> {
        let front = self.front()?.clone();
        self.pop_front();
        Some(front)
    }

    /// The back element, removed.
    pub fn pop_back(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        if let Some(value) = self.back_next.pop() {
            self.len -= 1;
            return Some(value);
        }
        if self.back.is_empty() {
            let last = self
                .chunks
                .pop_back()
                .expect("elements are in a chunk or the back");
            self.back = Chunk::unwrap_or_clone(last);
        }
        let value = self.back.pop().expect("the back has the last element");
        self.len -= 1;
        if self.len == 0 {
            self.clear();
        }
        Some(value)
    }

    /// The element `index` places behind the front, to change (its chunk copied first if a
    /// copy shares it).
    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        (index < self.len).then(|| self.slot_mut(self.head + index))
    }

    /// The stored place `at` (counting the popped part), to write. Perf: always inlined
    /// (an ended hold is filed through it on every confirm and release).
    #[inline(always)]
    fn slot_mut(&mut self, at: usize) -> &mut T {
        let shared = self.chunks.len();
        match self.chunks.get_mut(at / CHUNK) {
            Some(chunk) => {
                // Perf: the copy (only after a snapshot's clone) out of line.
                if !chunk.is_unique() {
                    Self::unshare(chunk);
                }
                &mut Chunk::get_mut(chunk).expect("a chunk is unique once copied")[at % CHUNK]
            }
            None => {
                let block = if at / CHUNK == shared {
                    &mut self.back
                } else {
                    &mut self.back_next
                };
                &mut block[at % CHUNK]
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn unshare(chunk: &mut Chunk<Vec<T>>) {
        Chunk::make_mut(chunk);
    }
}

impl<T: Serialize, const CHUNK: usize> Serialize for ChunkedDeque<T, CHUNK> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.len))?;
        for element in self.iter() {
            seq.serialize_element(element)?;
        }
        seq.end()
    }
}

impl<'de, T: Deserialize<'de> + Clone, const CHUNK: usize> Deserialize<'de>
    for ChunkedDeque<T, CHUNK>
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let elements = Vec::<T>::deserialize(deserializer)?;
        let mut deque = ChunkedDeque::new();
        for element in elements {
            deque.push_back(element);
        }
        Ok(deque)
    }
}

impl<T, const CHUNK: usize> Default for ChunkedDeque<T, CHUNK> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: PartialEq, const CHUNK: usize> PartialEq for ChunkedDeque<T, CHUNK> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Eq, const CHUNK: usize> Eq for ChunkedDeque<T, CHUNK> {}

impl<T: fmt::Debug, const CHUNK: usize> fmt::Debug for ChunkedDeque<T, CHUNK> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded generator (the tests' own: no dependency).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % bound
        }
    }

    fn bytes<T: Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    /// A chunked map answers every operation like a `BTreeMap` (the reference model),
    /// keeps its structure (chunk sizes, key order, no two small neighbours, so at most
    /// `4n / CHUNK + 1` chunks), encodes byte for byte like it (bincode and JSON, which is
    /// how `imbl::OrdMap` encoded too: a length-prefixed map in key order) and decodes
    /// back; copies taken mid-sequence never change when the original does. Runs of
    /// appends (a queue's new places), removals from the front (its head served), random
    /// inserts and removals (a draw's places, leavers) and runs that empty the map.
    #[test]
    fn a_chunked_map_behaves_and_encodes_like_a_btree_map() {
        const CHUNK: usize = 8;
        for seed in 0..6 {
            let mut random = Lcg(seed);
            let mut map = ChunkedMap::<u64, u64, CHUNK>::new();
            let mut model = BTreeMap::new();
            let mut copies = Vec::new();
            let mut next_append = 1_000u64;
            for step in 0..6_000u64 {
                let phase = (step / 500) % 4;
                let key_space = 40 + seed * 150;
                match (phase, random.below(10)) {
                    (0, 0..=7) | (1, 0..=2) => {
                        next_append += 1 + random.below(3);
                        let value = random.below(1_000);
                        assert_eq!(
                            map.insert(next_append, value),
                            model.insert(next_append, value)
                        );
                    }
                    (1, _) | (3, 0..=8) => {
                        let key = if random.below(2) == 0 {
                            model.keys().next().copied().unwrap_or(0)
                        } else {
                            random.below(next_append + 10)
                        };
                        assert_eq!(map.remove(&key), model.remove(&key));
                    }
                    _ => {
                        let key = random.below(key_space) * 7 + random.below(7);
                        let value = random.below(1_000);
                        assert_eq!(map.insert(key, value), model.insert(key, value));
                    }
                }
                map.check();
                assert_eq!(map.len(), model.len());
                assert_eq!(map.is_empty(), model.is_empty());
                assert!(map.chunk_count() <= 4 * map.len() / CHUNK + 1);
                let probe = random.below(next_append + 10);
                assert_eq!(map.get(&probe), model.get(&probe));
                assert_eq!(map.first_from(&probe), model.range(probe..).next());
                assert_eq!(map.count_through(&probe), model.range(..=probe).count());
                if step % 53 == 0 {
                    assert!(map.iter().eq(model.iter()));
                    assert!(map.values().eq(model.values()));
                    assert!((&map).into_iter().eq(model.iter()));
                    assert_eq!(bytes(&map), bytes(&model));
                    assert_eq!(
                        serde_json::to_string(&map).unwrap(),
                        serde_json::to_string(&model).unwrap()
                    );
                    let (decoded, _): (ChunkedMap<u64, u64, CHUNK>, usize) =
                        bincode::serde::decode_from_slice(
                            &bytes(&map),
                            bincode::config::standard(),
                        )
                        .unwrap();
                    decoded.check();
                    assert_eq!(decoded, map);
                }
                if step % 97 == 0 {
                    copies.push((map.clone(), model.clone()));
                }
                if step % 251 == 0 {
                    for (copy, then) in &copies {
                        copy.check();
                        assert!(copy.iter().eq(then.iter()), "a copy keeps what it held");
                    }
                }
            }
            for (copy, then) in &copies {
                assert!(copy.iter().eq(then.iter()));
                assert_eq!(bytes(copy), bytes(then));
            }
        }
    }

    /// A chunked deque answers like a `VecDeque` (pushes at the back, pops at the front,
    /// reads by position), keeps every chunk but the last full, encodes its elements in
    /// order, and copies taken mid-sequence never change.
    #[test]
    fn a_chunked_deque_behaves_and_encodes_like_a_vec_deque() {
        const CHUNK: usize = 4;
        let mut random = Lcg(11);
        let mut deque = ChunkedDeque::<u64, CHUNK>::new();
        let mut model = VecDeque::new();
        let mut copies = Vec::new();
        for step in 0..5_000u64 {
            // Phases that grow, shrink and empty it.
            let push = match (step / 400) % 3 {
                0 => random.below(4) != 0,
                1 => random.below(4) == 0,
                _ => random.below(2) == 0,
            };
            // Mostly a queue; now and then the other end, or a change in place.
            let other_end = random.below(8) == 0;
            if push || model.is_empty() {
                if other_end {
                    deque.push_front(step);
                    model.push_front(step);
                } else {
                    deque.push_back(step);
                    model.push_back(step);
                }
            } else if other_end {
                assert_eq!(deque.pop_back(), model.pop_back());
            } else if random.below(2) == 0 {
                assert_eq!(deque.take_front(), model.pop_front());
            } else {
                deque.pop_front();
                model.pop_front();
            }
            if !model.is_empty() && random.below(5) == 0 {
                let at = random.below(model.len() as u64) as usize;
                *deque.get_mut(at).unwrap() += 1_000_000;
                model[at] += 1_000_000;
            }
            assert_eq!(deque.get_mut(model.len()), None);
            deque.check();
            assert_eq!(
                (deque.len(), deque.is_empty()),
                (model.len(), model.is_empty())
            );
            assert_eq!((deque.front(), deque.back()), (model.front(), model.back()));
            assert!(deque.chunk_count() <= deque.len().div_ceil(CHUNK) + 1);
            let at = random.below(model.len() as u64 + 2) as usize;
            assert_eq!(deque.get(at), model.get(at));
            if step % 41 == 0 {
                assert!(deque.iter().eq(model.iter()));
            }
            if step % 89 == 0 {
                copies.push((deque.clone(), model.clone()));
            }
        }
        for (copy, then) in &copies {
            copy.check();
            assert!(copy.iter().eq(then.iter()), "a copy keeps what it held");
            assert_eq!(copy, &copy.clone());
            assert_eq!(bytes(copy), bytes(then), "encodes like a VecDeque");
            let decoded: ChunkedDeque<u64, CHUNK> =
                bincode::serde::decode_from_slice(&bytes(copy), bincode::config::standard())
                    .unwrap()
                    .0;
            decoded.check();
            assert_eq!(&decoded, copy);
            assert_eq!(
                serde_json::to_string(copy).unwrap(),
                serde_json::to_string(then).unwrap()
            );
        }
    }
}
