//! Public reads, answered from the read model: no token, no log.

use super::catalog;
use crate::api::*;
use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
use crate::read_model::EventFilter;
use crate::state::AppState;
use crate::times;
use crate::views::{self, answer, answer_merged};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use engine::{EventId, NotFound};

pub(crate) const PER_PAGE_MAX: u32 = 100;
pub(crate) const PER_PAGE_DEFAULT: u32 = 20;
/// The longest search text accepted, in characters (as the contract and JSON Schema's
/// `maxLength` count).
pub(crate) const QUERY_CHARS_MAX: usize = 256;

#[utoipa::path(get, path = "/v1/cities", tag = "public",
    responses((status = 200, description = "Cities with events", body = CitiesResponse)))]
pub(crate) async fn cities(State(state): State<AppState>) -> Response {
    let models = state.models();
    let mut merged: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for model in &models {
        for (city, country, events) in model.cities() {
            *merged.entry((city, country)).or_default() += events;
        }
    }
    let cities = merged
        .into_iter()
        .map(|((city, country), events)| CityEntry {
            city,
            country,
            events,
        })
        .collect();
    answer_merged(StatusCode::OK, &models, Json(CitiesResponse { cities }))
}

#[utoipa::path(get, path = "/v1/events", tag = "public", params(EventsQuery),
    responses((status = 200, description = "A page of events", body = EventsResponse), (status = 400, body = ErrorBody)))]
pub(crate) async fn events(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Response, AppError> {
    let page = query.page.unwrap_or(1);
    if page == 0 {
        return Err(AppError::field("page", "page starts at 1"));
    }
    let per_page = query.per_page.unwrap_or(PER_PAGE_DEFAULT);
    if per_page == 0 || per_page > PER_PAGE_MAX {
        return Err(AppError::field(
            "per_page",
            format!("per_page must be from 1 to {PER_PAGE_MAX}"),
        ));
    }
    for (field, value) in [
        ("q", &query.q),
        ("city", &query.city),
        ("country", &query.country),
        ("venue", &query.venue),
    ] {
        if value
            .as_ref()
            .is_some_and(|value| value.chars().count() > QUERY_CHARS_MAX)
        {
            return Err(AppError::field(
                field,
                format!("{field} is longer than {QUERY_CHARS_MAX} characters"),
            ));
        }
    }
    let near = catalog::near(
        query.lat.as_deref(),
        query.lng.as_deref(),
        query.radius_km.as_deref(),
    )?;
    let postal_code = catalog::postal_code(query.postal_code.as_deref())?;
    let sort = catalog::sort_keys(query.sort.as_deref(), catalog::SortKey::Date, near)?;
    let filter = EventFilter {
        city: query.city,
        country: query.country,
        venue: query.venue,
        words: Vec::new(),
        from_ms: query
            .from
            .as_deref()
            .map(|from| times::parse("from", from))
            .transpose()?,
        to_ms: query
            .to
            .as_deref()
            .map(|to| times::parse("to", to))
            .transpose()?,
        tenant: None,
        include_canceled: query.include_canceled.unwrap_or(false),
    };
    // Built (the first time) before the models' locks are taken: the shard followers
    // are not held back while it is.
    state.prepare_search()?;
    let models = state.models();
    let refs: Vec<&crate::read_model::ReadModel> = models.iter().map(|model| &**model).collect();
    let control = &state.shared.control;
    let catalog = control.catalog();
    let q = query.q.as_deref().filter(|q| !q.trim().is_empty());
    // Each shard's log time, as its engine decides sales windows; never this machine's
    // clock.
    let (events, total, did_you_mean) = if near.is_none() && postal_code.is_none() {
        // Words (with typos and prefixes), filters and order: the search index's
        // (`crate::search`), which ranks only the page.
        let found = state
            .shared
            .search
            .event_page(
                &crate::search::EventQuery {
                    words: q,
                    filter: &filter,
                    sort: &sort,
                    page,
                    per_page,
                },
                &refs,
                &catalog,
                &control.search_changes,
            )
            .map_err(|error| AppError::internal(format!("the search index: {error}")))?;
        let page: Vec<(EventId, Option<f64>)> =
            found.events.iter().map(|&event| (event, None)).collect();
        let events = catalog::event_summaries(&refs, &catalog, &page);
        (events, found.total, found.did_you_mean)
    } else {
        // By place: the venues select first; `q` is the search index's.
        let (text, did_you_mean) = match q {
            Some(q) => {
                let matched = state
                    .shared
                    .search
                    .events(q, &refs, &catalog, &control.search_changes)
                    .map_err(|error| AppError::internal(format!("the search index: {error}")))?;
                (Some(matched.found), matched.did_you_mean)
            }
            None => (None, None),
        };
        let search = catalog::EventSearch {
            filter,
            text,
            near,
            postal_code,
            sort,
        };
        let (events, total) = catalog::search_events(&refs, &catalog, &search, page, per_page);
        (events, total, did_you_mean)
    };
    drop(catalog);
    Ok(answer_merged(
        StatusCode::OK,
        &models,
        Json(EventsResponse {
            events,
            page,
            per_page,
            total,
            did_you_mean,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/venues", tag = "public", params(VenuesQuery),
    responses((status = 200, description = "Venues with their events count", body = VenuesResponse)))]
pub(crate) async fn venues(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<VenuesQuery>,
) -> Response {
    let models = state.models();
    let mut merged: std::collections::BTreeMap<(String, String, String), u64> = Default::default();
    for model in &models {
        for (venue, city, country, events) in model.venues(query.city.as_deref()) {
            *merged.entry((venue, city, country)).or_default() += events;
        }
    }
    let venues = merged
        .into_iter()
        .map(|((venue, city, country), events)| VenueEntry {
            venue,
            city,
            country,
            events,
        })
        .collect();
    answer_merged(StatusCode::OK, &models, Json(VenuesResponse { venues }))
}

#[utoipa::path(get, path = "/v1/events/{event_id}", tag = "public", params(("event_id" = String, Path, description = "ev_<n>")),
    responses((status = 200, description = "The event with availability per category", body = EventDetail), (status = 404, body = ErrorBody)))]
pub(crate) async fn event(
    State(state): State<AppState>,
    ApiPath(event_id): ApiPath<String>,
) -> Result<Response, AppError> {
    let id = EventId::parse(&event_id).ok_or_else(|| AppError::not_found(NotFound::Event))?;
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

#[utoipa::path(get, path = "/v1/events/{event_id}/seats", tag = "public", params(("event_id" = String, Path)),
    responses((status = 200, description = "Seat map: sections, rows, seats with status", body = SeatMap), (status = 404, body = ErrorBody)))]
pub(crate) async fn seats(
    State(state): State<AppState>,
    ApiPath(event_id): ApiPath<String>,
) -> Result<Response, AppError> {
    let id = EventId::parse(&event_id).ok_or_else(|| AppError::not_found(NotFound::Event))?;
    let model = state.model_of(id);
    let event = model
        .event(id)
        .ok_or_else(|| AppError::not_found(NotFound::Event))?;
    Ok(answer(
        StatusCode::OK,
        model.applied_offset,
        Json(views::seat_map(event)),
    ))
}

#[utoipa::path(get, path = "/v1/events/{event_id}/draw", tag = "public", params(("event_id" = String, Path)),
    responses((status = 200, description = "The arrival window's draw: commitment, seed once revealed (or the fallback and its derivation), entries by id with their places", body = DrawResponse),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn draw(
    State(state): State<AppState>,
    ApiPath(event_id): ApiPath<String>,
) -> Result<Response, AppError> {
    let id = EventId::parse(&event_id).ok_or_else(|| AppError::not_found(NotFound::Event))?;
    let model = state.model_of(id);
    let event = model
        .event(id)
        .ok_or_else(|| AppError::not_found(NotFound::Event))?;
    let draw = views::no_draw_unless(event.draw.as_ref())?;
    Ok(answer(
        StatusCode::OK,
        model.applied_offset,
        Json(views::draw(event, draw)),
    ))
}
