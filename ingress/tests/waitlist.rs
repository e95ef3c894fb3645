//! Waitlist fairness and per-user caps over HTTP (through `Router::oneshot`, the embedded
//! logs and the test engine): a waiter that could never be served does not stop the sale
//! of what is free, and one user cannot fill a queue or a desk alone, whichever order
//! and idempotency key they try.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{json, Value};

/// Rows `A-1`.. of `seats_per_row` Gold seats each, and no pool.
fn rows_body(name: &str, rows: u32, seats_per_row: u32) -> Value {
    let rows: Vec<Value> = (1..=rows)
        .map(|row| json!({"label": row.to_string(), "seats": seats_per_row, "category": "Gold"}))
        .collect();
    json!({
        "name": name,
        "city": "Lyon",
        "country": "FR",
        "venue": "Opera",
        "starts_at": "2030-05-01T20:00:00Z",
        "hold_ttl_seconds": 300,
        "max_seats_per_order": 10,
        "categories": [{"name": "Gold", "price_cents": 5000}],
        "seating": {"sections": [{"name": "A", "rows": rows}]}
    })
}

async fn post(router: &axum::Router, user: &str, uri: &str, body: Value) -> Answer {
    call(router, Method::POST, uri, Some(&token(user)), Some(body)).await
}

async fn post_keyed(
    router: &axum::Router,
    user: &str,
    uri: &str,
    key: &str,
    body: Value,
) -> Answer {
    call_with(
        router,
        Method::POST,
        uri,
        Some(&token(user)),
        &[("idempotency-key", key)],
        Some(body.to_string()),
    )
    .await
}

async fn held_of(router: &axum::Router, event: &str, category: &str) -> u64 {
    let detail = call(
        router,
        Method::GET,
        &format!("/v1/events/{event}"),
        None,
        None,
    )
    .await;
    detail.body["availability"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["category"] == category)
        .unwrap_or_else(|| panic!("{category} in {}", detail.text))["held"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiter_that_could_never_be_served_does_not_stop_the_sale_of_free_places() {
    let harness = Harness::start();
    let router = harness.router();

    // Two Gold seats, sold, and a Floor pool of 50.
    let arena = create_event(&router, event_body("Arena", 1, 300)).await;
    let holds = format!("/v1/events/{arena}/holds");
    let waitlist = format!("/v1/events/{arena}/waitlist");
    let sold = post(
        &router,
        "holder",
        &holds,
        json!({"quantity": 2, "category": "Gold"}),
    )
    .await;
    assert_eq!(sold.status, StatusCode::CREATED, "{}", sold.text);
    let hold = sold.body["hold_id"].as_str().unwrap();
    let booked = post(
        &router,
        "holder",
        &format!("/v1/holds/{hold}/confirm"),
        json!({"payment_ref": "p"}),
    )
    .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text);
    // One place of any category: the Floor has room, so it is offered at once.
    let any = post(&router, "ann", &waitlist, json!({"quantity": 1})).await;
    assert_eq!(
        (any.status, any.body["status"].as_str()),
        (StatusCode::CREATED, Some("offered")),
        "{}",
        any.text
    );
    // A Gold seat can never come free: refused, not queued in front of anybody.
    let gold = post(
        &router,
        "bob",
        &waitlist,
        json!({"quantity": 1, "category": "Gold"}),
    )
    .await;
    assert_eq!(
        (gold.status, gold.code()),
        (StatusCode::CONFLICT, "sold_out"),
        "{}",
        gold.text
    );
    let floor = post(
        &router,
        "cat",
        &holds,
        json!({"quantity": 2, "category": "Floor"}),
    )
    .await;
    assert_eq!(floor.status, StatusCode::CREATED, "{}", floor.text);

    // Rows of 4: five together never fit a row, so nobody waits for them ...
    let theatre = create_event(&router, rows_body("Rows", 3, 4)).await;
    let holds = format!("/v1/events/{theatre}/holds");
    let five = json!({"quantity": 5, "together": true});
    let joined = post(
        &router,
        "dan",
        &format!("/v1/events/{theatre}/waitlist"),
        five.clone(),
    )
    .await;
    assert_eq!(
        (joined.status, joined.code()),
        (StatusCode::CONFLICT, "sold_out"),
        "{}",
        joined.text
    );
    let mut waiting = five;
    waiting["wait"] = json!(true);
    let waited = post(&router, "dan", &holds, waiting).await;
    assert_eq!(
        (waited.status, waited.code()),
        (StatusCode::CONFLICT, "sold_out"),
        "{}",
        waited.text
    );
    // ... and two of the twelve free seats are sold at once.
    let two = post(&router, "eve", &holds, json!({"quantity": 2})).await;
    assert_eq!(two.status, StatusCode::CREATED, "{}", two.text);
    assert_eq!(two.body["seats"], json!(["A-1-1", "A-1-2"]), "{}", two.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiter_whose_rows_are_booked_apart_ends_and_the_seats_sell() {
    let harness = Harness::start();
    let router = harness.router();
    let event = create_event(&router, rows_body("Apart", 1, 4)).await;
    let holds = format!("/v1/events/{event}/holds");
    let middle = post(&router, "ann", &holds, json!({"seats": ["A-1-2"]})).await;
    assert_eq!(middle.status, StatusCode::CREATED, "{}", middle.text);
    // Three together: not free now, but the row could still give them.
    let waiter = post(
        &router,
        "bob",
        &format!("/v1/events/{event}/waitlist"),
        json!({"quantity": 3, "together": true}),
    )
    .await;
    assert_eq!(
        (waiter.status, waiter.body["status"].as_str()),
        (StatusCode::CREATED, Some("waiting")),
        "{}",
        waiter.text
    );
    let entry = waiter.body["waitlist_id"].as_str().unwrap();
    let passed = post(&router, "cat", &holds, json!({"quantity": 1})).await;
    assert_eq!(
        passed.code(),
        "sold_out",
        "nobody passes bob: {}",
        passed.text
    );
    // A-1-2 is booked: no run of three is left in any row, ever.
    let hold = middle.body["hold_id"].as_str().unwrap();
    let confirmed = post(
        &router,
        "ann",
        &format!("/v1/holds/{hold}/confirm"),
        json!({"payment_ref": "p"}),
    )
    .await;
    assert_eq!(confirmed.status, StatusCode::CREATED, "{}", confirmed.text);
    let ended = call(
        &router,
        Method::GET,
        &format!("/v1/waitlist/{entry}?wait_seconds=5"),
        Some(&token("bob")),
        None,
    )
    .await;
    assert_eq!(
        (ended.body["status"].as_str(), ended.body["reason"].as_str()),
        (Some("expired"), Some("no_row_long_enough")),
        "{}",
        ended.text
    );
    let sold = post(&router, "cat", &holds, json!({"quantity": 1})).await;
    assert_eq!(
        (sold.status, &sold.body["seats"]),
        (StatusCode::CREATED, &json!(["A-1-1"])),
        "{}",
        sold.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn per_user_limits_hold_across_orders_and_idempotency_keys() {
    let harness = Harness::start();
    let router = harness.router();

    // Seats per user, over two orders with two keys.
    let mut body = event_body("Limits", 5, 300);
    body["max_seats_per_user"] = json!(4);
    let event = create_event(&router, body).await;
    let holds = format!("/v1/events/{event}/holds");
    let three = json!({"quantity": 3, "category": "Gold"});
    let first = post_keyed(&router, "ann", &holds, "order-1", three.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let second = post_keyed(
        &router,
        "ann",
        &holds,
        "order-2",
        json!({"quantity": 2, "category": "Gold"}),
    )
    .await;
    assert_eq!(
        (
            second.status,
            second.code(),
            &second.body["error"]["details"]
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit_exceeded",
            &json!({"limit": "seats_per_user", "max": 4, "reason": "seats_per_user_max"})
        ),
        "{}",
        second.text
    );
    // Retrying the first order is its first answer, not a second hold.
    let retried = post_keyed(&router, "ann", &holds, "order-1", three).await;
    assert_eq!((retried.status, &retried.body), (first.status, &first.body));
    assert_eq!(held_of(&router, &event, "Gold").await, 3);

    // Waitlist entries per user: all ten Gold seats are held by others.
    for (holder, quantity) in [("holder-1", 4), ("holder-2", 3)] {
        let held = post(
            &router,
            holder,
            &holds,
            json!({"quantity": quantity, "category": "Gold"}),
        )
        .await;
        assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
    }
    let waitlist = format!("/v1/events/{event}/waitlist");
    let one = json!({"quantity": 1, "category": "Gold"});
    let mut entries = Vec::new();
    for (index, key) in ["wait-1", "wait-2", "wait-3", "wait-4"].iter().enumerate() {
        // Both ways in: the waitlist itself, and a hold that waits.
        let answer = if index % 2 == 0 {
            post_keyed(&router, "bob", &waitlist, key, one.clone()).await
        } else {
            let mut waiting = one.clone();
            waiting["wait"] = json!(true);
            post_keyed(&router, "bob", &holds, key, waiting).await
        };
        assert!(
            matches!(answer.status, StatusCode::CREATED | StatusCode::ACCEPTED),
            "{}",
            answer.text
        );
        assert_eq!(answer.body["position"], json!(index + 1), "{}", answer.text);
        entries.push(answer);
    }
    // Two different requests, so two keys (one key for both would be 422
    // idempotency_key_reused: keys are bound to their request).
    for (uri, wait, key) in [(&waitlist, false, "wait-5"), (&holds, true, "hold-5")] {
        let mut body = one.clone();
        if wait {
            body["wait"] = json!(true);
        }
        let fifth = post_keyed(&router, "bob", uri, key, body).await;
        assert_eq!(
            (fifth.status, fifth.code(), &fifth.body["error"]["details"]),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "limit_exceeded",
                &json!({"limit": "waiters_per_user", "max": 4, "reason": "waiters_per_user_max"})
            ),
            "{}",
            fifth.text
        );
        let message = fifth.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("waitlist entries per user"),
            "the message names the limit: {message}"
        );
    }
    // A retried join is its first answer; another user still joins behind bob.
    let retried = post_keyed(&router, "bob", &waitlist, "wait-1", one.clone()).await;
    assert_eq!(
        (retried.status, &retried.body),
        (entries[0].status, &entries[0].body)
    );
    let cat = post(&router, "cat", &waitlist, one.clone()).await;
    assert_eq!(
        (cat.status, cat.body["position"].as_u64()),
        (StatusCode::CREATED, Some(5)),
        "{}",
        cat.text
    );
    // Leaving gives the place back.
    let entry = entries[1].body["waitlist_id"].as_str().unwrap();
    let left = call(
        &router,
        Method::DELETE,
        &format!("/v1/waitlist/{entry}"),
        Some(&token("bob")),
        None,
    )
    .await;
    assert_eq!(left.status, StatusCode::OK, "{}", left.text);
    let again = post_keyed(&router, "bob", &waitlist, "wait-6", one).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_user_holds_at_most_four_open_tickets_per_desk() {
    let harness = Harness::start();
    let router = harness.router();
    let created = call(
        &router,
        Method::POST,
        "/v1/admin/desks",
        Some(ADMIN),
        Some(json!({
            "name": "Help",
            "agents": 10,
            "slot_minutes": 1440,
            "horizon_hours": 240,
            "levels": [{"name": "bronze", "deadline_minutes": 10 * 1440}]
        })),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let tickets = format!(
        "/v1/desks/{}/tickets",
        created.body["desk_id"].as_str().unwrap()
    );
    for key in ["t-1", "t-2", "t-3", "t-4"] {
        let answer = post_keyed(&router, "ann", &tickets, key, json!({"level": "bronze"})).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    }
    let fifth = post_keyed(&router, "ann", &tickets, "t-5", json!({"level": "bronze"})).await;
    assert_eq!(
        (fifth.status, fifth.code(), &fifth.body["error"]["details"]),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit_exceeded",
            &json!({"limit": "desk_tickets_per_user", "max": 4, "reason": "desk_tickets_per_user_max"})
        ),
        "{}",
        fifth.text
    );
    assert!(
        fifth.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("open tickets per user"),
        "{}",
        fifth.text
    );
    let other = post(&router, "bea", &tickets, json!({"level": "bronze"})).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.text);
}
