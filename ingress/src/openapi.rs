//! The OpenAPI document of API v1, generated from the handlers' annotations and the
//! request/response types, served at `GET /v1/openapi.json`. Error answers' `details.reason`
//! words are the `ErrorReason` enum schema, built from `error::Reason::ALL`.

use crate::error::{ErrorBody, ErrorDetails, ErrorObject, Reason};
use crate::extract::IDEMPOTENCY_KEY_CHARS_MAX;
use crate::routes::{admin, ops, public, user, web};
use crate::validate;
use engine::EngineConfig;
use serde_json::{json, Value};
use std::sync::OnceLock;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(description.to_string());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme("admin_key", bearer("A tenant's admin key"));
        components.add_security_scheme("operator_key", bearer("The operator key"));
        let mut user = Http::new(HttpAuthScheme::Bearer);
        user.bearer_format = Some("JWT".into());
        user.description = Some("HS256 JWT whose sub is the user id".into());
        components.add_security_scheme("user_token", SecurityScheme::Http(user));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Boxoffice API", version = "1", description = "Seat booking over a durable log: events, holds, bookings, waitlists, service desks. \
        Any operation may also answer 429 `rate_limited` (per user or per client address, with `Retry-After`) and \
        503 `unavailable`, `request_timeout` among its reasons when no answer came within the server's request timeout \
        (`http.request_timeout_ms`): the request may or may not have been applied, so retry with the same `Idempotency-Key`."),
    paths(
        public::cities, public::events, public::venues, public::event, public::seats, web::stream,
        admin::create_event, admin::list_events, admin::get_event, admin::patch_event, admin::cancel_event, admin::checkin, admin::attendees,
        admin::create_desk, admin::desk,
        user::place_hold, user::get_hold, user::confirm_hold, user::release_hold,
        user::list_bookings, user::get_booking, user::ticket_qr, user::cancel_booking,
        user::join_waitlist, user::get_waitlist, user::leave_waitlist,
        user::create_desk_ticket, user::confirm_desk_ticket, user::get_desk_ticket, user::cancel_desk_ticket,
        ops::healthz, ops::readyz, ops::metrics, ops::engine, ops::promote,
        web::demo_token,
    ),
    components(schemas(ErrorBody, ErrorObject, ErrorDetails, Reason)),
    modifiers(&Security),
    tags(
        (name = "public", description = "Reads without a token"),
        (name = "admin", description = "Tenant administration (admin key)"),
        (name = "holds", description = "Holds (user token)"),
        (name = "bookings", description = "Bookings (user token)"),
        (name = "waitlist", description = "Waitlist (user token)"),
        (name = "desks", description = "Service desks"),
        (name = "operations", description = "Health, readiness, metrics, engine control (operator key)"),
        (name = "demo", description = "The demo user switcher: only with the development user-token secret"),
    )
)]
struct ApiDoc;

/// The document with the default engine limits, built once (tests and tools).
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| document_for(&EngineConfig::default()))
}

/// The document with the limits of `limits`, the engine configuration the ingress
/// validates against: what `GET /v1/openapi.json` serves.
pub(crate) fn document_for(limits: &EngineConfig) -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document
        .paths
        .paths
        .entry("/v1/openapi.json".into())
        .or_insert_with(|| {
            let operation = utoipa::openapi::path::OperationBuilder::new()
                .summary(Some("This document"))
                .tag("operations")
                .response(
                    "200",
                    utoipa::openapi::ResponseBuilder::new()
                        .description("OpenAPI 3.1 JSON")
                        .build(),
                )
                .build();
            utoipa::openapi::PathItem::new(utoipa::openapi::HttpMethod::Get, operation)
        });
    let mut value = serde_json::to_value(&document).expect("the document serializes");
    add_shared_answers(&mut value);
    unsigned_integers(&mut value);
    add_limits(&mut value, limits);
    serde_json::from_value(value).expect("the document deserializes")
}

/// A required text field of the engine (`validate::text`): not blank (`\S`) and at most
/// `text_bytes_max` characters. The server counts UTF-8 bytes; the description says so.
fn required_text(limits: &EngineConfig) -> Value {
    json!({
        "minLength": 1,
        "maxLength": limits.text_bytes_max,
        "pattern": "\\S",
        "description": format!("Not blank; at most {} bytes of UTF-8", limits.text_bytes_max),
    })
}

/// A name that is part of a seat id (`<section>-<row>-<number>`): also no `-`.
fn seat_id_part(limits: &EngineConfig) -> Value {
    json!({
        "minLength": 1,
        "maxLength": limits.text_bytes_max,
        "pattern": "^[^-]*[^\\s-][^-]*$",
        "description": format!("Not blank, no '-'; at most {} bytes of UTF-8", limits.text_bytes_max),
    })
}

fn short_text() -> Value {
    json!({
        "minLength": 1,
        "maxLength": validate::SHORT_TEXT_BYTES_MAX,
        "pattern": "\\S",
        "description": format!("Not blank; at most {} bytes of UTF-8", validate::SHORT_TEXT_BYTES_MAX),
    })
}

/// A search filter of `GET /v1/events`.
fn query_text() -> Value {
    json!({
        "maxLength": public::QUERY_BYTES_MAX,
        "description": format!("At most {} bytes of UTF-8", public::QUERY_BYTES_MAX),
    })
}

fn optional_text(limits: &EngineConfig) -> Value {
    json!({ "maxLength": limits.text_bytes_max })
}

fn range(minimum: u64, maximum: u64) -> Value {
    json!({ "minimum": minimum, "maximum": maximum })
}

/// The hold TTL range: the contract's, narrowed by the engine's.
fn hold_ttl_seconds(limits: &EngineConfig) -> Value {
    let minimum = validate::HOLD_TTL_SECONDS_MIN.max(limits.hold_ttl_min_ms.div_ceil(1000));
    let maximum = validate::HOLD_TTL_SECONDS_MAX.min(limits.hold_ttl_max_ms / 1000);
    range(minimum, maximum)
}

/// RFC 3339 from 1970 (the engine's clock starts there). The pattern checks the year only:
/// a time on 1970-01-01 with a positive offset matches it yet is before 1970 in UTC, and the
/// server refuses it (400 `invalid_field`); JSON Schema cannot say that more exactly.
fn time() -> Value {
    json!({
        "format": "date-time",
        "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})-",
        "description": "RFC 3339, not before 1970-01-01T00:00:00Z",
    })
}

/// The limits the handlers enforce (`validate`, `extract`, the routes), stated from the same
/// constants and engine configuration: (schema, property or `""` for the schema itself,
/// constraints), or (`query`/`header`, optionally followed by one path, parameter,
/// constraints).
///
/// Text limits are in UTF-8 bytes on the server (the engine counts bytes) and in characters
/// in JSON Schema (`maxLength`): they agree for ASCII, and the descriptions say bytes.
fn limits_table(limits: &EngineConfig) -> Vec<(&'static str, &'static str, Value)> {
    let cap = u64::from(limits.seats_per_order_cap);
    vec![
        (
            "DemoTokenBody",
            "user",
            json!({
                "minLength": 1, "maxLength": web::DEMO_USER_CHARS_MAX, "pattern": "^[A-Za-z0-9._-]+$",
            }),
        ),
        ("CreateEventBody", "name", required_text(limits)),
        ("CreateEventBody", "description", optional_text(limits)),
        ("CreateEventBody", "city", required_text(limits)),
        ("CreateEventBody", "country", required_text(limits)),
        ("CreateEventBody", "venue", required_text(limits)),
        ("CreateEventBody", "starts_at", time()),
        ("CreateEventBody", "ends_at", time()),
        ("CreateEventBody", "sales_open_at", time()),
        ("CreateEventBody", "sales_close_at", time()),
        (
            "CreateEventBody",
            "hold_ttl_seconds",
            hold_ttl_seconds(limits),
        ),
        ("CreateEventBody", "max_seats_per_order", range(1, cap)),
        (
            "CreateEventBody",
            "max_seats_per_user",
            json!({ "minimum": 1 }),
        ),
        (
            "CreateEventBody",
            "waitlist_policy",
            json!({ "enum": ["strict", "skip_ahead", null] }),
        ),
        (
            "CreateEventBody",
            "categories",
            json!({
                "minItems": 1, "maxItems": limits.event_categories_max,
            }),
        ),
        ("CategoryBody", "name", required_text(limits)),
        (
            "CategoryBody",
            "price_cents",
            range(0, engine::PRICE_CENTS_MAX),
        ),
        ("SectionBody", "name", seat_id_part(limits)),
        ("SectionBody", "rows", json!({ "minItems": 1 })),
        ("RowBody", "label", seat_id_part(limits)),
        (
            "RowBody",
            "seats",
            range(1, u64::from(limits.event_seats_max)),
        ),
        (
            "PoolBody",
            "capacity",
            range(1, u64::from(limits.pool_capacity_max)),
        ),
        ("PatchEventBody", "", json!({ "minProperties": 1 })),
        ("PatchEventBody", "name", required_text(limits)),
        ("PatchEventBody", "description", optional_text(limits)),
        ("PatchEventBody", "starts_at", time()),
        ("PatchEventBody", "ends_at", time()),
        ("PatchEventBody", "sales_open_at", time()),
        ("PatchEventBody", "sales_close_at", time()),
        (
            "PatchEventBody",
            "hold_ttl_seconds",
            hold_ttl_seconds(limits),
        ),
        ("PatchEventBody", "max_seats_per_order", range(1, cap)),
        (
            "PatchEventBody",
            "max_seats_per_user",
            json!({ "minimum": 1 }),
        ),
        (
            "PatchEventBody",
            "waitlist_policy",
            json!({ "enum": ["strict", "skip_ahead", null] }),
        ),
        ("CheckinBody", "code", short_text()),
        (
            "HoldBody",
            "seats",
            json!({
                "minItems": 1, "maxItems": cap, "uniqueItems": true,
                "items": { "type": "string", "minLength": 1, "maxLength": limits.text_bytes_max },
            }),
        ),
        ("HoldBody", "quantity", range(1, cap)),
        ("HoldBody", "category", required_text(limits)),
        ("WaitlistBody", "quantity", range(1, cap)),
        ("WaitlistBody", "category", required_text(limits)),
        ("ConfirmBody", "payment_ref", short_text()),
        ("DeskTicketBody", "level", short_text()),
        ("CreateDeskBody", "name", required_text(limits)),
        (
            "CreateDeskBody",
            "agents",
            range(1, u64::from(validate::DESK_AGENTS_MAX)),
        ),
        (
            "CreateDeskBody",
            "slot_minutes",
            range(1, validate::SLOT_MINUTES_MAX),
        ),
        (
            "CreateDeskBody",
            "horizon_hours",
            range(1, validate::HORIZON_HOURS_MAX),
        ),
        (
            "CreateDeskBody",
            "hold_ttl_seconds",
            hold_ttl_seconds(limits),
        ),
        (
            "CreateDeskBody",
            "levels",
            json!({ "minItems": 1, "maxItems": validate::DESK_LEVELS_MAX }),
        ),
        ("LevelBody", "name", required_text(limits)),
        (
            "LevelBody",
            "deadline_minutes",
            range(1, validate::DEADLINE_MINUTES_MAX),
        ),
        ("query /v1/events", "q", query_text()),
        ("query /v1/events", "city", query_text()),
        ("query /v1/events", "country", query_text()),
        ("query /v1/events", "venue", query_text()),
        ("query", "page", json!({ "minimum": 1 })),
        (
            "query",
            "per_page",
            range(1, u64::from(public::PER_PAGE_MAX)),
        ),
        ("query", "sort", json!({ "enum": ["date", "name"] })),
        ("query", "from", time()),
        ("query", "to", time()),
        (
            "query",
            "wait_seconds",
            range(0, u64::from(user::WAIT_SECONDS_MAX)),
        ),
        (
            "header",
            "Idempotency-Key",
            json!({
                "minLength": 1, "maxLength": IDEMPOTENCY_KEY_CHARS_MAX, "pattern": "^[!-~]+$",
            }),
        ),
    ]
}

/// Merges `constraints` into `schema`; a nullable (`Option`) property keeps its `null`.
fn constrain(schema: &mut Value, constraints: &Value) {
    let Some(schema) = schema.as_object_mut() else {
        return;
    };
    for (key, value) in constraints.as_object().expect("constraints are an object") {
        if key == "items" {
            constrain(schema.entry("items").or_insert_with(|| json!({})), value);
        } else {
            schema.insert(key.clone(), value.clone());
        }
    }
}

fn add_limits(document: &mut Value, limits: &EngineConfig) {
    for (owner, property, constraints) in limits_table(limits) {
        let mut found = false;
        let place = ["query", "header"]
            .into_iter()
            .find(|place| owner.split(' ').next() == Some(*place));
        if let Some(place) = place {
            let only_path = owner.split(' ').nth(1);
            for (path, item) in document["paths"].as_object_mut().expect("paths") {
                if only_path.is_some_and(|only| only != path) {
                    continue;
                }
                for operation in item.as_object_mut().expect("path item").values_mut() {
                    let Some(parameters) = operation["parameters"].as_array_mut() else {
                        continue;
                    };
                    for parameter in parameters {
                        if parameter["in"] == place && parameter["name"] == property {
                            constrain(&mut parameter["schema"], &constraints);
                            found = true;
                        }
                    }
                }
            }
        } else if property.is_empty() {
            let schema = &mut document["components"]["schemas"][owner];
            if schema.is_object() {
                constrain(schema, &constraints);
                found = true;
            }
        } else {
            let schema = &mut document["components"]["schemas"][owner]["properties"][property];
            if schema.is_object() {
                constrain(schema, &constraints);
                found = true;
            }
        }
        assert!(found, "the document has no {owner}.{property} to constrain");
    }
}

/// utoipa documents `u32` as `int32` and `u64` as `int64` with `minimum: 0`, whose maxima
/// are the signed ones; the server takes every unsigned value, so say that.
fn unsigned_integers(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            let unsigned = fields.get("minimum").and_then(Value::as_f64) == Some(0.0);
            let maximum = match fields.get("format").and_then(Value::as_str) {
                Some("int32") if unsigned => Some(json!(u32::MAX)),
                Some("int64") if unsigned => Some(json!(u64::MAX)),
                _ => None,
            };
            if let Some(maximum) = maximum {
                fields.remove("format");
                fields.entry("maximum").or_insert(maximum);
            }
            fields.values_mut().for_each(unsigned_integers);
        }
        Value::Array(items) => items.iter_mut().for_each(unsigned_integers),
        _ => {}
    }
}

/// The answers every operation may give besides its own, added where an operation does not
/// already describe them: 400 for a request the extractors refuse (any parameter or body),
/// 401 for a missing or wrong credential, 413 for a body over `http.body_bytes_max`, 429 for
/// rate limits, 503 for an engine that did not answer in time.
fn add_shared_answers(document: &mut Value) {
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        })
    };
    let paths = document["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        if path == "/v1/openapi.json" {
            continue;
        }
        for operation in item.as_object_mut().expect("path item").values_mut() {
            let Some(operation) = operation.as_object_mut() else {
                continue;
            };
            let secured = operation
                .get("security")
                .and_then(|security| security.as_array())
                .is_some_and(|security| !security.is_empty());
            let has_body = operation.contains_key("requestBody");
            let has_parameters = operation
                .get("parameters")
                .and_then(|parameters| parameters.as_array())
                .is_some_and(|parameters| !parameters.is_empty());
            let responses = operation
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("responses");
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_string())
                    .or_insert_with(|| error(description));
            };
            if has_body || has_parameters {
                add("400", "bad_request: not_json, malformed_json, invalid_body, invalid_field, malformed_query, malformed_path (`details.field` names the field)");
            }
            if secured {
                add("401", "unauthorized: the credential is missing or wrong");
            }
            if has_body {
                add(
                    "413",
                    "payload_too_large: body_too_large (`details.limit_bytes`)",
                );
            }
            add("429", "rate_limited (`Retry-After`)");
            add("503", "unavailable (request_timeout among the reasons): retry with the same Idempotency-Key");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AppError;
    use axum::response::IntoResponse;
    use engine::{ConflictReason, Limit, NotFound, Rejection, SalesClosedReason};
    use serde_json::Value;

    /// The words of the document's `ErrorReason` enum.
    fn documented_reasons() -> Vec<String> {
        let document = serde_json::to_value(document()).unwrap();
        document["components"]["schemas"]["ErrorReason"]["enum"]
            .as_array()
            .expect("ErrorReason is an enum schema")
            .iter()
            .map(|word| word.as_str().unwrap().to_string())
            .collect()
    }

    /// One of every rejection, with every cause of those that carry one. The match makes a
    /// new variant fail to compile here until it is listed below.
    fn every_rejection() -> Vec<Rejection> {
        let listed = |rejection: &Rejection| match rejection {
            Rejection::NotFound { .. }
            | Rejection::UnknownSeats { .. }
            | Rejection::SeatsUnavailable { .. }
            | Rejection::SoldOut { .. }
            | Rejection::LimitExceeded { .. }
            | Rejection::SalesClosed { .. }
            | Rejection::HoldExpired
            | Rejection::AlreadyUsed
            | Rejection::SlaUnavailable { .. }
            | Rejection::Conflict { .. }
            | Rejection::Invalid { .. }
            | Rejection::Undecodable { .. }
            | Rejection::IdempotencyKeyReused => (),
        };
        let mut rejections = vec![
            Rejection::UnknownSeats {
                seats: vec!["Z-1-1".into()],
            },
            Rejection::SeatsUnavailable { seats: vec![3] },
            Rejection::SoldOut {
                category: None,
                free: 0,
            },
            Rejection::SoldOut {
                category: Some(1),
                free: 2,
            },
            Rejection::HoldExpired,
            Rejection::AlreadyUsed,
            Rejection::IdempotencyKeyReused,
            Rejection::SlaUnavailable {
                earliest_start_ms: Some(0),
            },
            Rejection::Invalid {
                reason: "bad".into(),
            },
            Rejection::Undecodable {
                reason: "bad".into(),
            },
        ];
        for what in [
            NotFound::Event,
            NotFound::Hold,
            NotFound::Booking,
            NotFound::Waiter,
            NotFound::Ticket,
            NotFound::Desk,
            NotFound::DeskTicket,
            NotFound::Category,
            NotFound::Level,
        ] {
            rejections.push(Rejection::NotFound { what });
        }
        for limit in [
            Limit::SeatsPerOrder,
            Limit::SeatsPerUser,
            Limit::WaitlistLength,
            Limit::Events,
            Limit::Desks,
            Limit::WaitersPerUser,
            Limit::DeskTicketsPerUser,
        ] {
            rejections.push(Rejection::LimitExceeded { limit, max: 1 });
        }
        for reason in [SalesClosedReason::NotOpenYet, SalesClosedReason::Closed] {
            rejections.push(Rejection::SalesClosed { reason });
        }
        for reason in [
            ConflictReason::EventCanceled,
            ConflictReason::HoldReleased,
            ConflictReason::HoldAlreadyConfirmed,
            ConflictReason::BookingCanceled,
            ConflictReason::DeskTicketAllocated,
        ] {
            rejections.push(Rejection::Conflict { reason });
        }
        rejections.iter().for_each(listed);
        rejections
    }

    /// The `error` object of a rendered answer.
    async fn rendered(error: AppError) -> Value {
        let body = axum::body::to_bytes(error.into_response().into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice::<Value>(&body).unwrap()["error"].clone()
    }

    #[test]
    fn every_reason_word_is_in_the_document_once_and_snake_case() {
        let words: Vec<&str> = Reason::ALL.iter().map(|reason| reason.as_str()).collect();
        assert_eq!(documented_reasons(), words);
        let mut distinct = words.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), words.len(), "reason words are distinct");
        for word in words {
            assert!(
                !word.is_empty()
                    && !word.starts_with('_')
                    && !word.ends_with('_')
                    && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{word:?} is snake_case"
            );
        }
        // `details` refers to the reasons.
        let document = serde_json::to_value(document()).unwrap();
        let schemas = &document["components"]["schemas"];
        assert_eq!(
            schemas["ErrorObject"]["properties"]["details"]["$ref"],
            "#/components/schemas/ErrorDetails"
        );
        assert_eq!(
            schemas["ErrorDetails"]["properties"]["reason"]["$ref"],
            "#/components/schemas/ErrorReason"
        );
    }

    #[tokio::test]
    async fn every_rejection_answers_with_a_documented_reason() {
        let documented = documented_reasons();
        let mut seen = Vec::new();
        for rejection in every_rejection() {
            let error = rendered(AppError::from_rejection(&rejection, None)).await;
            let reason = error["details"]["reason"].as_str().unwrap_or_default();
            assert!(
                documented.iter().any(|word| word == reason),
                "{rejection:?} answers reason {reason:?}, which the document does not list"
            );
            seen.push((
                error["code"].as_str().unwrap().to_string(),
                reason.to_string(),
            ));
        }
        let expect = |code: &str, reason: &str| {
            assert!(
                seen.contains(&(code.to_string(), reason.to_string())),
                "no {code}/{reason} in {seen:?}"
            );
        };
        // The contract's examples, and each cause apart.
        expect("conflict", "event_canceled");
        expect("conflict", "hold_released");
        expect("conflict", "hold_already_confirmed");
        expect("conflict", "booking_canceled");
        expect("conflict", "desk_ticket_allocated");
        expect("sales_closed", "not_open_yet");
        expect("sales_closed", "closed");
        expect("sold_out", "sold_out");
        expect("limit_exceeded", "seats_per_order_max");
        expect("not_found", "waitlist_entry_not_found");
        expect("bad_request", "category_not_found");
        let conflicts: Vec<_> = seen.iter().filter(|(code, _)| code == "conflict").collect();
        let mut causes: Vec<_> = conflicts.iter().map(|(_, reason)| reason).collect();
        causes.dedup();
        assert_eq!(
            causes.len(),
            conflicts.len(),
            "each conflict cause has its own word"
        );
    }

    #[tokio::test]
    async fn sold_out_says_which_category_and_what_is_left() {
        let error = rendered(AppError::from_rejection(
            &Rejection::SoldOut {
                category: None,
                free: 3,
            },
            None,
        ))
        .await;
        assert_eq!(
            error["details"],
            serde_json::json!({"reason": "sold_out", "category": null, "free": 3})
        );
    }

    #[tokio::test]
    async fn the_ingress_own_answers_carry_their_reason_too() {
        for (error, code, reason) in [
            (AppError::no_route(), "not_found", "route_not_found"),
            (
                AppError::payload_too_large(10),
                "payload_too_large",
                "body_too_large",
            ),
            (
                AppError::rate_limited(Reason::UserRateLimit, 1),
                "rate_limited",
                "user_rate_limit",
            ),
            (AppError::internal("test"), "internal", "internal"),
            (
                AppError::field("categories[0].price_cents", "too much"),
                "bad_request",
                "invalid_field",
            ),
        ] {
            let error = rendered(error).await;
            assert_eq!(
                (error["code"].as_str(), error["details"]["reason"].as_str()),
                (Some(code), Some(reason))
            );
        }
        // Details a helper sets are kept next to the reason.
        let error = rendered(AppError::field("name", "missing")).await;
        assert_eq!(
            error["details"],
            serde_json::json!({"field": "name", "reason": "invalid_field"})
        );
    }

    #[test]
    fn the_documented_price_maximum_is_the_engines() {
        let document = serde_json::to_value(document()).unwrap();
        let price = &document["components"]["schemas"]["CategoryBody"]["properties"]["price_cents"];
        assert_eq!(
            price["maximum"].as_f64(),
            Some(engine::PRICE_CENTS_MAX as f64)
        );
        assert_eq!(price["minimum"].as_f64(), Some(0.0));
    }

    /// Every operation that takes an `Idempotency-Key` (every write) says that a key reused
    /// for another request is 422 `idempotency_key_reused`.
    #[test]
    fn every_write_lists_a_reused_idempotency_key() {
        let document = serde_json::to_value(super::document()).unwrap();
        let mut writes = 0;
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let keyed = operation["parameters"]
                    .as_array()
                    .is_some_and(|parameters| {
                        parameters
                            .iter()
                            .any(|parameter| parameter["name"] == "Idempotency-Key")
                    });
                if !keyed {
                    continue;
                }
                writes += 1;
                let description = operation["responses"]["422"]["description"]
                    .as_str()
                    .unwrap_or_default();
                assert!(
                    description.contains("idempotency_key_reused"),
                    "{method} {path}: 422 says {description:?}"
                );
            }
        }
        assert_eq!(writes, 14, "the writes that take an Idempotency-Key");
    }

    /// Every operation lists the answers any request may get, and the documented limits are
    /// the configured ones, not copies.
    #[test]
    fn every_operation_lists_the_shared_answers_and_limits_follow_the_config() {
        let document = serde_json::to_value(document()).unwrap();
        for (path, item) in document["paths"].as_object().unwrap() {
            if path == "/v1/openapi.json" {
                continue;
            }
            for (method, operation) in item.as_object().unwrap() {
                let responses = &operation["responses"];
                let mut expected = vec!["429", "503"];
                if operation["security"]
                    .as_array()
                    .is_some_and(|s| !s.is_empty())
                {
                    expected.push("401");
                }
                if operation.get("requestBody").is_some() {
                    expected.extend(["400", "413"]);
                }
                for status in expected {
                    assert!(
                        responses.get(status).is_some(),
                        "{method} {path} does not list {status}"
                    );
                }
            }
        }
        let limits = EngineConfig {
            seats_per_order_cap: 7,
            text_bytes_max: 9,
            ..EngineConfig::default()
        };
        let document = serde_json::to_value(document_for(&limits)).unwrap();
        let schemas = &document["components"]["schemas"];
        assert_eq!(schemas["HoldBody"]["properties"]["quantity"]["maximum"], 7);
        assert_eq!(schemas["HoldBody"]["properties"]["seats"]["maxItems"], 7);
        assert_eq!(
            schemas["CreateEventBody"]["properties"]["name"]["maxLength"],
            9
        );
        assert_eq!(schemas["PatchEventBody"]["minProperties"], 1);
        let holds = &document["paths"]["/v1/events/{event_id}/holds"]["post"];
        let key = holds["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|parameter| parameter["name"] == "Idempotency-Key")
            .unwrap();
        assert_eq!(key["schema"]["maxLength"], IDEMPOTENCY_KEY_CHARS_MAX);
        let events = &document["paths"]["/v1/events"]["get"];
        let per_page = events["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|parameter| parameter["name"] == "per_page")
            .unwrap();
        assert_eq!(per_page["schema"]["maximum"], public::PER_PAGE_MAX);
        // An unsigned integer without a stated limit takes every u32.
        assert_eq!(
            schemas["EventsResponse"]["properties"]["page"]["maximum"],
            u32::MAX
        );
    }
}
