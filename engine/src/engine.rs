//! The state machine: `Engine::apply(offset, time, request) -> Outcome`.
//!
//! One `match` in `execute` owns control flow; each command has one handler. Helpers
//! compute, handlers mutate. Time only moves through `advance_clock`, which fires due
//! timers in (due time, kind, id) order before the command itself runs.

use crate::command::*;
use crate::config::{ConfigMismatch, ConfigStamp, EngineConfig};
use crate::idempotency::{IdempotencyStamp, DIGEST_BYTES};
use crate::ids::*;
use crate::layout::Layout;
use crate::outcome::*;
use crate::snapshot::CowVec;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Persistent collections for the parts of the state that grow with traffic (holds, timers,
/// waiters, usage, idempotency): a clone shares structure and costs O(1), so the engine
/// thread's pause to hand a state copy to the snapshot thread does not grow with them.
/// They encode exactly like `BTreeMap`, `BTreeSet` and `VecDeque` (ordered, length
/// prefixed), so snapshots and state hashes are the same bytes as before.
pub(crate) type Map<K, V> = imbl::OrdMap<K, V>;
pub(crate) type Set<T> = imbl::OrdSet<T>;
pub(crate) type Queue<T> = imbl::Vector<T>;
use std::sync::Arc;

/// Per-seat state in 8 bytes: 0 is free; the top two bits say held or booked and the
/// rest is the owning hold's or booking's id.
pub(crate) type SeatState = u64;
const SEAT_FREE: SeatState = 0;
const TAG_HELD: u64 = 1 << 62;
const TAG_BOOKED: u64 = 2 << 62;
const TAG_MASK: u64 = 3 << 62;
const OWNER_MASK: u64 = !TAG_MASK;

const _: () = assert!(
    std::mem::size_of::<SeatState>() <= 8,
    "the per-seat budget is 8 bytes"
);
const _: () = assert!(TAG_HELD & OWNER_MASK == 0 && TAG_BOOKED & OWNER_MASK == 0);

/// Copy-on-write chunk sizes (see `snapshot`): a write after a snapshot copies one chunk
/// (256 KiB of seats, a few hundred bookings), never a whole event or the whole state.
const SEAT_CHUNK: usize = 32 * 1024;
const BOOKING_CHUNK: usize = 256;
const EVENT_BOOKING_CHUNK: usize = 4 * 1024;

fn held_by(hold: HoldId) -> SeatState {
    debug_assert!(hold.0 & TAG_MASK == 0);
    TAG_HELD | hold.0
}

fn booked_by(booking: BookingId) -> SeatState {
    debug_assert!(booking.0 & TAG_MASK == 0);
    TAG_BOOKED | booking.0
}

/// Whether a seat is booked (sold for good, unless the booking is canceled).
pub(crate) fn is_booked(state: SeatState) -> bool {
    state & TAG_MASK == TAG_BOOKED
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Category {
    pub(crate) name: String,
    pub(crate) price_cents: u64,
    pub(crate) capacity: u64,
    pub(crate) held: u64,
    pub(crate) booked: u64,
    /// Index into the event's pools when the category is general admission.
    pub(crate) pool: Option<u16>,
    pub(crate) has_seats: bool,
}

impl Category {
    pub(crate) fn free(&self) -> u64 {
        self.capacity - self.held - self.booked
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pool {
    pub(crate) category: u16,
    pub(crate) capacity: u32,
    pub(crate) held: u32,
    pub(crate) booked: u32,
}

impl Pool {
    pub(crate) fn free(&self) -> u32 {
        self.capacity - self.held - self.booked
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Event {
    pub(crate) tenant: String,
    /// The spec as last updated, without its sections (the layout has them).
    pub(crate) spec: EventSpec,
    pub(crate) canceled: bool,
    pub(crate) categories: Vec<Category>,
    /// Shared by snapshot copies: a layout never changes once built.
    #[serde(with = "crate::snapshot::shared")]
    pub(crate) layout: Arc<Layout>,
    pub(crate) seats: CowVec<SeatState, SEAT_CHUNK>,
    pub(crate) row_free: Vec<u32>,
    /// Per row, the longest run of seats that are not booked (free or held): the largest
    /// `together` request the row could ever serve (see `allocate::open_run`).
    pub(crate) row_open_run: Vec<u32>,
    pub(crate) pools: Vec<Pool>,
    /// FCFS queues by requested category (`None`: any category). A waiter id's order
    /// is its arrival order.
    pub(crate) queues: BTreeMap<Option<u16>, Set<WaiterId>>,
    /// Waiters per (queue, together, quantity): a queue's largest and smallest requests
    /// without walking it. Zero counts are removed.
    pub(crate) waiter_needs: BTreeMap<(Option<u16>, bool, u32), u32>,
    pub(crate) waiting: u32,
    pub(crate) bookings: CowVec<BookingId, EVENT_BOOKING_CHUNK>,
}

impl Event {
    fn category_index(&self, name: &str) -> Option<u16> {
        self.categories
            .iter()
            .position(|category| category.name == name)
            .map(|index| index as u16)
    }

    /// Why sales are closed at `now_ms`, or `None` while they are open.
    fn sales_closed(&self, now_ms: u64) -> Option<SalesClosedReason> {
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
    fn free(&self, category: Option<u16>) -> u64 {
        match category {
            Some(category) => self.categories[category as usize].free(),
            None => self.categories.iter().map(Category::free).sum(),
        }
    }

    /// The refusal of a request for `category` that cannot be met, saying what is left.
    fn sold_out(&self, category: Option<u16>) -> Rejection {
        Rejection::SoldOut {
            category,
            free: self.free(category),
        }
    }

    /// Recomputes the open runs of the rows `items` has seats in, after they were booked
    /// or their booking canceled.
    fn refresh_open_runs(&mut self, items: &Items) {
        let Items::Seats(seats) = items else {
            return;
        };
        // Perf: a hold's seats are mostly in one row; its seats after the first are found
        // in it without a search, and the row is scanned once (a row seen again, in a
        // hold that goes back and forth between rows, is scanned again: same result).
        let mut last: Option<std::ops::Range<u32>> = None;
        for &seat in seats {
            if last.as_ref().is_some_and(|range| range.contains(&seat)) {
                continue;
            }
            let row = self.layout.row_of(seat) as usize;
            self.row_open_run[row] = crate::allocate::open_run(self, row);
            let found = &self.layout.rows[row];
            last = Some(found.first_seat..found.first_seat + found.seat_count);
        }
    }

    /// The count of waiters of (queue, together, quantity) moves by one.
    fn count_need(&mut self, need: (Option<u16>, bool, u32), joined: bool) {
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
    fn smallest_need(&self, queue: Option<u16>, together: bool) -> Option<u32> {
        self.waiter_needs
            .range((queue, together, 0)..=(queue, together, u32::MAX))
            .next()
            .map(|((_, _, quantity), _)| *quantity)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hold {
    pub(crate) event: EventId,
    pub(crate) user: String,
    pub(crate) items: Items,
    pub(crate) created_at_ms: u64,
    pub(crate) expires_at_ms: u64,
    /// When the hold's seats return: `expires_at_ms` plus the confirm grace in force
    /// when the hold was made. Stored, never recomputed from the configuration, so the
    /// expiry timer's key and every check agree whatever is configured later.
    pub(crate) due_ms: u64,
    pub(crate) waiter: Option<WaiterId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum HoldEnd {
    Confirmed,
    Released,
    Expired,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EndedHold {
    pub(crate) user: String,
    pub(crate) end: HoldEnd,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Booking {
    pub(crate) hold: HoldId,
    pub(crate) event: EventId,
    pub(crate) user: String,
    pub(crate) items: Items,
    pub(crate) total_cents: u64,
    pub(crate) payment_ref: String,
    pub(crate) booked_at_ms: u64,
    pub(crate) tickets_used: Vec<bool>,
    pub(crate) canceled: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Waiter {
    pub(crate) event: EventId,
    pub(crate) user: String,
    pub(crate) quantity: u32,
    pub(crate) category: Option<u16>,
    pub(crate) together: bool,
    pub(crate) expires_at_ms: u64,
}

/// Timers fire in (due, kind, id) order, so expiry order never depends on anything
/// but the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum TimerKind {
    HoldExpiry,
    WaiterExpiry,
    DeskHoldExpiry,
}

/// What a repeat of a key needs: which request the key answered, and its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IdempotencyEntry {
    pub(crate) stored_at_ms: u64,
    pub(crate) fingerprint: [u8; DIGEST_BYTES],
    pub(crate) result: Result<Reply, Rejection>,
}

/// Everything that is replicated: the snapshot is exactly this, and `state_hash` is a
/// digest of its canonical encoding (ordered maps only, so no hash-order leaks in).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub(crate) now_ms: u64,
    /// The offset of the last applied record; `None` before the first.
    pub(crate) applied_offset: Option<u64>,
    pub(crate) events: Vec<Event>,
    pub(crate) holds: Map<HoldId, Hold>,
    pub(crate) ended_holds: Map<HoldId, EndedHold>,
    pub(crate) ended_hold_queue: Queue<(u64, HoldId)>,
    pub(crate) bookings: CowVec<Booking, BOOKING_CHUNK>,
    pub(crate) waiters: Map<WaiterId, Waiter>,
    pub(crate) timers: Set<(u64, TimerKind, u64)>,
    /// Seats held plus booked per (event, user), for the per-user limit. Zero entries
    /// are removed so equal states encode equally.
    pub(crate) usage: Map<(EventId, String), u32>,
    /// Live waitlist entries per (event, user), for `waiters_per_user_max`. Zero entries
    /// are removed.
    pub(crate) waiters_by_user: Map<(EventId, String), u32>,
    /// Keys answered within `idempotency_engine_window_ms`, by their stamp's key digest
    /// (the raw key is not kept).
    pub(crate) idempotency: Map<[u8; DIGEST_BYTES], IdempotencyEntry>,
    /// The same keys by the time they were stored, oldest first.
    pub(crate) idempotency_queue: Queue<(u64, [u8; DIGEST_BYTES])>,
    pub(crate) next_hold: u64,
    pub(crate) next_waiter: u64,
    pub(crate) desks: crate::desk::Desks,
    /// Bumped by every `Promote` record; the node named there is the primary.
    pub(crate) epoch: u64,
    pub(crate) primary: Option<String>,
    /// The configuration this state was applied with (see `ConfigStamp`).
    pub(crate) config: ConfigStamp,
}

/// The booking engine. Deterministic: the same requests at the same offsets and
/// times give the same outcomes and the same `state_hash`.
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) state: State,
    /// Effects of the request being applied; drained into its outcome.
    pub(crate) effects: Vec<Effect>,
}

type Answer = Result<Reply, Rejection>;

fn not_found(what: NotFound) -> Rejection {
    Rejection::NotFound { what }
}

fn invalid(reason: impl Into<String>) -> Rejection {
    Rejection::Invalid {
        reason: reason.into(),
    }
}

fn conflict(reason: ConflictReason) -> Rejection {
    Rejection::Conflict { reason }
}

impl State {
    /// The configuration this state was applied with.
    pub fn config_stamp(&self) -> &ConfigStamp {
        &self.config
    }
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        assert!(
            config.durations_are_bounded(),
            "configured durations must be at most DURATION_MS_MAX"
        );
        let stamp = config.stamp();
        Engine {
            config,
            state: State {
                next_hold: 1,
                next_waiter: 1,
                config: stamp,
                ..State::default()
            },
            effects: Vec::new(),
        }
    }

    /// The first configuration key whose value differs from the one `state` was applied
    /// with. Shells check it before [`Engine::from_state`] and refuse to start on a
    /// mismatch, naming the key.
    pub fn config_mismatch(state: &State, config: &EngineConfig) -> Option<ConfigMismatch> {
        crate::config::first_difference(&state.config, &config.stamp())
    }

    /// Whether `request` is a `Configure` record naming a configuration other than this
    /// engine's, and the first key that differs. Shells (the runtime, replay) check every
    /// record with it before [`Engine::apply`] and stop on a mismatch instead of applying
    /// the log's history with another configuration than it was applied with.
    pub fn logged_config_mismatch(&self, request: &Request) -> Option<ConfigMismatch> {
        match &request.command {
            Command::Configure { stamp } => {
                crate::config::first_difference(stamp, &self.config.stamp())
            }
            _ => None,
        }
    }

    /// Rebuilds an engine from a snapshot's state. The configuration must be the one the
    /// state was applied with ([`Engine::config_mismatch`]): anything else is a bug in
    /// the shell, which must refuse to start instead.
    pub fn from_state(config: EngineConfig, state: State) -> Engine {
        assert!(
            config.durations_are_bounded(),
            "configured durations must be at most DURATION_MS_MAX"
        );
        if let Some(mismatch) = Engine::config_mismatch(&state, &config) {
            panic!("{mismatch}");
        }
        Engine {
            config,
            state,
            effects: Vec::new(),
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn now_ms(&self) -> u64 {
        self.state.now_ms
    }

    pub fn applied_offset(&self) -> Option<u64> {
        self.state.applied_offset
    }

    /// The log time at which the next timer falls due, so the shell knows when a tick
    /// is needed (like quinn's `poll_timeout`). Timers fire once time passes `due`.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.state.timers.get_min().map(|(due, _, _)| due + 1)
    }

    /// Applies one log record. Offsets must strictly increase: anything else is a bug
    /// in the shell, so it stops the process.
    pub fn apply(&mut self, offset: u64, time_ms: u64, request: &Request) -> Outcome {
        self.begin(offset, time_ms);
        // Perf: stamps (two digests) are only computed for keyed requests.
        let stamp = request
            .idempotency_key
            .as_ref()
            .and_then(|key| IdempotencyStamp::of(&request.command, key));
        if let Some(stamp) = &stamp {
            if let Some(entry) = self.state.idempotency.get(&stamp.key_digest) {
                if entry.fingerprint == stamp.fingerprint {
                    let result = entry.result.clone();
                    return self.finish(offset, true, result, None);
                }
                return self.finish(offset, false, Err(Rejection::IdempotencyKeyReused), None);
            }
        }
        let result = self.execute(&request.command);
        if let Some(stamp) = &stamp {
            self.remember(stamp, &result);
        }
        self.finish(offset, false, result, stamp)
    }

    /// A record that did not decode still takes its place in the log: time advances and
    /// the answer is a rejection, identical on every replica.
    pub fn apply_undecodable(&mut self, offset: u64, time_ms: u64, reason: &str) -> Outcome {
        self.begin(offset, time_ms);
        self.finish(
            offset,
            false,
            Err(Rejection::Undecodable {
                reason: reason.to_string(),
            }),
            None,
        )
    }

    fn begin(&mut self, offset: u64, time_ms: u64) {
        assert!(
            self.state
                .applied_offset
                .is_none_or(|applied| offset > applied),
            "log offsets must increase: {offset} after {:?}",
            self.state.applied_offset
        );
        assert!(self.effects.is_empty());
        self.state.applied_offset = Some(offset);
        self.advance_clock(time_ms);
    }

    fn finish(
        &mut self,
        offset: u64,
        replayed: bool,
        result: Answer,
        idempotency: Option<IdempotencyStamp>,
    ) -> Outcome {
        #[cfg(debug_assertions)]
        self.check_counters();
        debug_assert!(!(replayed && idempotency.is_some()));
        Outcome {
            offset,
            time_ms: self.state.now_ms,
            replayed,
            result,
            effects: std::mem::take(&mut self.effects),
            idempotency,
        }
    }

    fn remember(&mut self, stamp: &IdempotencyStamp, result: &Answer) {
        if self.state.idempotency.len() >= self.config.idempotency_entries_max {
            self.forget_oldest_key();
        }
        let now_ms = self.state.now_ms;
        self.state
            .idempotency_queue
            .push_back((now_ms, stamp.key_digest));
        let previous = self.state.idempotency.insert(
            stamp.key_digest,
            IdempotencyEntry {
                stored_at_ms: now_ms,
                fingerprint: stamp.fingerprint,
                result: result.clone(),
            },
        );
        assert!(
            previous.is_none(),
            "a remembered key is answered, not stored again"
        );
    }

    fn forget_oldest_key(&mut self) {
        let (_, key_digest) = self
            .state
            .idempotency_queue
            .pop_front()
            .expect("the queue mirrors the map");
        self.state
            .idempotency
            .remove(&key_digest)
            .expect("the queue mirrors the map");
    }

    // ---- time -------------------------------------------------------------------

    /// Log time never goes backwards: a record stamped earlier than the clock is
    /// applied at the clock's time. A record stamped past `TIME_MS_MAX` is applied at
    /// `TIME_MS_MAX` (fix: clock arithmetic used to overflow near `u64::MAX`).
    fn advance_clock(&mut self, time_ms: u64) {
        self.state.now_ms = self
            .state
            .now_ms
            .max(time_ms.min(crate::config::TIME_MS_MAX));
        let now_ms = self.state.now_ms;
        while let Some(&(due, kind, id)) = self.state.timers.get_min() {
            if due >= now_ms {
                break;
            }
            self.state.timers.remove_min();
            match kind {
                TimerKind::HoldExpiry => self.expire_hold(HoldId(id)),
                TimerKind::WaiterExpiry => self.end_waiter(WaiterId(id), WaitEnd::TimedOut),
                TimerKind::DeskHoldExpiry => self.expire_desk_hold(DeskTicketId(id)),
            }
        }
        // Past its short window a key is the ingress index's to answer (`idempotency`).
        let horizon = now_ms.saturating_sub(self.config.idempotency_engine_window_ms);
        while self
            .state
            .idempotency_queue
            .front()
            .is_some_and(|(stored, _)| *stored < horizon)
        {
            self.forget_oldest_key();
        }
        let horizon = now_ms.saturating_sub(self.config.ended_hold_retention_ms);
        while self
            .state
            .ended_hold_queue
            .front()
            .is_some_and(|(ended, _)| *ended < horizon)
        {
            let (_, hold) = self.state.ended_hold_queue.pop_front().expect("checked");
            self.state.ended_holds.remove(&hold);
        }
    }

    fn expire_hold(&mut self, hold_id: HoldId) {
        let hold = self.take_hold(hold_id, HoldEnd::Expired);
        let event = hold.event;
        self.effects.push(Effect::HoldExpired {
            hold: hold_id,
            event,
            user: hold.user,
            items: hold.items,
            waiter: hold.waiter,
        });
        self.serve_waitlist(event);
    }

    // ---- the one match ------------------------------------------------------------

    fn execute(&mut self, command: &Command) -> Answer {
        match command {
            Command::CreateEvent { tenant, spec } => self.create_event(tenant, spec),
            Command::UpdateEvent {
                tenant,
                event,
                patch,
            } => self.update_event(tenant, *event, patch),
            Command::CancelEvent { tenant, event } => self.cancel_event(tenant, *event),
            Command::CheckIn {
                tenant,
                event,
                code,
            } => self.check_in(tenant, *event, code),
            Command::PlaceHold {
                user,
                event,
                selection,
                wait,
            } => self.place_hold(user, *event, selection, *wait),
            Command::ConfirmHold {
                user,
                hold,
                payment_ref,
            } => self.confirm_hold(user, *hold, payment_ref),
            Command::ReleaseHold { user, hold } => self.release_hold(user, *hold),
            Command::CancelBooking { user, booking } => self.cancel_booking(user, *booking),
            Command::JoinWaitlist {
                user,
                event,
                quantity,
                category,
                together,
            } => self.join_waitlist(user, *event, *quantity, category.as_deref(), *together),
            Command::LeaveWaitlist { user, waiter } => self.leave_waitlist(user, *waiter),
            Command::CreateDesk { tenant, spec } => self.create_desk(tenant, spec),
            Command::CreateDeskTicket {
                user,
                desk,
                level,
                hold_only,
            } => self.create_desk_ticket(user, *desk, level, *hold_only),
            Command::ConfirmDeskTicket { user, desk, ticket } => {
                self.confirm_desk_ticket(user, *desk, *ticket)
            }
            Command::CancelDeskTicket { user, desk, ticket } => {
                self.cancel_desk_ticket(user, *desk, *ticket)
            }
            Command::Tick => Ok(Reply::Ticked),
            Command::Promote { node } => self.promote(node),
            // A replica with another configuration never gets here: its shell stops
            // before this record (`logged_config_mismatch`).
            Command::Configure { .. } => Ok(Reply::Configured),
        }
    }

    fn promote(&mut self, node: &str) -> Answer {
        self.check_text("node", node, true)?;
        self.state.epoch += 1;
        self.state.primary = Some(node.to_string());
        Ok(Reply::Promoted {
            epoch: self.state.epoch,
            node: node.to_string(),
        })
    }

    /// The current epoch (0 until the first promotion) and the primary it named.
    pub fn epoch(&self) -> (u64, Option<&str>) {
        (self.state.epoch, self.state.primary.as_deref())
    }

    // ---- events ---------------------------------------------------------------------

    fn check_text(&self, field: &str, text: &str, required: bool) -> Result<(), Rejection> {
        if required && text.trim().is_empty() {
            return Err(invalid(format!("{field} must not be empty")));
        }
        if text.len() > self.config.text_bytes_max {
            return Err(invalid(format!(
                "{field} is longer than {} bytes",
                self.config.text_bytes_max
            )));
        }
        Ok(())
    }

    fn check_limits(
        &self,
        spec_ttl: u64,
        per_order: u32,
        per_user: Option<u32>,
    ) -> Result<(), Rejection> {
        if !(self.config.hold_ttl_min_ms..=self.config.hold_ttl_max_ms).contains(&spec_ttl) {
            return Err(invalid(format!(
                "hold TTL must be from {} to {} ms",
                self.config.hold_ttl_min_ms, self.config.hold_ttl_max_ms
            )));
        }
        if per_order == 0 || per_order > self.config.seats_per_order_cap {
            return Err(invalid(format!(
                "seats per order must be from 1 to {}",
                self.config.seats_per_order_cap
            )));
        }
        if per_user == Some(0) {
            return Err(invalid("seats per user must be at least 1"));
        }
        Ok(())
    }

    fn check_times(
        starts_at_ms: u64,
        ends_at_ms: Option<u64>,
        open: Option<u64>,
        close: Option<u64>,
    ) -> Result<(), Rejection> {
        if ends_at_ms.is_some_and(|ends| ends < starts_at_ms) {
            return Err(invalid("ends_at is before starts_at"));
        }
        if let (Some(open), Some(close)) = (open, close) {
            if close <= open {
                return Err(invalid("sales_close_at is not after sales_open_at"));
            }
        }
        Ok(())
    }

    fn validate_event(&self, spec: &EventSpec) -> Result<(), Rejection> {
        for (field, text, required) in [
            ("name", &spec.name, true),
            ("description", &spec.description, false),
            ("city", &spec.city, true),
            ("country", &spec.country, true),
            ("venue", &spec.venue, true),
        ] {
            self.check_text(field, text, required)?;
        }
        self.check_limits(
            spec.hold_ttl_ms,
            spec.seats_per_order_max,
            spec.seats_per_user_max,
        )?;
        Self::check_times(
            spec.starts_at_ms,
            spec.ends_at_ms,
            spec.sales_open_at_ms,
            spec.sales_close_at_ms,
        )?;
        if spec.categories.is_empty()
            || spec.categories.len() > self.config.event_categories_max as usize
        {
            return Err(invalid(format!(
                "an event needs from 1 to {} categories",
                self.config.event_categories_max
            )));
        }
        let mut names = BTreeSet::new();
        for category in &spec.categories {
            self.check_text("category name", &category.name, true)?;
            if category.price_cents > PRICE_CENTS_MAX {
                return Err(invalid(format!(
                    "category {:?} costs more than {PRICE_CENTS_MAX} cents",
                    category.name
                )));
            }
            if !names.insert(category.name.as_str()) {
                return Err(invalid(format!(
                    "category {:?} is named twice",
                    category.name
                )));
            }
        }
        if spec.sections.is_empty() && spec.general_admission.is_empty() {
            return Err(invalid(
                "an event needs seating, general admission, or both",
            ));
        }
        // Fix: section indices are u16 in the layout, and the section count was never
        // checked (70,000 empty sections panicked in `Layout::build`).
        if spec.sections.len() > usize::from(u16::MAX) {
            return Err(invalid(format!(
                "an event has at most {} sections",
                u16::MAX
            )));
        }
        let (mut seats, mut rows) = (0u64, 0u64);
        let mut section_names = BTreeSet::new();
        for section in &spec.sections {
            self.check_text("section name", &section.name, true)?;
            if section.name.contains('-') || !section_names.insert(section.name.as_str()) {
                return Err(invalid(format!(
                    "section name {:?} contains '-' or is used twice",
                    section.name
                )));
            }
            // Fix: empty sections let an event with no seats and no pools through the
            // "needs seating" rule above (the ingress already refuses them).
            if section.rows.is_empty() {
                return Err(invalid(format!("section {:?} has no rows", section.name)));
            }
            let mut labels = BTreeSet::new();
            for row in &section.rows {
                self.check_text("row label", &row.label, true)?;
                if row.label.contains('-') || !labels.insert(row.label.as_str()) {
                    return Err(invalid(format!(
                        "row label {:?} in section {:?} contains '-' or is used twice",
                        row.label, section.name
                    )));
                }
                if row.seats == 0 {
                    return Err(invalid(format!(
                        "row {:?} in section {:?} has no seats",
                        row.label, section.name
                    )));
                }
                if !names.contains(row.category.as_str()) {
                    return Err(not_found(NotFound::Category));
                }
                seats += u64::from(row.seats);
                rows += 1;
            }
        }
        if seats > u64::from(self.config.event_seats_max)
            || rows > u64::from(self.config.event_rows_max)
        {
            return Err(invalid(format!(
                "an event has at most {} seats in {} rows",
                self.config.event_seats_max, self.config.event_rows_max
            )));
        }
        let mut pooled = BTreeSet::new();
        for pool in &spec.general_admission {
            if !names.contains(pool.category.as_str()) {
                return Err(not_found(NotFound::Category));
            }
            if !pooled.insert(pool.category.as_str()) {
                return Err(invalid(format!(
                    "category {:?} has two general-admission pools",
                    pool.category
                )));
            }
            if pool.capacity == 0 || pool.capacity > self.config.pool_capacity_max {
                return Err(invalid(format!(
                    "a pool's capacity must be from 1 to {}",
                    self.config.pool_capacity_max
                )));
            }
            if spec
                .sections
                .iter()
                .flat_map(|section| &section.rows)
                .any(|row| row.category == pool.category)
            {
                return Err(invalid(format!(
                    "category {:?} is both seated and general admission",
                    pool.category
                )));
            }
        }
        Ok(())
    }

    fn create_event(&mut self, tenant: &str, spec: &EventSpec) -> Answer {
        self.check_text("tenant", tenant, true)?;
        self.validate_event(spec)?;
        if self.state.events.len() >= self.config.events_max as usize {
            return Err(Rejection::LimitExceeded {
                limit: Limit::Events,
                max: self.config.events_max,
            });
        }
        let category_of = |name: &str| {
            spec.categories
                .iter()
                .position(|category| category.name == name)
                .expect("validated") as u16
        };
        let layout = Layout::build(&spec.sections, category_of);
        let mut categories: Vec<Category> = spec
            .categories
            .iter()
            .map(|category| Category {
                name: category.name.clone(),
                price_cents: category.price_cents,
                capacity: 0,
                held: 0,
                booked: 0,
                pool: None,
                has_seats: false,
            })
            .collect();
        for row in &layout.rows {
            let category = &mut categories[row.category as usize];
            category.capacity += u64::from(row.seat_count);
            category.has_seats = true;
        }
        let pools: Vec<Pool> = spec
            .general_admission
            .iter()
            .enumerate()
            .map(|(index, pool)| {
                let category = category_of(&pool.category);
                categories[category as usize].capacity += u64::from(pool.capacity);
                categories[category as usize].pool = Some(index as u16);
                Pool {
                    category,
                    capacity: pool.capacity,
                    held: 0,
                    booked: 0,
                }
            })
            .collect();
        let event_id = EventId(self.state.events.len() as u32);
        self.state.events.push(Event {
            tenant: tenant.to_string(),
            spec: EventSpec {
                sections: Vec::new(),
                ..spec.clone()
            },
            canceled: false,
            categories,
            seats: CowVec::from_elem(SEAT_FREE, layout.seat_count as usize),
            row_free: layout.rows.iter().map(|row| row.seat_count).collect(),
            row_open_run: layout.rows.iter().map(|row| row.seat_count).collect(),
            layout: Arc::new(layout),
            pools,
            queues: BTreeMap::new(),
            waiter_needs: BTreeMap::new(),
            waiting: 0,
            bookings: CowVec::new(),
        });
        Ok(Reply::EventCreated {
            event: event_id,
            tenant: tenant.to_string(),
            spec: Box::new(spec.clone()),
        })
    }

    /// The event if it exists and belongs to the tenant; another tenant's event is
    /// "not found".
    fn tenant_event(&self, tenant: &str, event: EventId) -> Result<&Event, Rejection> {
        self.state
            .events
            .get(event.0 as usize)
            .filter(|found| found.tenant == tenant)
            .ok_or(not_found(NotFound::Event))
    }

    fn event(&self, event: EventId) -> Result<&Event, Rejection> {
        self.state
            .events
            .get(event.0 as usize)
            .ok_or(not_found(NotFound::Event))
    }

    fn update_event(&mut self, tenant: &str, event_id: EventId, patch: &EventPatch) -> Answer {
        let event = self.tenant_event(tenant, event_id)?;
        if event.canceled {
            return Err(conflict(ConflictReason::EventCanceled));
        }
        let mut spec = event.spec.clone();
        if let Some(name) = &patch.name {
            self.check_text("name", name, true)?;
            spec.name = name.clone();
        }
        if let Some(description) = &patch.description {
            self.check_text("description", description, false)?;
            spec.description = description.clone();
        }
        spec.starts_at_ms = patch.starts_at_ms.unwrap_or(spec.starts_at_ms);
        spec.ends_at_ms = patch.ends_at_ms.unwrap_or(spec.ends_at_ms);
        spec.sales_open_at_ms = patch.sales_open_at_ms.unwrap_or(spec.sales_open_at_ms);
        spec.sales_close_at_ms = patch.sales_close_at_ms.unwrap_or(spec.sales_close_at_ms);
        spec.hold_ttl_ms = patch.hold_ttl_ms.unwrap_or(spec.hold_ttl_ms);
        spec.seats_per_order_max = patch
            .seats_per_order_max
            .unwrap_or(spec.seats_per_order_max);
        spec.seats_per_user_max = patch.seats_per_user_max.unwrap_or(spec.seats_per_user_max);
        spec.waitlist_policy = patch.waitlist_policy.unwrap_or(spec.waitlist_policy);
        self.check_limits(
            spec.hold_ttl_ms,
            spec.seats_per_order_max,
            spec.seats_per_user_max,
        )?;
        Self::check_times(
            spec.starts_at_ms,
            spec.ends_at_ms,
            spec.sales_open_at_ms,
            spec.sales_close_at_ms,
        )?;
        let policy_changed =
            spec.waitlist_policy != self.state.events[event_id.0 as usize].spec.waitlist_policy;
        self.state.events[event_id.0 as usize].spec = spec;
        if policy_changed {
            self.serve_waitlist(event_id);
        }
        Ok(Reply::EventUpdated {
            event: event_id,
            patch: Box::new(patch.clone()),
        })
    }

    fn cancel_event(&mut self, tenant: &str, event_id: EventId) -> Answer {
        let event = self.tenant_event(tenant, event_id)?;
        if event.canceled {
            return Err(conflict(ConflictReason::EventCanceled));
        }
        let booking_ids = event.bookings.clone();
        let waiter_ids: Vec<WaiterId> = event.queues.values().flatten().copied().collect();
        let hold_ids: Vec<HoldId> = self
            .state
            .holds
            .iter()
            .filter(|(_, hold)| hold.event == event_id)
            .map(|(id, _)| *id)
            .collect();
        for &hold in &hold_ids {
            self.take_hold(hold, HoldEnd::Released);
        }
        let mut canceled_bookings = Vec::new();
        for &booking in &booking_ids {
            if !self.state.bookings[booking.0 as usize - 1].canceled {
                self.free_booking(booking);
                canceled_bookings.push(booking);
            }
        }
        let mut ended_waiters = waiter_ids.clone();
        ended_waiters.sort();
        for &waiter in &ended_waiters {
            self.remove_waiter(waiter);
        }
        self.state.events[event_id.0 as usize].canceled = true;
        Ok(Reply::EventCanceled {
            event: event_id,
            released_holds: hold_ids,
            canceled_bookings,
            ended_waiters,
        })
    }

    fn check_in(&mut self, tenant: &str, event_id: EventId, code: &str) -> Answer {
        self.tenant_event(tenant, event_id)?;
        let ticket = crate::tickets::verify(&self.config.ticket_secret, code)
            .ok_or(not_found(NotFound::Ticket))?;
        let booking = self
            .state
            .bookings
            .get_mut((ticket.booking.0 as usize).wrapping_sub(1))
            .filter(|booking| booking.event == event_id)
            .ok_or(not_found(NotFound::Ticket))?;
        let used = booking
            .tickets_used
            .get_mut(ticket.index as usize - 1)
            .ok_or(not_found(NotFound::Ticket))?;
        if booking.canceled {
            return Err(conflict(ConflictReason::BookingCanceled));
        }
        if *used {
            return Err(Rejection::AlreadyUsed);
        }
        *used = true;
        Ok(Reply::CheckedIn {
            event: event_id,
            ticket,
        })
    }

    // ---- holds ----------------------------------------------------------------------

    fn user_usage(&self, event: EventId, user: &str) -> u32 {
        self.state
            .usage
            .get(&UsageKey(event, user))
            .copied()
            .unwrap_or(0)
    }

    fn add_usage(&mut self, event: EventId, user: &str, delta: i64) {
        // Perf: looked up by a borrowed key (no `String` built unless a user's first places
        // are inserted), and no `entry`, which searches the tree twice in imbl.
        let key = UsageKey(event, user);
        match self.state.usage.get_mut(&key) {
            Some(usage) => {
                let next = i64::from(*usage) + delta;
                assert!(next >= 0, "usage went negative");
                if next == 0 {
                    self.state.usage.remove(&key);
                } else {
                    *usage = next as u32;
                }
            }
            None => {
                assert!(delta >= 0, "usage went negative");
                if delta > 0 {
                    self.state
                        .usage
                        .insert((event, user.to_string()), delta as u32);
                }
            }
        }
    }

    /// Checks a request's size against the per-order and per-user limits.
    fn check_quantity(
        &self,
        event_id: EventId,
        user: &str,
        quantity: u32,
    ) -> Result<(), Rejection> {
        let event = &self.state.events[event_id.0 as usize];
        if quantity == 0 {
            return Err(invalid("quantity must be at least 1"));
        }
        if quantity > event.spec.seats_per_order_max {
            return Err(Rejection::LimitExceeded {
                limit: Limit::SeatsPerOrder,
                max: event.spec.seats_per_order_max,
            });
        }
        if let Some(max) = event.spec.seats_per_user_max {
            if u64::from(self.user_usage(event_id, user)) + u64::from(quantity) > u64::from(max) {
                return Err(Rejection::LimitExceeded {
                    limit: Limit::SeatsPerUser,
                    max,
                });
            }
        }
        Ok(())
    }

    fn open_event(&self, event_id: EventId) -> Result<&Event, Rejection> {
        let event = self.event(event_id)?;
        if event.canceled {
            return Err(conflict(ConflictReason::EventCanceled));
        }
        if let Some(reason) = event.sales_closed(self.state.now_ms) {
            return Err(Rejection::SalesClosed { reason });
        }
        Ok(event)
    }

    fn place_hold(
        &mut self,
        user: &str,
        event_id: EventId,
        selection: &Selection,
        wait: bool,
    ) -> Answer {
        self.check_text("user", user, true)?;
        self.open_event(event_id)?;
        let items = match selection {
            Selection::Seats(labels) => self.pick_exact(event_id, user, labels)?,
            Selection::Best {
                quantity,
                category,
                together,
            } => {
                let category = self.resolve_category(event_id, category.as_deref())?;
                self.check_quantity(event_id, user, *quantity)?;
                let event = &self.state.events[event_id.0 as usize];
                let allowed = Self::allowed_for_newcomers(event);
                let found = crate::allocate::find(event, *quantity, category, *together, &allowed);
                match found {
                    Some(items) => items,
                    None if wait => {
                        return self
                            .enqueue(user, event_id, *quantity, category, *together)
                            .map(|reply| match reply {
                                Reply::WaitlistJoined {
                                    waiter,
                                    event,
                                    user,
                                    quantity,
                                    category,
                                    position,
                                } => Reply::Waitlisted {
                                    waiter,
                                    event,
                                    user,
                                    quantity,
                                    category,
                                    position,
                                },
                                other => other,
                            })
                    }
                    None => return Err(event.sold_out(category)),
                }
            }
        };
        let view = self.create_hold(event_id, user, items, None);
        Ok(Reply::HoldPlaced(view))
    }

    /// The categories a new quantity request may take from. Under the strict policy
    /// nobody passes a waiter: every category some waiter could ever use is kept for the
    /// waiters; the rest (what no waiter could use) is open to newcomers. A category's
    /// queue keeps its category; the any-category queue keeps what its smallest request
    /// of each kind could use (a larger request could use no more).
    fn allowed_for_newcomers(event: &Event) -> std::borrow::Cow<'static, [bool]> {
        /// Perf: no allocation when nothing is kept (no waiter, or `skip_ahead`).
        const EVERY: [bool; 64] = [true; 64];
        let categories = event.categories.len();
        let kept = event.spec.waitlist_policy == WaitlistPolicy::Strict && event.waiting > 0;
        if !kept && categories <= EVERY.len() {
            return std::borrow::Cow::Borrowed(&EVERY[..categories]);
        }
        let mut allowed = vec![true; categories];
        if !kept {
            return allowed.into();
        }
        for queue in event.queues.keys() {
            match queue {
                Some(category) => allowed[*category as usize] = false,
                None => {
                    for together in [false, true] {
                        if let Some(smallest) = event.smallest_need(None, together) {
                            crate::allocate::usable_categories(
                                event,
                                smallest,
                                None,
                                together,
                                |category| allowed[category as usize] = false,
                            );
                        }
                    }
                }
            }
        }
        allowed.into()
    }

    fn resolve_category(
        &self,
        event_id: EventId,
        name: Option<&str>,
    ) -> Result<Option<u16>, Rejection> {
        let event = &self.state.events[event_id.0 as usize];
        match name {
            None => Ok(None),
            Some(name) => event
                .category_index(name)
                .map(Some)
                .ok_or(not_found(NotFound::Category)),
        }
    }

    fn pick_exact(
        &self,
        event_id: EventId,
        user: &str,
        labels: &[String],
    ) -> Result<Items, Rejection> {
        let event = &self.state.events[event_id.0 as usize];
        if labels.len() > self.config.seats_per_order_cap as usize {
            return Err(Rejection::LimitExceeded {
                limit: Limit::SeatsPerOrder,
                max: event.spec.seats_per_order_max,
            });
        }
        let mut seats = Vec::with_capacity(labels.len());
        let mut unknown = Vec::new();
        for label in labels {
            match event.layout.seat_of(label) {
                Some(seat) => seats.push(seat),
                None => unknown.push(label.clone()),
            }
        }
        if !unknown.is_empty() {
            return Err(Rejection::UnknownSeats { seats: unknown });
        }
        // Perf: a sorted copy finds repeats without building a tree.
        let mut sorted = seats.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(invalid("a seat is requested twice"));
        }
        self.check_quantity(event_id, user, seats.len() as u32)?;
        let taken: Vec<u32> = seats
            .iter()
            .copied()
            .filter(|&seat| event.seats[seat as usize] != SEAT_FREE)
            .collect();
        if !taken.is_empty() {
            return Err(Rejection::SeatsUnavailable { seats: taken });
        }
        Ok(Items::Seats(seats))
    }

    /// Marks the items held and files the hold; the caller has checked availability.
    fn create_hold(
        &mut self,
        event_id: EventId,
        user: &str,
        items: Items,
        waiter: Option<WaiterId>,
    ) -> HoldView {
        let hold_id = HoldId(self.state.next_hold);
        self.state.next_hold += 1;
        let now_ms = self.state.now_ms;
        let event = &mut self.state.events[event_id.0 as usize];
        let expires_at_ms = now_ms + event.spec.hold_ttl_ms;
        match &items {
            Items::Seats(seats) => {
                for &seat in seats {
                    assert_eq!(
                        event.seats[seat as usize], SEAT_FREE,
                        "a seat has at most one owner"
                    );
                    event.seats[seat as usize] = held_by(hold_id);
                    let row = event.layout.row_of(seat) as usize;
                    event.row_free[row] -= 1;
                    event.categories[event.layout.rows[row].category as usize].held += 1;
                }
            }
            Items::Pool { category, quantity } => {
                let pool = &mut event.pools[event.categories[*category as usize]
                    .pool
                    .expect("pool category") as usize];
                assert!(pool.free() >= *quantity);
                pool.held += quantity;
                event.categories[*category as usize].held += u64::from(*quantity);
            }
        }
        self.add_usage(event_id, user, i64::from(items.quantity()));
        let due_ms = expires_at_ms + self.config.confirm_grace_ms;
        self.state
            .timers
            .insert((due_ms, TimerKind::HoldExpiry, hold_id.0));
        let hold = Hold {
            event: event_id,
            user: user.to_string(),
            items,
            created_at_ms: now_ms,
            expires_at_ms,
            due_ms,
            waiter,
        };
        let view = HoldView {
            hold: hold_id,
            event: event_id,
            user: hold.user.clone(),
            items: hold.items.clone(),
            created_at_ms: now_ms,
            expires_at_ms,
            waiter,
        };
        self.state.holds.insert(hold_id, hold);
        view
    }

    /// Removes a live hold, returning its seats to free, and remembers how it ended.
    fn take_hold(&mut self, hold_id: HoldId, end: HoldEnd) -> Hold {
        let hold = self.state.holds.remove(&hold_id).expect("the hold is live");
        // An expiring hold's timer was popped already; the others are still filed.
        let filed = self
            .state
            .timers
            .remove(&(hold.due_ms, TimerKind::HoldExpiry, hold_id.0))
            .is_some();
        debug_assert!(filed || end == HoldEnd::Expired);
        let event = &mut self.state.events[hold.event.0 as usize];
        if end != HoldEnd::Confirmed {
            match &hold.items {
                Items::Seats(seats) => {
                    for &seat in seats {
                        assert_eq!(
                            event.seats[seat as usize],
                            held_by(hold_id),
                            "the hold owns its seats"
                        );
                        event.seats[seat as usize] = SEAT_FREE;
                        let row = event.layout.row_of(seat) as usize;
                        event.row_free[row] += 1;
                        event.categories[event.layout.rows[row].category as usize].held -= 1;
                    }
                }
                Items::Pool { category, quantity } => {
                    let pool = &mut event.pools[event.categories[*category as usize]
                        .pool
                        .expect("pool category")
                        as usize];
                    pool.held -= quantity;
                    event.categories[*category as usize].held -= u64::from(*quantity);
                }
            }
            let quantity = hold.items.quantity();
            self.add_usage(hold.event, &hold.user, -i64::from(quantity));
        }
        if self.state.ended_holds.len() >= self.config.ended_holds_max {
            if let Some((_, oldest)) = self.state.ended_hold_queue.pop_front() {
                self.state.ended_holds.remove(&oldest);
            }
        }
        self.state.ended_holds.insert(
            hold_id,
            EndedHold {
                user: hold.user.clone(),
                end,
            },
        );
        self.state
            .ended_hold_queue
            .push_back((self.state.now_ms, hold_id));
        hold
    }

    /// A live hold owned by `user`, or the reason it cannot be used.
    fn owned_hold(&self, user: &str, hold_id: HoldId) -> Result<&Hold, Rejection> {
        if let Some(hold) = self
            .state
            .holds
            .get(&hold_id)
            .filter(|hold| hold.user == user)
        {
            return Ok(hold);
        }
        match self
            .state
            .ended_holds
            .get(&hold_id)
            .filter(|ended| ended.user == user)
        {
            Some(EndedHold {
                end: HoldEnd::Expired,
                ..
            }) => Err(Rejection::HoldExpired),
            Some(EndedHold {
                end: HoldEnd::Released,
                ..
            }) => Err(conflict(ConflictReason::HoldReleased)),
            Some(EndedHold {
                end: HoldEnd::Confirmed,
                ..
            }) => Err(conflict(ConflictReason::HoldAlreadyConfirmed)),
            None => Err(not_found(NotFound::Hold)),
        }
    }

    fn confirm_hold(&mut self, user: &str, hold_id: HoldId, payment_ref: &str) -> Answer {
        self.check_text("payment_ref", payment_ref, true)?;
        let hold = self.owned_hold(user, hold_id)?;
        // The timer fires only once time passes expires_at + grace, so a live hold is
        // still confirmable; this assert keeps the two rules tied together.
        assert!(self.state.now_ms <= hold.due_ms);
        let event_id = hold.event;
        let hold = self.take_hold(hold_id, HoldEnd::Confirmed);
        let booking_id = BookingId(self.state.bookings.len() as u64 + 1);
        let event = &mut self.state.events[event_id.0 as usize];
        let total_cents = match &hold.items {
            Items::Seats(seats) => {
                let category_of =
                    |seat: u32| event.layout.rows[event.layout.row_of(seat) as usize].category;
                let total_cents =
                    order_total_cents(seats.iter().map(|&seat| {
                        (event.categories[category_of(seat) as usize].price_cents, 1)
                    }));
                for &seat in seats {
                    assert_eq!(event.seats[seat as usize], held_by(hold_id));
                    event.seats[seat as usize] = booked_by(booking_id);
                    let category = &mut event.categories
                        [event.layout.rows[event.layout.row_of(seat) as usize].category as usize];
                    category.held -= 1;
                    category.booked += 1;
                }
                total_cents
            }
            Items::Pool { category, quantity } => {
                let entry = &mut event.categories[*category as usize];
                let pool = &mut event.pools[entry.pool.expect("pool category") as usize];
                pool.held -= quantity;
                pool.booked += quantity;
                entry.held -= u64::from(*quantity);
                entry.booked += u64::from(*quantity);
                order_total_cents([(entry.price_cents, *quantity)])
            }
        };
        event.refresh_open_runs(&hold.items);
        event.bookings.push(booking_id);
        let booking = Booking {
            hold: hold_id,
            event: event_id,
            user: hold.user,
            items: hold.items,
            total_cents,
            payment_ref: payment_ref.to_string(),
            booked_at_ms: self.state.now_ms,
            tickets_used: vec![false; 0],
            canceled: false,
        };
        let quantity = booking.items.quantity();
        self.state.bookings.push(Booking {
            tickets_used: vec![false; quantity as usize],
            ..booking
        });
        // Held seats became booked: some waiters may now be impossible to serve.
        self.serve_waitlist(event_id);
        Ok(Reply::HoldConfirmed(self.booking_view(booking_id)))
    }

    pub(crate) fn booking_view(&self, booking_id: BookingId) -> BookingView {
        let booking = &self.state.bookings[booking_id.0 as usize - 1];
        let tickets = (0..booking.items.quantity())
            .map(|index| {
                let ticket = TicketId {
                    booking: booking_id,
                    index: index + 1,
                };
                let seat = match &booking.items {
                    Items::Seats(seats) => Some(seats[index as usize]),
                    Items::Pool { .. } => None,
                };
                TicketView {
                    ticket,
                    seat,
                    code: crate::tickets::code(&self.config.ticket_secret, ticket),
                }
            })
            .collect();
        BookingView {
            booking: booking_id,
            hold: booking.hold,
            event: booking.event,
            user: booking.user.clone(),
            items: booking.items.clone(),
            total_cents: booking.total_cents,
            payment_ref: booking.payment_ref.clone(),
            booked_at_ms: booking.booked_at_ms,
            tickets,
        }
    }

    fn release_hold(&mut self, user: &str, hold_id: HoldId) -> Answer {
        self.owned_hold(user, hold_id)?;
        let hold = self.take_hold(hold_id, HoldEnd::Released);
        let event = hold.event;
        self.serve_waitlist(event);
        Ok(Reply::HoldReleased {
            hold: hold_id,
            event,
            user: hold.user,
            items: hold.items,
        })
    }

    /// Returns a booking's seats to free and marks it canceled.
    fn free_booking(&mut self, booking_id: BookingId) {
        let booking = &mut self.state.bookings[booking_id.0 as usize - 1];
        assert!(!booking.canceled);
        booking.canceled = true;
        let event = &mut self.state.events[booking.event.0 as usize];
        match &booking.items {
            Items::Seats(seats) => {
                for &seat in seats {
                    assert_eq!(
                        event.seats[seat as usize],
                        booked_by(booking_id),
                        "the booking owns its seats"
                    );
                    event.seats[seat as usize] = SEAT_FREE;
                    let row = event.layout.row_of(seat) as usize;
                    event.row_free[row] += 1;
                    event.categories[event.layout.rows[row].category as usize].booked -= 1;
                }
            }
            Items::Pool { category, quantity } => {
                let entry = &mut event.categories[*category as usize];
                event.pools[entry.pool.expect("pool category") as usize].booked -= quantity;
                entry.booked -= u64::from(*quantity);
            }
        }
        event.refresh_open_runs(&booking.items);
        let (event_id, user, quantity) = (
            booking.event,
            booking.user.clone(),
            booking.items.quantity(),
        );
        self.add_usage(event_id, &user, -i64::from(quantity));
    }

    fn cancel_booking(&mut self, user: &str, booking_id: BookingId) -> Answer {
        let booking = self
            .state
            .bookings
            .get((booking_id.0 as usize).wrapping_sub(1))
            .filter(|booking| booking.user == user)
            .ok_or(not_found(NotFound::Booking))?;
        if booking.canceled {
            return Err(conflict(ConflictReason::BookingCanceled));
        }
        if booking.tickets_used.iter().any(|used| *used) {
            return Err(Rejection::AlreadyUsed);
        }
        let (event, items) = (booking.event, booking.items.clone());
        self.free_booking(booking_id);
        self.serve_waitlist(event);
        Ok(Reply::BookingCanceled {
            booking: booking_id,
            event,
            user: user.to_string(),
            items,
        })
    }

    // ---- waitlist ---------------------------------------------------------------------

    fn join_waitlist(
        &mut self,
        user: &str,
        event_id: EventId,
        quantity: u32,
        category: Option<&str>,
        together: bool,
    ) -> Answer {
        self.check_text("user", user, true)?;
        self.open_event(event_id)?;
        let category = self.resolve_category(event_id, category)?;
        self.check_quantity(event_id, user, quantity)?;
        let reply = self.enqueue(user, event_id, quantity, category, together)?;
        // Seats may be free right now (nobody waits ahead): offer at once.
        self.serve_waitlist(event_id);
        Ok(reply)
    }

    fn enqueue(
        &mut self,
        user: &str,
        event_id: EventId,
        quantity: u32,
        category: Option<u16>,
        together: bool,
    ) -> Answer {
        let event = &self.state.events[event_id.0 as usize];
        // A request that could never be served would only keep others waiting.
        if !crate::allocate::servable_ever(event, quantity, category, together) {
            return Err(event.sold_out(category));
        }
        if self.user_waiters(event_id, user) >= self.config.waiters_per_user_max {
            return Err(Rejection::LimitExceeded {
                limit: Limit::WaitersPerUser,
                max: self.config.waiters_per_user_max,
            });
        }
        if event.waiting >= self.config.waitlist_length_max {
            return Err(Rejection::LimitExceeded {
                limit: Limit::WaitlistLength,
                max: self.config.waitlist_length_max,
            });
        }
        let waiter_id = WaiterId(self.state.next_waiter);
        self.state.next_waiter += 1;
        let expires_at_ms = self.state.now_ms + self.config.waitlist_wait_max_ms;
        let event = &mut self.state.events[event_id.0 as usize];
        let queue = event.queues.entry(category).or_default();
        queue.insert(waiter_id);
        let position = queue.len() as u32;
        event.waiting += 1;
        event.count_need((category, together, quantity), true);
        *self
            .state
            .waiters_by_user
            .entry((event_id, user.to_string()))
            .or_default() += 1;
        self.state
            .timers
            .insert((expires_at_ms, TimerKind::WaiterExpiry, waiter_id.0));
        self.state.waiters.insert(
            waiter_id,
            Waiter {
                event: event_id,
                user: user.to_string(),
                quantity,
                category,
                together,
                expires_at_ms,
            },
        );
        Ok(Reply::WaitlistJoined {
            waiter: waiter_id,
            event: event_id,
            user: user.to_string(),
            quantity,
            category,
            position,
        })
    }

    fn remove_waiter(&mut self, waiter_id: WaiterId) -> Waiter {
        let waiter = self
            .state
            .waiters
            .remove(&waiter_id)
            .expect("the waiter is live");
        let event = &mut self.state.events[waiter.event.0 as usize];
        let queue = event
            .queues
            .get_mut(&waiter.category)
            .expect("the waiter's queue exists");
        assert!(
            queue.remove(&waiter_id).is_some(),
            "every waiter is in its queue"
        );
        if queue.is_empty() {
            event.queues.remove(&waiter.category);
        }
        event.waiting -= 1;
        event.count_need((waiter.category, waiter.together, waiter.quantity), false);
        let key = (waiter.event, waiter.user.clone());
        let count = self
            .state
            .waiters_by_user
            .get_mut(&key)
            .expect("every waiter is counted for its user");
        *count -= 1;
        if *count == 0 {
            self.state.waiters_by_user.remove(&key);
        }
        // A timed-out waiter's timer was popped already.
        self.state
            .timers
            .remove(&(waiter.expires_at_ms, TimerKind::WaiterExpiry, waiter_id.0));
        waiter
    }

    fn end_waiter(&mut self, waiter_id: WaiterId, reason: WaitEnd) {
        let waiter = self.remove_waiter(waiter_id);
        self.effects.push(Effect::WaitlistEnded {
            waiter: waiter_id,
            event: waiter.event,
            user: waiter.user,
            reason,
        });
    }

    fn leave_waitlist(&mut self, user: &str, waiter_id: WaiterId) -> Answer {
        let waiter = self
            .state
            .waiters
            .get(&waiter_id)
            .filter(|waiter| waiter.user == user)
            .ok_or(not_found(NotFound::Waiter))?;
        let event = waiter.event;
        self.remove_waiter(waiter_id);
        // The head may have been the one blocking a strict queue.
        self.serve_waitlist(event);
        Ok(Reply::WaitlistLeft {
            waiter: waiter_id,
            event,
            user: user.to_string(),
        })
    }

    fn user_waiters(&self, event: EventId, user: &str) -> u32 {
        self.state
            .waiters_by_user
            .get(&UsageKey(event, user))
            .copied()
            .unwrap_or(0)
    }

    /// Ends, in arrival order, every waiter of the event that could never be served (a
    /// booking took for good what it was waiting for): `NoRowLongEnough` for a `together`
    /// request that enough seats could still serve, scattered, `SoldOut` otherwise. Each
    /// (queue, together) class is checked by its largest request first, so no queue is
    /// walked unless one of its waiters is hopeless.
    fn end_hopeless_waiters(&mut self, event_id: EventId) {
        let event = &self.state.events[event_id.0 as usize];
        let mut largest: BTreeMap<(Option<u16>, bool), u32> = BTreeMap::new();
        for &(queue, together, quantity) in event.waiter_needs.keys() {
            largest.insert((queue, together), quantity);
        }
        let mut hopeless = Vec::new();
        for ((queue, together), quantity) in largest {
            if crate::allocate::servable_ever(event, quantity, queue, together) {
                continue;
            }
            let most = crate::allocate::most_servable(event, queue, together);
            let before = hopeless.len();
            for waiter_id in &event.queues[&queue] {
                let waiter = &self.state.waiters[waiter_id];
                if waiter.together == together && u64::from(waiter.quantity) > most {
                    let scattered =
                        crate::allocate::servable_ever(event, waiter.quantity, queue, false);
                    let reason = if together && scattered {
                        WaitEnd::NoRowLongEnough
                    } else {
                        WaitEnd::SoldOut
                    };
                    hopeless.push((*waiter_id, reason));
                }
            }
            assert!(hopeless.len() > before, "the largest request is hopeless");
        }
        hopeless.sort_unstable_by_key(|(waiter_id, _)| *waiter_id);
        for (waiter_id, reason) in hopeless {
            self.end_waiter(waiter_id, reason);
        }
    }

    /// Ends the waiters that can never be served, then offers free seats to the others
    /// in arrival order, across queues. Under the strict policy a waiter that cannot be
    /// served yet keeps every category it could ever use for itself: nobody after it
    /// takes from those (so a category's queue stops at its head), but a later waiter may
    /// still take from a category it could never use.
    fn serve_waitlist(&mut self, event_id: EventId) {
        let event = &self.state.events[event_id.0 as usize];
        if event.waiting == 0 || event.canceled {
            return;
        }
        self.end_hopeless_waiters(event_id);
        let event = &self.state.events[event_id.0 as usize];
        let strict = event.spec.waitlist_policy == WaitlistPolicy::Strict;
        let mut allowed = vec![true; event.categories.len()];
        // Per live queue, the first waiter id not yet looked at.
        let mut cursors: Vec<(Option<u16>, WaiterId)> = event
            .queues
            .keys()
            .map(|queue| (*queue, WaiterId(0)))
            .collect();
        loop {
            let event = &self.state.events[event_id.0 as usize];
            let anything_to_give = event
                .categories
                .iter()
                .zip(&allowed)
                .any(|(category, allowed)| *allowed && category.free() > 0);
            if !anything_to_give {
                break;
            }
            let next = cursors
                .iter()
                .enumerate()
                .filter_map(|(index, (queue, cursor))| {
                    let queue = event.queues.get(queue)?;
                    queue.range(*cursor..).next().map(|id| (*id, index))
                })
                .min();
            let Some((waiter_id, index)) = next else {
                break;
            };
            cursors[index].1 = WaiterId(waiter_id.0 + 1);
            let waiter = &self.state.waiters[&waiter_id];
            debug_assert!(
                crate::allocate::servable_ever(
                    event,
                    waiter.quantity,
                    waiter.category,
                    waiter.together
                ),
                "hopeless waiters were ended"
            );
            let Some(items) = crate::allocate::find(
                event,
                waiter.quantity,
                waiter.category,
                waiter.together,
                &allowed,
            ) else {
                if strict {
                    crate::allocate::usable_categories(
                        event,
                        waiter.quantity,
                        waiter.category,
                        waiter.together,
                        |category| allowed[category as usize] = false,
                    );
                    if waiter.category.is_some() {
                        // Its category is kept for it now: nobody behind it can pass.
                        cursors.swap_remove(index);
                    }
                }
                continue;
            };
            let over_limit = event.spec.seats_per_user_max.is_some_and(|max| {
                u64::from(self.user_usage(event_id, &waiter.user)) + u64::from(waiter.quantity)
                    > u64::from(max)
            });
            if over_limit {
                self.end_waiter(waiter_id, WaitEnd::LimitExceeded);
                continue;
            }
            let waiter = self.remove_waiter(waiter_id);
            let hold = self.create_hold(event_id, &waiter.user, items, Some(waiter_id));
            self.effects.push(Effect::WaitlistOffered {
                waiter: waiter_id,
                hold,
            });
        }
    }

    // ---- checks -------------------------------------------------------------------------

    /// Cheap counter checks run after every command in debug builds.
    #[cfg(debug_assertions)]
    fn check_counters(&self) {
        for event in &self.state.events {
            for category in &event.categories {
                debug_assert!(category.held + category.booked <= category.capacity);
            }
        }
    }

    /// Walks the whole state and stops the process on any broken invariant. For tests
    /// and debug tooling; it is O(state).
    pub fn check_invariants(&self) {
        crate::invariants::check(self);
    }

    /// A digest of the whole state in canonical order: equal states give equal hashes on
    /// every machine.
    pub fn state_hash(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        bincode::serde::encode_into_std_write(
            &self.state,
            &mut hasher,
            bincode::config::standard(),
        )
        .expect("hashing cannot fail");
        *hasher.finalize().as_bytes()
    }

    pub fn state_hash_hex(&self) -> String {
        self.state_hash()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    pub(crate) fn seat_owner(state: SeatState) -> Option<(bool, u64)> {
        match state & TAG_MASK {
            0 => None,
            TAG_HELD => Some((true, state & OWNER_MASK)),
            TAG_BOOKED => Some((false, state & OWNER_MASK)),
            _ => panic!("corrupt seat state {state:#x}"),
        }
    }
}

pub(crate) const FREE: SeatState = SEAT_FREE;

/// The key of `State::usage` and `State::waiters_by_user`, borrowed: compares like `(EventId, String)` without building one.
struct UsageKey<'a>(EventId, &'a str);

impl equivalent::Equivalent<(EventId, String)> for UsageKey<'_> {
    fn equivalent(&self, key: &(EventId, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

impl equivalent::Comparable<(EventId, String)> for UsageKey<'_> {
    fn compare(&self, key: &(EventId, String)) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(key.0, key.1.as_str()))
    }
}
