//! Pending expiries (holds, waitlist entries, desk holds), fired in (due, kind, id) order.
//!
//! A binary heap of timers plus the set of timers still live. Cancelling a timer (a hold
//! confirmed or released, a waiter served) only removes it from the set; the heap drops
//! such stale entries when they reach its top, so the top is always live. Perf: a push
//! and a cancel cost a heap push and two hash-set operations, where an ordered set paid a
//! tree insert and a tree removal per hold. Both parts are flat arrays of plain entries,
//! so the state's copy for a snapshot is a memory copy.
//!
//! The encoding is the live timers in order, exactly like the `BTreeSet` this replaced,
//! so the state hash does not depend on how many stale entries the heap holds.

use super::state::{FastSet, TimerKind};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

pub(crate) type Timer = (u64, TimerKind, u64);

#[derive(Clone, Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Timer>>,
    live: FastSet<Timer>,
}

impl Timers {
    pub(crate) fn insert(&mut self, timer: Timer) {
        let new = self.live.insert(timer);
        assert!(new, "a timer is filed once: {timer:?}");
        self.heap.push(Reverse(timer));
    }

    /// Cancels a timer; whether it was pending.
    pub(crate) fn remove(&mut self, timer: &Timer) -> bool {
        let removed = self.live.remove(timer);
        self.drop_stale_top();
        removed
    }

    /// The next timer to fire.
    pub(crate) fn first(&self) -> Option<&Timer> {
        self.heap.peek().map(|Reverse(timer)| timer)
    }

    /// Takes the next timer to fire.
    pub(crate) fn pop_first(&mut self) -> Option<Timer> {
        let Reverse(timer) = self.heap.pop()?;
        assert!(self.live.remove(&timer), "the heap's top is live");
        self.drop_stale_top();
        Some(timer)
    }

    pub(crate) fn contains(&self, timer: &Timer) -> bool {
        self.live.contains(timer)
    }

    /// The pending timers, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Timer> {
        self.live.iter()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    fn drop_stale_top(&mut self) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if self.live.contains(top) {
                break;
            }
            self.heap.pop();
        }
    }

    fn sorted(&self) -> BTreeSet<Timer> {
        self.live.iter().copied().collect()
    }
}

impl PartialEq for Timers {
    fn eq(&self, other: &Timers) -> bool {
        self.live == other.live
    }
}

impl Eq for Timers {}

impl Serialize for Timers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.sorted().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Timers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timers, D::Error> {
        let sorted = BTreeSet::<Timer>::deserialize(deserializer)?;
        Ok(Timers {
            heap: sorted.iter().copied().map(Reverse).collect(),
            live: sorted.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a `BTreeSet` (what the queue replaced): the same answers for every
    /// operation of a seeded random sequence, and the same encoding at every step.
    #[test]
    fn timers_behave_like_an_ordered_set() {
        let mut timers = Timers::default();
        let mut model: BTreeSet<Timer> = BTreeSet::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        let kinds = [
            TimerKind::HoldExpiry,
            TimerKind::WaiterExpiry,
            TimerKind::DeskHoldExpiry,
        ];
        for _ in 0..20_000 {
            match next(4) {
                0 | 1 => {
                    let timer = (next(500), kinds[next(3) as usize], next(1_000));
                    if model.insert(timer) {
                        timers.insert(timer);
                    }
                }
                2 => {
                    let timer = match model.iter().nth(next(model.len() as u64 + 1) as usize) {
                        Some(&timer) => timer,
                        None => (next(500), kinds[0], next(1_000)),
                    };
                    assert_eq!(timers.remove(&timer), model.remove(&timer));
                }
                _ => assert_eq!(timers.pop_first(), model.pop_first()),
            }
            assert_eq!(timers.first(), model.first());
            assert_eq!(timers.len(), model.len());
        }
        assert_eq!(bytes(&timers), bytes(&model));
        let decoded: Timers =
            bincode::serde::decode_from_slice(&bytes(&timers), bincode::config::standard())
                .unwrap()
                .0;
        assert_eq!(decoded, timers);
        assert_eq!(decoded.first(), model.first());
    }

    fn bytes<T: Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    #[test]
    #[should_panic(expected = "a timer is filed once")]
    fn a_timer_is_filed_once() {
        let mut timers = Timers::default();
        timers.insert((1, TimerKind::HoldExpiry, 1));
        timers.insert((1, TimerKind::HoldExpiry, 1));
    }
}
