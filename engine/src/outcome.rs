//! Outcomes: exactly one per command, plus the consequences it caused.
//!
//! An outcome carries enough data for a read model and for notifications to follow
//! the engine's state without asking it: a created event carries its whole spec, a
//! hold carries its seats, an expiry names what it freed.

use crate::command::{DeskSpec, EventPatch, EventSpec};
use crate::idempotency::IdempotencyStamp;
use crate::ids::{BookingId, DeskId, DeskTicketId, EventId, HoldId, TicketId, WaiterId};
use serde::{Deserialize, Serialize};

/// A user's name in an outcome: shared with the engine's user table (a reference count,
/// not a copy per outcome). Encodes exactly like a `String`.
pub type UserName = std::sync::Arc<str>;

/// A hold's or booking's seat indices, shared by the hold, the booking it becomes and
/// every outcome that names them (a reference count, not a copy per outcome). Encodes
/// exactly like a `Vec<u32>` (a length, then the indices).
pub type SeatList = std::sync::Arc<[u32]>;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The log offset of the request this answers.
    pub offset: u64,
    /// The engine's clock when it applied the request (log time, never earlier than
    /// any time applied before).
    pub time_ms: u64,
    /// True when this is the stored first answer to a repeated idempotency key.
    pub replayed: bool,
    pub result: Result<Reply, Rejection>,
    /// What happened because time passed or seats were freed, in the order it happened.
    pub effects: Vec<Effect>,
    /// Set on the first answer to a keyed request (never on a replay or a refusal of a
    /// reused key): the ingress's idempotency index records it, so a repeat after the
    /// engine's short window is still answered (see `idempotency`).
    pub idempotency: Option<IdempotencyStamp>,
}

impl Outcome {
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
pub struct HoldView {
    pub hold: HoldId,
    pub event: EventId,
    pub user: UserName,
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
pub struct BookingView {
    pub booking: BookingId,
    pub hold: HoldId,
    pub event: EventId,
    pub user: UserName,
    pub items: Items,
    pub total_cents: u64,
    pub payment_ref: String,
    pub booked_at_ms: u64,
    // No ticket list: a booking's tickets follow from it ([`BookingView::tickets`]).
}

impl BookingView {
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
pub enum Reply {
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
    HoldPlaced(HoldView),
    /// `wait` was set and not enough was free: the request joined the waitlist.
    Waitlisted {
        waiter: WaiterId,
        event: EventId,
        user: UserName,
        quantity: u32,
        category: Option<u16>,
        position: u32,
    },
    HoldConfirmed(BookingView),
    HoldReleased {
        hold: HoldId,
        event: EventId,
        user: UserName,
        items: Items,
    },
    BookingCanceled {
        booking: BookingId,
        event: EventId,
        user: UserName,
        items: Items,
    },
    WaitlistJoined {
        waiter: WaiterId,
        event: EventId,
        user: UserName,
        quantity: u32,
        category: Option<u16>,
        position: u32,
    },
    WaitlistLeft {
        waiter: WaiterId,
        event: EventId,
        user: UserName,
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
        user: UserName,
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
pub enum Effect {
    HoldExpired {
        hold: HoldId,
        event: EventId,
        user: UserName,
        items: Items,
        waiter: Option<WaiterId>,
    },
    WaitlistOffered {
        waiter: WaiterId,
        hold: HoldView,
    },
    WaitlistEnded {
        waiter: WaiterId,
        event: EventId,
        user: UserName,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared seat list encodes exactly like the `Vec<u32>` it replaced, in the log's
    /// binary format and in JSON, and decodes back.
    #[test]
    fn a_seat_list_encodes_like_a_vec() {
        let config = bincode::config::standard();
        for seats in [vec![], vec![7], vec![0, 1, 300, 70_000, u32::MAX]] {
            let shared = Items::Seats(seats.clone().into());
            #[derive(Serialize)]
            enum Before {
                Seats(Vec<u32>),
            }
            let before = Before::Seats(seats);
            let bytes = bincode::serde::encode_to_vec(&shared, config).unwrap();
            assert_eq!(
                bytes,
                bincode::serde::encode_to_vec(&before, config).unwrap()
            );
            assert_eq!(
                serde_json::to_string(&shared).unwrap(),
                serde_json::to_string(&before).unwrap()
            );
            let (decoded, _): (Items, usize) =
                bincode::serde::decode_from_slice(&bytes, config).unwrap();
            assert_eq!(decoded, shared);
        }
    }
}
