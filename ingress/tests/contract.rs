//! The OpenAPI document is the exact contract: what it allows, the server accepts, and
//! what it refuses, the server refuses. Limits are read from the served document, so these
//! tests follow it rather than copy its numbers. (`scripts/schemathesis.sh` checks the
//! whole document the same way with generated requests.)

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{json, Value};

async fn served_document(router: &axum::Router) -> Value {
    let answer = call(router, Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.body
}

/// `maxLength` of a body schema's property.
fn max_length(document: &Value, schema: &str, property: &str) -> usize {
    document["components"]["schemas"][schema]["properties"][property]["maxLength"]
        .as_u64()
        .unwrap_or_else(|| panic!("{schema}.{property} has a maxLength")) as usize
}

/// Four bytes of UTF-8 each: the widest characters there are.
fn widest(chars: usize) -> String {
    "😀".repeat(chars)
}

/// Text limits count characters, as JSON Schema's `maxLength` does: text of exactly
/// `maxLength` four-byte characters is accepted, one more ASCII character is refused.
#[tokio::test(flavor = "multi_thread")]
async fn text_limits_count_characters_as_the_document_does() {
    let harness = Harness::start();
    let router = harness.router();
    let document = served_document(&router).await;

    let name_max = max_length(&document, "CreateEventBody", "name");
    let mut body = event_body("placeholder", 3, 300);
    body["name"] = json!(widest(name_max));
    body["description"] = json!(widest(max_length(
        &document,
        "CreateEventBody",
        "description"
    )));
    let event = create_event(&router, body.clone()).await;
    let read = call(
        &router,
        Method::GET,
        &format!("/v1/events/{event}"),
        None,
        None,
    )
    .await;
    assert_eq!(read.body["name"].as_str(), Some(widest(name_max).as_str()));
    body["name"] = json!("x".repeat(name_max + 1));
    let refused = call(
        &router,
        Method::POST,
        "/v1/admin/events",
        Some(ADMIN),
        Some(body),
    )
    .await;
    assert_eq!(
        (refused.status, refused.reason(), refused.field()),
        (StatusCode::BAD_REQUEST, "invalid_field", "name")
    );

    // A payment reference of the widest characters up to its limit books.
    let alice = token("alice");
    let held = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&alice),
        Some(json!({"seats": ["A-1-1"]})),
    )
    .await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
    let hold = held.body["hold_id"].as_str().unwrap();
    let payment_ref_max = max_length(&document, "ConfirmBody", "payment_ref");
    let too_long = call(
        &router,
        Method::POST,
        &format!("/v1/holds/{hold}/confirm"),
        Some(&alice),
        Some(json!({"payment_ref": "p".repeat(payment_ref_max + 1)})),
    )
    .await;
    assert_eq!(
        (too_long.status, too_long.field()),
        (StatusCode::BAD_REQUEST, "payment_ref")
    );
    let booked = call(
        &router,
        Method::POST,
        &format!("/v1/holds/{hold}/confirm"),
        Some(&alice),
        Some(json!({"payment_ref": widest(payment_ref_max)})),
    )
    .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text);

    // A seat id up to its documented length is looked up (unknown here), not refused.
    let seat_max = document["components"]["schemas"]["HoldBody"]["properties"]["seats"]["items"]
        ["maxLength"]
        .as_u64()
        .unwrap() as usize;
    let holds = format!("/v1/events/{event}/holds");
    let unknown = call(
        &router,
        Method::POST,
        &holds,
        Some(&alice),
        Some(json!({"seats": [widest(seat_max)]})),
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.reason()),
        (StatusCode::NOT_FOUND, "unknown_seats")
    );
    let refused = call(
        &router,
        Method::POST,
        &holds,
        Some(&alice),
        Some(json!({"seats": ["x".repeat(seat_max + 1)]})),
    )
    .await;
    assert_eq!(
        (refused.status, refused.field()),
        (StatusCode::BAD_REQUEST, "seats[0]")
    );
}

/// The search filters of `GET /v1/events` count characters too.
#[tokio::test(flavor = "multi_thread")]
async fn search_filters_count_characters_as_the_document_does() {
    let harness = Harness::start();
    let router = harness.router();
    let document = served_document(&router).await;
    let parameters = document["paths"]["/v1/events"]["get"]["parameters"]
        .as_array()
        .unwrap();
    for name in ["q", "city", "country", "venue"] {
        let max = parameters
            .iter()
            .find(|parameter| parameter["name"] == name)
            .and_then(|parameter| parameter["schema"]["maxLength"].as_u64())
            .unwrap_or_else(|| panic!("{name} has a maxLength")) as usize;
        // "é" percent-encoded: two bytes of UTF-8, one character.
        let at_most = format!("/v1/events?{name}={}", "%C3%A9".repeat(max));
        let answer = call(&router, Method::GET, &at_most, None, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}: {}", answer.text);
        let over = format!("/v1/events?{name}={}", "e".repeat(max + 1));
        let answer = call(&router, Method::GET, &over, None, None).await;
        assert_eq!(
            (answer.status, answer.reason(), answer.field()),
            (StatusCode::BAD_REQUEST, "invalid_field", name)
        );
    }
}

/// A text of characters Rust does not count as whitespace (U+001C, which Python's `\s`
/// does) is not blank: the document's pattern and the server agree on it.
#[tokio::test(flavor = "multi_thread")]
async fn blank_means_rusts_whitespace_in_the_document_and_the_server() {
    let harness = Harness::start();
    let router = harness.router();
    let document = served_document(&router).await;
    let pattern = document["components"]["schemas"]["CreateEventBody"]["properties"]["name"]
        ["pattern"]
        .as_str()
        .unwrap()
        .to_string();
    let pattern = regex::Regex::new(&pattern).unwrap();
    for (name, accepted) in [("\u{1c}", true), ("\u{3000}\t ", false)] {
        assert_eq!(pattern.is_match(name), accepted, "{name:?}");
        let mut body = event_body("placeholder", 1, 300);
        body["name"] = json!(name);
        let answer = call(
            &router,
            Method::POST,
            "/v1/admin/events",
            Some(ADMIN),
            Some(body),
        )
        .await;
        let expected = if accepted {
            StatusCode::CREATED
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(answer.status, expected, "{name:?}: {}", answer.text);
    }
}
