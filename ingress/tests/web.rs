//! The seat-map page, its live stream and the demo user switcher, through
//! `Router::oneshot` over the embedded logs and the test engine.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use tower::ServiceExt;

/// Long enough for any frame on a loaded machine; frames normally come within 250 ms.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// An open seat-map stream, read frame by frame.
struct Stream {
    body: axum::body::BodyDataStream,
    buffer: String,
}

impl Stream {
    async fn open(router: &axum::Router, event: &str) -> Stream {
        let request = Request::builder()
            .uri(format!("/v1/events/{event}/stream"))
            .body(Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Stream {
            body: response.into_body().into_data_stream(),
            buffer: String::new(),
        }
    }

    /// The next `availability` frame's data, or `None` when the stream ended.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let message: String = self.buffer.drain(..end + 2).collect();
                if !message.lines().any(|line| line == "event: availability") {
                    continue; // a keep-alive comment
                }
                let data: String = message
                    .lines()
                    .filter_map(|line| line.strip_prefix("data: "))
                    .collect();
                return Some(serde_json::from_str(&data).unwrap());
            }
            let chunk = tokio::time::timeout(FRAME_TIMEOUT, self.body.next())
                .await
                .expect("a frame in time")?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    }
}

fn seat_status(frame: &Value, seat: &str) -> String {
    frame["seats"]["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|section| section["rows"].as_array().unwrap())
        .flat_map(|row| row["seats"].as_array().unwrap())
        .find(|entry| entry["id"] == seat)
        .map(|entry| entry["status"].as_str().unwrap().to_string())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_follows_holds_bookings_and_releases() {
    let harness = Harness::start();
    let router = harness.router();
    let event = create_event(&router, event_body("Live", 4, 300)).await;
    let mut stream = Stream::open(&router, &event).await;

    let first = stream.next().await.unwrap();
    assert_eq!(first["event_id"], event.as_str());
    assert_eq!(seat_status(&first, "A-1-1"), "free");
    assert_eq!(first["event"]["availability"][0]["free"], 8);

    let alice = token("alice");
    let hold = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&alice),
        Some(json!({"seats": ["A-1-1", "A-1-2"]})),
    )
    .await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.text);
    let held = stream.next().await.unwrap();
    assert_eq!(
        (seat_status(&held, "A-1-1"), seat_status(&held, "A-1-2")),
        ("held".to_string(), "held".to_string())
    );
    assert_eq!(held["event"]["availability"][0]["held"], 2);
    assert!(held["log_offset"].as_u64() > first["log_offset"].as_u64());

    let hold_id = hold.body["hold_id"].as_str().unwrap();
    let booking = call(
        &router,
        Method::POST,
        &format!("/v1/holds/{hold_id}/confirm"),
        Some(&alice),
        Some(json!({"payment_ref": "pay-1"})),
    )
    .await;
    assert_eq!(booking.status, StatusCode::CREATED, "{}", booking.text);
    let booked = stream.next().await.unwrap();
    assert_eq!(seat_status(&booked, "A-1-1"), "booked");

    // General admission changes the counters, and so a frame too.
    call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&token("bob")),
        Some(json!({"quantity": 3, "category": "Floor"})),
    )
    .await;
    let pool = stream.next().await.unwrap();
    assert_eq!(pool["event"]["availability"][1]["held"], 3);

    // Shutting down ends the stream, so graceful shutdown is not held up by it.
    harness.state.begin_shutdown();
    assert!(stream.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_of_an_unknown_event_is_404_and_documented() {
    let harness = Harness::start();
    let router = harness.router();
    for event in ["ev_7", "nonsense"] {
        let answer = call(
            &router,
            Method::GET,
            &format!("/v1/events/{event}/stream"),
            None,
            None,
        )
        .await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::NOT_FOUND, "not_found")
        );
    }
    let document = call(&router, Method::GET, "/v1/openapi.json", None, None).await;
    let paths = &document.body["paths"];
    let stream = &paths["/v1/events/{event_id}/stream"]["get"];
    assert!(stream["responses"]["200"]["content"]["text/event-stream"].is_object());
    assert!(paths["/v1/demo/tokens"]["post"].is_object());
    assert!(document.body["components"]["schemas"]["LiveFrame"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_and_its_assets_are_served() {
    let harness = Harness::start();
    let router = harness.router();
    for (path, content_type, expected) in [
        ("/", "text/html; charset=utf-8", "<title>Boxoffice</title>"),
        ("/events/ev_3", "text/html; charset=utf-8", "id=\"seatmap\""),
        (
            "/web/app.js",
            "text/javascript; charset=utf-8",
            "/v1/events/${eventId}/stream",
        ),
        ("/web/app.css", "text/css; charset=utf-8", ".seat"),
    ] {
        let answer = call(&router, Method::GET, path, None, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(answer.headers["content-type"], content_type, "{path}");
        assert!(answer.text.contains(expected), "{path}");
        assert!(answer.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
    }
    // No third-party script is served: ticket QR codes are rendered by the server.
    for path in ["/web/other.js", "/web/qrcode.js"] {
        let missing = call(&router, Method::GET, path, None, None).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_tokens_are_minted_with_the_development_secret() {
    assert_eq!(
        config().user_token_secret,
        ingress::DEVELOPMENT_USER_TOKEN_SECRET
    );
    assert!(config().demo_tokens_enabled());
    let harness = Harness::start();
    let router = harness.router();
    let minted = call(
        &router,
        Method::POST,
        "/v1/demo/tokens",
        None,
        Some(json!({"user": "alice"})),
    )
    .await;
    assert_eq!(minted.status, StatusCode::CREATED, "{}", minted.text);
    assert_eq!(minted.body["user"], "alice");
    let bookings = call(
        &router,
        Method::GET,
        "/v1/bookings",
        Some(minted.body["token"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(bookings.status, StatusCode::OK, "{}", bookings.text);

    for bad in [json!({"user": ""}), json!({"user": "al ice"}), json!({})] {
        let answer = call(&router, Method::POST, "/v1/demo/tokens", None, Some(bad)).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::BAD_REQUEST, "bad_request")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn outside_development_mode_the_demo_token_endpoint_does_not_exist() {
    let mut config = config();
    config.development = false;
    assert!(!config.demo_tokens_enabled());
    let harness = Harness::with_config(config, true);
    let answer = call(
        &harness.router(),
        Method::POST,
        "/v1/demo/tokens",
        None,
        Some(json!({"user": "alice"})),
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert!(!answer.text.contains("eyJ"), "no token in {}", answer.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_tokens_are_never_minted_with_another_secret() {
    let mut config = config();
    config.user_token_secret = "a-secret-of-production".into();
    assert!(!config.demo_tokens_enabled());
    let harness = Harness::with_config(config, true);
    let router = harness.router();
    let answer = call(
        &router,
        Method::POST,
        "/v1/demo/tokens",
        None,
        Some(json!({"user": "alice"})),
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert!(!answer.text.contains("eyJ"), "no token in {}", answer.text);
    // The page still works; only the switcher is off.
    let page = call(&router, Method::GET, "/", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_are_capped_and_a_closed_one_frees_its_place() {
    let mut config = config();
    config.streams_max = 1;
    let harness = Harness::with_config(config, true);
    let router = harness.router();
    let event = create_event(&router, event_body("Capped", 2, 300)).await;
    let mut first = Stream::open(&router, &event).await;
    assert!(first.next().await.is_some());
    let refused = call(
        &router,
        Method::GET,
        &format!("/v1/events/{event}/stream"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    let metrics = call(&router, Method::GET, "/metrics", None, None).await;
    assert!(metrics.text.contains("boxoffice_seat_map_streams 1"));
    drop(first);
    let mut second = Stream::open(&router, &event).await;
    assert!(second.next().await.is_some());
}
