//! Commands: what the engine is asked to do. One command is one log record.
//!
//! Commands carry names as the outside world spells them (seat labels, category
//! names); the engine resolves them, so a command is meaningful without any other
//! state and a replica needs nothing but the log.

use crate::ids::{BookingId, DeskId, DeskTicketId, EventId, HoldId, WaiterId};
use serde::{Deserialize, Serialize};

/// One log record's content: a command plus who sent it and its idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// A repeat of `(principal, key)` within the idempotency window returns the first
    /// outcome and changes nothing.
    pub idempotency_key: Option<String>,
    pub command: Command,
}

impl Request {
    pub fn new(command: Command) -> Self {
        Request {
            idempotency_key: None,
            command,
        }
    }

    pub fn with_key(command: Command, key: impl Into<String>) -> Self {
        Request {
            idempotency_key: Some(key.into()),
            command,
        }
    }
}

/// Who may be granted what: users own holds, bookings, waitlist entries and desk
/// tickets; tenant admins own events and desks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Principal {
    User(String),
    Admin(String),
    /// The runtime itself (ticks).
    System,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    CreateEvent {
        tenant: String,
        spec: EventSpec,
    },
    UpdateEvent {
        tenant: String,
        event: EventId,
        patch: EventPatch,
    },
    CancelEvent {
        tenant: String,
        event: EventId,
    },
    CheckIn {
        tenant: String,
        event: EventId,
        code: String,
    },
    PlaceHold {
        user: String,
        event: EventId,
        selection: Selection,
        wait: bool,
    },
    ConfirmHold {
        user: String,
        hold: HoldId,
        payment_ref: String,
    },
    ReleaseHold {
        user: String,
        hold: HoldId,
    },
    CancelBooking {
        user: String,
        booking: BookingId,
    },
    JoinWaitlist {
        user: String,
        event: EventId,
        quantity: u32,
        category: Option<String>,
        together: bool,
    },
    LeaveWaitlist {
        user: String,
        waiter: WaiterId,
    },
    CreateDesk {
        tenant: String,
        spec: DeskSpec,
    },
    CreateDeskTicket {
        user: String,
        desk: DeskId,
        level: String,
        hold_only: bool,
    },
    ConfirmDeskTicket {
        user: String,
        desk: DeskId,
        ticket: DeskTicketId,
    },
    CancelDeskTicket {
        user: String,
        desk: DeskId,
        ticket: DeskTicketId,
    },
    /// Time passes: a record with no other meaning than its timestamp.
    Tick,
    /// An operator promoted `node` to primary. Written into the requests log itself, so
    /// every replica sees the new epoch at the same position: the old primary steps down
    /// when it applies this record, and nothing it computes after it is ever published.
    Promote {
        node: String,
    },
}

impl Command {
    /// The principal whose idempotency keys this command lives under.
    pub fn principal(&self) -> Principal {
        match self {
            Command::CreateEvent { tenant, .. }
            | Command::UpdateEvent { tenant, .. }
            | Command::CancelEvent { tenant, .. }
            | Command::CheckIn { tenant, .. }
            | Command::CreateDesk { tenant, .. } => Principal::Admin(tenant.clone()),
            Command::PlaceHold { user, .. }
            | Command::ConfirmHold { user, .. }
            | Command::ReleaseHold { user, .. }
            | Command::CancelBooking { user, .. }
            | Command::JoinWaitlist { user, .. }
            | Command::LeaveWaitlist { user, .. }
            | Command::CreateDeskTicket { user, .. }
            | Command::ConfirmDeskTicket { user, .. }
            | Command::CancelDeskTicket { user, .. } => Principal::User(user.clone()),
            Command::Tick | Command::Promote { .. } => Principal::System,
        }
    }
}

/// What a hold asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selection {
    /// Exact seats by label (`<section>-<row>-<number>`).
    Seats(Vec<String>),
    /// Best available: `quantity` seats of `category` (any category when `None`); on a
    /// general-admission category, a quantity from its pool.
    Best {
        quantity: u32,
        category: Option<String>,
        together: bool,
    },
}

/// When the head of a waitlist queue cannot be served yet but a later, smaller request
/// could be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitlistPolicy {
    /// Nobody passes a waiter within what it could use: a later request takes only from
    /// categories no earlier waiter could ever be served from.
    #[default]
    Strict,
    /// Later requests that fit are served before a head that does not.
    SkipAhead,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSpec {
    pub name: String,
    pub description: String,
    pub city: String,
    pub country: String,
    pub venue: String,
    pub starts_at_ms: u64,
    pub ends_at_ms: Option<u64>,
    pub sales_open_at_ms: Option<u64>,
    pub sales_close_at_ms: Option<u64>,
    pub hold_ttl_ms: u64,
    pub seats_per_order_max: u32,
    pub seats_per_user_max: Option<u32>,
    pub waitlist_policy: WaitlistPolicy,
    pub categories: Vec<CategorySpec>,
    pub sections: Vec<SectionSpec>,
    pub general_admission: Vec<PoolSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategorySpec {
    pub name: String,
    pub price_cents: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionSpec {
    pub name: String,
    pub rows: Vec<RowSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowSpec {
    pub label: String,
    pub seats: u32,
    pub category: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpec {
    pub category: String,
    pub capacity: u32,
}

/// An event update; `None` leaves a field as it is. Seat maps never change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub starts_at_ms: Option<u64>,
    /// `Some(None)` clears the field.
    pub ends_at_ms: Option<Option<u64>>,
    pub sales_open_at_ms: Option<Option<u64>>,
    pub sales_close_at_ms: Option<Option<u64>>,
    pub hold_ttl_ms: Option<u64>,
    pub seats_per_order_max: Option<u32>,
    pub seats_per_user_max: Option<Option<u32>>,
    pub waitlist_policy: Option<WaitlistPolicy>,
}

/// A service desk: `agents` parallel lanes of fixed-length slots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskSpec {
    pub name: String,
    pub agents: u32,
    pub slot_ms: u64,
    /// How far ahead of now a slot may be given.
    pub horizon_ms: u64,
    pub levels: Vec<LevelSpec>,
    /// How long a validated (held) desk ticket keeps its slot before it returns.
    pub hold_ttl_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelSpec {
    pub name: String,
    /// A ticket of this level must be resolved (its slot must end) by now + deadline.
    pub deadline_ms: u64,
}
