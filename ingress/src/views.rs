//! Read-model records and engine views turned into response bodies, and the
//! `X-Log-Offset` header every read (and write) answer carries.

use crate::api::*;
use crate::error::{AppError, Reason};
use crate::read_model::DrawRecord;
use crate::read_model::{
    BookingRecord, DeskRecord, DeskTicketRecord, EventRecord, ReadModel, WaiterRecord, WaiterStatus,
};
use crate::times;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::{BookingView, DeskTicketView, HoldView, WaitlistPolicy};

pub(crate) const LOG_OFFSET_HEADER: HeaderName = HeaderName::from_static("x-log-offset");

/// An answer with `X-Log-Offset`: the input offset of the last outcome the state reflects
/// (`-1` before the first).
pub(crate) fn answer(status: StatusCode, offset: Option<u64>, body: impl IntoResponse) -> Response {
    let mut response = (status, body).into_response();
    let value = offset.map_or_else(|| HeaderValue::from_static("-1"), HeaderValue::from);
    response.headers_mut().insert(LOG_OFFSET_HEADER, value);
    response
}

/// A hold's or a booking's answer as JSON: `axum::Json`'s body, serialized into a
/// buffer of the size such an answer takes. Perf: `Json` starts at 128 bytes and grew
/// twice (a copy each time) for a booking's 366 on the HTTP thread.
pub(crate) struct SizedJson<T>(pub(crate) T);

/// Bytes a hold's or a booking's answer of a few seats takes, with room to spare.
const ANSWER_BYTES_TYPICAL: usize = 640;

impl<T: serde::Serialize> IntoResponse for SizedJson<T> {
    fn into_response(self) -> Response {
        let mut bytes = Vec::with_capacity(ANSWER_BYTES_TYPICAL);
        match serde_json::to_writer(&mut bytes, &self.0) {
            Ok(()) => (
                [(
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                bytes,
            )
                .into_response(),
            Err(error) => {
                AppError::internal(format!("an answer did not serialize: {error}")).into_response()
            }
        }
    }
}

pub(crate) const LOG_OFFSETS_HEADER: HeaderName = HeaderName::from_static("x-log-offsets");

/// An answer from every shard's read model: `X-Log-Offset` is shard 0's (the whole
/// state of a single-shard deployment) and, with more than one shard,
/// `X-Log-Offsets` lists each shard's in shard order (`-1` before its first outcome).
pub(crate) fn answer_merged(
    status: StatusCode,
    models: &[impl std::ops::Deref<Target = ReadModel>],
    body: impl IntoResponse,
) -> Response {
    let mut response = answer(status, models[0].applied_offset, body);
    if models.len() > 1 {
        let offsets = models
            .iter()
            .map(|model| {
                model
                    .applied_offset
                    .map_or_else(|| "-1".to_string(), |offset| offset.to_string())
            })
            .collect::<Vec<_>>()
            .join(",");
        if let Ok(value) = HeaderValue::from_str(&offsets) {
            response.headers_mut().insert(LOG_OFFSETS_HEADER, value);
        }
    }
    response
}

/// Every shard's events that `filter` selects, sorted and paged as one list, each with its
/// shard's log time (sales windows are decided on it); and the total.
pub(crate) fn search_all<'a>(
    models: &'a [impl std::ops::Deref<Target = ReadModel>],
    filter: &crate::read_model::EventFilter,
    sort: crate::read_model::EventSort,
    page: u32,
    per_page: u32,
) -> (Vec<EventSummary>, u64) {
    let found: Vec<&'a EventRecord> = models
        .iter()
        .flat_map(|model| model.matching(filter))
        .collect();
    let (page, total) = crate::read_model::sort_and_page(found, sort, page, per_page);
    let count = models.len() as u32;
    let summaries = page
        .into_iter()
        .map(|event| {
            let now_ms = models[engine::shard_of(event.id.into(), count) as usize].time_ms;
            event_summary(event, now_ms)
        })
        .collect();
    (summaries, total)
}

pub(crate) fn policy_name(policy: WaitlistPolicy) -> &'static str {
    match policy {
        WaitlistPolicy::Strict => "strict",
        WaitlistPolicy::SkipAhead => "skip_ahead",
    }
}

pub(crate) fn event_summary(event: &EventRecord, now_ms: u64) -> EventSummary {
    let spec = &event.spec;
    let sales = if event.canceled || spec.sales_close_at_ms.is_some_and(|close| now_ms >= close) {
        "closed"
    } else if spec.sales_open_at_ms.is_some_and(|open| now_ms < open) {
        "upcoming"
    } else {
        "open"
    };
    EventSummary {
        event_id: event.id.to_string(),
        name: spec.name.clone(),
        description: spec.description.clone(),
        city: spec.city.clone(),
        country: spec.country.clone(),
        venue: spec.venue.clone(),
        starts_at: times::format(spec.starts_at_ms),
        ends_at: spec.ends_at_ms.map(times::format),
        sales_open_at: spec.sales_open_at_ms.map(times::format),
        sales_close_at: spec.sales_close_at_ms.map(times::format),
        status: if event.canceled {
            "canceled"
        } else {
            "scheduled"
        }
        .to_string(),
        sales: sales.to_string(),
        price_from_cents: event
            .categories()
            .iter()
            .filter(|category| category.capacity > 0)
            .map(|category| category.price_cents)
            .min()
            .unwrap_or(0),
        free: event.free_total(),
        capacity: event.capacity_total(),
        venue_id: None,
        title_id: None,
        distance_km: None,
    }
}

/// `currency_default`: the deployment's (`IngressConfig::currency_default`), for an event
/// created without terms.
pub(crate) fn event_detail(
    event: &EventRecord,
    now_ms: u64,
    currency_default: &str,
) -> EventDetail {
    let spec = &event.spec;
    let terms = event.terms(currency_default);
    EventDetail {
        currency: terms.currency,
        cancellation: CancellationBody {
            until_hours_before_start: terms.cancellation.until_hours_before_start,
            refund: terms.cancellation.refund.as_str().to_string(),
        },
        summary: event_summary(event, now_ms),
        hold_ttl_seconds: spec.hold_ttl_ms / 1000,
        max_seats_per_order: spec.seats_per_order_max,
        max_seats_per_user: spec.seats_per_user_max,
        waitlist_policy: policy_name(spec.waitlist_policy).to_string(),
        categories: spec
            .categories
            .iter()
            .map(|category| CategoryBody {
                name: category.name.clone(),
                price_cents: category.price_cents,
            })
            .collect(),
        sections: spec
            .sections
            .iter()
            .map(|section| section.name.clone())
            .collect(),
        general_admission: spec
            .general_admission
            .iter()
            .map(|pool| PoolBody {
                category: pool.category.clone(),
                capacity: pool.capacity,
            })
            .collect(),
        availability: event
            .categories()
            .iter()
            .map(|category| Availability {
                category: category.name.clone(),
                price_cents: category.price_cents,
                capacity: category.capacity,
                free: category.free(),
                held: category.held,
                booked: category.booked,
            })
            .collect(),
        waiting: u64::from(event.waitlist.waiting()),
    }
}

pub(crate) fn seat_map(event: &EventRecord) -> SeatMap {
    use engine::ledger::SeatStatus;
    let layout = &event.layout;
    let mut sections: Vec<SeatMapSection> = layout
        .section_names
        .iter()
        .map(|name| SeatMapSection {
            name: name.clone(),
            rows: Vec::new(),
        })
        .collect();
    for row in &layout.rows {
        let section_name = &layout.section_names[row.section as usize];
        let category = event.category_name(row.category);
        let seats = (0..row.seat_count)
            .map(|number| {
                let seat = row.first_seat + number;
                let status = match event.seat(seat) {
                    SeatStatus::Free => "free",
                    SeatStatus::Held => "held",
                    SeatStatus::Booked => "booked",
                };
                SeatMapSeat {
                    id: format!("{section_name}-{}-{}", row.label, number + 1),
                    category: category.clone(),
                    status: status.to_string(),
                }
            })
            .collect();
        sections[row.section as usize].rows.push(SeatMapRow {
            label: row.label.clone(),
            seats,
        });
    }
    SeatMap {
        event_id: event.id.to_string(),
        sections,
    }
}

/// A hold as answered; `status` and `booking` come from the caller (the outcome or the
/// read model).
pub(crate) fn hold_response<'a>(
    event: Option<&'a EventRecord>,
    view: &'a HoldView,
    status: &'static str,
    booking: Option<engine::BookingId>,
) -> HoldResponse<'a> {
    HoldResponse {
        hold_id: Shown(view.hold),
        event_id: Shown(view.event),
        seats: SeatLabels {
            event,
            items: &view.items,
        },
        quantity: view.items.quantity(),
        categories: ItemCategories {
            event,
            items: &view.items,
        },
        total_cents: event.map_or(0, |event| event.price_of(&view.items)),
        created_at: Rfc3339Time(view.created_at_ms),
        expires_at: Rfc3339Time(view.expires_at_ms),
        status,
        waitlist_id: view.waiter.map(Shown),
        booking_id: booking.map(Shown),
        refund_id: None,
    }
}

/// The hold as the read model knows it now.
pub(crate) fn current_hold(model: &ReadModel, hold: engine::HoldId) -> Option<HoldResponse<'_>> {
    let record = model.hold(hold)?;
    let booking = match record.status {
        crate::read_model::HoldStatus::Confirmed(booking) => Some(booking),
        _ => None,
    };
    Some(hold_response(
        model.event(record.view.event),
        &record.view,
        record.status.name(),
        booking,
    ))
}

/// A booking as the API shows it. Ticket codes are derived here from the ticket ids and
/// the ticket secret's MAC (the engine keeps ids only: an HMAC per ticket is read-side work).
pub(crate) fn booking_response<'a>(
    event: Option<&'a EventRecord>,
    view: &'a BookingView,
    canceled: bool,
    ticket_mac: &engine::tickets::TicketMac,
) -> BookingResponse<'a> {
    let label = |seat: u32| {
        event
            .filter(|event| seat < event.layout.seat_count)
            .map(|event| Shown(event.layout.label(seat)))
    };
    BookingResponse {
        booking_id: Shown(view.booking),
        hold_id: Shown(view.hold),
        event_id: Shown(view.event),
        seats: SeatLabels {
            event,
            items: &view.items,
        },
        quantity: view.items.quantity(),
        total_cents: view.total_cents,
        payment_ref: view.payment_ref.clone(),
        booked_at: Rfc3339Time(view.booked_at_ms),
        status: if canceled { "canceled" } else { "confirmed" },
        tickets: view
            .tickets()
            .map(|ticket| TicketBody {
                ticket_id: Shown(ticket.ticket),
                seat: ticket.seat.and_then(label),
                code: ticket_mac.code_of(ticket.ticket),
            })
            .collect(),
        refund_id: None,
    }
}

pub(crate) fn current_booking<'a>(
    model: &'a ReadModel,
    record: &'a BookingRecord,
    ticket_mac: &engine::tickets::TicketMac,
) -> BookingResponse<'a> {
    booking_response(
        model.event(record.view.event),
        &record.view,
        record.canceled,
        ticket_mac,
    )
}

pub(crate) fn waitlist_status<'a>(
    model: &'a ReadModel,
    waiter: &WaiterRecord,
) -> WaitlistStatus<'a> {
    let event = model.event(waiter.event);
    let (position, reason, hold) = match waiter.status {
        WaiterStatus::Waiting => (
            event.map_or(0, |event| event.position(waiter.place, waiter.category)),
            None,
            None,
        ),
        WaiterStatus::Offered(hold) => (0, None, current_hold(model, hold)),
        WaiterStatus::Ended(reason) => (
            0,
            Some(crate::read_model::wait_end_name(reason).to_string()),
            None,
        ),
        WaiterStatus::Left | WaiterStatus::Entered => (0, None, None),
    };
    WaitlistStatus {
        waitlist_id: waiter.id.to_string(),
        event_id: waiter.event.to_string(),
        status: waiter.status.name().to_string(),
        position,
        quantity: waiter.quantity,
        category: waiter
            .category
            .and_then(|category| event.map(|event| event.category_name(category))),
        reason,
        hold,
    }
}

/// `refund_of(hold, payment_ref)`: the refund id of a canceled booking's payment, once
/// refunded (the control log's, `ControlState::refund_of`).
pub(crate) fn attendees(
    model: &ReadModel,
    event: &EventRecord,
    refund_of: impl Fn(engine::HoldId, &str) -> Option<String>,
) -> Vec<Attendee> {
    event
        .bookings
        .iter()
        .filter_map(|booking| model.booking(*booking))
        .map(|booking| {
            let view = &booking.view;
            Attendee {
                booking_id: view.booking.to_string(),
                // Resolved by the caller (`routes::admin::attendees`), through the
                // personal-data store.
                user: None,
                pseudonym: view.user.to_string(),
                identity: "unknown".to_string(),
                status: if booking.canceled {
                    "canceled"
                } else {
                    "confirmed"
                }
                .to_string(),
                seats: event.labels(&view.items),
                quantity: view.items.quantity(),
                categories: event.item_categories(&view.items),
                total_cents: view.total_cents,
                booked_at: times::format(view.booked_at_ms),
                tickets: view
                    .tickets()
                    .enumerate()
                    .map(|(index, ticket)| AttendeeTicket {
                        ticket_id: ticket.ticket.to_string(),
                        seat: ticket
                            .seat
                            .filter(|seat| *seat < event.layout.seat_count)
                            .map(|seat| event.layout.label_of(seat)),
                        checked_in: booking.tickets_used.get(index).unwrap_or(false),
                    })
                    .collect(),
                payment_ref: view.payment_ref.to_string(),
                refund_id: booking
                    .canceled
                    .then(|| refund_of(view.hold, &view.payment_ref))
                    .flatten(),
            }
        })
        .collect()
}

pub(crate) fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) || text.starts_with(['=', '+', '-', '@']) {
        // Quoted, and a leading formula character neutralised for spreadsheets.
        let text = if text.starts_with(['=', '+', '-', '@']) {
            format!("'{text}")
        } else {
            text.to_string()
        };
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

pub(crate) fn attendees_csv(attendees: &[Attendee]) -> String {
    let mut out = String::from(
        "booking_id,user,status,quantity,seats,categories,total_cents,booked_at,checked_in,pseudonym,identity,payment_ref,refund_id\n",
    );
    for attendee in attendees {
        let checked_in = attendee
            .tickets
            .iter()
            .filter(|ticket| ticket.checked_in)
            .count();
        let row = [
            csv_field(&attendee.booking_id),
            csv_field(attendee.user.as_deref().unwrap_or_default()),
            csv_field(&attendee.status),
            attendee.quantity.to_string(),
            csv_field(&attendee.seats.join(" ")),
            csv_field(&attendee.categories.join(" ")),
            attendee.total_cents.to_string(),
            csv_field(&attendee.booked_at),
            checked_in.to_string(),
            csv_field(&attendee.pseudonym),
            csv_field(&attendee.identity),
            csv_field(&attendee.payment_ref),
            csv_field(attendee.refund_id.as_deref().unwrap_or("")),
        ];
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

pub(crate) fn desk_ticket_response(
    desk: Option<&DeskRecord>,
    view: &DeskTicketView,
    status: &str,
) -> DeskTicketResponse {
    DeskTicketResponse {
        ticket_id: view.ticket.to_string(),
        desk_id: view.desk.to_string(),
        level: desk
            .and_then(|desk| desk.spec.levels.get(view.level as usize))
            .map(|level| level.name.clone())
            .unwrap_or_default(),
        agent: view.agent,
        slot_start: times::format(view.slot_start_ms),
        slot_end: times::format(view.slot_end_ms),
        resolve_by: times::format(view.resolve_by_ms),
        status: status.to_string(),
        hold_expires_at: view.hold_expires_at_ms.map(times::format),
    }
}

pub(crate) fn current_desk_ticket(
    model: &ReadModel,
    record: &DeskTicketRecord,
) -> DeskTicketResponse {
    desk_ticket_response(
        model.desk(record.view.desk),
        &record.view,
        record.status.name(),
    )
}

pub(crate) fn desk_load(desk: &DeskRecord, now_ms: u64) -> DeskLoad {
    let spec = &desk.spec;
    let slot_ms = spec.slot_ms.max(1);
    let first_slot_start = now_ms / slot_ms * slot_ms;
    let horizon_end = now_ms + spec.horizon_ms;
    let upcoming = desk.busy.range(first_slot_start..=horizon_end);
    let busy_agent_slots: u64 = upcoming.clone().map(|(_, busy)| u64::from(*busy)).sum();
    let agent_slots = u64::from(spec.agents) * (spec.horizon_ms / slot_ms).max(1);
    DeskLoad {
        desk_id: desk.id.to_string(),
        name: spec.name.clone(),
        agents: spec.agents,
        slot_minutes: spec.slot_ms / 60_000,
        horizon_hours: spec.horizon_ms / 3_600_000,
        levels: spec
            .levels
            .iter()
            .map(|level| LevelBody {
                name: level.name.clone(),
                deadline_minutes: level.deadline_ms / 60_000,
            })
            .collect(),
        tickets: desk.live_tickets.len() as u64,
        held_tickets: desk.held_tickets,
        utilization: busy_agent_slots as f64 / agent_slots as f64,
        busy_slots: upcoming
            .take(100)
            .map(|(start, busy)| DeskSlot {
                slot_start: times::format(*start),
                busy_agents: *busy,
            })
            .collect(),
        level_windows: spec
            .levels
            .iter()
            .map(|level| desk_level_window(desk, &level.name, level.deadline_ms, now_ms))
            .collect(),
    }
}

/// The engine's rule, counted on the read model: slots that start at or after `now_ms`,
/// no later than now + horizon, and end by now + the level's deadline.
fn desk_level_window(
    desk: &DeskRecord,
    level: &str,
    deadline_ms: u64,
    now_ms: u64,
) -> DeskLevelWindow {
    let spec = &desk.spec;
    let slot_ms = spec.slot_ms.max(1);
    let first_start_ms = now_ms.div_ceil(slot_ms) * slot_ms;
    let resolve_by_ms = now_ms + deadline_ms;
    let last_start_ms = now_ms + spec.horizon_ms;
    let ending_in_time = resolve_by_ms.saturating_sub(first_start_ms) / slot_ms;
    let starting_in_horizon = if last_start_ms >= first_start_ms {
        (last_start_ms - first_start_ms) / slot_ms + 1
    } else {
        0
    };
    let slots = ending_in_time.min(starting_in_horizon);
    let used: u64 = desk
        .busy
        .range(first_start_ms..first_start_ms + slots * slot_ms)
        .map(|(_, busy)| u64::from(*busy))
        .sum();
    DeskLevelWindow {
        level: level.to_string(),
        resolve_by: times::format(resolve_by_ms),
        slots_used: used,
        slots_free: (slots * u64::from(spec.agents)).saturating_sub(used),
    }
}

/// One notification as answered: the webhook's body with its id and a cursor.
pub(crate) fn notification(
    shard: u32,
    notification: &crate::notifications::Notification,
    cursor: String,
) -> NotificationResponse {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(rename = "type")]
        kind: String,
        timestamp: String,
        data: serde_json::Value,
    }
    let body: Body = serde_json::from_str(&notification.body())
        .expect("a notification's body is the JSON engine::messages made");
    NotificationResponse {
        id: engine::messages::message_id(
            shard,
            notification.place.offset,
            notification.place.index,
        ),
        cursor,
        kind: body.kind,
        timestamp: body.timestamp,
        data: body.data,
    }
}

/// The event's draw, or 404 `draw_not_found` for an event without an arrival window.
pub(crate) fn no_draw_unless(draw: Option<&DrawRecord>) -> Result<&DrawRecord, AppError> {
    draw.ok_or_else(|| {
        AppError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            Reason::DrawNotFound,
            "the event has no arrival window, so no draw",
        )
    })
}

/// `GET /v1/events/{event_id}/draw`: the inputs anyone needs to recompute the order.
pub(crate) fn draw(event: &EventRecord, draw: &DrawRecord) -> DrawResponse {
    use engine::draw::{to_hex, DrawSeedSource};
    let drawn = draw.source.is_some();
    let (seed_source, fallback) = match draw.source {
        None => (None, None),
        Some(DrawSeedSource::Revealed) => (Some("revealed".to_string()), None),
        Some(DrawSeedSource::Fallback {
            records,
            from_ms,
            to_ms,
        }) => (
            Some("fallback".to_string()),
            Some(DrawFallback {
                records,
                from: (records > 0).then(|| crate::times::format(from_ms)),
                to: (records > 0).then(|| crate::times::format(to_ms)),
                derivation: "chain = SHA-256(\"boxoffice draw fallback\" || commitment); for each \
                    request the engine applied in the last second before draws_at, in log order: \
                    chain = SHA-256(chain || offset as u64 LE || log time in ms as u64 LE || \
                    SHA-256(the request's log record)); seed = chain"
                    .to_string(),
            }),
        ),
    };
    DrawResponse {
        event_id: event.id.to_string(),
        status: if drawn { "drawn" } else { "pending" }.to_string(),
        opens_at: crate::times::format(draw.opens_at_ms),
        draws_at: crate::times::format(draw.draws_at_ms),
        commitment: to_hex(&draw.commitment),
        seed: draw.seed.map(|seed| to_hex(&seed)),
        seed_source,
        fallback,
        entries: draw
            .entries
            .iter()
            .zip(1u32..)
            .map(|(entry, place)| DrawEntry {
                waitlist_id: entry.to_string(),
                place: drawn.then_some(place),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("x\"y,"), "\"x\"\"y,\"");
        assert_eq!(csv_field("=SUM(A1)"), "\"'=SUM(A1)\"");
    }
}
