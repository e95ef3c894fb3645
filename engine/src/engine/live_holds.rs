//! The live holds by id (`State::holds`): a slab of holds (a slot per live hold, free
//! slots reused) and, for the ids, a window of slot numbers from the least live id to the
//! greatest, with the ids that fell far behind in an ordered map.
//!
//! Holds are made in id order and mostly end within their time to live, so the live ids
//! are dense near the newest: filing a hold is a write at the window's back, finding one
//! an index, and ending one a write (and, for the oldest, a trim of the window's front),
//! where the hash map this replaces hashed, probed and moved 88-byte entries. Measured
//! (session 15, callgrind, standard mix): the map's work was about 4% of the mix and the
//! table's is nearly as much (the hold is still moved in and out of its slot), so the net
//! is small: about 1M fewer instructions per 200,000 commands (0.3%), with or without LTO.
//! What it buys besides: no hash map to iterate (the id order is the table's own).
//!
//! Every part is copy-on-write chunks ([`CowVec`], and a [`ChunkedMap`] for `old`: many
//! holds of a long time to live among short ones can fill it), so the state's copy for a snapshot
//! copies a pointer per chunk, whatever the number of live holds, and the first write to
//! a chunk after a copy copies that chunk alone. (Flat arrays cost the engine thread a
//! pause of 60-100 ms per copy with 1.33M live holds, up to 0.7 s in a running engine:
//! an 80-byte slot and a reference count per hold.)
//!
//! Sparsity is bounded: a hold that lives long (a long time to live among short ones)
//! would keep the window wide behind it, so once the window spans more than
//! `SPAN_PER_HOLD` slots per live hold in it (plus `SPAN_SLACK`), its oldest holds move to
//! `old`, an ordered map of their ids to their slots, until the window is dense again.
//! Each hold moves at most once; the window costs at most 4 bytes times that bound per
//! live hold (plus its ended front, dropped a whole chunk at a time), and `old` holds at
//! most the live holds.
//!
//! Encoded as the map it replaces (`sorted_map`): entries in id order, so snapshots and
//! the state hash are unchanged. Where a hold sits (its slot, window or `old`) depends on
//! history and is not part of the state's value: equality compares the holds by id.

use super::state::Hold;
use crate::chunked::ChunkedMap;
use crate::ids::HoldId;
use crate::snapshot::CowVec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The window may span this many ids per live hold in it...
const SPAN_PER_HOLD: usize = 8;
/// ...plus this many, before its oldest holds move to `old`.
const SPAN_SLACK: usize = 256;
/// Holds per chunk of the slab (about 80 bytes each).
const SLAB_CHUNK: usize = 512;
/// Slot numbers per chunk of the window and of the free list.
const SLOT_CHUNK: usize = 4096;

/// Entries per chunk of `old`.
const OLD_CHUNK: usize = 512;

/// A window entry without a live hold.
const NONE: u32 = 0;

#[derive(Clone, Default)]
pub(crate) struct LiveHolds {
    /// Slot `n` holds a live hold, or is free (`None`, and then in `free`).
    slab: CowVec<Option<Hold>, SLAB_CHUNK>,
    /// Free slots of `slab`, the last freed reused first.
    free: CowVec<u32, SLOT_CHUNK>,
    /// The id of `ids[0]`.
    base: u64,
    /// `ids[i]` is 1 + the slot of the live hold of id `base + i`, or `NONE`. The window
    /// is `ids[head..]`, trimmed: its first and last entries are live. A moving head,
    /// whose ended front is dropped a chunk at a time (`base` moves on by a chunk).
    ids: CowVec<u32, SLOT_CHUNK>,
    head: usize,
    /// The live holds in the window.
    in_window: usize,
    /// The live holds moved out of the window, id → slot. While the window is not empty,
    /// every id here is less than its first.
    old: ChunkedMap<HoldId, u32, OLD_CHUNK>,
}

impl LiveHolds {
    pub(crate) fn len(&self) -> usize {
        self.in_window + self.old.len()
    }

    /// The ids the window spans.
    #[inline]
    fn span(&self) -> usize {
        self.ids.len() - self.head
    }

    /// The id of the window's first entry (its least live id, when not empty).
    #[inline]
    fn first(&self) -> u64 {
        self.base + self.head as u64
    }

    /// The most ids a window with `holds` live holds may span.
    #[inline]
    fn span_max(holds: usize) -> usize {
        SPAN_PER_HOLD * holds + SPAN_SLACK
    }

    /// The index in `ids` of `id`, if the window covers it.
    #[inline]
    fn index(&self, id: HoldId) -> Option<usize> {
        let index = id.0.wrapping_sub(self.base);
        (index >= self.head as u64 && index < self.ids.len() as u64).then_some(index as usize)
    }

    /// The slot of live hold `id`.
    #[inline]
    fn slot(&self, id: HoldId) -> Option<u32> {
        match self.index(id) {
            Some(index) => self.ids[index].checked_sub(1),
            None if self.old.is_empty() => None,
            None => self.old.get(&id).copied(),
        }
    }

    /// Asks the cache for live hold `id`'s slot ([`super::prefetch`]).
    #[inline]
    pub(crate) fn prefetch(&self, id: HoldId) {
        if let Some(slot) = self.slot(id) {
            super::prefetch::hint(&self.slab[slot as usize]);
        }
    }

    #[inline]
    pub(crate) fn get(&self, id: &HoldId) -> Option<&Hold> {
        let slot = self.slot(*id)?;
        Some(self.slab[slot as usize].as_ref().expect("a used slot"))
    }

    pub(crate) fn contains_key(&self, id: &HoldId) -> bool {
        self.slot(*id).is_some()
    }

    /// A slot for `hold`. Perf: always inlined (every hold takes one; the compiler kept
    /// the call, and the hold was moved into its frame and again into the slot).
    #[inline(always)]
    fn take_slot(&mut self, hold: Hold) -> u32 {
        match self.free.pop() {
            Some(slot) => {
                let entry = &mut self.slab[slot as usize];
                assert!(entry.is_none(), "a free slot is empty");
                *entry = Some(hold);
                slot
            }
            None => {
                let slot = u32::try_from(self.slab.len())
                    .ok()
                    .filter(|slot| *slot < u32::MAX)
                    .expect("fewer than 2^32 - 1 live holds");
                self.slab.append(Some(hold));
                slot
            }
        }
    }

    /// Files a new live hold (an id is filed once). Holds are filed in id order, so the
    /// common case is a write at the window's back.
    #[inline]
    pub(crate) fn insert(&mut self, id: HoldId, hold: Hold) {
        // The common case: a new id past the window's back, within its span.
        let index = id.0.wrapping_sub(self.base);
        let len = self.ids.len();
        if self.span() > 0
            && index >= len as u64
            && index < (self.head + Self::span_max(self.in_window + 1)) as u64
        {
            let slot = self.take_slot(hold);
            self.grow_to(index as usize);
            self.ids.push(slot + 1);
            self.in_window += 1;
            return;
        }
        self.insert_other(id, hold);
    }

    /// [`LiveHolds::insert`] when the window is empty, or the id is behind its back or
    /// too far past it.
    fn insert_other(&mut self, id: HoldId, hold: Hold) {
        assert!(!self.contains_key(&id), "a hold id is given out once: {id}");
        let behind = if self.span() == 0 {
            // Ids filed out of order (only a hand-made state does that) stay ordered.
            self.old
                .last_key_value()
                .is_some_and(|(last, _)| *last > id)
        } else {
            id.0 < self.first()
        };
        let slot = self.take_slot(hold);
        if behind {
            self.old.insert(id, slot);
            return;
        }
        // Room first: the oldest holds move out while the new id would leave the window
        // sparse (so a far id, from a decoded state, never widens it without bound).
        while self.span() > 0 && id.0 - self.first() >= Self::span_max(self.in_window + 1) as u64 {
            self.move_front_out();
        }
        if self.span() == 0 {
            self.ids.clear();
            self.head = 0;
            self.base = id.0;
        }
        let index = usize::try_from(id.0 - self.base).expect("the window fits in memory");
        if index < self.ids.len() {
            assert_eq!(self.ids[index], NONE, "a hold id is given out once");
            self.ids[index] = slot + 1;
        } else {
            self.grow_to(index);
            self.ids.push(slot + 1);
        }
        self.in_window += 1;
        debug_assert!(self.span() <= Self::span_max(self.in_window));
        debug_assert!(self.is_trimmed());
    }

    /// Pads the window with ended entries up to `len`.
    #[inline]
    fn grow_to(&mut self, len: usize) {
        while self.ids.len() < len {
            self.ids.push(NONE);
        }
    }

    /// Moves the window's oldest hold to `old`.
    fn move_front_out(&mut self) {
        let entry = self.ids[self.head];
        debug_assert_ne!(entry, NONE, "the window is trimmed");
        self.old.insert(HoldId(self.first()), entry - 1);
        self.ids[self.head] = NONE;
        self.in_window -= 1;
        self.trim();
    }

    /// Ends live hold `id`: the hold, if it was live.
    #[inline]
    pub(crate) fn remove(&mut self, id: &HoldId) -> Option<Hold> {
        let slot = match self.index(*id) {
            Some(index) => {
                let slot = std::mem::replace(&mut self.ids[index], NONE).checked_sub(1)?;
                self.in_window -= 1;
                if index == self.head || index + 1 == self.ids.len() {
                    self.trim();
                }
                if self.span() > Self::span_max(self.in_window) {
                    self.bound_span();
                }
                slot
            }
            None if self.old.is_empty() => return None,
            None => self.old.remove(id)?,
        };
        let hold = self.slab[slot as usize].take().expect("a used slot");
        self.free.push(slot);
        debug_assert!(self.is_trimmed());
        Some(hold)
    }

    /// Drops the window's ended ends. Perf: always inlined (nearly every expiry ends the
    /// window's first hold; the call was a third of the trim).
    #[inline(always)]
    fn trim(&mut self) {
        // Holds mostly end oldest first (by expiry), so nearly always at the front. Perf:
        // `get` is the range check (no length computed per step).
        while self.ids.get(self.head) == Some(&NONE) {
            self.head += 1;
        }
        while self.ids.len() > self.head && self.ids.last() == Some(&NONE) {
            self.ids.pop();
        }
        if self.head == self.ids.len() {
            self.ids.clear();
            self.head = 0;
            self.base = 0;
        } else if self.head >= SLOT_CHUNK {
            let chunks = self.head / SLOT_CHUNK;
            self.ids.drop_front_chunks(chunks);
            self.base += (chunks * SLOT_CHUNK) as u64;
            self.head -= chunks * SLOT_CHUNK;
        }
    }

    /// Moves the oldest holds out of a window grown sparse (see the module docs).
    fn bound_span(&mut self) {
        while self.span() > Self::span_max(self.in_window) {
            self.move_front_out();
        }
    }

    /// The live holds in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (HoldId, &Hold)> + '_ {
        let old = self.old.iter().map(|(id, slot)| (*id, *slot));
        let window = self
            .ids
            .slices(self.head..self.ids.len())
            .flatten()
            .enumerate()
            .filter(|(_, entry)| **entry != NONE)
            .map(|(offset, entry)| (HoldId(self.first() + offset as u64), entry - 1));
        old.chain(window)
            .map(|(id, slot)| (id, self.slab[slot as usize].as_ref().expect("a used slot")))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Hold> + '_ {
        self.iter().map(|(_, hold)| hold)
    }

    /// The window's form: trimmed, all zero when empty (checked after every change in
    /// debug builds; `check` also counts).
    fn is_trimmed(&self) -> bool {
        let empty = self.span() == 0;
        (empty || (self.ids[self.head] != NONE && self.ids.last() != Some(&NONE)))
            && (!empty || (self.base, self.head, self.ids.len()) == (0, 0, 0))
            && self.in_window <= self.span()
            && self.head < SLOT_CHUNK
    }

    /// Asserts the table's form (for `check_invariants`): the window trimmed and within
    /// its span, `old` behind it, every used slot named once, every other slot free once.
    pub(crate) fn check(&self) {
        assert!(self.is_trimmed(), "the live holds' window is trimmed");
        assert!(
            self.span() <= Self::span_max(self.in_window),
            "the live holds' window is within its span"
        );
        assert!(
            self.ids
                .slices(0..self.head)
                .flatten()
                .all(|entry| *entry == NONE),
            "the window's ended front is empty"
        );
        let named: Vec<u32> = self
            .ids
            .slices(self.head..self.ids.len())
            .flatten()
            .filter(|entry| **entry != NONE)
            .map(|entry| entry - 1)
            .chain(self.old.values().copied())
            .collect();
        assert_eq!(
            named.len() - self.old.len(),
            self.in_window,
            "the window's holds are counted"
        );
        if let (Some((last_old, _)), true) = (self.old.last_key_value(), self.span() > 0) {
            assert!(
                last_old.0 < self.first(),
                "the old holds are behind the window"
            );
        }
        let mut seen = vec![false; self.slab.len()];
        for slot in named {
            let slot = slot as usize;
            assert!(
                self.slab.get(slot).is_some_and(Option::is_some),
                "a used slot"
            );
            assert!(!seen[slot], "a slot holds one hold");
            seen[slot] = true;
        }
        for &slot in self.free.iter() {
            let slot = slot as usize;
            assert!(
                self.slab[slot].is_none() && !seen[slot],
                "a free slot is empty"
            );
            seen[slot] = true;
        }
        assert!(seen.iter().all(|seen| *seen), "every slot is used or free");
    }
}

impl PartialEq for LiveHolds {
    fn eq(&self, other: &LiveHolds) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for LiveHolds {}

impl std::fmt::Debug for LiveHolds {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_map().entries(self.iter()).finish()
    }
}

impl std::ops::Index<&HoldId> for LiveHolds {
    type Output = Hold;

    fn index(&self, id: &HoldId) -> &Hold {
        self.get(id).expect("a live hold")
    }
}

impl Serialize for LiveHolds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        super::state::sorted_map::serialize_entries(serializer, self.len(), self.iter())
    }
}

impl<'de> Deserialize<'de> for LiveHolds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<LiveHolds, D::Error> {
        let entries = BTreeMap::<HoldId, Hold>::deserialize(deserializer)?;
        let mut holds = LiveHolds::default();
        for (id, hold) in entries {
            holds.insert(id, hold);
        }
        Ok(holds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::state::{sorted_map, FastMap};
    use crate::engine::UserId;
    use crate::ids::{EventId, WaiterId};
    use crate::outcome::Items;

    fn hold(tag: u64) -> Hold {
        Hold {
            event: EventId(tag as u32 % 7),
            user: UserId(tag as u32),
            items: if tag.is_multiple_of(2) {
                Items::Seats(vec![tag as u32, tag as u32 + 1].into())
            } else {
                Items::Pool {
                    category: 1,
                    quantity: tag as u32 % 5 + 1,
                }
            },
            created_at_ms: tag,
            expires_at_ms: tag + 10,
            due_ms: tag + 15,
            waiter: tag.is_multiple_of(3).then_some(WaiterId(tag)),
            slot: tag.is_multiple_of(2).then_some(tag as u32),
        }
    }

    #[derive(Serialize)]
    struct Sorted<'a>(#[serde(with = "sorted_map")] &'a FastMap<HoldId, Hold>);

    /// Compares the table with the map it replaced: answers, length, order, and the
    /// encodings (bincode and JSON), and checks that a decoded copy is equal.
    fn compare(table: &LiveHolds, map: &FastMap<HoldId, Hold>, probes: &[u64], encode: bool) {
        table.check();
        assert_eq!(table.len(), map.len());
        for &probe in probes {
            let id = HoldId(probe);
            assert_eq!(table.get(&id), map.get(&id), "hold {probe}");
            assert_eq!(table.contains_key(&id), map.contains_key(&id));
        }
        let mut sorted: Vec<(HoldId, &Hold)> = map.iter().map(|(id, hold)| (*id, hold)).collect();
        sorted.sort_unstable_by_key(|(id, _)| *id);
        assert!(table.iter().eq(sorted.iter().copied()), "id order");
        if encode {
            let config = bincode::config::standard();
            let bytes = bincode::serde::encode_to_vec(table, config).unwrap();
            assert_eq!(
                bytes,
                bincode::serde::encode_to_vec(Sorted(map), config).unwrap()
            );
            assert_eq!(
                serde_json::to_string(table).unwrap(),
                serde_json::to_string(&Sorted(map)).unwrap()
            );
            let (decoded, _): (LiveHolds, usize) =
                bincode::serde::decode_from_slice(&bytes, config).unwrap();
            decoded.check();
            assert_eq!(&decoded, table);
            assert_eq!(table.clone(), decoded);
        }
    }

    /// Driven against the hash map it replaced through a deterministic mix of holds made
    /// in id order and ended in any order (most soon, oldest first, some living far
    /// longer than the rest, so the window goes sparse and its oldest holds move out),
    /// the table answers, orders and encodes exactly like the map; copies taken on the way
    /// (a snapshot's) keep their contents while the table goes on (copy-on-write chunks).
    #[test]
    fn live_holds_behave_and_encode_like_the_map() {
        let config = bincode::config::standard();
        let mut copies: Vec<(Vec<u8>, LiveHolds)> = Vec::new();
        let mut table = LiveHolds::default();
        let mut map: FastMap<HoldId, Hold> = FastMap::default();
        let mut seed = 11u64;
        let mut next = 1u64;
        let mut live: Vec<u64> = Vec::new();
        for round in 0..30_000u64 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let roll = (seed >> 33) % 100;
            // Phases: growth, churn, and a drain that leaves the long-lived few.
            let phase = (round / 5_000) % 3;
            let make = match phase {
                0 => roll < 70,
                1 => roll < 50,
                _ => roll < 20,
            };
            if make || live.is_empty() {
                let id = next;
                // Ids skip now and then (another shard's, or a refused request's).
                next += 1 + u64::from(roll.is_multiple_of(13)) * (roll % 5);
                table.insert(HoldId(id), hold(id));
                map.insert(HoldId(id), hold(id));
                live.push(id);
            } else {
                // Mostly the oldest (expiry), else any; a few never end until the drain.
                let index = if roll < 60 {
                    live.iter()
                        .position(|id| id % 97 != 0 || phase == 2)
                        .unwrap_or(0)
                } else {
                    ((seed >> 12) as usize) % live.len()
                };
                let id = live.remove(index);
                assert_eq!(table.remove(&HoldId(id)), map.remove(&HoldId(id)));
                assert_eq!(table.remove(&HoldId(id)), None, "ended once");
            }
            if round % 1_999 == 0 {
                let copy = table.clone();
                copies.push((bincode::serde::encode_to_vec(&copy, config).unwrap(), copy));
            }
            if round % 101 == 0 {
                let probes: Vec<u64> = (0..next + 3).step_by(7).chain([0, u64::MAX]).collect();
                compare(&table, &map, &probes, round % 1_009 == 0);
            }
        }
        assert!(!table.old.is_empty() || map.is_empty() || table.span() > 1);
        for id in live {
            assert_eq!(table.remove(&HoldId(id)), map.remove(&HoldId(id)));
        }
        compare(&table, &map, &[0, 1, 2, next], true);
        assert_eq!(table.len(), 0);
        assert!(table.ids.len() == 0 && table.old.is_empty() && table.base == 0);
        assert!(copies.len() > 10 && copies.iter().any(|(_, copy)| copy.len() > 1_000));
        for (bytes, copy) in copies {
            copy.check();
            assert_eq!(bincode::serde::encode_to_vec(&copy, config).unwrap(), bytes);
        }
    }

    /// A long-lived hold far behind the newest moves out of the window, which stays within
    /// its span; a decoded state with ids far apart decodes without a wide window.
    #[test]
    fn a_sparse_table_stays_within_its_span() {
        let mut table = LiveHolds::default();
        table.insert(HoldId(1), hold(1));
        for id in 2..10_000 {
            table.insert(HoldId(id), hold(id));
            assert_eq!(table.remove(&HoldId(id)).as_ref(), Some(&hold(id)));
            table.check();
        }
        assert_eq!(table.old.len(), 1, "the old hold moved out");
        assert_eq!(table.get(&HoldId(1)), Some(&hold(1)));
        let mut map = FastMap::default();
        map.insert(HoldId(1), hold(1));
        map.insert(HoldId(1 << 40), hold(2));
        map.insert(HoldId((1 << 40) + 3), hold(3));
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(Sorted(&map), config).unwrap();
        let (decoded, _): (LiveHolds, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        decoded.check();
        assert!(decoded.span() <= 4);
        compare(&decoded, &map, &[0, 1, 2, 1 << 40, (1 << 40) + 3], true);
    }
}
