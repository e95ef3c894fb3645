//! `GET /v1/me/notifications` over HTTP (through `Router::oneshot`, the embedded logs and
//! the test engine): each user reads their own events, with the webhooks' types, bodies
//! and ids, in order; `after` pages; a long-poll wakes when one arrives and answers empty
//! when none does; a bad cursor or `wait_seconds` is 400; nobody reads another's.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{json, Value};

/// One row `A-1` of `seats` Gold seats; holds last a second.
fn short_hold_event(seats: u32) -> Value {
    json!({
        "name": "Notified",
        "city": "Lyon",
        "country": "FR",
        "venue": "Opera",
        "starts_at": "2030-05-01T20:00:00Z",
        "hold_ttl_seconds": 1,
        "max_seats_per_order": 10,
        "categories": [{"name": "Gold", "price_cents": 5000}],
        "seating": {"sections": [{"name": "A", "rows": [
            {"label": "1", "seats": seats, "category": "Gold"}
        ]}]}
    })
}

async fn post(router: &axum::Router, user: &str, uri: &str, body: Value) -> Answer {
    let answer = call(router, Method::POST, uri, Some(&token(user)), Some(body)).await;
    assert!(answer.status.is_success(), "{uri}: {}", answer.text);
    answer
}

/// `user`'s notifications with `query` (`after=...&wait_seconds=...`).
async fn notifications(router: &axum::Router, user: &str, query: &str) -> Answer {
    call(
        router,
        Method::GET,
        &format!("/v1/me/notifications?{query}"),
        Some(&token(user)),
        None,
    )
    .await
}

/// The notifications of an answer as (type, the data's id fields that say what it is
/// about), and the answer's cursor.
fn listed(answer: &Answer) -> (Vec<(String, Value)>, String) {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let listed = answer.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|notification| {
            let data = &notification["data"];
            let about = ["hold_id", "booking_id", "waitlist_id", "user_id"]
                .into_iter()
                .filter(|field| !data[field].is_null())
                .map(|field| (field.to_string(), data[field].clone()))
                .collect::<serde_json::Map<_, _>>();
            (
                notification["type"].as_str().unwrap().to_string(),
                Value::Object(about),
            )
        })
        .collect();
    (listed, answer.body["cursor"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expiry_an_offer_and_a_booking_reach_their_own_users_in_order() {
    let harness = Harness::start();
    let router = harness.router();
    let event = create_event(&router, short_hold_event(2)).await;
    let ana_hold = post(
        &router,
        "ana",
        &format!("/v1/events/{event}/holds"),
        json!({"quantity": 2}),
    )
    .await;
    let ana_hold = ana_hold.body["hold_id"].as_str().unwrap().to_string();
    let waiter = post(
        &router,
        "bo",
        &format!("/v1/events/{event}/waitlist"),
        json!({"quantity": 2}),
    )
    .await;
    let entry = waiter.body["waitlist_id"].as_str().unwrap().to_string();
    // Nothing yet for bo: a long-poll waits for the offer that ana's expiry makes.
    let offered = notifications(&router, "bo", "wait_seconds=30").await;
    let (offered, _) = listed(&offered);
    assert_eq!(offered.len(), 1, "{offered:?}");
    let offer_hold = offered[0].1["hold_id"].as_str().unwrap().to_string();
    assert_eq!(
        offered[0],
        (
            "waitlist.offered".to_string(),
            json!({"hold_id": offer_hold, "waitlist_id": entry, "user_id": pseudonym("bo")})
        )
    );
    let booked = post(
        &router,
        "bo",
        &format!("/v1/holds/{offer_hold}/confirm"),
        json!({"payment_ref": "pay_bo"}),
    )
    .await;
    let booking = booked.body["booking_id"].as_str().unwrap().to_string();
    let canceled = call(
        &router,
        Method::DELETE,
        &format!("/v1/bookings/{booking}"),
        Some(&token("bo")),
        None,
    )
    .await;
    assert_eq!(canceled.status, StatusCode::OK, "{}", canceled.text);

    let ana = notifications(&router, "ana", "").await;
    assert_eq!(
        listed(&ana).0,
        [(
            "hold.expired".to_string(),
            json!({"hold_id": ana_hold, "user_id": pseudonym("ana")})
        )]
    );
    assert_eq!(ana.body["older_dropped"], false);
    let bo = notifications(&router, "bo", "").await;
    assert_eq!(
        listed(&bo).0,
        [
            (
                "waitlist.offered".to_string(),
                json!({"hold_id": offer_hold, "waitlist_id": entry, "user_id": pseudonym("bo")})
            ),
            (
                "booking.created".to_string(),
                json!({"hold_id": offer_hold, "booking_id": booking, "user_id": pseudonym("bo")})
            ),
            (
                "booking.canceled".to_string(),
                json!({"booking_id": booking, "user_id": pseudonym("bo")})
            ),
        ]
    );
    // Each is the webhook message of the same event: its id says the shard, the offset
    // of the outcome that made it and its place in it; the body is the webhook's.
    let ids: Vec<&str> = bo.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|notification| notification["id"].as_str().unwrap())
        .collect();
    let confirm_offset = booked.log_offset();
    let cancel_offset = canceled.log_offset();
    assert_eq!(ids[1], format!("msg_0_{confirm_offset}_0"));
    assert_eq!(ids[2], format!("msg_0_{cancel_offset}_0"));
    let expiry = &ana.body["notifications"][0];
    let offer = &bo.body["notifications"][0];
    let expiry_id = expiry["id"].as_str().unwrap();
    let offer_id = offer["id"].as_str().unwrap();
    assert_eq!(
        expiry_id.rsplit_once('_').unwrap().0,
        offer_id.rsplit_once('_').unwrap().0,
        "one outcome expired ana's hold and offered bo the seats"
    );
    assert_eq!(
        offer["data"],
        json!({"waitlist_id": entry, "hold_id": offer_hold, "event_id": event, "user_id": pseudonym("bo"),
            "quantity": 2, "expires_at": offer["data"]["expires_at"]}),
        "the webhook's data, exactly"
    );
    assert_eq!(
        offer["timestamp"], expiry["timestamp"],
        "one outcome, one time"
    );
    // Someone who did nothing is told nothing.
    let cy = notifications(&router, "cy", "").await;
    assert_eq!(listed(&cy).0, []);
    assert_eq!(cy.body["older_dropped"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_pages_and_a_long_poll_wakes_on_the_next_or_answers_empty() {
    let harness = Harness::start();
    let router = harness.router();
    let event = create_event(&router, event_body("Paged", 5, 300)).await;
    let holds = format!("/v1/events/{event}/holds");
    let mut bookings = Vec::new();
    for _ in 0..3 {
        let hold = post(&router, "ana", &holds, json!({"quantity": 1})).await;
        let hold = hold.body["hold_id"].as_str().unwrap().to_string();
        let booked = post(
            &router,
            "ana",
            &format!("/v1/holds/{hold}/confirm"),
            json!({"payment_ref": "p"}),
        )
        .await;
        bookings.push(booked.body["booking_id"].clone());
    }
    let all = notifications(&router, "ana", "").await;
    let cursors: Vec<String> = all.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|notification| notification["cursor"].as_str().unwrap().to_string())
        .collect();
    let booked: Vec<Value> = all.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|notification| notification["data"]["booking_id"].clone())
        .collect();
    assert_eq!(booked, bookings);
    let (_, last) = listed(&all);
    assert_eq!(last, cursors[2], "the answer's cursor is its last one's");
    // After the first: the other two; after the last: none, and the same cursor back.
    let rest = notifications(&router, "ana", &format!("after={}", cursors[0])).await;
    let rest_bookings: Vec<Value> = rest.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|notification| notification["data"]["booking_id"].clone())
        .collect();
    assert_eq!(rest_bookings, bookings[1..]);
    let none = notifications(&router, "ana", &format!("after={last}")).await;
    assert_eq!(listed(&none), (Vec::new(), last.clone()));

    // A long-poll after the last times out empty, with the cursor it was given.
    let empty = notifications(&router, "ana", &format!("after={last}&wait_seconds=1")).await;
    assert_eq!(listed(&empty), (Vec::new(), last.clone()));

    // A long-poll waiting after the last wakes when ana's next booking is made.
    let hold = post(&router, "ana", &holds, json!({"quantity": 1})).await;
    let hold = hold.body["hold_id"].as_str().unwrap().to_string();
    let waiting = {
        let router = router.clone();
        let uri = format!("after={last}&wait_seconds=60");
        tokio::spawn(async move { notifications(&router, "ana", &uri).await })
    };
    // The long-poll is registered (its watch is open) before the booking is made.
    while harness.state.long_polls() == 0 {
        tokio::task::yield_now().await;
    }
    let booked = post(
        &router,
        "ana",
        &format!("/v1/holds/{hold}/confirm"),
        json!({"payment_ref": "p"}),
    )
    .await;
    let woken = waiting.await.unwrap();
    let (woken_list, woken_cursor) = listed(&woken);
    assert_eq!(woken_list.len(), 1, "{}", woken.text);
    assert_eq!(
        woken.body["notifications"][0]["data"]["booking_id"],
        booked.body["booking_id"]
    );
    assert_ne!(woken_cursor, last);
    assert_eq!(harness.state.long_polls(), 0, "the watch is released");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_user_s_events_are_never_shown_even_in_an_event_cancel() {
    let harness = Harness::start();
    let router = harness.router();
    let event = create_event(&router, event_body("Canceled", 5, 300)).await;
    let holds = format!("/v1/events/{event}/holds");
    let ana_hold = post(&router, "ana", &holds, json!({"quantity": 1})).await;
    let ana_hold = ana_hold.body["hold_id"].as_str().unwrap().to_string();
    let bo_hold = post(&router, "bo", &holds, json!({"quantity": 2})).await;
    let bo_hold = bo_hold.body["hold_id"].as_str().unwrap().to_string();
    let bo_booking = post(
        &router,
        "bo",
        &format!("/v1/holds/{bo_hold}/confirm"),
        json!({"payment_ref": "p"}),
    )
    .await;
    let bo_booking = bo_booking.body["booking_id"].as_str().unwrap().to_string();
    let canceled = call(
        &router,
        Method::DELETE,
        &format!("/v1/admin/events/{event}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(canceled.status, StatusCode::OK, "{}", canceled.text);
    let cancel_id = format!("msg_0_{}_0", canceled.log_offset());

    let ana = notifications(&router, "ana", "").await;
    let ana_list = ana.body["notifications"].as_array().unwrap();
    assert_eq!(ana_list.len(), 1, "{}", ana.text);
    assert_eq!(ana_list[0]["id"], cancel_id.as_str());
    assert_eq!(
        ana_list[0]["data"],
        json!({"event_id": event, "released_hold_ids": [ana_hold],
            "canceled_booking_ids": [], "ended_waitlist_ids": []})
    );
    let bo = notifications(&router, "bo", "").await;
    let bo_list = bo.body["notifications"].as_array().unwrap();
    let types: Vec<&str> = bo_list
        .iter()
        .map(|notification| notification["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["booking.created", "event.canceled"], "{}", bo.text);
    assert_eq!(bo_list[1]["id"], cancel_id.as_str(), "the same message id");
    assert_eq!(
        bo_list[1]["data"],
        json!({"event_id": event, "released_hold_ids": [],
            "canceled_booking_ids": [bo_booking], "ended_waitlist_ids": []})
    );
    // Nothing of ana's in bo's list, nor of bo's in ana's.
    assert!(!bo.text.contains(&ana_hold), "{}", bo.text);
    assert!(!ana.text.contains(&bo_booking), "{}", ana.text);
    // A token is needed; the list is always the token's user's own.
    let anonymous = call(&router, Method::GET, "/v1/me/notifications", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_cursor_or_wait_is_refused_naming_the_parameter() {
    let harness = Harness::start();
    let router = harness.router();
    for (query, field) in [
        ("after=", "after"),
        ("after=n.n", "after"),
        ("after=12", "after"),
        ("after=x_1", "after"),
        ("after=1_99999999999", "after"),
        ("wait_seconds=61", "wait_seconds"),
    ] {
        let refused = notifications(&router, "ana", query).await;
        assert_eq!(
            (refused.status, refused.code(), refused.field()),
            (StatusCode::BAD_REQUEST, "bad_request", field),
            "{query}: {}",
            refused.text
        );
    }
    for query in ["wait_seconds=soon", "wait_seconds=-1", "before=1_0"] {
        let refused = notifications(&router, "ana", query).await;
        assert_eq!(
            (refused.status, refused.reason()),
            (StatusCode::BAD_REQUEST, "malformed_query"),
            "{query}: {}",
            refused.text
        );
    }
    // A well-formed cursor past everything is simply after everything.
    let fine = notifications(&router, "ana", "after=5_0").await;
    assert_eq!(listed(&fine), (Vec::new(), "5_0".to_string()));
}
