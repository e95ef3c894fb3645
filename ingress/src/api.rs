//! Request and response bodies of API v1, as the contract (`shared/API.md`) spells them.
//! These types are the only serde surface of the ingress: the engine's domain types are
//! never serialized to clients directly. Request bodies refuse unknown fields, so a typo is
//! a 400 naming the field instead of a silently ignored setting.

pub(crate) use crate::times::Rfc3339Time;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

// ---- public reads ----------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
pub(crate) struct CitiesResponse {
    pub(crate) cities: Vec<CityEntry>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CityEntry {
    pub(crate) city: String,
    pub(crate) country: String,
    /// Events in this city (canceled ones excluded).
    pub(crate) events: u64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// City, case-insensitive.
    pub(crate) city: Option<String>,
    /// Country code, case-insensitive.
    pub(crate) country: Option<String>,
    /// Venue, case-insensitive.
    pub(crate) venue: Option<String>,
    /// Words that must all match the name, title, venue, city or description: each as a
    /// prefix or within one or two typos (by its length); `did_you_mean` suggests the
    /// closest indexed spelling of a word the index does not hold.
    pub(crate) q: Option<String>,
    /// Events starting at or after this time (RFC 3339).
    pub(crate) from: Option<String>,
    /// Events starting at or before this time (RFC 3339).
    pub(crate) to: Option<String>,
    /// `date` (default), `name`, `distance` (needs `lat`,`lng`; events without a place
    /// last), or several, comma-separated (`distance,date`).
    pub(crate) sort: Option<String>,
    /// From 1.
    pub(crate) page: Option<u32>,
    /// From 1 to 100, default 20.
    pub(crate) per_page: Option<u32>,
    /// Include canceled events (default false).
    pub(crate) include_canceled: Option<bool>,
    /// Latitude in degrees, from -90 to 90 (with `lng`): events at venues near it.
    pub(crate) lat: Option<String>,
    /// Longitude in degrees, from -180 to 180 (with `lat`).
    pub(crate) lng: Option<String>,
    /// Kilometres around `lat`,`lng` (above 0, at most 1000); none: any distance.
    pub(crate) radius_km: Option<String>,
    /// The venue's postal code (spaces and case ignored).
    pub(crate) postal_code: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EventsResponse {
    pub(crate) events: Vec<EventSummary>,
    pub(crate) page: u32,
    pub(crate) per_page: u32,
    pub(crate) total: u64,
    /// `q` with a word the index does not hold replaced by the closest one it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) did_you_mean: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EventSummary {
    pub(crate) event_id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) city: String,
    pub(crate) country: String,
    pub(crate) venue: String,
    pub(crate) starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ends_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sales_open_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sales_close_at: Option<String>,
    /// `scheduled` or `canceled`.
    pub(crate) status: String,
    /// `upcoming`, `open` or `closed` (canceled events are `closed`).
    pub(crate) sales: String,
    /// The lowest category price.
    pub(crate) price_from_cents: u64,
    /// Seats and places not held or booked.
    pub(crate) free: u64,
    pub(crate) capacity: u64,
    /// The venue (`POST /v1/admin/venues`) the event is listed at, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) venue_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) title_id: Option<String>,
    /// From the search's `lat`,`lng`, when the event's venue has coordinates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) distance_km: Option<f64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct VenuesQuery {
    pub(crate) city: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct VenuesResponse {
    pub(crate) venues: Vec<VenueEntry>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct VenueEntry {
    pub(crate) venue: String,
    pub(crate) city: String,
    pub(crate) country: String,
    pub(crate) events: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EventDetail {
    #[serde(flatten)]
    pub(crate) summary: EventSummary,
    pub(crate) hold_ttl_seconds: u64,
    pub(crate) max_seats_per_order: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_seats_per_user: Option<u32>,
    /// `strict` or `skip_ahead`.
    pub(crate) waitlist_policy: String,
    pub(crate) categories: Vec<CategoryBody>,
    /// Reserved seating: section names (the seat map is at `/seats`).
    pub(crate) sections: Vec<String>,
    pub(crate) general_admission: Vec<PoolBody>,
    pub(crate) availability: Vec<Availability>,
    /// Waitlist entries still waiting.
    pub(crate) waiting: u64,
    /// ISO 4217: every price of the event, its payments and refunds (the deployment's
    /// `payments.currency` for an event created without one).
    pub(crate) currency: String,
    pub(crate) cancellation: CancellationBody,
}

/// When a user may cancel a booking and what they get back. An organiser's event
/// cancellation always refunds every booking in full.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancellationBody {
    /// A user may cancel until this many hours before the event's start (0 to 8760);
    /// `null` or absent: at any time (as events created without a policy). At the cut-off
    /// and after, a cancel is 409 with `details.reason` `cancellation_closed`.
    pub(crate) until_hours_before_start: Option<u32>,
    /// `full` (the booking's payment) or `none` (the seats go back on sale, the money
    /// stays).
    pub(crate) refund: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Availability {
    pub(crate) category: String,
    pub(crate) price_cents: u64,
    pub(crate) capacity: u64,
    pub(crate) free: u64,
    pub(crate) held: u64,
    pub(crate) booked: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SeatMap {
    pub(crate) event_id: String,
    pub(crate) sections: Vec<SeatMapSection>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SeatMapSection {
    pub(crate) name: String,
    pub(crate) rows: Vec<SeatMapRow>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SeatMapRow {
    pub(crate) label: String,
    pub(crate) seats: Vec<SeatMapSeat>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SeatMapSeat {
    /// `<section>-<row>-<number>`.
    pub(crate) id: String,
    pub(crate) category: String,
    /// `free`, `held` or `booked`.
    pub(crate) status: String,
}

/// One frame of a seat-map stream (`event: availability`): the event with its availability
/// and, for reserved seating, the whole seat map, as of `log_offset`.
#[derive(Serialize, ToSchema)]
pub(crate) struct LiveFrame {
    pub(crate) event_id: String,
    /// Input offset of the last outcome this frame reflects (`null` before the first).
    pub(crate) log_offset: Option<u64>,
    pub(crate) event: EventDetail,
    /// Absent for general-admission-only events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seats: Option<SeatMap>,
}

// ---- demo --------------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DemoTokenBody {
    /// 1 to 64 letters, digits, `.`, `_` or `-`.
    pub(crate) user: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DemoTokenResponse {
    pub(crate) user: String,
    /// A user token (HS256 JWT) for `Authorization: Bearer`.
    pub(crate) token: String,
    pub(crate) expires_in_seconds: u64,
}

// ---- admin -------------------------------------------------------------------------------

#[derive(Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct CategoryBody {
    pub(crate) name: String,
    /// From 0 to `engine::PRICE_CENTS_MAX` (a test checks the two agree).
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub(crate) price_cents: u64,
}

#[derive(Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolBody {
    pub(crate) category: String,
    pub(crate) capacity: u32,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeatingBody {
    pub(crate) sections: Vec<SectionBody>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SectionBody {
    pub(crate) name: String,
    pub(crate) rows: Vec<RowBody>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RowBody {
    pub(crate) label: String,
    /// How many seats; numbered from 1.
    pub(crate) seats: u32,
    pub(crate) category: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateEventBody {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    /// Required unless `venue_id` is given (then the venue's).
    #[serde(default)]
    pub(crate) city: String,
    /// Required unless `venue_id` is given (then the venue's).
    #[serde(default)]
    pub(crate) country: String,
    /// The venue's name; required unless `venue_id` is given (then the venue's).
    #[serde(default)]
    pub(crate) venue: String,
    /// A venue of this tenant (`POST /v1/admin/venues`); with `hall`, the event takes
    /// that hall's current seat chart instead of inline `seating`.
    pub(crate) venue_id: Option<String>,
    /// A hall of `venue_id`.
    pub(crate) hall: Option<String>,
    /// A title of this tenant (`POST /v1/admin/titles`): the event is one of its shows.
    pub(crate) title_id: Option<String>,
    pub(crate) starts_at: String,
    pub(crate) ends_at: Option<String>,
    pub(crate) sales_open_at: Option<String>,
    pub(crate) sales_close_at: Option<String>,
    /// From 1 to 7200, default 300.
    pub(crate) hold_ttl_seconds: Option<u64>,
    /// Default 10.
    pub(crate) max_seats_per_order: Option<u32>,
    pub(crate) max_seats_per_user: Option<u32>,
    /// `strict` (default: nobody passes the head of a waitlist) or `skip_ahead`.
    pub(crate) waitlist_policy: Option<String>,
    pub(crate) categories: Vec<CategoryBody>,
    pub(crate) seating: Option<SeatingBody>,
    pub(crate) general_admission: Option<Vec<PoolBody>>,
    /// An arrival window of this many seconds before `sales_open_at` (required with it;
    /// from 1 to 86400): waiting holds and waitlist joins in it are entered into a draw
    /// made at `sales_open_at` (`GET /v1/events/{event_id}/draw`). Needs
    /// `draw_commitment`.
    pub(crate) arrival_window_seconds: Option<u64>,
    /// SHA-256 of the draw's secret seed (64 hex digits); the seed is revealed before
    /// opening with `POST /v1/admin/events/{event_id}/draw/reveal`.
    pub(crate) draw_commitment: Option<String>,
    /// ISO 4217 (`EUR`): the event's prices, payments and refunds. Default: the
    /// deployment's `payments.currency`.
    pub(crate) currency: Option<String>,
    /// Default: cancel at any time, refunded in full.
    pub(crate) cancellation: Option<CancellationBody>,
}

/// An arrival window for an existing event whose `sales_open_at` is in the future.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenWindowBody {
    /// From 1 to 86400 seconds before `sales_open_at`.
    pub(crate) arrival_window_seconds: u64,
    /// SHA-256 of the draw's secret seed (64 hex digits).
    pub(crate) draw_commitment: String,
}

/// The organiser's seed for the event's draw.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevealSeedBody {
    /// The 32-byte seed as 64 hex digits: its SHA-256 must be the event's `draw_commitment`.
    pub(crate) seed: String,
}

/// An event's draw: what anyone needs to recompute it. Each entry's draw key is
/// HMAC-SHA256(key = seed, message = "<event_id>/<waitlist_id>"); places go by ascending
/// key. Entries are listed by id only (no user).
#[derive(Serialize, ToSchema)]
pub(crate) struct DrawResponse {
    pub(crate) event_id: String,
    /// `pending` until `draws_at`, then `drawn`.
    pub(crate) status: String,
    pub(crate) opens_at: String,
    pub(crate) draws_at: String,
    /// SHA-256 of the organiser's seed, hex.
    pub(crate) commitment: String,
    /// The organiser's seed once revealed; once drawn, the seed the draw used.
    pub(crate) seed: Option<String>,
    /// Once drawn: `revealed` (the organiser's) or `fallback`.
    pub(crate) seed_source: Option<String>,
    /// For a `fallback` seed: how it was derived.
    pub(crate) fallback: Option<DrawFallback>,
    /// Before the draw: the entries in arrival order, with no place. After: every entry,
    /// first place first.
    pub(crate) entries: Vec<DrawEntry>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DrawFallback {
    /// The requests the engine applied in the window's last second that the seed chains.
    pub(crate) records: u32,
    /// Log times of the first and last of them (null when none came).
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    /// The rule, for a verifier.
    pub(crate) derivation: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DrawEntry {
    pub(crate) waitlist_id: String,
    /// From 1 once drawn.
    pub(crate) place: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EventCreated {
    pub(crate) event_id: String,
}

/// Every field is optional; `null` clears an optional time or limit. Seat maps never change.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchEventBody {
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) starts_at: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub(crate) ends_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub(crate) sales_open_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub(crate) sales_close_at: Option<Option<String>>,
    pub(crate) hold_ttl_seconds: Option<u64>,
    pub(crate) max_seats_per_order: Option<u32>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub(crate) max_seats_per_user: Option<Option<u32>>,
    pub(crate) waitlist_policy: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EventCanceledResponse {
    pub(crate) event_id: String,
    pub(crate) status: String,
    pub(crate) released_holds: u64,
    pub(crate) canceled_bookings: u64,
    pub(crate) ended_waitlist_entries: u64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckinBody {
    /// The code printed on the ticket.
    pub(crate) code: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CheckinResponse {
    pub(crate) event_id: String,
    pub(crate) ticket_id: String,
    pub(crate) status: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AttendeesResponse {
    pub(crate) event_id: String,
    pub(crate) attendees: Vec<Attendee>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Attendee {
    pub(crate) booking_id: String,
    /// The user id behind the pseudonym, from this ingress's personal-data store; `null`
    /// when the user was erased or this ingress never saw them (`identity` says which).
    pub(crate) user: Option<String>,
    /// The user as every log, webhook and notification names them.
    pub(crate) pseudonym: String,
    /// `known`, `erased` (the key that sealed the user id was destroyed) or `unknown`
    /// (the user's requests came through another ingress).
    pub(crate) identity: String,
    /// `confirmed` or `canceled`.
    pub(crate) status: String,
    pub(crate) seats: Vec<String>,
    pub(crate) quantity: u32,
    pub(crate) categories: Vec<String>,
    pub(crate) total_cents: u64,
    pub(crate) booked_at: String,
    pub(crate) tickets: Vec<AttendeeTicket>,
    /// The gateway's payment (the booking's `payment_ref`).
    pub(crate) payment_ref: String,
    /// The gateway's refund of the payment, once a canceled booking was refunded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refund_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AttendeeTicket {
    pub(crate) ticket_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seat: Option<String>,
    pub(crate) checked_in: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AdminEventsResponse {
    pub(crate) events: Vec<EventSummary>,
}

// ---- holds, bookings, waitlist ------------------------------------------------------------

/// Either `seats` (exact seats) or `quantity` (best available).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoldBody {
    pub(crate) seats: Option<Vec<String>>,
    pub(crate) quantity: Option<u32>,
    pub(crate) category: Option<String>,
    /// Adjacent seats in one row (reserved seating only).
    pub(crate) together: Option<bool>,
    /// When not enough is free now, join the waitlist (answer 202) instead of failing.
    pub(crate) wait: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct HoldResponse<'a> {
    #[schema(value_type = String)]
    pub(crate) hold_id: Shown<engine::HoldId>,
    #[schema(value_type = String)]
    pub(crate) event_id: Shown<engine::EventId>,
    /// Seat ids (empty for general admission).
    #[schema(value_type = Vec<String>)]
    pub(crate) seats: SeatLabels<'a>,
    pub(crate) quantity: u32,
    /// Categories of the held items, in seat order (one entry for general admission).
    #[schema(value_type = Vec<String>)]
    pub(crate) categories: ItemCategories<'a>,
    pub(crate) total_cents: u64,
    #[schema(value_type = String)]
    pub(crate) created_at: Rfc3339Time,
    #[schema(value_type = String)]
    pub(crate) expires_at: Rfc3339Time,
    /// `held`, `confirmed`, `released`, `expired` or `refunded` (a payment came for it
    /// too late, or not of its amount, and was given back: `refund_id`).
    pub(crate) status: &'static str,
    /// Set when the hold was offered to this waitlist entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub(crate) waitlist_id: Option<Shown<engine::WaiterId>>,
    /// Set once confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub(crate) booking_id: Option<Shown<engine::BookingId>>,
    /// The gateway's refund of a payment for this hold, once refunded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refund_id: Option<String>,
}

/// A hold's payment at the gateway (`POST /v1/holds/{id}/payment`).
#[derive(Serialize, ToSchema)]
pub(crate) struct PaymentResponse {
    pub(crate) hold_id: String,
    /// The gateway's payment id: the booking's `payment_ref` once paid.
    pub(crate) payment_id: String,
    /// What the frontend pays with (Stripe.js `confirmPayment`).
    pub(crate) client_secret: String,
    /// Exactly the hold's total.
    pub(crate) amount_cents: u64,
    /// ISO 4217.
    pub(crate) currency: String,
}

/// What a gateway webhook did.
#[derive(Serialize, ToSchema)]
pub(crate) struct PaymentWebhookResponse {
    /// `confirmed` (the hold is booked), `refund_due` (the payment is given back) or
    /// `ignored` (an event Boxoffice does not act on).
    pub(crate) result: String,
    /// Why a payment is due back: a `details.reason` word.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) booking_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfirmBody {
    /// The payment gateway's reference.
    pub(crate) payment_ref: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct BookingResponse<'a> {
    #[schema(value_type = String)]
    pub(crate) booking_id: Shown<engine::BookingId>,
    #[schema(value_type = String)]
    pub(crate) hold_id: Shown<engine::HoldId>,
    #[schema(value_type = String)]
    pub(crate) event_id: Shown<engine::EventId>,
    #[schema(value_type = Vec<String>)]
    pub(crate) seats: SeatLabels<'a>,
    pub(crate) quantity: u32,
    pub(crate) total_cents: u64,
    #[schema(value_type = String)]
    pub(crate) payment_ref: engine::payment_ref::PaymentRef,
    #[schema(value_type = String)]
    pub(crate) booked_at: Rfc3339Time,
    /// `confirmed` or `canceled`.
    pub(crate) status: &'static str,
    pub(crate) tickets: Vec<TicketBody<'a>>,
    /// The gateway's refund of its payment, once a canceled booking was refunded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refund_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TicketBody<'a> {
    #[schema(value_type = String)]
    pub(crate) ticket_id: Shown<engine::TicketId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub(crate) seat: Option<Shown<engine::layout::SeatLabel<'a>>>,
    /// Shown at the door; checked in by `POST /v1/admin/events/{id}/checkin`.
    #[schema(value_type = String)]
    pub(crate) code: engine::tickets::TicketCode,
}

/// A value an answer shows as its text (an id): written into the JSON as the answer is
/// serialized, not made a `String` first. Perf: a hold's or a booking's answer made a
/// `String` for each of its ids, times and ticket codes, a dozen allocations on the HTTP
/// thread for a booking of two seats (BENCHMARKS.md, "Session 43"); ids are written on
/// the stack (`engine::ids::IdText`), not through `core::fmt` ("Session 61").
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shown<T>(pub(crate) T);

/// What [`Shown`] can show.
pub(crate) trait ShowText {
    fn show<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;
}

macro_rules! show_id_text {
    ($($id:ty),*) => {$(
        impl ShowText for $id {
            fn show<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.text())
            }
        }
    )*};
}

show_id_text!(
    engine::EventId,
    engine::HoldId,
    engine::BookingId,
    engine::WaiterId,
    engine::TicketId
);

/// Written on the stack when it fits (most labels are short), like an id; a long one
/// through `core::fmt`.
impl ShowText for engine::layout::SeatLabel<'_> {
    fn show<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = [0u8; 64];
        match self.write_into(&mut text) {
            Some(label) => serializer.serialize_str(label),
            None => serializer.collect_str(self),
        }
    }
}

impl<T: ShowText> Serialize for Shown<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.show(serializer)
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct BookingsResponse<'a> {
    pub(crate) bookings: Vec<BookingResponse<'a>>,
}

/// A hold's or a booking's seats as their labels (`Layout::label`), written into the JSON
/// as the answer is serialized. Perf: a `String` a seat and a `Vec` of them, for a hold's
/// labels and categories, and for a booking's labels and each ticket's seat, were about
/// six allocations a response on the HTTP thread (BENCHMARKS.md, "Session 55").
pub(crate) struct SeatLabels<'a> {
    /// `None` for an event the read model does not know: no labels.
    pub(crate) event: Option<&'a crate::read_model::EventRecord>,
    pub(crate) items: &'a engine::Items,
}

impl Serialize for SeatLabels<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let items = self.items;
        serializer.collect_seq(
            self.event
                .into_iter()
                .flat_map(|event| event.seat_labels(items))
                .map(Shown),
        )
    }
}

/// The categories of a hold's items, one a seat in seat order (one for a pool), by name,
/// written as the answer is serialized (no `String` a seat).
pub(crate) struct ItemCategories<'a> {
    /// `None` for an event the read model does not know: no categories.
    pub(crate) event: Option<&'a crate::read_model::EventRecord>,
    pub(crate) items: &'a engine::Items,
}

impl Serialize for ItemCategories<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let items = self.items;
        serializer.collect_seq(
            self.event
                .into_iter()
                .flat_map(|event| event.category_names(items)),
        )
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitlistBody {
    pub(crate) quantity: u32,
    pub(crate) category: Option<String>,
    pub(crate) together: Option<bool>,
}

/// The answer to joining a waitlist (201) or to a hold that had to wait (202).
#[derive(Serialize, ToSchema)]
pub(crate) struct WaitlistJoined<'a> {
    pub(crate) waitlist_id: String,
    pub(crate) event_id: String,
    /// Place in the FCFS queue, from 1 (0 once no longer waiting, or while `entered`).
    pub(crate) position: u32,
    /// `waiting`, `offered`, or `entered` (in the event's arrival window: placed by the
    /// draw at `sales_open_at`).
    pub(crate) status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hold: Option<HoldResponse<'a>>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitQuery {
    /// Long-poll: wait up to this many seconds (at most 60) for the status to change.
    pub(crate) wait_seconds: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct NotificationsQuery {
    /// A `cursor` this endpoint answered: only the notifications after it. Without it,
    /// every one kept.
    pub(crate) after: Option<String>,
    /// Long-poll: when none is after `after`, wait up to this many seconds (at most 60)
    /// for one to arrive.
    pub(crate) wait_seconds: Option<u32>,
}

/// A user's own events, oldest first: what the tenant's webhooks are sent, for frontends
/// that cannot receive webhooks.
#[derive(Serialize, ToSchema)]
pub(crate) struct NotificationsResponse {
    pub(crate) notifications: Vec<NotificationResponse>,
    /// Pass as `after` for the notifications after these (with none, the request's
    /// `after`, or the start).
    pub(crate) cursor: String,
    /// Notifications after `after` were dropped (a user keeps the newest
    /// `http.notifications_per_user_max` per shard; a shard keeps
    /// `http.notification_users_max` users): the list is not whole, so reload what it
    /// would have said (`GET /v1/bookings`, the holds and waitlist entries).
    pub(crate) older_dropped: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct NotificationResponse {
    /// The webhook message's id, `msg_<shard>_<offset>_<index>`: one event has one id
    /// here and in webhooks.
    pub(crate) id: String,
    /// Pass as `after` for the notifications after this one.
    pub(crate) cursor: String,
    /// As a webhook's `type`: `booking.created`, `booking.canceled`, `hold.expired`,
    /// `waitlist.offered`, `waitlist.ended`, `event.canceled` (listing only this user's
    /// holds, bookings and waitlist entries), `checkin.used`, `desk_ticket.allocated`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// When it happened (the engine's log time), RFC 3339.
    pub(crate) timestamp: String,
    /// The webhook's `data` for this type (the document's `webhooks` section).
    #[schema(value_type = Object)]
    pub(crate) data: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct WaitlistStatus<'a> {
    pub(crate) waitlist_id: String,
    pub(crate) event_id: String,
    /// `waiting`, `entered` (in an arrival window's draw, not made yet: no position),
    /// `offered`, `expired` or `left`.
    pub(crate) status: String,
    /// Live place in the FCFS queue while waiting, from 1; 0 otherwise.
    pub(crate) position: u32,
    pub(crate) quantity: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) category: Option<String>,
    /// Why an entry expired: `timed_out`, `sold_out`, `limit_exceeded`, `event_canceled`,
    /// `no_row_long_enough` (a `together` request that no row could ever hold any more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// The hold offered to this entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hold: Option<HoldResponse<'a>>,
}

// ---- service desks ------------------------------------------------------------------------

#[derive(Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct LevelBody {
    pub(crate) name: String,
    /// A ticket of this level is resolved (its slot ends) within this many minutes.
    pub(crate) deadline_minutes: u64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateDeskBody {
    pub(crate) name: String,
    pub(crate) agents: u32,
    /// Default 1.
    pub(crate) slot_minutes: Option<u64>,
    /// Default gold 120, silver 240, bronze 480.
    pub(crate) levels: Option<Vec<LevelBody>>,
    /// How far ahead a slot may be given; default 8.
    pub(crate) horizon_hours: Option<u64>,
    /// How long a validated (`hold: true`) ticket keeps its slot; default 300.
    pub(crate) hold_ttl_seconds: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DeskCreated {
    pub(crate) desk_id: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DeskLoad {
    pub(crate) desk_id: String,
    pub(crate) name: String,
    pub(crate) agents: u32,
    pub(crate) slot_minutes: u64,
    pub(crate) horizon_hours: u64,
    pub(crate) levels: Vec<LevelBody>,
    /// Tickets holding a slot now (confirmed and validated).
    pub(crate) tickets: u64,
    pub(crate) held_tickets: u64,
    /// Busy agent-slots over the horizon divided by all agent-slots in it.
    pub(crate) utilization: f64,
    /// Upcoming slots with at least one busy agent (at most 100).
    pub(crate) busy_slots: Vec<DeskSlot>,
    /// Per service level, the slots a ticket of that level asked now could get.
    pub(crate) level_windows: Vec<DeskLevelWindow>,
}

/// A level's window: the slots that start at or after now (within the horizon) and end
/// by `resolve_by`. Counts are agent-slots (one ticket each).
#[derive(Serialize, ToSchema)]
pub(crate) struct DeskLevelWindow {
    pub(crate) level: String,
    /// Now plus the level's deadline.
    pub(crate) resolve_by: String,
    pub(crate) slots_used: u64,
    /// How many tickets of this level could be accepted now, if nothing else arrives.
    pub(crate) slots_free: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DeskSlot {
    pub(crate) slot_start: String,
    pub(crate) busy_agents: u32,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeskTicketBody {
    pub(crate) level: String,
    /// Only validate: keep the slot for a short while until confirmed.
    pub(crate) hold: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DeskTicketResponse {
    pub(crate) ticket_id: String,
    pub(crate) desk_id: String,
    pub(crate) level: String,
    pub(crate) agent: u32,
    pub(crate) slot_start: String,
    pub(crate) slot_end: String,
    pub(crate) resolve_by: String,
    /// `held`, `confirmed`, `canceled` or `expired`.
    pub(crate) status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hold_expires_at: Option<String>,
}

// ---- operations ---------------------------------------------------------------------------

/// A replica's status (served by the operator router of `boxoffice serve` and
/// `boxoffice engine`; the ingress only documents it).
#[derive(Serialize, ToSchema)]
pub struct EngineStatusResponse {
    /// The replica's name, as `Promote` records name it.
    pub node: String,
    pub role: EngineRole,
    pub applied_offset: Option<u64>,
    pub log_end_offset: u64,
    /// Records in the requests log not applied yet.
    pub lag_records: u64,
    /// The last request offset whose outcome is known to be in the outcomes log.
    pub published_offset: Option<u64>,
    pub last_snapshot: Option<SnapshotBody>,
    /// Hex digest of the engine state as of `state_hash_offset`.
    pub state_hash: String,
    /// The offset `state_hash` is of (it can lag `applied_offset`): an offline
    /// `boxoffice replay --to <state_hash_offset>` prints the same hash.
    pub state_hash_offset: Option<u64>,
    /// Why the engine runtime stopped, if it did.
    pub failure: Option<String>,
    /// The shard the fields above are of (0 in a single-shard deployment).
    pub shard: u32,
    /// Every shard this process runs an engine of, in shard order: `serve` runs them all,
    /// `boxoffice engine --shard K` runs one.
    pub shards: Vec<ShardStatusBody>,
}

/// One shard's engine as `GET /v1/admin/engine` lists it.
#[derive(Serialize, ToSchema)]
pub struct ShardStatusBody {
    pub shard: u32,
    pub node: String,
    pub role: EngineRole,
    pub applied_offset: Option<u64>,
    pub log_end_offset: u64,
    pub state_hash: String,
    pub state_hash_offset: Option<u64>,
    pub failure: Option<String>,
}

/// `primary` publishes outcomes; `standby` applies the log and publishes nothing;
/// `catching_up` has just started and replays the log: it is neither until it has caught
/// up with the log's end as of its start, and is never promoted automatically.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EngineRole {
    Primary,
    Standby,
    CatchingUp,
}

#[derive(Serialize, ToSchema)]
pub struct SnapshotBody {
    pub offset: u64,
    pub at: String,
}

/// Where a tenant's new events and desks go.
#[derive(Serialize, ToSchema)]
pub(crate) struct TenantPlacement {
    pub(crate) tenant_id: String,
    /// The shard its new events and desks go to; `null`: spread by request (a stable
    /// function of the request, so a retry reaches the same shard).
    pub(crate) shard: Option<u32>,
    /// The deployment's shards.
    pub(crate) shards: u32,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantPlacementBody {
    /// From 0 to shards - 1, or `null` to spread the tenant's new events again.
    #[schema(minimum = 0)]
    pub(crate) shard: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct PromoteResponse {
    pub node: String,
    /// The offset of the `Promote` record.
    pub promote_offset: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    pub(crate) status: String,
}

#[derive(Clone, Serialize, ToSchema)]
pub(crate) struct Readiness {
    pub(crate) ready: bool,
    pub(crate) log_writable: bool,
    pub(crate) caught_up: bool,
    /// False when requests wait for outcomes and none has come for the outcome timeout,
    /// or when the engine in this process has stopped.
    pub(crate) engine_answering: bool,
    /// Why the engine in this process stopped (`boxoffice serve`), if it did.
    pub(crate) engine_failure: Option<String>,
    /// Input offset of the last outcome the read model applied.
    pub(crate) applied_offset: Option<u64>,
    /// The requests log's end (next offset to be written), when it could be read.
    pub(crate) requests_end_offset: Option<u64>,
    pub(crate) outcomes_position: u64,
    pub(crate) outcomes_end_offset: u64,
    /// The first outcome offset the read model expected but never got (the outcomes log
    /// has a gap), if any: then the read model is stale and this ingress is not ready.
    pub(crate) outcomes_missing_from: Option<u64>,
    /// With more than one shard: each shard's readiness, in shard order (the fields above
    /// are then shard 0's, but `ready`, which is every shard's read model caught up and
    /// at least one shard answering: a shard that is down stops only its own events).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub(crate) shards: Option<Vec<Readiness>>,
}

/// `POST /v1/admin/webhooks`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateWebhookBody {
    /// `http://` or `https://`, at most 2048 bytes; its host must resolve (to public
    /// addresses, outside development mode).
    #[schema(max_length = 2048)]
    pub(crate) url: String,
    /// At least one of `booking.created`, `booking.canceled`, `hold.expired`,
    /// `waitlist.offered`, `waitlist.ended`, `event.canceled`, `checkin.used`,
    /// `desk_ticket.allocated`.
    #[schema(min_items = 1)]
    pub(crate) event_types: Vec<String>,
}

/// A webhook endpoint.
#[derive(Serialize, ToSchema)]
pub(crate) struct Webhook {
    pub(crate) webhook_id: String,
    pub(crate) url: String,
    pub(crate) event_types: Vec<String>,
    /// False once the effects worker gave up on it after sustained failure (24 hours of
    /// failed attempts); `POST .../enable` sends what waits for it again.
    pub(crate) enabled: bool,
    pub(crate) disabled_reason: Option<String>,
    /// The signing secret (`whsec_` + base64 of the key), in the creation's answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct WebhookDeliveries {
    /// Newest first.
    pub(crate) deliveries: Vec<crate::effects_control::WebhookDelivery>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct WebhookResent {
    pub(crate) message_id: String,
}

/// The reconciliation report's period.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReconciliationQuery {
    /// Start of the period (RFC 3339), included: payments created and bookings made from it.
    #[param(format = DateTime)]
    pub(crate) from: String,
    /// End of the period (RFC 3339), excluded; at most 366 days after `from`.
    #[param(format = DateTime)]
    pub(crate) to: String,
}

/// One line of the reconciliation report: a payment, a booking, or both matched.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReconciliationRow {
    /// `paid_and_booked`, `paid_and_refunded`, `paid_not_booked` (needs action: paid, neither
    /// booked nor refunded), `booked_without_payment` (no succeeded payment at the gateway),
    /// `amount_mismatch` (paid and booked, amounts differ).
    pub(crate) category: String,
    pub(crate) event_id: String,
    pub(crate) hold_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) booking_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) payment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refund_id: Option<String>,
    /// What the gateway received (0 without a payment).
    pub(crate) paid_cents: u64,
    /// The booking's total (0 without a booking).
    pub(crate) booked_cents: u64,
    /// What the gateway gave back.
    pub(crate) refunded_cents: u64,
    /// ISO 4217.
    pub(crate) currency: String,
}

/// Sums of one category for one event and currency.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReconciliationTotal {
    pub(crate) event_id: String,
    pub(crate) currency: String,
    pub(crate) category: String,
    pub(crate) count: u64,
    pub(crate) paid_cents: u64,
    pub(crate) booked_cents: u64,
    pub(crate) refunded_cents: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ReconciliationReport {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) rows: Vec<ReconciliationRow>,
    /// Per event, currency and category.
    pub(crate) totals: Vec<ReconciliationTotal>,
}

/// `POST /v1/operator/tenants`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTenantBody {
    /// 1 to 64 of `a-z 0-9 - _`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]{1,64}$")]
    pub(crate) tenant_id: String,
    /// A display name, at most 200 bytes.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub(crate) name: String,
}

/// `POST /v1/operator/tenants/{tenant_id}/suspend`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SuspendTenantBody {
    /// Why, shown to the tenant's refused keys; at most 200 bytes.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub(crate) reason: String,
}

/// A tenant (organiser account).
#[derive(Serialize, ToSchema)]
pub(crate) struct TenantAccountBody {
    pub(crate) tenant_id: String,
    pub(crate) name: String,
    /// `config` (the configuration file's bootstrap tenants) or `api`.
    pub(crate) source: String,
    /// `active` or `suspended`.
    pub(crate) status: String,
    pub(crate) suspended_reason: Option<String>,
    /// API keys it has (config-file admin keys not counted).
    pub(crate) api_keys: u64,
    /// Whether it verifies its own users' tokens.
    pub(crate) user_token_key: bool,
    /// The initial `admin` key of a tenant just made: in the creation's answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) admin_key: Option<ApiKeyBody>,
}

/// `POST /v1/admin/keys`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApiKeyBody {
    /// `admin` (everything of the tenant), `checkin` (only checks tickets in) or
    /// `reports` (reads only).
    #[schema(example = "checkin", pattern = "^(admin|checkin|reports)$")]
    pub(crate) role: String,
    /// A display name (e.g. "door 3 scanner"), at most 200 bytes.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub(crate) name: String,
}

/// An API key. Only its hash is stored: `secret` is in the answer that made or rotated it
/// only.
#[derive(Serialize, ToSchema)]
pub(crate) struct ApiKeyBody {
    pub(crate) key_id: String,
    pub(crate) name: String,
    pub(crate) role: String,
    /// Whether its secret was rotated since it was made.
    pub(crate) rotated: bool,
    /// Use as `Authorization: Bearer <secret>`; shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) secret: Option<String>,
}

/// `PUT /v1/admin/user-token-key`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserTokenKeyBody {
    /// `HS256`, `RS256` or `EdDSA`.
    #[schema(example = "EdDSA", pattern = "^(HS256|RS256|EdDSA)$")]
    pub(crate) algorithm: String,
    /// The HS256 secret (at least 32 bytes), or the RS256 / EdDSA public key in PEM.
    #[schema(min_length = 1, max_length = 8192)]
    pub(crate) key: String,
}

/// A tenant's user-token key, as shown (never the key itself).
#[derive(Serialize, ToSchema)]
pub(crate) struct UserTokenKeyShown {
    pub(crate) algorithm: String,
    /// SHA-256 of the key as registered, hex.
    pub(crate) fingerprint: String,
}

/// Whom to erase: exactly one of the user id (a token's `sub`, e.g. an e-mail: its current
/// pseudonym is erased) or a pseudonym (as exports and webhooks show it).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EraseUserBody {
    /// The user id as the user's tokens carry it (`sub`).
    #[serde(default)]
    pub(crate) user_id: Option<String>,
    /// With `user_id`: the tenant whose own user-token key signs the user's tokens (their
    /// `iss`); absent for users of the deployment's tokens.
    #[serde(default)]
    pub(crate) tenant_id: Option<String>,
    /// `u_` and 24 base32 characters.
    #[serde(default)]
    pub(crate) pseudonym: Option<String>,
}

/// An erasure, recorded in the control log and applied on this ingress.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserErasure {
    /// The pseudonym erased: it no longer resolves to anyone anywhere.
    pub(crate) pseudonym: String,
    /// The `UserErased` record's offset in the control log.
    pub(crate) control_offset: u64,
}

// ---- catalog: venues, titles, discovery --------------------------------------------------

/// A hall and its seat chart (as an event's inline `seating`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HallBody {
    pub(crate) name: String,
    pub(crate) seating: SeatingBody,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateVenueBody {
    pub(crate) name: String,
    pub(crate) address: Option<String>,
    pub(crate) city: String,
    /// ISO 3166-1 alpha-2.
    pub(crate) country: String,
    pub(crate) postal_code: Option<String>,
    /// Degrees, from -90 to 90.
    pub(crate) latitude: f64,
    /// Degrees, from -180 to 180.
    pub(crate) longitude: f64,
    /// From 1 to 50 halls, each with its seat chart.
    pub(crate) halls: Vec<HallBody>,
}

/// What changes; a hall named here replaces the hall of that name (its chart gets the
/// next version when it differs) or is added; halls not named stay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchVenueBody {
    pub(crate) name: Option<String>,
    pub(crate) address: Option<String>,
    pub(crate) city: Option<String>,
    pub(crate) country: Option<String>,
    pub(crate) postal_code: Option<String>,
    pub(crate) latitude: Option<f64>,
    pub(crate) longitude: Option<f64>,
    pub(crate) halls: Option<Vec<HallBody>>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ChartRowResponse {
    pub(crate) label: String,
    pub(crate) seats: u32,
    pub(crate) category: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ChartSectionResponse {
    pub(crate) name: String,
    pub(crate) rows: Vec<ChartRowResponse>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct HallResponse {
    pub(crate) name: String,
    /// From 1; an event keeps the version it was made with.
    pub(crate) chart_version: u32,
    pub(crate) seats: u64,
    pub(crate) categories: Vec<String>,
    pub(crate) sections: Vec<ChartSectionResponse>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct VenueResponse {
    pub(crate) venue_id: String,
    pub(crate) name: String,
    pub(crate) address: String,
    pub(crate) city: String,
    pub(crate) country: String,
    pub(crate) postal_code: String,
    pub(crate) latitude: f64,
    pub(crate) longitude: f64,
    pub(crate) halls: Vec<HallResponse>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AdminVenuesResponse {
    pub(crate) venues: Vec<VenueResponse>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTitleBody {
    pub(crate) name: String,
    /// A free word: `film`, `tour`, `festival`, …
    pub(crate) kind: Option<String>,
    pub(crate) description: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TitleResponse {
    pub(crate) title_id: String,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) description: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AdminTitlesResponse {
    pub(crate) titles: Vec<TitleResponse>,
}

/// Lists (or re-lists) an event under a venue, hall and title. The event's seating is not
/// changed: `chart_version` says which version of the hall's chart the listing names.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListingBody {
    pub(crate) venue_id: String,
    pub(crate) hall: String,
    pub(crate) title_id: Option<String>,
    /// Default: the hall's current version.
    pub(crate) chart_version: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ListingResponse {
    pub(crate) event_id: String,
    pub(crate) venue_id: String,
    pub(crate) hall: String,
    pub(crate) chart_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) title_id: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct TitlesQuery {
    /// Words of the title (typos tolerated).
    pub(crate) q: Option<String>,
    /// Titles with a show in this city (case-insensitive).
    pub(crate) city: Option<String>,
    pub(crate) country: Option<String>,
    /// With `lng`: titles with a show at a venue near it.
    pub(crate) lat: Option<String>,
    pub(crate) lng: Option<String>,
    pub(crate) radius_km: Option<String>,
    pub(crate) postal_code: Option<String>,
    /// Titles with a show starting at or after this time (RFC 3339).
    pub(crate) from: Option<String>,
    /// Titles with a show starting at or before this time (RFC 3339).
    pub(crate) to: Option<String>,
    /// `name` (default), `date` (next show first), `distance` (nearest show first), or
    /// several, comma-separated (`distance,date`).
    pub(crate) sort: Option<String>,
    pub(crate) page: Option<u32>,
    /// From 1 to 100, default 20.
    pub(crate) per_page: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PublicTitle {
    pub(crate) title_id: String,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) description: String,
    /// Shows that match the search (not canceled).
    pub(crate) shows: u64,
    /// The first of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_show_at: Option<String>,
    /// To the nearest of them, when the search gave `lat`,`lng`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) distance_km: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TitlesResponse {
    pub(crate) titles: Vec<PublicTitle>,
    pub(crate) page: u32,
    pub(crate) per_page: u32,
    pub(crate) total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) did_you_mean: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShowsQuery {
    /// Case-insensitive.
    pub(crate) city: Option<String>,
    /// A day, `YYYY-MM-DD` (UTC): shows starting that day.
    pub(crate) date: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Show {
    pub(crate) event_id: String,
    pub(crate) hall: String,
    pub(crate) starts_at: String,
    /// `upcoming`, `open` or `closed`.
    pub(crate) sales: String,
    pub(crate) free: u64,
    pub(crate) price_from_cents: u64,
    /// The show's seat map.
    pub(crate) seats_url: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ShowVenue {
    pub(crate) venue_id: String,
    pub(crate) name: String,
    pub(crate) address: String,
    pub(crate) city: String,
    pub(crate) postal_code: String,
    pub(crate) latitude: f64,
    pub(crate) longitude: f64,
    /// By start time.
    pub(crate) shows: Vec<Show>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ShowsResponse {
    pub(crate) title_id: String,
    pub(crate) name: String,
    /// Venues with a matching show, by name.
    pub(crate) venues: Vec<ShowVenue>,
}
