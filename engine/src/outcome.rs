//! Outcomes: exactly one per command, plus the consequences it caused.
//!
//! An outcome carries enough data for a read model and for notifications to follow
//! the engine's state without asking it: a created event carries its whole spec, a
//! hold carries its seats, an expiry names what it freed.
//!
//! Users: the engine makes `Outcome<UserNumber>` (each user by the number it gave them);
//! the publisher names them (`Outcome<UserName>`, the default, through [`UserNames`]), and
//! that is what the outcomes log carries and every reader sees. Desk tickets name their
//! users in both (desk users are not numbered).

use crate::command::{DeskSpec, EventPatch, EventSpec};
use crate::idempotency::IdempotencyStamp;
use crate::ids::{BookingId, DeskId, DeskTicketId, EventId, HoldId, TicketId, WaiterId};
use serde::{Deserialize, Serialize};

/// A user's name in an outcome: shared with the engine's user table (a reference count,
/// not a copy per outcome). Encodes exactly like a `String`.
pub type UserName = std::sync::Arc<str>;

/// A user as the engine's own outcomes name them: the dense id it gave the user
/// (`Engine::user_number`), not the name. Perf: an id costs the engine thread nothing to
/// copy, where sharing the name touched the name's reference count, a cache miss on a
/// crowd of users (about 8% of the standard mix). Whoever publishes outcomes names them
/// ([`UserNames`]); the outcomes log and everyone reading it see names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UserNumber(pub u32);

/// The engine's users by number, as a publisher keeps them: the engine's table when it
/// started ([`crate::Engine::user_names`]), then the users each applied batch added
/// ([`crate::Engine::user_names_from`]), in the order the engine numbered them.
///
/// In chunks ([`crate::snapshot::CowVec`], as the engine's own table): a `Vec` of every
/// name grew by copying all of them into one twice the size, 16 MB on the publisher's
/// thread at the millionth user, with every outcome behind it waiting.
#[derive(Clone, Debug, Default)]
pub struct UserNames {
    names: crate::snapshot::CowVec<UserName, { crate::engine::USER_CHUNK }>,
}

impl UserNames {
    pub fn new(names: Vec<UserName>) -> UserNames {
        let mut table = crate::snapshot::CowVec::new();
        names.into_iter().for_each(|name| table.push(name));
        UserNames { names: table }
    }

    /// The engine's own table, shared chunk by chunk (a pointer per chunk).
    pub(crate) fn of_table(
        names: &crate::snapshot::CowVec<UserName, { crate::engine::USER_CHUNK }>,
    ) -> UserNames {
        UserNames {
            names: names.clone(),
        }
    }

    /// How many users are named: the number the next new user gets.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.len() == 0
    }

    /// Adds the users numbered from `first` on. Users arrive once each, in order: a gap
    /// or an overlap means the publisher missed a batch, and stops the process.
    pub fn extend(&mut self, first: usize, names: impl IntoIterator<Item = UserName>) {
        assert_eq!(first, self.names.len(), "users are named in number order");
        names.into_iter().for_each(|name| self.names.push(name));
    }

    /// The name of user `number`. Every number an engine puts in an outcome was
    /// assigned before it, so a number without a name stops the process.
    pub fn name(&self, number: UserNumber) -> UserName {
        self.names
            .get(number.0 as usize)
            .unwrap_or_else(|| panic!("user {} is named before an outcome names it", number.0))
            .clone()
    }

    /// `outcome` with its users by name: what the outcomes log carries.
    pub fn outcome(&self, outcome: Outcome<UserNumber>) -> Outcome {
        outcome.map_users(&mut |number| self.name(number))
    }
}

pub use crate::seat_list::SeatList;

pub use crate::payment_ref::PaymentRef;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome<U = UserName> {
    /// The log offset of the request this answers.
    pub offset: u64,
    /// The engine's clock when it applied the request (log time, never earlier than
    /// any time applied before).
    pub time_ms: u64,
    /// True when this is the stored first answer to a repeated idempotency key.
    pub replayed: bool,
    pub result: Result<Reply<U>, Rejection>,
    /// What happened because time passed or seats were freed, in the order it happened.
    pub effects: Vec<Effect<U>>,
    /// How many of `effects`, from the first, happened before the reply's change: the
    /// engine's clock's (expiries, and the offers and ends they made), which run before
    /// the request. Whoever applies an outcome's changes (the ingress's read model,
    /// through the same `ledger` as the engine) applies these, then the reply, then the
    /// rest (the offers a release made, ...), as the engine did.
    pub effects_before_reply: u32,
    /// Set on the first answer to a keyed request (never on a replay or a refusal of a
    /// reused key): the ingress's idempotency index records it, so a repeat after the
    /// engine's short window is still answered (see `idempotency`).
    pub idempotency: Option<IdempotencyStamp>,
}

impl<U> Outcome<U> {
    /// Whether all of this outcome's effects happened before its reply's change, so that
    /// whoever applies an outcome in parts (the ingress's read model) or tells of it in
    /// order (`messages`) takes the effects first. An event cancel's effects are all the
    /// clock's (expiries, and the offers those made, before the command runs;
    /// `cancel_event` makes none), and its reply names what they made: the hold of an
    /// offer, released by the cancel. Any other reply comes first: its effects follow it
    /// (a release's offers), or name nothing it names.
    pub fn effects_first(&self) -> bool {
        matches!(self.result, Ok(Reply::EventCanceled { .. }))
    }
}

/// The items a hold or booking covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Items {
    /// Reserved seats, as seat indices of the event's layout.
    Seats(SeatList),
    /// A quantity from a general-admission pool, by category index.
    Pool { category: u16, quantity: u32 },
}

impl Items {
    pub fn quantity(&self) -> u32 {
        match self {
            Items::Seats(seats) => seats.len() as u32,
            Items::Pool { quantity, .. } => *quantity,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldView<U = UserName> {
    pub hold: HoldId,
    pub event: EventId,
    pub user: U,
    pub items: Items,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    /// Set when the hold was offered to a waitlist entry.
    pub waiter: Option<WaiterId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketView {
    pub ticket: TicketId,
    /// The seat index, for reserved seating.
    pub seat: Option<u32>,
    // No code: the unforgeable code printed on the ticket is derived from the ticket id
    // where it is shown (`tickets::code`, on the read side), not on the engine thread.
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingView<U = UserName> {
    pub booking: BookingId,
    pub hold: HoldId,
    pub event: EventId,
    pub user: U,
    pub items: Items,
    pub total_cents: u64,
    /// Shared with the engine's booking (encoded as a string): a confirmation copies the
    /// reference once, into the booking, and its view counts one more owner.
    pub payment_ref: PaymentRef,
    pub booked_at_ms: u64,
    // No ticket list: a booking's tickets follow from it ([`BookingView::tickets`]).
}

impl<U> BookingView<U> {
    /// The booking's tickets, one per seat or place: ticket `i` (from 1) is the `i`-th
    /// item, with its seat for reserved seating. Derived, so outcomes do not carry them.
    pub fn tickets(&self) -> impl Iterator<Item = TicketView> + '_ {
        (0..self.items.quantity()).map(move |index| TicketView {
            ticket: TicketId {
                booking: self.booking,
                index: index + 1,
            },
            seat: match &self.items {
                Items::Seats(seats) => Some(seats[index as usize]),
                Items::Pool { .. } => None,
            },
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// Desk tickets keep their users by name (`Desks`: desk users are not numbered, so
/// these name them in every outcome).
pub struct DeskTicketView {
    pub desk: DeskId,
    pub ticket: DeskTicketId,
    pub user: UserName,
    pub level: u16,
    pub agent: u32,
    pub slot_start_ms: u64,
    pub slot_end_ms: u64,
    pub resolve_by_ms: u64,
    /// Set while the ticket is only validated (a short hold on the slot).
    pub hold_expires_at_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply<U = UserName> {
    EventCreated {
        event: EventId,
        tenant: String,
        spec: Box<EventSpec>,
    },
    EventUpdated {
        event: EventId,
        patch: Box<EventPatch>,
    },
    EventCanceled {
        event: EventId,
        released_holds: Vec<HoldId>,
        canceled_bookings: Vec<BookingId>,
        ended_waiters: Vec<WaiterId>,
    },
    CheckedIn {
        event: EventId,
        ticket: TicketId,
    },
    HoldPlaced(HoldView<U>),
    /// `wait` was set and not enough was free: the request joined the waitlist.
    Waitlisted {
        waiter: WaiterId,
        event: EventId,
        user: U,
        quantity: u32,
        category: Option<u16>,
        position: u32,
    },
    HoldConfirmed(BookingView<U>),
    HoldReleased {
        hold: HoldId,
        event: EventId,
        user: U,
        items: Items,
    },
    BookingCanceled {
        booking: BookingId,
        event: EventId,
        user: U,
        items: Items,
    },
    WaitlistJoined {
        waiter: WaiterId,
        event: EventId,
        user: U,
        quantity: u32,
        category: Option<u16>,
        position: u32,
    },
    WaitlistLeft {
        waiter: WaiterId,
        event: EventId,
        user: U,
    },
    DeskCreated {
        desk: DeskId,
        tenant: String,
        spec: Box<DeskSpec>,
    },
    DeskTicketCreated(DeskTicketView),
    DeskTicketConfirmed(DeskTicketView),
    DeskTicketCanceled {
        desk: DeskId,
        ticket: DeskTicketId,
        user: UserName,
    },
    Ticked,
    /// The epoch is now `epoch`, with `node` as the primary.
    Promoted {
        epoch: u64,
        node: String,
    },
    /// A `Configure` record: the log records the configuration it is applied with.
    Configured,
    /// A waiting hold (`hold_requested`) or a waitlist join in the event's arrival
    /// window: entered into the draw, with no place until the draw at opening
    /// (`Effect::DrawMade`). Then it waits like any waitlist entry.
    Entered {
        waiter: WaiterId,
        event: EventId,
        user: U,
        quantity: u32,
        category: Option<u16>,
        hold_requested: bool,
    },
    /// An arrival window was opened on an existing event (`Effect::DrawOpened` says
    /// when and the commitment).
    ArrivalWindowOpened {
        event: EventId,
    },
    /// The organiser's seed matched the commitment; the draw will use it.
    DrawSeedRevealed {
        event: EventId,
        seed: [u8; crate::draw::DRAW_BYTES],
    },
}

/// Why a limit was hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Limit {
    SeatsPerOrder,
    SeatsPerUser,
    WaitlistLength,
    Events,
    Desks,
    /// `waiters_per_user_max`: live waitlist entries of one user for one event.
    WaitersPerUser,
    /// `desk_tickets_per_user_max`: open tickets of one user at one desk.
    DeskTicketsPerUser,
}

/// Why a waitlist entry ended without an offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitEnd {
    /// Waited the maximum time.
    TimedOut,
    /// Free plus held seats can no longer cover the request.
    SoldOut,
    /// The offer would break the per-user limit.
    LimitExceeded,
    EventCanceled,
    /// Enough seats could still come free, but no row has a long enough run of seats
    /// that are not booked: a `together` request can never be served.
    NoRowLongEnough,
}

/// A business rejection: a normal outcome, not an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// The command names something that does not exist for this principal (another
    /// user's hold is "not found" too, so ids leak nothing).
    NotFound {
        what: NotFound,
    },
    /// Seat labels that are not in the event's map.
    UnknownSeats {
        seats: Vec<String>,
    },
    /// Some requested seats are held or booked.
    SeatsUnavailable {
        seats: Vec<u32>,
    },
    /// Not enough is free for the request (or it could never be met). `category` is the
    /// category asked for (`None`: any), `free` what is free of it right now (of every
    /// category for `None`).
    SoldOut {
        category: Option<u16>,
        free: u64,
    },
    LimitExceeded {
        limit: Limit,
        max: u32,
    },
    /// Outside the event's sales window, at the engine's clock.
    SalesClosed {
        reason: SalesClosedReason,
    },
    HoldExpired,
    /// The ticket was already checked in.
    AlreadyUsed,
    /// No slot meets the level's deadline (or starts within the desk's horizon):
    /// `earliest_start_ms` is the start of the earliest free slot, the earliest time a
    /// ticket could be served. Always set; an `Option` so that older records decode.
    SlaUnavailable {
        earliest_start_ms: Option<u64>,
    },
    /// A state conflict: what is asked for is in a state that refuses it.
    Conflict {
        reason: ConflictReason,
    },
    /// The command's fields are invalid (the ingress should have caught it).
    Invalid {
        reason: String,
    },
    /// The log record could not be decoded; every replica rejects it identically.
    Undecodable {
        reason: String,
    },
    /// The idempotency key already answered another request in its scope (another body,
    /// method or path); the first answer is not this request's, and nothing was applied.
    IdempotencyKeyReused,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotFound {
    Event,
    Hold,
    Booking,
    Waiter,
    Ticket,
    Desk,
    DeskTicket,
    Category,
    Level,
}

/// Which state refused a command with `Rejection::Conflict`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConflictReason {
    /// The event is canceled (also: canceling it again).
    EventCanceled,
    HoldReleased,
    HoldAlreadyConfirmed,
    /// The booking is canceled (also: canceling it again, or checking in one of its tickets).
    BookingCanceled,
    /// The desk ticket already has its slot: only a held ticket can be confirmed.
    DeskTicketAllocated,
    /// The event's draw was made: its seed can no longer be revealed.
    DrawMade,
    /// The event's cancellation policy no longer lets its user cancel the booking (past
    /// its cut-off before the start).
    CancellationClosed,
}

/// Why sales are closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SalesClosedReason {
    /// Before `sales_open_at`.
    NotOpenYet,
    /// At or after `sales_close_at`.
    Closed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect<U = UserName> {
    HoldExpired {
        hold: HoldId,
        event: EventId,
        user: U,
        items: Items,
        waiter: Option<WaiterId>,
    },
    WaitlistOffered {
        waiter: WaiterId,
        hold: HoldView<U>,
    },
    WaitlistEnded {
        waiter: WaiterId,
        event: EventId,
        user: U,
        reason: WaitEnd,
    },
    DeskHoldExpired {
        desk: DeskId,
        ticket: DeskTicketId,
        user: UserName,
    },
    /// The event was created with an arrival window (`Command::CreateEventWithDraw`):
    /// entries are taken from `opens_at_ms` and drawn at `draws_at_ms` (its
    /// `sales_open_at`).
    DrawOpened {
        event: EventId,
        opens_at_ms: u64,
        draws_at_ms: u64,
        commitment: [u8; crate::draw::DRAW_BYTES],
    },
    /// The draw at opening: `order` is every entry, first place first
    /// (`draw::draw_order(seed, event, entries)`); they are now the event's waitlist in
    /// that order (offers follow as effects after this one).
    DrawMade {
        event: EventId,
        seed: [u8; crate::draw::DRAW_BYTES],
        source: crate::draw::DrawSeedSource,
        order: Vec<WaiterId>,
    },
    /// The event was created with terms of sale (`Command::CreateEventWithTerms`); an
    /// event without this effect has `EventTerms::without_terms`.
    EventTermsSet {
        event: EventId,
        terms: crate::terms::EventTerms,
    },
}

impl<U> Outcome<U> {
    /// The same outcome with every user mapped by `f` (numbers to names).
    pub fn map_users<V>(self, f: &mut impl FnMut(U) -> V) -> Outcome<V> {
        Outcome {
            offset: self.offset,
            time_ms: self.time_ms,
            replayed: self.replayed,
            result: self.result.map(|reply| reply.map_users(f)),
            effects_before_reply: self.effects_before_reply,
            effects: self
                .effects
                .into_iter()
                .map(|effect| effect.map_users(f))
                .collect(),
            idempotency: self.idempotency,
        }
    }
}

impl<U> HoldView<U> {
    pub fn map_users<V>(self, f: &mut impl FnMut(U) -> V) -> HoldView<V> {
        HoldView {
            hold: self.hold,
            event: self.event,
            user: f(self.user),
            items: self.items,
            created_at_ms: self.created_at_ms,
            expires_at_ms: self.expires_at_ms,
            waiter: self.waiter,
        }
    }
}

impl<U> BookingView<U> {
    pub fn map_users<V>(self, f: &mut impl FnMut(U) -> V) -> BookingView<V> {
        BookingView {
            booking: self.booking,
            hold: self.hold,
            event: self.event,
            user: f(self.user),
            items: self.items,
            total_cents: self.total_cents,
            payment_ref: self.payment_ref,
            booked_at_ms: self.booked_at_ms,
        }
    }
}

impl<U> Reply<U> {
    pub fn map_users<V>(self, f: &mut impl FnMut(U) -> V) -> Reply<V> {
        match self {
            Reply::EventCreated {
                event,
                tenant,
                spec,
            } => Reply::EventCreated {
                event,
                tenant,
                spec,
            },
            Reply::EventUpdated { event, patch } => Reply::EventUpdated { event, patch },
            Reply::EventCanceled {
                event,
                released_holds,
                canceled_bookings,
                ended_waiters,
            } => Reply::EventCanceled {
                event,
                released_holds,
                canceled_bookings,
                ended_waiters,
            },
            Reply::CheckedIn { event, ticket } => Reply::CheckedIn { event, ticket },
            Reply::HoldPlaced(hold) => Reply::HoldPlaced(hold.map_users(f)),
            Reply::Waitlisted {
                waiter,
                event,
                user,
                quantity,
                category,
                position,
            } => Reply::Waitlisted {
                waiter,
                event,
                user: f(user),
                quantity,
                category,
                position,
            },
            Reply::HoldConfirmed(booking) => Reply::HoldConfirmed(booking.map_users(f)),
            Reply::HoldReleased {
                hold,
                event,
                user,
                items,
            } => Reply::HoldReleased {
                hold,
                event,
                user: f(user),
                items,
            },
            Reply::BookingCanceled {
                booking,
                event,
                user,
                items,
            } => Reply::BookingCanceled {
                booking,
                event,
                user: f(user),
                items,
            },
            Reply::WaitlistJoined {
                waiter,
                event,
                user,
                quantity,
                category,
                position,
            } => Reply::WaitlistJoined {
                waiter,
                event,
                user: f(user),
                quantity,
                category,
                position,
            },
            Reply::WaitlistLeft {
                waiter,
                event,
                user,
            } => Reply::WaitlistLeft {
                waiter,
                event,
                user: f(user),
            },
            Reply::DeskCreated { desk, tenant, spec } => Reply::DeskCreated { desk, tenant, spec },
            Reply::DeskTicketCreated(ticket) => Reply::DeskTicketCreated(ticket),
            Reply::DeskTicketConfirmed(ticket) => Reply::DeskTicketConfirmed(ticket),
            Reply::DeskTicketCanceled { desk, ticket, user } => {
                Reply::DeskTicketCanceled { desk, ticket, user }
            }
            Reply::Ticked => Reply::Ticked,
            Reply::Promoted { epoch, node } => Reply::Promoted { epoch, node },
            Reply::Configured => Reply::Configured,
            Reply::Entered {
                waiter,
                event,
                user,
                quantity,
                category,
                hold_requested,
            } => Reply::Entered {
                waiter,
                event,
                user: f(user),
                quantity,
                category,
                hold_requested,
            },
            Reply::ArrivalWindowOpened { event } => Reply::ArrivalWindowOpened { event },
            Reply::DrawSeedRevealed { event, seed } => Reply::DrawSeedRevealed { event, seed },
        }
    }
}

impl<U> Effect<U> {
    pub fn map_users<V>(self, f: &mut impl FnMut(U) -> V) -> Effect<V> {
        match self {
            Effect::HoldExpired {
                hold,
                event,
                user,
                items,
                waiter,
            } => Effect::HoldExpired {
                hold,
                event,
                user: f(user),
                items,
                waiter,
            },
            Effect::WaitlistOffered { waiter, hold } => Effect::WaitlistOffered {
                waiter,
                hold: hold.map_users(f),
            },
            Effect::WaitlistEnded {
                waiter,
                event,
                user,
                reason,
            } => Effect::WaitlistEnded {
                waiter,
                event,
                user: f(user),
                reason,
            },
            Effect::DeskHoldExpired { desk, ticket, user } => {
                Effect::DeskHoldExpired { desk, ticket, user }
            }
            Effect::DrawOpened {
                event,
                opens_at_ms,
                draws_at_ms,
                commitment,
            } => Effect::DrawOpened {
                event,
                opens_at_ms,
                draws_at_ms,
                commitment,
            },
            Effect::DrawMade {
                event,
                seed,
                source,
                order,
            } => Effect::DrawMade {
                event,
                seed,
                source,
                order,
            },
            Effect::EventTermsSet { event, terms } => Effect::EventTermsSet { event, terms },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(user: UserNumber) -> HoldView<UserNumber> {
        HoldView {
            hold: HoldId(1),
            event: EventId(0),
            user,
            items: Items::Pool {
                category: 0,
                quantity: 2,
            },
            created_at_ms: 5,
            expires_at_ms: 10,
            waiter: None,
        }
    }

    /// Naming an outcome names every user in it (reply and effects) and changes nothing
    /// else; users learnt batch by batch are named like users known from the start.
    #[test]
    fn naming_an_outcome_names_each_user_and_keeps_the_rest() {
        let mut names = UserNames::new(vec!["ana".into(), "bo".into()]);
        names.extend(2, ["cy".into()]);
        assert_eq!(names.len(), 3);
        let outcome = Outcome {
            offset: 7,
            time_ms: 9,
            replayed: false,
            result: Ok(Reply::HoldPlaced(hold(UserNumber(2)))),
            effects: vec![
                Effect::HoldExpired {
                    hold: HoldId(0),
                    event: EventId(0),
                    user: UserNumber(0),
                    items: Items::Seats(vec![3, 4].into()),
                    waiter: None,
                },
                Effect::WaitlistOffered {
                    waiter: WaiterId(4),
                    hold: hold(UserNumber(1)),
                },
                Effect::DeskHoldExpired {
                    desk: DeskId(0),
                    ticket: DeskTicketId(1),
                    user: "desk-user".into(),
                },
            ],
            effects_before_reply: 1,
            idempotency: None,
        };
        let named = names.outcome(outcome.clone());
        let users = |outcome: &Outcome| -> Vec<String> {
            let mut users = Vec::new();
            if let Ok(Reply::HoldPlaced(hold)) = &outcome.result {
                users.push(hold.user.to_string());
            }
            for effect in &outcome.effects {
                match effect {
                    Effect::HoldExpired { user, .. } | Effect::DeskHoldExpired { user, .. } => {
                        users.push(user.to_string())
                    }
                    Effect::WaitlistOffered { hold, .. } => users.push(hold.user.to_string()),
                    _ => {}
                }
            }
            users
        };
        assert_eq!(users(&named), ["cy", "ana", "bo", "desk-user"]);
        // Back to numbers, it is the outcome it was.
        let index = |name: UserName| {
            UserNumber(
                ["ana", "bo", "cy"]
                    .iter()
                    .position(|n| **n == *name)
                    .unwrap() as u32,
            )
        };
        assert_eq!(named.map_users(&mut |name| index(name)), outcome);
    }

    /// Users are learnt once each, in number order; a number nobody was given is a bug.
    #[test]
    fn users_are_learnt_in_order_and_an_unknown_number_stops() {
        let mut names = UserNames::default();
        names.extend(0, ["ana".into()]);
        let gap = std::panic::catch_unwind(|| {
            let mut names = names.clone();
            names.extend(2, ["cy".into()]);
        });
        assert!(gap.is_err(), "a gap in the numbers is refused");
        let overlap = std::panic::catch_unwind(|| {
            let mut names = names.clone();
            names.extend(0, ["ana".into()]);
        });
        assert!(overlap.is_err(), "a user learnt twice is refused");
        let unknown = std::panic::catch_unwind(|| names.name(UserNumber(1)));
        assert!(unknown.is_err(), "a number never given has no name");
        assert_eq!(&*names.name(UserNumber(0)), "ana");
    }
}
