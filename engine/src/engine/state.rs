//! The replicated state: per-seat tags, events with their categories, pools and
//! queues, holds, bookings, waiters, timers and usage. `State` is exactly what a
//! snapshot holds.

use super::users::UserId;
use crate::command::*;
use crate::config::ConfigStamp;
use crate::idempotency::DIGEST_BYTES;
use crate::ids::*;
use crate::layout::Layout;
use crate::outcome::*;
use crate::snapshot::CowVec;
pub(crate) use crate::tickets::TicketsUsed;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Live waiters by id. Encodes like the sorted map it was.
pub(crate) type Waiters = crate::chunked::ChunkedMap<WaiterId, Waiter, 512>;
/// Live waiters per (event, user). Encodes like the sorted map it was.
pub(crate) type WaitersByUser = crate::chunked::ChunkedMap<EventUser, u32, 1024>;
/// Ended holds, by when they ended: (when, which). Encodes like the `VecDeque` it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EndedHoldQueue {
    queue: crate::chunked::ChunkedDeque<(u64, HoldId), 4096>,
    /// When the first ended (`u64::MAX` while none has). Derived (rebuilt on decode).
    /// Perf: the clock asks before every command whether the first is past its
    /// retention; a look at the queue's front was about 1% of the standard mix.
    first_ended_ms: u64,
}

impl Default for EndedHoldQueue {
    fn default() -> EndedHoldQueue {
        EndedHoldQueue {
            queue: crate::chunked::ChunkedDeque::new(),
            first_ended_ms: u64::MAX,
        }
    }
}

impl EndedHoldQueue {
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// When the first ended hold ended (`u64::MAX` while none has).
    #[inline]
    pub(crate) fn first_ended_ms(&self) -> u64 {
        debug_assert_eq!(
            self.first_ended_ms,
            self.queue.front().map_or(u64::MAX, |(ended, _)| *ended)
        );
        self.first_ended_ms
    }

    #[inline]
    pub(crate) fn push_back(&mut self, ended: (u64, HoldId)) {
        if self.queue.is_empty() {
            self.first_ended_ms = ended.0;
        }
        self.queue.push_back(ended);
    }

    pub(crate) fn take_front(&mut self) -> Option<(u64, HoldId)> {
        let first = self.queue.take_front();
        self.first_ended_ms = self.queue.front().map_or(u64::MAX, |(ended, _)| *ended);
        first
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &(u64, HoldId)> + '_ {
        self.queue.iter()
    }
}

impl Serialize for EndedHoldQueue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.queue.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for EndedHoldQueue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let queue = crate::chunked::ChunkedDeque::<(u64, HoldId), 4096>::deserialize(deserializer)?;
        let first_ended_ms = queue.front().map_or(u64::MAX, |(ended, _)| *ended);
        Ok(EndedHoldQueue {
            queue,
            first_ended_ms,
        })
    }
}
use std::sync::Arc;

/// Hash maps with a fixed, fast hasher for integer keys (the counters of users holding in
/// three events or more at once), looked up but never iterated on the engine thread. The tables that were
/// such maps (holds, ended holds, waiters, per-user counters) encode sorted by key,
/// exactly like a `BTreeMap` (`sorted_map`), so the encoding, and with it `state_hash`,
/// has one canonical form; their tests compare them with the maps they replaced.
pub(crate) type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// `#[serde(with = "sorted_map")]`: a [`FastMap`] encoded in key order, like a `BTreeMap`.
pub(crate) mod sorted_map {
    use serde::ser::SerializeMap;
    use serde::{Serialize, Serializer};

    #[cfg(test)]
    pub(crate) fn serialize<K: Ord + Serialize, V: Serialize, S: Serializer>(
        map: &super::FastMap<K, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<(&K, &V)> = map.iter().collect();
        entries.sort_unstable_by(|left, right| left.0.cmp(right.0));
        serialize_entries(serializer, entries.len(), entries)
    }

    /// `len` entries, already in key order, encoded as a map (like a `BTreeMap`'s): the
    /// one encoding of every table that replaces a sorted map.
    pub(crate) fn serialize_entries<K: Serialize, V: Serialize, S: Serializer>(
        serializer: S,
        len: usize,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<S::Ok, S::Error> {
        let mut encoded = serializer.serialize_map(Some(len))?;
        for (key, value) in entries {
            encoded.serialize_entry(&key, &value)?;
        }
        encoded.end()
    }
}

/// A per-(event, user) counter's key (`State::usage`, `State::waiters_by_user`): the
/// event id in the high 32 bits, the user id in the low 32. Perf: one `u64` hashes in
/// one step and compares in one, where the `(EventId, UserId)` pair it replaces hashed
/// two fields. It orders exactly like the pair and encodes as the pair, so the sorted
/// encoding of the maps, and the state hash, are unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct EventUser(u64);

impl EventUser {
    pub(crate) fn new(event: EventId, user: UserId) -> EventUser {
        EventUser((u64::from(event.0) << 32) | u64::from(user.0))
    }

    pub(crate) fn event(self) -> EventId {
        EventId((self.0 >> 32) as u32)
    }

    pub(crate) fn user(self) -> UserId {
        UserId(self.0 as u32)
    }

    /// The pair it stands for (and encodes as).
    pub(crate) fn pair(self) -> (EventId, UserId) {
        (self.event(), self.user())
    }
}

// Both ids are 32 bits: packing loses nothing, and the order is the pair's.
const _: () = assert!(std::mem::size_of::<EventId>() == 4 && std::mem::size_of::<UserId>() == 4);

impl Serialize for EventUser {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.pair().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for EventUser {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<EventUser, D::Error> {
        let (event, user) = <(EventId, UserId)>::deserialize(deserializer)?;
        Ok(EventUser::new(event, user))
    }
}

pub(crate) use crate::ledger::{
    held_in, Category, Pool, SeatKind, SeatLedger, SeatState, WaitQueue, WaitQueues,
    EVENT_SEATS_LIMIT, HOLD_SLOT_CHUNK, OWNER_MASK, SEAT_FREE, TAG_BOOKED, TAG_HELD, TAG_MASK,
};

/// Copy-on-write chunk sizes (see `snapshot`): a write after a snapshot copies one chunk
/// (a few hundred bookings), never a whole event or the state.
pub(super) const BOOKING_CHUNK: usize = 256;
pub(super) const EVENT_BOOKING_CHUNK: usize = 4 * 1024;
pub(crate) const USER_CHUNK: usize = 1024;

/// An event. Perf: laid out by hand (`repr(C)`, each event on its own cache lines), so
/// that what a hold reads shares lines: the layout, whether canceled and the sales window
/// with the spec's first fields (line 0); the order and per-user limits, the time to
/// live, the waitlist policy and the count of waiters with the spec's last (line 4); then
/// the ledger, in five lines of its own (5-9). In the compiler's order (752
/// bytes, at any offset) a hold touched about ten of an event's twelve lines; the
/// standard mix's holds go to 201 events, more lines than the first-level cache keeps.
/// `the_hot_fields_of_an_event_share_cache_lines` checks the lines.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Event {
    /// Shared by snapshot copies: a layout never changes once built.
    pub(crate) layout: Arc<Layout>,
    pub(crate) canceled: bool,
    /// The spec as last updated, without its sections (the layout has them).
    pub(crate) spec: EventSpec,
    /// FCFS queues by requested category (`ledger::WaitQueues`: the one implementation,
    /// which the read model applies outcomes through too).
    pub(crate) waitlist: WaitQueues,
    /// Its seats, places and counts (`ledger`: the one implementation of seat accounting).
    pub(crate) ledger: SeatLedger,
    /// The arrival window's draw, for an event created with one.
    pub(crate) draw: Option<Box<Draw>>,
    pub(crate) tenant: String,
    /// Waiters per (queue, together, quantity): a queue's largest and smallest requests
    /// without walking it. Zero counts are removed.
    pub(crate) waiter_needs: BTreeMap<(Option<u16>, bool, u32), u32>,
    pub(crate) bookings: CowVec<BookingId, EVENT_BOOKING_CHUNK>,
    /// Its terms of sale, for an event created with them (`None`:
    /// `EventTerms::without_terms`: the deployment's currency, cancel at any time).
    pub(crate) terms: Option<Box<crate::terms::EventTerms>>,
}

/// An event as snapshots encode it: the ledger's fields among the event's, in the order
/// they had before the ledger gathered them, so the snapshot format and `state_hash`
/// stay what they were. The seats are encoded as the words the ledger once kept
/// ([`SeatWords`]).
#[derive(Serialize)]
struct EventEncoding<'a> {
    tenant: &'a String,
    spec: &'a EventSpec,
    canceled: bool,
    categories: &'a Vec<Category>,
    layout: &'a Layout,
    seats: SeatWords<'a>,
    row_free: &'a Vec<u32>,
    row_open_run: &'a Vec<u32>,
    pools: &'a Vec<Pool>,
    queues: &'a BTreeMap<Option<u16>, WaitQueue>,
    waiter_needs: &'a BTreeMap<(Option<u16>, bool, u32), u32>,
    waiting: u32,
    bookings: &'a CowVec<BookingId, EVENT_BOOKING_CHUNK>,
    hold_slots: &'a CowVec<u64, HOLD_SLOT_CHUNK>,
    free_hold_slots: &'a CowVec<u32, HOLD_SLOT_CHUNK>,
    draw: &'a Option<Box<Draw>>,
    terms: &'a Option<Box<crate::terms::EventTerms>>,
}

/// [`EventEncoding`], decoded.
#[derive(Deserialize)]
struct EventDecoding {
    tenant: String,
    spec: EventSpec,
    canceled: bool,
    categories: Vec<Category>,
    #[serde(deserialize_with = "crate::snapshot::shared::deserialize")]
    layout: Arc<Layout>,
    seats: DecodedSeatWords,
    row_free: Vec<u32>,
    row_open_run: Vec<u32>,
    pools: Vec<Pool>,
    queues: BTreeMap<Option<u16>, WaitQueue>,
    waiter_needs: BTreeMap<(Option<u16>, bool, u32), u32>,
    waiting: u32,
    bookings: CowVec<BookingId, EVENT_BOOKING_CHUNK>,
    hold_slots: CowVec<u64, HOLD_SLOT_CHUNK>,
    free_hold_slots: CowVec<u32, HOLD_SLOT_CHUNK>,
    draw: Option<Box<Draw>>,
    terms: Option<Box<crate::terms::EventTerms>>,
}

/// The (seat, slot) of every seat held by a live hold of `ledger`'s event, by seat: each
/// slot in use names a live hold, whose seats it holds. `Err` names a slot's hold that
/// is not live.
fn held_seat_slots(
    ledger: &SeatLedger,
    holds: &super::LiveHolds,
) -> Result<Vec<(u32, u32)>, HoldId> {
    let mut held = Vec::new();
    for (slot, &hold_id) in ledger.hold_slots.iter().enumerate() {
        if hold_id == 0 {
            continue;
        }
        let hold = holds.get(&HoldId(hold_id)).ok_or(HoldId(hold_id))?;
        if let Items::Seats(seats) = &hold.items {
            held.extend(seats.iter().map(|&seat| (seat, slot as u32)));
        }
    }
    held.sort_unstable();
    Ok(held)
}

/// An event's seats as a snapshot encodes them: a [`SeatState`] word per seat, a held
/// seat's naming its hold's slot (from the live holds: [`held_seat_slots`]). Encodes
/// exactly like the `Vec<SeatState>` the ledger kept until session 38.
struct SeatWords<'a> {
    ledger: &'a SeatLedger,
    /// The held seats with their holds' slots, by seat.
    held: Vec<(u32, u32)>,
}

impl Serialize for SeatWords<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut encoded = serializer.serialize_seq(Some(self.ledger.seat_count()))?;
        let mut held = self.held.iter();
        for (seat, kind) in self.ledger.bits.kinds().enumerate() {
            let word = match kind {
                SeatKind::Free => SEAT_FREE,
                SeatKind::Booked => TAG_BOOKED,
                SeatKind::Held => {
                    let (held_seat, slot) = held.next().expect("a held seat is a live hold's");
                    assert_eq!(*held_seat, seat as u32, "a held seat is a live hold's");
                    held_in(*slot)
                }
            };
            encoded.serialize_element(&word)?;
        }
        assert!(held.next().is_none(), "a live hold's seats are held");
        encoded.end()
    }
}

/// [`SeatWords`], decoded: the seats' kinds, and the held ones' slots (checked against
/// the live holds once they are decoded: `State`'s `TryFrom`).
struct DecodedSeatWords {
    kinds: Vec<SeatKind>,
    held: Vec<(u32, u32)>,
}

impl<'de> Deserialize<'de> for DecodedSeatWords {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WordsVisitor;

        impl<'de> serde::de::Visitor<'de> for WordsVisitor {
            type Value = DecodedSeatWords;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a sequence of seat words")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut words: A,
            ) -> Result<DecodedSeatWords, A::Error> {
                // Perf: a kind is a byte; the words (4 bytes) are not kept.
                let mut kinds = Vec::with_capacity(words.size_hint().unwrap_or(0).min(1 << 20));
                let mut held = Vec::new();
                while let Some(word) = words.next_element::<SeatState>()? {
                    let seat = u32::try_from(kinds.len())
                        .ok()
                        .filter(|seat| *seat < EVENT_SEATS_LIMIT)
                        .ok_or_else(|| serde::de::Error::custom("too many seats"))?;
                    let kind = match word & TAG_MASK {
                        SEAT_FREE if word == SEAT_FREE => SeatKind::Free,
                        TAG_BOOKED if word & OWNER_MASK == 0 => SeatKind::Booked,
                        TAG_HELD => {
                            held.push((seat, word & OWNER_MASK));
                            SeatKind::Held
                        }
                        _ => {
                            return Err(serde::de::Error::custom(format!(
                                "corrupt seat word {word:#x}"
                            )))
                        }
                    };
                    kinds.push(kind);
                }
                Ok(DecodedSeatWords { kinds, held })
            }
        }

        deserializer.deserialize_seq(WordsVisitor)
    }
}

/// An event of a state's encoding, with its seats (see [`SeatWords`]).
struct EventWithHolds<'a> {
    event: &'a Event,
    holds: &'a super::LiveHolds,
}

impl Serialize for EventWithHolds<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (event, ledger) = (self.event, &self.event.ledger);
        EventEncoding {
            tenant: &event.tenant,
            spec: &event.spec,
            canceled: event.canceled,
            categories: &ledger.categories,
            layout: &event.layout,
            seats: SeatWords {
                ledger,
                held: held_seat_slots(ledger, self.holds)
                    .unwrap_or_else(|hold| panic!("a hold slot names {hold}, not live")),
            },
            row_free: &ledger.row_free,
            row_open_run: &ledger.row_open_run,
            pools: &ledger.pools,
            queues: &event.waitlist.queues,
            waiter_needs: &event.waiter_needs,
            waiting: event.waitlist.waiting,
            bookings: &event.bookings,
            hold_slots: &ledger.hold_slots,
            free_hold_slots: &ledger.free_hold_slots,
            draw: &event.draw,
            terms: &event.terms,
        }
        .serialize(serializer)
    }
}

/// A state's events as it encodes them (a sequence, like the `Vec<Event>` it is).
struct EventsEncoding<'a> {
    events: &'a [Event],
    holds: &'a super::LiveHolds,
}

impl Serialize for EventsEncoding<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut encoded = serializer.serialize_seq(Some(self.events.len()))?;
        for event in self.events {
            encoded.serialize_element(&EventWithHolds {
                event,
                holds: self.holds,
            })?;
        }
        encoded.end()
    }
}

impl EventDecoding {
    /// The event, once the live holds are decoded: its held seats' slots must be the
    /// slots of the live holds that hold them (as [`SeatWords`] wrote them), so that the
    /// state encodes again to the same bytes.
    fn into_event(self, holds: &super::LiveHolds) -> Result<Event, String> {
        let seat_count = u32::try_from(self.seats.kinds.len()).expect("under EVENT_SEATS_LIMIT");
        if seat_count != self.layout.seat_count {
            return Err(format!(
                "an event has {seat_count} seat words for {} seats",
                self.layout.seat_count
            ));
        }
        let ledger = SeatLedger::of_parts(
            self.categories,
            self.seats.kinds,
            seat_count,
            self.row_free,
            self.row_open_run,
            self.pools,
            self.hold_slots,
            self.free_hold_slots,
        );
        let expected = held_seat_slots(&ledger, holds)
            .map_err(|hold| format!("a hold slot names {hold}, which is not live"))?;
        if expected != self.seats.held {
            return Err("the held seats are not the live holds' seats".to_string());
        }
        Ok(Event {
            tenant: self.tenant,
            spec: self.spec,
            canceled: self.canceled,
            layout: self.layout,
            ledger,
            waitlist: WaitQueues {
                queues: self.queues,
                waiting: self.waiting,
            },
            waiter_needs: self.waiter_needs,
            bookings: self.bookings,
            draw: self.draw,
            terms: self.terms,
        })
    }
}

/// An event's arrival window and its draw (see `crate::draw`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Draw {
    pub(crate) opens_at_ms: u64,
    /// The event's `sales_open_at` (fixed while the draw is pending).
    pub(crate) draws_at_ms: u64,
    pub(crate) commitment: [u8; crate::draw::DRAW_BYTES],
    /// The organiser's seed, once revealed and checked.
    pub(crate) seed: Option<[u8; crate::draw::DRAW_BYTES]>,
    /// Entries not drawn yet, in arrival order: waiters in no queue (`place` `None`).
    pub(crate) entries: Vec<WaiterId>,
    /// The fallback chain over the requests applied in the window's last second.
    pub(crate) chain: [u8; crate::draw::DRAW_BYTES],
    pub(crate) chain_records: u32,
    /// Log times of the first and last chained request (0 while none).
    pub(crate) chain_from_ms: u64,
    pub(crate) chain_to_ms: u64,
    pub(crate) made: bool,
}

impl Draw {
    /// Whether a request at `now_ms` is an entry rather than `sales_not_open`.
    pub(crate) fn is_open(&self, now_ms: u64) -> bool {
        !self.made && (self.opens_at_ms..self.draws_at_ms).contains(&now_ms)
    }
}

impl Event {
    pub(super) fn category_index(&self, name: &str) -> Option<u16> {
        self.ledger
            .categories
            .iter()
            .position(|category| category.name == name)
            .map(|index| index as u16)
    }

    /// Why sales are closed at `now_ms`, or `None` while they are open.
    pub(super) fn sales_closed(&self, now_ms: u64) -> Option<SalesClosedReason> {
        if self.spec.sales_open_at_ms.is_some_and(|open| now_ms < open) {
            Some(SalesClosedReason::NotOpenYet)
        } else if self
            .spec
            .sales_close_at_ms
            .is_some_and(|close| now_ms >= close)
        {
            Some(SalesClosedReason::Closed)
        } else {
            None
        }
    }

    /// Seats free right now in a category (in every category for `None`).
    pub(super) fn free(&self, category: Option<u16>) -> u64 {
        self.ledger.free(category)
    }

    /// The refusal of a request for `category` that cannot be met, saying what is left.
    pub(super) fn sold_out(&self, category: Option<u16>) -> Rejection {
        Rejection::SoldOut {
            category,
            free: self.free(category),
        }
    }

    /// The count of waiters of (queue, together, quantity) moves by one.
    pub(super) fn count_need(&mut self, need: (Option<u16>, bool, u32), joined: bool) {
        if joined {
            *self.waiter_needs.entry(need).or_default() += 1;
            return;
        }
        let count = self
            .waiter_needs
            .get_mut(&need)
            .expect("every waiter is counted in its need");
        *count -= 1;
        if *count == 0 {
            self.waiter_needs.remove(&need);
        }
    }

    /// The smallest quantity a waiter of `queue` with `together` asks for.
    pub(super) fn smallest_need(&self, queue: Option<u16>, together: bool) -> Option<u32> {
        self.waiter_needs
            .range((queue, together, 0)..=(queue, together, u32::MAX))
            .next()
            .map(|((_, _, quantity), _)| *quantity)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hold {
    pub(crate) event: EventId,
    pub(crate) user: UserId,
    pub(crate) items: Items,
    pub(crate) created_at_ms: u64,
    pub(crate) expires_at_ms: u64,
    /// When the hold's seats return: `expires_at_ms` plus the confirm grace in force
    /// when the hold was made. Stored, never recomputed from the configuration, so the
    /// expiry timer's key and every check agree whatever is configured later.
    pub(crate) due_ms: u64,
    pub(crate) waiter: Option<WaiterId>,
    /// The hold's slot in its event's `hold_slots`, when it holds seats.
    pub(crate) slot: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum HoldEnd {
    Confirmed,
    Released,
    Expired,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EndedHold {
    pub(crate) user: UserId,
    pub(crate) end: HoldEnd,
}

/// The ended holds kept (for the answer to a confirm or release of a hold that has
/// ended), by id: a window of slots from the least kept id to the greatest. Perf: holds
/// end in nearly the order they were made (within their time to live) and are kept for
/// a day, so the kept ids are dense: filing one is a write at the window's back, where
/// the hash map it replaces cost a hash insert (and the growth of a table that holds a
/// day of holds): 3% of the standard mix. The window spans at most the holds made
/// between the oldest kept one's creation and now, each slot 8 bytes (a hash map entry
/// took about 19).
///
/// Encoded as the map it replaces (`sorted_map`): entries in id order, so snapshots
/// and the state hash are unchanged. The slots are copy-on-write chunks, so a snapshot's
/// copy is a pointer per 4,096 slots (a flat window of 1.33M ended holds cost the engine
/// thread 1-5 ms per copy).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EndedHolds {
    /// The id of `slots[0]`; 0 while the window is empty (one canonical form).
    first: u64,
    /// `slots[i]` is the ended hold of id `first + i`, if it is kept. The first and the
    /// last slots are filled (the window is trimmed to its kept ids).
    slots: crate::chunked::ChunkedDeque<Option<EndedHold>, 4096>,
    /// The filled slots.
    len: usize,
}

/// The widest window a decoded state may ask for: 2^32 slots (32 GiB). A snapshot
/// asking for more is corrupt; refusing it keeps decoding from allocating without bound.
const ENDED_HOLDS_SPAN_MAX: u64 = 1 << 32;

const _: () = assert!(
    std::mem::size_of::<Option<EndedHold>>() == 8,
    "an ended hold's slot is 8 bytes"
);

impl EndedHolds {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The slot of `id`, if the window covers it.
    fn offset(&self, id: HoldId) -> Option<usize> {
        let offset = usize::try_from(id.0.checked_sub(self.first)?).ok()?;
        (offset < self.slots.len()).then_some(offset)
    }

    pub(crate) fn get(&self, id: HoldId) -> Option<&EndedHold> {
        self.slots.get(self.offset(id)?)?.as_ref()
    }

    /// Files a hold that has just ended (a hold ends once).
    pub(crate) fn insert(&mut self, id: HoldId, ended: EndedHold) {
        if self.slots.is_empty() {
            self.first = id.0;
            self.slots.push_back(Some(ended));
        } else if id.0 < self.first {
            // A hold older than every kept one (it lived longer than those after it).
            let gap = usize::try_from(self.first - id.0).expect("the window fits in memory");
            for _ in 1..gap {
                self.slots.push_front(None);
            }
            self.slots.push_front(Some(ended));
            self.first = id.0;
        } else {
            let offset = usize::try_from(id.0 - self.first).expect("the window fits in memory");
            if offset < self.slots.len() {
                let slot = self.slots.get_mut(offset).expect("inside the window");
                assert!(slot.is_none(), "a hold ends once: {id:?}");
                *slot = Some(ended);
            } else {
                // The common case: the newest hold to end so far.
                while self.slots.len() < offset {
                    self.slots.push_back(None);
                }
                self.slots.push_back(Some(ended));
            }
        }
        self.len += 1;
        debug_assert!(self.is_trimmed());
    }

    /// Forgets an ended hold; what it was, if it was kept.
    pub(crate) fn remove(&mut self, id: HoldId) -> Option<EndedHold> {
        let offset = self.offset(id)?;
        self.slots.get(offset)?.as_ref()?;
        let removed = if offset == 0 {
            // The front (the common case): popped, no write, so no chunk is copied.
            self.first += 1;
            self.slots.take_front().flatten()
        } else {
            self.slots.get_mut(offset).and_then(Option::take)
        }
        .expect("checked: kept");
        self.len -= 1;
        // Holds are forgotten in the order they ended, so nearly always from the front.
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.first += 1;
        }
        while let Some(None) = self.slots.back() {
            self.slots.pop_back();
        }
        if self.slots.is_empty() {
            self.first = 0;
        }
        debug_assert!(self.is_trimmed());
        Some(removed)
    }

    /// The kept ended holds in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (HoldId, &EndedHold)> + '_ {
        self.slots.iter().enumerate().filter_map(|(offset, slot)| {
            slot.as_ref()
                .map(|ended| (HoldId(self.first + offset as u64), ended))
        })
    }

    /// The window's one canonical form: trimmed, `first` 0 when empty (checked after
    /// every change in debug builds; `check` also counts).
    fn is_trimmed(&self) -> bool {
        self.slots.front().is_none_or(Option::is_some)
            && self.slots.back().is_none_or(Option::is_some)
            && (!self.slots.is_empty() || self.first == 0)
            && self.len <= self.slots.len()
    }

    /// Asserts the canonical form and the count (for `check_invariants`).
    pub(crate) fn check(&self) {
        assert!(self.is_trimmed(), "the ended holds' window is trimmed");
        assert_eq!(
            self.len,
            self.slots.iter().filter(|slot| slot.is_some()).count(),
            "the ended holds are counted"
        );
    }
}

impl Serialize for EndedHolds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        sorted_map::serialize_entries(serializer, self.len, self.iter())
    }
}

impl<'de> Deserialize<'de> for EndedHolds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<EndedHolds, D::Error> {
        let entries = BTreeMap::<HoldId, EndedHold>::deserialize(deserializer)?;
        let mut ended_holds = EndedHolds::default();
        if let (Some((least, _)), Some((greatest, _))) =
            (entries.first_key_value(), entries.last_key_value())
        {
            if greatest.0 - least.0 >= ENDED_HOLDS_SPAN_MAX {
                return Err(serde::de::Error::custom(
                    "the ended holds span more than 2^32 ids",
                ));
            }
        }
        for (id, ended) in entries {
            ended_holds.insert(id, ended);
        }
        Ok(ended_holds)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Booking {
    pub(crate) hold: HoldId,
    pub(crate) event: EventId,
    pub(crate) user: UserId,
    pub(crate) items: Items,
    pub(crate) total_cents: u64,
    pub(crate) payment_ref: PaymentRef,
    pub(crate) booked_at_ms: u64,
    pub(crate) tickets_used: TicketsUsed,
    pub(crate) canceled: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Waiter {
    pub(crate) event: EventId,
    pub(crate) user: UserId,
    pub(crate) quantity: u32,
    pub(crate) category: Option<u16>,
    pub(crate) together: bool,
    pub(crate) expires_at_ms: u64,
    /// Its key in its queue: its id for a waiter that joined a live waitlist; for a
    /// draw's entry, `None` until the draw, then the id at its place in draw order among
    /// the entries' ids.
    pub(crate) place: Option<u64>,
}

/// Timers fire in (due, kind, id) order, so expiry order never depends on anything
/// but the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
// The shared suffix says what fires; the kinds are named where they are matched.
#[allow(clippy::enum_variant_names)]
pub(crate) enum TimerKind {
    HoldExpiry,
    WaiterExpiry,
    DeskHoldExpiry,
    /// An event's draw at its opening (id: the event id).
    Draw,
}

/// What a repeat of a key needs: which request the key answered, and its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IdempotencyEntry {
    pub(crate) stored_at_ms: u64,
    pub(crate) fingerprint: [u8; DIGEST_BYTES],
    pub(crate) result: Result<Reply<UserNumber>, Rejection>,
}

/// Everything that is replicated: the snapshot is exactly this, and `state_hash` is a
/// digest of its canonical encoding (ordered maps only, so no hash-order leaks in).
/// Encoded through `StateEncoding` (the same fields in the same order), which asks the
/// hold table which hold timers are live, and decoded through `StateDecoding`, which
/// joins the idempotency window's two encoded halves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "StateDecoding")]
pub struct State {
    pub(crate) now_ms: u64,
    /// The offset of the last applied record; `None` before the first.
    pub(crate) applied_offset: Option<u64>,
    pub(crate) events: Vec<Event>,
    /// Live holds, inline in a slab (see `live_holds`): a hold's seats are a
    /// [`SeatList`], up to five inline and a shared list beyond, so the state's copy for a
    /// snapshot copies the entries (and a pointer for a longer list), not a list per hold
    /// (perf: no box per hold; the hold's outcome copies or shares the same list).
    pub(crate) holds: super::LiveHolds,
    pub(crate) ended_holds: EndedHolds,
    /// (ended at, hold), in the order they ended: copy-on-write chunks, like every table
    /// that grows with the holds, so a snapshot's copy stays a pointer per chunk.
    pub(crate) ended_hold_queue: EndedHoldQueue,
    pub(crate) bookings: CowVec<Booking, BOOKING_CHUNK>,
    /// Live waiters by id: ordered chunks (a crowd of waiters copies a pointer per
    /// chunk into a snapshot; ids are given out in order, so filing one appends).
    pub(crate) waiters: Waiters,
    /// Every pending expiry, in firing order (see `timers`).
    pub(crate) timers: super::timers::Timers,
    /// Seats held plus booked per (event, user), for the per-user limit (see `usage`).
    /// Zero counters are not kept, so equal states encode equally.
    pub(crate) usage: super::Usage,
    /// Live waitlist entries per (event, user), for `waiters_per_user_max`. Zero entries
    /// are removed.
    pub(crate) waiters_by_user: WaitersByUser,
    /// Keys answered within `idempotency_engine_window_ms`, by their stamp's key digest
    /// (the raw key is not kept), and in the order they were stored. Encoded as two
    /// fields: `idempotency` (the map) and `idempotency_queue` (the order).
    pub(crate) idempotency: super::IdempotencyWindow,
    /// Every user that ever had state here, by `UserId` (see `users`).
    pub(crate) users: CowVec<UserName, USER_CHUNK>,
    pub(crate) next_hold: u64,
    pub(crate) next_waiter: u64,
    pub(crate) desks: crate::desk::Desks,
    /// Bumped by every `Promote` record; the node named there is the primary.
    pub(crate) epoch: u64,
    pub(crate) primary: Option<String>,
    /// The configuration this state was applied with (see `ConfigStamp`).
    pub(crate) config: ConfigStamp,
    /// Draws not made yet, by (draw time, event): whose last second chains records.
    pub(crate) draws_pending: std::collections::BTreeSet<(u64, EventId)>,
}

/// `State`'s encoding: its fields in order, by reference, exactly as the derived
/// encoding wrote them, except that the timers are written from the timer queues and the
/// hold table together (a hold's timer is live while its hold is: see `timers`).
#[derive(Serialize)]
#[serde(rename = "State")]
struct StateEncoding<'a> {
    now_ms: u64,
    applied_offset: Option<u64>,
    events: EventsEncoding<'a>,
    holds: &'a super::LiveHolds,
    ended_holds: &'a EndedHolds,
    ended_hold_queue: &'a EndedHoldQueue,
    bookings: &'a CowVec<Booking, BOOKING_CHUNK>,
    waiters: &'a Waiters,
    /// Encodes like the `BTreeSet<(u64, TimerKind, u64)>` the timers once were.
    timers: Vec<super::timers::Timer>,
    usage: &'a super::Usage,
    waiters_by_user: &'a WaitersByUser,
    /// Encodes like the `BTreeMap` of key digest → entry it once was.
    idempotency: super::idempotency_window::ByKey<'a>,
    /// Encodes like the `VecDeque<(u64, [u8; DIGEST_BYTES])>` (stored at, key digest),
    /// oldest first, it once was.
    idempotency_queue: super::idempotency_window::ByTime<'a>,
    users: &'a CowVec<UserName, USER_CHUNK>,
    next_hold: u64,
    next_waiter: u64,
    desks: &'a crate::desk::Desks,
    epoch: u64,
    primary: &'a Option<String>,
    config: &'a ConfigStamp,
    draws_pending: &'a std::collections::BTreeSet<(u64, EventId)>,
}

#[cfg(test)]
fn sorted_map_ref<K: Ord + Serialize, V: Serialize, S: serde::Serializer>(
    map: &&FastMap<K, V>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    sorted_map::serialize(map, serializer)
}

impl Serialize for State {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Every field, by name: a field added to `State` and not encoded fails to compile.
        let State {
            now_ms,
            applied_offset,
            events,
            holds,
            ended_holds,
            ended_hold_queue,
            bookings,
            waiters,
            timers,
            usage,
            waiters_by_user,
            idempotency,
            users,
            next_hold,
            next_waiter,
            desks,
            epoch,
            primary,
            config,
            draws_pending,
        } = self;
        StateEncoding {
            now_ms: *now_ms,
            applied_offset: *applied_offset,
            events: EventsEncoding { events, holds },
            holds,
            ended_holds,
            ended_hold_queue,
            bookings,
            waiters,
            timers: timers.sorted_with(|due, id| hold_timer_live(holds, due, id)),
            usage,
            waiters_by_user,
            idempotency: idempotency.by_key(),
            idempotency_queue: idempotency.by_time(),
            users,
            next_hold: *next_hold,
            next_waiter: *next_waiter,
            desks,
            epoch: *epoch,
            primary,
            config,
            draws_pending,
        }
        .serialize(serializer)
    }
}

/// `State`'s decoding: the fields [`StateEncoding`] writes, owned, with the idempotency
/// window's two encoded halves as they were written (joined by `TryFrom`).
#[derive(Deserialize)]
#[serde(rename = "State")]
struct StateDecoding {
    now_ms: u64,
    applied_offset: Option<u64>,
    events: Vec<EventDecoding>,
    holds: super::LiveHolds,
    ended_holds: EndedHolds,
    ended_hold_queue: EndedHoldQueue,
    bookings: CowVec<Booking, BOOKING_CHUNK>,
    waiters: Waiters,
    timers: super::timers::Timers,
    usage: super::Usage,
    waiters_by_user: WaitersByUser,
    #[serde(deserialize_with = "super::idempotency_window::pairs")]
    idempotency: Vec<([u8; DIGEST_BYTES], IdempotencyEntry)>,
    idempotency_queue: Vec<(u64, [u8; DIGEST_BYTES])>,
    users: CowVec<UserName, USER_CHUNK>,
    next_hold: u64,
    next_waiter: u64,
    desks: crate::desk::Desks,
    epoch: u64,
    primary: Option<String>,
    config: ConfigStamp,
    draws_pending: std::collections::BTreeSet<(u64, EventId)>,
}

impl TryFrom<StateDecoding> for State {
    type Error = String;

    fn try_from(decoded: StateDecoding) -> Result<State, String> {
        // Every field, by name: a field added to `State` and not decoded fails to compile.
        let StateDecoding {
            now_ms,
            applied_offset,
            events,
            holds,
            ended_holds,
            ended_hold_queue,
            bookings,
            waiters,
            timers,
            usage,
            waiters_by_user,
            idempotency,
            idempotency_queue,
            users,
            next_hold,
            next_waiter,
            desks,
            epoch,
            primary,
            config,
            draws_pending,
        } = decoded;
        let events = events
            .into_iter()
            .map(|event| event.into_event(&holds))
            .collect::<Result<Vec<Event>, String>>()?;
        Ok(State {
            now_ms,
            applied_offset,
            events,
            holds,
            ended_holds,
            ended_hold_queue,
            bookings,
            waiters,
            timers,
            usage,
            waiters_by_user,
            idempotency: super::IdempotencyWindow::from_encoded(idempotency, idempotency_queue)?,
            users,
            next_hold,
            next_waiter,
            desks,
            epoch,
            primary,
            config,
            draws_pending,
        })
    }
}

/// Whether the hold timer `(due, id)` is live: its hold is, with that due time (see
/// `timers`).
#[inline]
pub(crate) fn hold_timer_live(holds: &super::LiveHolds, due_ms: u64, id: u64) -> bool {
    holds
        .get(&HoldId(id))
        .is_some_and(|hold| hold.due_ms == due_ms)
}

impl State {
    /// The configuration this state was applied with.
    pub fn config_stamp(&self) -> &ConfigStamp {
        &self.config
    }
}

pub(crate) const FREE: SeatState = SEAT_FREE;

#[cfg(test)]
mod tests {
    use super::*;

    /// `Event`'s layout (perf): what a hold reads before the ledger lies in two lines, the
    /// layout, whether canceled and the sales window in one, the limits, the time to live,
    /// the policy and the count of waiters in another. The spec's own order is the
    /// compiler's: a compiler that moves its fields fails this, and the event's fields
    /// want ordering again.
    #[test]
    fn the_hot_fields_of_an_event_share_cache_lines() {
        use std::mem::offset_of;
        let line = |offset: usize, size: usize| {
            assert_eq!(offset / 64, (offset + size - 1) / 64, "a field in one line");
            offset / 64
        };
        let spec = offset_of!(Event, spec);
        let first = [
            line(offset_of!(Event, layout), 8),
            line(offset_of!(Event, canceled), 1),
            line(spec + offset_of!(EventSpec, sales_open_at_ms), 16),
            line(spec + offset_of!(EventSpec, sales_close_at_ms), 16),
        ];
        assert_eq!(first, [0; 4]);
        let waitlist = offset_of!(Event, waitlist);
        let second = [
            line(spec + offset_of!(EventSpec, seats_per_order_max), 4),
            line(spec + offset_of!(EventSpec, seats_per_user_max), 8),
            line(spec + offset_of!(EventSpec, hold_ttl_ms), 8),
            line(spec + offset_of!(EventSpec, waitlist_policy), 1),
            line(waitlist + offset_of!(WaitQueues, waiting), 4),
        ];
        assert_eq!(second, [second[0]; 5]);
        let ledger = offset_of!(Event, ledger);
        assert_eq!(ledger % 64, 0, "the ledger starts a line");
        assert!(
            std::mem::size_of::<SeatLedger>() <= 5 * 64,
            "the ledger in its five lines"
        );
        assert_eq!(std::mem::align_of::<Event>(), 64);
    }

    /// A per-(event, user) key orders, encodes (bincode and JSON) and decodes exactly
    /// like the `(EventId, UserId)` pair it replaced, so the sorted maps encode as before.
    #[test]
    fn event_user_keys_order_and_encode_like_the_pair() {
        let config = bincode::config::standard();
        let ids = [0, 1, 2, 255, 256, 65_535, 1 << 31, u32::MAX];
        let pairs: Vec<(EventId, UserId)> = ids
            .iter()
            .flat_map(|&event| ids.iter().map(move |&user| (EventId(event), UserId(user))))
            .collect();
        for &(event, user) in &pairs {
            let key = EventUser::new(event, user);
            assert_eq!(key.pair(), (event, user));
            let bytes = bincode::serde::encode_to_vec(key, config).unwrap();
            assert_eq!(
                bytes,
                bincode::serde::encode_to_vec((event, user), config).unwrap()
            );
            let (decoded, _): (EventUser, usize) =
                bincode::serde::decode_from_slice(&bytes, config).unwrap();
            assert_eq!(decoded, key);
            assert_eq!(
                serde_json::to_string(&key).unwrap(),
                serde_json::to_string(&(event, user)).unwrap()
            );
            for &other in &pairs {
                assert_eq!(
                    key.cmp(&EventUser::new(other.0, other.1)),
                    (event, user).cmp(&other)
                );
            }
        }
        // A map of them encodes like the `BTreeMap` of pairs it replaced.
        let map: FastMap<EventUser, u32> = pairs
            .iter()
            .enumerate()
            .map(|(index, &(event, user))| (EventUser::new(event, user), index as u32))
            .collect();
        let btree: BTreeMap<(EventId, UserId), u32> = pairs
            .iter()
            .enumerate()
            .map(|(index, &pair)| (pair, index as u32))
            .collect();
        #[derive(Serialize)]
        struct Sorted<'a>(#[serde(serialize_with = "sorted_map_ref")] &'a FastMap<EventUser, u32>);
        assert_eq!(
            bincode::serde::encode_to_vec(Sorted(&map), config).unwrap(),
            bincode::serde::encode_to_vec(&btree, config).unwrap()
        );
    }

    /// The ended holds' window answers, encodes (bincode and JSON) and decodes exactly
    /// like the sorted hash map it replaced, whatever the order of ends and removals
    /// (holds ending out of id order, before the window's first id, removed from its
    /// middle and ends), and keeps one canonical form.
    #[test]
    fn ended_holds_behave_and_encode_like_the_map() {
        #[derive(Serialize)]
        struct Sorted<'a>(
            #[serde(serialize_with = "sorted_map_ref")] &'a FastMap<HoldId, EndedHold>,
        );
        let config = bincode::config::standard();
        let ended = |user: u32, end: HoldEnd| EndedHold {
            user: UserId(user),
            end,
        };
        // (insert?, id): a deterministic mix of ends and removals.
        let mut steps = Vec::new();
        let mut seed = 7u64;
        for round in 0..2_000u64 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let id = 1 + (seed >> 33) % (40 + round / 10);
            steps.push((!(seed >> 20).is_multiple_of(3), id));
        }
        let mut window = EndedHolds::default();
        let mut map: FastMap<HoldId, EndedHold> = FastMap::default();
        for (index, (insert, id)) in steps.into_iter().enumerate() {
            let id = HoldId(id);
            if insert && !map.contains_key(&id) {
                let value = ended(
                    index as u32,
                    [HoldEnd::Confirmed, HoldEnd::Released, HoldEnd::Expired][index % 3],
                );
                window.insert(id, value.clone());
                map.insert(id, value);
            } else {
                assert_eq!(window.remove(id), map.remove(&id));
            }
            window.check();
            assert_eq!(window.len(), map.len());
            assert_eq!(window.get(id), map.get(&id));
            assert_eq!(window.get(HoldId(0)), None);
            assert_eq!(window.get(HoldId(u64::MAX)), None);
            if index % 97 == 0 {
                let bytes = bincode::serde::encode_to_vec(&window, config).unwrap();
                assert_eq!(
                    bytes,
                    bincode::serde::encode_to_vec(Sorted(&map), config).unwrap()
                );
                assert_eq!(
                    serde_json::to_string(&window).unwrap(),
                    serde_json::to_string(&Sorted(&map)).unwrap()
                );
                let (decoded, _): (EndedHolds, usize) =
                    bincode::serde::decode_from_slice(&bytes, config).unwrap();
                assert_eq!(decoded, window, "one canonical form");
            }
        }
        for id in map.keys().copied().collect::<Vec<_>>() {
            assert_eq!(window.remove(id), map.remove(&id));
        }
        assert_eq!(window, EndedHolds::default());
        // A corrupt snapshot asking for an unbounded window is an error, not an allocation.
        let mut sparse = FastMap::default();
        sparse.insert(HoldId(1), ended(0, HoldEnd::Expired));
        sparse.insert(HoldId(1 << 40), ended(0, HoldEnd::Expired));
        let bytes = bincode::serde::encode_to_vec(Sorted(&sparse), config).unwrap();
        assert!(bincode::serde::decode_from_slice::<EndedHolds, _>(&bytes, config).is_err());
    }
}
