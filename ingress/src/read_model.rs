//! The read model (CQRS): what the engine's outcomes say about events, seats, holds,
//! bookings, waitlist entries and desks, kept in memory for reads. It is written only by
//! the outcome follower thread, in outcome order, and read by handlers under a shared lock.
//!
//! Applying an outcome: in the order the engine made it (`Outcome::effects_before_reply`):
//! the effects its clock made before the request, then its reply, then the rest of its
//! effects (a replayed outcome's reply was applied the first time: only its effects).
//! Seats, places and their counts are kept by the engine's own seat accounting
//! (`engine::ledger::SeatLedger`), through the same transitions the engine made, so there
//! is one implementation of those rules and a model that followed every outcome holds
//! the engine's very ledger (hold slots included).
//!
//! A broken expectation here (an outcome about a hold the model never saw) is a bug in
//! the engine or the model: it is counted and logged, and stops debug builds.

use crate::cow_map::CowMap;
use crate::dense_map::DenseMap;
use crate::notifications::{self, Notifications};
use engine::layout::Layout;
use engine::ledger::{Category, SeatLedger, SeatStatus, WaitQueues};
use engine::messages::Subject;
use engine::UserName;
use engine::{
    BookingId, BookingView, DeskId, DeskSpec, DeskTicketId, DeskTicketView, Effect, EventId,
    EventPatch, EventSpec, HoldId, HoldView, Items, Outcome, Reply, WaitEnd, WaiterId,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
/// An event of the model, copied on write (see `ReadModel::events`).
type EventArc = triomphe::Arc<EventRecord>;

/// The model's hash maps: foldhash (faster than the default SipHash on the follower's
/// look-ups, one or more per outcome), seeded at random per process since clients name
/// users; nothing iterates these maps in hash order: they encode sorted.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The ids of ended holds, waitlist entries or desk tickets, oldest first: the entries
/// past `ended_entries_max` are forgotten from the front. In chunks behind `Arc`s, like the
/// tables (`dense_map`, `cow_map`): a copy of the model copies a pointer per chunk.
type EndedIds<T> = engine::chunked::ChunkedDeque<T, 1024>;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct EventRecord {
    pub(crate) id: EventId,
    pub(crate) tenant: String,
    /// The spec as last updated (sections included: the seat map shows them).
    pub(crate) spec: EventSpec,
    pub(crate) canceled: bool,
    pub(crate) layout: Layout,
    /// Its seats, places and counts, as the engine keeps them.
    pub(crate) ledger: SeatLedger,
    /// FCFS queues by requested category, place → waiter, as the engine keeps them.
    pub(crate) waitlist: WaitQueues,
    pub(crate) bookings: Vec<BookingId>,
    /// The arrival window's draw, for an event created with one.
    pub(crate) draw: Option<DrawRecord>,
    /// Its terms of sale, for an event created with them (`None`: the deployment's
    /// currency, cancellation at any time with a full refund: `EventTerms::without_terms`).
    pub(crate) terms: Option<engine::EventTerms>,
}

/// An event's draw as its outcomes told it (`GET /v1/events/{id}/draw`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DrawRecord {
    pub(crate) opens_at_ms: u64,
    pub(crate) draws_at_ms: u64,
    pub(crate) commitment: [u8; engine::draw::DRAW_BYTES],
    /// The organiser's seed once revealed; after the draw, the seed it used.
    pub(crate) seed: Option<[u8; engine::draw::DRAW_BYTES]>,
    /// Set once the draw is made.
    pub(crate) source: Option<engine::draw::DrawSeedSource>,
    /// Before the draw: the entries still in, in arrival order. After: every entry drawn,
    /// first place first.
    pub(crate) entries: Vec<WaiterId>,
}

impl EventRecord {
    /// The event's terms of sale; `currency_default` is the deployment's, for an event
    /// created without terms.
    pub(crate) fn terms(&self, currency_default: &str) -> engine::EventTerms {
        self.terms
            .clone()
            .unwrap_or_else(|| engine::EventTerms::without_terms(currency_default))
    }

    pub(crate) fn seat(&self, seat: u32) -> SeatStatus {
        self.ledger.seat(seat)
    }

    pub(crate) fn categories(&self) -> &[Category] {
        self.ledger.categories()
    }

    pub(crate) fn seat_category(&self, seat: u32) -> u16 {
        self.layout.rows[self.layout.row_of(seat) as usize].category
    }

    pub(crate) fn category_index(&self, name: &str) -> Option<u16> {
        self.categories()
            .iter()
            .position(|category| category.name == name)
            .map(|index| index as u16)
    }

    pub(crate) fn category_name(&self, index: u16) -> String {
        self.category_str(index).to_string()
    }

    /// The name of category `index` ("" for none such).
    pub(crate) fn category_str(&self, index: u16) -> &str {
        self.categories()
            .get(index as usize)
            .map_or("", |category| category.name.as_str())
    }

    /// The items' seats of this event's layout, in seat order (none for a pool).
    fn item_seats<'a>(&'a self, items: &'a Items) -> impl Iterator<Item = u32> + 'a {
        let seats: &[u32] = match items {
            Items::Seats(seats) => seats,
            Items::Pool { .. } => &[],
        };
        seats
            .iter()
            .copied()
            .filter(|&seat| seat < self.layout.seat_count)
    }

    /// The labels of the items' seats, in seat order (none for a pool).
    pub(crate) fn seat_labels<'a>(
        &'a self,
        items: &'a Items,
    ) -> impl Iterator<Item = engine::layout::SeatLabel<'a>> + 'a {
        self.item_seats(items).map(|seat| self.layout.label(seat))
    }

    /// Category names of the items, one per seat in seat order (one for a pool).
    pub(crate) fn category_names<'a>(
        &'a self,
        items: &'a Items,
    ) -> impl Iterator<Item = &'a str> + 'a {
        let pool = match items {
            Items::Pool { category, .. } => Some(self.category_str(*category)),
            Items::Seats(_) => None,
        };
        self.item_seats(items)
            .map(|seat| self.category_str(self.seat_category(seat)))
            .chain(pool)
    }

    pub(crate) fn labels(&self, items: &Items) -> Vec<String> {
        self.seat_labels(items)
            .map(|label| label.to_string())
            .collect()
    }

    /// Category names of the items, one per seat (one for a pool).
    pub(crate) fn item_categories(&self, items: &Items) -> Vec<String> {
        self.category_names(items).map(str::to_string).collect()
    }

    /// (category, count) pairs of some items.
    fn category_counts(&self, items: &Items) -> Vec<(u16, u64)> {
        match items {
            Items::Seats(seats) => {
                // In category order; a scan, not a tree: an order has a few categories.
                let mut counts: Vec<(u16, u64)> = Vec::new();
                for &seat in seats.iter() {
                    if seat < self.layout.seat_count {
                        let category = self.seat_category(seat);
                        match counts.binary_search_by_key(&category, |(known, _)| *known) {
                            Ok(at) => counts[at].1 += 1,
                            Err(at) => counts.insert(at, (category, 1)),
                        }
                    }
                }
                counts
            }
            Items::Pool { category, quantity } => vec![(*category, u64::from(*quantity))],
        }
    }

    /// The exact total of some items, as the engine computes a booking's.
    pub(crate) fn price_of(&self, items: &Items) -> u64 {
        engine::order_total_cents(self.category_counts(items).into_iter().map(
            |(category, count)| {
                let price_cents = self
                    .categories()
                    .get(category as usize)
                    .map_or(0, |entry| entry.price_cents);
                let count = u32::try_from(count).expect("items count at most u32::MAX places");
                (price_cents, count)
            },
        ))
    }

    pub(crate) fn free_total(&self) -> u64 {
        self.ledger.free(None)
    }

    pub(crate) fn capacity_total(&self) -> u64 {
        self.categories()
            .iter()
            .map(|category| category.capacity)
            .sum()
    }

    /// Live place of a waiting entry in its queue, from 1 (0 for one with no place).
    pub(crate) fn position(&self, place: Option<u64>, category: Option<u16>) -> u32 {
        place
            .and_then(|place| self.waitlist.position(category, place))
            .unwrap_or(0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum HoldStatus {
    Held,
    Confirmed(BookingId),
    Released,
    Expired,
}

impl HoldStatus {
    pub(crate) fn name(self) -> &'static str {
        match self {
            HoldStatus::Held => "held",
            HoldStatus::Confirmed(_) => "confirmed",
            HoldStatus::Released => "released",
            HoldStatus::Expired => "expired",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct HoldRecord {
    pub(crate) view: HoldView,
    pub(crate) status: HoldStatus,
    /// Its slot in its event's ledger, while it holds seats.
    pub(crate) slot: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BookingRecord {
    pub(crate) view: BookingView,
    pub(crate) canceled: bool,
    /// The engine's own flags (`engine::tickets::TicketsUsed`): none kept, and nothing
    /// allocated, until a ticket is checked in; encoded like the `Vec<bool>` they replace.
    pub(crate) tickets_used: engine::tickets::TicketsUsed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WaiterStatus {
    Waiting,
    /// Entered into an arrival window's draw: no place until it is made.
    Entered,
    Offered(HoldId),
    Ended(WaitEnd),
    Left,
}

impl WaiterStatus {
    pub(crate) fn name(self) -> &'static str {
        match self {
            WaiterStatus::Waiting => "waiting",
            WaiterStatus::Entered => "entered",
            WaiterStatus::Offered(_) => "offered",
            WaiterStatus::Ended(_) => "expired",
            WaiterStatus::Left => "left",
        }
    }
}

pub(crate) fn wait_end_name(reason: WaitEnd) -> &'static str {
    match reason {
        WaitEnd::TimedOut => "timed_out",
        WaitEnd::SoldOut => "sold_out",
        WaitEnd::LimitExceeded => "limit_exceeded",
        WaitEnd::EventCanceled => "event_canceled",
        WaitEnd::NoRowLongEnough => "no_row_long_enough",
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct WaiterRecord {
    pub(crate) id: WaiterId,
    pub(crate) event: EventId,
    pub(crate) user: String,
    pub(crate) quantity: u32,
    pub(crate) category: Option<u16>,
    pub(crate) status: WaiterStatus,
    /// Its key in its queue (see `engine`'s waiters); `None` while entered in a draw.
    pub(crate) place: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DeskRecord {
    pub(crate) id: DeskId,
    pub(crate) tenant: String,
    pub(crate) spec: DeskSpec,
    pub(crate) live_tickets: BTreeSet<DeskTicketId>,
    pub(crate) held_tickets: u64,
    /// Busy agents per slot start (ms), for slots with at least one.
    pub(crate) busy: BTreeMap<u64, u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum DeskTicketStatus {
    Held,
    Confirmed,
    Canceled,
    Expired,
}

impl DeskTicketStatus {
    pub(crate) fn name(self) -> &'static str {
        match self {
            DeskTicketStatus::Held => "held",
            DeskTicketStatus::Confirmed => "confirmed",
            DeskTicketStatus::Canceled => "canceled",
            DeskTicketStatus::Expired => "expired",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DeskTicketRecord {
    pub(crate) view: DeskTicketView,
    pub(crate) status: DeskTicketStatus,
}

/// Filters of an event search.
#[derive(Debug, Default)]
pub(crate) struct EventFilter {
    pub(crate) city: Option<String>,
    pub(crate) country: Option<String>,
    pub(crate) venue: Option<String>,
    /// Lower-cased words that must all appear.
    pub(crate) words: Vec<String>,
    pub(crate) from_ms: Option<u64>,
    pub(crate) to_ms: Option<u64>,
    pub(crate) tenant: Option<String>,
    pub(crate) include_canceled: bool,
}

impl EventFilter {
    /// Whether the filter selects the event.
    pub(crate) fn admits(&self, event: &EventRecord) -> bool {
        // Case-insensitive without allocating: a search compares every event.
        let same = |wanted: &Option<String>, actual: &str| {
            wanted.as_ref().is_none_or(|wanted| {
                wanted
                    .chars()
                    .flat_map(char::to_lowercase)
                    .eq(actual.chars().flat_map(char::to_lowercase))
            })
        };
        (self.include_canceled || !event.canceled)
            && self
                .tenant
                .as_ref()
                .is_none_or(|tenant| *tenant == event.tenant)
            && same(&self.city, &event.spec.city)
            && same(&self.country, &event.spec.country)
            && same(&self.venue, &event.spec.venue)
            && self
                .from_ms
                .is_none_or(|from| event.spec.starts_at_ms >= from)
            && self.to_ms.is_none_or(|to| event.spec.starts_at_ms <= to)
            && (self.words.is_empty() || {
                let text = format!(
                    "{} {} {}",
                    event.spec.name, event.spec.description, event.spec.venue
                )
                .to_lowercase();
                self.words.iter().all(|word| text.contains(word.as_str()))
            })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventSort {
    Date,
}

/// `found` in `sort` order (ties by id), and page `page` (from 1) of `per_page` of it,
/// with the total: one ordering for one shard's events and for every shard's merged.
pub(crate) fn sort_and_page(
    mut found: Vec<&EventRecord>,
    sort: EventSort,
    page: u32,
    per_page: u32,
) -> (Vec<&EventRecord>, u64) {
    match sort {
        EventSort::Date => found.sort_by_key(|event| (event.spec.starts_at_ms, event.id)),
    }
    let total = found.len() as u64;
    let start = (u64::from(page.max(1)) - 1).saturating_mul(u64::from(per_page));
    let page: Vec<&EventRecord> = found
        .into_iter()
        .skip(usize::try_from(start).unwrap_or(usize::MAX))
        .take(per_page as usize)
        .collect();
    (page, total)
}

/// What one applied outcome changed that someone may be waiting on.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Waitlist entries whose status changed (offered, expired, left).
    pub(crate) waiters: Vec<WaiterId>,
    /// Users who were told something (`notifications`).
    pub(crate) users: Vec<UserName>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(from = "Decoded")]
pub(crate) struct ReadModel {
    /// Input offset of the last applied outcome; `None` before the first.
    pub(crate) applied_offset: Option<u64>,
    /// The engine's clock at that outcome.
    pub(crate) time_ms: u64,
    /// Each behind an `Arc`, copied on its first change after a copy of the model (the
    /// snapshot's), like the blocks and shards of the tables below (`dense_map`, `cow_map`);
    /// `triomphe`'s, as theirs: an outcome's `make_mut` checks the count with a load.
    events: BTreeMap<EventId, EventArc>,
    holds: DenseMap<HoldId, HoldRecord>,
    ended_holds: EndedIds<HoldId>,
    bookings: DenseMap<BookingId, BookingRecord>,
    waiters: DenseMap<WaiterId, WaiterRecord>,
    ended_waiters: EndedIds<WaiterId>,
    desks: BTreeMap<DeskId, DeskRecord>,
    desk_tickets: DenseMap<DeskTicketId, DeskTicketRecord>,
    ended_desk_tickets: EndedIds<DeskTicketId>,
    pub(crate) live_holds: u64,
    pub(crate) live_bookings: u64,
    pub(crate) waiting: u64,
    /// Outcomes that did not fit the model (bugs); should stay 0.
    pub(crate) anomalies: u64,
    ended_entries_max: usize,
    /// Each user's messages (`GET /v1/me/notifications`), kept here so they survive a
    /// restart in the model's snapshots; and each user's bookings, in the same record
    /// (see `notifications`), encoded where the model's own table of them was.
    pub(crate) notifications: Notifications,
}

/// Field by field as the derived encoding wrote the model when it kept each user's
/// bookings in a table of its own (`user_bookings`, now in `notifications`' records):
/// snapshots are unchanged.
impl Serialize for ReadModel {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut fields = serializer.serialize_struct("ReadModel", 18)?;
        fields.serialize_field("applied_offset", &self.applied_offset)?;
        fields.serialize_field("time_ms", &self.time_ms)?;
        fields.serialize_field("events", &self.events)?;
        fields.serialize_field("holds", &self.holds)?;
        fields.serialize_field("ended_holds", &self.ended_holds)?;
        fields.serialize_field("bookings", &self.bookings)?;
        fields.serialize_field("user_bookings", &self.notifications.bookings_encoded())?;
        fields.serialize_field("waiters", &self.waiters)?;
        fields.serialize_field("ended_waiters", &self.ended_waiters)?;
        fields.serialize_field("desks", &self.desks)?;
        fields.serialize_field("desk_tickets", &self.desk_tickets)?;
        fields.serialize_field("ended_desk_tickets", &self.ended_desk_tickets)?;
        fields.serialize_field("live_holds", &self.live_holds)?;
        fields.serialize_field("live_bookings", &self.live_bookings)?;
        fields.serialize_field("waiting", &self.waiting)?;
        fields.serialize_field("anomalies", &self.anomalies)?;
        fields.serialize_field("ended_entries_max", &self.ended_entries_max)?;
        fields.serialize_field("notifications", &self.notifications)?;
        fields.end()
    }
}

/// A model as [`ReadModel::serialize`] writes it (the layout's encoding when derived:
/// the tests compare the two).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct Decoded {
    applied_offset: Option<u64>,
    time_ms: u64,
    events: BTreeMap<EventId, EventArc>,
    holds: DenseMap<HoldId, HoldRecord>,
    ended_holds: EndedIds<HoldId>,
    bookings: DenseMap<BookingId, BookingRecord>,
    user_bookings: CowMap<Arc<str>, Vec<BookingId>>,
    waiters: DenseMap<WaiterId, WaiterRecord>,
    ended_waiters: EndedIds<WaiterId>,
    desks: BTreeMap<DeskId, DeskRecord>,
    desk_tickets: DenseMap<DeskTicketId, DeskTicketRecord>,
    ended_desk_tickets: EndedIds<DeskTicketId>,
    live_holds: u64,
    live_bookings: u64,
    waiting: u64,
    anomalies: u64,
    ended_entries_max: usize,
    notifications: Notifications,
}

impl From<Decoded> for ReadModel {
    fn from(decoded: Decoded) -> ReadModel {
        ReadModel {
            applied_offset: decoded.applied_offset,
            time_ms: decoded.time_ms,
            events: decoded.events,
            holds: decoded.holds,
            ended_holds: decoded.ended_holds,
            bookings: decoded.bookings,
            waiters: decoded.waiters,
            ended_waiters: decoded.ended_waiters,
            desks: decoded.desks,
            desk_tickets: decoded.desk_tickets,
            ended_desk_tickets: decoded.ended_desk_tickets,
            live_holds: decoded.live_holds,
            live_bookings: decoded.live_bookings,
            waiting: decoded.waiting,
            anomalies: decoded.anomalies,
            ended_entries_max: decoded.ended_entries_max,
            notifications: decoded.notifications.with_bookings(decoded.user_bookings),
        }
    }
}

impl ReadModel {
    pub(crate) fn new(ended_entries_max: usize) -> ReadModel {
        assert!(ended_entries_max > 0);
        ReadModel {
            applied_offset: None,
            time_ms: 0,
            events: BTreeMap::new(),
            holds: DenseMap::default(),
            ended_holds: EndedIds::new(),
            bookings: DenseMap::default(),
            waiters: DenseMap::default(),
            ended_waiters: EndedIds::new(),
            desks: BTreeMap::new(),
            desk_tickets: DenseMap::default(),
            ended_desk_tickets: EndedIds::new(),
            live_holds: 0,
            live_bookings: 0,
            waiting: 0,
            anomalies: 0,
            ended_entries_max,
            notifications: Notifications::new(
                notifications::PER_USER_MAX_DEFAULT,
                notifications::USERS_MAX_DEFAULT,
            ),
        }
    }

    /// A model loaded from a snapshot takes this ingress's limit (the oldest ended entries
    /// beyond it are forgotten as new ones end).
    pub(crate) fn set_ended_entries_max(&mut self, ended_entries_max: usize) {
        assert!(ended_entries_max > 0);
        self.ended_entries_max = ended_entries_max;
    }

    /// The model follows one engine shard of `shard_count`, whose ids are `shard_count`
    /// apart: its id tables lay their slots out so (`dense_map`).
    pub(crate) fn set_shard_count(&mut self, shard_count: u32) {
        let stride = u64::from(shard_count.max(1));
        self.holds.set_stride(stride);
        self.bookings.set_stride(stride);
        self.waiters.set_stride(stride);
        self.desk_tickets.set_stride(stride);
    }

    // ---- reads -----------------------------------------------------------------------

    pub(crate) fn event(&self, id: EventId) -> Option<&EventRecord> {
        self.events.get(&id).map(EventArc::as_ref)
    }

    pub(crate) fn events(&self) -> impl Iterator<Item = &EventRecord> {
        self.events.values().map(EventArc::as_ref)
    }

    pub(crate) fn hold(&self, id: HoldId) -> Option<&HoldRecord> {
        self.holds.get(&id)
    }

    pub(crate) fn booking(&self, id: BookingId) -> Option<&BookingRecord> {
        self.bookings.get(&id)
    }

    pub(crate) fn user_bookings(&self, user: &str) -> impl Iterator<Item = &BookingRecord> {
        self.notifications
            .bookings(user)
            .iter()
            .filter_map(|id| self.bookings.get(id))
    }

    pub(crate) fn waiter(&self, id: WaiterId) -> Option<&WaiterRecord> {
        self.waiters.get(&id)
    }

    pub(crate) fn desk(&self, id: DeskId) -> Option<&DeskRecord> {
        self.desks.get(&id)
    }

    pub(crate) fn desk_ticket(&self, id: DeskTicketId) -> Option<&DeskTicketRecord> {
        self.desk_tickets.get(&id)
    }

    /// Events matching the filter, sorted, and the page asked for; plus the total.
    #[cfg(test)]
    pub(crate) fn search(
        &self,
        filter: &EventFilter,
        sort: EventSort,
        page: u32,
        per_page: u32,
    ) -> (Vec<&EventRecord>, u64) {
        sort_and_page(self.matching(filter), sort, page, per_page)
    }

    /// The events `filter` selects, in no particular order.
    pub(crate) fn matching(&self, filter: &EventFilter) -> Vec<&EventRecord> {
        self.events
            .values()
            .map(EventArc::as_ref)
            .filter(|event| filter.admits(event))
            .collect()
    }

    /// Every event's id, canceled ones included.
    pub(crate) fn event_ids(&self) -> impl Iterator<Item = EventId> + '_ {
        self.events.keys().copied()
    }

    /// (city, country) → events not canceled, ordered by city.
    pub(crate) fn cities(&self) -> Vec<(String, String, u64)> {
        let mut cities: BTreeMap<(String, String), u64> = BTreeMap::new();
        for event in self.events.values().filter(|event| !event.canceled) {
            *cities
                .entry((event.spec.city.clone(), event.spec.country.clone()))
                .or_default() += 1;
        }
        cities
            .into_iter()
            .map(|((city, country), count)| (city, country, count))
            .collect()
    }

    /// (venue, city, country) → events not canceled, optionally in one city.
    pub(crate) fn venues(&self, city: Option<&str>) -> Vec<(String, String, String, u64)> {
        let mut venues: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        let city = city.map(str::to_lowercase);
        for event in self.events.values().filter(|event| !event.canceled) {
            if city
                .as_ref()
                .is_some_and(|city| *city != event.spec.city.to_lowercase())
            {
                continue;
            }
            *venues
                .entry((
                    event.spec.venue.clone(),
                    event.spec.city.clone(),
                    event.spec.country.clone(),
                ))
                .or_default() += 1;
        }
        venues
            .into_iter()
            .map(|((venue, city, country), count)| (venue, city, country, count))
            .collect()
    }

    // ---- writes (the follower thread) -----------------------------------------------

    /// Applies one outcome (of a replay, only its effects: its reply was applied the first
    /// time). Returns what changed for long-polls.
    pub(crate) fn apply(&mut self, outcome: &Arc<Outcome>) -> Changes {
        debug_assert!(self
            .applied_offset
            .is_none_or(|applied| outcome.offset > applied));
        let mut changes = Changes::default();
        // In the order it happened: the clock's effects, the reply, the rest. (An event
        // cancel's reply releases the hold its outcome's expiry offered; a hold may take
        // seats its outcome's expiry freed.)
        let before = (outcome.effects_before_reply as usize).min(outcome.effects.len());
        let (clock, after) = outcome.effects.split_at(before);
        for effect in clock {
            self.apply_effect(effect, &mut changes);
        }
        // Before the reply is applied: an event cancel names holds and bookings whose users
        // are looked up here.
        let told = engine::messages::user_notes_of(outcome, &|subject| self.user_of(subject));
        // A replayed outcome's reply was applied the first time; its clock's effects are new.
        if let (Ok(reply), false) = (&outcome.result, outcome.replayed) {
            self.apply_reply(reply, &mut changes);
        }
        for effect in after {
            self.apply_effect(effect, &mut changes);
        }
        changes.users = self.notifications.record(outcome, told);
        self.note_processed(outcome);
        changes
    }

    /// Whose a hold, booking or waitlist entry is, if the model still knows it.
    fn user_of(&self, subject: Subject) -> Option<UserName> {
        match subject {
            Subject::Hold(hold) => self.holds.get(&hold).map(|hold| hold.view.user.clone()),
            Subject::Booking(booking) => self
                .bookings
                .get(&booking)
                .map(|booking| booking.view.user.clone()),
            Subject::Waiter(waiter) => self
                .waiters
                .get(&waiter)
                .map(|waiter| UserName::from(waiter.user.as_str())),
        }
    }

    /// Records that an outcome was processed (applied or, for a replay, skipped).
    pub(crate) fn note_processed(&mut self, outcome: &Outcome) {
        self.applied_offset = Some(
            self.applied_offset
                .map_or(outcome.offset, |applied| applied.max(outcome.offset)),
        );
        self.time_ms = self.time_ms.max(outcome.time_ms);
    }

    fn anomaly(&mut self, what: &str) {
        self.anomalies += 1;
        tracing::error!(what, "read model: an outcome does not fit the model");
        debug_assert!(false, "read model anomaly: {what}");
    }

    fn apply_reply(&mut self, reply: &Reply, changes: &mut Changes) {
        match reply {
            Reply::EventCreated {
                event,
                tenant,
                spec,
            } => self.create_event(*event, tenant, spec),
            Reply::EventUpdated { event, patch } => self.update_event(*event, patch),
            Reply::EventCanceled {
                event,
                released_holds,
                canceled_bookings,
                ended_waiters,
            } => {
                for hold in released_holds {
                    self.end_hold(*hold, HoldStatus::Released);
                }
                for booking in canceled_bookings {
                    self.cancel_booking(*booking);
                }
                for waiter in ended_waiters {
                    self.end_waiter(
                        *waiter,
                        WaiterStatus::Ended(WaitEnd::EventCanceled),
                        changes,
                    );
                }
                match self.events.get_mut(event).map(EventArc::make_mut) {
                    Some(record) => record.canceled = true,
                    None => self.anomaly("canceled an unknown event"),
                }
            }
            Reply::CheckedIn { ticket, .. } => {
                let index = (ticket.index as usize).checked_sub(1);
                let flags = self
                    .bookings
                    .get_mut(&ticket.booking)
                    .map(|booking| &mut booking.tickets_used);
                match (flags, index) {
                    (Some(flags), Some(index)) if index < flags.len() => flags.set_used(index),
                    _ => self.anomaly("checked in an unknown ticket"),
                }
            }
            Reply::HoldPlaced(view) => self.add_hold(view),
            Reply::Waitlisted {
                waiter,
                event,
                user,
                quantity,
                category,
                ..
            }
            | Reply::WaitlistJoined {
                waiter,
                event,
                user,
                quantity,
                category,
                ..
            } => self.add_waiter(*waiter, *event, user, *quantity, *category, false),
            Reply::Entered {
                waiter,
                event,
                user,
                quantity,
                category,
                ..
            } => self.add_waiter(*waiter, *event, user, *quantity, *category, true),
            Reply::DrawSeedRevealed { event, seed } => {
                match self
                    .events
                    .get_mut(event)
                    .map(EventArc::make_mut)
                    .and_then(|record| record.draw.as_mut())
                {
                    Some(draw) => draw.seed = Some(*seed),
                    None => self.anomaly("a seed revealed for no draw"),
                }
            }
            Reply::HoldConfirmed(view) => self.confirm(view),
            Reply::HoldReleased { hold, .. } => self.end_hold(*hold, HoldStatus::Released),
            Reply::BookingCanceled { booking, .. } => self.cancel_booking(*booking),
            Reply::WaitlistLeft { waiter, .. } => {
                self.end_waiter(*waiter, WaiterStatus::Left, changes)
            }
            Reply::DeskCreated { desk, tenant, spec } => {
                let record = DeskRecord {
                    id: *desk,
                    tenant: tenant.clone(),
                    spec: (**spec).clone(),
                    live_tickets: BTreeSet::new(),
                    held_tickets: 0,
                    busy: BTreeMap::new(),
                };
                self.desks.insert(*desk, record);
            }
            Reply::DeskTicketCreated(view) => self.add_desk_ticket(view),
            Reply::DeskTicketConfirmed(view) => {
                let Some(ticket) = self.desk_tickets.get_mut(&view.ticket) else {
                    return self.anomaly("confirmed an unknown desk ticket");
                };
                if ticket.status == DeskTicketStatus::Held {
                    ticket.status = DeskTicketStatus::Confirmed;
                    if let Some(desk) = self.desks.get_mut(&view.desk) {
                        desk.held_tickets = desk.held_tickets.saturating_sub(1);
                    }
                }
                ticket.view = view.clone();
            }
            Reply::DeskTicketCanceled { ticket, .. } => {
                self.end_desk_ticket(*ticket, DeskTicketStatus::Canceled)
            }
            // Its `DrawOpened` effect gives the event its draw.
            Reply::ArrivalWindowOpened { .. } => {}
            Reply::Ticked | Reply::Promoted { .. } | Reply::Configured => {}
        }
    }

    fn apply_effect(&mut self, effect: &Effect, changes: &mut Changes) {
        match effect {
            Effect::HoldExpired { hold, .. } => self.end_hold(*hold, HoldStatus::Expired),
            Effect::WaitlistOffered { waiter, hold } => {
                self.add_hold(hold);
                self.end_waiter(*waiter, WaiterStatus::Offered(hold.hold), changes);
            }
            Effect::WaitlistEnded { waiter, reason, .. } => {
                self.end_waiter(*waiter, WaiterStatus::Ended(*reason), changes)
            }
            Effect::DeskHoldExpired { ticket, .. } => {
                self.end_desk_ticket(*ticket, DeskTicketStatus::Expired)
            }
            Effect::DrawOpened {
                event,
                opens_at_ms,
                draws_at_ms,
                commitment,
            } => match self.events.get_mut(event).map(EventArc::make_mut) {
                Some(record) => {
                    record.draw = Some(DrawRecord {
                        opens_at_ms: *opens_at_ms,
                        draws_at_ms: *draws_at_ms,
                        commitment: *commitment,
                        seed: None,
                        source: None,
                        entries: Vec::new(),
                    })
                }
                None => self.anomaly("a draw opened for an unknown event"),
            },
            Effect::DrawMade {
                event,
                seed,
                source,
                order,
            } => self.make_draw(*event, seed, *source, order, changes),
            Effect::EventTermsSet { event, terms } => {
                match self.events.get_mut(event).map(EventArc::make_mut) {
                    Some(record) => record.terms = Some(terms.clone()),
                    None => self.anomaly("terms for an unknown event"),
                }
            }
        }
    }

    /// The engine's draw, mirrored: the entries take their places (their ids in draw
    /// order) in the queues.
    fn make_draw(
        &mut self,
        event_id: EventId,
        seed: &[u8; engine::draw::DRAW_BYTES],
        source: engine::draw::DrawSeedSource,
        order: &[WaiterId],
        changes: &mut Changes,
    ) {
        let mut places: Vec<u64> = order.iter().map(|waiter| waiter.0).collect();
        places.sort_unstable();
        let Some(event) = self.events.get_mut(&event_id).map(EventArc::make_mut) else {
            return self.anomaly("a draw for an unknown event");
        };
        let Some(draw) = event.draw.as_mut() else {
            return self.anomaly("a draw made for an event without one");
        };
        draw.seed = Some(*seed);
        draw.source = Some(source);
        draw.entries = order.to_vec();
        let mut queued = 0;
        for (waiter_id, place) in order.iter().zip(places) {
            let Some(waiter) = self.waiters.get_mut(waiter_id) else {
                continue;
            };
            if waiter.status != WaiterStatus::Entered {
                continue;
            }
            if event
                .waitlist
                .join(waiter.category, place, *waiter_id)
                .is_err()
            {
                continue;
            }
            waiter.status = WaiterStatus::Waiting;
            waiter.place = Some(place);
            queued += 1;
            changes.waiters.push(*waiter_id);
        }
        self.waiting += queued;
        if queued != order.len() as u64 {
            self.anomaly("a drawn entry was not entered, or its place was taken");
        }
    }

    fn create_event(&mut self, id: EventId, tenant: &str, spec: &EventSpec) {
        let category_of = |name: &str| {
            spec.categories
                .iter()
                .position(|category| category.name == name)
                .unwrap_or(0) as u16
        };
        let layout = Layout::build(&spec.sections, category_of);
        let ledger = SeatLedger::new(&layout, spec);
        let record = EventRecord {
            id,
            tenant: tenant.to_string(),
            spec: spec.clone(),
            canceled: false,
            ledger,
            layout,
            waitlist: WaitQueues::default(),
            bookings: Vec::new(),
            draw: None,
            terms: None,
        };
        if self.events.insert(id, EventArc::new(record)).is_some() {
            self.anomaly("an event id was created twice");
        }
    }

    fn update_event(&mut self, id: EventId, patch: &EventPatch) {
        let Some(event) = self.events.get_mut(&id).map(EventArc::make_mut) else {
            return self.anomaly("updated an unknown event");
        };
        patch.apply_to(&mut event.spec);
    }

    fn add_hold(&mut self, view: &HoldView) {
        let Some(event) = self.events.get_mut(&view.event).map(EventArc::make_mut) else {
            return self.anomaly("a hold on an unknown event");
        };
        let slot = match event.ledger.hold(&event.layout, view.hold, &view.items) {
            Ok(slot) => slot,
            Err(_) => return self.anomaly("a hold on items that are not free"),
        };
        self.holds.insert(
            view.hold,
            HoldRecord {
                view: view.clone(),
                status: HoldStatus::Held,
                slot,
            },
        );
        self.live_holds += 1;
    }

    /// Ends a live hold as released or expired: its seats are free again.
    fn end_hold(&mut self, hold_id: HoldId, end: HoldStatus) {
        let Some(hold) = self.holds.get_mut(&hold_id) else {
            return self.anomaly("ended an unknown hold");
        };
        if hold.status != HoldStatus::Held {
            return self.anomaly("ended a hold that was not held");
        }
        hold.status = end;
        let (event_id, slot) = (hold.view.event, hold.slot.take());
        let released = match self.events.get_mut(&event_id).map(EventArc::make_mut) {
            Some(event) => event
                .ledger
                .release(&event.layout, hold_id, slot, &hold.view.items)
                .is_ok(),
            None => false,
        };
        if !released {
            self.anomaly("released a hold's items it did not hold");
        }
        self.live_holds = self.live_holds.saturating_sub(1);
        self.remember_ended_hold(hold_id);
    }

    fn remember_ended_hold(&mut self, hold_id: HoldId) {
        self.ended_holds.push_back(hold_id);
        while self.ended_holds.len() > self.ended_entries_max {
            let oldest = self
                .ended_holds
                .take_front()
                .expect("longer than the maximum");
            self.holds.remove(&oldest);
        }
    }

    fn confirm(&mut self, view: &BookingView) {
        let slot = match self.holds.get_mut(&view.hold) {
            Some(hold) if hold.status == HoldStatus::Held => {
                hold.status = HoldStatus::Confirmed(view.booking);
                hold.slot.take()
            }
            _ => return self.anomaly("confirmed a hold that was not held"),
        };
        self.live_holds = self.live_holds.saturating_sub(1);
        self.remember_ended_hold(view.hold);
        let Some(event) = self.events.get_mut(&view.event).map(EventArc::make_mut) else {
            return self.anomaly("a booking on an unknown event");
        };
        let booked = event
            .ledger
            .book(&event.layout, view.hold, slot, &view.items);
        event.bookings.push(view.booking);
        match booked {
            Ok(total_cents) if total_cents == view.total_cents => {}
            Ok(_) => self.anomaly("a booking's total is not its items' price"),
            Err(_) => self.anomaly("booked items its hold did not hold"),
        }
        self.notifications.add_booking(&view.user, view.booking);
        let tickets_used = engine::tickets::TicketsUsed::unused(view.items.quantity());
        self.bookings.insert(
            view.booking,
            BookingRecord {
                view: view.clone(),
                canceled: false,
                tickets_used,
            },
        );
        self.live_bookings += 1;
    }

    fn cancel_booking(&mut self, booking_id: BookingId) {
        let Some(booking) = self.bookings.get_mut(&booking_id) else {
            return self.anomaly("canceled an unknown booking");
        };
        if booking.canceled {
            return self.anomaly("canceled a booking twice");
        }
        booking.canceled = true;
        let event_id = booking.view.event;
        let unbooked = match self.events.get_mut(&event_id).map(EventArc::make_mut) {
            Some(event) => event
                .ledger
                .unbook(&event.layout, &booking.view.items)
                .is_ok(),
            None => false,
        };
        if !unbooked {
            self.anomaly("canceled a booking whose items were not booked");
        }
        self.live_bookings = self.live_bookings.saturating_sub(1);
    }

    fn add_waiter(
        &mut self,
        id: WaiterId,
        event_id: EventId,
        user: &str,
        quantity: u32,
        category: Option<u16>,
        entered: bool,
    ) {
        let Some(event) = self.events.get_mut(&event_id).map(EventArc::make_mut) else {
            return self.anomaly("a waitlist entry on an unknown event");
        };
        let (status, place) = if entered {
            match event.draw.as_mut() {
                Some(draw) => draw.entries.push(id),
                None => return self.anomaly("an entry into no draw"),
            }
            (WaiterStatus::Entered, None)
        } else {
            if event.waitlist.join(category, id.0, id).is_err() {
                return self.anomaly("a waitlist entry at a place taken");
            }
            self.waiting += 1;
            (WaiterStatus::Waiting, Some(id.0))
        };
        self.waiters.insert(
            id,
            WaiterRecord {
                id,
                event: event_id,
                user: user.to_string(),
                quantity,
                category,
                status,
                place,
            },
        );
    }

    fn end_waiter(&mut self, id: WaiterId, end: WaiterStatus, changes: &mut Changes) {
        let Some(waiter) = self.waiters.get_mut(&id) else {
            return self.anomaly("ended an unknown waitlist entry");
        };
        let was = waiter.status;
        if !matches!(was, WaiterStatus::Waiting | WaiterStatus::Entered) {
            return self.anomaly("ended a waitlist entry that was not waiting");
        }
        waiter.status = end;
        let (event_id, category, place) = (waiter.event, waiter.category, waiter.place);
        let mut left = true;
        if let Some(event) = self.events.get_mut(&event_id).map(EventArc::make_mut) {
            if was == WaiterStatus::Entered {
                if let Some(draw) = event.draw.as_mut() {
                    draw.entries.retain(|entry| *entry != id);
                }
            } else {
                left = place.is_some_and(|place| event.waitlist.leave(category, place, id).is_ok());
            }
        }
        if !left {
            self.anomaly("a waitlist entry ended that was not in its queue");
        }
        if was == WaiterStatus::Waiting {
            self.waiting = self.waiting.saturating_sub(1);
        }
        changes.waiters.push(id);
        self.ended_waiters.push_back(id);
        while self.ended_waiters.len() > self.ended_entries_max {
            let oldest = self
                .ended_waiters
                .take_front()
                .expect("longer than the maximum");
            self.waiters.remove(&oldest);
        }
    }

    fn add_desk_ticket(&mut self, view: &DeskTicketView) {
        let Some(desk) = self.desks.get_mut(&view.desk) else {
            return self.anomaly("a ticket at an unknown desk");
        };
        let status = if view.hold_expires_at_ms.is_some() {
            DeskTicketStatus::Held
        } else {
            DeskTicketStatus::Confirmed
        };
        desk.live_tickets.insert(view.ticket);
        if status == DeskTicketStatus::Held {
            desk.held_tickets += 1;
        }
        *desk.busy.entry(view.slot_start_ms).or_default() += 1;
        // Slots that ended long ago are of no interest to the load view.
        let horizon = self.time_ms.saturating_sub(desk.spec.slot_ms);
        while desk
            .busy
            .first_key_value()
            .is_some_and(|(start, _)| *start < horizon)
        {
            desk.busy.pop_first();
        }
        self.desk_tickets.insert(
            view.ticket,
            DeskTicketRecord {
                view: view.clone(),
                status,
            },
        );
    }

    fn end_desk_ticket(&mut self, id: DeskTicketId, end: DeskTicketStatus) {
        let Some(ticket) = self.desk_tickets.get_mut(&id) else {
            return self.anomaly("ended an unknown desk ticket");
        };
        let was_held = ticket.status == DeskTicketStatus::Held;
        ticket.status = end;
        let (desk_id, slot_start) = (ticket.view.desk, ticket.view.slot_start_ms);
        if let Some(desk) = self.desks.get_mut(&desk_id) {
            desk.live_tickets.remove(&id);
            if was_held {
                desk.held_tickets = desk.held_tickets.saturating_sub(1);
            }
            if let Some(busy) = desk.busy.get_mut(&slot_start) {
                *busy -= 1;
                if *busy == 0 {
                    desk.busy.remove(&slot_start);
                }
            }
        }
        self.ended_desk_tickets.push_back(id);
        while self.ended_desk_tickets.len() > self.ended_entries_max {
            let oldest = self
                .ended_desk_tickets
                .take_front()
                .expect("longer than the maximum");
            self.desk_tickets.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{
        CategorySpec, Command, EngineConfig, Request, RowSpec, SectionSpec, Selection,
        WaitlistPolicy,
    };
    use proptest::prelude::*;

    fn spec() -> EventSpec {
        EventSpec {
            name: "Concert".into(),
            description: String::new(),
            city: "Lyon".into(),
            country: "FR".into(),
            venue: "Halle".into(),
            starts_at_ms: 10_000_000,
            ends_at_ms: None,
            sales_open_at_ms: None,
            sales_close_at_ms: None,
            hold_ttl_ms: 1_000,
            seats_per_order_max: 10,
            seats_per_user_max: None,
            waitlist_policy: WaitlistPolicy::Strict,
            categories: vec![
                CategorySpec {
                    name: "Gold".into(),
                    price_cents: 5000,
                },
                CategorySpec {
                    name: "Floor".into(),
                    price_cents: 2000,
                },
            ],
            sections: vec![SectionSpec {
                name: "A".into(),
                rows: vec![RowSpec {
                    label: "1".into(),
                    seats: 4,
                    category: "Gold".into(),
                }],
            }],
            general_admission: vec![engine::PoolSpec {
                category: "Floor".into(),
                capacity: 5,
            }],
        }
    }

    /// Drives a real engine and checks the read model agrees with it after every step.
    struct Check {
        engine: engine::Engine,
        model: ReadModel,
        offset: u64,
        /// Every user's messages as `engine::messages` renders them, in order: what their
        /// notifications must read.
        told: BTreeMap<String, Vec<String>>,
        /// Whose each hold, booking and waitlist entry is, learnt from the outcomes here
        /// (not from the model under test): who a message about only an id goes to.
        owners: BTreeMap<String, engine::UserName>,
    }

    impl Check {
        fn new() -> Check {
            Check::with_grace(0)
        }

        /// With event 0 of [`spec`] created at 1,000 ms.
        fn with_event() -> Check {
            let mut check = Check::new();
            check.run(
                1_000,
                Command::CreateEvent {
                    tenant: "demo".into(),
                    spec: Box::new(spec()),
                },
            );
            check
        }

        /// With `confirm_grace_ms`: a hold past its expiry can still be confirmed that
        /// long, and expires only after it.
        fn with_grace(confirm_grace_ms: u64) -> Check {
            Check {
                engine: engine::Engine::new(EngineConfig {
                    confirm_grace_ms,
                    ..EngineConfig::default()
                }),
                model: ReadModel::new(100),
                offset: 0,
                told: BTreeMap::new(),
                owners: BTreeMap::new(),
            }
        }

        /// Learns the owners an outcome names (all of them first: an event cancel releases
        /// the hold an expiry's offer made in the same outcome).
        fn learn_owners(&mut self, outcome: &Outcome) {
            let mut learn = |subject: Subject, user: &engine::UserName| {
                self.owners.insert(format!("{subject:?}"), user.clone());
            };
            match &outcome.result {
                Ok(Reply::HoldPlaced(view)) => learn(Subject::Hold(view.hold), &view.user),
                Ok(Reply::HoldConfirmed(view)) => learn(Subject::Booking(view.booking), &view.user),
                Ok(Reply::Waitlisted { waiter, user, .. })
                | Ok(Reply::WaitlistJoined { waiter, user, .. }) => {
                    learn(Subject::Waiter(*waiter), user)
                }
                _ => {}
            }
            for effect in &outcome.effects {
                if let Effect::WaitlistOffered { hold, .. } = effect {
                    learn(Subject::Hold(hold.hold), &hold.user);
                }
            }
        }

        fn run(&mut self, time_ms: u64, command: Command) -> Outcome {
            self.run_request(time_ms, Request::new(command))
        }

        fn run_request(&mut self, time_ms: u64, request: Request) -> Outcome {
            let outcome = self.engine.apply(self.offset, time_ms, &request);
            let outcome = self.engine.named(outcome);
            self.offset += 1;
            self.learn_owners(&outcome);
            let owners = &self.owners;
            for message in engine::messages::user_messages_of(&outcome, &|subject| {
                owners.get(&format!("{subject:?}")).cloned()
            }) {
                self.told
                    .entry(message.user.to_string())
                    .or_default()
                    .push(String::from_utf8(message.body).unwrap());
            }
            self.model.apply(&Arc::new(outcome.clone()));
            assert_eq!(self.model.anomalies, 0);
            let event = self.model.event(EventId(0)).unwrap();
            // The model's seat accounting is the engine's, through the same transitions in
            // the same order: equal ledgers (every seat, count and hold slot), and its own
            // rules hold.
            assert_eq!(
                Some(&event.ledger),
                self.engine.seat_ledger(EventId(0)),
                "the model's ledger is the engine's"
            );
            event.ledger.check(&event.layout);
            assert_eq!(
                Some(&event.waitlist),
                self.engine.wait_queues(EventId(0)),
                "the model's waitlist queues are the engine's"
            );
            event.waitlist.check();
            assert_eq!(
                self.model.live_holds as usize,
                self.engine.live_hold_count()
            );
            assert_eq!(self.model.waiting as usize, self.engine.waiting_count());
            // Every hold the model calls held is live in the engine with the same items,
            // and the model holds all of them (the counts agree above).
            for (id, hold) in self.model.holds.iter() {
                if hold.status == HoldStatus::Held {
                    assert_eq!(
                        self.engine.hold_items(*id),
                        Some(&hold.view.items),
                        "hold {id:?}"
                    );
                }
            }
            outcome
        }
    }

    fn hold(user: &str, selection: Selection, wait: bool) -> Command {
        Command::PlaceHold {
            user: user.into(),
            event: EventId(0),
            selection,
            wait,
        }
    }

    /// An idempotent repeat is answered as first decided, but its log time runs the
    /// engine's clock: the expiry in its outcome is applied like any other (the follower
    /// used to skip a repeat's outcome whole, leaving that hold held in the model for good).
    #[test]
    fn a_repeat_s_outcome_applies_the_expiries_its_clock_made() {
        let mut check = Check::with_event();
        let first = check.run(
            1_000,
            hold("u1", Selection::Seats(vec!["A-1-1".into()]), false),
        );
        let Ok(Reply::HoldPlaced(first)) = first.result else {
            panic!("{first:?}")
        };
        let keyed = Request {
            idempotency_key: Some("k".into()),
            command: hold("u2", Selection::Seats(vec!["A-1-2".into()]), false),
        };
        let answered = check.run_request(1_500, keyed.clone());
        assert!(answered.result.is_ok(), "{answered:?}");
        // Past the first hold's expiry, before the keyed one's.
        let repeat = check.run_request(first.expires_at_ms + 1, keyed);
        assert!(repeat.replayed);
        assert_eq!(repeat.result, answered.result);
        assert!(
            matches!(&repeat.effects[..], [Effect::HoldExpired { hold, .. }] if *hold == first.hold),
            "{repeat:?}"
        );
        assert_eq!(repeat.effects_before_reply, 1);
        assert_eq!(
            check.model.hold(first.hold).unwrap().status,
            HoldStatus::Expired
        );
        // (`run` compared the model's ledger with the engine's after each outcome.)
        assert_eq!(check.model.event(EventId(0)).unwrap().free_total(), 8);
    }

    #[test]
    fn follows_the_engine_through_holds_expiry_offers_and_cancels() {
        let mut check = Check::with_event();
        let first = check.run(
            1_000,
            hold(
                "u1",
                Selection::Seats(vec!["A-1-1".into(), "A-1-2".into()]),
                false,
            ),
        );
        let Ok(Reply::HoldPlaced(first)) = first.result else {
            panic!("{first:?}")
        };
        check.run(
            1_000,
            hold(
                "u2",
                Selection::Best {
                    quantity: 2,
                    category: Some("Gold".into()),
                    together: true,
                },
                false,
            ),
        );
        let waited = check.run(
            1_000,
            hold(
                "u3",
                Selection::Best {
                    quantity: 2,
                    category: Some("Gold".into()),
                    together: false,
                },
                true,
            ),
        );
        let Ok(Reply::Waitlisted { waiter, .. }) = waited.result else {
            panic!("{waited:?}")
        };
        assert_eq!(
            check.model.waiter(waiter).unwrap().status,
            WaiterStatus::Waiting
        );
        assert_eq!(
            check
                .model
                .event(EventId(0))
                .unwrap()
                .position(Some(waiter.0), Some(0)),
            1
        );
        check.run(
            1_000,
            hold(
                "u4",
                Selection::Best {
                    quantity: 3,
                    category: Some("Floor".into()),
                    together: false,
                },
                false,
            ),
        );
        // u1's hold expires; the seats go to u3 in the same outcome.
        let tick = check.run(2_500, Command::Tick);
        assert!(
            tick.effects
                .iter()
                .any(|effect| matches!(effect, Effect::WaitlistOffered { .. })),
            "{:?}",
            tick.effects
        );
        assert_eq!(
            check.model.hold(first.hold).unwrap().status,
            HoldStatus::Expired
        );
        assert!(matches!(
            check.model.waiter(waiter).unwrap().status,
            WaiterStatus::Offered(_)
        ));
        // Someone else books and cancels.
        let placed = check.run(
            2_600,
            hold(
                "u5",
                Selection::Best {
                    quantity: 1,
                    category: Some("Floor".into()),
                    together: false,
                },
                false,
            ),
        );
        let Ok(Reply::HoldPlaced(placed)) = placed.result else {
            panic!()
        };
        let booked = check.run(
            2_700,
            Command::ConfirmHold {
                user: "u5".into(),
                hold: placed.hold,
                payment_ref: "p".into(),
            },
        );
        let Ok(Reply::HoldConfirmed(booking)) = booked.result else {
            panic!()
        };
        assert_eq!(check.model.user_bookings("u5").count(), 1);
        check.run(
            2_800,
            Command::CancelBooking {
                user: "u5".into(),
                booking: booking.booking,
            },
        );
        check.run(
            2_900,
            Command::CancelEvent {
                tenant: "demo".into(),
                event: EventId(0),
            },
        );
        assert!(check.model.event(EventId(0)).unwrap().canceled);
        assert_eq!(check.model.live_holds, 0);
        // Notifications read what the messages said (bodies rendered from their outcome
        // when read, or kept as text: an event cancel's), and read the same after a
        // snapshot's encoding, which keeps them as text.
        let read = |notifications: &Notifications, user: &str| -> Vec<String> {
            notifications
                .after(user, None)
                .notifications
                .iter()
                .map(|notification| notification.body().into_owned())
                .collect()
        };
        assert!(check.told.len() >= 4, "{:?}", check.told.keys());
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&check.model.notifications, config).unwrap();
        let (decoded, _): (Notifications, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(
            bincode::serde::encode_to_vec(&decoded, config).unwrap(),
            bytes
        );
        for (user, told) in &check.told {
            assert_eq!(&read(&check.model.notifications, user), told, "{user}");
            assert_eq!(&read(&decoded, user), told, "{user}, decoded");
        }
    }

    /// A user's bookings share a record with their notifications (one probe of the name
    /// a confirm): they outlive the forgetting of the notifications, and a snapshot
    /// encodes them where the model's own table of them was, byte for byte the derived
    /// encoding of that layout, and decodes back to the same answers.
    #[test]
    fn bookings_outlive_forgotten_notifications_and_encode_as_their_own_table() {
        let mut check = Check::with_event();
        // One user's notifications kept: each buyer told forgets the one before.
        check.model.notifications.set_limits(10, 1);
        let mut booked = BTreeMap::new();
        for (user, time_ms) in [("ana", 2_000), ("bo", 2_100), ("ana", 2_200)] {
            let placed = check.run(
                time_ms,
                Command::PlaceHold {
                    user: user.into(),
                    event: EventId(0),
                    selection: Selection::Best {
                        quantity: 1,
                        category: None,
                        together: false,
                    },
                    wait: false,
                },
            );
            let Ok(Reply::HoldPlaced(placed)) = placed.result else {
                panic!("{placed:?}")
            };
            let confirmed = check.run(
                time_ms + 10,
                Command::ConfirmHold {
                    user: user.into(),
                    hold: placed.hold,
                    payment_ref: "p".into(),
                },
            );
            let Ok(Reply::HoldConfirmed(view)) = confirmed.result else {
                panic!("{confirmed:?}")
            };
            booked
                .entry(Arc::<str>::from(user))
                .or_insert_with(Vec::new)
                .push(view.booking);
        }
        let answers = |model: &ReadModel| {
            ["ana", "bo", "cy"].map(|user| {
                let bookings: Vec<BookingId> = model
                    .user_bookings(user)
                    .map(|booking| booking.view.booking)
                    .collect();
                (
                    bookings,
                    model.notifications.after(user, None).notifications.len(),
                )
            })
        };
        // Ana's first message was forgotten when Bo was told, Bo when Ana was told
        // again; both keep their bookings.
        let expected = [
            (booked[&Arc::<str>::from("ana")].clone(), 1),
            (booked[&Arc::<str>::from("bo")].clone(), 0),
            (Vec::new(), 0),
        ];
        assert_eq!(answers(&check.model), expected);
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&check.model, config).unwrap();
        let (layout, _): (Decoded, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        let user_bookings: BTreeMap<Arc<str>, Vec<BookingId>> = layout
            .user_bookings
            .iter()
            .map(|(user, bookings)| (user.clone(), bookings.clone()))
            .collect();
        assert_eq!(user_bookings, booked);
        assert_eq!(
            bincode::serde::encode_to_vec(&layout, config).unwrap(),
            bytes
        );
        let (decoded, _): (ReadModel, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(answers(&decoded), expected);
        assert_eq!(
            bincode::serde::encode_to_vec(&decoded, config).unwrap(),
            bytes
        );
    }

    /// An event canceled when a hold has just expired: the expiry's offer and the cancel
    /// come in one outcome, and the cancel releases the hold the offer made.
    #[test]
    fn a_cancel_releases_the_hold_an_expiry_offered_in_the_same_outcome() {
        let mut check = Check::with_event();
        let gold = |quantity| Selection::Best {
            quantity,
            category: Some("Gold".into()),
            together: false,
        };
        let first = check.run(1_000, hold("u1", gold(4), false));
        assert!(
            matches!(first.result, Ok(Reply::HoldPlaced(_))),
            "{first:?}"
        );
        let waited = check.run(1_000, hold("u2", gold(2), true));
        assert!(
            matches!(waited.result, Ok(Reply::Waitlisted { .. })),
            "{waited:?}"
        );
        // Past u1's expiry (TTL 1 s, no grace): u1's hold expires, u2 is offered two
        // seats, and the cancel releases that offer, all in this outcome.
        let cancel = Command::CancelEvent {
            tenant: "demo".into(),
            event: EventId(0),
        };
        let canceled = check.run(2_500, cancel);
        let offered = canceled
            .effects
            .iter()
            .find_map(|effect| match effect {
                Effect::WaitlistOffered { hold, .. } => Some(hold.hold),
                _ => None,
            })
            .expect("the expiry made an offer");
        let Ok(Reply::EventCanceled { released_holds, .. }) = &canceled.result else {
            panic!("{canceled:?}")
        };
        assert_eq!(released_holds, &vec![offered]);
        assert_eq!(
            check.model.hold(offered).unwrap().status,
            HoldStatus::Released
        );
        assert_eq!(check.model.live_holds, 0);
        // u2 is told of the offer, then of the cancel that released it.
        let told = &check.told["u2"];
        assert_eq!(told.len(), 2, "{told:?}");
        assert!(told[0].contains("waitlist.offered"), "{}", told[0]);
        assert!(told[1].contains("event.canceled"), "{}", told[1]);
        let read = check
            .model
            .notifications
            .after("u2", None)
            .notifications
            .len();
        assert_eq!(read, 2);
    }

    /// What a random sequence does, resolved against what earlier outcomes granted.
    #[derive(Clone, Debug)]
    enum Op {
        Exact {
            user: usize,
            first: u32,
            count: u32,
        },
        Best {
            user: usize,
            quantity: u32,
            category: usize,
            together: bool,
            wait: bool,
        },
        Join {
            user: usize,
            quantity: u32,
            category: usize,
            together: bool,
        },
        /// The `pick`-th hold granted so far; by its owner or, when `stranger`, someone else.
        Confirm {
            pick: usize,
            stranger: bool,
        },
        Release {
            pick: usize,
        },
        Cancel {
            pick: usize,
        },
        Leave {
            pick: usize,
        },
        Tick {
            step_ms: u64,
        },
        /// A patch of the hold TTL, the waitlist policy (true: strict) or the per-user cap.
        Update {
            hold_ttl_ms: Option<u64>,
            strict: Option<bool>,
            seats_per_user_max: Option<Option<u32>>,
        },
        CancelEvent,
    }

    const USERS: [&str; 3] = ["ann", "bob", "cat"];
    const CATEGORIES: [Option<&str>; 3] = [None, Some("Gold"), Some("Floor")];

    fn op() -> impl Strategy<Value = Op> {
        let user = 0..USERS.len();
        let category = 0..CATEGORIES.len();
        prop_oneof![
            3 => (user.clone(), 0u32..7, 1u32..4)
                .prop_map(|(user, first, count)| Op::Exact { user, first, count }),
            4 => (user.clone(), 1u32..5, category.clone(), any::<bool>(), any::<bool>())
                .prop_map(|(user, quantity, category, together, wait)| Op::Best {
                    user, quantity, category, together, wait
                }),
            2 => (user, 1u32..4, category, any::<bool>())
                .prop_map(|(user, quantity, category, together)| Op::Join {
                    user, quantity, category, together
                }),
            3 => (any::<usize>(), proptest::bool::weighted(0.1))
                .prop_map(|(pick, stranger)| Op::Confirm { pick, stranger }),
            2 => any::<usize>().prop_map(|pick| Op::Release { pick }),
            1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
            1 => any::<usize>().prop_map(|pick| Op::Leave { pick }),
            3 => (0u64..2_500).prop_map(|step_ms| Op::Tick { step_ms }),
            1 => (
                proptest::option::of(200u64..3_000),
                proptest::option::of(any::<bool>()),
                proptest::option::of(proptest::option::of(1u32..6)),
            )
                .prop_map(|(hold_ttl_ms, strict, seats_per_user_max)| Op::Update {
                    hold_ttl_ms, strict, seats_per_user_max
                }),
            // Rare: a canceled event ends the sequence's interesting part.
            1 => Just(Op::CancelEvent).prop_filter("rare", |_| true),
        ]
    }

    /// Two rows of Gold seats (4 and 3) and a Floor pool of 5: small enough that events
    /// sell out, waitlists form and offers follow releases and expiries.
    fn small_spec(policy: WaitlistPolicy) -> EventSpec {
        let mut spec = spec();
        spec.waitlist_policy = policy;
        spec.sections[0].rows.push(RowSpec {
            label: "2".into(),
            seats: 3,
            category: "Gold".into(),
        });
        spec
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// The read model, fed each outcome, agrees with the engine after every step of a
        /// random sequence (its seat ledger equal to the engine's, every seat, count and
        /// hold slot, and its waitlist queues; live holds and their items, waiters, and at
        /// the end each user's notifications): the model applies outcomes through the engine's own seat
        /// accounting (`engine::ledger`), in the engine's order, so a model that gets an
        /// outcome's order wrong is refused by the ledger or differs from it here. Holds (exact, best, general admission,
        /// waiting), confirms (some by the wrong user), releases, booking cancels,
        /// waitlist joins and leaves, event patches (TTL, policy, per-user cap), event
        /// cancels, and time passing before each command, so that expiries and their
        /// offers land inside any command; with or without a confirm grace (a hold
        /// confirmable past its expiry, expiring after it).
        #[test]
        fn the_read_model_agrees_with_the_engine_on_random_sequences(
            strict in any::<bool>(),
            confirm_grace_ms in prop_oneof![Just(0u64), 1u64..1_500],
            // Each command comes some time after the one before: expiries (and the offers
            // they make) then happen inside any command, not only in ticks.
            ops in proptest::collection::vec((op(), 0u64..1_500), 1..60),
        ) {
            let policy = if strict { WaitlistPolicy::Strict } else { WaitlistPolicy::SkipAhead };
            let mut check = Check::with_grace(confirm_grace_ms);
            let mut now_ms = 1_000;
            let created = check.run(now_ms, Command::CreateEvent {
                tenant: "demo".into(),
                spec: Box::new(small_spec(policy)),
            });
            prop_assert!(created.result.is_ok(), "{:?}", created.result);
            let mut holds: Vec<(HoldId, String)> = Vec::new();
            let mut bookings: Vec<(BookingId, String)> = Vec::new();
            let mut waiters: Vec<(WaiterId, String)> = Vec::new();
            for (op, step_ms) in ops {
                now_ms += step_ms;
                let command = match op {
                    Op::Exact { user, first, count } => hold(
                        USERS[user],
                        Selection::SeatIndices((first..(first + count).min(7)).collect()),
                        false,
                    ),
                    Op::Best { user, quantity, category, together, wait } => hold(
                        USERS[user],
                        Selection::Best {
                            quantity,
                            category: CATEGORIES[category].map(str::to_string),
                            together,
                        },
                        wait,
                    ),
                    Op::Join { user, quantity, category, together } => Command::JoinWaitlist {
                        user: USERS[user].into(),
                        event: EventId(0),
                        quantity,
                        category: CATEGORIES[category].map(str::to_string),
                        together,
                    },
                    Op::Confirm { pick, stranger } if !holds.is_empty() => {
                        let (hold, user) = holds[pick % holds.len()].clone();
                        let user = if stranger { format!("{user}-not") } else { user };
                        Command::ConfirmHold { user: user.into(), hold, payment_ref: "p".into() }
                    }
                    Op::Release { pick } if !holds.is_empty() => {
                        let (hold, user) = holds[pick % holds.len()].clone();
                        Command::ReleaseHold { user: user.into(), hold }
                    }
                    Op::Cancel { pick } if !bookings.is_empty() => {
                        let (booking, user) = bookings[pick % bookings.len()].clone();
                        Command::CancelBooking { user: user.into(), booking }
                    }
                    Op::Leave { pick } if !waiters.is_empty() => {
                        let (waiter, user) = waiters[pick % waiters.len()].clone();
                        Command::LeaveWaitlist { user: user.into(), waiter }
                    }
                    Op::Update { hold_ttl_ms, strict, seats_per_user_max } => Command::UpdateEvent {
                        tenant: "demo".into(),
                        event: EventId(0),
                        patch: Box::new(EventPatch {
                            hold_ttl_ms,
                            waitlist_policy: strict.map(|strict| {
                                if strict { WaitlistPolicy::Strict } else { WaitlistPolicy::SkipAhead }
                            }),
                            seats_per_user_max,
                            ..EventPatch::default()
                        }),
                    },
                    Op::CancelEvent => Command::CancelEvent {
                        tenant: "demo".into(),
                        event: EventId(0),
                    },
                    Op::Tick { step_ms } => {
                        now_ms += step_ms;
                        Command::Tick
                    }
                    // Nothing granted yet to act on.
                    _ => Command::Tick,
                };
                let outcome = check.run(now_ms, command);
                match &outcome.result {
                    Ok(Reply::HoldPlaced(view)) => holds.push((view.hold, view.user.to_string())),
                    Ok(Reply::HoldConfirmed(view)) => {
                        bookings.push((view.booking, view.user.to_string()))
                    }
                    Ok(Reply::Waitlisted { waiter, user, .. })
                    | Ok(Reply::WaitlistJoined { waiter, user, .. }) => {
                        waiters.push((*waiter, user.to_string()))
                    }
                    _ => {}
                }
                for effect in &outcome.effects {
                    if let Effect::WaitlistOffered { hold, .. } = effect {
                        holds.push((hold.hold, hold.user.to_string()));
                    }
                }
            }
            // Each user's notifications read what the outcomes told them, in order.
            for (user, told) in &check.told {
                let read: Vec<String> = check
                    .model
                    .notifications
                    .after(user, None)
                    .notifications
                    .iter()
                    .map(|notification| notification.body().into_owned())
                    .collect();
                prop_assert_eq!(&read, told, "{}", user);
            }
        }
    }

    /// The first build of the search index holds the read models' locks for a thousand
    /// events at a time, never for the whole build (the shard followers apply outcomes in
    /// between), and indexes every event; built, it holds nothing again.
    #[test]
    fn the_search_index_is_first_built_in_short_holds_of_the_models() {
        let mut model = ReadModel::new(10);
        for index in 0..2_500u32 {
            model.apply(&Arc::new(Outcome {
                offset: u64::from(index),
                time_ms: 0,
                replayed: false,
                result: Ok(Reply::EventCreated {
                    event: EventId(index),
                    tenant: "demo".into(),
                    spec: Box::new(spec()),
                }),
                effects: vec![],
                effects_before_reply: 0,
                idempotency: None,
            }));
        }
        let model = std::sync::RwLock::new(model);
        let catalog = std::sync::RwLock::new(crate::catalog::Catalog::default());
        let index = crate::search::SearchIndex::default();
        assert_eq!(index.indexed_docs(), None);
        assert_eq!(index.prepare(&[&model], &catalog).unwrap(), 3);
        assert_eq!(index.indexed_docs(), Some(2_500));
        assert_eq!(index.prepare(&[&model], &catalog).unwrap(), 0);
    }

    #[test]
    fn search_filters_sorts_and_pages() {
        let mut model = ReadModel::new(10);
        for (index, (name, city, starts)) in [
            ("Zed", "Lyon", 3),
            ("alpha", "lyon", 1),
            ("Beta", "Paris", 2),
        ]
        .into_iter()
        .enumerate()
        {
            let spec = EventSpec {
                name: name.into(),
                city: city.into(),
                starts_at_ms: starts,
                ..spec()
            };
            let outcome = Outcome {
                offset: index as u64,
                time_ms: 0,
                replayed: false,
                result: Ok(Reply::EventCreated {
                    event: EventId(index as u32),
                    tenant: "demo".into(),
                    spec: Box::new(spec),
                }),
                effects: vec![],
                effects_before_reply: 0,
                idempotency: None,
            };
            model.apply(&Arc::new(outcome));
        }
        let filter = EventFilter {
            city: Some("LYON".into()),
            ..EventFilter::default()
        };
        let (page, total) = model.search(&filter, EventSort::Date, 1, 20);
        assert_eq!(total, 2);
        assert_eq!(
            page.iter()
                .map(|event| event.spec.name.as_str())
                .collect::<Vec<_>>(),
            ["alpha", "Zed"]
        );
        let (page, total) = model.search(&EventFilter::default(), EventSort::Date, 2, 2);
        assert_eq!(
            (total, page.len(), page[0].spec.name.as_str()),
            (3, 1, "Zed")
        );
        assert_eq!(
            model.cities(),
            vec![
                ("Lyon".into(), "FR".into(), 1),
                ("Paris".into(), "FR".into(), 1),
                ("lyon".into(), "FR".into(), 1)
            ]
        );
    }
}
