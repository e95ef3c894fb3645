//! Pending expiries (holds, waitlist entries, desk holds), fired in (due, kind, id) order.
//!
//! Timers are filed in FIFO lanes (one per kind) and a binary heap, plus the set of
//! timers still live, except for holds: a hold's expiry timer is live exactly while its
//! hold is, so the hold table answers for those (`HoldLive`; perf: the set's insert,
//! removal and probes were about 6% of the standard mix, two thirds of it for holds). A timer that comes after every timer of its lane (by key) joins the
//! lane's back; any other goes to the heap. Holds of one time-to-live arrive in key order
//! (the due time is the clock plus a fixed delay, the id a sequence number), so a hold's
//! timer costs a queue push and a queue pop instead of a heap sift each way (perf: the
//! heap's pops, each a sift through its whole depth, were 6% of the standard mix).
//! Each lane is sorted, so the next timer is the least of the lanes' fronts and the
//! heap's top. Cancelling a timer (a hold confirmed or released, a waiter served) only
//! removes it from the set; the lanes and the heap drop such stale entries when they
//! reach their front, so every front is live. The lanes (which grow with the live holds)
//! and the set of live timers other than holds' (which grows with the waiters: 1M waiters,
//! 2.4 ms per copy as a flat hash set) are copy-on-write chunks, so the state's copy for a
//! snapshot copies a pointer per chunk; the heap, which holds only timers filed out of
//! their lane's order, is a flat array of plain entries.
//!
//! The encoding is the live timers in order, exactly like the `BTreeSet` this replaced,
//! so the state hash does not depend on how many stale entries are queued or where
//! (`State`'s encoding asks the hold table which hold timers are live: `sorted_with`).
//! Inside, a timer is one 128-bit key that orders like the tuple (see `key`).

use super::state::TimerKind;
use crate::chunked::{ChunkedDeque, ChunkedMap};
use serde::{Deserialize, Deserializer};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

/// Keys (16 bytes) per chunk of a lane.
const LANE_CHUNK: usize = 2048;
/// Keys per chunk of the live set.
const LIVE_CHUNK: usize = 1024;

pub(crate) type Timer = (u64, TimerKind, u64);

/// A timer packed into one integer that orders exactly like the tuple: the due time in
/// the high 64 bits, then the kind (2 bits, in declaration order, as the derived `Ord`),
/// then the id (62 bits). Perf: a heap entry is 16 bytes instead of 24 and compares in
/// one integer comparison; the heap's pops were 5% of the standard mix.
type Key = u128;

const ID_BITS: u32 = 62;
/// The lane of hold expiries (`TimerKind::HoldExpiry`'s index), whose liveness the hold
/// table answers.
const HOLD_LANE: usize = 0;

/// Whether the hold expiry timer `(due, id)` is live: whether hold `id` is live with that
/// due time (the engine's hold table answers).
pub(crate) trait HoldLive: Fn(u64, u64) -> bool {}
impl<F: Fn(u64, u64) -> bool> HoldLive for F {}
/// One lane per timer kind (the kind is 2 bits of the key).
const LANES: usize = 4;

fn key((due, kind, id): Timer) -> Key {
    // Ids are sequence numbers (times the shard count) or event indices: 2^62 of them
    // would take longer than the universe to give out.
    assert!(
        id < 1 << ID_BITS,
        "a timer's id fits in {ID_BITS} bits: {id}"
    );
    (u128::from(due) << 64) | (u128::from(kind as u8) << ID_BITS) | u128::from(id)
}

/// The kind's index in a key (its declaration order): also its lane.
fn lane_of(key: Key) -> usize {
    ((key >> ID_BITS) & 0b11) as usize
}

fn timer(key: Key) -> Timer {
    let kind = match lane_of(key) {
        0 => TimerKind::HoldExpiry,
        1 => TimerKind::WaiterExpiry,
        2 => TimerKind::DeskHoldExpiry,
        _ => TimerKind::Draw,
    };
    (
        (key >> 64) as u64,
        kind,
        (key as u64) & ((1 << ID_BITS) - 1),
    )
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Timers {
    /// Per kind, timers in strictly increasing key order.
    lanes: [ChunkedDeque<Key, LANE_CHUNK>; LANES],
    /// The timers that came out of their lane's order.
    heap: BinaryHeap<Reverse<Key>>,
    /// The live timers other than holds' (those the hold table answers for).
    live: ChunkedMap<Key, (), LIVE_CHUNK>,
    /// The least front of the lanes and the heap (`None` when all are empty). Perf: kept
    /// as fronts change, so the check made before every command (is anything due?) is
    /// one comparison instead of a look at every front.
    least: Option<Key>,
}

impl Timers {
    /// Files a timer. A hold's is live from now until its hold ends (the hold table is
    /// the caller's: it files each hold, and so its timer, once).
    pub(crate) fn insert(&mut self, timer: Timer) {
        let key = key(timer);
        if lane_of(key) != HOLD_LANE {
            let new = self.live.insert(key, ()).is_none();
            assert!(new, "a timer is filed once: {timer:?}");
        }
        let lane = &mut self.lanes[lane_of(key)];
        if lane.back().is_none_or(|back| *back < key) {
            lane.push_back(key);
        } else {
            self.heap.push(Reverse(key));
        }
        self.least = Some(self.least.map_or(key, |least| least.min(key)));
    }

    /// Cancels a timer other than a hold's; whether it was pending.
    pub(crate) fn remove(&mut self, timer: &Timer, hold_live: impl HoldLive) -> bool {
        let key = key(*timer);
        assert_ne!(lane_of(key), HOLD_LANE, "a hold's timer ends with its hold");
        let removed = self.live.remove(&key).is_some();
        self.drop_stale_fronts(key, &hold_live);
        removed
    }

    /// Forgets the timer of a hold that has just ended (the hold table no longer has it)
    /// before it fired.
    pub(crate) fn cancel_hold(&mut self, timer: &Timer, hold_live: impl HoldLive) {
        let key = key(*timer);
        assert_eq!(lane_of(key), HOLD_LANE, "a hold's timer");
        // Perf: checked in debug builds only: the one caller (`take_hold`) has just taken
        // the hold out of the table, and the check is a look-up in it per confirm and
        // release.
        debug_assert!(!hold_live(timer.0, timer.2), "the hold has ended");
        self.drop_stale_fronts(key, &hold_live);
    }

    /// The next timer to fire.
    pub(crate) fn first(&self) -> Option<Timer> {
        self.least.map(timer)
    }

    /// Takes the next timer to fire if it falls due before `now_ms`. Perf: one look at
    /// the fronts per timer fired, where `first` then a pop looked twice. A hold's timer
    /// is live until the caller ends its hold.
    #[inline]
    pub(crate) fn pop_due_before(
        &mut self,
        now_ms: u64,
        hold_live: impl HoldLive,
    ) -> Option<Timer> {
        debug_assert_eq!(self.least, self.next());
        let key = self.least.filter(|key| timer(*key).0 < now_ms)?;
        debug_assert!(self.is_live(key, &hold_live), "every front is live");
        let lane = &mut self.lanes[lane_of(key)];
        if lane.front() == Some(&key) {
            lane.pop_front();
        } else {
            let top = self.heap.pop();
            assert_eq!(
                top,
                Some(Reverse(key)),
                "the least front is a lane's or the heap's"
            );
        }
        if lane_of(key) != HOLD_LANE {
            assert!(self.live.remove(&key).is_some(), "every front is live");
        }
        // Its entry is gone: the stale entries behind it go too.
        self.drop_stale_fronts(key, &hold_live);
        if self.least == Some(key) {
            // Nothing was left behind it to look at.
            self.least = self.next();
        }
        Some(timer(key))
    }

    /// Whether `timer` is pending.
    pub(crate) fn contains(&self, timer: &Timer, hold_live: impl HoldLive) -> bool {
        let key = key(*timer);
        if lane_of(key) == HOLD_LANE {
            hold_live(timer.0, timer.2) && self.queued().any(|queued| queued == key)
        } else {
            self.live.contains_key(&key)
        }
    }

    /// The pending timers, in order.
    pub(crate) fn sorted_with(&self, hold_live: impl HoldLive) -> Vec<Timer> {
        let mut keys: Vec<Key> = self
            .live
            .iter()
            .map(|(key, ())| *key)
            .filter(|key| lane_of(*key) != HOLD_LANE)
            .chain(self.queued().filter(|key| {
                let (due, _, id) = timer(*key);
                lane_of(*key) == HOLD_LANE && hold_live(due, id)
            }))
            .collect();
        keys.sort_unstable();
        debug_assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "filed once");
        keys.into_iter().map(timer).collect()
    }

    /// Every queued entry (stale ones too), in no particular order.
    fn queued(&self) -> impl Iterator<Item = Key> + '_ {
        self.lanes
            .iter()
            .flat_map(|lane| lane.iter())
            .copied()
            .chain(self.heap.iter().map(|Reverse(key)| *key))
    }

    #[cfg(test)]
    pub(crate) fn len(&self, hold_live: impl HoldLive) -> usize {
        self.sorted_with(hold_live).len()
    }

    fn is_live(&self, key: Key, hold_live: &impl HoldLive) -> bool {
        if lane_of(key) == HOLD_LANE {
            let (due, _, id) = timer(key);
            hold_live(due, id)
        } else {
            self.live.contains_key(&key)
        }
    }

    /// The least front (every front is live).
    fn next(&self) -> Option<Key> {
        let lanes = self.lanes.iter().filter_map(|lane| lane.front().copied());
        let heap = self.heap.peek().map(|Reverse(key)| *key);
        lanes.chain(heap).min()
    }

    /// Drops the stale entries at the fronts that `key` (no longer live, or just popped)
    /// was at, and the stale ones behind them. Only a front equal to `key` can have
    /// turned stale (every other front is still live), and `key` is only ever in its
    /// kind's lane or the heap.
    fn drop_stale_fronts(&mut self, key: Key, hold_live: &impl HoldLive) {
        let mut changed = false;
        let lane = lane_of(key);
        if self.lanes[lane].front().is_some_and(|front| *front >= key) {
            while let Some(&front) = self.lanes[lane].front() {
                if self.is_live(front, hold_live) {
                    break;
                }
                self.lanes[lane].pop_front();
            }
            changed = true;
        }
        if self.heap.peek().is_some_and(|Reverse(top)| *top >= key) {
            while let Some(&Reverse(top)) = self.heap.peek() {
                if self.is_live(top, hold_live) {
                    break;
                }
                self.heap.pop();
            }
            changed = true;
        }
        if changed {
            self.least = self.next();
        }
    }
}

/// Equal when the same timers other than holds' are pending (holds' are equal when the
/// holds are).
impl PartialEq for Timers {
    fn eq(&self, other: &Timers) -> bool {
        self.live == other.live
    }
}

impl Eq for Timers {}

/// Decoded from the live timers in order (see `sorted_with`): a hold's timer is filed
/// like any (its hold, decoded with it, makes it live).
impl<'de> Deserialize<'de> for Timers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timers, D::Error> {
        let sorted = BTreeSet::<Timer>::deserialize(deserializer)?;
        if let Some(&(_, _, id)) = sorted.iter().find(|(_, _, id)| *id >= 1 << ID_BITS) {
            return Err(serde::de::Error::custom(format!(
                "a timer's id does not fit in {ID_BITS} bits: {id}"
            )));
        }
        let mut timers = Timers::default();
        for timer in sorted {
            timers.insert(timer);
        }
        Ok(timers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    /// Against a `BTreeSet` (what the queue replaced): the same answers for every
    /// operation of a seeded random sequence, and the same encoding at every step. Half
    /// the timers are filed like holds (a clock that only moves forward plus a fixed delay,
    /// increasing ids: the lanes), the others at random (the heap), and re-filed timers
    /// after a cancel (stale copies of a live key). Hold timers are live while the model
    /// has them (the model plays the hold table), and, like holds, are filed once.
    #[test]
    fn timers_behave_like_an_ordered_set() {
        let mut timers = Timers::default();
        let mut model: BTreeSet<Timer> = BTreeSet::new();
        let mut filed_holds: BTreeSet<Timer> = BTreeSet::new();
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
        let is_hold = |timer: &Timer| timer.1 == TimerKind::HoldExpiry;
        let (mut clock, mut sequence) = (0, 1_000);
        let (mut laned, mut heaped) = (false, false);
        for _ in 0..20_000 {
            match next(5) {
                0 | 1 => {
                    let timer = if next(2) == 0 {
                        clock += next(3);
                        sequence += 1;
                        (clock + 100, kinds[next(3) as usize], sequence)
                    } else {
                        (next(clock + 500), kinds[next(3) as usize], next(1_000))
                    };
                    let fresh = !is_hold(&timer) || filed_holds.insert(timer);
                    if fresh && model.insert(timer) {
                        timers.insert(timer);
                    }
                }
                4 => {
                    // A timer cancelled, then filed again: its stale copy stays queued.
                    let nth = next(model.len() as u64 + 1) as usize;
                    if let Some(&timer) = model.iter().filter(|timer| !is_hold(timer)).nth(nth) {
                        assert!(timers.remove(&timer, |due, id| {
                            model.contains(&(due, TimerKind::HoldExpiry, id))
                        }));
                        timers.insert(timer);
                    }
                }
                2 => {
                    let timer = match model.iter().nth(next(model.len() as u64 + 1) as usize) {
                        Some(&timer) => timer,
                        None => (next(500), kinds[next(3) as usize], next(1_000)),
                    };
                    let removed = model.remove(&timer);
                    let live = |due, id| model.contains(&(due, TimerKind::HoldExpiry, id));
                    if is_hold(&timer) {
                        timers.cancel_hold(&timer, live);
                    } else {
                        assert_eq!(timers.remove(&timer, live), removed);
                    }
                }
                _ => {
                    let before = next(clock + 600);
                    let due = model.first().is_some_and(|(due, _, _)| *due < before);
                    let popped = timers.pop_due_before(before, |due, id| {
                        model.contains(&(due, TimerKind::HoldExpiry, id))
                    });
                    let expected = if due { model.pop_first() } else { None };
                    assert_eq!(popped, expected);
                }
            }
            let live = |due, id| model.contains(&(due, TimerKind::HoldExpiry, id));
            assert_eq!(timers.first().as_ref(), model.first());
            assert_eq!(timers.len(live), model.len());
            let probe = match model.iter().nth(next(model.len() as u64 + 1) as usize) {
                Some(&timer) if next(2) == 0 => timer,
                _ => (next(clock + 500), kinds[next(3) as usize], next(1_000)),
            };
            assert_eq!(
                timers.contains(&probe, live),
                model.contains(&probe),
                "{probe:?}"
            );
            laned |= timers.lanes.iter().any(|lane| lane.len() > 1);
            heaped |= timers.heap.len() > 1;
        }
        assert!(
            laned && heaped,
            "both the lanes and the heap were exercised"
        );
        let live = |due, id| model.contains(&(due, TimerKind::HoldExpiry, id));
        assert_eq!(bytes(&timers.sorted_with(live)), bytes(&model));
        let decoded: Timers = bincode::serde::decode_from_slice(
            &bytes(&timers.sorted_with(live)),
            bincode::config::standard(),
        )
        .unwrap()
        .0;
        assert_eq!(decoded.sorted_with(live), timers.sorted_with(live));
        assert_eq!(decoded.first().as_ref(), model.first());
    }

    fn bytes<T: Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    /// The packed key orders exactly like the tuple, at the extremes of every field,
    /// and unpacks to the same timer.
    #[test]
    fn keys_order_like_timers() {
        let kinds = [
            TimerKind::HoldExpiry,
            TimerKind::WaiterExpiry,
            TimerKind::DeskHoldExpiry,
            TimerKind::Draw,
        ];
        let mut all = Vec::new();
        for due in [0, 1, u64::MAX - 1, u64::MAX] {
            for kind in kinds {
                for id in [0, 1, (1 << ID_BITS) - 2, (1 << ID_BITS) - 1] {
                    all.push((due, kind, id));
                }
            }
        }
        for a in &all {
            assert_eq!(timer(key(*a)), *a);
            for b in &all {
                assert_eq!(key(*a).cmp(&key(*b)), a.cmp(b), "{a:?} against {b:?}");
            }
        }
    }

    /// A snapshot naming a timer id past 62 bits is refused with a reason, not packed
    /// into another timer.
    #[test]
    fn a_timer_id_past_62_bits_does_not_decode() {
        let mut model: BTreeSet<Timer> = BTreeSet::new();
        model.insert((5, TimerKind::HoldExpiry, 1 << ID_BITS));
        let decoded: Result<(Timers, usize), _> =
            bincode::serde::decode_from_slice(&bytes(&model), bincode::config::standard());
        let error = decoded.expect_err("refused").to_string();
        assert!(error.contains("does not fit in 62 bits"), "{error}");
    }

    #[test]
    #[should_panic(expected = "a timer is filed once")]
    fn a_timer_is_filed_once() {
        let mut timers = Timers::default();
        timers.insert((1, TimerKind::WaiterExpiry, 1));
        timers.insert((1, TimerKind::WaiterExpiry, 1));
    }
}
