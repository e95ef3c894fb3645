//! The state machine: `Engine::apply(offset, time, request) -> Outcome<UserNumber>`.
//!
//! One `match` in `execute` owns control flow; each command has one handler. Helpers
//! compute, handlers mutate. Time only moves through `advance_clock`, which fires due
//! timers in (due time, kind, id) order before the command itself runs.

use crate::command::*;
use crate::config::{ConfigMismatch, EngineConfig};
use crate::idempotency::IdempotencyStamp;
use crate::ids::*;
use crate::layout::Layout;
use crate::outcome::*;
use crate::snapshot::CowVec;
use std::collections::BTreeMap;

mod bookings;
mod clock;
mod draws;
mod events;
mod holds;
mod idempotency_window;
mod live_holds;
pub(crate) mod prefetch;
mod state;
mod timers;
mod usage;
mod users;
mod waitlist;

pub(crate) use idempotency_window::IdempotencyWindow;
pub(crate) use live_holds::LiveHolds;
pub use state::State;
pub(crate) use state::*;
pub(crate) use usage::Usage;
pub(crate) use users::{unassigned_user, UserId, UserIndex, Who};

/// The booking engine. Deterministic: the same requests at the same offsets and
/// times give the same outcomes and the same `state_hash`.
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) state: State,
    /// Effects of the request being applied; drained into its outcome.
    pub(crate) effects: Vec<Effect<UserNumber>>,
    /// How many of `effects` the clock made before the request ran
    /// (`Outcome::effects_before_reply`).
    pub(crate) clock_effects: usize,
    /// User name → id for `state.users` (derived: rebuilt by `from_state`).
    pub(crate) users: UserIndex,
    /// Layouts by content, so events with the same seating (the shows of one hall) share
    /// one layout in memory (derived: rebuilt by `from_state`, which also re-shares them).
    pub(crate) layouts: LayoutIndex,
}

/// Layouts by a digest of their encoding. Looked up, never iterated.
#[derive(Default)]
pub(crate) struct LayoutIndex(std::collections::HashMap<[u8; 32], std::sync::Arc<Layout>>);

impl LayoutIndex {
    /// The shared copy of `layout`: one already indexed that is equal, or this one.
    pub(crate) fn share(&mut self, layout: std::sync::Arc<Layout>) -> std::sync::Arc<Layout> {
        let encoded = bincode::serde::encode_to_vec(&*layout, bincode::config::standard())
            .expect("encoding into a Vec cannot fail");
        let shared = self
            .0
            .entry(*blake3::hash(&encoded).as_bytes())
            .or_insert_with(|| layout.clone());
        if **shared == *layout {
            shared.clone()
        } else {
            layout // a digest collision: keep it unshared
        }
    }
}

type Answer = Result<Reply<UserNumber>, Rejection>;

/// A seat's holder in terms of the public model (see [`Engine::seat_holders`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeatHolder {
    Free,
    Held(HoldId),
    Booked(BookingId),
}

// Perf: refusals by these three are rare in any mix (a hold on taken seats or a sold-out
// category is refused otherwise), so they are cold: the branches to them are laid out
// after the hot path.

#[cold]
fn not_found(what: NotFound) -> Rejection {
    Rejection::NotFound { what }
}

#[cold]
fn invalid(reason: impl Into<String>) -> Rejection {
    Rejection::Invalid {
        reason: reason.into(),
    }
}

#[cold]
fn conflict(reason: ConflictReason) -> Rejection {
    Rejection::Conflict { reason }
}

impl Engine {
    /// A new engine. The configuration must pass [`EngineConfig::validate`] (shells
    /// check it first): anything else is a bug in the shell, so it stops the process.
    pub fn new(config: EngineConfig) -> Engine {
        if let Err(reason) = config.validate() {
            panic!("{reason}");
        }
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
            clock_effects: 0,
            users: UserIndex::default(),
            layouts: LayoutIndex::default(),
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
        if let Err(reason) = config.validate() {
            panic!("{reason}");
        }
        if let Some(mismatch) = Engine::config_mismatch(&state, &config) {
            panic!("{mismatch}");
        }
        let mut state = state;
        let mut layouts = LayoutIndex::default();
        for event in &mut state.events {
            event.layout = layouts.share(event.layout.clone());
        }
        Engine {
            config,
            users: UserIndex::of(&state.users),
            state,
            effects: Vec::new(),
            clock_effects: 0,
            layouts,
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
        self.state.timers.first().map(|(due, _, _)| due + 1)
    }

    /// Applies one log record. Offsets must strictly increase: anything else is a bug
    /// in the shell, so it stops the process.
    pub fn apply(&mut self, offset: u64, time_ms: u64, request: &Request) -> Outcome<UserNumber> {
        self.begin(offset, time_ms);
        if !self.state.draws_pending.is_empty() {
            self.chain_draw_records(offset, request);
        }
        // Perf: stamps (two digests of the command by name) only for keyed requests. A
        // user named by an id the engine never assigned names nobody: refused before its
        // key is looked up (no principal to look it up under), as `execute` refuses it
        // without a key.
        let stamp = match &request.idempotency_key {
            None => None,
            Some(key) => {
                let named = request
                    .command
                    .named(|id| self.user_name_of(id).map(str::to_string));
                match (named, request.command.user()) {
                    (Some(named), _) => IdempotencyStamp::of_named(&named, key),
                    (None, Some(UserRef::Id(id))) => {
                        return self.finish(offset, false, Err(unassigned_user(*id)), None);
                    }
                    (None, _) => unreachable!("only a user by id can be unnamed"),
                }
            }
        };
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
    pub fn apply_undecodable(
        &mut self,
        offset: u64,
        time_ms: u64,
        reason: &str,
    ) -> Outcome<UserNumber> {
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
        self.clock_effects = self.effects.len();
    }

    fn finish(
        &mut self,
        offset: u64,
        replayed: bool,
        result: Answer,
        idempotency: Option<IdempotencyStamp>,
    ) -> Outcome<UserNumber> {
        #[cfg(debug_assertions)]
        self.check_counters();
        debug_assert!(!(replayed && idempotency.is_some()));
        Outcome {
            offset,
            time_ms: self.state.now_ms,
            replayed,
            result,
            effects_before_reply: u32::try_from(self.clock_effects)
                .expect("an outcome's effects are counted in a u32"),
            effects: std::mem::take(&mut self.effects),
            idempotency,
        }
    }

    fn remember(&mut self, stamp: &IdempotencyStamp, result: &Answer) {
        if self.state.idempotency.len() >= self.config.idempotency_entries_max {
            self.state.idempotency.forget_oldest();
        }
        // Asserts the key is new and the window stays in time order.
        self.state.idempotency.push(
            stamp.key_digest,
            IdempotencyEntry {
                stored_at_ms: self.state.now_ms,
                fingerprint: stamp.fingerprint,
                result: result.clone(),
            },
        );
        assert!(self.state.idempotency.len() <= self.config.idempotency_entries_max);
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
            } => self.check_in_code(tenant, *event, code),
            Command::CheckInTicket {
                tenant,
                event,
                ticket,
            } => self.check_in(tenant, *event, *ticket),
            Command::PlaceHold {
                user,
                event,
                selection,
                wait,
            } => self.place_hold(self.who(user)?, *event, selection, *wait),
            Command::ConfirmHold {
                user,
                hold,
                payment_ref,
            } => self.confirm_hold(self.who(user)?, *hold, payment_ref),
            Command::ReleaseHold { user, hold } => self.release_hold(self.who(user)?, *hold),
            Command::CancelBooking { user, booking } => {
                self.cancel_booking(self.who(user)?, *booking)
            }
            Command::JoinWaitlist { .. } | Command::JoinWaitlistIndexed { .. } => {
                let (user, event, quantity, category, together) =
                    command.waitlist_join().expect("a waitlist join");
                self.join_waitlist(self.who(user)?, event, quantity, category, together)
            }
            Command::LeaveWaitlist { user, waiter } => {
                self.leave_waitlist(self.who(user)?, *waiter)
            }
            Command::CreateDesk { tenant, spec } => self.create_desk(tenant, spec),
            Command::CreateDeskTicket {
                user,
                desk,
                level,
                hold_only,
            } => {
                let name = self.desk_user(user)?;
                self.create_desk_ticket(&name, *desk, level, *hold_only)
            }
            Command::ConfirmDeskTicket { user, desk, ticket } => {
                let name = self.desk_user(user)?;
                self.confirm_desk_ticket(&name, *desk, *ticket)
            }
            Command::CancelDeskTicket { user, desk, ticket } => {
                let name = self.desk_user(user)?;
                self.cancel_desk_ticket(&name, *desk, *ticket)
            }
            Command::Tick => Ok(Reply::Ticked),
            Command::Promote { node } => self.promote(node),
            // A replica with another configuration never gets here: its shell stops
            // before this record (`logged_config_mismatch`).
            Command::Configure { .. } => Ok(Reply::Configured),
            Command::CreateEventWithDraw { tenant, spec, draw } => {
                self.create_event_with(tenant, spec, Some(draw), None)
            }
            Command::CreateEventWithTerms {
                tenant,
                spec,
                draw,
                terms,
            } => self.create_event_with(tenant, spec, draw.as_deref(), Some(terms)),
            Command::RevealDrawSeed {
                tenant,
                event,
                seed,
            } => self.reveal_draw_seed(tenant, *event, seed),
            Command::OpenArrivalWindow {
                tenant,
                event,
                draw,
            } => self.open_arrival_window(tenant, *event, draw),
        }
    }

    /// A desk command's user by name (desk tickets keep names): borrowed when the
    /// command names it, the state's shared name when it gives an id.
    fn desk_user<'a>(&self, user: &'a UserRef) -> Result<std::borrow::Cow<'a, str>, Rejection> {
        Ok(match self.who(user)? {
            users::Who::Name(name) => std::borrow::Cow::Borrowed(name),
            who => std::borrow::Cow::Owned(self.who_name(who).to_string()),
        })
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

    // ---- ids and table rows ---------------------------------------------------------------
    //
    // Events, desks and bookings are table rows; their ids say the row and the shard (see
    // `ids`). Every id that reaches a table goes through these: an id from a request may
    // name nothing here (unknown, or another shard's) and is then "not found"; an id the
    // state stores names a row of this shard, or the state is corrupt.

    /// The row of event `id`, if it is one of this shard's events.
    #[inline]
    pub(crate) fn event_index(&self, id: EventId) -> Option<usize> {
        self.config
            .shard
            .event_index(id)
            .filter(|&index| index < self.state.events.len())
    }

    /// The row of an event id the state stores.
    #[inline]
    pub(crate) fn known_event_index(&self, id: EventId) -> usize {
        self.event_index(id)
            .unwrap_or_else(|| panic!("stored event id {id} names no event of this shard"))
    }

    /// An event the state stores the id of (or a request's, once found).
    #[inline]
    pub(crate) fn known_event(&self, id: EventId) -> &Event {
        &self.state.events[self.known_event_index(id)]
    }

    /// The id of the event in row `index`.
    pub(crate) fn event_id_at(&self, index: usize) -> EventId {
        self.config.shard.event_id(index)
    }

    /// The row of booking `id`, if it is one of this shard's bookings.
    #[inline]
    pub(crate) fn booking_index(&self, id: BookingId) -> Option<usize> {
        self.config
            .shard
            .booking_index(id)
            .filter(|&index| index < self.state.bookings.len())
    }

    /// The row of a booking id the state stores.
    #[inline]
    pub(crate) fn known_booking_index(&self, id: BookingId) -> usize {
        self.booking_index(id)
            .unwrap_or_else(|| panic!("stored booking id {id} names no booking of this shard"))
    }

    /// A booking the state stores the id of.
    pub(crate) fn booking(&self, id: BookingId) -> &Booking {
        &self.state.bookings[self.known_booking_index(id)]
    }

    /// The id of the booking in row `index`.
    pub(crate) fn booking_id_at(&self, index: usize) -> BookingId {
        self.config.shard.booking_id(index)
    }

    /// The row of desk `id`, if it is one of this shard's desks.
    #[inline]
    pub(crate) fn desk_index(&self, id: DeskId) -> Option<usize> {
        self.config
            .shard
            .desk_index(id)
            .filter(|&index| index < self.state.desks.desks.len())
    }

    /// The row of a desk id the state stores.
    pub(crate) fn known_desk_index(&self, id: DeskId) -> usize {
        self.desk_index(id)
            .unwrap_or_else(|| panic!("stored desk id {id} names no desk of this shard"))
    }

    /// The id of the desk in row `index`.
    pub(crate) fn desk_id_at(&self, index: usize) -> DeskId {
        self.config.shard.desk_id(index)
    }

    /// The id of this shard's `sequence`-th hold, waiter or desk ticket (numbered from 1).
    #[inline]
    pub(crate) fn sequence_id(&self, sequence: u64) -> u64 {
        debug_assert!(sequence >= 1, "sequences start at 1");
        self.config.shard.global(sequence)
    }

    // ---- checks -------------------------------------------------------------------------

    /// Cheap counter checks run after every command in debug builds.
    #[cfg(debug_assertions)]
    fn check_counters(&self) {
        for event in &self.state.events {
            for category in &event.ledger.categories {
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

    /// Who holds each seat of an event: the live hold's id or the live booking's id, in
    /// terms of the public model (for queries and checks: O(the event's bookings and live
    /// holds)). A held seat's hold is found from the event's hold slots and the holds'
    /// seats (the ledger keeps only that the seat is held).
    pub(crate) fn seat_holders(&self, event: &Event) -> Vec<SeatHolder> {
        let mut holders = vec![SeatHolder::Free; event.layout.seat_count as usize];
        for booking_id in event.bookings.iter() {
            let booking = self.booking(*booking_id);
            if let (false, Items::Seats(seats)) = (booking.canceled, &booking.items) {
                for &seat in seats.iter() {
                    holders[seat as usize] = SeatHolder::Booked(*booking_id);
                }
            }
        }
        for &hold_id in event.ledger.hold_slots.iter().filter(|id| **id != 0) {
            let hold_id = HoldId(hold_id);
            let hold = self
                .state
                .holds
                .get(&hold_id)
                .unwrap_or_else(|| panic!("hold slot names {hold_id}, which is not live"));
            if let Items::Seats(seats) = &hold.items {
                for &seat in seats.iter() {
                    holders[seat as usize] = SeatHolder::Held(hold_id);
                }
            }
        }
        holders
    }
}
