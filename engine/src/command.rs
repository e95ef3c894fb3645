//! Commands: what the engine is asked to do. One command is one log record.
//!
//! Commands carry names as the outside world spells them (seat labels, category
//! names) or ids that earlier records of the same log fixed (seat indices of the event's
//! layout, category indices of its spec: [`CategoryRef`], a user's dense id: [`UserRef`]);
//! the engine resolves them, so a command is
//! meaningful with nothing but the log before it, and a replica needs nothing else.

use crate::ids::{BookingId, DeskId, DeskTicketId, EventId, HoldId, WaiterId};
use serde::{Deserialize, Serialize};

/// One log record's content: a command plus who sent it and its idempotency key.
pub type Request = RequestOf<UserRef>;

/// A request whose user is named by `U`: [`Request`] (a [`UserRef`], requests-log
/// version 2) or [`NamedRequest`] (a name, version 1, and the form idempotency stamps
/// digest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestOf<U> {
    /// A repeat of `(principal, key)` within the idempotency window returns the first
    /// outcome and changes nothing.
    pub idempotency_key: Option<String>,
    pub command: CommandOf<U>,
}

/// A request as the requests log's version 1 wrote it: every user by name.
pub type NamedRequest = RequestOf<String>;

impl NamedRequest {
    /// The same request in today's form (every user by name).
    pub fn into_request(self) -> Request {
        RequestOf {
            idempotency_key: self.idempotency_key,
            command: self.command.map_user(UserRef::Name),
        }
    }
}

/// Who a user command acts for: the user's name (the pseudonym the ingress derived), or
/// the dense id the engine gave that name when it first gave the user state (a hold, a
/// booking or a waitlist entry). Ids are assigned in log order, so every replica agrees
/// on them; a request names its user by id only once its writer has learnt the id, and
/// an id the engine has not assigned is refused (`Rejection::Invalid`). Both forms of
/// one user are the same principal and the same request for idempotency (stamps digest
/// the named form, [`Command::named`]).
///
/// Perf: an id is resolved with one bounds check, where a name is hashed, probed and
/// compared (two cache misses on a crowd of users: the index entry and the name).
///
/// In the log (bincode) it is an enum (variant 0 a name, 1 an id); in JSON (`boxoffice log
/// export`, recordings) a name is a plain string, as the user field was before ids, and
/// an id a number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UserRef {
    Name(String),
    Id(u32),
}

impl Serialize for UserRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self, serializer.is_human_readable()) {
            (UserRef::Name(name), true) => serializer.serialize_str(name),
            (UserRef::Id(id), true) => serializer.serialize_u32(*id),
            (UserRef::Name(name), false) => {
                serializer.serialize_newtype_variant("UserRef", 0, "Name", name)
            }
            (UserRef::Id(id), false) => {
                serializer.serialize_newtype_variant("UserRef", 1, "Id", id)
            }
        }
    }
}

impl<'de> Deserialize<'de> for UserRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The log's form: the enum a derive would read.
        #[derive(Deserialize)]
        #[serde(rename = "UserRef")]
        enum Tagged {
            Name(String),
            Id(u32),
        }
        /// JSON's form: a string or a number.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Plain {
            Name(String),
            Id(u32),
        }
        Ok(if deserializer.is_human_readable() {
            match Plain::deserialize(deserializer)? {
                Plain::Name(name) => UserRef::Name(name),
                Plain::Id(id) => UserRef::Id(id),
            }
        } else {
            match Tagged::deserialize(deserializer)? {
                Tagged::Name(name) => UserRef::Name(name),
                Tagged::Id(id) => UserRef::Id(id),
            }
        })
    }
}

impl UserRef {
    /// The name, when the user is named by name.
    pub fn name(&self) -> Option<&str> {
        match self {
            UserRef::Name(name) => Some(name),
            UserRef::Id(_) => None,
        }
    }
}

impl From<String> for UserRef {
    fn from(name: String) -> Self {
        UserRef::Name(name)
    }
}

impl From<&str> for UserRef {
    fn from(name: &str) -> Self {
        UserRef::Name(name.to_string())
    }
}

impl From<&String> for UserRef {
    fn from(name: &String) -> Self {
        UserRef::Name(name.clone())
    }
}

impl std::fmt::Display for UserRef {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserRef::Name(name) => formatter.write_str(name),
            UserRef::Id(id) => write!(formatter, "#{id}"),
        }
    }
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

/// A command; its users are [`UserRef`]s.
pub type Command = CommandOf<UserRef>;

/// A command as the requests log's version 1 wrote it, every user by name: what
/// idempotency stamps digest ([`Command::named`]).
pub type NamedCommand = CommandOf<String>;

/// A command whose users are named by `U` (see [`Command`] and [`NamedCommand`]): one
/// definition for both wire versions, so they cannot drift apart.
///
/// Perf: the specs, draws, terms and seeds of the rare organiser commands are boxed (a
/// `Box<T>` encodes exactly as `T`, so the wire is unchanged), so a request is 88 bytes
/// instead of 408: the holds and confirms that are nearly every record span one or two
/// cache lines, not six or seven (the standard mix reads its log of 200,000 decoded
/// records once: 82 MB of them before, 29 MB after; BENCHMARKS.md, "Session 29", and the
/// session's gain re-measured without the pairs' order bias in "Session 30").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandOf<U> {
    CreateEvent {
        tenant: String,
        spec: Box<EventSpec>,
    },
    UpdateEvent {
        tenant: String,
        event: EventId,
        patch: Box<EventPatch>,
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
        user: U,
        event: EventId,
        selection: Selection,
        wait: bool,
    },
    ConfirmHold {
        user: U,
        hold: HoldId,
        payment_ref: String,
    },
    ReleaseHold {
        user: U,
        hold: HoldId,
    },
    CancelBooking {
        user: U,
        booking: BookingId,
    },
    JoinWaitlist {
        user: U,
        event: EventId,
        quantity: u32,
        category: Option<String>,
        together: bool,
    },
    LeaveWaitlist {
        user: U,
        waiter: WaiterId,
    },
    CreateDesk {
        tenant: String,
        spec: Box<DeskSpec>,
    },
    CreateDeskTicket {
        user: U,
        desk: DeskId,
        level: String,
        hold_only: bool,
    },
    ConfirmDeskTicket {
        user: U,
        desk: DeskId,
        ticket: DeskTicketId,
    },
    CancelDeskTicket {
        user: U,
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
    /// The configuration (`EngineConfig::stamp`: every key that decides outcomes, secrets
    /// as digests) that the replica which took the primary role applies the log with.
    /// Written by that replica once it has caught up, so the log itself records what it
    /// was applied with: a replica whose configuration differs stops at this record,
    /// naming the key (`Engine::logged_config_mismatch`), even when it replays from
    /// offset 0 with no snapshot. Applying it changes nothing.
    Configure {
        stamp: crate::config::ConfigStamp,
    },
    /// Check-in by ticket id: the ingress verified the code's MAC (the engine no longer
    /// derives or checks codes on its thread). `CheckIn` (by code) stays decodable and is
    /// decided as before, so old logs replay to the same outcomes.
    CheckInTicket {
        tenant: String,
        event: EventId,
        ticket: crate::ids::TicketId,
    },
    /// `CreateEvent` with an arrival window and the commitment to its draw's seed
    /// (`crate::draw`). A variant of its own so `CreateEvent` records decode as before.
    CreateEventWithDraw {
        tenant: String,
        spec: Box<EventSpec>,
        draw: Box<crate::draw::DrawSpec>,
    },
    /// Opens an arrival window on an existing event (one without one, whose
    /// `sales_open_at` is in the future): as `CreateEventWithDraw` does at creation.
    /// Waiters already queued (from an earlier sales period) stay ahead of its entries.
    OpenArrivalWindow {
        tenant: String,
        event: EventId,
        draw: Box<crate::draw::DrawSpec>,
    },
    /// The organiser reveals the draw's seed (before opening); it must match the
    /// commitment.
    RevealDrawSeed {
        tenant: String,
        event: EventId,
        seed: Box<[u8; crate::draw::DRAW_BYTES]>,
    },
    /// An event with its terms of sale (`crate::terms`: currency, cancellation policy) and,
    /// optionally, an arrival window as `CreateEventWithDraw` has. A variant of its own so
    /// `CreateEvent` and `CreateEventWithDraw` records decode as before; events they
    /// create have `EventTerms::without_terms`.
    CreateEventWithTerms {
        tenant: String,
        spec: Box<EventSpec>,
        draw: Option<Box<crate::draw::DrawSpec>>,
        terms: Box<crate::terms::EventTerms>,
    },
    /// `JoinWaitlist` with the category by index (see [`Selection::BestIndexed`]): what
    /// the ingress appends. A variant of its own so `JoinWaitlist` records decode as
    /// before and are decided the same way.
    JoinWaitlistIndexed {
        user: U,
        event: EventId,
        quantity: u32,
        category: Option<u16>,
        together: bool,
    },
}

impl<U> CommandOf<U> {
    /// A waitlist join, by category name or index: its user, event, quantity, category
    /// and whether together; `None` for any other command.
    pub fn waitlist_join(&self) -> Option<(&U, EventId, u32, Option<CategoryRef<'_>>, bool)> {
        match self {
            CommandOf::JoinWaitlist {
                user,
                event,
                quantity,
                category,
                together,
            } => Some((
                user,
                *event,
                *quantity,
                category.as_deref().map(CategoryRef::Name),
                *together,
            )),
            CommandOf::JoinWaitlistIndexed {
                user,
                event,
                quantity,
                category,
                together,
            } => Some((
                user,
                *event,
                *quantity,
                category.map(CategoryRef::Index),
                *together,
            )),
            _ => None,
        }
    }

    /// The user this command acts for, if it is a user's command.
    pub fn user(&self) -> Option<&U> {
        match self {
            CommandOf::PlaceHold { user, .. }
            | CommandOf::ConfirmHold { user, .. }
            | CommandOf::ReleaseHold { user, .. }
            | CommandOf::CancelBooking { user, .. }
            | CommandOf::JoinWaitlist { user, .. }
            | CommandOf::JoinWaitlistIndexed { user, .. }
            | CommandOf::LeaveWaitlist { user, .. }
            | CommandOf::CreateDeskTicket { user, .. }
            | CommandOf::ConfirmDeskTicket { user, .. }
            | CommandOf::CancelDeskTicket { user, .. } => Some(user),
            _ => None,
        }
    }

    /// The same command with its user (if any) named by `map(user)`.
    pub fn map_user<V>(self, map: impl FnOnce(U) -> V) -> CommandOf<V> {
        use CommandOf as C;
        match self {
            C::PlaceHold {
                user,
                event,
                selection,
                wait,
            } => C::PlaceHold {
                user: map(user),
                event,
                selection,
                wait,
            },
            C::ConfirmHold {
                user,
                hold,
                payment_ref,
            } => C::ConfirmHold {
                user: map(user),
                hold,
                payment_ref,
            },
            C::ReleaseHold { user, hold } => C::ReleaseHold {
                user: map(user),
                hold,
            },
            C::CancelBooking { user, booking } => C::CancelBooking {
                user: map(user),
                booking,
            },
            C::JoinWaitlist {
                user,
                event,
                quantity,
                category,
                together,
            } => C::JoinWaitlist {
                user: map(user),
                event,
                quantity,
                category,
                together,
            },
            C::JoinWaitlistIndexed {
                user,
                event,
                quantity,
                category,
                together,
            } => C::JoinWaitlistIndexed {
                user: map(user),
                event,
                quantity,
                category,
                together,
            },
            C::LeaveWaitlist { user, waiter } => C::LeaveWaitlist {
                user: map(user),
                waiter,
            },
            C::CreateDeskTicket {
                user,
                desk,
                level,
                hold_only,
            } => C::CreateDeskTicket {
                user: map(user),
                desk,
                level,
                hold_only,
            },
            C::ConfirmDeskTicket { user, desk, ticket } => C::ConfirmDeskTicket {
                user: map(user),
                desk,
                ticket,
            },
            C::CancelDeskTicket { user, desk, ticket } => C::CancelDeskTicket {
                user: map(user),
                desk,
                ticket,
            },
            C::CreateEvent { tenant, spec } => C::CreateEvent { tenant, spec },
            C::UpdateEvent {
                tenant,
                event,
                patch,
            } => C::UpdateEvent {
                tenant,
                event,
                patch,
            },
            C::CancelEvent { tenant, event } => C::CancelEvent { tenant, event },
            C::CheckIn {
                tenant,
                event,
                code,
            } => C::CheckIn {
                tenant,
                event,
                code,
            },
            C::CreateDesk { tenant, spec } => C::CreateDesk { tenant, spec },
            C::Tick => C::Tick,
            C::Promote { node } => C::Promote { node },
            C::Configure { stamp } => C::Configure { stamp },
            C::CheckInTicket {
                tenant,
                event,
                ticket,
            } => C::CheckInTicket {
                tenant,
                event,
                ticket,
            },
            C::CreateEventWithDraw { tenant, spec, draw } => {
                C::CreateEventWithDraw { tenant, spec, draw }
            }
            C::OpenArrivalWindow {
                tenant,
                event,
                draw,
            } => C::OpenArrivalWindow {
                tenant,
                event,
                draw,
            },
            C::RevealDrawSeed {
                tenant,
                event,
                seed,
            } => C::RevealDrawSeed {
                tenant,
                event,
                seed,
            },
            C::CreateEventWithTerms {
                tenant,
                spec,
                draw,
                terms,
            } => C::CreateEventWithTerms {
                tenant,
                spec,
                draw,
                terms,
            },
        }
    }
}

impl Command {
    /// This command with its user by name: `name_of` names a user given by id (the
    /// engine's table; `None` if it has no such user). The form idempotency stamps and
    /// principals are of, so a repeat naming its user by id is the request that first
    /// named it by name. A copy: only keyed requests pay it.
    pub fn named(&self, name_of: impl FnOnce(u32) -> Option<String>) -> Option<NamedCommand> {
        let name = match self.user() {
            Some(UserRef::Id(id)) => Some(name_of(*id)?),
            _ => None,
        };
        Some(self.clone().map_user(|user| match user {
            UserRef::Name(named) => named,
            UserRef::Id(_) => name.expect("named above"),
        }))
    }
}

impl NamedCommand {
    /// The principal whose idempotency keys this command lives under.
    pub fn principal(&self) -> Principal {
        match self {
            CommandOf::CreateEvent { tenant, .. }
            | CommandOf::UpdateEvent { tenant, .. }
            | CommandOf::CancelEvent { tenant, .. }
            | CommandOf::CheckIn { tenant, .. }
            | CommandOf::CheckInTicket { tenant, .. }
            | CommandOf::CreateEventWithDraw { tenant, .. }
            | CommandOf::CreateEventWithTerms { tenant, .. }
            | CommandOf::RevealDrawSeed { tenant, .. }
            | CommandOf::OpenArrivalWindow { tenant, .. }
            | CommandOf::CreateDesk { tenant, .. } => Principal::Admin(tenant.clone()),
            CommandOf::PlaceHold { user, .. }
            | CommandOf::ConfirmHold { user, .. }
            | CommandOf::ReleaseHold { user, .. }
            | CommandOf::CancelBooking { user, .. }
            | CommandOf::JoinWaitlist { user, .. }
            | CommandOf::JoinWaitlistIndexed { user, .. }
            | CommandOf::LeaveWaitlist { user, .. }
            | CommandOf::CreateDeskTicket { user, .. }
            | CommandOf::ConfirmDeskTicket { user, .. }
            | CommandOf::CancelDeskTicket { user, .. } => Principal::User(user.clone()),
            CommandOf::Tick | CommandOf::Promote { .. } | CommandOf::Configure { .. } => {
                Principal::System
            }
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
    /// Exact seats by index in the event's layout: what the ingress appends, having
    /// resolved the labels against its copy of the layout (layouts never change), so the
    /// engine thread parses no label. An index past the layout is an unknown seat,
    /// named `#<index>`. `Seats` (by label) stays decodable and is decided the same way.
    SeatIndices(Vec<u32>),
    /// Best available with the category by its index in the event's categories (as the
    /// spec lists them): what the ingress appends, having resolved the name against its
    /// copy of the event (category names never change), so the record carries no name and
    /// the engine thread compares none. An index past the event's categories is an
    /// unknown category. `Best` (by name) stays decodable and is decided the same way.
    BestIndexed {
        quantity: u32,
        category: Option<u16>,
        together: bool,
    },
}

impl Selection {
    /// Best available (by category name or index): its quantity, category and whether
    /// together; `None` for exact seats.
    pub fn best(&self) -> Option<(u32, Option<CategoryRef<'_>>, bool)> {
        match self {
            Selection::Best {
                quantity,
                category,
                together,
            } => Some((
                *quantity,
                category.as_deref().map(CategoryRef::Name),
                *together,
            )),
            Selection::BestIndexed {
                quantity,
                category,
                together,
            } => Some((*quantity, category.map(CategoryRef::Index), *together)),
            Selection::Seats(_) | Selection::SeatIndices(_) => None,
        }
    }
}

/// A category as a command names it: by name, as clients spell it, or by index in the
/// event's categories, as the ingress appends it. The engine resolves either at the same
/// step of a command, to the same index or the same `NotFound::Category`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CategoryRef<'a> {
    Name(&'a str),
    Index(u16),
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
    /// At most [`PRICE_CENTS_MAX`].
    pub price_cents: u64,
}

/// The highest `price_cents` a category may have (the contract's maximum: ten million in
/// major units). The ingress refuses more with a 400 naming the field; the engine refuses
/// it as `Invalid`. Both compare with this one constant.
pub const PRICE_CENTS_MAX: u64 = 1_000_000_000;

// An order covers at most `u32::MAX` places (quantities, seat counts and
// `seats_per_order_cap` are u32), so its total at the maximum price fits a u64: the checked
// arithmetic of `order_total_cents` can never fail on an order the engine accepted.
const _: () = assert!(
    PRICE_CENTS_MAX as u128 * u32::MAX as u128 <= u64::MAX as u128,
    "an order of u32::MAX places at PRICE_CENTS_MAX fits a u64"
);

/// The exact total of an order given as `(price_cents, places)` lines: the engine's
/// booking totals and the read side's hold totals both come from here.
#[inline]
pub fn order_total_cents(lines: impl IntoIterator<Item = (u64, u32)>) -> u64 {
    let (mut places, mut total_cents) = (0u32, 0u64);
    for (price_cents, count) in lines {
        assert!(
            price_cents <= PRICE_CENTS_MAX,
            "prices are validated against PRICE_CENTS_MAX"
        );
        places = places
            .checked_add(count)
            .expect("an order covers at most u32::MAX places");
        total_cents = price_cents
            .checked_mul(u64::from(count))
            .and_then(|line_cents| total_cents.checked_add(line_cents))
            .expect("u32::MAX places at PRICE_CENTS_MAX fit a u64 (asserted at compile time)");
    }
    total_cents
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

impl EventPatch {
    /// Sets on `spec` every field this patch sets: the one definition of what a patch
    /// does, for the engine's check (`spec_rules::SpecRules::check_patch`) and the
    /// ingress's read model alike. It checks nothing.
    pub fn apply_to(&self, spec: &mut EventSpec) {
        if let Some(name) = &self.name {
            spec.name = name.clone();
        }
        if let Some(description) = &self.description {
            spec.description = description.clone();
        }
        spec.starts_at_ms = self.starts_at_ms.unwrap_or(spec.starts_at_ms);
        spec.ends_at_ms = self.ends_at_ms.unwrap_or(spec.ends_at_ms);
        spec.sales_open_at_ms = self.sales_open_at_ms.unwrap_or(spec.sales_open_at_ms);
        spec.sales_close_at_ms = self.sales_close_at_ms.unwrap_or(spec.sales_close_at_ms);
        spec.hold_ttl_ms = self.hold_ttl_ms.unwrap_or(spec.hold_ttl_ms);
        spec.seats_per_order_max = self.seats_per_order_max.unwrap_or(spec.seats_per_order_max);
        spec.seats_per_user_max = self.seats_per_user_max.unwrap_or(spec.seats_per_user_max);
        spec.waitlist_policy = self.waitlist_policy.unwrap_or(spec.waitlist_policy);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A request stays small: the large, rare variants keep their payloads boxed (a
    /// request of 408 bytes spanned six or seven cache lines; BENCHMARKS.md, "Session 29").
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_request_fits_in_two_cache_lines() {
        assert!(
            std::mem::size_of::<Request>() <= 2 * 64,
            "{}",
            std::mem::size_of::<Request>()
        );
    }

    /// JSON keeps a user by name as the plain string it was before ids; the log's bincode
    /// is the enum (golden bytes in `wire`).
    #[test]
    fn a_user_ref_is_a_string_or_a_number_in_json() {
        let by_name = UserRef::Name("u1".into());
        let by_id = UserRef::Id(7);
        assert_eq!(serde_json::to_string(&by_name).unwrap(), r#""u1""#);
        assert_eq!(serde_json::to_string(&by_id).unwrap(), "7");
        assert_eq!(serde_json::from_str::<UserRef>(r#""u1""#).unwrap(), by_name);
        assert_eq!(serde_json::from_str::<UserRef>("7").unwrap(), by_id);
        assert!(serde_json::from_str::<UserRef>("-1").is_err());
        assert!(serde_json::from_str::<UserRef>(r#"{"Name":"u1"}"#).is_err());
        let config = bincode::config::standard();
        for user in [by_name, by_id] {
            let bytes = bincode::serde::encode_to_vec(&user, config).unwrap();
            let (back, _): (UserRef, usize) =
                bincode::serde::decode_from_slice(&bytes, config).unwrap();
            assert_eq!(back, user);
        }
    }
}
