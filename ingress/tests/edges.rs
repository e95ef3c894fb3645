//! The edge's limits (issue 14, item 6), through `Router::oneshot` with the client's
//! socket address set as `serve` sets it (`ConnectInfo`): metric labels stay bounded,
//! `X-Forwarded-For` counts only behind a trusted proxy, IPv6 clients are limited per /64,
//! open long-polls and streams are capped per user and per address, every request has a
//! timeout, and a 503 says the request may or may not have been applied.

mod common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use common::*;
use ingress::IngressConfig;
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

/// A request from `peer` (as the socket would tell), with optional headers and token.
fn request_from(
    peer: &str,
    method: Method,
    uri: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let peer: IpAddr = peer.parse().unwrap();
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .extension(ConnectInfo(SocketAddr::new(peer, 40_000)));
    if let Some(bearer) = bearer {
        request = request.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::empty()).unwrap()
}

async fn get_from(
    router: &Router,
    peer: &str,
    uri: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    let request = request_from(peer, Method::GET, uri, bearer, headers);
    answer(router.clone().oneshot(request).await.unwrap()).await
}

/// Rate limits on, one request per second per address (burst 1), generous per user.
fn one_request_per_address() -> IngressConfig {
    let mut config = config();
    config.rate_limit.enabled = true;
    config.rate_limit.per_address_per_second = 1;
    config.rate_limit.per_address_burst = 1;
    config
}

/// Rate limits (and with them the caps on open requests) on, the rates out of the way.
fn caps_only() -> IngressConfig {
    let mut config = config();
    config.rate_limit.enabled = true;
    config.rate_limit.per_address_per_second = 10_000;
    config.rate_limit.per_address_burst = 10_000;
    config.rate_limit.per_user_per_second = 10_000;
    config.rate_limit.per_user_burst = 10_000;
    config
}

#[track_caller]
fn assert_refused(answer: &Answer, reason: &str) {
    assert_eq!(
        (answer.status, answer.code(), answer.reason()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited", reason),
        "{}",
        answer.text
    );
    assert!(
        answer.headers.contains_key("retry-after"),
        "{:?}",
        answer.headers
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn random_methods_do_not_grow_the_metrics() {
    let harness = Harness::start();
    let router = harness.router();
    let metrics_lines = |text: &str| text.lines().count();
    // A small xorshift: many distinct method names, the same every run.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random_method = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        Method::from_bytes(format!("M{seed:016X}").as_bytes()).unwrap()
    };
    let send = |method: Method, uri: &'static str| {
        let router = router.clone();
        async move {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap();
            router.oneshot(request).await.unwrap().status()
        }
    };
    // One of each kind first (and a scrape), so the series that exist at all exist.
    for uri in ["/v1/events", "/no/such/path"] {
        let status = send(random_method(), uri).await;
        assert!(status.is_client_error(), "{status}");
    }
    call(&router, Method::GET, "/metrics", None, None).await;
    let before = call(&router, Method::GET, "/metrics", None, None)
        .await
        .text;
    let mut sent = Vec::new();
    for index in 0..500 {
        let method = random_method();
        sent.push(method.to_string());
        let uri = if index % 2 == 0 {
            "/v1/events"
        } else {
            "/no/such/path"
        };
        send(method, uri).await;
    }
    let after = call(&router, Method::GET, "/metrics", None, None)
        .await
        .text;
    assert_eq!(
        metrics_lines(&after),
        metrics_lines(&before),
        "new series after 500 random methods:\n{after}"
    );
    assert!(
        after.contains(
            "boxoffice_http_requests_total{route=\"/v1/events\",method=\"other\",status=\"405\"} 251\n"
        ),
        "{after}"
    );
    assert!(sent.iter().all(|method| !after.contains(method.as_str())));
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let harness = Harness::with_config(one_request_per_address(), true);
    let router = harness.router();
    let spoofed = |address| [("x-forwarded-for", address)];
    let first = get_from(
        &router,
        "203.0.113.9",
        "/v1/events",
        None,
        &spoofed("198.51.100.1"),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    // Another claimed address does not get another bucket: the peer is the client.
    let second = get_from(
        &router,
        "203.0.113.9",
        "/v1/events",
        None,
        &spoofed("198.51.100.2"),
    )
    .await;
    assert_refused(&second, "address_rate_limit");
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    let mut config = one_request_per_address();
    config.trusted_proxies = vec![ingress::parse_trusted_proxy("10.0.0.0/8").unwrap()];
    let harness = Harness::with_config(config, true);
    let router = harness.router();
    let proxy = "10.0.0.2";
    for client in ["198.51.100.1", "198.51.100.2"] {
        let answer = get_from(
            &router,
            proxy,
            "/v1/events",
            None,
            &[("x-forwarded-for", client)],
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{client}: {}", answer.text);
    }
    // The first client again, with a forged entry on the left: still the first client.
    let again = get_from(
        &router,
        proxy,
        "/v1/events",
        None,
        &[("x-forwarded-for", "6.6.6.6, 198.51.100.1")],
    )
    .await;
    assert_refused(&again, "address_rate_limit");
}

#[tokio::test(flavor = "multi_thread")]
async fn ipv6_clients_in_one_64_share_a_bucket() {
    let harness = Harness::with_config(one_request_per_address(), true);
    let router = harness.router();
    let first = get_from(&router, "2001:db8:1:2::1", "/v1/events", None, &[]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let neighbour = get_from(&router, "2001:db8:1:2:ffff::9", "/v1/events", None, &[]).await;
    assert_refused(&neighbour, "address_rate_limit");
    let other_64 = get_from(&router, "2001:db8:1:3::1", "/v1/events", None, &[]).await;
    assert_eq!(other_64.status, StatusCode::OK, "{}", other_64.text);
}

/// An event whose Gold seats are all held, so Gold waitlist entries stay waiting.
async fn sold_out_gold(router: &Router) -> String {
    let event = create_event(router, event_body("Waiting", 1, 300)).await;
    let held = call(
        router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&token("seller")),
        Some(json!({"quantity": 2, "category": "Gold"})),
    )
    .await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
    event
}

async fn join_waitlist(router: &Router, event: &str, user: &str) -> String {
    let joined = call(
        router,
        Method::POST,
        &format!("/v1/events/{event}/waitlist"),
        Some(&token(user)),
        Some(json!({"quantity": 1, "category": "Gold"})),
    )
    .await;
    assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.text);
    joined.body["waitlist_id"].as_str().unwrap().to_string()
}

/// Starts a long-poll and returns once it waits (the ingress counts it).
async fn start_long_poll(
    harness: &Harness,
    peer: &'static str,
    user: &str,
    entry: &str,
) -> tokio::task::JoinHandle<Answer> {
    let waiting = harness.state.long_polls();
    let router = harness.router();
    let uri = format!("/v1/waitlist/{entry}?wait_seconds=30");
    let bearer = token(user);
    let poll = tokio::spawn(async move { get_from(&router, peer, &uri, Some(&bearer), &[]).await });
    while harness.state.long_polls() == waiting {
        assert!(!poll.is_finished(), "the long-poll answered at once");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    poll
}

async fn leave(router: &Router, user: &str, entry: &str) {
    let left = call(
        router,
        Method::DELETE,
        &format!("/v1/waitlist/{entry}"),
        Some(&token(user)),
        None,
    )
    .await;
    assert_eq!(left.status, StatusCode::OK, "{}", left.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn long_polls_are_capped_per_user() {
    let mut config = caps_only();
    config.long_polls_per_user_max = 1;
    let harness = Harness::with_config(config, true);
    let router = harness.router();
    let event = sold_out_gold(&router).await;
    let first = join_waitlist(&router, &event, "bob").await;
    let second = join_waitlist(&router, &event, "bob").await;

    let polling = start_long_poll(&harness, "192.0.2.1", "bob", &first).await;
    let bob = token("bob");
    let long_poll = format!("/v1/waitlist/{second}?wait_seconds=30");
    let refused = get_from(&router, "192.0.2.2", &long_poll, Some(&bob), &[]).await;
    assert_refused(&refused, "long_polls_per_user_max");
    assert_eq!(
        refused.body["error"]["details"]["max"], 1,
        "{}",
        refused.text
    );
    // A plain read is not a long-poll.
    let read = format!("/v1/waitlist/{second}");
    let status = get_from(&router, "192.0.2.2", &read, Some(&bob), &[]).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.text);
    // Another user is not counted against bob.
    let carol_entry = join_waitlist(&router, &event, "carol").await;
    let carol = start_long_poll(&harness, "192.0.2.3", "carol", &carol_entry).await;

    // The first long-poll answers when bob leaves; its place is free again.
    leave(&router, "bob", &first).await;
    let answered = polling.await.unwrap();
    assert_eq!(answered.body["status"], "left", "{}", answered.text);
    let again = start_long_poll(&harness, "192.0.2.2", "bob", &second).await;
    leave(&router, "bob", &second).await;
    leave(&router, "carol", &carol_entry).await;
    assert_eq!(again.await.unwrap().status, StatusCode::OK);
    assert_eq!(carol.await.unwrap().status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn long_polls_are_capped_per_address_and_an_ipv6_64_is_one_address() {
    let mut config = caps_only();
    config.long_polls_per_address_max = 1;
    let harness = Harness::with_config(config, true);
    let router = harness.router();
    let event = sold_out_gold(&router).await;
    let bob_entry = join_waitlist(&router, &event, "bob").await;
    let carol_entry = join_waitlist(&router, &event, "carol").await;

    let bob = start_long_poll(&harness, "2001:db8::1", "bob", &bob_entry).await;
    let refused = get_from(
        &router,
        "2001:db8::2",
        &format!("/v1/waitlist/{carol_entry}?wait_seconds=30"),
        Some(&token("carol")),
        &[],
    )
    .await;
    assert_refused(&refused, "long_polls_per_address_max");
    let carol = start_long_poll(&harness, "2001:db8:0:1::2", "carol", &carol_entry).await;
    leave(&router, "bob", &bob_entry).await;
    leave(&router, "carol", &carol_entry).await;
    assert_eq!(bob.await.unwrap().body["status"], "left");
    assert_eq!(carol.await.unwrap().body["status"], "left");
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_are_capped_per_address() {
    let mut config = caps_only();
    config.streams_per_address_max = 1;
    let harness = Harness::with_config(config, true);
    let router = harness.router();
    let event = create_event(&router, event_body("Streamed", 2, 300)).await;
    let uri = format!("/v1/events/{event}/stream");
    let open = |peer: &'static str| {
        let request = request_from(peer, Method::GET, &uri, None, &[]);
        router.clone().oneshot(request)
    };
    let first = open("192.0.2.1").await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let refused = answer(open("192.0.2.1").await.unwrap()).await;
    assert_refused(&refused, "streams_per_address_max");
    let other = open("192.0.2.2").await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    // Closing the stream frees its place.
    drop(first);
    let again = open("192.0.2.1").await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}

/// A route that answers only when the test lets it go: a handler that outlives the
/// request timeout, behind the same layers as the API's.
fn stuck_route(released: mpsc::Receiver<()>) -> Router {
    let released = Arc::new(Mutex::new(released));
    Router::new().route(
        "/stuck",
        axum::routing::post(move || {
            let released = Arc::clone(&released);
            async move {
                // Ends when the test sends or drops the sender.
                let _ = tokio::task::spawn_blocking(move || released.lock().unwrap().recv()).await;
                "released by the test"
            }
        }),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_over_the_timeout_is_503_and_says_to_retry_with_the_same_key() {
    let mut config = config();
    config.outcome_timeout = Duration::from_millis(100);
    config.request_timeout = Duration::from_millis(300);
    let harness = Harness::with_config(config, false);
    let (release, released) = mpsc::channel();
    let router = ingress::app_with(harness.state.clone(), stuck_route(released));
    let stuck = call(&router, Method::POST, "/stuck", Some(OPERATOR), None).await;
    release.send(()).unwrap();
    assert_eq!(
        (stuck.status, stuck.code(), stuck.reason()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "request_timeout"
        ),
        "{}",
        stuck.text
    );
    let message = stuck.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("may or may not have been applied")
            && message.contains("retry with the same Idempotency-Key"),
        "{message}"
    );
    // Counted like any answer.
    let metrics = call(&router, Method::GET, "/metrics", None, None).await;
    assert!(
        metrics.text.contains(
            "boxoffice_http_requests_total{route=\"/stuck\",method=\"POST\",status=\"503\"} 1"
        ),
        "{}",
        metrics.text
    );
}

#[test]
fn the_request_timeout_must_leave_room_for_a_write() {
    let mut config = IngressConfig::default();
    config.request_timeout = config.outcome_timeout;
    let error = config.validate().unwrap_err();
    assert!(error.contains("http.request_timeout_ms"), "{error}");
    let config = IngressConfig {
        long_polls_per_user_max: 0,
        ..IngressConfig::default()
    };
    let error = config.validate().unwrap_err();
    assert!(error.contains("http.long_polls_per_user_max"), "{error}");
}
