//! Service desks end to end over HTTP, with two tenants (`demo` and `other`): each creates
//! desks and its customers book tickets; neither admin sees the other's desks, no user
//! sees another's tickets, one desk's load takes nothing from another's, a full window
//! is refused at once with `sla_unavailable` and the earliest start, and a canceled
//! ticket's slot is given again.
//!
//! The desks here sell whole days (1440-minute slots, gold within 3 days), so the
//! window a request sees does not move while the test runs (it would only if a UTC
//! midnight fell within the test's second or so).

mod common;

use axum::http::{header, Method, StatusCode};
use common::*;
use serde_json::{json, Value};

const DAY_MS: i64 = 86_400_000;

fn day_desk(name: &str) -> Value {
    json!({
        "name": name,
        "agents": 1,
        "slot_minutes": 1440,
        "horizon_hours": 240,
        "levels": [
            {"name": "gold", "deadline_minutes": 3 * 1440},
            {"name": "bronze", "deadline_minutes": 10 * 1440}
        ]
    })
}

async fn create_desk(router: &axum::Router, admin: &str, body: Value) -> String {
    let created = call(
        router,
        Method::POST,
        "/v1/admin/desks",
        Some(admin),
        Some(body),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let desk = created.body["desk_id"].as_str().unwrap().to_string();
    assert_eq!(
        created.headers[header::LOCATION],
        format!("/v1/admin/desks/{desk}").as_str()
    );
    desk
}

async fn book(router: &axum::Router, user: &str, desk: &str, body: Value) -> Answer {
    call(
        router,
        Method::POST,
        &format!("/v1/desks/{desk}/tickets"),
        Some(&token(user)),
        Some(body),
    )
    .await
}

fn parse_millis(text: &str) -> i64 {
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|error| panic!("{text}: {error}"));
    (time.unix_timestamp_nanos() / 1_000_000) as i64
}

fn millis(answer: &Answer, field: &str) -> i64 {
    parse_millis(
        answer.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} in {}", answer.text)),
    )
}

/// The admin's view of a desk's level window: (slots used, slots free).
async fn window(router: &axum::Router, admin: &str, desk: &str, level: &str) -> (u64, u64) {
    let load = call(
        router,
        Method::GET,
        &format!("/v1/admin/desks/{desk}"),
        Some(admin),
        None,
    )
    .await;
    assert_eq!(load.status, StatusCode::OK, "{}", load.text);
    let window = load.body["level_windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|window| window["level"] == level)
        .unwrap_or_else(|| panic!("no {level} window in {}", load.text));
    (
        window["slots_used"].as_u64().unwrap(),
        window["slots_free"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tenants_book_service_desks_in_isolation() {
    let harness = Harness::start();
    let router = harness.router();
    let desk_a = create_desk(&router, ADMIN, day_desk("Visits A")).await;
    let desk_b = create_desk(&router, OTHER_ADMIN, day_desk("Visits B")).await;
    let defaults = create_desk(&router, ADMIN, json!({"name": "Helpdesk", "agents": 3})).await;

    // Each admin sees its own desks only; the other's id is 404, like an unknown one.
    let load = call(
        &router,
        Method::GET,
        &format!("/v1/admin/desks/{defaults}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(load.status, StatusCode::OK, "{}", load.text);
    assert_eq!(
        (&load.body["slot_minutes"], &load.body["horizon_hours"]),
        (&json!(1), &json!(8))
    );
    assert_eq!(
        load.body["levels"],
        json!([
            {"name": "gold", "deadline_minutes": 120},
            {"name": "silver", "deadline_minutes": 240},
            {"name": "bronze", "deadline_minutes": 480}
        ])
    );
    for (admin, desk) in [
        (OTHER_ADMIN, &desk_a),
        (OTHER_ADMIN, &defaults),
        (ADMIN, &desk_b),
        (ADMIN, &"desk_99".to_string()),
    ] {
        let answer = call(
            &router,
            Method::GET,
            &format!("/v1/admin/desks/{desk}"),
            Some(admin),
            None,
        )
        .await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{admin} reading {desk}: {}",
            answer.text
        );
    }
    // Tickets are booked with a user token, not an admin key.
    let admin_booking = call(
        &router,
        Method::POST,
        &format!("/v1/desks/{desk_a}/tickets"),
        Some(ADMIN),
        Some(json!({"level": "gold"})),
    )
    .await;
    assert_eq!(admin_booking.status, StatusCode::UNAUTHORIZED);

    // Tenant A's customers fill desk A's gold window (one agent, whole days, within 3
    // days: two slots, or three if the request fell exactly on midnight).
    let mut booked = Vec::new();
    let refused = loop {
        let answer = book(&router, "ann", &desk_a, json!({"level": "gold"})).await;
        if answer.status != StatusCode::CREATED {
            break answer;
        }
        assert_eq!(answer.body["status"], "confirmed", "{}", answer.text);
        assert_eq!(answer.body["level"], "gold");
        assert!(millis(&answer, "slot_end") <= millis(&answer, "resolve_by"));
        if let Some(previous) = booked.last() {
            // Earliest first: each ticket takes the slot right after the previous one.
            assert_eq!(millis(&answer, "slot_start"), millis(previous, "slot_end"));
        }
        let ticket = answer.body["ticket_id"].as_str().unwrap();
        assert_eq!(
            answer.headers[header::LOCATION],
            format!("/v1/desks/{desk_a}/tickets/{ticket}").as_str()
        );
        booked.push(answer);
        assert!(booked.len() <= 3, "more than the window holds");
    };
    assert!(booked.len() >= 2, "{}", refused.text);
    let last_end = millis(booked.last().unwrap(), "slot_end");
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "sla_unavailable"),
        "{}",
        refused.text
    );
    let earliest = refused.body["error"]["details"]["earliest_start"]
        .as_str()
        .unwrap();
    assert_eq!(
        parse_millis(earliest),
        last_end,
        "the earliest start is the first free slot"
    );
    // Bronze (10 days) still fits, on the slot that gold could not have.
    let bronze = book(&router, "ann", &desk_a, json!({"level": "bronze"})).await;
    assert_eq!(bronze.status, StatusCode::CREATED, "{}", bronze.text);
    assert_eq!(millis(&bronze, "slot_start"), last_end);
    assert_eq!(
        window(&router, ADMIN, &desk_a, "gold").await,
        (booked.len() as u64, 0)
    );

    // Desk B (tenant B) has seen none of A's load: its first slot is A's first slot.
    let first_b = book(&router, "bea", &desk_b, json!({"level": "gold"})).await;
    assert_eq!(first_b.status, StatusCode::CREATED, "{}", first_b.text);
    assert_eq!(
        millis(&first_b, "slot_start"),
        millis(&booked[0], "slot_start")
    );
    assert_eq!(
        window(&router, OTHER_ADMIN, &desk_b, "gold").await,
        (1, booked.len() as u64 - 1)
    );
    assert_eq!(first_b.body["desk_id"], desk_b.as_str());

    // A user sees and touches only their own tickets, and only under their desk.
    let anns = booked[0].body["ticket_id"].as_str().unwrap();
    let beas = first_b.body["ticket_id"].as_str().unwrap();
    for (method, user, path) in [
        (
            Method::GET,
            "bea",
            format!("/v1/desks/{desk_a}/tickets/{anns}"),
        ),
        (
            Method::DELETE,
            "bea",
            format!("/v1/desks/{desk_a}/tickets/{anns}"),
        ),
        (
            Method::POST,
            "bea",
            format!("/v1/desks/{desk_a}/tickets/{anns}/confirm"),
        ),
        (
            Method::GET,
            "ann",
            format!("/v1/desks/{desk_b}/tickets/{anns}"),
        ),
        (
            Method::GET,
            "ann",
            format!("/v1/desks/{desk_b}/tickets/{beas}"),
        ),
        (
            Method::DELETE,
            "ann",
            format!("/v1/desks/{desk_b}/tickets/{beas}"),
        ),
        (
            Method::GET,
            "ann",
            format!("/v1/desks/{desk_a}/tickets/dt_999"),
        ),
    ] {
        let answer = call(&router, method.clone(), &path, Some(&token(user)), None).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{method} {path} as {user}: {}",
            answer.text
        );
    }
    let own = call(
        &router,
        Method::GET,
        &format!("/v1/desks/{desk_a}/tickets/{anns}"),
        Some(&token("ann")),
        None,
    )
    .await;
    assert_eq!(
        (own.status, &own.body["status"]),
        (StatusCode::OK, &json!("confirmed")),
        "{}",
        own.text
    );
    assert_eq!(own.body["slot_start"], booked[0].body["slot_start"]);

    // Canceling returns the slot at once: the next gold ticket gets exactly it.
    let last = booked.last().unwrap();
    let last_id = last.body["ticket_id"].as_str().unwrap();
    let canceled = call(
        &router,
        Method::DELETE,
        &format!("/v1/desks/{desk_a}/tickets/{last_id}"),
        Some(&token("ann")),
        None,
    )
    .await;
    assert_eq!(
        (canceled.status, &canceled.body["status"]),
        (StatusCode::OK, &json!("canceled")),
        "{}",
        canceled.text
    );
    assert_eq!(
        window(&router, ADMIN, &desk_a, "gold").await,
        (booked.len() as u64 - 1, 1)
    );
    let again = book(&router, "carl", &desk_a, json!({"level": "gold"})).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    assert_eq!(again.body["slot_start"], last.body["slot_start"]);
    let full = book(&router, "carl", &desk_a, json!({"level": "gold"})).await;
    assert_eq!(full.code(), "sla_unavailable", "{}", full.text);
    // The canceled ticket stays readable by its owner, as canceled; canceling it again
    // is 404.
    let gone = call(
        &router,
        Method::GET,
        &format!("/v1/desks/{desk_a}/tickets/{last_id}"),
        Some(&token("ann")),
        None,
    )
    .await;
    assert_eq!(gone.body["status"], "canceled", "{}", gone.text);
    let twice = call(
        &router,
        Method::DELETE,
        &format!("/v1/desks/{desk_a}/tickets/{last_id}"),
        Some(&token("ann")),
        None,
    )
    .await;
    assert_eq!(twice.status, StatusCode::NOT_FOUND, "{}", twice.text);

    // Tenant B's two-step flow: validate (a short hold shows the promised slot), then
    // allocate. The held slot counts as used while it is held.
    let held = book(
        &router,
        "bea",
        &desk_b,
        json!({"level": "gold", "hold": true}),
    )
    .await;
    assert_eq!(
        (held.status, &held.body["status"]),
        (StatusCode::CREATED, &json!("held")),
        "{}",
        held.text
    );
    assert!(held.body["hold_expires_at"].is_string());
    assert_eq!(
        millis(&held, "slot_start"),
        millis(&first_b, "slot_start") + DAY_MS
    );
    let held_id = held.body["ticket_id"].as_str().unwrap();
    let allocated = call(
        &router,
        Method::POST,
        &format!("/v1/desks/{desk_b}/tickets/{held_id}/confirm"),
        Some(&token("bea")),
        None,
    )
    .await;
    assert_eq!(
        (allocated.status, &allocated.body["status"]),
        (StatusCode::OK, &json!("confirmed")),
        "{}",
        allocated.text
    );
    assert_eq!(allocated.body["slot_start"], held.body["slot_start"]);
    assert!(allocated.body.get("hold_expires_at").is_none());

    // Desk A's load is still its own: booking A again changes nothing at B.
    let (used_b, _) = window(&router, OTHER_ADMIN, &desk_b, "gold").await;
    assert_eq!(used_b, 2);
    let (used_a, free_a) = window(&router, ADMIN, &desk_a, "gold").await;
    assert_eq!((used_a, free_a), (booked.len() as u64, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn desk_requests_are_validated_before_the_log() {
    let harness = Harness::start();
    let router = harness.router();
    let desk = create_desk(&router, ADMIN, day_desk("Visits")).await;
    let before = harness.requests_end();
    for (body, field) in [
        (json!({"level": "platinum"}), "level"),
        (json!({"level": ""}), "level"),
    ] {
        let answer = book(&router, "ann", &desk, body).await;
        assert_eq!(
            (answer.status, answer.field()),
            (StatusCode::BAD_REQUEST, field),
            "{}",
            answer.text
        );
    }
    let unknown = book(&router, "ann", "desk_42", json!({"level": "gold"})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
    assert_eq!(harness.requests_end(), before, "nothing reached the log");
    for (body, field) in [
        (json!({"name": "x", "agents": 0}), "agents"),
        (
            json!({"name": "x", "agents": 1, "slot_minutes": 0}),
            "slot_minutes",
        ),
        (
            json!({"name": "x", "agents": 1, "levels": [{"name": "a", "deadline_minutes": 5}, {"name": "a", "deadline_minutes": 6}]}),
            "levels[1].name",
        ),
    ] {
        let answer = call(
            &router,
            Method::POST,
            "/v1/admin/desks",
            Some(ADMIN),
            Some(body),
        )
        .await;
        assert_eq!(
            (answer.status, answer.field()),
            (StatusCode::BAD_REQUEST, field),
            "{}",
            answer.text
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn desks_are_in_the_openapi_document() {
    let harness = Harness::start();
    let router = harness.router();
    let document = call(&router, Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(document.status, StatusCode::OK);
    let paths = &document.body["paths"];
    for (path, method) in [
        ("/v1/admin/desks", "post"),
        ("/v1/admin/desks/{desk_id}", "get"),
        ("/v1/desks/{desk_id}/tickets", "post"),
        ("/v1/desks/{desk_id}/tickets/{ticket_id}", "get"),
        ("/v1/desks/{desk_id}/tickets/{ticket_id}", "delete"),
        ("/v1/desks/{desk_id}/tickets/{ticket_id}/confirm", "post"),
    ] {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} missing");
        assert_eq!(operation["tags"], json!(["desks"]), "{method} {path}");
        assert!(
            operation["summary"].is_string(),
            "{method} {path} has no summary"
        );
    }
    let conflict = &paths["/v1/desks/{desk_id}/tickets"]["post"]["responses"]["409"];
    assert!(
        conflict["description"]
            .as_str()
            .unwrap()
            .contains("sla_unavailable"),
        "{conflict}"
    );
    let schemas = &document.body["components"]["schemas"];
    for schema in [
        "CreateDeskBody",
        "LevelBody",
        "DeskLoad",
        "DeskLevelWindow",
        "DeskTicketBody",
        "DeskTicketResponse",
    ] {
        assert!(schemas[schema].is_object(), "schema {schema} missing");
    }
    assert!(schemas["DeskLoad"]["properties"]["level_windows"].is_object());
}
