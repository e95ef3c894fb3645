//! The end-to-end HTTP suite (`http_suite`) in Kafka mode: `boxoffice engine` and
//! `boxoffice ingress` as two processes per scenario, on fresh topics of the real broker
//! at `KAFKA_BOOTSTRAP`. With `CI=true` an unset `KAFKA_BOOTSTRAP` fails every test.

use crate::http_suite;

suite!(http_suite::Service::kafka);

use http_suite::{event_body, token, Service, DEADLINE};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};

/// Several ingress processes serve one engine: a second ingress started after traffic
/// builds its read model from the outcomes topic before it says it is ready, each answers
/// its own writes, and both stay ready (the outcomes topic's transaction markers take offsets
/// that are never read: the followers still see that they reached its end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ingress_catches_up_and_both_serve_one_engine() {
    let Some(first) = Service::kafka("second-ingress").await else {
        return;
    };
    let event = first.create_event(event_body("Two", 3, 300)).await;
    let holds = format!("/v1/events/{event}/holds");
    let alice = first
        .send(
            Method::POST,
            &holds,
            Some(&token("alice")),
            Some(json!({"seats": ["A-1-1"]})),
        )
        .await;
    assert_eq!(alice.status, StatusCode::CREATED, "{}", alice.text);
    first.wait_ready().await;

    let second = first.another_ingress().await;
    assert_eq!(
        second.seat_rows(&event).await,
        ["hff", "fff"],
        "the second ingress was ready only with the hold in its read model"
    );
    let bob = second
        .send(
            Method::POST,
            &holds,
            Some(&token("bob")),
            Some(json!({"seats": ["A-1-1", "A-1-2"]})),
        )
        .await;
    assert_eq!(
        (bob.status, bob.body["error"]["details"]["seats"].clone()),
        (StatusCode::CONFLICT, json!(["A-1-1"])),
        "{}",
        bob.text
    );
    let bob = second
        .send(
            Method::POST,
            &holds,
            Some(&token("bob")),
            Some(json!({"seats": ["A-1-2"]})),
        )
        .await;
    assert_eq!(bob.status, StatusCode::CREATED, "{}", bob.text);
    assert_eq!(second.seat_rows(&event).await, ["hhf", "fff"]);
    // The first ingress follows the same outcomes: it shows Bob's hold soon after.
    let began = Instant::now();
    while first.seat_rows(&event).await != ["hhf", "fff"] {
        assert!(
            began.elapsed() < DEADLINE,
            "the first ingress never saw Bob's hold"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Alice confirms through the second ingress: a hold is the user's, not the ingress's.
    let hold = alice.body["hold_id"].as_str().unwrap();
    let booked = second
        .send(
            Method::POST,
            &format!("/v1/holds/{hold}/confirm"),
            Some(&token("alice")),
            Some(json!({"payment_ref": "p"})),
        )
        .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text);
    first.wait_ready().await;
    second.wait_ready().await;
}
