//! Handler tests through `Router::oneshot` (no socket), over the embedded logs and the
//! test engine: every answer comes from a real outcome.

mod common;

use axum::http::{header, Method, StatusCode};
use common::*;
use requestlog::LogWriter;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn event_lifecycle_reads_and_seat_map() {
    let harness = Harness::start();
    let router = harness.router();
    let event = create_event(&router, event_body("Tests Live", 5, 300)).await;
    assert_eq!(event, "ev_0");

    let detail = call(
        &router,
        Method::GET,
        &format!("/v1/events/{event}"),
        None,
        None,
    )
    .await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(detail.log_offset() >= 0);
    assert_eq!(detail.body["name"], "Tests Live");
    assert_eq!(detail.body["starts_at"], "2030-05-01T20:00:00Z");
    assert_eq!(
        detail.body["availability"],
        json!([
            {"category": "Gold", "price_cents": 5000, "capacity": 10, "free": 10, "held": 0, "booked": 0},
            {"category": "Floor", "price_cents": 2000, "capacity": 50, "free": 50, "held": 0, "booked": 0}
        ])
    );

    create_event(&router, json!({"name": "Paris Night", "city": "Paris", "country": "FR", "venue": "Olympia", "starts_at": "2030-01-01T20:00:00Z",
        "categories": [{"name": "Standard", "price_cents": 1000}], "general_admission": [{"category": "Standard", "capacity": 10}]})).await;
    let search = call(&router, Method::GET, "/v1/events?city=lyon", None, None).await;
    assert_eq!(
        (
            search.body["total"].as_u64(),
            search.body["events"][0]["event_id"].as_str()
        ),
        (Some(1), Some("ev_0"))
    );
    let by_date = call(
        &router,
        Method::GET,
        "/v1/events?sort=date&per_page=1&page=2",
        None,
        None,
    )
    .await;
    assert_eq!(
        (
            by_date.body["total"].as_u64(),
            by_date.body["events"][0]["name"].as_str(),
            by_date.body["per_page"].as_u64()
        ),
        (Some(2), Some("Tests Live"), Some(1))
    );
    let words = call(
        &router,
        Method::GET,
        "/v1/events?q=olympia%20night",
        None,
        None,
    )
    .await;
    assert_eq!(words.body["events"][0]["name"], "Paris Night");
    let window = call(
        &router,
        Method::GET,
        "/v1/events?from=2030-03-01T00:00:00Z&to=2030-12-31T00:00:00Z",
        None,
        None,
    )
    .await;
    assert_eq!(window.body["total"], 1);
    let cities = call(&router, Method::GET, "/v1/cities", None, None).await;
    assert_eq!(
        cities.body,
        json!({"cities": [{"city": "Lyon", "country": "FR", "events": 1}, {"city": "Paris", "country": "FR", "events": 1}]})
    );
    let venues = call(&router, Method::GET, "/v1/venues?city=Paris", None, None).await;
    assert_eq!(
        venues.body,
        json!({"venues": [{"venue": "Olympia", "city": "Paris", "country": "FR", "events": 1}]})
    );

    let map = call(
        &router,
        Method::GET,
        &format!("/v1/events/{event}/seats"),
        None,
        None,
    )
    .await;
    assert_eq!(map.body["sections"][0]["name"], "A");
    assert_eq!(
        map.body["sections"][0]["rows"][1]["seats"][4],
        json!({"id": "A-2-5", "category": "Gold", "status": "free"})
    );

    let patched = call(
        &router,
        Method::PATCH,
        &format!("/v1/admin/events/{event}"),
        Some(ADMIN),
        Some(json!({"name": "Tests Live II", "ends_at": "2030-05-01T23:00:00Z"})),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(
        (
            patched.body["name"].as_str(),
            patched.body["ends_at"].as_str()
        ),
        (Some("Tests Live II"), Some("2030-05-01T23:00:00Z"))
    );
    let cleared = call(
        &router,
        Method::PATCH,
        &format!("/v1/admin/events/{event}"),
        Some(ADMIN),
        Some(json!({"ends_at": null})),
    )
    .await;
    assert!(cleared.body.get("ends_at").is_none(), "{}", cleared.text);

    let mine = call(&router, Method::GET, "/v1/admin/events", Some(ADMIN), None).await;
    assert_eq!(mine.body["events"].as_array().unwrap().len(), 2);
    let theirs = call(
        &router,
        Method::GET,
        "/v1/admin/events",
        Some(OTHER_ADMIN),
        None,
    )
    .await;
    assert_eq!(theirs.body["events"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_confirm_book_and_cancel() {
    let harness = Harness::start();
    let router = harness.router();
    let event = create_event(&router, event_body("Holds", 5, 300)).await;
    let alice = token("alice");
    let bob = token("bob");

    let held = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&alice),
        Some(json!({"seats": ["A-1-2", "A-1-3"]})),
    )
    .await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
    assert_eq!(held.body["seats"], json!(["A-1-2", "A-1-3"]));
    assert_eq!(
        (
            held.body["status"].as_str(),
            held.body["quantity"].as_u64(),
            held.body["total_cents"].as_u64()
        ),
        (Some("held"), Some(2), Some(10_000))
    );
    let hold = held.body["hold_id"].as_str().unwrap().to_string();
    assert_eq!(
        held.headers["location"],
        format!("/v1/holds/{hold}").as_str()
    );

    // Read-your-writes: the seat map already shows them held.
    let map = call(
        &router,
        Method::GET,
        &format!("/v1/events/{event}/seats"),
        None,
        None,
    )
    .await;
    assert!(map.log_offset() >= held.log_offset());
    let statuses: Vec<&str> = map.body["sections"][0]["rows"][0]["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|seat| seat["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["free", "held", "held", "free", "free"]);

    let taken = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&bob),
        Some(json!({"seats": ["A-1-3", "A-1-4"]})),
    )
    .await;
    assert_eq!(
        (taken.status, taken.code()),
        (StatusCode::CONFLICT, "seats_unavailable")
    );
    assert_eq!(taken.body["error"]["details"]["seats"], json!(["A-1-3"]));

    let best = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&bob),
        Some(json!({"quantity": 3, "category": "Gold", "together": true})),
    )
    .await;
    assert_eq!(best.status, StatusCode::CREATED, "{}", best.text);
    assert_eq!(best.body["seats"], json!(["A-2-1", "A-2-2", "A-2-3"]));
    let pool = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&bob),
        Some(json!({"quantity": 4, "category": "Floor"})),
    )
    .await;
    assert_eq!(
        (
            pool.status,
            pool.body["seats"].clone(),
            pool.body["categories"].clone()
        ),
        (StatusCode::CREATED, json!([]), json!(["Floor"]))
    );

    // Another user's hold is 404, for reads and writes alike.
    for (method, uri, body) in [
        (Method::GET, format!("/v1/holds/{hold}"), None),
        (
            Method::POST,
            format!("/v1/holds/{hold}/confirm"),
            Some(json!({"payment_ref": "x"})),
        ),
        (Method::DELETE, format!("/v1/holds/{hold}"), None),
    ] {
        let answer = call(&router, method, &uri, Some(&bob), body).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{uri}"
        );
    }

    let booked = call(
        &router,
        Method::POST,
        &format!("/v1/holds/{hold}/confirm"),
        Some(&alice),
        Some(json!({"payment_ref": "pay_123"})),
    )
    .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text);
    assert_eq!(
        (
            booked.body["total_cents"].as_u64(),
            booked.body["status"].as_str()
        ),
        (Some(10_000), Some("confirmed"))
    );
    let tickets = booked.body["tickets"].as_array().unwrap();
    assert_eq!(
        (tickets.len(), tickets[0]["seat"].as_str()),
        (2, Some("A-1-2"))
    );
    let booking = booked.body["booking_id"].as_str().unwrap().to_string();
    let code = tickets[0]["code"].as_str().unwrap().to_string();

    // Each ticket's QR code, as SVG, for its owner only (the browser test decodes it).
    let ticket = tickets[0]["ticket_id"].as_str().unwrap();
    let qr = |user: &str, ticket: &str| {
        (
            format!("/v1/bookings/{booking}/tickets/{ticket}/qr.svg"),
            user.to_string(),
        )
    };
    let (uri, owner) = qr(&alice, ticket);
    let svg = call(&router, Method::GET, &uri, Some(&owner), None).await;
    assert_eq!(
        (
            svg.status,
            svg.headers[header::CONTENT_TYPE].to_str().unwrap()
        ),
        (StatusCode::OK, "image/svg+xml"),
        "{}",
        svg.text
    );
    assert!(
        svg.text.contains("<svg") && svg.text.contains("</svg>"),
        "{}",
        svg.text
    );
    for (uri, user) in [
        qr(&bob, ticket),
        qr(&alice, "t_9999_9"),
        qr(&alice, "nonsense"),
    ] {
        let answer = call(&router, Method::GET, &uri, Some(&user), None).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{uri}: {}",
            answer.text
        );
    }

    let again = call(
        &router,
        Method::POST,
        &format!("/v1/holds/{hold}/confirm"),
        Some(&alice),
        Some(json!({"payment_ref": "pay_123"})),
    )
    .await;
    assert_eq!(
        (again.status, again.code(), again.reason()),
        (StatusCode::CONFLICT, "conflict", "hold_already_confirmed")
    );
    let shown = call(
        &router,
        Method::GET,
        &format!("/v1/holds/{hold}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(
        (
            shown.body["status"].as_str(),
            shown.body["booking_id"].as_str()
        ),
        (Some("confirmed"), Some(booking.as_str()))
    );
    let listed = call(&router, Method::GET, "/v1/bookings", Some(&alice), None).await;
    assert_eq!(listed.body["bookings"][0]["booking_id"], booking.as_str());
    assert_eq!(
        call(&router, Method::GET, "/v1/bookings", Some(&bob), None)
            .await
            .body["bookings"],
        json!([])
    );
    assert_eq!(
        call(
            &router,
            Method::GET,
            &format!("/v1/bookings/{booking}"),
            Some(&bob),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );

    // Check-in: once, then already_used; a forged code is 404.
    let checkin = |code: String| {
        let router = router.clone();
        let uri = format!("/v1/admin/events/{event}/checkin");
        async move {
            call(
                &router,
                Method::POST,
                &uri,
                Some(ADMIN),
                Some(json!({"code": code})),
            )
            .await
        }
    };
    let first = checkin(code.clone()).await;
    assert_eq!(
        (first.status, first.body["status"].as_str()),
        (StatusCode::OK, Some("used")),
        "{}",
        first.text
    );
    assert_eq!(checkin(code.clone()).await.code(), "already_used");
    let forged = format!("{}0000000000000000", &code[..code.find('.').unwrap() + 1]);
    assert_eq!(checkin(forged).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        call(
            &router,
            Method::POST,
            &format!("/v1/admin/events/{event}/checkin"),
            Some(OTHER_ADMIN),
            Some(json!({"code": code}))
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );

    let attendees = call(
        &router,
        Method::GET,
        &format!("/v1/admin/events/{event}/attendees"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(attendees.body["attendees"][0]["user"], "alice");
    assert_eq!(
        attendees.body["attendees"][0]["tickets"][0]["checked_in"],
        true
    );
    let csv = call_with(
        &router,
        Method::GET,
        &format!("/v1/admin/events/{event}/attendees"),
        Some(ADMIN),
        &[("accept", "text/csv")],
        None,
    )
    .await;
    assert!(csv.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(
        lines[0],
        "booking_id,user,status,quantity,seats,categories,total_cents,booked_at,checked_in,pseudonym,identity,payment_ref,refund_id"
    );
    assert!(lines[1].ends_with(",known,pay_123,"), "{}", lines[1]);
    assert!(
        lines[1].starts_with(&format!(
            "{booking},alice,confirmed,2,A-1-2 A-1-3,Gold Gold,10000,"
        )),
        "{}",
        lines[1]
    );

    // A booking with a used ticket cannot be canceled; bob's hold release frees at once.
    assert_eq!(
        call(
            &router,
            Method::DELETE,
            &format!("/v1/bookings/{booking}"),
            Some(&alice),
            None
        )
        .await
        .code(),
        "already_used"
    );
    let bob_hold = best.body["hold_id"].as_str().unwrap();
    let released = call(
        &router,
        Method::DELETE,
        &format!("/v1/holds/{bob_hold}"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(
        (released.status, released.body["status"].as_str()),
        (StatusCode::OK, Some("released"))
    );
    let detail = call(
        &router,
        Method::GET,
        &format!("/v1/events/{event}"),
        None,
        None,
    )
    .await;
    assert_eq!(
        detail.body["availability"][0],
        json!({"category": "Gold", "price_cents": 5000, "capacity": 10, "free": 8, "held": 0, "booked": 2})
    );
    assert_eq!(detail.body["availability"][1]["held"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn canceling_a_booking_and_an_event() {
    let harness = Harness::start();
    let router = harness.router();
    let event = create_event(&router, event_body("Cancel", 4, 300)).await;
    let carol = token("carol");
    let held = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&carol),
        Some(json!({"seats": ["A-1-1"]})),
    )
    .await;
    let hold = held.body["hold_id"].as_str().unwrap();
    let booked = call(
        &router,
        Method::POST,
        &format!("/v1/holds/{hold}/confirm"),
        Some(&carol),
        Some(json!({"payment_ref": "p"})),
    )
    .await;
    let booking = booked.body["booking_id"].as_str().unwrap();
    let canceled = call(
        &router,
        Method::DELETE,
        &format!("/v1/bookings/{booking}"),
        Some(&carol),
        None,
    )
    .await;
    assert_eq!(
        (canceled.status, canceled.body["status"].as_str()),
        (StatusCode::OK, Some("canceled")),
        "{}",
        canceled.text
    );
    let map = call(
        &router,
        Method::GET,
        &format!("/v1/events/{event}/seats"),
        None,
        None,
    )
    .await;
    assert_eq!(
        map.body["sections"][0]["rows"][0]["seats"][0]["status"],
        "free"
    );

    let second = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&carol),
        Some(json!({"seats": ["A-1-2"]})),
    )
    .await;
    let second_hold = second.body["hold_id"].as_str().unwrap().to_string();
    assert_eq!(
        call(
            &router,
            Method::DELETE,
            &format!("/v1/admin/events/{event}"),
            Some(OTHER_ADMIN),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let gone = call(
        &router,
        Method::DELETE,
        &format!("/v1/admin/events/{event}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        gone.body,
        json!({"event_id": event, "status": "canceled", "released_holds": 1, "canceled_bookings": 0, "ended_waitlist_entries": 0})
    );
    let detail = call(
        &router,
        Method::GET,
        &format!("/v1/events/{event}"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (detail.status, detail.body["status"].as_str()),
        (StatusCode::OK, Some("canceled"))
    );
    assert_eq!(
        call(
            &router,
            Method::GET,
            &format!("/v1/holds/{second_hold}"),
            Some(&carol),
            None
        )
        .await
        .body["status"],
        "released"
    );
    let late = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&carol),
        Some(json!({"seats": ["A-1-3"]})),
    )
    .await;
    assert_eq!(late.code(), "conflict");
    // Canceled events leave the public search, not the tenant's list.
    assert_eq!(
        call(&router, Method::GET, "/v1/events", None, None)
            .await
            .body["total"],
        0
    );
    assert_eq!(
        call(
            &router,
            Method::GET,
            "/v1/events?include_canceled=true",
            None,
            None
        )
        .await
        .body["total"],
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_retries_return_the_first_answer() {
    let harness = Harness::start();
    let router = harness.router();
    let event = create_event(&router, event_body("Retry", 5, 300)).await;
    let dave = token("dave");
    let uri = format!("/v1/events/{event}/holds");
    let body = json!({"quantity": 2, "category": "Gold"}).to_string();
    let first = call_with(
        &router,
        Method::POST,
        &uri,
        Some(&dave),
        &[("idempotency-key", "order-42")],
        Some(body.clone()),
    )
    .await;
    let second = call_with(
        &router,
        Method::POST,
        &uri,
        Some(&dave),
        &[("idempotency-key", "order-42")],
        Some(body.clone()),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!((second.status, &second.body), (first.status, &first.body));
    // The same key from another user is another request.
    let erin = call_with(
        &router,
        Method::POST,
        &uri,
        Some(&token("erin")),
        &[("idempotency-key", "order-42")],
        Some(body),
    )
    .await;
    assert_ne!(erin.body["hold_id"], first.body["hold_id"]);
    let detail = call(
        &router,
        Method::GET,
        &format!("/v1/events/{event}"),
        None,
        None,
    )
    .await;
    assert_eq!(detail.body["availability"][0]["held"], 4);
    // The same key with another body is another request: 422, never the first answer, and
    // nothing is applied.
    let end = harness.requests_end();
    let reused = call_with(
        &router,
        Method::POST,
        &uri,
        Some(&dave),
        &[("idempotency-key", "order-42")],
        Some(json!({"quantity": 3, "category": "Gold"}).to_string()),
    )
    .await;
    assert_eq!(
        (
            reused.status,
            reused.code(),
            &reused.body["error"]["details"]["reason"]
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            &json!("idempotency_key_reused")
        ),
        "{}",
        reused.text
    );
    let detail = call(
        &router,
        Method::GET,
        &format!("/v1/events/{event}"),
        None,
        None,
    )
    .await;
    assert_eq!(detail.body["availability"][0]["held"], 4);
    // Known to the index by now, the refusal did not even reach the log.
    assert_eq!(harness.requests_end(), end);
    // A key is scoped to the event the request names: on a hold's own route (which names
    // no event) it is the user's key alone, another key, so this release is a new request.
    let hold = first.body["hold_id"].as_str().unwrap();
    let released = call_with(
        &router,
        Method::DELETE,
        &format!("/v1/holds/{hold}"),
        Some(&dave),
        &[("idempotency-key", "order-42")],
        None,
    )
    .await;
    assert_eq!(
        (released.status, &released.body["status"]),
        (StatusCode::OK, &json!("released")),
        "{}",
        released.text
    );
}

/// The engine keeps keys for a short window only; after it, the ingress's durable index
/// still answers a repeat with the first answer, and refuses the key for another body,
/// without appending anything.
#[tokio::test(flavor = "multi_thread")]
async fn a_repeat_after_the_engine_window_is_answered_by_the_index() {
    const ENGINE_WINDOW_MS: u64 = 300;
    let mut config = config();
    config.engine.idempotency_engine_window_ms = ENGINE_WINDOW_MS;
    let harness = Harness::with_config(config, true);
    let router = harness.router();
    let event = create_event(&router, event_body("Later", 5, 300)).await;
    let erin = token("erin");
    let uri = format!("/v1/events/{event}/holds");
    let key = [("idempotency-key", "order-7")];
    let body = json!({"quantity": 2, "category": "Gold"}).to_string();
    let first = call_with(
        &router,
        Method::POST,
        &uri,
        Some(&erin),
        &key,
        Some(body.clone()),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    // Log time passes the engine's window (ticks, as the runtime's ticker appends them):
    // the engine has forgotten the key. The engine's clock is the log time of what it
    // applied, which its status shows.
    let log_time_ms =
        |status: runtime::EngineStatus| status.applied_log_time_ms.expect("the hold is applied");
    let answered_ms = log_time_ms(harness.engine_status());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ticks = harness.requests.writer();
    loop {
        let tick = engine::Request::new(engine::Command::Tick);
        let tick_offset = ticks
            .append(vec![engine::wire::encode_request(&tick)])
            .unwrap()[0]
            .offset;
        if log_time_ms(harness.wait_applied(tick_offset)) > answered_ms + ENGINE_WINDOW_MS + 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "log time does not pass"
        );
        // Lets log time pass before the next tick (pacing, not a wait for anything).
        tokio::time::sleep(TICK).await;
    }
    let end = harness.requests_end();
    let again = call_with(&router, Method::POST, &uri, Some(&erin), &key, Some(body)).await;
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    assert_eq!(
        again.log_offset(),
        first.log_offset(),
        "the first answer's offset"
    );
    let reused = call_with(
        &router,
        Method::POST,
        &uri,
        Some(&erin),
        &key,
        Some(json!({"seats": ["A-1-5"]}).to_string()),
    )
    .await;
    assert_eq!(
        (reused.status, reused.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
        "{}",
        reused.text
    );
    assert_eq!(harness.requests_end(), end, "neither reached the log");
    let seats = call(
        &router,
        Method::GET,
        &format!("/v1/events/{event}/seats"),
        None,
        None,
    )
    .await;
    let held: usize = seats.body["sections"][0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row["seats"].as_array().unwrap())
        .filter(|seat| seat["status"] == "held")
        .count();
    assert_eq!(held, 2, "only the first request holds seats");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outcome_that_does_not_come_is_503_and_a_retry_learns_it() {
    let mut config = config();
    config.outcome_timeout = Duration::from_millis(300);
    let mut harness = Harness::with_config(config, false);
    let router = harness.router();
    let body = event_body("Late", 2, 300).to_string();
    let headers = [("idempotency-key", "create-1")];
    let late = call_with(
        &router,
        Method::POST,
        "/v1/admin/events",
        Some(ADMIN),
        &headers,
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (late.status, late.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{}",
        late.text
    );
    // The client cannot tell whether it was applied; the answer says what to do.
    let message = late.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("may or may not have been applied")
            && message.contains("retry with the same Idempotency-Key"),
        "{message}"
    );
    harness.start_engine();
    // Retrying with the same key is what a client does after a 503; a busy machine may need
    // more than one 300 ms window for the engine to start and catch up.
    let mut retried = call_with(
        &router,
        Method::POST,
        "/v1/admin/events",
        Some(ADMIN),
        &headers,
        Some(body.clone()),
    )
    .await;
    for _ in 0..20 {
        if retried.status != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        retried = call_with(
            &router,
            Method::POST,
            "/v1/admin/events",
            Some(ADMIN),
            &headers,
            Some(body.clone()),
        )
        .await;
    }
    assert_eq!(
        (retried.status, retried.body["event_id"].as_str()),
        (StatusCode::CREATED, Some("ev_0")),
        "{}",
        retried.text
    );
    let events = call(&router, Method::GET, "/v1/events", None, None).await;
    assert_eq!(events.body["total"], 1, "the retry changed nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn waitlist_join_leave_and_immediate_offer() {
    let harness = Harness::start();
    let router = harness.router();
    let event = create_event(&router, event_body("Queue", 2, 300)).await;
    let frank = token("frank");
    let grace = token("grace");
    // Everything Gold is held; frank waits (202), grace joins explicitly (201).
    let all = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&token("holder")),
        Some(json!({"quantity": 4, "category": "Gold"})),
    )
    .await;
    assert_eq!(all.status, StatusCode::CREATED);
    let waited = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&frank),
        Some(json!({"quantity": 1, "category": "Gold", "wait": true})),
    )
    .await;
    assert_eq!(
        (waited.status, waited.body["position"].as_u64()),
        (StatusCode::ACCEPTED, Some(1)),
        "{}",
        waited.text
    );
    let joined = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/waitlist"),
        Some(&grace),
        Some(json!({"quantity": 1, "category": "Gold"})),
    )
    .await;
    assert_eq!(
        (
            joined.status,
            joined.body["position"].as_u64(),
            joined.body["status"].as_str()
        ),
        (StatusCode::CREATED, Some(2), Some("waiting")),
        "{}",
        joined.text
    );
    let frank_entry = waited.body["waitlist_id"].as_str().unwrap().to_string();
    let grace_entry = joined.body["waitlist_id"].as_str().unwrap().to_string();
    assert_eq!(
        call(
            &router,
            Method::GET,
            &format!("/v1/waitlist/{grace_entry}"),
            Some(&frank),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );

    // Frank leaves: grace's live position becomes 1.
    let left = call(
        &router,
        Method::DELETE,
        &format!("/v1/waitlist/{frank_entry}"),
        Some(&frank),
        None,
    )
    .await;
    assert_eq!(
        (left.status, left.body["status"].as_str()),
        (StatusCode::OK, Some("left")),
        "{}",
        left.text
    );
    let status = call(
        &router,
        Method::GET,
        &format!("/v1/waitlist/{grace_entry}"),
        Some(&grace),
        None,
    )
    .await;
    assert_eq!(
        (
            status.body["status"].as_str(),
            status.body["position"].as_u64()
        ),
        (Some("waiting"), Some(1))
    );

    // The holder releases: grace is offered a hold at once.
    let hold = all.body["hold_id"].as_str().unwrap();
    call(
        &router,
        Method::DELETE,
        &format!("/v1/holds/{hold}"),
        Some(&token("holder")),
        None,
    )
    .await;
    let offered = call(
        &router,
        Method::GET,
        &format!("/v1/waitlist/{grace_entry}?wait_seconds=5"),
        Some(&grace),
        None,
    )
    .await;
    assert_eq!(offered.body["status"], "offered", "{}", offered.text);
    let offered_hold = offered.body["hold"]["hold_id"].as_str().unwrap();
    assert_eq!(offered.body["hold"]["waitlist_id"], grace_entry.as_str());
    let booked = call(
        &router,
        Method::POST,
        &format!("/v1/holds/{offered_hold}/confirm"),
        Some(&grace),
        Some(json!({"payment_ref": "p"})),
    )
    .await;
    assert_eq!(booked.status, StatusCode::CREATED);

    // With seats free and nobody waiting, joining is offered in the same outcome.
    let henry = token("henry");
    let instant = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/waitlist"),
        Some(&henry),
        Some(json!({"quantity": 2})),
    )
    .await;
    assert_eq!(
        (instant.status, instant.body["status"].as_str()),
        (StatusCode::CREATED, Some("offered")),
        "{}",
        instant.text
    );
    assert_eq!(instant.body["hold"]["quantity"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_users_and_operators_are_kept_apart() {
    let harness = Harness::start();
    let router = harness.router();
    let event = create_event(&router, event_body("Mine", 2, 300)).await;
    for (method, uri, key, status, code) in [
        (
            Method::GET,
            format!("/v1/admin/events/{event}"),
            OTHER_ADMIN.to_string(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            format!("/v1/admin/events/{event}/attendees"),
            OTHER_ADMIN.to_string(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            format!("/v1/admin/events/{event}"),
            OPERATOR.to_string(),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Method::GET,
            "/v1/admin/engine".to_string(),
            ADMIN.to_string(),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Method::GET,
            "/v1/admin/engine".to_string(),
            token("alice"),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Method::GET,
            format!("/v1/admin/events/{event}"),
            token("alice"),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Method::GET,
            "/v1/bookings".to_string(),
            ADMIN.to_string(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Method::GET,
            "/v1/bookings".to_string(),
            ingress::mint_user_token("wrong-secret", "alice", 60),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
    ] {
        let answer = call(&router, method, &uri, Some(&key), None).await;
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{uri}: {}",
            answer.text
        );
    }
    let patched = call(
        &router,
        Method::PATCH,
        &format!("/v1/admin/events/{event}"),
        Some(OTHER_ADMIN),
        Some(json!({"name": "Theirs"})),
    )
    .await;
    assert_eq!(patched.status, StatusCode::NOT_FOUND);
    assert_eq!(
        call(
            &router,
            Method::GET,
            &format!("/v1/events/{event}"),
            None,
            None
        )
        .await
        .body["name"],
        "Mine"
    );
}

/// Every kind of bad input gets its status and code, and nothing reaches the log.
#[tokio::test(flavor = "multi_thread")]
async fn bad_input_never_reaches_the_log() {
    let harness = Harness::start();
    let router = harness.router();
    let event = create_event(&router, event_body("Strict", 3, 300)).await;
    let alice = token("alice");
    let held = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&alice),
        Some(json!({"seats": ["A-1-1"]})),
    )
    .await;
    let hold = held.body["hold_id"].as_str().unwrap().to_string();
    let end = harness.requests_end();

    let holds = format!("/v1/events/{event}/holds");
    let long_key = "k".repeat(65);
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(70 * 1024));
    let created = event_body("X", 1, 300);
    let with_field = |field: &str, value: Value| {
        let mut body = created.clone();
        body[field] = value;
        Some(body.to_string())
    };
    let mut without_name = created.clone();
    without_name.as_object_mut().unwrap().remove("name");
    // Raw JSON text, so numbers no JSON library would produce get sent too.
    let priced = |price: &str| {
        let text = created.to_string();
        assert!(text.contains(r#""price_cents":5000"#));
        Some(text.replacen(
            r#""price_cents":5000"#,
            &format!(r#""price_cents":{price}"#),
            1,
        ))
    };
    let waitlist = format!("/v1/events/{event}/waitlist");
    let availability = |answer: &common::Answer| answer.body["availability"].clone();
    let event_before = call(
        &router,
        Method::GET,
        &format!("/v1/events/{event}"),
        None,
        None,
    )
    .await;
    let events_before = call(&router, Method::GET, "/v1/admin/events", Some(ADMIN), None).await;
    type Case<'a> = (
        Method,
        String,
        Option<&'a str>,
        Vec<(&'a str, &'a str)>,
        Option<String>,
        StatusCode,
        &'a str,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/v1/admin/events".into(),
            None,
            vec![],
            Some(created.to_string()),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing_token",
            "",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some("nope"),
            vec![],
            Some(created.to_string()),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unknown_admin_key",
            "",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            Some("{\"name\": ".into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "malformed_json",
            "",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![("content-type", "text/plain")],
            Some(created.to_string()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "not_json",
            "",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            Some(without_name.to_string()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "name",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            with_field("colour", json!("red")),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "colour",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            with_field("starts_at", json!("soon")),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "starts_at",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            with_field("hold_ttl_seconds", json!(-5)),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "hold_ttl_seconds",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            with_field("hold_ttl_seconds", json!(9000)),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "hold_ttl_seconds",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            with_field(
                "general_admission",
                json!([{"category": "Gold", "capacity": 5}]),
            ),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "general_admission[0].category",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            Some(big),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "body_too_large",
            "",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![("idempotency-key", long_key.as_str())],
            Some(created.to_string()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "Idempotency-Key",
        ),
        (
            Method::PATCH,
            format!("/v1/admin/events/{event}"),
            Some(ADMIN),
            vec![],
            Some("{}".into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "empty_patch",
            "",
        ),
        (
            Method::PATCH,
            "/v1/admin/events/ev_99".into(),
            Some(ADMIN),
            vec![],
            Some("{\"name\": \"x\"}".into()),
            StatusCode::NOT_FOUND,
            "not_found",
            "event_not_found",
            "",
        ),
        (
            Method::POST,
            format!("/v1/admin/events/{event}/checkin"),
            Some(ADMIN),
            vec![],
            Some("{\"code\": \"t_1_1.0123456789abcdef\"}".into()),
            StatusCode::NOT_FOUND,
            "not_found",
            "ticket_not_found",
            "",
        ),
        (
            Method::POST,
            format!("/v1/admin/events/{event}/checkin"),
            Some(ADMIN),
            vec![],
            Some("{\"code\": \"\"}".into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "code",
        ),
        (
            Method::POST,
            holds.clone(),
            None,
            vec![],
            Some("{\"quantity\": 1}".into()),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing_token",
            "",
        ),
        (
            Method::POST,
            holds.clone(),
            Some("garbage.token.here"),
            vec![],
            Some("{\"quantity\": 1}".into()),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid_token",
            "",
        ),
        (
            Method::POST,
            holds.clone(),
            Some(&alice),
            vec![],
            Some("{}".into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "seats",
        ),
        (
            Method::POST,
            holds.clone(),
            Some(&alice),
            vec![],
            Some("{\"seats\": [\"A-1-2\"], \"quantity\": 1}".into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "quantity",
        ),
        (
            Method::POST,
            holds.clone(),
            Some(&alice),
            vec![],
            Some("{\"quantity\": 0}".into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "quantity",
        ),
        (
            Method::POST,
            holds.clone(),
            Some(&alice),
            vec![],
            Some("{\"quantity\": \"two\"}".into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "quantity",
        ),
        (
            Method::POST,
            holds.clone(),
            Some(&alice),
            vec![],
            Some("{\"quantity\": 500}".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit_exceeded",
            "seats_per_order_max",
            "",
        ),
        (
            Method::POST,
            holds.clone(),
            Some(&alice),
            vec![],
            Some("{\"quantity\": 1, \"category\": \"Nope\"}".into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "category_not_found",
            "category",
        ),
        (
            Method::POST,
            holds.clone(),
            Some(&alice),
            vec![],
            Some("{\"seats\": [\"A-1-2\", \"A-1-2\"]}".into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "seats[1]",
        ),
        (
            Method::POST,
            holds.clone(),
            Some(&alice),
            vec![],
            Some("{\"seats\": [\"A-9-1\", \"A-1-2\"]}".into()),
            StatusCode::NOT_FOUND,
            "not_found",
            "unknown_seats",
            "",
        ),
        (
            Method::POST,
            "/v1/events/ev_x/holds".into(),
            Some(&alice),
            vec![],
            Some("{\"quantity\": 1}".into()),
            StatusCode::NOT_FOUND,
            "not_found",
            "event_not_found",
            "",
        ),
        (
            Method::POST,
            "/v1/events/ev_77/holds".into(),
            Some(&alice),
            vec![],
            Some("{\"quantity\": 1}".into()),
            StatusCode::NOT_FOUND,
            "not_found",
            "event_not_found",
            "",
        ),
        (
            Method::POST,
            format!("/v1/holds/{hold}/confirm"),
            Some(&alice),
            vec![],
            Some("{\"payment_ref\": \"  \"}".into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "payment_ref",
        ),
        (
            Method::POST,
            format!("/v1/holds/{hold}/confirm"),
            Some(&alice),
            vec![],
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "not_json",
            "",
        ),
        (
            Method::POST,
            "/v1/holds/h_9999/confirm".into(),
            Some(&alice),
            vec![],
            Some("{\"payment_ref\": \"p\"}".into()),
            StatusCode::NOT_FOUND,
            "not_found",
            "hold_not_found",
            "",
        ),
        (
            Method::DELETE,
            "/v1/holds/booking-7".into(),
            Some(&alice),
            vec![],
            None,
            StatusCode::NOT_FOUND,
            "not_found",
            "hold_not_found",
            "",
        ),
        (
            Method::DELETE,
            "/v1/bookings/b_0".into(),
            Some(&alice),
            vec![],
            None,
            StatusCode::NOT_FOUND,
            "not_found",
            "booking_not_found",
            "",
        ),
        (
            Method::DELETE,
            "/v1/waitlist/w_5".into(),
            Some(&alice),
            vec![],
            None,
            StatusCode::NOT_FOUND,
            "not_found",
            "waitlist_entry_not_found",
            "",
        ),
        (
            Method::POST,
            format!("/v1/events/{event}/waitlist"),
            Some(&alice),
            vec![],
            Some("{\"quantity\": 0}".into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "quantity",
        ),
        (
            Method::POST,
            "/v1/admin/desks".into(),
            Some(ADMIN),
            vec![],
            Some("{\"name\": \"d\", \"agents\": 0}".into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "agents",
        ),
        (
            Method::POST,
            "/v1/desks/desk_4/tickets".into(),
            Some(&alice),
            vec![],
            Some("{\"level\": \"gold\"}".into()),
            StatusCode::NOT_FOUND,
            "not_found",
            "desk_not_found",
            "",
        ),
        (
            Method::GET,
            "/v1/events?per_page=101".into(),
            None,
            vec![],
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "per_page",
        ),
        (
            Method::GET,
            "/v1/events?page=0".into(),
            None,
            vec![],
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "page",
        ),
        (
            Method::GET,
            "/v1/events?sort=price".into(),
            None,
            vec![],
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "sort",
        ),
        (
            Method::GET,
            "/v1/events?per_page=ten".into(),
            None,
            vec![],
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "malformed_query",
            "",
        ),
        (
            Method::GET,
            "/v1/events?colour=red".into(),
            None,
            vec![],
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "malformed_query",
            "",
        ),
        (
            Method::GET,
            "/v1/events?from=yesterday".into(),
            None,
            vec![],
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "from",
        ),
        (
            Method::GET,
            "/v1/events/ev_0x".into(),
            None,
            vec![],
            None,
            StatusCode::NOT_FOUND,
            "not_found",
            "event_not_found",
            "",
        ),
        (
            Method::GET,
            "/v1/nowhere".into(),
            None,
            vec![],
            None,
            StatusCode::NOT_FOUND,
            "not_found",
            "route_not_found",
            "",
        ),
        (
            Method::PUT,
            "/v1/cities".into(),
            None,
            vec![],
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method_not_allowed",
            "",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            priced(r#"-1"#),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "categories[0].price_cents",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            priced(r#"1000000001"#),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "categories[0].price_cents",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            priced(r#"9223372036854775808"#),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "categories[0].price_cents",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            priced(r#"18446744073709551615"#),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "categories[0].price_cents",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            priced(r#"18446744073709551616"#),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "categories[0].price_cents",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            priced(r#"1e300"#),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "categories[0].price_cents",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            priced(r#"50.5"#),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "categories[0].price_cents",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            priced(r#""5000""#),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "categories[0].price_cents",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            priced(r#"null"#),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "categories[0].price_cents",
        ),
        (
            Method::POST,
            "/v1/admin/events".into(),
            Some(ADMIN),
            vec![],
            priced(r#"true"#),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "categories[0].price_cents",
        ),
        (
            Method::POST,
            holds.clone(),
            Some(&alice),
            vec![],
            Some(r#"{"quantity": -1}"#.into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "quantity",
        ),
        (
            Method::POST,
            holds.clone(),
            Some(&alice),
            vec![],
            Some(r#"{"quantity": 1.5}"#.into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "quantity",
        ),
        (
            Method::POST,
            holds.clone(),
            Some(&alice),
            vec![],
            Some(r#"{"quantity": 4294967296}"#.into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "quantity",
        ),
        (
            Method::POST,
            holds.clone(),
            Some(&alice),
            vec![],
            Some(r#"{"quantity": 2.5}"#.into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "quantity",
        ),
        (
            Method::POST,
            holds.clone(),
            Some(&alice),
            vec![],
            Some(r#"{"quantity": "2"}"#.into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "quantity",
        ),
        (
            Method::POST,
            holds.clone(),
            Some(&alice),
            vec![],
            Some(r#"{"quantity": null}"#.into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "seats",
        ),
        (
            Method::POST,
            holds.clone(),
            Some(&alice),
            vec![],
            Some(r#"{"quantity": 4294967295}"#.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit_exceeded",
            "seats_per_order_max",
            "",
        ),
        (
            Method::POST,
            holds.clone(),
            Some(&alice),
            vec![],
            Some(r#"{"quantity": 0}"#.into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "quantity",
        ),
        (
            Method::POST,
            waitlist.clone(),
            Some(&alice),
            vec![],
            Some(r#"{"quantity": -1}"#.into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "quantity",
        ),
        (
            Method::POST,
            waitlist.clone(),
            Some(&alice),
            vec![],
            Some(r#"{"quantity": 1.5}"#.into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "quantity",
        ),
        (
            Method::POST,
            waitlist.clone(),
            Some(&alice),
            vec![],
            Some(r#"{"quantity": 4294967296}"#.into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "quantity",
        ),
        (
            Method::POST,
            waitlist.clone(),
            Some(&alice),
            vec![],
            Some(r#"{"quantity": 2.5}"#.into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "quantity",
        ),
        (
            Method::POST,
            waitlist.clone(),
            Some(&alice),
            vec![],
            Some(r#"{"quantity": "2"}"#.into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "quantity",
        ),
        (
            Method::POST,
            waitlist.clone(),
            Some(&alice),
            vec![],
            Some(r#"{"quantity": null}"#.into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "quantity",
        ),
        (
            Method::POST,
            waitlist.clone(),
            Some(&alice),
            vec![],
            Some(r#"{"quantity": 4294967295}"#.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit_exceeded",
            "seats_per_order_max",
            "",
        ),
        (
            Method::POST,
            waitlist.clone(),
            Some(&alice),
            vec![],
            Some(r#"{"quantity": 0}"#.into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_field",
            "quantity",
        ),
    ];
    for (method, uri, bearer, headers, body, status, code, reason, field) in cases {
        let answer = call_with(&router, method.clone(), &uri, bearer, &headers, body).await;
        assert_eq!(
            (answer.status, answer.code(), answer.reason()),
            (status, code, reason),
            "{method} {uri}: {}",
            answer.text
        );
        if !field.is_empty() {
            assert_eq!(answer.field(), field, "{method} {uri}: {}", answer.text);
        }
        assert!(
            !answer.body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .is_empty(),
            "{method} {uri}"
        );
    }
    assert_eq!(
        harness.requests_end(),
        end,
        "a refused request reached the log"
    );
    // And nothing changed: the same events, the same availability.
    let event_after = call(
        &router,
        Method::GET,
        &format!("/v1/events/{event}"),
        None,
        None,
    )
    .await;
    assert_eq!(availability(&event_after), availability(&event_before));
    let events_after = call(&router, Method::GET, "/v1/admin/events", Some(ADMIN), None).await;
    assert_eq!(events_after.body, events_before.body);
}

/// Money is exact: the most places an order may have, at the maximum price, hold and book
/// at their exact total (seated and pooled); `sold_out` then names the category and what
/// is left of it.
#[tokio::test(flavor = "multi_thread")]
async fn totals_are_exact_at_the_maximum_price() {
    let harness = Harness::start();
    let router = harness.router();
    let cap = common::engine_config().seats_per_order_cap;
    let mut body = event_body("Priciest", cap, 300);
    body["max_seats_per_order"] = json!(cap);
    body["categories"] = json!([
        {"name": "Gold", "price_cents": engine::PRICE_CENTS_MAX},
        {"name": "Floor", "price_cents": engine::PRICE_CENTS_MAX}
    ]);
    body["general_admission"] = json!([{"category": "Floor", "capacity": cap}]);
    let event = create_event(&router, body).await;
    let order_cents = u64::from(cap) * engine::PRICE_CENTS_MAX;
    for (user, category) in [("alice", "Floor"), ("bob", "Gold")] {
        let user = token(user);
        let held = call(
            &router,
            Method::POST,
            &format!("/v1/events/{event}/holds"),
            Some(&user),
            Some(json!({"quantity": cap, "category": category})),
        )
        .await;
        assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
        assert_eq!(held.body["total_cents"].as_u64(), Some(order_cents));
        let hold = held.body["hold_id"].as_str().unwrap();
        let booked = call(
            &router,
            Method::POST,
            &format!("/v1/holds/{hold}/confirm"),
            Some(&user),
            Some(json!({"payment_ref": "pay"})),
        )
        .await;
        assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text);
        assert_eq!(booked.body["total_cents"].as_u64(), Some(order_cents));
        let booking = booked.body["booking_id"].as_str().unwrap();
        let shown = call(
            &router,
            Method::GET,
            &format!("/v1/bookings/{booking}"),
            Some(&user),
            None,
        )
        .await;
        assert_eq!(shown.body["total_cents"].as_u64(), Some(order_cents));
    }
    let refused = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&token("carol")),
        Some(json!({"quantity": 1, "category": "Floor"})),
    )
    .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(
        refused.body["error"]["details"],
        json!({"reason": "sold_out", "category": "Floor", "free": 0})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_answer_429_with_retry_after() {
    let mut config = config();
    config.rate_limit.enabled = true;
    config.rate_limit.per_user_per_second = 1;
    config.rate_limit.per_user_burst = 2;
    let harness = Harness::with_config(config, true);
    let router = harness.router();
    let ivan = token("ivan");
    for _ in 0..2 {
        assert_eq!(
            call(&router, Method::GET, "/v1/bookings", Some(&ivan), None)
                .await
                .status,
            StatusCode::OK
        );
    }
    let limited = call(&router, Method::GET, "/v1/bookings", Some(&ivan), None).await;
    assert_eq!(
        (limited.status, limited.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert_eq!(limited.headers["retry-after"], "1");
    assert_eq!(
        call(
            &router,
            Method::GET,
            "/v1/bookings",
            Some(&token("judy")),
            None
        )
        .await
        .status,
        StatusCode::OK,
        "per user"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn operations_health_metrics_engine_and_openapi() {
    let harness = Harness::start();
    let router = harness.router();
    assert_eq!(
        call(&router, Method::GET, "/healthz", None, None)
            .await
            .body,
        json!({"status": "ok"})
    );
    create_event(&router, event_body("Ops", 2, 300)).await;
    let ready = call(&router, Method::GET, "/readyz", None, None).await;
    if ready.status != StatusCode::OK {
        // The follower looks at the log's end every half second; one more look settles it.
        let ingress = harness.ingress.as_ref().unwrap();
        assert!(ingress.wait_caught_up(Duration::from_secs(5)).await);
        assert_eq!(
            call(&router, Method::GET, "/readyz", None, None)
                .await
                .status,
            StatusCode::OK
        );
    }

    call(
        &router,
        Method::POST,
        "/v1/events/ev_0/holds",
        Some(&token("kim")),
        Some(json!({"quantity": 1, "category": "Gold"})),
    )
    .await;
    let metrics = call(&router, Method::GET, "/metrics", None, None).await;
    assert!(metrics.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    for expected in [
        "boxoffice_http_requests_total{route=\"/v1/events/{event_id}/holds\",method=\"POST\",status=\"201\"} 1",
        "boxoffice_http_request_duration_seconds_bucket{le=\"+Inf\",route=\"/v1/admin/events\",method=\"POST\",status=\"201\"} 1",
        "boxoffice_log_append_duration_seconds_count",
        "boxoffice_outcome_after_durable_seconds_count 2\n",
        "boxoffice_holds_active 1",
        "boxoffice_read_model_applied_offset",
        "boxoffice_outcomes_lag_records",
        "boxoffice_read_model_anomalies 0",
    ] {
        assert!(metrics.text.contains(expected), "missing {expected} in\n{}", metrics.text);
    }

    // The engine runs in another process here (as in Kafka mode): its own operator
    // endpoint answers these (`boxoffice/src/operator_http.rs`, where they are tested).
    for (method, path) in [
        (Method::GET, "/v1/admin/engine"),
        (Method::POST, "/v1/admin/engine/promote"),
        (Method::GET, "/v1/admin/engine/requests"),
    ] {
        let answer = call(&router, method, path, Some(OPERATOR), None).await;
        assert_eq!(
            (
                answer.status,
                answer.body["error"]["details"]["reason"].as_str()
            ),
            (StatusCode::SERVICE_UNAVAILABLE, Some("no_engine")),
            "{path}: {}",
            answer.text
        );
    }

    let document = call(&router, Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(document.status, StatusCode::OK);
    assert!(document.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document.body["paths"].as_object().unwrap();
    for path in [
        "/v1/cities",
        "/v1/events",
        "/v1/events/{event_id}/holds",
        "/v1/holds/{hold_id}/confirm",
        "/v1/waitlist/{waitlist_id}",
        "/v1/admin/events/{event_id}/checkin",
        "/v1/admin/engine",
        "/v1/admin/engine/promote",
        "/v1/admin/engine/requests",
        "/v1/desks/{desk_id}/tickets",
        "/v1/openapi.json",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(document.body["components"]["schemas"]["HoldResponse"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn service_desks_sell_slots_under_a_deadline() {
    let harness = Harness::start();
    let router = harness.router();
    let created = call(&router, Method::POST, "/v1/admin/desks", Some(ADMIN), Some(json!({"name": "Support", "agents": 1, "slot_minutes": 60, "levels": [{"name": "fast", "deadline_minutes": 120}]}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let desk = created.body["desk_id"].as_str().unwrap().to_string();
    let lena = token("lena");
    let tickets = format!("/v1/desks/{desk}/tickets");
    let held = call(
        &router,
        Method::POST,
        &tickets,
        Some(&lena),
        Some(json!({"level": "fast", "hold": true})),
    )
    .await;
    assert_eq!(
        (held.status, held.body["status"].as_str()),
        (StatusCode::CREATED, Some("held")),
        "{}",
        held.text
    );
    let ticket = held.body["ticket_id"].as_str().unwrap().to_string();
    assert!(held.body["hold_expires_at"].is_string());
    // One agent, one slot within the deadline: the next request cannot be served in time.
    let refused = call(
        &router,
        Method::POST,
        &tickets,
        Some(&token("mike")),
        Some(json!({"level": "fast"})),
    )
    .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "sla_unavailable"),
        "{}",
        refused.text
    );
    assert!(refused.body["error"]["details"]["earliest_start"].is_string());
    assert_eq!(
        call(
            &router,
            Method::POST,
            &tickets,
            Some(&lena),
            Some(json!({"level": "slow"}))
        )
        .await
        .field(),
        "level"
    );

    let confirmed = call(
        &router,
        Method::POST,
        &format!("{tickets}/{ticket}/confirm"),
        Some(&lena),
        None,
    )
    .await;
    assert_eq!(
        (confirmed.status, confirmed.body["status"].as_str()),
        (StatusCode::OK, Some("confirmed")),
        "{}",
        confirmed.text
    );
    assert_eq!(
        call(
            &router,
            Method::GET,
            &format!("{tickets}/{ticket}"),
            Some(&token("mike")),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let load = call(
        &router,
        Method::GET,
        &format!("/v1/admin/desks/{desk}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        (load.body["tickets"].as_u64(), load.body["agents"].as_u64()),
        (Some(1), Some(1)),
        "{}",
        load.text
    );
    assert_eq!(
        call(
            &router,
            Method::GET,
            &format!("/v1/admin/desks/{desk}"),
            Some(OTHER_ADMIN),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let canceled = call(
        &router,
        Method::DELETE,
        &format!("{tickets}/{ticket}"),
        Some(&lena),
        None,
    )
    .await;
    assert_eq!(canceled.body["status"], "canceled", "{}", canceled.text);
    let again = call(
        &router,
        Method::POST,
        &tickets,
        Some(&token("mike")),
        Some(json!({"level": "fast"})),
    )
    .await;
    assert_eq!(
        (again.status, again.body["status"].as_str()),
        (StatusCode::CREATED, Some("confirmed")),
        "the slot is free again: {}",
        again.text
    );
}

/// An outcomes log with a gap (outcome 1 never published): the follower notices, and the
/// ingress says it is not ready (503 `outcomes_gap`, naming the missing offset) instead of
/// answering from a read model that lacks what the missing outcome did.
#[tokio::test(flavor = "multi_thread")]
async fn a_gap_in_the_outcomes_log_makes_the_ingress_not_ready() {
    let harness = Harness::with_config(config(), false);
    let router = harness.router();
    let tick = engine::Request::new(engine::Command::Tick);
    let mut engine = engine::Engine::new(harness.engine_config.clone());
    let first = engine.apply(0, 1_000, &tick);
    let first = engine.named(first);
    let mut later = engine::Engine::new(harness.engine_config.clone());
    let third = later.apply(2, 1_000, &tick);
    let third = later.named(third);
    let frames: Vec<Vec<u8>> = [first, third]
        .iter()
        .flat_map(engine::wire::encode_outcome_frames)
        .collect();
    harness.outcomes.writer().append(frames).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let answer = loop {
        let answer = call(&router, Method::GET, "/readyz", None, None).await;
        if answer.reason() == "outcomes_gap" {
            break answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readiness never named the gap: {}",
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.body["error"]["details"]["outcomes_missing_from"],
        json!(1),
        "{}",
        answer.text
    );
}

/// The ingress resolves what never changes and appends ids: seat labels as seat indices,
/// category names as category indices (`Selection::BestIndexed`,
/// `Command::JoinWaitlistIndexed`); an unknown category is a 400 and appends nothing.
#[tokio::test(flavor = "multi_thread")]
async fn seats_and_categories_are_appended_by_index() {
    use requestlog::LogReader;
    let h = Harness::start();
    let router = h.router();
    let event = create_event(&router, event_body("Indexed", 4, 300)).await;
    let ann = token("ann");
    let holds = format!("/v1/events/{event}/holds");
    for body in [
        json!({"seats": ["A-2-3"]}),
        json!({"quantity": 2, "category": "Floor"}),
        json!({"quantity": 1}),
    ] {
        let held = call(&router, Method::POST, &holds, Some(&ann), Some(body)).await;
        assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
    }
    let joined = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/waitlist"),
        Some(&ann),
        Some(json!({"quantity": 1, "category": "Gold"})),
    )
    .await;
    assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.text);
    let end = h.requests_end();
    let unknown = call(
        &router,
        Method::POST,
        &holds,
        Some(&ann),
        Some(json!({"quantity": 1, "category": "Nope"})),
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.reason(), unknown.field()),
        (StatusCode::BAD_REQUEST, "category_not_found", "category"),
        "{}",
        unknown.text
    );
    assert_eq!(h.requests_end(), end, "a refused request appends nothing");

    let mut reader = h.requests.reader();
    let mut commands = Vec::new();
    while reader.position() < end {
        for record in reader.poll(64, Duration::from_millis(100)).unwrap() {
            commands.push(
                engine::wire::decode_request(&record.payload)
                    .unwrap()
                    .command,
            );
        }
    }
    let appended: Vec<String> = commands
        .iter()
        .filter_map(|command| match command {
            engine::Command::PlaceHold { selection, .. } => Some(format!("{selection:?}")),
            engine::Command::JoinWaitlistIndexed { category, .. } => {
                Some(format!("join {category:?}"))
            }
            engine::Command::JoinWaitlist { .. } => Some("join by name".into()),
            _ => None,
        })
        .collect();
    // Gold is category 0 and Floor 1 (the spec's order); A-2-3 is seat 4 + 2.
    assert_eq!(
        appended,
        [
            "SeatIndices([6])",
            "BestIndexed { quantity: 2, category: Some(1), together: false }",
            "BestIndexed { quantity: 1, category: None, together: false }",
            "join Some(0)",
        ]
    );
}
