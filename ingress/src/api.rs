//! Request and response bodies of API v1, as the contract (`shared/API.md`) spells them.
//! These types are the only serde surface of the ingress: the engine's domain types are
//! never serialized to clients directly. Request bodies refuse unknown fields, so a typo is
//! a 400 naming the field instead of a silently ignored setting.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

// ---- public reads ----------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
pub struct CitiesResponse {
    pub cities: Vec<CityEntry>,
}

#[derive(Serialize, ToSchema)]
pub struct CityEntry {
    pub city: String,
    pub country: String,
    /// Events in this city (canceled ones excluded).
    pub events: u64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// City, case-insensitive.
    pub city: Option<String>,
    /// Country code, case-insensitive.
    pub country: Option<String>,
    /// Venue, case-insensitive.
    pub venue: Option<String>,
    /// Words that must all appear in the name, description or venue.
    pub q: Option<String>,
    /// Events starting at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Events starting at or before this time (RFC 3339).
    pub to: Option<String>,
    /// `date` (default) or `name`.
    pub sort: Option<String>,
    /// From 1.
    pub page: Option<u32>,
    /// From 1 to 100, default 20.
    pub per_page: Option<u32>,
    /// Include canceled events (default false).
    pub include_canceled: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct EventsResponse {
    pub events: Vec<EventSummary>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

#[derive(Serialize, ToSchema)]
pub struct EventSummary {
    pub event_id: String,
    pub name: String,
    pub description: String,
    pub city: String,
    pub country: String,
    pub venue: String,
    pub starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sales_open_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sales_close_at: Option<String>,
    /// `scheduled` or `canceled`.
    pub status: String,
    /// `upcoming`, `open` or `closed` (canceled events are `closed`).
    pub sales: String,
    /// The lowest category price.
    pub price_from_cents: u64,
    /// Seats and places not held or booked.
    pub free: u64,
    pub capacity: u64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VenuesQuery {
    pub city: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct VenuesResponse {
    pub venues: Vec<VenueEntry>,
}

#[derive(Serialize, ToSchema)]
pub struct VenueEntry {
    pub venue: String,
    pub city: String,
    pub country: String,
    pub events: u64,
}

#[derive(Serialize, ToSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    pub summary: EventSummary,
    pub hold_ttl_seconds: u64,
    pub max_seats_per_order: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_seats_per_user: Option<u32>,
    /// `strict` or `skip_ahead`.
    pub waitlist_policy: String,
    pub categories: Vec<CategoryBody>,
    /// Reserved seating: section names (the seat map is at `/seats`).
    pub sections: Vec<String>,
    pub general_admission: Vec<PoolBody>,
    pub availability: Vec<Availability>,
    /// Waitlist entries still waiting.
    pub waiting: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Availability {
    pub category: String,
    pub price_cents: u64,
    pub capacity: u64,
    pub free: u64,
    pub held: u64,
    pub booked: u64,
}

#[derive(Serialize, ToSchema)]
pub struct SeatMap {
    pub event_id: String,
    pub sections: Vec<SeatMapSection>,
}

#[derive(Serialize, ToSchema)]
pub struct SeatMapSection {
    pub name: String,
    pub rows: Vec<SeatMapRow>,
}

#[derive(Serialize, ToSchema)]
pub struct SeatMapRow {
    pub label: String,
    pub seats: Vec<SeatMapSeat>,
}

#[derive(Serialize, ToSchema)]
pub struct SeatMapSeat {
    /// `<section>-<row>-<number>`.
    pub id: String,
    pub category: String,
    /// `free`, `held` or `booked`.
    pub status: String,
}

// ---- admin -------------------------------------------------------------------------------

#[derive(Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct CategoryBody {
    pub name: String,
    pub price_cents: u64,
}

#[derive(Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct PoolBody {
    pub category: String,
    pub capacity: u32,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatingBody {
    pub sections: Vec<SectionBody>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionBody {
    pub name: String,
    pub rows: Vec<RowBody>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RowBody {
    pub label: String,
    /// How many seats; numbered from 1.
    pub seats: u32,
    pub category: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEventBody {
    pub name: String,
    pub description: Option<String>,
    pub city: String,
    pub country: String,
    pub venue: String,
    pub starts_at: String,
    pub ends_at: Option<String>,
    pub sales_open_at: Option<String>,
    pub sales_close_at: Option<String>,
    /// From 1 to 7200, default 300.
    pub hold_ttl_seconds: Option<u64>,
    /// Default 10.
    pub max_seats_per_order: Option<u32>,
    pub max_seats_per_user: Option<u32>,
    /// `strict` (default: nobody passes the head of a waitlist) or `skip_ahead`.
    pub waitlist_policy: Option<String>,
    pub categories: Vec<CategoryBody>,
    pub seating: Option<SeatingBody>,
    pub general_admission: Option<Vec<PoolBody>>,
}

#[derive(Serialize, ToSchema)]
pub struct EventCreated {
    pub event_id: String,
}

/// Every field is optional; `null` clears an optional time or limit. Seat maps never change.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PatchEventBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub starts_at: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub ends_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub sales_open_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub sales_close_at: Option<Option<String>>,
    pub hold_ttl_seconds: Option<u64>,
    pub max_seats_per_order: Option<u32>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub max_seats_per_user: Option<Option<u32>>,
    pub waitlist_policy: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventCanceledResponse {
    pub event_id: String,
    pub status: String,
    pub released_holds: u64,
    pub canceled_bookings: u64,
    pub ended_waitlist_entries: u64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckinBody {
    /// The code printed on the ticket.
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct CheckinResponse {
    pub event_id: String,
    pub ticket_id: String,
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct AttendeesResponse {
    pub event_id: String,
    pub attendees: Vec<Attendee>,
}

#[derive(Serialize, ToSchema)]
pub struct Attendee {
    pub booking_id: String,
    pub user: String,
    /// `confirmed` or `canceled`.
    pub status: String,
    pub seats: Vec<String>,
    pub quantity: u32,
    pub categories: Vec<String>,
    pub total_cents: u64,
    pub booked_at: String,
    pub tickets: Vec<AttendeeTicket>,
}

#[derive(Serialize, ToSchema)]
pub struct AttendeeTicket {
    pub ticket_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seat: Option<String>,
    pub checked_in: bool,
}

#[derive(Serialize, ToSchema)]
pub struct AdminEventsResponse {
    pub events: Vec<EventSummary>,
}

// ---- holds, bookings, waitlist ------------------------------------------------------------

/// Either `seats` (exact seats) or `quantity` (best available).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    pub seats: Option<Vec<String>>,
    pub quantity: Option<u32>,
    pub category: Option<String>,
    /// Adjacent seats in one row (reserved seating only).
    pub together: Option<bool>,
    /// When not enough is free now, join the waitlist (answer 202) instead of failing.
    pub wait: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct HoldResponse {
    pub hold_id: String,
    pub event_id: String,
    /// Seat ids (empty for general admission).
    pub seats: Vec<String>,
    pub quantity: u32,
    /// Categories of the held items, in seat order (one entry for general admission).
    pub categories: Vec<String>,
    pub total_cents: u64,
    pub created_at: String,
    pub expires_at: String,
    /// `held`, `confirmed`, `released` or `expired`.
    pub status: String,
    /// Set when the hold was offered to this waitlist entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waitlist_id: Option<String>,
    /// Set once confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// The payment gateway's reference.
    pub payment_ref: String,
}

#[derive(Serialize, ToSchema)]
pub struct BookingResponse {
    pub booking_id: String,
    pub hold_id: String,
    pub event_id: String,
    pub seats: Vec<String>,
    pub quantity: u32,
    pub total_cents: u64,
    pub payment_ref: String,
    pub booked_at: String,
    /// `confirmed` or `canceled`.
    pub status: String,
    pub tickets: Vec<TicketBody>,
}

#[derive(Serialize, ToSchema)]
pub struct TicketBody {
    pub ticket_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seat: Option<String>,
    /// Shown at the door; checked in by `POST /v1/admin/events/{id}/checkin`.
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct BookingsResponse {
    pub bookings: Vec<BookingResponse>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitlistBody {
    pub quantity: u32,
    pub category: Option<String>,
    pub together: Option<bool>,
}

/// The answer to joining a waitlist (201) or to a hold that had to wait (202).
#[derive(Serialize, ToSchema)]
pub struct WaitlistJoined {
    pub waitlist_id: String,
    pub event_id: String,
    /// Place in the FCFS queue, from 1 (0 once no longer waiting).
    pub position: u32,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<HoldResponse>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Long-poll: wait up to this many seconds (at most 60) for the status to change.
    pub wait_seconds: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct WaitlistStatus {
    pub waitlist_id: String,
    pub event_id: String,
    /// `waiting`, `offered`, `expired` or `left`.
    pub status: String,
    /// Live place in the FCFS queue while waiting, from 1; 0 otherwise.
    pub position: u32,
    pub quantity: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Why an entry expired: `timed_out`, `sold_out`, `limit_exceeded`, `event_canceled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The hold offered to this entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<HoldResponse>,
}

// ---- service desks ------------------------------------------------------------------------

#[derive(Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct LevelBody {
    pub name: String,
    /// A ticket of this level is resolved (its slot ends) within this many minutes.
    pub deadline_minutes: u64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDeskBody {
    pub name: String,
    pub agents: u32,
    /// Default 1.
    pub slot_minutes: Option<u64>,
    /// Default gold 120, silver 240, bronze 480.
    pub levels: Option<Vec<LevelBody>>,
    /// How far ahead a slot may be given; default 8.
    pub horizon_hours: Option<u64>,
    /// How long a validated (`hold: true`) ticket keeps its slot; default 300.
    pub hold_ttl_seconds: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct DeskCreated {
    pub desk_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct DeskLoad {
    pub desk_id: String,
    pub name: String,
    pub agents: u32,
    pub slot_minutes: u64,
    pub horizon_hours: u64,
    pub levels: Vec<LevelBody>,
    /// Tickets holding a slot now (confirmed and validated).
    pub tickets: u64,
    pub held_tickets: u64,
    /// Busy agent-slots over the horizon divided by all agent-slots in it.
    pub utilization: f64,
    /// Upcoming slots with at least one busy agent (at most 100).
    pub busy_slots: Vec<DeskSlot>,
}

#[derive(Serialize, ToSchema)]
pub struct DeskSlot {
    pub slot_start: String,
    pub busy_agents: u32,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeskTicketBody {
    pub level: String,
    /// Only validate: keep the slot for a short while until confirmed.
    pub hold: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct DeskTicketResponse {
    pub ticket_id: String,
    pub desk_id: String,
    pub level: String,
    pub agent: u32,
    pub slot_start: String,
    pub slot_end: String,
    pub resolve_by: String,
    /// `held`, `confirmed`, `canceled` or `expired`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_expires_at: Option<String>,
}

// ---- operations ---------------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
pub struct EngineStatusResponse {
    /// `primary` or `standby`.
    pub role: String,
    pub applied_offset: Option<u64>,
    pub log_end_offset: u64,
    pub last_snapshot: Option<SnapshotBody>,
    pub state_hash: String,
}

#[derive(Serialize, ToSchema)]
pub struct SnapshotBody {
    pub offset: u64,
    pub at: String,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub log_writable: bool,
    pub caught_up: bool,
    /// Input offset of the last outcome the read model applied.
    pub applied_offset: Option<u64>,
    pub outcomes_position: u64,
    pub outcomes_end_offset: u64,
}
