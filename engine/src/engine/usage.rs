//! Seats held plus booked per (event, user), for the per-user limit (`State::usage`): by
//! user id, a user's first two counters inline; a user's further counters (seats in a
//! third event at once) in a hash map beside, which is probed only for a user that has
//! some there (each user counts them).
//!
//! Perf: every hold reads its user's counter (the limit check), adds to it, and every
//! hold that ends without a booking takes from it; in the hash map this replaces, each of
//! those hashed and probed, and a counter that came and went (a hold released or expired)
//! was an insert and a removal (about 4% of the standard mix). Users are dense ids, so a
//! counter is found by indexing and comparing an event id or two.
//!
//! Encoded as the map it replaces (`sorted_map`): counters sorted by (event, user), so
//! snapshots and the state hash are unchanged. Where a counter sits (which inline slot,
//! or the map) depends on history and is not part of the state's value: equality
//! compares the counters.

use super::state::{EventUser, FastMap};
use super::users::UserId;
use crate::ids::EventId;
use crate::snapshot::CowVec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A user's counters kept inline.
const INLINE: usize = 2;
/// Users per chunk of the table.
const USAGE_CHUNK: usize = 4096;
/// A user id this far past the inline table's end keeps its counters in the map (only a
/// corrupt state has one: users are interned densely), so one decoded counter cannot make
/// the table allocate for 2^32 users (a state whose counters step their way up can, as a
/// state naming 2^32 users could: 20 bytes each, like the ended holds' bound).
const GROWTH_MAX: usize = 1 << 20;

/// One counter; `count` 0: an empty slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counter {
    event: EventId,
    count: u32,
}

const EMPTY: Counter = Counter {
    event: EventId(0),
    count: 0,
};

/// A user's counters kept inline, and how many more of them the map beside keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct UserCounters {
    slots: [Counter; INLINE],
    /// The user's counters in `Usage::more` (perf: a user with none, nearly every user,
    /// never costs a probe of the map).
    spilled: u32,
}

const NO_COUNTERS: UserCounters = UserCounters {
    slots: [EMPTY; INLINE],
    spilled: 0,
};

#[derive(Clone, Default)]
pub(crate) struct Usage {
    /// By user id, the user's counters (those that are not in `more`). Copy-on-write
    /// chunks: users are never forgotten, so a flat table would make every snapshot's
    /// copy grow with every user ever seen.
    by_user: CowVec<UserCounters, USAGE_CHUNK>,
    /// The counters that found no free inline slot: never zero, never also inline.
    more: FastMap<EventUser, u32>,
    /// The counters (all non-zero).
    len: usize,
}

/// Moves an inline `counter` (not zero) by `delta`; `len` counts one fewer when it reaches
/// zero (its slot is then free).
#[inline]
fn move_counter(counter: &mut Counter, delta: i64, len: &mut usize) {
    let next = i64::from(counter.count) + delta;
    assert!(next >= 0, "usage went negative");
    counter.count = u32::try_from(next).expect("a user's seats fit in u32");
    if next == 0 {
        *len -= 1;
    }
}

impl Usage {
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    /// Asks the cache for `user`'s counters ([`super::prefetch`]).
    #[inline]
    pub(crate) fn prefetch(&self, user: UserId) {
        if let Some(counters) = self.by_user.get(user.0 as usize) {
            super::prefetch::hint(counters);
        }
    }

    /// Seats `user` holds plus has booked in `event` (0 when none).
    #[inline]
    pub(crate) fn get(&self, event: EventId, user: UserId) -> u32 {
        match self.by_user.get(user.0 as usize) {
            Some(counters) => {
                for counter in &counters.slots {
                    if counter.count > 0 && counter.event == event {
                        return counter.count;
                    }
                }
                if counters.spilled == 0 {
                    return 0;
                }
            }
            None if self.more.is_empty() => return 0,
            None => {}
        }
        self.more
            .get(&EventUser::new(event, user))
            .copied()
            .unwrap_or(0)
    }

    /// Moves `user`'s counter in `event` by `delta` (it must not go negative); a counter
    /// that reaches zero is gone. Perf: always inlined (every hold, release and expiry
    /// moves a counter; the compiler kept the call).
    #[inline(always)]
    pub(crate) fn add(&mut self, event: EventId, user: UserId, delta: i64) {
        // Perf: the common cases inline (a counter of the user's inline slots moves, or a
        // new one takes a free slot of a user with none beside); anything else, the table
        // growing for a new user included, in `add_other`. The same steps either way.
        if let Some(counters) = self.by_user.get_mut(user.0 as usize) {
            let slots = &mut counters.slots;
            if let Some(counter) = slots
                .iter_mut()
                .find(|counter| counter.count > 0 && counter.event == event)
            {
                return move_counter(counter, delta, &mut self.len);
            }
            if counters.spilled == 0 && delta > 0 {
                if let Some(free) = slots.iter_mut().find(|counter| counter.count == 0) {
                    let count = u32::try_from(delta).expect("a user's seats fit in u32");
                    *free = Counter { event, count };
                    self.len += 1;
                    return;
                }
            }
        }
        self.add_other(event, user, delta);
    }

    /// [`Usage::add`] in full.
    #[inline(never)]
    fn add_other(&mut self, event: EventId, user: UserId, delta: i64) {
        let index = user.0 as usize;
        if index >= self.by_user.len() && index < self.by_user.len() + GROWTH_MAX {
            // Perf: for the next user id (users are dense ids, and a new one nearly
            // always takes the next), room for the users after it up to the end of its
            // chunk as well, so growing is not a call per user. Never more: doubling the
            // table here pushed 1,048,576 empty counters in the millionth user's command,
            // 43-55 ms of the engine thread (`engine_new_users`, BENCHMARKS.md).
            let len = if index == self.by_user.len() {
                (index + 1).next_multiple_of(USAGE_CHUNK)
            } else {
                index + 1
            };
            while self.by_user.len() < len {
                if len - self.by_user.len() >= USAGE_CHUNK {
                    self.by_user.append_chunk_of(NO_COUNTERS);
                } else {
                    self.by_user.append(NO_COUNTERS);
                }
            }
        }
        let Some(counters) = self.by_user.get_mut(index) else {
            // A far user id (a corrupt state's): its counters live in the map.
            return self.add_beside(EventUser::new(event, user), delta, None);
        };
        for counter in &mut counters.slots {
            if counter.count > 0 && counter.event == event {
                return move_counter(counter, delta, &mut self.len);
            }
        }
        if counters.spilled > 0 {
            let key = EventUser::new(event, user);
            if self.more.contains_key(&key) {
                return self.add_beside(key, delta, Some(index));
            }
        }
        // A new counter.
        assert!(delta >= 0, "usage went negative");
        if delta == 0 {
            return;
        }
        let count = u32::try_from(delta).expect("a user's seats fit in u32");
        self.len += 1;
        match counters.slots.iter_mut().find(|counter| counter.count == 0) {
            Some(free) => *free = Counter { event, count },
            None => {
                counters.spilled += 1;
                self.more.insert(EventUser::new(event, user), count);
            }
        }
    }

    /// [`Usage::add`] for a counter in the map beside: of the user at `index`, or (`None`)
    /// of a far user id, whose counters all live there (then it may be new).
    fn add_beside(&mut self, key: EventUser, delta: i64, index: Option<usize>) {
        use std::collections::hash_map::Entry;
        match self.more.entry(key) {
            Entry::Occupied(mut counter) => {
                let next = i64::from(*counter.get()) + delta;
                assert!(next >= 0, "usage went negative");
                if next == 0 {
                    counter.remove();
                    self.len -= 1;
                    if let Some(index) = index {
                        self.by_user[index].spilled -= 1;
                    }
                } else {
                    *counter.get_mut() = u32::try_from(next).expect("a user's seats fit in u32");
                }
            }
            Entry::Vacant(counter) => {
                assert!(delta >= 0, "usage went negative");
                assert!(index.is_none(), "a spilled counter is in the map");
                if delta > 0 {
                    counter.insert(u32::try_from(delta).expect("a user's seats fit in u32"));
                    self.len += 1;
                }
            }
        }
    }

    /// The counters sorted by (event, user).
    pub(crate) fn sorted(&self) -> Vec<(EventUser, u32)> {
        let mut counters: Vec<(EventUser, u32)> = self
            .by_user
            .iter()
            .enumerate()
            .flat_map(|(user, counters)| {
                counters
                    .slots
                    .iter()
                    .filter(|counter| counter.count > 0)
                    .map(move |counter| {
                        (
                            EventUser::new(counter.event, UserId(user as u32)),
                            counter.count,
                        )
                    })
            })
            .chain(self.more.iter().map(|(key, count)| (*key, *count)))
            .collect();
        counters.sort_unstable_by_key(|(key, _)| *key);
        counters
    }

    /// Asserts the table's form (for `check_invariants`): counted, no zero in the map,
    /// no counter twice.
    pub(crate) fn check(&self) {
        let counters = self.sorted();
        assert_eq!(counters.len(), self.len, "the usage counters are counted");
        assert!(
            counters.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "a usage counter is kept once"
        );
        assert!(
            self.more.values().all(|count| *count > 0),
            "no zero usage counter is kept"
        );
        let mut spilled = vec![0u32; self.by_user.len()];
        for key in self.more.keys() {
            if let Some(count) = spilled.get_mut(key.user().0 as usize) {
                *count += 1;
            }
        }
        assert!(
            self.by_user
                .iter()
                .zip(spilled.iter())
                .all(|(counters, spilled)| counters.spilled == *spilled),
            "each user's counters in the map are counted"
        );
    }
}

impl PartialEq for Usage {
    fn eq(&self, other: &Usage) -> bool {
        self.len == other.len && self.sorted() == other.sorted()
    }
}

impl Eq for Usage {}

impl std::fmt::Debug for Usage {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_map().entries(self.sorted()).finish()
    }
}

impl Serialize for Usage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let counters = self.sorted();
        super::state::sorted_map::serialize_entries(serializer, counters.len(), counters)
    }
}

impl<'de> Deserialize<'de> for Usage {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Usage, D::Error> {
        let counters = BTreeMap::<EventUser, u32>::deserialize(deserializer)?;
        let mut usage = Usage::default();
        for (key, count) in counters {
            if count == 0 {
                return Err(serde::de::Error::custom("a usage counter is zero"));
            }
            usage.add(key.event(), key.user(), i64::from(count));
        }
        Ok(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::state::sorted_map;

    #[derive(Serialize)]
    struct Sorted<'a>(#[serde(with = "sorted_map")] &'a FastMap<EventUser, u32>);

    /// Compares the table with the map it replaced: answers, length, the encodings
    /// (bincode; JSON, which refuses pair keys, alike), and a decoded copy.
    fn compare(usage: &Usage, map: &FastMap<EventUser, u32>, probes: &[(u32, u32)]) {
        usage.check();
        assert_eq!(usage.len(), map.len());
        for &(event, user) in probes {
            let (event, user) = (EventId(event), UserId(user));
            assert_eq!(
                usage.get(event, user),
                map.get(&EventUser::new(event, user)).copied().unwrap_or(0),
                "event {event:?} user {user:?}"
            );
        }
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(usage, config).unwrap();
        assert_eq!(
            bytes,
            bincode::serde::encode_to_vec(Sorted(map), config).unwrap()
        );
        // (JSON has no pair keys: both refuse alike.)
        assert_eq!(
            serde_json::to_string(usage).map_err(|error| error.to_string()),
            serde_json::to_string(&Sorted(map)).map_err(|error| error.to_string())
        );
        let (decoded, _): (Usage, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        decoded.check();
        assert_eq!(&decoded, usage);
    }

    /// Driven against the hash map it replaced (the old `add_usage`) through a
    /// deterministic mix of holds and their ends over a few events and users (users with
    /// counters in up to five events at once, so the map beside the inline slots is used
    /// and emptied), the table answers and encodes exactly like the map.
    #[test]
    fn usage_behaves_and_encodes_like_the_map() {
        let mut usage = Usage::default();
        let mut map: FastMap<EventUser, u32> = FastMap::default();
        let mut live: Vec<(u32, u32, u32)> = Vec::new();
        let mut seed = 3u64;
        let mut next = |bound: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % bound
        };
        for round in 0..40_000u32 {
            if next(100) < 55 || live.is_empty() {
                let (event, user, quantity) = (
                    next(5) as u32 * 7,
                    next(60 + u64::from(round / 1_000)) as u32,
                    1 + next(4) as u32,
                );
                usage.add(EventId(event), UserId(user), i64::from(quantity));
                *map.entry(EventUser::new(EventId(event), UserId(user)))
                    .or_default() += quantity;
                live.push((event, user, quantity));
            } else {
                let (event, user, quantity) = live.swap_remove(next(live.len() as u64) as usize);
                usage.add(EventId(event), UserId(user), -i64::from(quantity));
                let key = EventUser::new(EventId(event), UserId(user));
                let count = map.get_mut(&key).unwrap();
                *count -= quantity;
                if *count == 0 {
                    map.remove(&key);
                }
            }
            // A zero move of a missing counter keeps nothing.
            usage.add(EventId(1), UserId(round % 70), 0);
            if round % 997 == 0 {
                let probes: Vec<(u32, u32)> = (0..36)
                    .flat_map(|event| (0..110).map(move |user| (event, user)))
                    .collect();
                compare(&usage, &map, &probes);
            }
        }
        assert!(!usage.more.is_empty(), "the map beside was used");
        for (event, user, quantity) in live {
            usage.add(EventId(event), UserId(user), -i64::from(quantity));
        }
        assert_eq!(usage.len(), 0);
        assert!(usage.more.is_empty());
        assert_eq!(usage, Usage::default());
        // A far user id (only in a corrupt state) keeps its counter in the map.
        let table = usage.by_user.len();
        usage.add(EventId(2), UserId(u32::MAX), 3);
        assert_eq!(usage.by_user.len(), table);
        assert_eq!(usage.get(EventId(2), UserId(u32::MAX)), 3);
        usage.check();
    }
}
