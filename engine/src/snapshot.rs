//! Snapshots of the engine's [`State`], and the copy-on-write storage that makes taking
//! one cheap.
//!
//! A snapshot's state bytes are one version byte, then the state in bincode (standard
//! configuration), the same encoding that [`Engine::state_hash`] digests: so the hash of
//! a snapshot is `blake3(bytes[1..])` ([`state_hash_of_encoded`]) and needs no second
//! encoding. Changing the format is deliberate: bump [`STATE_VERSION`].
//!
//! The runtime hands a *copy* of the state to a snapshot thread while the engine goes on
//! applying, so `State::clone` must not cost O(seats). The big, mostly-unchanging parts
//! of the state are therefore shared between copies: seat maps and bookings live in a
//! [`CowVec`] (fixed-size chunks behind `Arc`, copied one chunk at a time on the first
//! write after a clone), and a layout (immutable once built) behind an `Arc`. Both
//! encode exactly like the `Vec` and the value they replace, so hashes did not change.
//!
//! [`Engine::state_hash`]: crate::Engine::state_hash

use crate::engine::State;
use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Index, IndexMut};
/// The shared chunks of the copy-on-write containers (see [`CowVec`]).
pub(crate) use triomphe::Arc as Chunk;

/// The version byte in front of an encoded state.
/// 2: the configuration stamp, holds' due times, waiter indexes, and idempotency entries
/// keyed by digest with the request's fingerprint.
/// 3: users interned to dense ids (`State::users`); holds, bookings, waiters and the
/// per-user counters keep the id instead of the name.
/// 4: 4-byte seat words (a held seat names its hold's slot in the event's `hold_slots`, a
/// booked seat names nobody); holds keep their slot.
/// 5: arrival windows and their draws (`Event::draw`, `State::draws_pending`); waiters
/// keep their place, queues map place → waiter.
/// 6: events' terms of sale (`Event::terms`).
/// 7: the idempotency window's stored answers name their users by number
/// (`outcome::UserNumber`), as the engine's outcomes do.
pub const STATE_VERSION: u8 = 7;

/// The largest state `decode_state` accepts (a bound on what a corrupt length prefix can
/// make it allocate, on top of the checksum the snapshot store verifies first).
pub const STATE_BYTES_MAX: usize = 1 << 36;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<STATE_BYTES_MAX>,
> {
    bincode::config::standard().with_limit::<STATE_BYTES_MAX>()
}

/// Encodes a state: `STATE_VERSION`, then bincode.
pub fn encode_state(state: &State) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_state_into(state, &mut bytes);
    bytes
}

/// [`encode_state`] into `bytes` (cleared first), reusing its capacity: the snapshot
/// thread encodes the whole state every few seconds under load, and a fresh `Vec` grown
/// to hundreds of megabytes spent most of that time in the kernel zeroing new pages.
pub fn encode_state_into(state: &State, bytes: &mut Vec<u8>) {
    bytes.clear();
    bytes.push(STATE_VERSION);
    bincode::serde::encode_into_std_write(state, bytes, config())
        .expect("encoding into a Vec cannot fail");
}

/// Decodes what [`encode_state`] wrote. The error is a sentence for operators.
pub fn decode_state(bytes: &[u8]) -> Result<State, String> {
    let (&version, body) = bytes.split_first().ok_or("empty state")?;
    if version != STATE_VERSION {
        return Err(format!("unknown state version {version}"));
    }
    let (state, used): (State, usize) = bincode::serde::decode_from_slice(body, config())
        .map_err(|error| format!("undecodable state: {error}"))?;
    if used != body.len() {
        return Err(format!(
            "{} trailing bytes after the state",
            body.len() - used
        ));
    }
    Ok(state)
}

/// The offset of the last record a state has applied (`None` before the first).
pub fn applied_offset(state: &State) -> Option<u64> {
    state.applied_offset
}

/// The state hash of an encoded state: equal to [`crate::Engine::state_hash`] of the state
/// it encodes, without encoding it again.
pub fn state_hash_of_encoded(encoded: &[u8]) -> [u8; 32] {
    assert_eq!(
        encoded.first(),
        Some(&STATE_VERSION),
        "an encoded state starts with its version"
    );
    *blake3::hash(&encoded[1..]).as_bytes()
}

/// A vector stored as full chunks of `CHUNK` elements behind `Arc`s, then an owned tail of
/// fewer than `2 * CHUNK`. `clone` copies `len / CHUNK` pointers and the tail; the first
/// write to a shared chunk after a clone copies that chunk alone.
/// Encodes exactly like a `Vec<T>`.
///
/// Perf: the chunks are `triomphe::Arc`s, whose uniqueness check before a write is a load
/// of the count (they have no weak references); `std::sync::Arc::make_mut` is an atomic
/// compare-and-swap, which also keeps the processor from overlapping the memory accesses
/// around it, and took a visible share of the engine's time on every seat write. Pushes,
/// pops and writes in the tail check nothing (a stack, or a table growing at its back,
/// writes mostly there). The tail is sealed into a chunk only when it holds two, and a
/// chunk comes back into it only when it is empty, so a stack going up and down across a
/// chunk's boundary copies nothing.
#[derive(Clone)]
pub(crate) struct CowVec<T, const CHUNK: usize> {
    /// Full chunks. Perf: `Arc<[T]>` keeps the elements in the `Arc`'s own allocation,
    /// one pointer less to follow per access than an `Arc<Vec<T>>`.
    chunks: Vec<Chunk<[T]>>,
    tail: Vec<T>,
}

impl<T, const CHUNK: usize> CowVec<T, CHUNK> {
    const CHUNK_IS_POWER_OF_TWO: () = assert!(CHUNK.is_power_of_two());

    pub(crate) fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHUNK_IS_POWER_OF_TWO;
        CowVec {
            chunks: Vec::new(),
            tail: Vec::new(),
        }
    }

    /// Where the tail starts.
    #[inline]
    fn shared_len(&self) -> usize {
        self.chunks.len() * CHUNK
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.shared_len() + self.tail.len()
    }

    #[inline]
    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        match self.chunks.get(index / CHUNK) {
            Some(chunk) => Some(&chunk[index % CHUNK]),
            None => self.tail.get(index - self.shared_len()),
        }
    }

    pub(crate) fn last(&self) -> Option<&T> {
        match self.tail.last() {
            Some(last) => Some(last),
            None => self.chunks.last().and_then(|chunk| chunk.last()),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.tail.clear();
    }

    /// Drops the first `count` blocks of `CHUNK` elements: the element at `count * CHUNK`
    /// becomes the first. Perf: moves chunk pointers (and at most a chunk of the tail),
    /// so a queue-like use (a window of ids whose front ends) sheds its front without
    /// copying its elements.
    pub(crate) fn drop_front_chunks(&mut self, count: usize) {
        assert!(count * CHUNK <= self.len(), "only whole blocks are dropped");
        let shared = count.min(self.chunks.len());
        self.chunks.drain(..shared);
        self.tail.drain(..(count - shared) * CHUNK);
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.into_iter()
    }

    /// The elements of `range`, as the slices of the chunks (and the tail) it spans.
    /// Perf: a scan over them has no chunk lookup and no bounds check per element.
    pub(crate) fn slices(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = &[T]> + '_ {
        assert!(range.start <= range.end && range.end <= self.len());
        let first = range.start / CHUNK;
        let count = if range.is_empty() {
            0
        } else {
            (range.end - 1) / CHUNK + 1 - first
        };
        (first..first + count).map(move |index| {
            let base = index * CHUNK;
            let start = range.start.max(base) - base;
            let end = range.end.min(base + CHUNK) - base;
            &self.block(index)[start..end]
        })
    }

    /// Block `index` (`CHUNK` elements from `index * CHUNK`, fewer at the end): a chunk,
    /// or a part of the tail after the last one.
    #[inline]
    fn block(&self, index: usize) -> &[T] {
        match self.chunks.get(index) {
            Some(chunk) => chunk,
            None => {
                let start = (index - self.chunks.len()) * CHUNK;
                &self.tail[start..self.tail.len().min(start + CHUNK)]
            }
        }
    }
}

impl<T: Clone, const CHUNK: usize> CowVec<T, CHUNK> {
    #[cfg(test)]
    pub(crate) fn from_elem(value: T, len: usize) -> Self {
        let mut vec = Self::new();
        while vec.shared_len() + CHUNK <= len {
            vec.chunks.push(Chunk::from(vec![value.clone(); CHUNK]));
        }
        vec.tail = vec![value; len - vec.shared_len()];
        vec
    }

    /// A chunk's elements to write, the chunk copied first if a copy shares it. Perf: the
    /// check is a load of the count, inlined at every write; the copy (only after a
    /// snapshot's clone) is out of line.
    #[inline]
    fn chunk_mut(chunk: &mut Chunk<[T]>) -> &mut [T] {
        if !chunk.is_unique() {
            Self::unshare(chunk);
        }
        Chunk::get_mut(chunk).expect("a chunk is unique once copied")
    }

    #[cold]
    #[inline(never)]
    fn unshare(chunk: &mut Chunk<[T]>) {
        *chunk = chunk.iter().cloned().collect();
    }

    /// Perf: one comparison says chunk or tail; the tail's own bounds check is the
    /// range check (no length computed first).
    #[inline]
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        let shared = self.chunks.len();
        match self.chunks.get_mut(index / CHUNK) {
            Some(chunk) => Some(&mut Self::chunk_mut(chunk)[index % CHUNK]),
            None => self.tail.get_mut(index - shared * CHUNK),
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, value: T) {
        self.tail.push(value);
        if self.tail.len() == 2 * CHUNK {
            self.seal_tail();
        }
    }

    /// [`CowVec::push`] for a table that only grows at its back (never popped: bookings,
    /// users, per-user counters): the tail is sealed whole once it holds a chunk, so each
    /// element is copied once, into its chunk, and the tail starts over in the same
    /// buffer. Perf: `push` keeps a stack's hysteresis (it seals half of a tail of two
    /// chunks and moves the other half to the front), and for a table that only grows
    /// that move was as much copying again: the standard mix's bookings (112 bytes each)
    /// moved 28 KB per 256 confirms, about 1.5% of its instructions. The tail stays under
    /// a chunk, the layout a decoded vector has.
    #[inline]
    pub(crate) fn append(&mut self, value: T) {
        self.tail.push(value);
        if self.tail.len() >= CHUNK {
            self.seal_tail();
        }
    }

    /// Appends `CHUNK` copies of `value`: one chunk, sealed as it is made when the tail is
    /// empty (else one element at a time). Perf: each element is written once, into its
    /// chunk; appended one by one, a table grown a chunk ahead (the per-user counters, 80
    /// KB per 4,096 users) was written into the tail and copied again into the chunk.
    pub(crate) fn append_chunk_of(&mut self, value: T) {
        if self.tail.is_empty() {
            self.chunks
                .push(std::iter::repeat_n(value, CHUNK).collect());
        } else {
            for _ in 0..CHUNK {
                self.append(value.clone());
            }
        }
    }

    /// Seals the first `CHUNK` elements of the tail into a chunk: the buffer stays (no
    /// allocation but the chunk's). Out of line: once per `CHUNK` pushes.
    #[cold]
    #[inline(never)]
    fn seal_tail(&mut self) {
        self.chunks.push(self.tail.drain(..CHUNK).collect());
    }

    #[inline]
    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.tail.is_empty() {
            self.unseal_last()?;
        }
        self.tail.pop()
    }

    /// Brings the last chunk back into an empty tail (`None` when there is none). Out of
    /// line: once per `CHUNK` pops.
    #[cold]
    #[inline(never)]
    fn unseal_last(&mut self) -> Option<()> {
        let last = self.chunks.pop()?;
        self.tail = last.to_vec();
        Some(())
    }
}

/// Equal contents, whatever the layout (where the tail starts depends on history).
/// Perf: chunks shared by two copies compare by pointer.
impl<T: PartialEq, const CHUNK: usize> PartialEq for CowVec<T, CHUNK> {
    fn eq(&self, other: &Self) -> bool {
        if self.len() != other.len() {
            return false;
        }
        if self.chunks.len() != other.chunks.len() {
            return self.iter().eq(other.iter());
        }
        self.chunks
            .iter()
            .zip(&other.chunks)
            .all(|(left, right)| Chunk::ptr_eq(left, right) || left == right)
            && self.tail == other.tail
    }
}

impl<T: Eq, const CHUNK: usize> Eq for CowVec<T, CHUNK> {}

impl<T, const CHUNK: usize> Default for CowVec<T, CHUNK> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const CHUNK: usize> Index<usize> for CowVec<T, CHUNK> {
    type Output = T;

    /// Perf: the slices' own bounds checks (no panic message formatted here).
    #[inline]
    fn index(&self, index: usize) -> &T {
        match self.chunks.get(index / CHUNK) {
            Some(chunk) => &chunk[index % CHUNK],
            None => &self.tail[index - self.shared_len()],
        }
    }
}

impl<T: Clone, const CHUNK: usize> IndexMut<usize> for CowVec<T, CHUNK> {
    /// Perf: as `get_mut`, with the slices' own bounds checks (no length computed first,
    /// no panic message formatted here).
    #[inline]
    fn index_mut(&mut self, index: usize) -> &mut T {
        let shared = self.chunks.len();
        match self.chunks.get_mut(index / CHUNK) {
            Some(chunk) => &mut Self::chunk_mut(chunk)[index % CHUNK],
            None => &mut self.tail[index - shared * CHUNK],
        }
    }
}

impl<'a, T, const CHUNK: usize> IntoIterator for &'a CowVec<T, CHUNK> {
    type Item = &'a T;
    type IntoIter = std::iter::Chain<
        std::iter::FlatMap<
            std::slice::Iter<'a, Chunk<[T]>>,
            &'a [T],
            fn(&'a Chunk<[T]>) -> &'a [T],
        >,
        std::slice::Iter<'a, T>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        let as_slice: fn(&'a Chunk<[T]>) -> &'a [T] = |chunk| chunk;
        self.chunks
            .iter()
            .flat_map(as_slice)
            .chain(self.tail.iter())
    }
}

impl<T: fmt::Debug, const CHUNK: usize> fmt::Debug for CowVec<T, CHUNK> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Serialize, const CHUNK: usize> Serialize for CowVec<T, CHUNK> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for value in self.iter() {
            seq.serialize_element(value)?;
        }
        seq.end()
    }
}

impl<'de, T: Deserialize<'de>, const CHUNK: usize> Deserialize<'de> for CowVec<T, CHUNK> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChunkVisitor<T, const CHUNK: usize>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>, const CHUNK: usize> Visitor<'de> for ChunkVisitor<T, CHUNK> {
            type Value = CowVec<T, CHUNK>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a sequence")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut vec = CowVec::new();
                // Never trust a length prefix for more than one chunk of allocation.
                vec.tail = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(CHUNK));
                while let Some(value) = seq.next_element()? {
                    vec.tail.push(value);
                    if vec.tail.len() == CHUNK {
                        let full = std::mem::replace(&mut vec.tail, Vec::with_capacity(CHUNK));
                        vec.chunks.push(Chunk::from(full));
                    }
                }
                // One canonical layout for a content: a tail shorter than a chunk.
                Ok(vec)
            }
        }

        deserializer.deserialize_seq(ChunkVisitor::<T, CHUNK>(PhantomData))
    }
}

/// `#[serde(deserialize_with = "crate::snapshot::shared::deserialize")]`: an `Arc<T>` that encodes as its `T`.
pub(crate) mod shared {
    use serde::{Deserialize, Deserializer};
    use std::sync::Arc;

    // (Encoding needs nothing: an `Arc<T>`, or the `&T` in it, encodes as the `T`.)
    pub(crate) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Arc<T>, D::Error> {
        T::deserialize(deserializer).map(Arc::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::*;
    use crate::config::EngineConfig;
    use crate::engine::Engine;
    use crate::outcome::Reply;

    fn bincode_bytes<T: Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    #[test]
    fn a_cow_vec_encodes_like_a_vec_and_copies_on_write() {
        for len in [0usize, 1, 3, 4, 5, 8, 9, 17] {
            let plain: Vec<u64> = (0..len as u64).map(|value| value * 1000).collect();
            let mut chunked: CowVec<u64, 4> = CowVec::new();
            for &value in &plain {
                chunked.push(value);
            }
            assert_eq!(chunked.len(), len);
            assert_eq!(bincode_bytes(&chunked), bincode_bytes(&plain), "len {len}");
            let (decoded, _): (CowVec<u64, 4>, usize) = bincode::serde::decode_from_slice(
                &bincode_bytes(&plain),
                bincode::config::standard(),
            )
            .unwrap();
            assert!(decoded == chunked);
            assert_eq!(decoded.iter().copied().collect::<Vec<_>>(), plain);
        }
        let original: CowVec<u32, 4> = CowVec::from_elem(7, 10);
        let mut copy = original.clone();
        copy[5] = 8;
        *copy.get_mut(9).unwrap() = 9;
        copy.push(10);
        assert_eq!(original.iter().copied().collect::<Vec<_>>(), vec![7; 10]);
        assert_eq!(
            copy.iter().copied().collect::<Vec<_>>(),
            [7, 7, 7, 7, 7, 8, 7, 7, 7, 9, 10]
        );
        assert_eq!((copy.get(10), copy.get(11)), (Some(&10), None));
        // Only the written chunks were copied.
        assert!(Chunk::ptr_eq(&original.chunks[0], &copy.chunks[0]));
        assert!(!Chunk::ptr_eq(&original.chunks[1], &copy.chunks[1]));
    }

    /// The tail (the elements after the last full chunk) is owned: pushes, pops and writes
    /// there change no copy, a push that fills it makes a shared chunk, and a pop past it
    /// takes the last chunk back; the elements and their encoding stay a `Vec`'s.
    #[test]
    fn the_tail_is_owned_and_copies_keep_their_contents() {
        let config = bincode::config::standard();
        let mut vec: CowVec<u32, 4> = CowVec::new();
        let mut model: Vec<u32> = Vec::new();
        let mut copies: Vec<(CowVec<u32, 4>, Vec<u32>)> = Vec::new();
        let mut seed = 5u64;
        for step in 0..2_000u32 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let roll = (seed >> 33) % 10;
            if roll < 6 || model.is_empty() {
                vec.push(step);
                model.push(step);
            } else if roll < 9 {
                assert_eq!(vec.pop(), model.pop());
            } else {
                let at = (seed >> 40) as usize % model.len();
                vec[at] = step;
                model[at] = step;
            }
            assert_eq!(vec.len(), model.len());
            assert_eq!(vec.last(), model.last());
            assert!(
                vec.tail.len() < 8 && vec.chunks.len() * 4 + vec.tail.len() == model.len(),
                "full chunks shared, a tail of less than two"
            );
            if step % 37 == 0 {
                copies.push((vec.clone(), model.clone()));
            }
        }
        for (copy, then) in copies {
            assert!(copy.iter().eq(then.iter()), "a copy keeps what it held");
            assert_eq!(
                bincode::serde::encode_to_vec(&copy, config).unwrap(),
                bincode::serde::encode_to_vec(&then, config).unwrap()
            );
            let decoded: CowVec<u32, 4> = bincode::serde::decode_from_slice(
                &bincode::serde::encode_to_vec(&then, config).unwrap(),
                config,
            )
            .unwrap()
            .0;
            assert_eq!(decoded, copy, "equal contents, whatever the layout");
            assert_eq!(
                decoded.tail.len(),
                then.len() % 4,
                "decoded: a tail under a chunk"
            );
        }
    }

    /// `append` and `append_chunk_of` (a table that only grows) keep the tail under a
    /// chunk, and the vector a `Vec`'s elements and encoding, whatever mix of `push` and
    /// appends built it.
    #[test]
    fn appending_seals_whole_tails_and_keeps_a_vecs_contents() {
        let config = bincode::config::standard();
        let mut vec: CowVec<u32, 4> = CowVec::new();
        let mut model: Vec<u32> = Vec::new();
        for value in 0..50u32 {
            if value % 7 == 3 {
                vec.push(value);
            } else {
                vec.append(value);
            }
            model.push(value);
            assert!(vec.iter().eq(model.iter()));
            assert!(vec.tail.len() < 8 && vec.chunks.len() * 4 + vec.tail.len() == model.len());
            if value % 7 != 3 {
                assert!(vec.tail.len() < 4, "an append leaves a tail under a chunk");
            }
        }
        // A chunk of copies: sealed whole from an empty tail, one by one after a partial one.
        while !vec.tail.is_empty() {
            vec.append(50);
            model.push(50);
        }
        for partial in [false, true] {
            if partial {
                vec.append(99);
                model.push(99);
            }
            assert_eq!(vec.tail.is_empty(), !partial);
            vec.append_chunk_of(7);
            model.extend([7; 4]);
            assert!(vec.iter().eq(model.iter()));
            assert!(vec.tail.len() < 4 && vec.chunks.len() * 4 + vec.tail.len() == model.len());
        }
        assert_eq!(
            bincode::serde::encode_to_vec(&vec, config).unwrap(),
            bincode::serde::encode_to_vec(&model, config).unwrap()
        );
    }

    /// Events with the same seating (the shows of one hall) share one layout in memory,
    /// in a running engine and in one restored from a snapshot; other seating does not.
    #[test]
    fn events_with_the_same_seating_share_one_layout() {
        let mut engine = Engine::new(EngineConfig::default());
        for (offset, seats) in [40, 40, 41].into_iter().enumerate() {
            let outcome = engine.apply(
                offset as u64,
                1_000,
                &Request::new(Command::CreateEvent {
                    tenant: "demo".into(),
                    spec: Box::new(show_spec(seats)),
                }),
            );
            assert!(outcome.result.is_ok(), "{outcome:?}");
        }
        let shared = |engine: &Engine| {
            let events = &engine.state().events;
            (
                std::sync::Arc::ptr_eq(&events[0].layout, &events[1].layout),
                std::sync::Arc::ptr_eq(&events[0].layout, &events[2].layout),
            )
        };
        assert_eq!(shared(&engine), (true, false));
        let restored = Engine::from_state(
            EngineConfig::default(),
            decode_state(&encode_state(engine.state())).unwrap(),
        );
        assert_eq!(shared(&restored), (true, false));
        assert_eq!(restored.state_hash(), engine.state_hash());
    }

    fn show_spec(seats: u32) -> EventSpec {
        EventSpec {
            name: "Show".into(),
            description: String::new(),
            city: "Lyon".into(),
            country: "FR".into(),
            venue: "Hall".into(),
            starts_at_ms: 10_000_000,
            ends_at_ms: None,
            sales_open_at_ms: None,
            sales_close_at_ms: None,
            hold_ttl_ms: 60_000,
            seats_per_order_max: 10,
            seats_per_user_max: None,
            waitlist_policy: WaitlistPolicy::Strict,
            categories: vec![CategorySpec {
                name: "Standard".into(),
                price_cents: 5_000,
            }],
            sections: vec![SectionSpec {
                name: "A".into(),
                rows: vec![RowSpec {
                    label: "1".into(),
                    seats,
                    category: "Standard".into(),
                }],
            }],
            general_admission: vec![],
        }
    }

    fn busy_engine() -> Engine {
        let mut engine = Engine::new(EngineConfig::default());
        let spec = show_spec(40);
        let mut offset = 0;
        let mut apply = |engine: &mut Engine, command: Command| {
            let outcome = engine.apply(
                offset,
                1_000 + offset,
                &Request::with_key(command, format!("k{offset}")),
            );
            offset += 1;
            outcome
        };
        apply(
            &mut engine,
            Command::CreateEvent {
                tenant: "demo".into(),
                spec: Box::new(spec),
            },
        );
        for user in 0..6 {
            let selection = Selection::Best {
                quantity: 3,
                category: None,
                together: true,
            };
            let outcome = apply(
                &mut engine,
                Command::PlaceHold {
                    user: format!("u{user}").into(),
                    event: crate::EventId(0),
                    selection,
                    wait: false,
                },
            );
            if user % 2 == 0 {
                let Ok(Reply::HoldPlaced(hold)) = outcome.result else {
                    panic!("{outcome:?}")
                };
                apply(
                    &mut engine,
                    Command::ConfirmHold {
                        user: format!("u{user}").into(),
                        hold: hold.hold,
                        payment_ref: "pay".into(),
                    },
                );
            }
        }
        engine
    }

    #[test]
    fn a_state_round_trips_and_its_hash_needs_no_second_encoding() {
        let engine = busy_engine();
        let bytes = encode_state(engine.state());
        assert_eq!(bytes[0], STATE_VERSION);
        assert_eq!(state_hash_of_encoded(&bytes), engine.state_hash());
        let state = decode_state(&bytes).unwrap();
        assert!(&state == engine.state());
        let rebuilt = Engine::from_state(EngineConfig::default(), state);
        rebuilt.check_invariants();
        assert_eq!(rebuilt.state_hash(), engine.state_hash());
    }

    #[test]
    fn a_copy_is_independent_of_the_engine_that_goes_on() {
        let mut engine = busy_engine();
        let copy = engine.state().clone();
        let hash = engine.state_hash();
        let request = Request::new(Command::PlaceHold {
            user: "late".into(),
            event: crate::EventId(0),
            selection: Selection::Seats(vec!["A-1-40".into()]),
            wait: false,
        });
        assert!(engine.apply(100, 2_000, &request).result.is_ok());
        assert_ne!(engine.state_hash(), hash);
        assert_eq!(
            Engine::from_state(EngineConfig::default(), copy).state_hash(),
            hash
        );
    }

    #[test]
    fn slices_cover_exactly_a_range_across_chunks() {
        let mut vec: CowVec<u32, 4> = CowVec::new();
        for value in 0..11 {
            vec.push(value);
        }
        for start in 0..=11 {
            for end in start..=11 {
                let seen: Vec<u32> = vec.slices(start..end).flatten().copied().collect();
                assert_eq!(seen, (start as u32..end as u32).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn bad_state_bytes_are_errors_not_panics() {
        let bytes = encode_state(busy_engine().state());
        assert!(decode_state(&[]).is_err());
        assert!(decode_state(&[9]).unwrap_err().contains("version"));
        assert!(decode_state(&bytes[..bytes.len() / 2]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_state(&longer).unwrap_err().contains("trailing"));
        // A length prefix claiming far more than there is.
        assert!(decode_state(&[STATE_VERSION, 0, 0, 0xfc, 0xff, 0xff, 0xff, 0x7f]).is_err());
    }
}
