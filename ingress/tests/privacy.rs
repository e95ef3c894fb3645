//! Issue 23 at the ingress: a token's `sub` (here an e-mail) becomes a pseudonym before
//! anything is appended, so the requests and outcomes logs carry no e-mail, while the
//! attendee export resolves the pseudonym through the personal-data store. Erasure needs
//! a control log (`tests/tests/system/privacy.rs` runs it on `boxoffice serve`).

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use requestlog::{EmbeddedLog, LogReader};
use serde_json::json;
use std::time::Duration;

const ALICE: &str = "alice.pseudonym-test@example.com";

/// Every record of `log`, from offset 0.
fn records(log: &EmbeddedLog) -> Vec<Vec<u8>> {
    let mut reader = log.reader();
    let end = reader.end_offset().unwrap();
    let mut payloads = Vec::new();
    while reader.position() < end {
        payloads.extend(
            reader
                .poll(1024, Duration::from_millis(100))
                .unwrap()
                .into_iter()
                .map(|record| record.payload),
        );
    }
    payloads
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_carry_pseudonyms_and_the_export_resolves_them() {
    let harness = Harness::start();
    let router = harness.router();
    let event = create_event(&router, event_body("Private", 4, 300)).await;
    let held = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&token(ALICE)),
        Some(json!({"seats": ["A-1-1"]})),
    )
    .await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
    let hold = held.body["hold_id"].as_str().unwrap();
    let booked = call(
        &router,
        Method::POST,
        &format!("/v1/holds/{hold}/confirm"),
        Some(&token(ALICE)),
        Some(json!({"payment_ref": "pay_1"})),
    )
    .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text);
    // Her own reads find what she did, under the same token.
    let mine = call(
        &router,
        Method::GET,
        "/v1/bookings",
        Some(&token(ALICE)),
        None,
    )
    .await;
    assert_eq!(
        mine.body["bookings"].as_array().unwrap().len(),
        1,
        "{}",
        mine.text
    );

    let export = call(
        &router,
        Method::GET,
        &format!("/v1/admin/events/{event}/attendees"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.text);
    let attendee = &export.body["attendees"][0];
    assert_eq!(
        (&attendee["user"], &attendee["identity"]),
        (&json!(ALICE), &json!("known"))
    );
    let pseudonym = attendee["pseudonym"].as_str().unwrap();
    assert!(
        pseudonym.starts_with(ingress::PSEUDONYM_PREFIX)
            && pseudonym.len() == ingress::PSEUDONYM_CHARS,
        "{pseudonym}"
    );

    // The logs: the pseudonym in every user's place, the e-mail nowhere.
    let requests = records(&harness.requests);
    let outcomes = records(&harness.outcomes);
    assert!(requests.len() >= 3 && !outcomes.is_empty());
    for payload in requests.iter().chain(&outcomes) {
        assert!(!contains(payload, ALICE) && !contains(payload, "alice."));
    }
    assert!(
        requests.iter().any(|payload| contains(payload, pseudonym)),
        "her hold names her by pseudonym"
    );

    // Without a control log an erasure cannot be recorded: said so, nothing changes.
    let refused = call(
        &router,
        Method::POST,
        "/v1/operator/users/erase",
        Some(OPERATOR),
        Some(json!({"user_id": ALICE})),
    )
    .await;
    assert_eq!(
        (refused.status, refused.reason()),
        (StatusCode::SERVICE_UNAVAILABLE, "no_control_log"),
        "{}",
        refused.text
    );
}
