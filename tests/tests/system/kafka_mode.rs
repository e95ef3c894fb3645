//! The end-to-end HTTP suite (`http_suite`) in Kafka mode: `boxoffice engine` and
//! `boxoffice ingress` as two processes per scenario, on fresh topics of the real broker
//! at `KAFKA_BOOTSTRAP`. With `CI=true` an unset `KAFKA_BOOTSTRAP` fails every test.

use crate::common::proxy::{kafka_proxied_listener, PausableProxy};
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

/// `boxoffice effects` next to a Kafka deployment: an endpoint made through the ingress
/// (the control topic) gets a booking; the worker's own listener serves the delivery log
/// and its metrics, which the ingress, with no worker in its process, refuses (503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_effects_process_delivers_and_serves_its_delivery_log() {
    let Some(service) = Service::kafka("effects-process").await else {
        return;
    };
    let effects = service.start_effects();
    let (sender, mut arrived) = tokio::sync::mpsc::unbounded_channel::<String>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let sender = sender.clone();
            async move {
                let id = headers["webhook-id"].to_str().unwrap().to_string();
                let _ = sender.send(id);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let receiving = tokio::spawn(async move { axum::serve(listener, router).await });
    let made = service
        .send(
            Method::POST,
            "/v1/admin/webhooks",
            Some(http_suite::ADMIN),
            Some(json!({"url": url, "event_types": ["booking.created"]})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let webhook = made.body["webhook_id"].as_str().unwrap().to_string();
    let event = service.create_event(event_body("Hooked", 3, 300)).await;
    let ana = token("ana");
    let held = service
        .send(
            Method::POST,
            &format!("/v1/events/{event}/holds"),
            Some(&ana),
            Some(json!({"seats": ["A-1-1"]})),
        )
        .await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
    let hold = held.body["hold_id"].as_str().unwrap();
    let booked = service
        .send(
            Method::POST,
            &format!("/v1/holds/{hold}/confirm"),
            Some(&ana),
            Some(json!({"payment_ref": "p"})),
        )
        .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text);
    let id = tokio::time::timeout(DEADLINE, arrived.recv())
        .await
        .expect("the booking's webhook arrives")
        .unwrap();
    let offset = booked.log_offset.expect("a write names its log offset");
    assert_eq!(id, format!("msg_0_{offset}_0"));

    let client = reqwest::Client::new();
    let deliveries = format!("/v1/admin/webhooks/{webhook}/deliveries");
    let began = Instant::now();
    loop {
        let answer = client
            .get(format!("{effects}{deliveries}"))
            .bearer_auth(http_suite::ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let log: serde_json::Value = answer.json().await.unwrap();
        if log["deliveries"][0]["status"] == "delivered" {
            assert_eq!(log["deliveries"][0]["message_id"], json!(id));
            break;
        }
        assert!(
            began.elapsed() < DEADLINE,
            "never recorded as delivered: {log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = client
        .get(format!("{effects}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("boxoffice_webhook_deliveries_total{outcome=\"delivered\"} 1\n")
            && metrics.ends_with("# EOF\n"),
        "{metrics}"
    );
    let refused = service
        .send(Method::GET, &deliveries, Some(http_suite::ADMIN), None)
        .await;
    assert_eq!(
        (
            refused.status,
            refused.body["error"]["details"]["reason"].as_str()
        ),
        (StatusCode::SERVICE_UNAVAILABLE, Some("no_effects_worker"))
    );
    receiving.abort();
}

/// Organiser accounts on Kafka with two ingress processes (issue "Discovery like a real
/// box office, and organiser accounts by API"): a key made through one ingress works on the
/// other once its control follower applied the record, and a key revoked through one is
/// refused on the other. (An ingress behind its control log refusing tenant keys:
/// `an_ingress_cut_off_from_the_broker_refuses_admin_keys_until_it_catches_up`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_ingress_is_refused_on_the_other() {
    let Some(first) = Service::kafka("revoked-key").await else {
        return;
    };
    first.wait_ready().await;
    let second = first.another_ingress().await;
    let (key_id, secret) = make_key(&first, "reports", "dashboards").await;
    // The first ingress answered once it applied the record: the key works there at once.
    let here = first
        .send(Method::GET, "/v1/admin/events", Some(&secret), None)
        .await;
    assert_eq!(here.status, StatusCode::OK, "{}", here.text);
    until_the_key_works(&second, &secret).await;
    let revoked = first
        .send(
            Method::DELETE,
            &format!("/v1/admin/keys/{key_id}"),
            Some(http_suite::ADMIN),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
    let refused = first
        .send(Method::GET, "/v1/admin/events", Some(&secret), None)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let began = Instant::now();
    loop {
        let there = second
            .send(Method::GET, "/v1/admin/events", Some(&secret), None)
            .await;
        if there.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(there.status, StatusCode::OK, "{}", there.text);
        assert!(
            began.elapsed() < DEADLINE,
            "the revoked key still works on the second ingress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Organiser accounts on Kafka, with the second ingress reaching the broker only through a
/// proxy that the test pauses (its network path cut, nothing in the process told): once it
/// is further behind the control log than `http.control_lag_ms_max` it refuses tenant keys
/// with 503 `control_log_behind`, so a key revoked meanwhile through the first ingress is
/// refused there although it does not know of the revocation; once the proxy resumes it
/// catches up, a key made while it was cut off works, and the revoked one is 401, never
/// accepted in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_cut_off_from_the_broker_refuses_admin_keys_until_it_catches_up() {
    // The second ingress's `http.control_lag_ms_max`: well above how stale a connected
    // ingress gets between two looks at the log's end (a few hundred ms), so only the cut
    // makes it refuse.
    const CONTROL_LAG_MAX: Duration = Duration::from_millis(1500);
    let test = "the lagging-ingress test";
    let Some(proxied) = kafka_proxied_listener(test) else {
        return;
    };
    let Some(first) = Service::kafka("lagging-ingress").await else {
        return;
    };
    first.wait_ready().await;
    let proxy = PausableProxy::start(&proxied.bootstrap, &proxied.broker, DEADLINE).await;
    let second = first
        .another_ingress_with_env(vec![
            ("BOXOFFICE_KAFKA_BROKERS", proxied.bootstrap.clone()),
            (
                "BOXOFFICE_HTTP_CONTROL_LAG_MS_MAX",
                CONTROL_LAG_MAX.as_millis().to_string(),
            ),
        ])
        .await;
    let admin_events = "/v1/admin/events";
    let (revoked_id, revoked) = make_key(&first, "reports", "revoked while cut off").await;
    until_the_key_works(&second, &revoked).await;

    proxy.pause();
    // Behind by more than the bound: every tenant key is refused, the config file's too.
    let began = Instant::now();
    let behind = loop {
        let there = second
            .send(Method::GET, admin_events, Some(http_suite::ADMIN), None)
            .await;
        if there.status == StatusCode::SERVICE_UNAVAILABLE {
            break there;
        }
        assert_eq!(there.status, StatusCode::OK, "{}", there.text);
        assert!(
            began.elapsed() < DEADLINE,
            "the second ingress, cut off, still takes admin keys"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (behind.code(), behind.reason()),
        ("unavailable", "control_log_behind"),
        "{}",
        behind.text
    );
    // Revoked, and a new key made, through the first ingress, while the second cannot see it.
    let answer = first
        .send(
            Method::DELETE,
            &format!("/v1/admin/keys/{revoked_id}"),
            Some(http_suite::ADMIN),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text);
    let revoked_at = Instant::now();
    let here = first
        .send(Method::GET, admin_events, Some(&revoked), None)
        .await;
    assert_eq!(
        (here.status, here.reason()),
        (StatusCode::UNAUTHORIZED, "unknown_admin_key"),
        "{}",
        here.text
    );
    let (_, fresh) = make_key(&first, "admin", "made while cut off").await;
    let here = first
        .send(Method::GET, admin_events, Some(&fresh), None)
        .await;
    assert_eq!(here.status, StatusCode::OK, "{}", here.text);
    // The bound promises that a revoked key is refused everywhere `lag_max` after its
    // revocation, not at once: an answer of the broker's that the proxy held when it paused
    // can tell the second, once resumed, that it had caught up as of just before the
    // revocation, fresh enough for a moment. So the second stays cut off until `lag_max`
    // has passed since the revocation; all along it still holds the revoked key as valid
    // but refuses it, being behind, and does not know the new key.
    loop {
        let there = second
            .send(Method::GET, admin_events, Some(&revoked), None)
            .await;
        assert_eq!(
            (there.status, there.reason()),
            (StatusCode::SERVICE_UNAVAILABLE, "control_log_behind"),
            "the revoked key on the cut-off ingress: {}",
            there.text
        );
        let there = second
            .send(Method::GET, admin_events, Some(&fresh), None)
            .await;
        assert_eq!(
            (there.status, there.reason()),
            (StatusCode::UNAUTHORIZED, "unknown_admin_key"),
            "the new key on the cut-off ingress: {}",
            there.text
        );
        if revoked_at.elapsed() > CONTROL_LAG_MAX {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    proxy.resume();
    // Until the new key works there (the second applied the records after the
    // revocation), the revoked key is refused at every look: 503 while behind, 401 after.
    let began = Instant::now();
    loop {
        let there = second
            .send(Method::GET, admin_events, Some(&revoked), None)
            .await;
        assert!(
            [
                (StatusCode::SERVICE_UNAVAILABLE, "control_log_behind"),
                (StatusCode::UNAUTHORIZED, "unknown_admin_key"),
            ]
            .contains(&(there.status, there.reason())),
            "the revoked key on the second ingress: {}",
            there.text
        );
        let there = second
            .send(Method::GET, admin_events, Some(&fresh), None)
            .await;
        if there.status == StatusCode::OK {
            break;
        }
        assert!(
            [
                (StatusCode::SERVICE_UNAVAILABLE, "control_log_behind"),
                (StatusCode::UNAUTHORIZED, "unknown_admin_key"),
            ]
            .contains(&(there.status, there.reason())),
            "the new key on the second ingress: {}",
            there.text
        );
        assert!(
            began.elapsed() < DEADLINE,
            "the second ingress never caught up once its proxy resumed: {}",
            there.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let there = second
        .send(Method::GET, admin_events, Some(&revoked), None)
        .await;
    assert_eq!(
        (there.status, there.reason()),
        (StatusCode::UNAUTHORIZED, "unknown_admin_key"),
        "{}",
        there.text
    );
    second.wait_ready().await;
}

/// Issue 23 with two ingresses: an erasure recorded through one is applied by the other
/// (both follow the control topic). Each ingress's personal-data store knows the users
/// whose requests it took, so the second resolves only what came through it (PRIVACY.md,
/// "Not built yet"); once erased, both show the booking `erased`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_through_one_ingress_is_applied_by_every_ingress() {
    let Some(first) = Service::kafka("erasure").await else {
        return;
    };
    let event = first.create_event(event_body("Erase", 3, 300)).await;
    let user = "dora.kafka-erasure@example.org";
    let held = first
        .send(
            Method::POST,
            &format!("/v1/events/{event}/holds"),
            Some(&token(user)),
            Some(json!({"seats": ["A-1-1"]})),
        )
        .await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
    let hold = held.body["hold_id"].as_str().unwrap();
    let booked = first
        .send(
            Method::POST,
            &format!("/v1/holds/{hold}/confirm"),
            Some(&token(user)),
            Some(json!({"payment_ref": "p"})),
        )
        .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text);
    let second = first.another_ingress().await;
    assert_eq!(export(&first, &event).await, (json!(user), json!("known")));
    assert_eq!(
        export(&second, &event).await,
        (json!(null), json!("unknown"))
    );

    // Erased through the second ingress, by the user id: it knows the pseudonym's
    // booking from its read model.
    let erased = second
        .send(
            Method::POST,
            "/v1/operator/users/erase",
            Some(http_suite::OPERATOR),
            Some(json!({"user_id": user})),
        )
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.text);
    assert_eq!(
        export(&second, &event).await,
        (json!(null), json!("erased"))
    );
    let began = Instant::now();
    while export(&first, &event).await != (json!(null), json!("erased")) {
        assert!(
            began.elapsed() < DEADLINE,
            "the first ingress never applied the erasure"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.wait_ready().await;
    second.wait_ready().await;
}

/// The first attendee of `event` as `service`'s export shows them: (user, identity).
async fn export(service: &Service, event: &str) -> (serde_json::Value, serde_json::Value) {
    let path = format!("/v1/admin/events/{event}/attendees");
    let (status, body) = service.get(&path, Some(http_suite::ADMIN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let attendee = body["attendees"][0].clone();
    (attendee["user"].clone(), attendee["identity"].clone())
}

/// A tenant key made through `ingress` with the demo admin key: (key id, secret).
async fn make_key(ingress: &Service, role: &str, name: &str) -> (String, String) {
    let made = ingress
        .send(
            Method::POST,
            "/v1/admin/keys",
            Some(http_suite::ADMIN),
            Some(json!({"role": role, "name": name})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let field = |name: &str| made.body[name].as_str().unwrap().to_string();
    (field("key_id"), field("secret"))
}

/// Waits (bounded) until `ingress` takes `secret`, as it does once its control follower
/// applied the key's record.
async fn until_the_key_works(ingress: &Service, secret: &str) {
    let began = Instant::now();
    loop {
        let there = ingress
            .send(Method::GET, "/v1/admin/events", Some(secret), None)
            .await;
        if there.status == StatusCode::OK {
            return;
        }
        assert!(
            began.elapsed() < DEADLINE,
            "the key never worked on the second ingress: {}",
            there.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
