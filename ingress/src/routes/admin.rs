//! Tenant administration: events (create, patch, cancel), check-in, attendees, desks.
//! Every admin sees only its own tenant's events: another tenant's id is 404.

use super::{rejection, submit, unexpected, with_location};
use crate::api::*;
use crate::error::{AppError, ErrorBody, Reason};
use crate::extract::{ApiJson, ApiPath, IdempotencyKey, TenantAdmin};
use crate::read_model::EventFilter;
use crate::state::AppState;
use crate::validate;
use crate::views::{self, answer};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use engine::{Command, DeskId, EventId, NotFound, Reply};

/// The tenant's event, or 404 (unknown, unparsable or another tenant's).
fn tenant_event(state: &AppState, tenant: &str, event_id: &str) -> Result<EventId, AppError> {
    let id = EventId::parse(event_id).ok_or_else(|| AppError::not_found(NotFound::Event))?;
    let model = state.model_of(id);
    match model.event(id) {
        Some(event) if event.tenant == tenant => Ok(id),
        _ => Err(AppError::not_found(NotFound::Event)),
    }
}

#[utoipa::path(post, path = "/v1/admin/events", tag = "admin", request_body = CreateEventBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Up to 64 characters")),
    responses((status = 201, description = "Created", body = EventCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, description = "idempotency_key_reused: the Idempotency-Key already answered another request", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn create_event(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(mut body): ApiJson<CreateEventBody>,
) -> Result<Response, AppError> {
    // From a venue's hall: its current chart as the seating (`routes::catalog`).
    let listing = super::catalog::from_hall(&state, &tenant, &mut body)?;
    let draw = validate::draw_spec(&body)?;
    let terms = validate::event_terms(&body, &state.config().currency_default)?;
    let spec = validate::event_spec(body, &state.config().engine)?;
    let command = match (draw, terms) {
        (draw, Some(terms)) => Command::CreateEventWithTerms {
            tenant: tenant.clone(),
            spec: Box::new(spec),
            draw: draw.map(Box::new),
            terms: Box::new(terms),
        },
        (Some(draw), None) => Command::CreateEventWithDraw {
            tenant: tenant.clone(),
            spec: Box::new(spec),
            draw: Box::new(draw),
        },
        (None, None) => Command::CreateEvent {
            tenant: tenant.clone(),
            spec: Box::new(spec),
        },
    };
    let outcome = submit(&state, key, command).await?;
    match &outcome.result {
        Ok(Reply::EventCreated { event, .. }) => {
            if let Some(listing) = listing {
                super::catalog::record_listing(&state, &tenant, *event, listing).await?;
            }
            let response = answer(
                StatusCode::CREATED,
                Some(outcome.offset),
                Json(EventCreated {
                    event_id: event.to_string(),
                }),
            );
            Ok(with_location(response, &format!("/v1/events/{event}")))
        }
        Ok(other) => Err(unexpected(other)),
        Err(error) => Err(rejection(&state, None, error)),
    }
}

#[utoipa::path(get, path = "/v1/admin/events", tag = "admin",
    responses((status = 200, description = "This tenant's events, canceled ones included", body = AdminEventsResponse), (status = 401, body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn list_events(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
) -> Response {
    let filter = EventFilter {
        tenant: Some(tenant),
        include_canceled: true,
        ..EventFilter::default()
    };
    let models = state.models();
    // Each shard's log time, as its engine decides sales windows; never this machine's
    // clock.
    let (events, _) = views::search_all(
        &models,
        &filter,
        crate::read_model::EventSort::Date,
        1,
        u32::MAX,
    );
    views::answer_merged(
        StatusCode::OK,
        &models,
        Json(AdminEventsResponse { events }),
    )
}

#[utoipa::path(get, path = "/v1/admin/events/{event_id}", tag = "admin", params(("event_id" = String, Path)),
    responses((status = 200, description = "The event", body = EventDetail), (status = 404, body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn get_event(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    ApiPath(event_id): ApiPath<String>,
) -> Result<Response, AppError> {
    let id = tenant_event(&state, &tenant, &event_id)?;
    let model = state.model_of(id);
    let event = model
        .event(id)
        .ok_or_else(|| AppError::not_found(NotFound::Event))?;
    Ok(answer(
        StatusCode::OK,
        model.applied_offset,
        Json(views::event_detail(
            event,
            model.time_ms,
            &state.config().currency_default,
        )),
    ))
}

#[utoipa::path(patch, path = "/v1/admin/events/{event_id}", tag = "admin", request_body = PatchEventBody,
    params(("event_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "The updated event", body = EventDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, description = "idempotency_key_reused: the Idempotency-Key already answered another request", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn patch_event(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(event_id): ApiPath<String>,
    ApiJson(body): ApiJson<PatchEventBody>,
) -> Result<Response, AppError> {
    let id = tenant_event(&state, &tenant, &event_id)?;
    let current = state
        .model_of(id)
        .event(id)
        .map(|event| event.spec.clone())
        .ok_or_else(|| AppError::not_found(NotFound::Event))?;
    let patch = validate::event_patch(body, &current, &state.config().engine)?;
    let outcome = submit(
        &state,
        key,
        Command::UpdateEvent {
            tenant,
            event: id,
            patch: Box::new(patch),
        },
    )
    .await?;
    match &outcome.result {
        Ok(Reply::EventUpdated { event, .. }) => {
            let model = state.model_of(*event);
            let event = model.event(*event).ok_or_else(|| {
                AppError::internal("an updated event is missing from the read model")
            })?;
            Ok(answer(
                StatusCode::OK,
                Some(outcome.offset),
                Json(views::event_detail(
                    event,
                    model.time_ms,
                    &state.config().currency_default,
                )),
            ))
        }
        Ok(other) => Err(unexpected(other)),
        Err(error) => Err(rejection(&state, Some(id), error)),
    }
}

#[utoipa::path(delete, path = "/v1/admin/events/{event_id}", tag = "admin",
    params(("event_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "Canceled: holds released, bookings canceled, waitlist ended", body = EventCanceledResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, description = "idempotency_key_reused: the Idempotency-Key already answered another request", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn cancel_event(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(event_id): ApiPath<String>,
) -> Result<Response, AppError> {
    let id = tenant_event(&state, &tenant, &event_id)?;
    let outcome = submit(&state, key, Command::CancelEvent { tenant, event: id }).await?;
    match &outcome.result {
        Ok(Reply::EventCanceled {
            event,
            released_holds,
            canceled_bookings,
            ended_waiters,
        }) => Ok(answer(
            StatusCode::OK,
            Some(outcome.offset),
            Json(EventCanceledResponse {
                event_id: event.to_string(),
                status: "canceled".into(),
                released_holds: released_holds.len() as u64,
                canceled_bookings: canceled_bookings.len() as u64,
                ended_waitlist_entries: ended_waiters.len() as u64,
            }),
        )),
        Ok(other) => Err(unexpected(other)),
        Err(error) => Err(rejection(&state, Some(id), error)),
    }
}

#[utoipa::path(post, path = "/v1/admin/events/{event_id}/checkin", tag = "admin", request_body = CheckinBody,
    params(("event_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "The ticket is now used", body = CheckinResponse), (status = 404, description = "Unknown or forged code", body = ErrorBody), (status = 409, description = "already_used", body = ErrorBody), (status = 422, description = "idempotency_key_reused: the Idempotency-Key already answered another request", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn checkin(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(event_id): ApiPath<String>,
    ApiJson(body): ApiJson<CheckinBody>,
) -> Result<Response, AppError> {
    let id = tenant_event(&state, &tenant, &event_id)?;
    let code = validate::required_text("code", &body.code, &state.config().engine)?;
    // A forged code, or one of another event, never reaches the log.
    let ticket = state
        .ticket_mac()
        .verify(&code)
        .ok_or_else(|| AppError::not_found(NotFound::Ticket))?;
    if state
        .model_of(ticket.booking)
        .booking(ticket.booking)
        .is_none_or(|booking| booking.view.event != id)
    {
        return Err(AppError::not_found(NotFound::Ticket));
    }
    let outcome = submit(
        &state,
        key,
        Command::CheckInTicket {
            tenant,
            event: id,
            ticket,
        },
    )
    .await?;
    match &outcome.result {
        Ok(Reply::CheckedIn { event, ticket }) => Ok(answer(
            StatusCode::OK,
            Some(outcome.offset),
            Json(CheckinResponse {
                event_id: event.to_string(),
                ticket_id: ticket.to_string(),
                status: "used".into(),
            }),
        )),
        Ok(other) => Err(unexpected(other)),
        Err(error) => Err(rejection(&state, Some(id), error)),
    }
}

#[utoipa::path(get, path = "/v1/admin/events/{event_id}/attendees", tag = "admin", params(("event_id" = String, Path)),
    responses(
        (status = 200, description = "Bookings of the event (JSON, or CSV with Accept: text/csv)", body = AttendeesResponse, content_type = "application/json"),
        (status = 200, description = "CSV", body = String, content_type = "text/csv"),
        (status = 404, body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn attendees(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    headers: HeaderMap,
    ApiPath(event_id): ApiPath<String>,
) -> Result<Response, AppError> {
    let id = tenant_event(&state, &tenant, &event_id)?;
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.to_ascii_lowercase().contains("text/csv"));
    let model = state.model_of(id);
    let event = model
        .event(id)
        .ok_or_else(|| AppError::not_found(NotFound::Event))?;
    let mut attendees = views::attendees(&model, event, |hold, payment_ref| {
        state
            .shared
            .control
            .refund_of(hold)
            .filter(|refund| refund.payment_id == payment_ref)
            .and_then(|refund| refund.refund_id)
    });
    let applied_offset = model.applied_offset;
    // Not holding the read model (the follower's writes) across the store's reads.
    drop(model);
    resolve_attendees(&state, &mut attendees)?;
    if wants_csv {
        let mut response = answer(
            StatusCode::OK,
            applied_offset,
            views::attendees_csv(&attendees),
        );
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        let disposition = format!("attachment; filename=\"attendees-{id}.csv\"");
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
        return Ok(response);
    }
    Ok(answer(
        StatusCode::OK,
        applied_offset,
        Json(AttendeesResponse {
            event_id: id.to_string(),
            attendees,
        }),
    ))
}

/// Fills in each attendee's user id from the personal-data store (`personal_data`):
/// `known`, `erased` (its key destroyed by a `UserErased` record) or `unknown`.
fn resolve_attendees(state: &AppState, attendees: &mut [Attendee]) -> Result<(), AppError> {
    use crate::personal_data::Identity;
    let shared = &state.shared;
    for attendee in attendees {
        if shared.control.is_erased(&attendee.pseudonym) {
            attendee.identity = "erased".into();
            continue;
        }
        let identity = shared
            .personal
            .resolve(&attendee.pseudonym)
            .map_err(|error| {
                tracing::error!(%error, "the personal-data store failed");
                AppError::unavailable(
                    Reason::PersonalDataUnavailable,
                    "the personal-data store cannot be read; try again",
                )
            })?;
        if let Identity::Known(user) = identity {
            attendee.user = Some(user);
            attendee.identity = "known".into();
        }
    }
    Ok(())
}

// ---- service desks ------------------------------------------------------------------------

/// Create a service desk
///
/// A desk of the admin's tenant: `agents` parallel agents, slots of `slot_minutes`
/// (default 1), service levels with their deadlines (default gold 120, silver 240,
/// bronze 480 minutes) and a booking horizon (default 8 hours). Every ticket takes one
/// slot of one agent.
#[utoipa::path(post, path = "/v1/admin/desks", tag = "desks", request_body = CreateDeskBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Up to 64 characters")),
    responses((status = 201, description = "Created; `Location` is the desk", body = DeskCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 422, description = "limit_exceeded (desks); idempotency_key_reused (the Idempotency-Key already answered another request)", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn create_desk(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<CreateDeskBody>,
) -> Result<Response, AppError> {
    let spec = validate::desk_spec(body, &state.config().engine, state.config().desk_hold_ttl)?;
    let outcome = submit(
        &state,
        key,
        Command::CreateDesk {
            tenant,
            spec: Box::new(spec),
        },
    )
    .await?;
    match &outcome.result {
        Ok(Reply::DeskCreated { desk, .. }) => {
            let response = answer(
                StatusCode::CREATED,
                Some(outcome.offset),
                Json(DeskCreated {
                    desk_id: desk.to_string(),
                }),
            );
            Ok(with_location(response, &format!("/v1/admin/desks/{desk}")))
        }
        Ok(other) => Err(unexpected(other)),
        Err(error) => Err(rejection(&state, None, error)),
    }
}

/// A desk and its load
///
/// The desk's settings, its live tickets, the busy agents per upcoming slot, and per
/// service level the slots used and free in the window a ticket of that level asked now
/// could get. Another tenant's desk is 404.
#[utoipa::path(get, path = "/v1/admin/desks/{desk_id}", tag = "desks", params(("desk_id" = String, Path)),
    responses((status = 200, description = "The desk and its load", body = DeskLoad), (status = 401, body = ErrorBody), (status = 404, description = "Unknown or another tenant's", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn desk(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    ApiPath(desk_id): ApiPath<String>,
) -> Result<Response, AppError> {
    let id = DeskId::parse(&desk_id).ok_or_else(|| AppError::not_found(NotFound::Desk))?;
    let model = state.model_of(id);
    let desk = model
        .desk(id)
        .filter(|desk| desk.tenant == tenant)
        .ok_or_else(|| AppError::not_found(NotFound::Desk))?;
    Ok(answer(
        StatusCode::OK,
        model.applied_offset,
        Json(views::desk_load(desk, model.time_ms)),
    ))
}

#[utoipa::path(post, path = "/v1/admin/events/{event_id}/draw", tag = "admin", request_body = OpenWindowBody,
    params(("event_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "The window is open: the event's draw, pending", body = DrawResponse),
        (status = 400, description = "invalid_field; invalid: the event already has an arrival window, or its sales_open_at is not in the future", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, description = "idempotency_key_reused: the Idempotency-Key already answered another request", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn open_arrival_window(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(event_id): ApiPath<String>,
    ApiJson(body): ApiJson<OpenWindowBody>,
) -> Result<Response, AppError> {
    let id = tenant_event(&state, &tenant, &event_id)?;
    let has_sales_open = state
        .model_of(id)
        .event(id)
        .is_some_and(|event| event.spec.sales_open_at_ms.is_some());
    let draw = validate::draw_fields(
        Some(body.arrival_window_seconds),
        Some(&body.draw_commitment),
        has_sales_open,
    )?
    .expect("both fields are given");
    let command = Command::OpenArrivalWindow {
        tenant,
        event: id,
        draw: Box::new(draw),
    };
    let outcome = submit(&state, key, command).await?;
    match &outcome.result {
        Ok(Reply::ArrivalWindowOpened { event }) => {
            let model = state.model_of(*event);
            let record = model
                .event(*event)
                .ok_or_else(|| AppError::not_found(NotFound::Event))?;
            let body = views::draw(record, views::no_draw_unless(record.draw.as_ref())?);
            Ok(with_location(
                answer(StatusCode::CREATED, Some(outcome.offset), Json(body)),
                &format!("/v1/events/{event}/draw"),
            ))
        }
        Ok(other) => Err(unexpected(other)),
        Err(error) => Err(rejection(&state, Some(id), error)),
    }
}

#[utoipa::path(post, path = "/v1/admin/events/{event_id}/draw/reveal", tag = "admin", request_body = RevealSeedBody,
    params(("event_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "The seed matched the commitment: the draw will use it", body = DrawResponse),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, description = "idempotency_key_reused: the Idempotency-Key already answered another request", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn reveal_draw_seed(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(event_id): ApiPath<String>,
    ApiJson(body): ApiJson<RevealSeedBody>,
) -> Result<Response, AppError> {
    let id = tenant_event(&state, &tenant, &event_id)?;
    let commitment = {
        let model = state.model_of(id);
        let event = model
            .event(id)
            .ok_or_else(|| AppError::not_found(NotFound::Event))?;
        views::no_draw_unless(event.draw.as_ref())?.commitment
    };
    let seed = validate::draw_seed(&body.seed, &commitment)?;
    let command = Command::RevealDrawSeed {
        tenant,
        event: id,
        seed: Box::new(seed),
    };
    let outcome = submit(&state, key, command).await?;
    match &outcome.result {
        Ok(Reply::DrawSeedRevealed { event, .. }) => {
            let model = state.model_of(*event);
            let record = model
                .event(*event)
                .ok_or_else(|| AppError::not_found(NotFound::Event))?;
            let body = views::draw(record, views::no_draw_unless(record.draw.as_ref())?);
            Ok(answer(StatusCode::OK, Some(outcome.offset), Json(body)))
        }
        Ok(other) => Err(unexpected(other)),
        Err(error) => Err(rejection(&state, Some(id), error)),
    }
}
