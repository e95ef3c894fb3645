//! Venues, titles and discovery (issue "Discovery like a real box office"): a tenant's
//! admin defines venues (address, coordinates, halls with seat charts) and titles through
//! the control log (`crate::catalog`); an event made from a venue's hall takes the hall's
//! current chart as its seating and is listed under the venue, hall and title. The public
//! reads (`GET /v1/titles`, `GET /v1/titles/{id}/shows`, and `GET /v1/events`'s places,
//! distances and sort orders) answer from the read models, the catalog and the search
//! index only.

use crate::api::*;
use crate::catalog::{
    postal_key, Catalog, Skipped, Venue, CHART_ROWS_MAX, CHART_SECTIONS_MAX, HALLS_PER_VENUE_MAX,
};
use crate::control::CatalogError;
use crate::error::{AppError, ErrorBody, Reason};
use crate::extract::{ApiJson, ApiPath, ApiQuery, IdempotencyKey, TenantAdmin};
use crate::read_model::{EventFilter, EventRecord, ReadModel};
use crate::state::AppState;
use crate::validate;
use crate::views::{self, answer_merged};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::catalog::{
    Chart, ChartRow, ChartSection, HallRecord, Listing, TitleRecord, VenueRecord,
};
use engine::control::ControlRecord;
use engine::{EventId, NotFound};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

/// The largest search radius.
pub(crate) const RADIUS_KM_MAX: f64 = 1000.0;
/// The mean Earth radius (IUGG), for great-circle distances.
const EARTH_RADIUS_KM: f64 = 6371.0088;
/// The longest postal code, in characters.
const POSTAL_CODE_CHARS_MAX: usize = 16;

// ---- places and orders -------------------------------------------------------------------

/// A search's centre, and how far from it (none: any distance, only sorted by it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Near {
    pub(crate) lat: f64,
    pub(crate) lng: f64,
    pub(crate) radius_km: Option<f64>,
}

fn degrees(field: &str, text: &str, max: f64) -> Result<f64, AppError> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite() && value.abs() <= max)
        .ok_or_else(|| {
            AppError::field(
                field,
                format!("{field} must be a number of degrees from -{max} to {max}"),
            )
        })
}

/// `lat`, `lng` and `radius_km` of a search, checked: both coordinates or neither, a
/// radius only with them, above 0 and at most [`RADIUS_KM_MAX`].
pub(crate) fn near(
    lat: Option<&str>,
    lng: Option<&str>,
    radius_km: Option<&str>,
) -> Result<Option<Near>, AppError> {
    let (lat, lng) = match (lat, lng) {
        (None, None) => {
            if radius_km.is_some() {
                return Err(AppError::field("radius_km", "radius_km needs lat and lng"));
            }
            return Ok(None);
        }
        (Some(_), None) => return Err(AppError::field("lng", "lng is required with lat")),
        (None, Some(_)) => return Err(AppError::field("lat", "lat is required with lng")),
        (Some(lat), Some(lng)) => (degrees("lat", lat, 90.0)?, degrees("lng", lng, 180.0)?),
    };
    let radius_km = radius_km
        .map(|text| {
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|radius| radius.is_finite() && *radius > 0.0 && *radius <= RADIUS_KM_MAX)
                .ok_or_else(|| {
                    AppError::field(
                        "radius_km",
                        format!("radius_km must be a number above 0 and at most {RADIUS_KM_MAX}"),
                    )
                })
        })
        .transpose()?;
    Ok(Some(Near {
        lat,
        lng,
        radius_km,
    }))
}

/// Great-circle distance (haversine), in kilometres.
pub(crate) fn distance_km(lat1: f64, lng1: f64, lat2: f64, lng2: f64) -> f64 {
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let d_phi = (lat2 - lat1).to_radians();
    let d_lambda = (lng2 - lng1).to_radians();
    let a = (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

fn microdeg(degrees: f64) -> i32 {
    (degrees * 1e6).round() as i32
}

fn from_microdeg(microdeg: i32) -> f64 {
    f64::from(microdeg) / 1e6
}

fn venue_point(venue: &Venue) -> (f64, f64) {
    (
        from_microdeg(venue.record.lat_microdeg),
        from_microdeg(venue.record.lng_microdeg),
    )
}

pub(crate) fn postal_code(text: Option<&str>) -> Result<Option<String>, AppError> {
    let Some(text) = text else { return Ok(None) };
    let key = postal_key(text);
    if key.is_empty()
        || key.chars().count() > POSTAL_CODE_CHARS_MAX
        || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(AppError::field(
            "postal_code",
            format!("postal_code must be 1 to {POSTAL_CODE_CHARS_MAX} letters, digits or dashes"),
        ));
    }
    Ok(Some(key))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SortKey {
    Date,
    Name,
    Distance,
}

/// `sort=` as a list of keys (`distance,date`); `distance` needs `lat`,`lng`.
pub(crate) fn sort_keys(
    text: Option<&str>,
    default: SortKey,
    near: Option<Near>,
) -> Result<Vec<SortKey>, AppError> {
    let Some(text) = text else {
        return Ok(vec![default]);
    };
    let mut keys = Vec::new();
    for word in text.split(',') {
        let key = match word.trim() {
            "date" => SortKey::Date,
            "name" => SortKey::Name,
            "distance" => SortKey::Distance,
            _ => {
                return Err(AppError::field(
                    "sort",
                    "sort must be date, name, distance or several of them, comma-separated",
                ))
            }
        };
        if keys.contains(&key) {
            return Err(AppError::field("sort", "sort names a key twice"));
        }
        if key == SortKey::Distance && near.is_none() {
            return Err(AppError::field("sort", "sort=distance needs lat and lng"));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// Page `page` (from 1) of `per_page` of `found` in `compare` order; and the total. Only
/// the items up to the page's end are sorted.
fn sort_page<T>(
    mut found: Vec<T>,
    page: u32,
    per_page: u32,
    compare: impl Fn(&T, &T) -> Ordering,
) -> (Vec<T>, u64) {
    let total = found.len() as u64;
    let start = (u64::from(page.max(1)) - 1).saturating_mul(u64::from(per_page));
    let start = usize::try_from(start).unwrap_or(usize::MAX);
    let end = start.saturating_add(per_page as usize);
    if end < found.len() {
        found.select_nth_unstable_by(end, &compare);
        found.truncate(end);
    }
    found.sort_unstable_by(&compare);
    let page = found.into_iter().skip(start).collect();
    (page, total)
}

// ---- events search -----------------------------------------------------------------------

/// `GET /v1/events`'s search beyond the read model's own filter.
pub(crate) struct EventSearch {
    pub(crate) filter: EventFilter,
    /// Events whose words match `q` (the search index's answer).
    pub(crate) text: Option<HashSet<EventId>>,
    pub(crate) near: Option<Near>,
    pub(crate) postal_code: Option<String>,
    pub(crate) sort: Vec<SortKey>,
}

struct Found<'a> {
    event: &'a EventRecord,
    distance_km: Option<f64>,
}

/// Names in case-insensitive order, without allocating (a sort compares many).
fn compare_names(a: &str, b: &str) -> Ordering {
    a.chars()
        .flat_map(char::to_lowercase)
        .cmp(b.chars().flat_map(char::to_lowercase))
}

/// The venues that pass the place filters, each with its distance.
fn places<'a>(
    catalog: &'a Catalog,
    near: Option<Near>,
    postal_code: Option<&str>,
) -> Vec<(&'a str, &'a str, Option<f64>)> {
    catalog
        .all_venues()
        .filter(|(_, _, venue)| postal_code.is_none_or(|code| venue.postal_key == code))
        .filter_map(|(tenant, id, venue)| match near {
            None => Some((tenant, id, None)),
            Some(near) => {
                let (lat, lng) = venue_point(venue);
                let distance = distance_km(near.lat, near.lng, lat, lng);
                (near.radius_km.is_none_or(|radius| distance <= radius)).then_some((
                    tenant,
                    id,
                    Some(distance),
                ))
            }
        })
        .collect()
}

/// Whether a listed event's venue passes the place filters; its distance.
fn place_of(
    catalog: &Catalog,
    event: EventId,
    near: Option<Near>,
    postal_code: Option<&str>,
) -> Option<Option<f64>> {
    if near.is_none() && postal_code.is_none() {
        return Some(None);
    }
    let venue = catalog.venue_of(event)?;
    if postal_code.is_some_and(|code| venue.postal_key != code) {
        return None;
    }
    match near {
        None => Some(None),
        Some(near) => {
            let (lat, lng) = venue_point(venue);
            let distance = distance_km(near.lat, near.lng, lat, lng);
            if near.radius_km.is_some_and(|radius| distance > radius) {
                return None;
            }
            Some(Some(distance))
        }
    }
}

fn compare_found(keys: &[SortKey], a: &Found<'_>, b: &Found<'_>) -> Ordering {
    for key in keys {
        let order = match key {
            SortKey::Date => a.event.spec.starts_at_ms.cmp(&b.event.spec.starts_at_ms),
            SortKey::Name => compare_names(&a.event.spec.name, &b.event.spec.name),
            SortKey::Distance => a
                .distance_km
                .unwrap_or(f64::INFINITY)
                .total_cmp(&b.distance_km.unwrap_or(f64::INFINITY)),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.event.id.cmp(&b.event.id)
}

/// Every shard's events a search by place selects (`near` or `postal_code`: the venues
/// select first, then only the events listed there), sorted and paged as one list; and
/// the total. A search without a place is the search index's
/// (`crate::search::SearchIndex::event_page`).
pub(crate) fn search_events(
    models: &[&ReadModel],
    catalog: &Catalog,
    search: &EventSearch,
    page: u32,
    per_page: u32,
) -> (Vec<EventSummary>, u64) {
    assert!(
        search.near.is_some() || search.postal_code.is_some(),
        "a search without a place is the search index's"
    );
    let count = models.len() as u32;
    let event_of = |id: EventId| models[engine::shard_of(id.into(), count) as usize].event(id);
    let found: Vec<Found<'_>> = places(catalog, search.near, search.postal_code.as_deref())
        .into_iter()
        .flat_map(|(tenant, venue, distance_km)| {
            catalog
                .events_at(tenant, venue)
                .map(move |event| (event, distance_km))
        })
        .filter(|(event, _)| search.text.as_ref().is_none_or(|ids| ids.contains(event)))
        .filter_map(|(event, distance_km)| {
            event_of(event)
                .filter(|event| search.filter.admits(event))
                .map(|event| Found { event, distance_km })
        })
        .collect();
    let (page, total) = sort_page(found, page, per_page, |a, b| {
        compare_found(&search.sort, a, b)
    });
    let page: Vec<(EventId, Option<f64>)> = page
        .iter()
        .map(|found| (found.event.id, found.distance_km))
        .collect();
    (event_summaries(models, catalog, &page), total)
}

/// The summaries of a page of events, each with its distance if searched by place (each
/// at its shard's log time), with their listing. An id the read models do not hold is a
/// bug (the index follows them) and is left out.
pub(crate) fn event_summaries(
    models: &[&ReadModel],
    catalog: &Catalog,
    page: &[(EventId, Option<f64>)],
) -> Vec<EventSummary> {
    let count = models.len() as u32;
    page.iter()
        .filter_map(|&(id, distance_km)| {
            let model = models[engine::shard_of(id.into(), count) as usize];
            let event = model.event(id);
            debug_assert!(
                event.is_some(),
                "event {id} is searched but not in its read model"
            );
            let mut summary = views::event_summary(event?, model.time_ms);
            if let Some((_, listing)) = catalog.listing(id) {
                summary.venue_id = Some(listing.venue.clone());
                summary.title_id = listing.title.clone();
            }
            summary.distance_km = distance_km.map(|km| (km * 1000.0).round() / 1000.0);
            Some(summary)
        })
        .collect()
}

// ---- venues --------------------------------------------------------------------------------

fn catalog_error(error: CatalogError) -> AppError {
    match error {
        CatalogError::NoControlLog => AppError::unavailable(
            Reason::NoControlLog,
            "this ingress has no control log, so it cannot record venues, titles or listings",
        ),
        CatalogError::TooMany(Skipped::TooManyVenues) => AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit_exceeded",
            Reason::VenuesPerTenantMax,
            format!(
                "a tenant may have at most {} venues",
                crate::catalog::VENUES_PER_TENANT_MAX
            ),
        ),
        CatalogError::TooMany(Skipped::TitleOfAnotherTenant) => {
            AppError::internal("a title id of another tenant was made")
        }
        CatalogError::TooMany(Skipped::TooManyTitles) => AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit_exceeded",
            Reason::TitlesPerTenantMax,
            format!(
                "a tenant may have at most {} titles",
                crate::catalog::TITLES_PER_TENANT_MAX
            ),
        ),
        CatalogError::Log(error) => {
            AppError::unavailable(Reason::LogNotWritable, format!("the control log: {error}"))
        }
    }
}

/// A new venue's or title's id: random, or, under an `Idempotency-Key`, derived from the
/// tenant and the key, so a retry names the same id and finds it made.
fn new_id(prefix: &str, tenant: &str, key: Option<&str>) -> String {
    let number = match key {
        None => rand::random::<u128>(),
        Some(key) => {
            let mut hasher = blake3::Hasher::new();
            for part in [prefix, tenant, key] {
                hasher.update(&(part.len() as u64).to_le_bytes());
                hasher.update(part.as_bytes());
            }
            let digest = hasher.finalize();
            u128::from_le_bytes(digest.as_bytes()[..16].try_into().expect("16 bytes"))
        }
    };
    format!("{prefix}_{number:032x}")
}

fn venue_not_found() -> AppError {
    AppError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        Reason::VenueNotFound,
        "venue not found",
    )
}

fn title_not_found() -> AppError {
    AppError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        Reason::TitleNotFound,
        "title not found",
    )
}

/// The error's `details.field` under `prefix` (a chart checked as an event's seating).
fn under(prefix: &str, mut error: AppError) -> AppError {
    if let Some(details) = error.details.as_mut() {
        if let Some(field) = details.get("field").and_then(|field| field.as_str()) {
            details["field"] = format!("{prefix}.{field}").into();
        }
    }
    error
}

/// A hall's chart, checked by the rules an event's inline seating is (section and row
/// names, seats, the engine's limits), plus the chart limits.
fn hall(
    index: usize,
    body: HallBody,
    limits: &engine::EngineConfig,
) -> Result<HallRecord, AppError> {
    let prefix = format!("halls[{index}]");
    let name = validate::text(&format!("{prefix}.name"), &body.name, true, limits)?;
    let sections = &body.seating.sections;
    let rows: usize = sections.iter().map(|section| section.rows.len()).sum();
    if sections.len() > CHART_SECTIONS_MAX || rows > CHART_ROWS_MAX {
        return Err(AppError::field(
            &format!("{prefix}.seating"),
            format!("a chart has at most {CHART_SECTIONS_MAX} sections and {CHART_ROWS_MAX} rows"),
        ));
    }
    let chart = Chart {
        sections: sections
            .iter()
            .map(|section| ChartSection {
                name: section.name.clone(),
                rows: section
                    .rows
                    .iter()
                    .map(|row| ChartRow {
                        label: row.label.clone(),
                        seats: row.seats,
                        category: row.category.clone(),
                    })
                    .collect(),
            })
            .collect(),
    };
    // The chart as an event's seating, each category priced 0: the same rules.
    let probe = CreateEventBody {
        name: "chart".into(),
        description: None,
        city: "-".into(),
        country: "-".into(),
        venue: "-".into(),
        venue_id: None,
        hall: None,
        title_id: None,
        starts_at: "2030-01-01T00:00:00Z".into(),
        ends_at: None,
        sales_open_at: None,
        sales_close_at: None,
        hold_ttl_seconds: None,
        max_seats_per_order: None,
        max_seats_per_user: None,
        waitlist_policy: None,
        categories: chart
            .categories()
            .into_iter()
            .map(|name| CategoryBody {
                name: name.to_string(),
                price_cents: 0,
            })
            .collect(),
        seating: Some(seating_of(&chart)),
        general_admission: None,
        arrival_window_seconds: None,
        draw_commitment: None,
        currency: None,
        cancellation: None,
    };
    validate::event_spec(probe, limits).map_err(|error| under(&prefix, error))?;
    Ok(HallRecord { name, chart })
}

fn seating_of(chart: &Chart) -> SeatingBody {
    SeatingBody {
        sections: chart
            .sections
            .iter()
            .map(|section| SectionBody {
                name: section.name.clone(),
                rows: section
                    .rows
                    .iter()
                    .map(|row| RowBody {
                        label: row.label.clone(),
                        seats: row.seats,
                        category: row.category.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn halls(
    bodies: Vec<HallBody>,
    limits: &engine::EngineConfig,
) -> Result<Vec<HallRecord>, AppError> {
    if bodies.is_empty() || bodies.len() > HALLS_PER_VENUE_MAX {
        return Err(AppError::field(
            "halls",
            format!("a venue has from 1 to {HALLS_PER_VENUE_MAX} halls"),
        ));
    }
    let mut records: Vec<HallRecord> = Vec::with_capacity(bodies.len());
    for (index, body) in bodies.into_iter().enumerate() {
        let record = hall(index, body, limits)?;
        if records.iter().any(|other| other.name == record.name) {
            return Err(AppError::field(
                &format!("halls[{index}].name"),
                format!("hall {:?} is named twice", record.name),
            ));
        }
        records.push(record);
    }
    Ok(records)
}

fn place_fields(
    record: &mut VenueRecord,
    latitude: Option<f64>,
    longitude: Option<f64>,
    postal: Option<&str>,
) -> Result<(), AppError> {
    if let Some(latitude) = latitude {
        if !latitude.is_finite() || latitude.abs() > 90.0 {
            return Err(AppError::field(
                "latitude",
                "latitude must be from -90 to 90",
            ));
        }
        record.lat_microdeg = microdeg(latitude);
    }
    if let Some(longitude) = longitude {
        if !longitude.is_finite() || longitude.abs() > 180.0 {
            return Err(AppError::field(
                "longitude",
                "longitude must be from -180 to 180",
            ));
        }
        record.lng_microdeg = microdeg(longitude);
    }
    if let Some(postal) = postal {
        record.postal_code = if postal.trim().is_empty() {
            String::new()
        } else {
            postal_code(Some(postal))?;
            postal.trim().to_string()
        };
    }
    Ok(())
}

/// A venue record must fit one control record, as every reader decodes it (the decoder's
/// limit counts the record's size in memory, not only its bytes); its halls are what
/// makes it large. A record past it would be skipped by every reader: refused here.
fn fits(tenant: &str, venue: &str, record: &VenueRecord) -> Result<(), AppError> {
    let encoded = engine::control::encode_control(&ControlRecord::VenueSaved {
        tenant: tenant.to_string(),
        venue: venue.to_string(),
        record: record.clone(),
    });
    if encoded.len() > engine::control::CONTROL_RECORD_BYTES_MAX
        || engine::control::decode_control(&encoded).is_err()
    {
        return Err(AppError::field(
            "halls",
            format!(
                "the venue's halls do not fit one control record ({} KiB as read): fewer or shorter rows, or fewer halls",
                engine::control::CONTROL_RECORD_BYTES_MAX / 1024
            ),
        ));
    }
    Ok(())
}

fn venue_response(id: &str, venue: &Venue) -> VenueResponse {
    let record = &venue.record;
    VenueResponse {
        venue_id: id.to_string(),
        name: record.name.clone(),
        address: record.address.clone(),
        city: record.city.clone(),
        country: record.country.clone(),
        postal_code: record.postal_code.clone(),
        latitude: from_microdeg(record.lat_microdeg),
        longitude: from_microdeg(record.lng_microdeg),
        halls: record
            .halls
            .iter()
            .map(|hall| {
                let version = venue
                    .current_chart(&hall.name)
                    .map_or(1, |(version, _)| version);
                HallResponse {
                    name: hall.name.clone(),
                    chart_version: version,
                    seats: hall.chart.seat_count(),
                    categories: hall
                        .chart
                        .categories()
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                    sections: hall
                        .chart
                        .sections
                        .iter()
                        .map(|section| ChartSectionResponse {
                            name: section.name.clone(),
                            rows: section
                                .rows
                                .iter()
                                .map(|row| ChartRowResponse {
                                    label: row.label.clone(),
                                    seats: row.seats,
                                    category: row.category.clone(),
                                })
                                .collect(),
                        })
                        .collect(),
                }
            })
            .collect(),
    }
}

fn tenant_venue(state: &AppState, tenant: &str, venue: &str) -> Result<VenueResponse, AppError> {
    let catalog = state.shared.control.catalog();
    catalog
        .venue(tenant, venue)
        .map(|found| venue_response(venue, found))
        .ok_or_else(venue_not_found)
}

#[utoipa::path(post, path = "/v1/admin/venues", tag = "admin", request_body = CreateVenueBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Up to 64 characters: a retry answers the venue made first")),
    responses((status = 201, description = "Created; each hall's chart is version 1", body = VenueResponse),
        (status = 400, description = "A field is invalid: details.field names it (a chart over the limits: halls[i].seating...)", body = ErrorBody),
        (status = 422, description = "The tenant has its most venues", body = ErrorBody),
        (status = 503, description = "The control log cannot be written", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn create_venue(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<CreateVenueBody>,
) -> Result<Response, AppError> {
    let limits = &state.config().engine;
    let mut record = VenueRecord {
        name: validate::text("name", &body.name, true, limits)?,
        address: validate::text(
            "address",
            body.address.as_deref().unwrap_or(""),
            false,
            limits,
        )?,
        city: validate::text("city", &body.city, true, limits)?,
        country: validate::text("country", &body.country, true, limits)?,
        postal_code: String::new(),
        lat_microdeg: 0,
        lng_microdeg: 0,
        halls: Vec::new(),
    };
    place_fields(
        &mut record,
        Some(body.latitude),
        Some(body.longitude),
        body.postal_code.as_deref(),
    )?;
    record.halls = halls(body.halls, limits)?;
    let venue = new_id("vn", &tenant, key.as_deref());
    if let Some(made) = state.shared.control.catalog().venue(&tenant, &venue) {
        // A retry: the first answer if the request is the same (the venue as it now is).
        if made.record != record {
            return Err(AppError::idempotency_key_reused());
        }
        let response = (StatusCode::CREATED, Json(venue_response(&venue, made))).into_response();
        return Ok(super::with_location(
            response,
            &format!("/v1/admin/venues/{venue}"),
        ));
    }
    fits(&tenant, &venue, &record)?;
    state
        .shared
        .control
        .save_catalog(
            ControlRecord::VenueSaved {
                tenant: tenant.clone(),
                venue: venue.clone(),
                record,
            },
            state.config().outcome_timeout,
        )
        .await
        .map_err(catalog_error)?;
    let made = tenant_venue(&state, &tenant, &venue)?;
    let response = (StatusCode::CREATED, Json(made)).into_response();
    Ok(super::with_location(
        response,
        &format!("/v1/admin/venues/{venue}"),
    ))
}

#[utoipa::path(get, path = "/v1/admin/venues", tag = "admin",
    responses((status = 200, description = "This tenant's venues", body = AdminVenuesResponse)),
    security(("admin_key" = [])))]
pub(crate) async fn list_venues(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
) -> Response {
    let catalog = state.shared.control.catalog();
    let venues = catalog
        .venues_of(&tenant)
        .map(|(id, venue)| venue_response(id, venue))
        .collect();
    Json(AdminVenuesResponse { venues }).into_response()
}

#[utoipa::path(get, path = "/v1/admin/venues/{venue_id}", tag = "admin", params(("venue_id" = String, Path)),
    responses((status = 200, description = "The venue", body = VenueResponse), (status = 404, description = "No such venue of this tenant", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn get_venue(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    ApiPath(venue): ApiPath<String>,
) -> Result<Response, AppError> {
    Ok(Json(tenant_venue(&state, &tenant, &venue)?).into_response())
}

#[utoipa::path(patch, path = "/v1/admin/venues/{venue_id}", tag = "admin", params(("venue_id" = String, Path)), request_body = PatchVenueBody,
    responses((status = 200, description = "The venue; a hall whose chart changed has the next chart version", body = VenueResponse),
        (status = 400, description = "A field is invalid, or the patch changes nothing", body = ErrorBody),
        (status = 404, description = "No such venue of this tenant", body = ErrorBody),
        (status = 503, description = "The control log cannot be written", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn patch_venue(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    ApiPath(venue): ApiPath<String>,
    ApiJson(body): ApiJson<PatchVenueBody>,
) -> Result<Response, AppError> {
    let limits = &state.config().engine;
    let mut record = state
        .shared
        .control
        .catalog()
        .venue(&tenant, &venue)
        .map(|found| found.record.clone())
        .ok_or_else(venue_not_found)?;
    let before = record.clone();
    for (field, value, target) in [
        ("name", &body.name, &mut record.name),
        ("city", &body.city, &mut record.city),
        ("country", &body.country, &mut record.country),
    ] {
        if let Some(value) = value {
            *target = validate::text(field, value, true, limits)?;
        }
    }
    if let Some(address) = &body.address {
        record.address = validate::text("address", address, false, limits)?;
    }
    place_fields(
        &mut record,
        body.latitude,
        body.longitude,
        body.postal_code.as_deref(),
    )?;
    if let Some(bodies) = body.halls {
        for changed in halls(bodies, limits)? {
            match record
                .halls
                .iter_mut()
                .find(|hall| hall.name == changed.name)
            {
                Some(hall) => *hall = changed,
                None => record.halls.push(changed),
            }
        }
        if record.halls.len() > HALLS_PER_VENUE_MAX {
            return Err(AppError::field(
                "halls",
                format!("a venue has at most {HALLS_PER_VENUE_MAX} halls"),
            ));
        }
    }
    if record == before {
        return Err(AppError::bad_request(
            Reason::EmptyPatch,
            "the patch changes nothing",
        ));
    }
    fits(&tenant, &venue, &record)?;
    state
        .shared
        .control
        .save_catalog(
            ControlRecord::VenueSaved {
                tenant: tenant.clone(),
                venue: venue.clone(),
                record,
            },
            state.config().outcome_timeout,
        )
        .await
        .map_err(catalog_error)?;
    Ok(Json(tenant_venue(&state, &tenant, &venue)?).into_response())
}

// ---- titles --------------------------------------------------------------------------------

fn title_response(id: &str, title: &TitleRecord) -> TitleResponse {
    TitleResponse {
        title_id: id.to_string(),
        name: title.name.clone(),
        kind: title.kind.clone(),
        description: title.description.clone(),
    }
}

#[utoipa::path(post, path = "/v1/admin/titles", tag = "admin", request_body = CreateTitleBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Up to 64 characters: a retry answers the title made first")),
    responses((status = 201, description = "Created", body = TitleResponse),
        (status = 400, description = "A field is invalid", body = ErrorBody),
        (status = 422, description = "The tenant has its most titles", body = ErrorBody),
        (status = 503, description = "The control log cannot be written", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn create_title(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<CreateTitleBody>,
) -> Result<Response, AppError> {
    let limits = &state.config().engine;
    let record = TitleRecord {
        name: validate::text("name", &body.name, true, limits)?,
        kind: validate::text("kind", body.kind.as_deref().unwrap_or(""), false, limits)?,
        description: validate::text(
            "description",
            body.description.as_deref().unwrap_or(""),
            false,
            limits,
        )?,
    };
    let title = new_id("tt", &tenant, key.as_deref());
    if let Some(made) = state.shared.control.catalog().title(&tenant, &title) {
        if *made != record {
            return Err(AppError::idempotency_key_reused());
        }
        let response = (StatusCode::CREATED, Json(title_response(&title, made))).into_response();
        return Ok(super::with_location(
            response,
            &format!("/v1/titles/{title}/shows"),
        ));
    }
    let made = title_response(&title, &record);
    state
        .shared
        .control
        .save_catalog(
            ControlRecord::TitleSaved {
                tenant: tenant.clone(),
                title: title.clone(),
                record,
            },
            state.config().outcome_timeout,
        )
        .await
        .map_err(catalog_error)?;
    let response = (StatusCode::CREATED, Json(made)).into_response();
    Ok(super::with_location(
        response,
        &format!("/v1/titles/{title}/shows"),
    ))
}

#[utoipa::path(get, path = "/v1/admin/titles", tag = "admin",
    responses((status = 200, description = "This tenant's titles", body = AdminTitlesResponse)),
    security(("admin_key" = [])))]
pub(crate) async fn list_titles(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
) -> Response {
    let catalog = state.shared.control.catalog();
    let titles = catalog
        .titles_of(&tenant)
        .map(|(id, title)| title_response(id, title))
        .collect();
    Json(AdminTitlesResponse { titles }).into_response()
}

// ---- events from halls, listings -------------------------------------------------------------

/// What an event made from a hall is listed as, once the engine made it.
pub(crate) struct PendingListing {
    title: Option<String>,
    venue: String,
    hall: String,
    chart_version: u32,
}

/// For an event body naming `venue_id` (and `hall`): fills in the hall's current chart as
/// its seating and the venue's name, city and country where the body leaves them out; the
/// listing to record once the event is made. `title_id` alone lists the event under a
/// title. 400 naming the field for an unknown venue, hall or title (another tenant's is
/// unknown).
pub(crate) fn from_hall(
    state: &AppState,
    tenant: &str,
    body: &mut CreateEventBody,
) -> Result<Option<PendingListing>, AppError> {
    let catalog = state.shared.control.catalog();
    if let Some(title) = &body.title_id {
        if catalog.title(tenant, title).is_none() {
            return Err(AppError::field(
                "title_id",
                "title_id: no such title of this tenant",
            ));
        }
    }
    let Some(venue_id) = body.venue_id.clone() else {
        if body.hall.is_some() {
            return Err(AppError::field("hall", "hall needs venue_id"));
        }
        if body.title_id.is_some() {
            return Err(AppError::field(
                "venue_id",
                "an event listed under a title needs venue_id and hall",
            ));
        }
        return Ok(None);
    };
    let venue = catalog
        .venue(tenant, &venue_id)
        .ok_or_else(|| AppError::field("venue_id", "venue_id: no such venue of this tenant"))?;
    let hall = body
        .hall
        .clone()
        .ok_or_else(|| AppError::field("hall", "hall is required with venue_id"))?;
    let (chart_version, chart) = venue
        .current_chart(&hall)
        .filter(|_| venue.record.halls.iter().any(|known| known.name == hall))
        .ok_or_else(|| {
            AppError::field(
                "hall",
                format!("hall: the venue has no hall named {hall:?}"),
            )
        })?;
    if body.seating.is_some() {
        return Err(AppError::field(
            "seating",
            "seating comes from the hall's chart: give either seating or venue_id and hall",
        ));
    }
    if let Some(unpriced) = chart.categories().into_iter().find(|name| {
        !body
            .categories
            .iter()
            .any(|category| category.name == *name)
    }) {
        return Err(AppError::field(
            "categories",
            format!("the hall's chart has category {unpriced:?}: price it in categories"),
        ));
    }
    body.seating = Some(seating_of(chart));
    for (field, value) in [
        (&mut body.city, &venue.record.city),
        (&mut body.country, &venue.record.country),
        (&mut body.venue, &venue.record.name),
    ] {
        if field.is_empty() {
            *field = value.clone();
        }
    }
    Ok(Some(PendingListing {
        title: body.title_id.clone(),
        venue: venue_id,
        hall,
        chart_version,
    }))
}

/// Records the listing of an event the engine made (again on a retry: the same record).
pub(crate) async fn record_listing(
    state: &AppState,
    tenant: &str,
    event: EventId,
    pending: PendingListing,
) -> Result<(), AppError> {
    state
        .shared
        .control
        .save_catalog(
            ControlRecord::EventListed {
                tenant: tenant.to_string(),
                listing: Listing {
                    event,
                    title: pending.title,
                    venue: pending.venue,
                    hall: pending.hall,
                    chart_version: pending.chart_version,
                },
            },
            state.config().outcome_timeout,
        )
        .await
        .map_err(|error| {
            let error = catalog_error(error);
            let message = format!(
                "event {event} was made but not listed ({}): retry with the same Idempotency-Key, or PUT /v1/admin/events/{event}/listing",
                error.message
            );
            AppError { message, ..error }
        })
}

#[utoipa::path(put, path = "/v1/admin/events/{event_id}/listing", tag = "admin", params(("event_id" = String, Path)), request_body = ListingBody,
    responses((status = 200, description = "The event's listing", body = ListingResponse),
        (status = 400, description = "An unknown venue_id, hall, title_id or chart_version", body = ErrorBody),
        (status = 404, description = "No such event of this tenant", body = ErrorBody),
        (status = 503, description = "The control log cannot be written", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn put_listing(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    ApiPath(event_id): ApiPath<String>,
    ApiJson(body): ApiJson<ListingBody>,
) -> Result<Response, AppError> {
    let event = EventId::parse(&event_id).ok_or_else(|| AppError::not_found(NotFound::Event))?;
    if state
        .model_of(event)
        .event(event)
        .is_none_or(|record| record.tenant != tenant)
    {
        return Err(AppError::not_found(NotFound::Event));
    }
    let pending = {
        let catalog = state.shared.control.catalog();
        if let Some(title) = &body.title_id {
            if catalog.title(&tenant, title).is_none() {
                return Err(AppError::field(
                    "title_id",
                    "title_id: no such title of this tenant",
                ));
            }
        }
        let venue = catalog
            .venue(&tenant, &body.venue_id)
            .ok_or_else(|| AppError::field("venue_id", "venue_id: no such venue of this tenant"))?;
        let versions = venue
            .charts
            .get(&body.hall)
            .filter(|_| venue.record.halls.iter().any(|hall| hall.name == body.hall))
            .ok_or_else(|| AppError::field("hall", "hall: the venue has no hall of that name"))?;
        let chart_version = match body.chart_version {
            None => versions.last().map_or(1, |(version, _)| *version),
            Some(version) if versions.iter().any(|(kept, _)| *kept == version) => version,
            Some(_) => {
                return Err(AppError::field(
                    "chart_version",
                    "chart_version: the hall has no such chart version",
                ))
            }
        };
        PendingListing {
            title: body.title_id.clone(),
            venue: body.venue_id.clone(),
            hall: body.hall.clone(),
            chart_version,
        }
    };
    let answer = ListingResponse {
        event_id: event.to_string(),
        venue_id: pending.venue.clone(),
        hall: pending.hall.clone(),
        chart_version: pending.chart_version,
        title_id: pending.title.clone(),
    };
    record_listing(&state, &tenant, event, pending).await?;
    Ok(Json(answer).into_response())
}

// ---- public discovery ------------------------------------------------------------------------

/// The text search's answer, or 500 (the in-RAM index failing is a bug).
fn searched<T>(result: tantivy::Result<T>) -> Result<T, AppError> {
    result.map_err(|error| AppError::internal(format!("the search index: {error}")))
}

fn page_and_size(page: Option<u32>, per_page: Option<u32>) -> Result<(u32, u32), AppError> {
    use super::public::{PER_PAGE_DEFAULT, PER_PAGE_MAX};
    let page = page.unwrap_or(1);
    if page == 0 {
        return Err(AppError::field("page", "page starts at 1"));
    }
    let per_page = per_page.unwrap_or(PER_PAGE_DEFAULT);
    if per_page == 0 || per_page > PER_PAGE_MAX {
        return Err(AppError::field(
            "per_page",
            format!("per_page must be from 1 to {PER_PAGE_MAX}"),
        ));
    }
    Ok((page, per_page))
}

pub(crate) fn text_length(fields: &[(&str, &Option<String>)]) -> Result<(), AppError> {
    use super::public::QUERY_CHARS_MAX;
    for (field, value) in fields {
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
    Ok(())
}

struct TitleFound<'a> {
    tenant: &'a str,
    id: &'a str,
    record: &'a TitleRecord,
    shows: u64,
    next_show_ms: Option<u64>,
    distance_km: Option<f64>,
}

#[utoipa::path(get, path = "/v1/titles", tag = "public", params(TitlesQuery),
    responses((status = 200, description = "A page of titles with shows matching the search", body = TitlesResponse),
        (status = 400, description = "A parameter is invalid: details.field names it (lat, lng, radius_km, postal_code, sort, ...)", body = ErrorBody)))]
pub(crate) async fn titles(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<TitlesQuery>,
) -> Result<Response, AppError> {
    let (page, per_page) = page_and_size(query.page, query.per_page)?;
    text_length(&[
        ("q", &query.q),
        ("city", &query.city),
        ("country", &query.country),
    ])?;
    let near = near(
        query.lat.as_deref(),
        query.lng.as_deref(),
        query.radius_km.as_deref(),
    )?;
    let postal_code = postal_code(query.postal_code.as_deref())?;
    let sort = sort_keys(query.sort.as_deref(), SortKey::Name, near)?;
    let filter = EventFilter {
        city: query.city,
        country: query.country,
        from_ms: query
            .from
            .as_deref()
            .map(|from| crate::times::parse("from", from))
            .transpose()?,
        to_ms: query
            .to
            .as_deref()
            .map(|to| crate::times::parse("to", to))
            .transpose()?,
        ..EventFilter::default()
    };
    let shows_filtered = filter.city.is_some()
        || filter.country.is_some()
        || filter.from_ms.is_some()
        || filter.to_ms.is_some()
        || near.is_some()
        || postal_code.is_some();
    if query.q.as_deref().is_some_and(|q| !q.trim().is_empty()) {
        // Built (the first time) before the models' locks are taken.
        state.prepare_search()?;
    }
    let models = state.models();
    let refs: Vec<&ReadModel> = models.iter().map(|model| &**model).collect();
    let control = &state.shared.control;
    let catalog = control.catalog();
    let (text, did_you_mean) = match query.q.as_deref().filter(|q| !q.trim().is_empty()) {
        Some(q) => {
            let matched = searched(state.shared.search.titles(
                q,
                &refs,
                &catalog,
                &control.search_changes,
            ))?;
            (Some(matched.found), matched.did_you_mean)
        }
        None => (None, None),
    };
    let count = refs.len() as u32;
    let matched: Vec<(&str, &str, &TitleRecord)> = catalog
        .all_titles()
        .filter(|(tenant, id, _)| {
            text.as_ref()
                .is_none_or(|text| text.contains(&(tenant.to_string(), id.to_string())))
        })
        .collect();
    // Where the shows are, when the search names a place: from the venues that pass (the
    // catalog's events per venue) when they hold fewer events than the shows to look at;
    // else each show's venue in turn.
    let at_places: Option<HashMap<EventId, Option<f64>>> = (near.is_some()
        || postal_code.is_some())
    .then(|| places(&catalog, near, postal_code.as_deref()))
    .filter(|venues| {
        let at_venues: usize = venues
            .iter()
            .map(|(tenant, venue, _)| catalog.event_count_at(tenant, venue))
            .sum();
        let shows: usize = matched
            .iter()
            .map(|(tenant, id, _)| catalog.show_count(tenant, id))
            .sum();
        at_venues < shows
    })
    .map(|venues| {
        venues
            .into_iter()
            .flat_map(|(tenant, venue, distance_km)| {
                catalog
                    .events_at(tenant, venue)
                    .map(move |event| (event, distance_km))
            })
            .collect()
    });
    let mut found = Vec::new();
    for (tenant, id, record) in matched {
        let mut title = TitleFound {
            tenant,
            id,
            record,
            shows: 0,
            next_show_ms: None,
            distance_km: None,
        };
        for event in catalog.shows(tenant, id) {
            let place = match &at_places {
                Some(at_places) => at_places.get(&event).copied(),
                None => place_of(&catalog, event, near, postal_code.as_deref()),
            };
            let Some(distance) = place else {
                continue;
            };
            let Some(record) = refs[engine::shard_of(event.into(), count) as usize].event(event)
            else {
                continue;
            };
            if !filter.admits(record) {
                continue;
            }
            title.shows += 1;
            title.next_show_ms =
                Some(title.next_show_ms.map_or(record.spec.starts_at_ms, |next| {
                    next.min(record.spec.starts_at_ms)
                }));
            if let Some(distance) = distance {
                title.distance_km = Some(
                    title
                        .distance_km
                        .map_or(distance, |nearest: f64| nearest.min(distance)),
                );
            }
        }
        if shows_filtered && title.shows == 0 {
            continue;
        }
        found.push(title);
    }
    let (page_found, total) = sort_page(found, page, per_page, |a, b| {
        for key in &sort {
            let order = match key {
                SortKey::Name => a
                    .record
                    .name
                    .to_lowercase()
                    .cmp(&b.record.name.to_lowercase()),
                SortKey::Date => a
                    .next_show_ms
                    .unwrap_or(u64::MAX)
                    .cmp(&b.next_show_ms.unwrap_or(u64::MAX)),
                SortKey::Distance => a
                    .distance_km
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&b.distance_km.unwrap_or(f64::INFINITY)),
            };
            if order != Ordering::Equal {
                return order;
            }
        }
        (a.tenant, a.id).cmp(&(b.tenant, b.id))
    });
    let titles = page_found
        .into_iter()
        .map(|title| PublicTitle {
            title_id: title.id.to_string(),
            name: title.record.name.clone(),
            kind: title.record.kind.clone(),
            description: title.record.description.clone(),
            shows: title.shows,
            next_show_at: title.next_show_ms.map(crate::times::format),
            distance_km: title.distance_km.map(|km| (km * 1000.0).round() / 1000.0),
        })
        .collect();
    Ok(answer_merged(
        StatusCode::OK,
        &models,
        Json(TitlesResponse {
            titles,
            page,
            per_page,
            total,
            did_you_mean,
        }),
    ))
}

/// `YYYY-MM-DD` as the day's first and last millisecond (UTC).
fn day(text: &str) -> Result<(u64, u64), AppError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let invalid = || AppError::field("date", "date must be a day such as 2030-05-01");
    let date = time::Date::parse(text, &format).map_err(|_| invalid())?;
    let start = date.midnight().assume_utc().unix_timestamp();
    let start_ms = u64::try_from(start).map_err(|_| invalid())? * 1000;
    Ok((start_ms, start_ms + 86_400_000 - 1))
}

#[utoipa::path(get, path = "/v1/titles/{title_id}/shows", tag = "public", params(("title_id" = String, Path), ShowsQuery),
    responses((status = 200, description = "The title's shows (not canceled) by venue, each with its seat map's address", body = ShowsResponse),
        (status = 400, description = "date is not a day", body = ErrorBody),
        (status = 404, description = "No such title", body = ErrorBody)))]
pub(crate) async fn shows(
    State(state): State<AppState>,
    ApiPath(title_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ShowsQuery>,
) -> Result<Response, AppError> {
    text_length(&[("city", &query.city)])?;
    let (from_ms, to_ms) = match query.date.as_deref().map(day).transpose()? {
        Some((from, to)) => (Some(from), Some(to)),
        None => (None, None),
    };
    let filter = EventFilter {
        city: query.city,
        from_ms,
        to_ms,
        ..EventFilter::default()
    };
    let models = state.models();
    let count = models.len() as u32;
    let catalog = state.shared.control.catalog();
    let (tenant, title) = catalog.title_by_id(&title_id).ok_or_else(title_not_found)?;
    let mut venues: Vec<ShowVenue> = Vec::new();
    for event in catalog.shows(tenant, &title_id) {
        let model = &models[engine::shard_of(event.into(), count) as usize];
        let (Some(record), Some((_, listing))) = (model.event(event), catalog.listing(event))
        else {
            continue;
        };
        if !filter.admits(record) {
            continue;
        }
        let Some(venue) = catalog.venue(tenant, &listing.venue) else {
            continue;
        };
        let summary = views::event_summary(record, model.time_ms);
        let show = Show {
            event_id: event.to_string(),
            hall: listing.hall.clone(),
            starts_at: summary.starts_at,
            sales: summary.sales,
            free: summary.free,
            price_from_cents: summary.price_from_cents,
            seats_url: format!("/v1/events/{event}/seats"),
        };
        match venues
            .iter_mut()
            .find(|known| known.venue_id == listing.venue)
        {
            Some(known) => known.shows.push(show),
            None => {
                let (latitude, longitude) = venue_point(venue);
                venues.push(ShowVenue {
                    venue_id: listing.venue.clone(),
                    name: venue.record.name.clone(),
                    address: venue.record.address.clone(),
                    city: venue.record.city.clone(),
                    postal_code: venue.record.postal_code.clone(),
                    latitude,
                    longitude,
                    shows: vec![show],
                })
            }
        }
    }
    venues.sort_by(|a, b| (&a.name, &a.venue_id).cmp(&(&b.name, &b.venue_id)));
    for venue in &mut venues {
        // RFC 3339 in UTC sorts as time does.
        venue
            .shows
            .sort_by(|a, b| (&a.starts_at, &a.event_id).cmp(&(&b.starts_at, &b.event_id)));
    }
    Ok(answer_merged(
        StatusCode::OK,
        &models,
        Json(ShowsResponse {
            title_id,
            name: title.name.clone(),
            venues,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn great_circle_distances() {
        // Paris (Notre-Dame) to London (Trafalgar Square): 343.5 km by the IUGG mean radius.
        let km = distance_km(48.8530, 2.3499, 51.5080, -0.1281);
        assert!((343.0..344.0).contains(&km), "{km}");
        assert_eq!(distance_km(10.0, 20.0, 10.0, 20.0), 0.0);
        // Antipodes: half the circumference, no NaN from rounding.
        let half = distance_km(0.0, 0.0, 0.0, 180.0);
        assert!(
            (half - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6,
            "{half}"
        );
    }

    #[test]
    fn a_page_sorts_only_up_to_its_end_and_counts_everything() {
        let found: Vec<u32> = (0..100).rev().collect();
        let (page, total) = sort_page(found.clone(), 3, 10, |a, b| a.cmp(b));
        assert_eq!((page, total), ((20..30).collect::<Vec<_>>(), 100));
        let (past, total) = sort_page(found, 11, 10, |a, b| a.cmp(b));
        assert_eq!((past.len(), total), (0, 100));
    }

    #[test]
    fn coordinates_and_sorts_are_checked() {
        assert!(near(Some("48.5"), Some("-2"), Some("1000"))
            .unwrap()
            .is_some());
        assert_eq!(near(None, None, None).unwrap().map(|near| near.lat), None);
        for (lat, lng, radius, field) in [
            (Some("-90.01"), Some("0"), None, "lat"),
            (Some("inf"), Some("0"), None, "lat"),
            (Some("0"), Some("1e3"), None, "lng"),
            (Some("0"), Some("0"), Some("-1"), "radius_km"),
        ] {
            let refused = near(lat, lng, radius).unwrap_err();
            assert_eq!(refused.details.unwrap()["field"], field);
        }
        assert_eq!(
            sort_keys(
                Some("distance, name"),
                SortKey::Date,
                near(Some("1"), Some("1"), None).unwrap()
            )
            .unwrap(),
            [SortKey::Distance, SortKey::Name]
        );
        assert!(sort_keys(Some("price"), SortKey::Date, None).is_err());
    }
}
