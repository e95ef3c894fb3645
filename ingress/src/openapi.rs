//! The OpenAPI document of API v1, generated from the handlers' annotations and the
//! request/response types, served at `GET /v1/openapi.json`. Error answers' `details.reason`
//! words are the `ErrorReason` enum schema, built from `error::Reason::ALL`.

use crate::error::{ErrorBody, ErrorDetails, ErrorObject, Reason};
use crate::extract::IDEMPOTENCY_KEY_CHARS_MAX;
use crate::routes::{accounts, admin, catalog, ops, payments, public, user, web, webhooks};
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
        public::cities, public::events, public::venues, public::event, public::seats, public::draw, web::stream,
        admin::create_event, admin::open_arrival_window, admin::reveal_draw_seed, admin::list_events, admin::get_event, admin::patch_event, admin::cancel_event, admin::checkin, admin::attendees,
        admin::create_desk, admin::desk,
        catalog::create_venue, catalog::list_venues, catalog::get_venue, catalog::patch_venue, catalog::create_title, catalog::list_titles, catalog::put_listing, catalog::titles, catalog::shows,
        webhooks::create_webhook, webhooks::list_webhooks, webhooks::get_webhook, webhooks::delete_webhook, webhooks::enable_webhook, webhooks::deliveries, webhooks::resend,
        user::place_hold, user::get_hold, user::confirm_hold, user::release_hold,
        payments::create_payment, payments::webhook, payments::reconciliation,
        accounts::create_tenant, accounts::list_tenants, accounts::get_tenant, accounts::suspend_tenant, accounts::resume_tenant, accounts::issue_admin_key,
        accounts::create_key, accounts::list_keys, accounts::rotate_key, accounts::revoke_key,
        accounts::put_user_token_key, accounts::get_user_token_key, accounts::delete_user_token_key,
        user::list_bookings, user::get_booking, user::ticket_qr, user::cancel_booking,
        user::join_waitlist, user::get_waitlist, user::leave_waitlist, user::list_notifications,
        user::create_desk_ticket, user::confirm_desk_ticket, user::get_desk_ticket, user::cancel_desk_ticket,
        ops::healthz, ops::readyz, ops::metrics, ops::engine, ops::promote, ops::requests_log, ops::get_placement, ops::put_placement, ops::erase_user,
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
        (name = "notifications", description = "My own events, as webhooks tell them, for frontends without webhooks (user token)"),
        (name = "desks", description = "Service desks"),
        (name = "payments", description = "The payment gateway's webhook (signed by the gateway, no token)"),
        (name = "webhooks", description = "Webhook endpoints, their delivery log and re-sends (admin key)"),
        (name = "accounts", description = "Organiser accounts: tenants (operator key), a tenant's API keys with roles and its user-token key (admin key)"),
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
                .operation_id(Some("openapi"))
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
    add_reasons(&mut value);
    unsigned_integers(&mut value);
    add_limits(&mut value, limits);
    let mut document: utoipa::openapi::OpenApi =
        serde_json::from_value(value).expect("the document deserializes");
    // utoipa's model has no `webhooks` (OpenAPI 3.1): written as a top-level field through
    // the document's flattened extensions, which serialize as they are.
    document
        .extensions
        .get_or_insert_with(Default::default)
        .insert("webhooks".into(), webhooks());
    document
}

/// The `webhooks` section: what the effects worker POSTs to an endpoint, one entry per
/// event type (`engine::webhook::WebhookEventType`), each body's schema exact
/// (`additionalProperties: false`). `effects/tests/openapi_webhooks.rs` checks every type's
/// body as the worker makes it (`effects::messages`) against these schemas.
pub fn webhooks() -> Value {
    let text = || json!({"type": "string"});
    let id = |prefix: &str| json!({"type": "string", "pattern": format!("^{prefix}[0-9]+$")});
    let count = || json!({"type": "integer", "minimum": 0});
    let time = || json!({"type": "string", "format": "date-time"});
    let ids = |prefix: &str| json!({"type": "array", "items": id(prefix)});
    let data = |description: &str, properties: Value| {
        let required: Vec<String> = properties
            .as_object()
            .expect("properties are an object")
            .keys()
            .cloned()
            .collect();
        (
            description.to_string(),
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": required,
                "properties": properties,
            }),
        )
    };
    let types: Vec<(&str, (String, Value))> = vec![
        (
            "booking.created",
            data(
                "A hold was confirmed: a booking exists",
                json!({
                    "booking_id": id("b_"), "hold_id": id("h_"), "event_id": id("ev_"),
                    "user_id": text(), "quantity": count(), "total_cents": count(),
                    "payment_ref": text(), "booked_at": time(),
                }),
            ),
        ),
        (
            "booking.canceled",
            data(
                "A booking was canceled; its seats are free",
                json!({
                    "booking_id": id("b_"), "event_id": id("ev_"), "user_id": text(), "quantity": count(),
                }),
            ),
        ),
        (
            "hold.expired",
            data(
                "A hold ran out unconfirmed; `waitlist_id` when it was a waitlist offer",
                json!({
                    "hold_id": id("h_"), "event_id": id("ev_"), "user_id": text(), "quantity": count(),
                    "waitlist_id": {"type": ["string", "null"], "pattern": "^w_[0-9]+$"},
                }),
            ),
        ),
        (
            "waitlist.offered",
            data(
                "Seats freed for a waiter are held for it until `expires_at`",
                json!({
                    "waitlist_id": id("w_"), "hold_id": id("h_"), "event_id": id("ev_"),
                    "user_id": text(), "quantity": count(), "expires_at": time(),
                }),
            ),
        ),
        (
            "waitlist.ended",
            data(
                "A waiter left the waitlist without an offer",
                json!({
                    "waitlist_id": id("w_"), "event_id": id("ev_"), "user_id": text(),
                    "reason": {"type": "string", "enum": ["timed_out", "sold_out", "limit_exceeded", "event_canceled", "no_row_long_enough"]},
                }),
            ),
        ),
        (
            "event.canceled",
            data(
                "An event was canceled with its holds, bookings and waiters",
                json!({
                    "event_id": id("ev_"), "released_hold_ids": ids("h_"),
                    "canceled_booking_ids": ids("b_"), "ended_waitlist_ids": ids("w_"),
                }),
            ),
        ),
        (
            "checkin.used",
            data(
                "A ticket was scanned at the door",
                json!({
                    "event_id": id("ev_"), "ticket_id": {"type": "string", "pattern": "^t_[0-9]+_[0-9]+$"}, "booking_id": id("b_"),
                }),
            ),
        ),
        (
            "desk_ticket.allocated",
            data(
                "A service-desk ticket has its slot",
                json!({
                    "desk_id": id("desk_"), "desk_ticket_id": id("dt_"), "user_id": text(),
                    "agent": count(), "slot_start": time(), "slot_end": time(),
                }),
            ),
        ),
    ];
    let header = |name: &str, description: &str| json!({"name": name, "in": "header", "required": true, "description": description, "schema": {"type": "string"}});
    let mut section = serde_json::Map::new();
    for (kind, (description, data)) in types {
        section.insert(kind.to_string(), json!({"post": {
            "summary": kind,
            "description": format!("{description}. Sent to the endpoints of the event's (or desk's) tenant subscribed to `{kind}`, signed as Standard Webhooks say; at least once, in log order per endpoint."),
            "operationId": format!("webhook_{}", kind.replace('.', "_")),
            "tags": ["webhooks"],
            "parameters": [
                header("webhook-id", "`msg_<shard>_<log offset>_<index>`: the same on every attempt and re-send; deduplicate by it"),
                header("webhook-timestamp", "Seconds since the epoch when this attempt was signed"),
                header("webhook-signature", "`v1,` + base64 of HMAC-SHA256 over `<webhook-id>.<webhook-timestamp>.<body>`, keyed with the endpoint's secret"),
            ],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object",
                "additionalProperties": false,
                "required": ["type", "timestamp", "data"],
                "properties": {
                    "type": {"type": "string", "enum": [kind]},
                    "timestamp": {"type": "string", "format": "date-time", "description": "When it happened: the engine's log time"},
                    "data": data,
                },
            }}}},
            "responses": {
                "2XX": {"description": "Delivered: the message leaves the endpoint's backlog"},
                "default": {"description": "Any other answer, or none within `effects.attempt_timeout_ms`: retried with backoff"},
            },
        }}));
    }
    Value::Object(section)
}

/// The characters Rust's `char::is_whitespace` (`str::trim`) counts as whitespace, the
/// ones a blank text consists of, as a regular-expression class body. Spelled out because
/// `\s` differs between regular-expression dialects (Python's counts U+001C to U+001F).
const WHITESPACE_CLASS: &str =
    "\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/// A required text field (`validate::required_text`): not blank and at most
/// `validate::text_chars_max` characters.
fn required_text(limits: &EngineConfig) -> Value {
    let chars_max = validate::text_chars_max(limits);
    json!({
        "minLength": 1,
        "maxLength": chars_max,
        "pattern": format!("[^{WHITESPACE_CLASS}]"),
        "description": format!("Not blank; at most {chars_max} characters"),
    })
}

/// A name that is part of a seat id (`<section>-<row>-<number>`): also no `-`.
fn seat_id_part(limits: &EngineConfig) -> Value {
    let chars_max = validate::text_chars_max(limits);
    json!({
        "minLength": 1,
        "maxLength": chars_max,
        "pattern": format!("^[^-]*[^{WHITESPACE_CLASS}-][^-]*$"),
        "description": format!("Not blank, no '-'; at most {chars_max} characters"),
    })
}

/// A search filter of `GET /v1/events`.
fn query_text() -> Value {
    json!({
        "maxLength": public::QUERY_CHARS_MAX,
        "description": format!("At most {} characters", public::QUERY_CHARS_MAX),
    })
}

fn optional_text(limits: &EngineConfig) -> Value {
    json!({ "maxLength": validate::text_chars_max(limits) })
}

/// A notifications cursor of a deployment of `shards` shards (`notifications`): one part
/// per shard, `n` or `<offset>_<index>`, with digits the server reads (u64, u32).
fn cursor_pattern(shards: u32) -> String {
    let part = "(n|[0-9]{1,19}_[0-9]{1,9})";
    format!("^{part}(\\.{part}){{{}}}$", shards.saturating_sub(1))
}

fn range(minimum: u64, maximum: u64) -> Value {
    json!({ "minimum": minimum, "maximum": maximum })
}

/// The hold TTL range: the contract's, narrowed by the engine's (the spec rules' range).
fn hold_ttl_seconds(limits: &EngineConfig) -> Value {
    let (minimum, maximum) =
        engine::spec_rules::SpecRules::contract(limits).hold_ttl_seconds_range();
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
/// Text limits are in characters, as JSON Schema's `maxLength` counts them.
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
            "arrival_window_seconds",
            range(1, engine::draw::ARRIVAL_WINDOW_MS_MAX / 1000),
        ),
        (
            "CreateEventBody",
            "draw_commitment",
            json!({ "pattern": "^[0-9A-Fa-f]{64}$" }),
        ),
        (
            "OpenWindowBody",
            "arrival_window_seconds",
            range(1, engine::draw::ARRIVAL_WINDOW_MS_MAX / 1000),
        ),
        (
            "OpenWindowBody",
            "draw_commitment",
            json!({ "pattern": "^[0-9A-Fa-f]{64}$" }),
        ),
        (
            "RevealSeedBody",
            "seed",
            json!({ "pattern": "^[0-9A-Fa-f]{64}$" }),
        ),
        (
            "CreateEventBody",
            "max_seats_per_user",
            json!({ "minimum": 1 }),
        ),
        (
            "CreateEventBody",
            "currency",
            json!({
                "pattern": "^[A-Z]{3}$",
                "description": "An ISO 4217 currency code (the server checks it is one)",
            }),
        ),
        (
            "CancellationBody",
            "until_hours_before_start",
            range(0, u64::from(engine::terms::CANCELLATION_HOURS_MAX)),
        ),
        (
            "CancellationBody",
            "refund",
            json!({ "enum": ["full", "none"] }),
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
        ("CheckinBody", "code", required_text(limits)),
        (
            "HoldBody",
            "seats",
            json!({
                "minItems": 1, "maxItems": cap, "uniqueItems": true,
                "items": { "type": "string", "minLength": 1, "maxLength": validate::seat_id_chars_max(limits) },
            }),
        ),
        ("HoldBody", "quantity", range(1, cap)),
        ("HoldBody", "category", required_text(limits)),
        ("WaitlistBody", "quantity", range(1, cap)),
        ("WaitlistBody", "category", required_text(limits)),
        ("ConfirmBody", "payment_ref", required_text(limits)),
        ("DeskTicketBody", "level", required_text(limits)),
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
            "query /v1/me/notifications",
            "after",
            json!({ "pattern": cursor_pattern(limits.shard.count) }),
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
/// 401 for a missing or wrong credential, 403 for the other kind of key, 413 for a body
/// over `http.body_bytes_max`, 429 for rate limits, 503 for an engine that did not answer
/// in time. Their reason words are added by [`add_reasons`].
fn add_shared_answers(document: &mut Value) {
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        })
    };
    let paths = document["paths"].as_object_mut().expect("paths");
    for item in paths.values_mut() {
        for operation in item.as_object_mut().expect("path item").values_mut() {
            let Some(operation) = operation.as_object_mut() else {
                continue;
            };
            let secured = operation
                .get("security")
                .and_then(|security| security.as_array())
                .is_some_and(|security| !security.is_empty());
            let has_body = operation.contains_key("requestBody");
            // An admin or operator key: the other kind of key is 403.
            let keyed = security_schemes(operation)
                .iter()
                .any(|scheme| *scheme != "user_token");
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
                add("400", "bad_request (`details.field` names the field)");
            }
            if secured {
                add("401", "unauthorized: the credential is missing or wrong");
            }
            if keyed {
                add("403", "forbidden: the other kind of key");
            }
            if has_body {
                add("413", "payload_too_large (`details.limit_bytes`)");
            }
            add("429", "rate_limited (`Retry-After`)");
            add(
                "503",
                "unavailable: retry (a write with the same Idempotency-Key)",
            );
        }
    }
}

/// The security schemes an operation takes (`user_token`, `admin_key`, `operator_key`).
fn security_schemes(operation: &serde_json::Map<String, Value>) -> Vec<&str> {
    operation
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|requirement| requirement.keys().map(String::as_str))
        .collect()
}

/// Whether an operation's path names an event or a desk (`{event_id}`, `{desk_id}`).
fn operation_names_event_or_desk(parameters: &[&Value]) -> bool {
    parameters.iter().any(|parameter| {
        parameter["in"] == "path"
            && (parameter["name"] == "event_id" || parameter["name"] == "desk_id")
    })
}

/// The `details.reason` words any operation of its kind may answer, by status: what the
/// extractors, the credentials, the rate limits, the request timeout and the write path
/// refuse with.
fn shared_reasons(operation: &serde_json::Map<String, Value>) -> Vec<(u16, Vec<Reason>)> {
    use Reason::*;
    let parameters: Vec<&Value> = operation
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let has_parameter_in =
        |place: &str| parameters.iter().any(|parameter| parameter["in"] == place);
    let write = parameters
        .iter()
        .any(|parameter| parameter["name"] == "Idempotency-Key");
    let mut reasons = vec![(429, vec![AddressRateLimit]), (503, vec![RequestTimeout])];
    if operation.contains_key("requestBody") {
        reasons.push((
            400,
            vec![
                NotJson,
                MalformedJson,
                InvalidBody,
                InvalidField,
                UnreadableBody,
            ],
        ));
        reasons.push((413, vec![BodyTooLarge]));
    }
    if has_parameter_in("path") {
        reasons.push((400, vec![MalformedPath]));
    }
    if has_parameter_in("query") {
        reasons.push((400, vec![MalformedQuery]));
    }
    if write {
        // An invalid Idempotency-Key names the header; the engine's own refusals
        // (`invalid`, `undecodable`) never come for what the ingress validated, but a
        // client may meet them across versions.
        reasons.push((400, vec![InvalidField, Invalid, Undecodable]));
        reasons.push((422, vec![IdempotencyKeyReused]));
        reasons.push((
            503,
            vec![
                NotAnsweredInTime,
                OutcomeMissed,
                ShuttingDown,
                LogNotWritable,
                FollowerStopped,
                ShardUnavailable,
            ],
        ));
    }
    for scheme in security_schemes(operation) {
        match scheme {
            "user_token" => {
                reasons.push((
                    401,
                    vec![MissingToken, MalformedAuthorization, InvalidToken],
                ));
                // A tenant's token on another tenant's event or desk, or the deployment's
                // token on a tenant with its own key (routes naming an event or desk).
                if operation_names_event_or_desk(&parameters) {
                    reasons.push((403, vec![UserTokenOfAnotherTenant, TenantUserTokenRequired]));
                }
                reasons.push((429, vec![UserRateLimit]));
                // The token's user as a pseudonym (`privacy`): an identity erased past
                // the generations' cap, a personal-data store that cannot be written.
                reasons.push((403, vec![UserErased]));
                reasons.push((503, vec![PersonalDataUnavailable]));
            }
            "admin_key" => {
                reasons.push((
                    401,
                    vec![MissingToken, MalformedAuthorization, UnknownAdminKey],
                ));
                reasons.push((
                    403,
                    vec![TenantKeyRequired, KeyRoleForbidden, TenantSuspended],
                ));
                reasons.push((503, vec![ControlLogBehind]));
            }
            "operator_key" => {
                reasons.push((
                    401,
                    vec![MissingToken, MalformedAuthorization, UnknownAdminKey],
                ));
                reasons.push((403, vec![OperatorKeyRequired]));
            }
            other => panic!("unknown security scheme {other}"),
        }
    }
    reasons
}

/// The `details.reason` words of each operation's own refusals, by status, besides
/// [`shared_reasons`]. Every operation is listed, so a new one fails the document's
/// build until its refusals are.
fn operation_reasons(operation_id: &str) -> Vec<(u16, Vec<Reason>)> {
    use Reason::*;
    let on_sale = [NotOpenYet, Closed, EventCanceled];
    match operation_id {
        "cities" | "venues" | "list_events" | "list_bookings" | "healthz" | "metrics"
        | "openapi" => vec![],
        "events" => vec![(400, vec![InvalidField])],
        "event" | "seats" | "get_event" => vec![(404, vec![EventNotFound])],
        "attendees" => vec![
            (404, vec![EventNotFound]),
            (503, vec![PersonalDataUnavailable]),
        ],
        "draw" => vec![(404, vec![EventNotFound, DrawNotFound])],
        "open_arrival_window" => vec![
            (400, vec![InvalidField]),
            (404, vec![EventNotFound]),
            (409, vec![EventCanceled]),
        ],
        "reveal_draw_seed" => vec![
            (400, vec![InvalidField]),
            (404, vec![EventNotFound, DrawNotFound]),
            (409, vec![DrawMade, EventCanceled]),
        ],
        "stream" => vec![
            (404, vec![EventNotFound]),
            (429, vec![StreamsPerAddressMax]),
            (503, vec![TooManyStreams]),
        ],
        // 503: an event made from a hall whose listing could not be recorded.
        "create_event" => vec![
            (400, vec![CategoryNotFound]),
            (422, vec![EventsMax]),
            (503, vec![LogNotWritable, NoControlLog]),
        ],
        "patch_event" => vec![
            (400, vec![EmptyPatch, CategoryNotFound]),
            (404, vec![EventNotFound]),
            (409, vec![EventCanceled]),
        ],
        "cancel_event" => vec![(404, vec![EventNotFound]), (409, vec![EventCanceled])],
        "checkin" => vec![
            (404, vec![EventNotFound, TicketNotFound]),
            (409, vec![AlreadyUsed, BookingCanceled]),
        ],
        "create_desk" => vec![(422, vec![DesksMax])],
        "desk" => vec![(404, vec![DeskNotFound])],
        "place_hold" => vec![
            (400, vec![CategoryNotFound]),
            (404, vec![EventNotFound, UnknownSeats]),
            (
                409,
                [&[SeatsUnavailable, SoldOut][..], &on_sale[..]].concat(),
            ),
            (
                422,
                vec![
                    SeatsPerOrderMax,
                    SeatsPerUserMax,
                    WaitlistLengthMax,
                    WaitersPerUserMax,
                ],
            ),
        ],
        "join_waitlist" => vec![
            (400, vec![CategoryNotFound]),
            (404, vec![EventNotFound]),
            (409, [&[SoldOut][..], &on_sale[..]].concat()),
            (
                422,
                vec![
                    SeatsPerOrderMax,
                    SeatsPerUserMax,
                    WaitlistLengthMax,
                    WaitersPerUserMax,
                ],
            ),
        ],
        "get_hold" => vec![(404, vec![HoldNotFound])],
        "release_hold" => vec![
            (404, vec![HoldNotFound]),
            (409, vec![HoldExpired, HoldReleased, HoldAlreadyConfirmed]),
        ],
        "confirm_hold" => vec![
            (404, vec![HoldNotFound]),
            (
                409,
                vec![
                    HoldExpired,
                    HoldReleased,
                    HoldAlreadyConfirmed,
                    PaymentNotFound,
                    PaymentForAnotherHold,
                    PaymentNotSucceeded,
                    PaymentAmountMismatch,
                    PaymentCurrencyMismatch,
                ],
            ),
            (503, vec![PaymentGatewayUnavailable]),
        ],
        "create_payment" => vec![
            (404, vec![HoldNotFound]),
            (
                409,
                vec![
                    HoldExpired,
                    HoldReleased,
                    HoldAlreadyConfirmed,
                    PaymentsNotConfigured,
                ],
            ),
            (503, vec![PaymentGatewayUnavailable]),
        ],
        "reconciliation" => vec![
            (400, vec![InvalidField]),
            (409, vec![PaymentsNotConfigured]),
            (422, vec![ReconciliationObjectsMax]),
            (503, vec![PaymentGatewayUnavailable]),
        ],
        "webhook" => vec![
            (400, vec![InvalidBody]),
            (401, vec![InvalidSignature, StaleSignature]),
            (404, vec![HoldNotFound]),
            (409, vec![PaymentsNotConfigured]),
            (503, vec![LogNotWritable, NoControlLog]),
        ],
        "get_booking" => vec![(404, vec![BookingNotFound])],
        "ticket_qr" => vec![(404, vec![BookingNotFound, TicketNotFound])],
        "cancel_booking" => vec![
            (404, vec![BookingNotFound]),
            (409, vec![BookingCanceled, AlreadyUsed, CancellationClosed]),
        ],
        "get_waitlist" => vec![
            (400, vec![InvalidField]),
            (404, vec![WaitlistEntryNotFound]),
            (429, vec![LongPollsPerUserMax, LongPollsPerAddressMax]),
        ],
        "leave_waitlist" => vec![(404, vec![WaitlistEntryNotFound])],
        "list_notifications" => vec![
            (400, vec![InvalidField]),
            (429, vec![LongPollsPerUserMax, LongPollsPerAddressMax]),
        ],
        "create_desk_ticket" => vec![
            (400, vec![LevelNotFound]),
            (404, vec![DeskNotFound]),
            (409, vec![SlaUnavailable]),
            (422, vec![DeskTicketsPerUserMax]),
        ],
        "confirm_desk_ticket" => vec![
            (404, vec![DeskTicketNotFound]),
            (409, vec![DeskTicketAllocated]),
        ],
        "get_desk_ticket" | "cancel_desk_ticket" => vec![(404, vec![DeskTicketNotFound])],
        "readyz" => vec![(
            503,
            vec![
                EngineStopped,
                OutcomesGap,
                OutcomesTruncated,
                LogNotWritable,
                EngineNotAnswering,
                CatchingUp,
            ],
        )],
        "engine" => vec![(503, vec![NoEngine])],
        "requests_log" => vec![(503, vec![NoEngine])],
        "promote" => vec![
            (409, vec![PromotionRefused]),
            (503, vec![NoEngine, LogNotWritable]),
        ],
        "demo_token" => vec![(404, vec![RouteNotFound])],
        "get_placement" => vec![(404, vec![TenantNotFound])],
        "list_venues" | "list_titles" => vec![],
        "create_venue" => vec![
            (422, vec![VenuesPerTenantMax]),
            (503, vec![LogNotWritable, NoControlLog]),
        ],
        "get_venue" => vec![(404, vec![VenueNotFound])],
        "patch_venue" => vec![
            (400, vec![EmptyPatch]),
            (404, vec![VenueNotFound]),
            (503, vec![LogNotWritable, NoControlLog]),
        ],
        "create_title" => vec![
            (422, vec![TitlesPerTenantMax]),
            (503, vec![LogNotWritable, NoControlLog]),
        ],
        "put_listing" => vec![
            (404, vec![EventNotFound]),
            (503, vec![LogNotWritable, NoControlLog]),
        ],
        "titles" => vec![(400, vec![InvalidField])],
        "shows" => vec![(400, vec![InvalidField]), (404, vec![TitleNotFound])],
        "list_webhooks" => vec![],
        "create_webhook" => vec![
            (400, vec![WebhookUrlUnreachable, WebhookAddressPrivate]),
            (422, vec![WebhooksPerTenantMax]),
            (503, vec![LogNotWritable, NoControlLog]),
        ],
        "get_webhook" => vec![(404, vec![WebhookNotFound])],
        "delete_webhook" | "enable_webhook" => vec![
            (404, vec![WebhookNotFound]),
            (503, vec![LogNotWritable, NoControlLog]),
        ],
        "deliveries" => vec![(404, vec![WebhookNotFound]), (503, vec![NoEffectsWorker])],
        "resend" => vec![
            (404, vec![WebhookNotFound, WebhookMessageNotFound]),
            (503, vec![NoEffectsWorker]),
        ],
        "erase_user" => vec![
            (400, vec![MalformedPseudonym]),
            (404, vec![UnknownUser]),
            (409, vec![UserErased]),
            (422, vec![ErasedUsersMax]),
            (503, vec![LogNotWritable, NoControlLog]),
        ],
        "put_placement" => vec![
            (404, vec![TenantNotFound]),
            (409, vec![NoControlLog]),
            (422, vec![TenantPinsMax]),
            (503, vec![LogNotWritable]),
        ],
        "create_tenant" => vec![
            (409, vec![TenantExists]),
            (422, vec![TenantsMax]),
            (503, vec![LogNotWritable, NoControlLog]),
        ],
        "list_tenants" | "list_keys" => vec![],
        "get_tenant" => vec![(404, vec![TenantNotFound])],
        "suspend_tenant" | "resume_tenant" => vec![
            (404, vec![TenantNotFound]),
            (503, vec![LogNotWritable, NoControlLog]),
        ],
        "create_key" => vec![
            (422, vec![KeysPerTenantMax]),
            (503, vec![LogNotWritable, NoControlLog]),
        ],
        "issue_admin_key" => vec![
            (404, vec![TenantNotFound]),
            (422, vec![KeysPerTenantMax]),
            (503, vec![LogNotWritable, NoControlLog]),
        ],
        "rotate_key" | "revoke_key" => vec![
            (404, vec![KeyNotFound]),
            (503, vec![LogNotWritable, NoControlLog]),
        ],
        "put_user_token_key" => vec![(503, vec![LogNotWritable, NoControlLog])],
        "get_user_token_key" => vec![(404, vec![UserTokenKeyNotFound])],
        "delete_user_token_key" => vec![
            (404, vec![UserTokenKeyNotFound]),
            (503, vec![LogNotWritable, NoControlLog]),
        ],
        other => panic!("operation {other} does not list its reasons in operation_reasons"),
    }
}

/// Every error answer of every operation lists its `details.reason` words (shared and
/// its own), in the description and as an `enum` in its schema, so the document says
/// exactly which words an operation sends; a status the tables give words for is added
/// where the operation's annotation does not list it. An error status with no word is a
/// mistake in the tables: building the document panics.
fn add_reasons(document: &mut Value) {
    let paths = document["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        for (method, operation) in item.as_object_mut().expect("path item") {
            let Some(operation) = operation.as_object_mut() else {
                continue;
            };
            let operation_id = operation["operationId"]
                .as_str()
                .expect("every operation has an operationId")
                .to_string();
            let mut by_status: std::collections::BTreeMap<u16, Vec<Reason>> = Default::default();
            for (status, reasons) in shared_reasons(operation)
                .into_iter()
                .chain(operation_reasons(&operation_id))
            {
                let words = by_status.entry(status).or_default();
                for reason in reasons {
                    if !words.contains(&reason) {
                        words.push(reason);
                    }
                }
            }
            let responses = operation["responses"].as_object_mut().expect("responses");
            for status in responses.keys() {
                let code: u16 = status.parse().expect("a numeric status");
                assert!(
                    code < 400 || by_status.contains_key(&code),
                    "{method} {path} answers {code} with no details.reason listed"
                );
            }
            for (code, words) in by_status {
                let response = responses
                    .entry(code.to_string())
                    .or_insert_with(|| json!({"description": ""}));
                let enumeration: Vec<&str> = words.iter().map(|reason| reason.as_str()).collect();
                let listed = enumeration
                    .iter()
                    .map(|word| format!("`{word}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let description = response["description"].as_str().unwrap_or_default();
                response["description"] = Value::from(if description.is_empty() {
                    format!("`details.reason`: {listed}")
                } else {
                    format!("{description}. `details.reason`: {listed}")
                });
                response["content"] = json!({"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/ErrorBody"},
                    {"type": "object", "properties": {"error": {"type": "object", "properties": {
                        "details": {"type": "object", "properties": {
                            "reason": {"type": "string", "enum": enumeration}
                        }}
                    }}}},
                ]}}});
            }
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
            ConflictReason::DrawMade,
            ConflictReason::CancellationClosed,
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

    /// The documented "not blank" patterns accept exactly the text the server's blank
    /// test (`str::trim`, `char::is_whitespace`) accepts, character by character.
    #[test]
    fn the_not_blank_patterns_are_the_servers_whitespace_rule() {
        let limits = EngineConfig::default();
        let pattern = |schema: Value| {
            regex::Regex::new(schema["pattern"].as_str().unwrap()).expect("the pattern compiles")
        };
        for schema in [required_text(&limits), seat_id_part(&limits)] {
            let text = schema["pattern"].as_str().unwrap();
            assert!(
                !text.contains("\\s") && !text.contains("\\S"),
                "{text}: \\s means other characters in other dialects (Python's has U+001C)"
            );
        }
        let required = pattern(required_text(&limits));
        let part = pattern(seat_id_part(&limits));
        let mut text = String::new();
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            text.clear();
            text.push(c);
            assert_eq!(required.is_match(&text), !c.is_whitespace(), "{c:?}");
            assert_eq!(
                part.is_match(&text),
                !c.is_whitespace() && c != '-',
                "{c:?}"
            );
        }
        assert!(
            required.is_match(" \u{1c} "),
            "U+001C is not whitespace in Rust"
        );
        assert!(!required.is_match(" \t\u{3000}\u{85}"));
        assert!(part.is_match(" A "));
        assert!(!part.is_match("A-1"));
    }

    /// The reasons of an operation's error answer, from its schema.
    fn listed_reasons(document: &Value, path: &str, method: &str, status: &str) -> Vec<String> {
        let schema = &document["paths"][path][method]["responses"][status]["content"]
            ["application/json"]["schema"];
        schema["allOf"][1]["properties"]["error"]["properties"]["details"]["properties"]["reason"]
            ["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path} {status} has no reason enum: {schema}"))
            .iter()
            .map(|word| word.as_str().unwrap().to_string())
            .collect()
    }

    /// Every error answer of every operation names its reasons; the words are the
    /// shared ones of its kind plus its own; every word is some operation's.
    #[test]
    fn every_error_answer_lists_its_reasons() {
        let document = serde_json::to_value(document()).unwrap();
        let mut used = std::collections::BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                for (status, response) in operation["responses"].as_object().unwrap() {
                    if status.as_str() < "400" {
                        continue;
                    }
                    let words = listed_reasons(&document, path, method, status);
                    assert!(!words.is_empty(), "{method} {path} {status}");
                    for word in &words {
                        assert!(
                            response["description"]
                                .as_str()
                                .unwrap()
                                .contains(word.as_str()),
                            "{method} {path} {status}: the description names {word}"
                        );
                    }
                    used.extend(words);
                }
            }
        }
        let unused: Vec<&str> = Reason::ALL
            .iter()
            .map(|reason| reason.as_str())
            .filter(|word| !used.contains(*word))
            .collect();
        // Not an operation's: a path or method nothing answers, a bug, and a word kept
        // for compatibility.
        assert_eq!(
            unused,
            ["method_not_allowed", "internal", "engine_starting"]
        );
        let holds =
            |status| listed_reasons(&document, "/v1/events/{event_id}/holds", "post", status);
        for (status, word) in [
            ("400", "not_json"),
            ("400", "invalid_field"),
            ("400", "category_not_found"),
            ("400", "malformed_path"),
            ("401", "invalid_token"),
            ("404", "unknown_seats"),
            ("409", "seats_unavailable"),
            ("409", "not_open_yet"),
            ("409", "event_canceled"),
            ("413", "body_too_large"),
            ("422", "seats_per_user_max"),
            ("422", "idempotency_key_reused"),
            ("429", "user_rate_limit"),
            ("503", "request_timeout"),
            ("503", "not_answered_in_time"),
        ] {
            assert!(
                holds(status).iter().any(|listed| listed == word),
                "{status} {word}"
            );
        }
        assert!(!holds("401")
            .iter()
            .any(|listed| listed == "unknown_admin_key"));
        let created = listed_reasons(&document, "/v1/admin/events", "post", "403");
        assert_eq!(
            created,
            [
                "tenant_key_required",
                "key_role_forbidden",
                "tenant_suspended"
            ]
        );
        let held = listed_reasons(&document, "/v1/events/{event_id}/holds", "post", "403");
        assert_eq!(
            held,
            [
                "user_token_of_another_tenant",
                "tenant_user_token_required",
                "user_erased"
            ]
        );
        let ready = listed_reasons(&document, "/readyz", "get", "503");
        for word in [
            "engine_stopped",
            "outcomes_gap",
            "outcomes_truncated",
            "log_not_writable",
            "engine_not_answering",
            "catching_up",
        ] {
            assert!(ready.iter().any(|listed| listed == word), "{word}");
        }
        // Reads are not writes: no write-path reasons.
        let event = listed_reasons(&document, "/v1/events/{event_id}", "get", "503");
        assert_eq!(event, ["request_timeout"]);
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
        assert_eq!(writes, 18, "the writes that take an Idempotency-Key");
    }

    /// Every operation lists the answers any request may get, and the documented limits are
    /// the configured ones, not copies.
    #[test]
    fn every_operation_lists_the_shared_answers_and_limits_follow_the_config() {
        let document = serde_json::to_value(document()).unwrap();
        for (path, item) in document["paths"].as_object().unwrap() {
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
            text_bytes_max: 36,
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
