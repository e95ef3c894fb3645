//! A flash sale with an arrival window over HTTP (issue 23): entries before opening get
//! no position, the organiser reveals the seed, the engine draws at opening (the runtime's
//! ticks reach it), the published draw recomputes from its parts, places decide who is
//! served, and later arrivals queue behind. Bad windows, commitments and seeds are 400s.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use engine::draw;
use engine::{EventId, WaiterId};
use serde_json::{json, Value};

const SEED: [u8; 32] = [0x42; 32];
/// How far after the engine's clock at the start the sale opens: room for the entries
/// made before it, however slow the machine (the test waits for the draw, not the time).
const OPENS_IN_MS: u64 = 6_000;

fn flash_sale(sales_open_at_ms: u64) -> Value {
    json!({
        "name": "Flash",
        "city": "Lyon",
        "country": "FR",
        "venue": "Hall",
        "starts_at": "2030-05-01T20:00:00Z",
        "sales_open_at": engine::messages::rfc3339(sales_open_at_ms),
        "hold_ttl_seconds": 300,
        "max_seats_per_order": 4,
        "categories": [{"name": "Floor", "price_cents": 2000}],
        "general_admission": [{"category": "Floor", "capacity": 3}],
        "arrival_window_seconds": 3600,
        "draw_commitment": draw::to_hex(&draw::commitment_of(&SEED)),
    })
}

async fn as_user(
    router: &axum::Router,
    user: &str,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> Answer {
    call(router, method, uri, Some(&token(user)), body).await
}

async fn admin(router: &axum::Router, uri: &str, body: Value) -> Answer {
    call(router, Method::POST, uri, Some(ADMIN), Some(body)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flash_sale_with_an_arrival_window_draws_its_entries_at_opening() {
    let harness = Harness::start();
    let router = harness.router();
    let now_ms = harness
        .engine_status()
        .applied_log_time_ms
        .expect("the engine applied its Configure record");
    let event = create_event(&router, flash_sale(now_ms + OPENS_IN_MS)).await;
    let holds = format!("/v1/events/{event}/holds");
    let waitlist = format!("/v1/events/{event}/waitlist");

    // Five entries (holds that wait and plain joins), each with no position yet.
    let mut entries = Vec::new();
    for (index, user) in ["ann", "bob", "cat", "dan", "eve"].iter().enumerate() {
        let answer = if index % 2 == 0 {
            as_user(
                &router,
                user,
                Method::POST,
                &holds,
                Some(json!({"quantity": 1, "wait": true})),
            )
            .await
        } else {
            as_user(
                &router,
                user,
                Method::POST,
                &waitlist,
                Some(json!({"quantity": 1})),
            )
            .await
        };
        let expected = if index % 2 == 0 {
            StatusCode::ACCEPTED
        } else {
            StatusCode::CREATED
        };
        assert_eq!(answer.status, expected, "{}", answer.text);
        assert_eq!(answer.body["status"], "entered", "{}", answer.text);
        assert_eq!(answer.body["position"], 0);
        entries.push((
            user.to_string(),
            answer.body["waitlist_id"].as_str().unwrap().to_string(),
        ));
    }
    // One entry per user per event.
    let again = as_user(
        &router,
        "ann",
        Method::POST,
        &waitlist,
        Some(json!({"quantity": 1})),
    )
    .await;
    assert_eq!(
        (again.status, again.reason()),
        (StatusCode::UNPROCESSABLE_ENTITY, "waiters_per_user_max"),
        "{}",
        again.text
    );
    // A plain hold is still too early.
    let early = as_user(
        &router,
        "fay",
        Method::POST,
        &holds,
        Some(json!({"quantity": 1})),
    )
    .await;
    assert_eq!(
        (early.status, early.reason()),
        (StatusCode::CONFLICT, "not_open_yet"),
        "{}",
        early.text
    );

    let pending = call(
        &router,
        Method::GET,
        &format!("/v1/events/{event}/draw"),
        None,
        None,
    )
    .await;
    assert_eq!(pending.status, StatusCode::OK, "{}", pending.text);
    assert_eq!(pending.body["status"], "pending");
    assert_eq!(pending.body["seed"], Value::Null);
    assert_eq!(
        pending.body["commitment"],
        draw::to_hex(&draw::commitment_of(&SEED))
    );
    let listed: Vec<&str> = pending.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            assert_eq!(entry["place"], Value::Null);
            entry["waitlist_id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        listed,
        entries
            .iter()
            .map(|(_, id)| id.as_str())
            .collect::<Vec<_>>()
    );
    assert!(
        !pending.text.contains("ann"),
        "entries are listed without their users"
    );

    // The reveal: a seed that does not match is a 400 and reaches no log.
    let reveal = format!("/v1/admin/events/{event}/draw/reveal");
    let end = harness.requests_end();
    let wrong = admin(&router, &reveal, json!({"seed": draw::to_hex(&[1; 32])})).await;
    assert_eq!(
        (wrong.status, wrong.field()),
        (StatusCode::BAD_REQUEST, "seed"),
        "{}",
        wrong.text
    );
    let garbled = admin(&router, &reveal, json!({"seed": "not hex"})).await;
    assert_eq!(
        (garbled.status, garbled.field()),
        (StatusCode::BAD_REQUEST, "seed"),
        "{}",
        garbled.text
    );
    assert_eq!(
        harness.requests_end(),
        end,
        "refused reveals are not appended"
    );
    let revealed = admin(&router, &reveal, json!({"seed": draw::to_hex(&SEED)})).await;
    assert_eq!(revealed.status, StatusCode::OK, "{}", revealed.text);
    assert_eq!(revealed.body["seed"], draw::to_hex(&SEED));

    // The draw at opening: a long-poll on an entry answers once its status changes.
    let (_, first_entry) = &entries[0];
    let polled = as_user(
        &router,
        "ann",
        Method::GET,
        &format!("/v1/waitlist/{first_entry}?wait_seconds=60"),
        None,
    )
    .await;
    assert_eq!(polled.status, StatusCode::OK, "{}", polled.text);
    assert_ne!(
        polled.body["status"], "entered",
        "the draw was made: {}",
        polled.text
    );

    let drawn = call(
        &router,
        Method::GET,
        &format!("/v1/events/{event}/draw"),
        None,
        None,
    )
    .await;
    assert_eq!(drawn.body["status"], "drawn", "{}", drawn.text);
    assert_eq!(drawn.body["seed_source"], "revealed");
    let seed = draw::parse_hex32(drawn.body["seed"].as_str().unwrap()).unwrap();
    assert_eq!(draw::commitment_of(&seed), draw::commitment_of(&SEED));
    let published: Vec<(String, u64)> = drawn.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["waitlist_id"].as_str().unwrap().to_string(),
                entry["place"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        published
            .iter()
            .map(|(_, place)| *place)
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    // Anyone recomputes it from what was published.
    let ids: Vec<WaiterId> = entries
        .iter()
        .map(|(_, id)| WaiterId::parse(id).unwrap())
        .collect();
    let recomputed: Vec<String> = draw::draw_order(&seed, EventId::parse(&event).unwrap(), &ids)
        .iter()
        .map(|id| id.to_string())
        .collect();
    assert_eq!(
        published
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<Vec<_>>(),
        recomputed
    );

    // Three places of Floor: the first three places are offered a hold, the others wait
    // in place order; a join after opening queues behind them.
    let user_of = |id: &str| {
        entries
            .iter()
            .find(|(_, entry)| entry == id)
            .unwrap()
            .0
            .clone()
    };
    let late = as_user(
        &router,
        "fay",
        Method::POST,
        &waitlist,
        Some(json!({"quantity": 1})),
    )
    .await;
    assert_eq!(
        (late.status, &late.body["status"]),
        (StatusCode::CREATED, &json!("waiting")),
        "{}",
        late.text
    );
    assert_eq!(late.body["position"], 3, "{}", late.text);
    for (index, (id, _)) in published.iter().enumerate() {
        let status = as_user(
            &router,
            &user_of(id),
            Method::GET,
            &format!("/v1/waitlist/{id}"),
            None,
        )
        .await;
        if index < 3 {
            assert_eq!(status.body["status"], "offered", "{}", status.text);
        } else {
            assert_eq!(
                (&status.body["status"], &status.body["position"]),
                (&json!("waiting"), &json!(index - 2)),
                "{}",
                status.text
            );
        }
    }

    let late_reveal = admin(&router, &reveal, json!({"seed": draw::to_hex(&SEED)})).await;
    assert_eq!(
        (late_reveal.status, late_reveal.reason()),
        (StatusCode::CONFLICT, "draw_made"),
        "{}",
        late_reveal.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_arrival_windows_and_events_without_one_are_refused() {
    let harness = Harness::start();
    let router = harness.router();
    let open_ms = 1_900_000_000_000;
    let end = harness.requests_end();
    for (change, field) in [
        (json!({"draw_commitment": null}), "draw_commitment"),
        (
            json!({"arrival_window_seconds": null}),
            "arrival_window_seconds",
        ),
        (
            json!({"arrival_window_seconds": 0}),
            "arrival_window_seconds",
        ),
        (
            json!({"arrival_window_seconds": 86_401}),
            "arrival_window_seconds",
        ),
        (json!({"draw_commitment": "abc"}), "draw_commitment"),
        (json!({"sales_open_at": null}), "sales_open_at"),
    ] {
        let mut body = flash_sale(open_ms);
        for (key, value) in change.as_object().unwrap() {
            if value.is_null() {
                body.as_object_mut().unwrap().remove(key);
            } else {
                body[key] = value.clone();
            }
        }
        let refused = admin(&router, "/v1/admin/events", body).await;
        assert_eq!(
            (refused.status, refused.field()),
            (StatusCode::BAD_REQUEST, field),
            "{change}: {}",
            refused.text
        );
    }
    assert_eq!(harness.requests_end(), end, "nothing refused was appended");
    // An opening in the engine's past: the engine refuses it.
    let past = admin(&router, "/v1/admin/events", flash_sale(1_000)).await;
    assert_eq!(
        (past.status, past.reason()),
        (StatusCode::BAD_REQUEST, "invalid"),
        "{}",
        past.text
    );

    let plain = create_event(&router, event_body("Plain", 4, 300)).await;
    let none = call(
        &router,
        Method::GET,
        &format!("/v1/events/{plain}/draw"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (none.status, none.reason()),
        (StatusCode::NOT_FOUND, "draw_not_found"),
        "{}",
        none.text
    );
    let reveal = admin(
        &router,
        &format!("/v1/admin/events/{plain}/draw/reveal"),
        json!({"seed": draw::to_hex(&SEED)}),
    )
    .await;
    assert_eq!(
        (reveal.status, reveal.reason()),
        (StatusCode::NOT_FOUND, "draw_not_found"),
        "{}",
        reveal.text
    );
}

/// A window opened on an existing event (`POST /v1/admin/events/{id}/draw`): the event
/// needs a `sales_open_at`, gets one window only, and its draw is then published as
/// pending.
#[tokio::test(flavor = "multi_thread")]
async fn a_window_opens_on_an_existing_event() {
    let harness = Harness::start();
    let router = harness.router();
    let mut body = flash_sale(1_900_000_000_000);
    let object = body.as_object_mut().unwrap();
    object.remove("arrival_window_seconds");
    object.remove("draw_commitment");
    let event = create_event(&router, body).await;
    let plain = create_event(&router, event_body("Plain", 4, 300)).await;
    let window = json!({
        "arrival_window_seconds": 600,
        "draw_commitment": draw::to_hex(&draw::commitment_of(&SEED)),
    });
    let refused = admin(
        &router,
        &format!("/v1/admin/events/{plain}/draw"),
        window.clone(),
    )
    .await;
    assert_eq!(
        (refused.status, refused.field()),
        (StatusCode::BAD_REQUEST, "sales_open_at"),
        "{}",
        refused.text
    );
    let garbled = admin(
        &router,
        &format!("/v1/admin/events/{event}/draw"),
        json!({"arrival_window_seconds": 600, "draw_commitment": "zz"}),
    )
    .await;
    assert_eq!(
        (garbled.status, garbled.field()),
        (StatusCode::BAD_REQUEST, "draw_commitment"),
        "{}",
        garbled.text
    );
    let opened = admin(
        &router,
        &format!("/v1/admin/events/{event}/draw"),
        window.clone(),
    )
    .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.text);
    assert_eq!(opened.body["status"], "pending");
    assert_eq!(
        opened.body["draws_at"], "2030-03-17T17:46:40Z",
        "{}",
        opened.text
    );
    assert_eq!(
        opened.body["opens_at"], "2030-03-17T17:36:40Z",
        "{}",
        opened.text
    );
    let again = admin(&router, &format!("/v1/admin/events/{event}/draw"), window).await;
    assert_eq!(
        (again.status, again.reason()),
        (StatusCode::BAD_REQUEST, "invalid"),
        "{}",
        again.text
    );
    let published = call(
        &router,
        Method::GET,
        &format!("/v1/events/{event}/draw"),
        None,
        None,
    )
    .await;
    assert_eq!(published.body["commitment"], opened.body["commitment"]);
}
