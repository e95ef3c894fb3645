//! A user's holds, bookings, waitlist entries and desk tickets (user token). Another user's
//! id is 404, as is an unknown or unparsable one; neither reaches the log.

use super::{rejection, submit, unexpected, with_location};
use crate::api::*;
use crate::client_address::ClientAddress;
use crate::error::{AppError, ErrorBody, Reason};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Client, IdempotencyKey, UserId};
use crate::notifications;
use crate::read_model::{HoldStatus, WaiterStatus};
use crate::state::{AppState, LongPollPlaces};
use crate::validate;
use crate::views::{self, answer};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::{
    BookingId, Command, DeskId, DeskTicketId, EventId, HoldId, Limit, NotFound, Reply, Selection,
    WaiterId,
};
use std::time::Duration;

/// The longest long-poll.
pub(crate) const WAIT_SECONDS_MAX: u32 = 60;

/// A long-poll of `wait_seconds` (at most [`WAIT_SECONDS_MAX`]; 0 or none: answer at
/// once): its places under the user's and address's caps (held until it answers), and
/// when it answers at the latest (before the request timeout).
fn long_poll(
    state: &AppState,
    user: &str,
    client: Option<ClientAddress>,
    wait_seconds: Option<u32>,
) -> Result<(Option<LongPollPlaces>, tokio::time::Instant), AppError> {
    let wait_seconds = wait_seconds.unwrap_or(0);
    if wait_seconds > WAIT_SECONDS_MAX {
        return Err(AppError::field(
            "wait_seconds",
            format!("wait_seconds must be from 0 to {WAIT_SECONDS_MAX}"),
        ));
    }
    let places = if wait_seconds > 0 {
        Some(state.open_long_poll(user, client)?)
    } else {
        None
    };
    let wait = Duration::from_secs(u64::from(wait_seconds)).min(state.long_poll_wait_max());
    Ok((places, tokio::time::Instant::now() + wait))
}

fn own_hold(state: &AppState, user: &str, hold_id: &str) -> Result<HoldId, AppError> {
    let id = HoldId::parse(hold_id).ok_or_else(|| AppError::not_found(NotFound::Hold))?;
    match state.model_of(id).hold(id) {
        Some(hold) if *hold.view.user == *user => Ok(id),
        _ => Err(AppError::not_found(NotFound::Hold)),
    }
}

fn own_booking(state: &AppState, user: &str, booking_id: &str) -> Result<BookingId, AppError> {
    let id = BookingId::parse(booking_id).ok_or_else(|| AppError::not_found(NotFound::Booking))?;
    match state.model_of(id).booking(id) {
        Some(booking) if *booking.view.user == *user => Ok(id),
        _ => Err(AppError::not_found(NotFound::Booking)),
    }
}

fn own_waiter(state: &AppState, user: &str, waiter_id: &str) -> Result<WaiterId, AppError> {
    let id = WaiterId::parse(waiter_id).ok_or_else(|| AppError::not_found(NotFound::Waiter))?;
    match state.model_of(id).waiter(id) {
        Some(waiter) if waiter.user == user => Ok(id),
        _ => Err(AppError::not_found(NotFound::Waiter)),
    }
}

fn own_desk_ticket(
    state: &AppState,
    user: &str,
    desk_id: &str,
    ticket_id: &str,
) -> Result<(DeskId, DeskTicketId), AppError> {
    let desk = DeskId::parse(desk_id).ok_or_else(|| AppError::not_found(NotFound::DeskTicket))?;
    let ticket =
        DeskTicketId::parse(ticket_id).ok_or_else(|| AppError::not_found(NotFound::DeskTicket))?;
    match state.model_of(ticket).desk_ticket(ticket) {
        Some(record) if *record.view.user == *user && record.view.desk == desk => {
            Ok((desk, ticket))
        }
        _ => Err(AppError::not_found(NotFound::DeskTicket)),
    }
}

// ---- holds ----------------------------------------------------------------------------------

/// A request's category as the event's index, which the ingress appends instead of the
/// name (category names never change): the engine thread compares no name, and the record
/// carries none. An unknown name is a 400 naming the field, never a record.
fn category_index(
    id: EventId,
    event: &crate::read_model::EventRecord,
    name: Option<&str>,
) -> Result<Option<u16>, AppError> {
    let Some(name) = name else {
        return Ok(None);
    };
    match event.category_index(name) {
        Some(index) => Ok(Some(index)),
        None => Err(
            AppError::field("category", format!("event {id} has no category {name:?}"))
                .because(Reason::CategoryNotFound),
        ),
    }
}

#[utoipa::path(post, path = "/v1/events/{event_id}/holds", tag = "holds", request_body = HoldBody,
    params(("event_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, description = "Held", body = HoldResponse),
        (status = 202, description = "Not enough free: waiting in the waitlist (`wait: true`)", body = WaitlistJoined),
        (status = 404, description = "Unknown event or seats (`details.seats`)", body = ErrorBody),
        (status = 409, description = "seats_unavailable (`details.seats`), sold_out, sales_closed", body = ErrorBody),
        (status = 422, description = "limit_exceeded; idempotency_key_reused (the Idempotency-Key already answered another request)", body = ErrorBody)),
    security(("user_token" = [])))]
pub(crate) async fn place_hold(
    State(state): State<AppState>,
    UserId(user): UserId,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(event_id): ApiPath<String>,
    ApiJson(body): ApiJson<HoldBody>,
) -> Result<Response, AppError> {
    let id = EventId::parse(&event_id).ok_or_else(|| AppError::not_found(NotFound::Event))?;
    let (mut selection, wait) = validate::selection(&body, &state.config().engine)?;
    {
        // Seat labels and category names never change: check them here, not in the log,
        // and append seat indices (the engine thread parses no label).
        let model = state.model_of(id);
        let event = model
            .event(id)
            .ok_or_else(|| AppError::not_found(NotFound::Event))?;
        match &selection {
            Selection::Seats(labels) => {
                let unknown: Vec<&String> = labels
                    .iter()
                    .filter(|label| event.layout.seat_of(label).is_none())
                    .collect();
                if !unknown.is_empty() {
                    return Err(AppError::from_rejection(
                        &engine::Rejection::UnknownSeats {
                            seats: unknown.into_iter().cloned().collect(),
                        },
                        None,
                    ));
                }
                selection = Selection::SeatIndices(
                    labels
                        .iter()
                        .filter_map(|label| event.layout.seat_of(label))
                        .collect(),
                );
            }
            Selection::SeatIndices(_) | Selection::BestIndexed { .. } => {
                unreachable!("validation gives labels and category names")
            }
            Selection::Best {
                quantity,
                category,
                together,
            } => {
                selection = Selection::BestIndexed {
                    quantity: *quantity,
                    category: category_index(id, event, category.as_deref())?,
                    together: *together,
                };
            }
        }
    }
    let outcome = submit(
        &state,
        key,
        Command::PlaceHold {
            user: user.into(),
            event: id,
            selection,
            wait,
        },
    )
    .await?;
    match &outcome.result {
        Ok(Reply::HoldPlaced(view)) => {
            let model = state.model_of(id);
            let body = views::hold_response(model.event(view.event), view, "held", None);
            Ok(with_location(
                answer(
                    StatusCode::CREATED,
                    Some(outcome.offset),
                    views::SizedJson(body),
                ),
                &format!("/v1/holds/{}", view.hold),
            ))
        }
        Ok(Reply::Waitlisted {
            waiter,
            event,
            position,
            ..
        }) => {
            let body = WaitlistJoined {
                waitlist_id: waiter.to_string(),
                event_id: event.to_string(),
                position: *position,
                status: "waiting".into(),
                hold: None,
            };
            Ok(with_location(
                answer(StatusCode::ACCEPTED, Some(outcome.offset), Json(body)),
                &format!("/v1/waitlist/{waiter}"),
            ))
        }
        Ok(Reply::Entered { waiter, event, .. }) => Ok(entered(
            *waiter,
            *event,
            outcome.offset,
            StatusCode::ACCEPTED,
        )),
        Ok(other) => Err(unexpected(other)),
        Err(error) => Err(rejection(&state, Some(id), error)),
    }
}

#[utoipa::path(get, path = "/v1/holds/{hold_id}", tag = "holds", params(("hold_id" = String, Path)),
    responses((status = 200, description = "The hold: held, confirmed, released, expired or refunded", body = HoldResponse), (status = 404, body = ErrorBody)),
    security(("user_token" = [])))]
pub(crate) async fn get_hold(
    State(state): State<AppState>,
    UserId(user): UserId,
    ApiPath(hold_id): ApiPath<String>,
) -> Result<Response, AppError> {
    let id = own_hold(&state, &user, &hold_id)?;
    let refund = state.shared.control.refund_of(id);
    let model = state.model_of(id);
    let mut body =
        views::current_hold(&model, id).ok_or_else(|| AppError::not_found(NotFound::Hold))?;
    // A payment given back for a hold that is not booked (one that is keeps its booking).
    if let Some(refund_id) = refund.and_then(|refund| refund.refund_id) {
        if body.booking_id.is_none() {
            body.status = "refunded";
            body.refund_id = Some(refund_id);
        }
    }
    Ok(answer(
        StatusCode::OK,
        model.applied_offset,
        views::SizedJson(body),
    ))
}

#[utoipa::path(post, path = "/v1/holds/{hold_id}/confirm", tag = "holds", request_body = ConfirmBody,
    params(("hold_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "Booked", body = BookingResponse), (status = 404, body = ErrorBody), (status = 409, description = "hold_expired, or conflict (released, already confirmed)", body = ErrorBody), (status = 422, description = "idempotency_key_reused: the Idempotency-Key already answered another request", body = ErrorBody)),
    security(("user_token" = [])))]
pub(crate) async fn confirm_hold(
    State(state): State<AppState>,
    UserId(user): UserId,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(hold_id): ApiPath<String>,
    ApiJson(body): ApiJson<ConfirmBody>,
) -> Result<Response, AppError> {
    let id = own_hold(&state, &user, &hold_id)?;
    let payment_ref =
        validate::required_text("payment_ref", &body.payment_ref, &state.config().engine)?;
    super::payments::check_payment_ref(&state, id, &payment_ref).await?;
    let outcome = submit(
        &state,
        key,
        Command::ConfirmHold {
            user: user.into(),
            hold: id,
            payment_ref,
        },
    )
    .await?;
    match &outcome.result {
        Ok(Reply::HoldConfirmed(view)) => {
            let model = state.model_of(id);
            let body =
                views::booking_response(model.event(view.event), view, false, state.ticket_mac());
            Ok(with_location(
                answer(
                    StatusCode::CREATED,
                    Some(outcome.offset),
                    views::SizedJson(body),
                ),
                &format!("/v1/bookings/{}", view.booking),
            ))
        }
        Ok(other) => Err(unexpected(other)),
        Err(error) => {
            let event = state.model_of(id).hold(id).map(|hold| hold.view.event);
            Err(rejection(&state, event, error))
        }
    }
}

#[utoipa::path(delete, path = "/v1/holds/{hold_id}", tag = "holds",
    params(("hold_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "Released: the seats are free again", body = HoldResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, description = "idempotency_key_reused: the Idempotency-Key already answered another request", body = ErrorBody)),
    security(("user_token" = [])))]
pub(crate) async fn release_hold(
    State(state): State<AppState>,
    UserId(user): UserId,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(hold_id): ApiPath<String>,
) -> Result<Response, AppError> {
    let id = own_hold(&state, &user, &hold_id)?;
    let outcome = submit(
        &state,
        key,
        Command::ReleaseHold {
            user: user.into(),
            hold: id,
        },
    )
    .await?;
    match &outcome.result {
        Ok(Reply::HoldReleased { hold, .. }) => {
            let model = state.model_of(id);
            let mut body = views::current_hold(&model, *hold).ok_or_else(|| {
                AppError::internal("a released hold is missing from the read model")
            })?;
            body.status = HoldStatus::Released.name();
            Ok(answer(
                StatusCode::OK,
                Some(outcome.offset),
                views::SizedJson(body),
            ))
        }
        Ok(other) => Err(unexpected(other)),
        Err(error) => {
            let event = state.model_of(id).hold(id).map(|hold| hold.view.event);
            Err(rejection(&state, event, error))
        }
    }
}

// ---- bookings -------------------------------------------------------------------------------

#[utoipa::path(get, path = "/v1/bookings", tag = "bookings",
    responses((status = 200, description = "My bookings, oldest first", body = BookingsResponse)),
    security(("user_token" = [])))]
pub(crate) async fn list_bookings(State(state): State<AppState>, UserId(user): UserId) -> Response {
    let models = state.models();
    let mut bookings: Vec<BookingResponse> = models
        .iter()
        .flat_map(|model| {
            model
                .user_bookings(&user)
                .map(|booking| views::current_booking(model, booking, state.ticket_mac()))
        })
        .collect();
    if models.len() > 1 {
        // Each shard's are in booking order; merged, in booking time.
        bookings.sort_by_key(|booking| booking.booked_at);
    }
    views::answer_merged(StatusCode::OK, &models, Json(BookingsResponse { bookings }))
}

#[utoipa::path(get, path = "/v1/bookings/{booking_id}", tag = "bookings", params(("booking_id" = String, Path)),
    responses((status = 200, description = "The booking", body = BookingResponse), (status = 404, body = ErrorBody)),
    security(("user_token" = [])))]
pub(crate) async fn get_booking(
    State(state): State<AppState>,
    UserId(user): UserId,
    ApiPath(booking_id): ApiPath<String>,
) -> Result<Response, AppError> {
    let id = own_booking(&state, &user, &booking_id)?;
    let model = state.model_of(id);
    let booking = model
        .booking(id)
        .ok_or_else(|| AppError::not_found(NotFound::Booking))?;
    let mut body = views::current_booking(&model, booking, state.ticket_mac());
    // A canceled booking's payment, once the effects worker gave it back.
    body.refund_id = state
        .shared
        .control
        .refund_of(booking.view.hold)
        .filter(|refund| booking.canceled && *refund.payment_id == *booking.view.payment_ref)
        .and_then(|refund| refund.refund_id);
    Ok(answer(
        StatusCode::OK,
        model.applied_offset,
        views::SizedJson(body),
    ))
}

/// Rendered on the server (the `qrcode` crate), so the page needs no QR code library:
/// error correction M, a quiet zone of 4 modules, black on white.
#[utoipa::path(get, path = "/v1/bookings/{booking_id}/tickets/{ticket_id}/qr.svg", tag = "bookings",
    params(("booking_id" = String, Path), ("ticket_id" = String, Path)),
    responses((status = 200, description = "The ticket's code as a QR code (SVG)", body = String, content_type = "image/svg+xml"), (status = 404, description = "No such booking of this user, or no such ticket in it", body = ErrorBody)),
    security(("user_token" = [])))]
pub(crate) async fn ticket_qr(
    State(state): State<AppState>,
    UserId(user): UserId,
    ApiPath((booking_id, ticket_id)): ApiPath<(String, String)>,
) -> Result<Response, AppError> {
    let id = own_booking(&state, &user, &booking_id)?;
    let code = {
        let model = state.model_of(id);
        let booking = model
            .booking(id)
            .ok_or_else(|| AppError::not_found(NotFound::Booking))?;
        views::current_booking(&model, booking, state.ticket_mac())
            .tickets
            .into_iter()
            .find(|ticket| ticket.ticket_id.0.to_string() == ticket_id)
            .ok_or_else(|| AppError::not_found(NotFound::Ticket))?
            .code
            .to_string()
    };
    let qr = qrcode::QrCode::with_error_correction_level(code.as_bytes(), qrcode::EcLevel::M)
        .map_err(|error| {
            AppError::internal(format!("a ticket code too long for a QR code: {error}"))
        })?;
    let svg = qr
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(160, 160)
        .quiet_zone(true)
        .build();
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        svg,
    )
        .into_response())
}

#[utoipa::path(delete, path = "/v1/bookings/{booking_id}", tag = "bookings",
    params(("booking_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "Canceled: the seats are free again", body = BookingResponse), (status = 404, body = ErrorBody), (status = 409, description = "already canceled, or a ticket was used (already_used)", body = ErrorBody), (status = 422, description = "idempotency_key_reused: the Idempotency-Key already answered another request", body = ErrorBody)),
    security(("user_token" = [])))]
pub(crate) async fn cancel_booking(
    State(state): State<AppState>,
    UserId(user): UserId,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(booking_id): ApiPath<String>,
) -> Result<Response, AppError> {
    let id = own_booking(&state, &user, &booking_id)?;
    let outcome = submit(
        &state,
        key,
        Command::CancelBooking {
            user: user.into(),
            booking: id,
        },
    )
    .await?;
    match &outcome.result {
        Ok(Reply::BookingCanceled { booking, .. }) => {
            let model = state.model_of(id);
            let record = model.booking(*booking).ok_or_else(|| {
                AppError::internal("a canceled booking is missing from the read model")
            })?;
            Ok(answer(
                StatusCode::OK,
                Some(outcome.offset),
                Json(views::booking_response(
                    model.event(record.view.event),
                    &record.view,
                    true,
                    state.ticket_mac(),
                )),
            ))
        }
        Ok(other) => Err(unexpected(other)),
        Err(error) => Err(rejection(&state, None, error)),
    }
}

// ---- waitlist -------------------------------------------------------------------------------

#[utoipa::path(post, path = "/v1/events/{event_id}/waitlist", tag = "waitlist", request_body = WaitlistBody,
    params(("event_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "Joined (or offered at once when seats were free)", body = WaitlistJoined), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, description = "limit_exceeded; idempotency_key_reused (the Idempotency-Key already answered another request)", body = ErrorBody)),
    security(("user_token" = [])))]
pub(crate) async fn join_waitlist(
    State(state): State<AppState>,
    UserId(user): UserId,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(event_id): ApiPath<String>,
    ApiJson(body): ApiJson<WaitlistBody>,
) -> Result<Response, AppError> {
    let id = EventId::parse(&event_id).ok_or_else(|| AppError::not_found(NotFound::Event))?;
    if body.quantity == 0 {
        return Err(AppError::field("quantity", "quantity must be at least 1"));
    }
    let limits = &state.config().engine;
    if body.quantity > limits.seats_per_order_cap {
        return Err(AppError::limit_exceeded(
            Limit::SeatsPerOrder,
            u64::from(limits.seats_per_order_cap),
        ));
    }
    let category = {
        let model = state.model_of(id);
        let event = model
            .event(id)
            .ok_or_else(|| AppError::not_found(NotFound::Event))?;
        category_index(id, event, body.category.as_deref())?
    };
    let command = Command::JoinWaitlistIndexed {
        user: user.into(),
        event: id,
        quantity: body.quantity,
        category,
        together: body.together.unwrap_or(false),
    };
    let outcome = submit(&state, key, command).await?;
    match &outcome.result {
        Ok(Reply::WaitlistJoined {
            waiter,
            event,
            position,
            ..
        }) => {
            let model = state.model_of(id);
            let (status, hold) = match model.waiter(*waiter).map(|record| record.status) {
                Some(WaiterStatus::Offered(hold)) => ("offered", views::current_hold(&model, hold)),
                Some(other) => (other.name(), None),
                None => ("waiting", None),
            };
            let body = WaitlistJoined {
                waitlist_id: waiter.to_string(),
                event_id: event.to_string(),
                position: *position,
                status: status.into(),
                hold,
            };
            Ok(with_location(
                answer(StatusCode::CREATED, Some(outcome.offset), Json(body)),
                &format!("/v1/waitlist/{waiter}"),
            ))
        }
        Ok(Reply::Entered { waiter, event, .. }) => Ok(entered(
            *waiter,
            *event,
            outcome.offset,
            StatusCode::CREATED,
        )),
        Ok(other) => Err(unexpected(other)),
        Err(error) => Err(rejection(&state, Some(id), error)),
    }
}

/// The answer to a request entered into an arrival window's draw: a waitlist entry with
/// status `entered` and no position until the draw.
fn entered(waiter: WaiterId, event: EventId, offset: u64, status: StatusCode) -> Response {
    let body = WaitlistJoined {
        waitlist_id: waiter.to_string(),
        event_id: event.to_string(),
        position: 0,
        status: "entered".into(),
        hold: None,
    };
    with_location(
        answer(status, Some(offset), Json(body)),
        &format!("/v1/waitlist/{waiter}"),
    )
}

#[utoipa::path(get, path = "/v1/waitlist/{waitlist_id}", tag = "waitlist", params(("waitlist_id" = String, Path), WaitQuery),
    responses((status = 200, description = "Status; with wait_seconds, answered as soon as it changes from waiting \
        (and at the latest shortly before the server's request timeout, `http.request_timeout_ms`)", body = WaitlistStatus),
        (status = 404, body = ErrorBody),
        (status = 429, description = "rate_limited: user_rate_limit, address_rate_limit, or with wait_seconds \
            long_polls_per_user_max / long_polls_per_address_max (too many long-polls waiting at once); see Retry-After", body = ErrorBody)),
    security(("user_token" = [])))]
pub(crate) async fn get_waitlist(
    State(state): State<AppState>,
    UserId(user): UserId,
    Client(client): Client,
    ApiPath(waitlist_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<WaitQuery>,
) -> Result<Response, AppError> {
    let id = own_waiter(&state, &user, &waitlist_id)?;
    // Held until this answers: a long-poll counts against its user's and address's caps.
    let (_places, deadline) = long_poll(&state, &user, client, query.wait_seconds)?;
    let mut shutdown = state.shared.shutdown.subscribe();
    // Answered once the status changes from the first one seen (waiting, or entered in a
    // draw: the draw's place is a change).
    let mut first_status = None;
    loop {
        let notify = state.shared.watchers.watch(&id);
        let answered = {
            // Register before looking, so a change between the look and the wait is not missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // The answer is made while the model is read (its body borrows from it).
            let looked = {
                let model = state.model_of(id);
                model.waiter(id).map(|waiter| {
                    (
                        waiter.status,
                        answer(
                            StatusCode::OK,
                            model.applied_offset,
                            Json(views::waitlist_status(&model, waiter)),
                        ),
                    )
                })
            };
            match looked {
                None => Some(Err(AppError::not_found(NotFound::Waiter))),
                Some((status, response))
                    if !matches!(status, WaiterStatus::Waiting | WaiterStatus::Entered)
                        || *first_status.get_or_insert(status) != status
                        || tokio::time::Instant::now() >= deadline
                        || *shutdown.borrow() =>
                {
                    Some(Ok(response))
                }
                Some(_) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(deadline) => {}
                        _ = shutdown.changed() => {}
                    }
                    None
                }
            }
        };
        drop(notify);
        if let Some(answered) = answered {
            state.shared.watchers.release(&id);
            return answered;
        }
    }
}

// ---- notifications ---------------------------------------------------------------------------

#[utoipa::path(get, path = "/v1/me/notifications", tag = "notifications", params(NotificationsQuery),
    responses((status = 200, description = "My notifications after `after`, oldest first (each shard's in the order they \
        happened, shards merged by time). With wait_seconds and none after `after`, answered as soon as one arrives \
        (and at the latest shortly before the server's request timeout, `http.request_timeout_ms`: then with none)", body = NotificationsResponse),
        (status = 400, description = "invalid_field: `after` is not a cursor of this deployment, or `wait_seconds` is over 60", body = ErrorBody),
        (status = 429, description = "rate_limited: user_rate_limit, address_rate_limit, or with wait_seconds \
            long_polls_per_user_max / long_polls_per_address_max (too many long-polls waiting at once); see Retry-After", body = ErrorBody)),
    security(("user_token" = [])))]
pub(crate) async fn list_notifications(
    State(state): State<AppState>,
    UserId(user): UserId,
    Client(client): Client,
    ApiQuery(query): ApiQuery<NotificationsQuery>,
) -> Result<Response, AppError> {
    let shards = state.shards().len();
    let after = match &query.after {
        Some(text) => notifications::parse_cursor(text, shards)
            .map_err(|message| AppError::field("after", message))?,
        None => vec![None; shards],
    };
    // Held until this answers: a long-poll counts against its user's and address's caps.
    let (_places, deadline) = long_poll(&state, &user, client, query.wait_seconds)?;
    let mut shutdown = state.shared.shutdown.subscribe();
    let watched = engine::UserName::from(user.as_str());
    loop {
        let notify = state.shared.user_watchers.watch(&watched);
        let answered = {
            // Register before looking, so one told between the look and the wait is not missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (response, found) = notifications_after(&state, &user, &after);
            if found || tokio::time::Instant::now() >= deadline || *shutdown.borrow() {
                Some(response)
            } else {
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = shutdown.changed() => {}
                }
                None
            }
        };
        drop(notify);
        if let Some(response) = answered {
            state.shared.user_watchers.release(&watched);
            return Ok(response);
        }
    }
}

/// `user`'s notifications after `after` (a place per shard), every shard's merged in time
/// order (ties by shard, then place), and whether there was any.
fn notifications_after(
    state: &AppState,
    user: &str,
    after: &[Option<notifications::Place>],
) -> (Response, bool) {
    let models = state.models();
    let mut older_dropped = false;
    let mut found: Vec<(u32, &notifications::Notification)> = Vec::new();
    for ((shard, model), after) in (0u32..).zip(&models).zip(after) {
        let page = model.notifications.after(user, *after);
        older_dropped |= page.older_dropped;
        found.extend(page.notifications.into_iter().map(|found| (shard, found)));
    }
    found.sort_by_key(|(shard, notification)| (notification.time_ms, *shard, notification.place));
    let mut cursor = after.to_vec();
    let notifications: Vec<NotificationResponse> = found
        .iter()
        .map(|(shard, notification)| {
            cursor[*shard as usize] = Some(notification.place);
            views::notification(*shard, notification, notifications::format_cursor(&cursor))
        })
        .collect();
    let any = !notifications.is_empty();
    let body = NotificationsResponse {
        notifications,
        cursor: notifications::format_cursor(&cursor),
        older_dropped,
    };
    (
        views::answer_merged(StatusCode::OK, &models, Json(body)),
        any,
    )
}

#[utoipa::path(delete, path = "/v1/waitlist/{waitlist_id}", tag = "waitlist",
    params(("waitlist_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "Left the waitlist", body = WaitlistStatus), (status = 404, description = "Unknown, another user's, or no longer waiting", body = ErrorBody), (status = 422, description = "idempotency_key_reused: the Idempotency-Key already answered another request", body = ErrorBody)),
    security(("user_token" = [])))]
pub(crate) async fn leave_waitlist(
    State(state): State<AppState>,
    UserId(user): UserId,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(waitlist_id): ApiPath<String>,
) -> Result<Response, AppError> {
    let id = own_waiter(&state, &user, &waitlist_id)?;
    let outcome = submit(
        &state,
        key,
        Command::LeaveWaitlist {
            user: user.into(),
            waiter: id,
        },
    )
    .await?;
    match &outcome.result {
        Ok(Reply::WaitlistLeft { waiter, .. }) => {
            let model = state.model_of(id);
            let record = model.waiter(*waiter).ok_or_else(|| {
                AppError::internal("a left waitlist entry is missing from the read model")
            })?;
            Ok(answer(
                StatusCode::OK,
                Some(outcome.offset),
                Json(views::waitlist_status(&model, record)),
            ))
        }
        Ok(other) => Err(unexpected(other)),
        Err(error) => Err(rejection(&state, None, error)),
    }
}

// ---- service desk tickets -------------------------------------------------------------------

/// Book a desk ticket of a service level
///
/// The earliest free slot that starts at or after now (log time) and ends by now + the
/// level's deadline, or a refusal at once: 409 `sla_unavailable` with
/// `details.earliest_start`, the start of the earliest free slot; nothing is created.
/// With `"hold": true` the ticket is only validated: the slot is held until
/// `hold_expires_at` and becomes the ticket on `POST .../confirm`.
#[utoipa::path(post, path = "/v1/desks/{desk_id}/tickets", tag = "desks", request_body = DeskTicketBody,
    params(("desk_id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Up to 64 characters")),
    responses((status = 201, description = "A slot that meets the level's deadline; `Location` is the ticket", body = DeskTicketResponse), (status = 400, description = "Unknown level (`details.field` = `level`)", body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "sla_unavailable with details.earliest_start", body = ErrorBody), (status = 422, description = "idempotency_key_reused: the Idempotency-Key already answered another request", body = ErrorBody)),
    security(("user_token" = [])))]
pub(crate) async fn create_desk_ticket(
    State(state): State<AppState>,
    UserId(user): UserId,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(desk_id): ApiPath<String>,
    ApiJson(body): ApiJson<DeskTicketBody>,
) -> Result<Response, AppError> {
    let desk = DeskId::parse(&desk_id).ok_or_else(|| AppError::not_found(NotFound::Desk))?;
    let level = validate::required_text("level", &body.level, &state.config().engine)?;
    {
        let model = state.model_of(desk);
        let record = model
            .desk(desk)
            .ok_or_else(|| AppError::not_found(NotFound::Desk))?;
        if !record
            .spec
            .levels
            .iter()
            .any(|candidate| candidate.name == level)
        {
            return Err(
                AppError::field("level", format!("desk {desk} has no level {level:?}"))
                    .because(Reason::LevelNotFound),
            );
        }
    }
    let outcome = submit(
        &state,
        key,
        Command::CreateDeskTicket {
            user: user.into(),
            desk,
            level,
            hold_only: body.hold.unwrap_or(false),
        },
    )
    .await?;
    match &outcome.result {
        Ok(Reply::DeskTicketCreated(view)) => {
            let model = state.model_of(desk);
            let status = if view.hold_expires_at_ms.is_some() {
                "held"
            } else {
                "confirmed"
            };
            let body = views::desk_ticket_response(model.desk(view.desk), view, status);
            Ok(with_location(
                answer(StatusCode::CREATED, Some(outcome.offset), Json(body)),
                &format!("/v1/desks/{}/tickets/{}", view.desk, view.ticket),
            ))
        }
        Ok(other) => Err(unexpected(other)),
        Err(error) => Err(rejection(&state, None, error)),
    }
}

/// Allocate a validated desk ticket
///
/// Turns a held (`"hold": true`) ticket into the ticket, keeping its slot. Another
/// user's ticket, or one under another desk, is 404; an expired hold is 404 too.
#[utoipa::path(post, path = "/v1/desks/{desk_id}/tickets/{ticket_id}/confirm", tag = "desks",
    params(("desk_id" = String, Path), ("ticket_id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Up to 64 characters")),
    responses((status = 200, description = "Confirmed", body = DeskTicketResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "conflict: already allocated", body = ErrorBody), (status = 422, description = "idempotency_key_reused: the Idempotency-Key already answered another request", body = ErrorBody)),
    security(("user_token" = [])))]
pub(crate) async fn confirm_desk_ticket(
    State(state): State<AppState>,
    UserId(user): UserId,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath((desk_id, ticket_id)): ApiPath<(String, String)>,
) -> Result<Response, AppError> {
    let (desk, ticket) = own_desk_ticket(&state, &user, &desk_id, &ticket_id)?;
    let outcome = submit(
        &state,
        key,
        Command::ConfirmDeskTicket {
            user: user.into(),
            desk,
            ticket,
        },
    )
    .await?;
    match &outcome.result {
        Ok(Reply::DeskTicketConfirmed(view)) => {
            let model = state.model_of(ticket);
            Ok(answer(
                StatusCode::OK,
                Some(outcome.offset),
                Json(views::desk_ticket_response(
                    model.desk(view.desk),
                    view,
                    "confirmed",
                )),
            ))
        }
        Ok(other) => Err(unexpected(other)),
        Err(error) => Err(rejection(&state, None, error)),
    }
}

/// A desk ticket
///
/// The user's own ticket, with its status (`held`, `confirmed`, `canceled`, `expired`).
/// Another user's is 404.
#[utoipa::path(get, path = "/v1/desks/{desk_id}/tickets/{ticket_id}", tag = "desks", params(("desk_id" = String, Path), ("ticket_id" = String, Path)),
    responses((status = 200, description = "The ticket", body = DeskTicketResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("user_token" = [])))]
pub(crate) async fn get_desk_ticket(
    State(state): State<AppState>,
    UserId(user): UserId,
    ApiPath((desk_id, ticket_id)): ApiPath<(String, String)>,
) -> Result<Response, AppError> {
    let (_, ticket) = own_desk_ticket(&state, &user, &desk_id, &ticket_id)?;
    let model = state.model_of(ticket);
    let record = model
        .desk_ticket(ticket)
        .ok_or_else(|| AppError::not_found(NotFound::DeskTicket))?;
    Ok(answer(
        StatusCode::OK,
        model.applied_offset,
        Json(views::current_desk_ticket(&model, record)),
    ))
}

/// Cancel a desk ticket
///
/// Cancels the user's own ticket (held or allocated); its slot is free again at once.
#[utoipa::path(delete, path = "/v1/desks/{desk_id}/tickets/{ticket_id}", tag = "desks",
    params(("desk_id" = String, Path), ("ticket_id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Up to 64 characters")),
    responses((status = 200, description = "Canceled: the slot is free again", body = DeskTicketResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, description = "idempotency_key_reused: the Idempotency-Key already answered another request", body = ErrorBody)),
    security(("user_token" = [])))]
pub(crate) async fn cancel_desk_ticket(
    State(state): State<AppState>,
    UserId(user): UserId,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath((desk_id, ticket_id)): ApiPath<(String, String)>,
) -> Result<Response, AppError> {
    let (desk, ticket) = own_desk_ticket(&state, &user, &desk_id, &ticket_id)?;
    let outcome = submit(
        &state,
        key,
        Command::CancelDeskTicket {
            user: user.into(),
            desk,
            ticket,
        },
    )
    .await?;
    match &outcome.result {
        Ok(Reply::DeskTicketCanceled { ticket, .. }) => {
            let model = state.model_of(*ticket);
            let record = model.desk_ticket(*ticket).ok_or_else(|| {
                AppError::internal("a canceled desk ticket is missing from the read model")
            })?;
            let mut body = views::current_desk_ticket(&model, record);
            body.status = "canceled".into();
            Ok(answer(StatusCode::OK, Some(outcome.offset), Json(body)))
        }
        Ok(other) => Err(unexpected(other)),
        Err(error) => Err(rejection(&state, None, error)),
    }
}
