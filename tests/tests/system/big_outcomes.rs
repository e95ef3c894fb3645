//! Outcomes of any size, through the real runtime with a real ingress in front (in this
//! process; its router is called without a socket), on the embedded log and on Kafka
//! (when `KAFKA_BOOTSTRAP` is set):
//! - one confirm sells out a one-seat event and ends its 200,000 waiters;
//! - cancelling an event cancels its 100,000 bookings;
//! - the first record after a day of quiet expires 100,000 holds placed the day before
//!   (the test sets log time: the runtime reads the requests log through [`LogTime`]).
//!
//! The setup is appended to the requests log in bulk; the command with the big outcome,
//! and a new hold after it, go through HTTP. After each scenario: one outcome per request
//! offset, reassembled from its frames, equal to a from-scratch replay's, and the runtime's
//! state hash equal to the replay's; the ingress's availability and seat map equal to the
//! replayed engine's; the hold after the big outcome is answered 201.

use crate::common;

use axum::http::{Method, StatusCode};
use common::stack::{token, Stack, ADMIN};
use common::*;
use engine::{Effect, EventId, HoldId, Outcome, Reply};
use runtime::RuntimeOptions;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WAITERS: u32 = 200_000;
const BOOKINGS: u32 = 100_000;
const HOLDS: u32 = 100_000;
/// Every scenario's first event: ten seats, free for the hold after the big outcome.
const SPARE: EventId = EventId(0);
const BIG: EventId = EventId(1);
/// Writes wait this long for their outcome: the big ones take seconds on a loaded machine.
const OUTCOME_TIMEOUT: Duration = Duration::from_secs(60);

fn options(publish_bytes_max: usize) -> RuntimeOptions {
    RuntimeOptions {
        // No tick during a test: the records a test appends are all the time there is.
        tick_interval_ms: 3_600_000,
        idle_ms: 5,
        idle_hash_every_ms: 0,
        publish_bytes_max,
        ..RuntimeOptions::new(engine_config())
    }
}

/// The outcome of the request at `offset`.
fn outcome_at(outcomes: &[Outcome], offset: u64) -> &Outcome {
    outcomes
        .iter()
        .find(|outcome| outcome.offset == offset)
        .unwrap_or_else(|| panic!("no outcome for offset {offset}"))
}

// ---- 200,000 waiters ended by one confirm ---------------------------------------------------

fn waiters_ended_by_one_confirm(backend: Backend) {
    // Two frames an append: the confirm's outcome (megabytes) goes over several appends.
    let stack = Stack::start(
        backend,
        None,
        options(2 * engine::wire::OUTCOME_FRAME_BYTES_MAX),
        OUTCOME_TIMEOUT,
    );
    let mut payloads = vec![
        create_event(seated_event(1, 10, 600_000)),
        create_event(seated_event(1, 1, 600_000)),
        hold_seat(&logged_user("holder"), BIG, "A-1-1"),
    ];
    payloads.extend(
        (0..WAITERS).map(|index| join_waitlist(&logged_user(&format!("waiter-{index}")), BIG)),
    );
    let end = stack.append(payloads);
    stack.wait_read_model(end - 1);
    stack.say("the read model has every waiter");

    let (status, body) = stack.call(
        Method::POST,
        "/v1/holds/h_1/confirm",
        Some(&token("holder")),
        Some(json!({ "payment_ref": "pay-1" })),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    stack.say("the confirm that sells out is answered 201");
    let (status, body) = stack.hold("after", SPARE, "A-1-1");
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (outcomes, records) = stack.check(&[SPARE, BIG]);
    let confirmed = outcome_at(&outcomes, end);
    assert!(matches!(confirmed.result, Ok(Reply::HoldConfirmed(_))));
    let ended = confirmed
        .effects
        .iter()
        .filter(|effect| matches!(effect, Effect::WaitlistEnded { .. }))
        .count();
    assert_eq!(ended, WAITERS as usize, "every waiter ended in one outcome");
    let frames = engine::wire::encode_outcome_frames(confirmed).len();
    assert!(frames >= 4, "the outcome spans {frames} frames");
    assert_eq!(records, outcomes.len() + frames - 1);
    // A waiter reads its entry as ended.
    let (status, body) = stack.call(
        Method::GET,
        "/v1/waitlist/w_1",
        Some(&token("waiter-0")),
        None,
    );
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("expired")),
        "{body}"
    );
    stack.stop();
}

#[test]
fn embedded_200_000_waiters_are_ended_by_one_confirm() {
    let dir = tempfile::tempdir().unwrap();
    waiters_ended_by_one_confirm(Backend::embedded(dir.path()));
}

#[test]
fn kafka_200_000_waiters_are_ended_by_one_confirm() {
    if let Some(backend) = Backend::kafka("waiters") {
        waiters_ended_by_one_confirm(backend);
    }
}

// ---- an event with 100,000 bookings cancelled ------------------------------------------------

fn bookings_cancelled_with_their_event(backend: Backend) {
    // The default budget: the cancel's outcome fits one append, in several frames.
    let stack = Stack::start(
        backend,
        None,
        options(RuntimeOptions::new(engine_config()).publish_bytes_max),
        OUTCOME_TIMEOUT,
    );
    let seat = |index: u32| format!("A-{}-{}", index / 1_000 + 1, index % 1_000 + 1);
    let user = |index: u32| format!("buyer-{index}");
    let mut payloads = vec![
        create_event(seated_event(1, 10, 600_000)),
        create_event(seated_event(BOOKINGS / 1_000, 1_000, 600_000)),
    ];
    payloads.extend(
        (0..BOOKINGS).map(|index| hold_seat(&logged_user(&user(index)), BIG, &seat(index))),
    );
    payloads.extend(
        (0..BOOKINGS)
            .map(|index| confirm(&logged_user(&user(index)), HoldId(u64::from(index) + 1))),
    );
    let end = stack.append(payloads);
    stack.wait_read_model(end - 1);
    stack.say("the read model has every booking");

    let (status, body) = stack.call(
        Method::DELETE,
        &format!("/v1/admin/events/{BIG}"),
        Some(ADMIN),
        None,
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    stack.say("the cancel is answered 200");
    let (status, body) = stack.hold("after", SPARE, "A-1-1");
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (outcomes, records) = stack.check(&[SPARE, BIG]);
    let Ok(Reply::EventCanceled {
        canceled_bookings, ..
    }) = &outcome_at(&outcomes, end).result
    else {
        panic!("the cancel was not applied");
    };
    assert_eq!(canceled_bookings.len(), BOOKINGS as usize);
    let frames = engine::wire::encode_outcome_frames(outcome_at(&outcomes, end)).len();
    assert!(frames >= 2, "the outcome spans {frames} frames");
    assert_eq!(records, outcomes.len() + frames - 1);
    let (status, body) = stack.call(
        Method::GET,
        "/v1/bookings/b_1",
        Some(&token(&user(0))),
        None,
    );
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("canceled")),
        "{body}"
    );
    stack.stop();
}

#[test]
fn embedded_an_event_with_100_000_bookings_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    bookings_cancelled_with_their_event(Backend::embedded(dir.path()));
}

#[test]
fn kafka_an_event_with_100_000_bookings_is_cancelled() {
    if let Some(backend) = Backend::kafka("bookings") {
        bookings_cancelled_with_their_event(backend);
    }
}

// ---- a day of quiet, then every hold expires at once -------------------------------------

const DAY_MS: u64 = 24 * 3_600_000;
const HOLD_TTL_MS: u64 = 2 * 3_600_000;

fn holds_expire_after_a_quiet_day(backend: Backend) {
    let seat = |index: u32| format!("A-{}-{}", index / 1_000 + 1, index % 1_000 + 1);
    let mut payloads = vec![
        create_event(seated_event(1, 10, HOLD_TTL_MS)),
        create_event(seated_event(HOLDS / 1_000, 1_000, HOLD_TTL_MS)),
    ];
    payloads
        .extend((0..HOLDS).map(|index| hold_seat(&format!("holder-{index}"), BIG, &seat(index))));
    // The setup happened a day ago, over an hour (less than the holds' TTL, so none
    // expires during it); later records keep the time the log gave them. The primary's
    // `Configure` record is at offset 0 (`Stack::start` waits for it).
    let quiet_from = payloads.len() as u64 + 1;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let day_ago_ms = now_ms - DAY_MS;
    let spacing_ms = 3_600_000 / quiet_from;
    let logs = backend.logs();
    let time = LogTime {
        log: Arc::clone(&logs.requests),
        time: Arc::new(move |offset, timestamp_ms| {
            if offset < quiet_from {
                day_ago_ms + offset * spacing_ms
            } else {
                timestamp_ms
            }
        }),
    };
    let stack = Stack::start(
        backend,
        Some(time),
        options(2 * engine::wire::OUTCOME_FRAME_BYTES_MAX),
        OUTCOME_TIMEOUT,
    );
    let end = stack.append(payloads);
    assert_eq!(end, quiet_from);
    stack.wait_read_model(end - 1);
    stack.say("the read model has every hold");
    let (_, map) = stack.call(Method::GET, &format!("/v1/events/{BIG}"), None, None);
    assert_eq!(map["availability"][0]["held"], json!(HOLDS), "{map}");

    // The first record after the quiet day: a hold on a seat held a day ago, answered
    // because every overdue hold expires first.
    let (status, body) = stack.hold("late", BIG, "A-1-1");
    assert_eq!(status, StatusCode::CREATED, "{body}");
    stack.say("the first hold after the quiet day is answered 201");
    let (status, body) = stack.hold("after", SPARE, "A-1-1");
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (outcomes, records) = stack.check(&[SPARE, BIG]);
    let first = outcome_at(&outcomes, end);
    assert!(
        matches!(first.result, Ok(Reply::HoldPlaced(_))),
        "{:?}",
        first.result
    );
    let expired = first
        .effects
        .iter()
        .filter(|effect| matches!(effect, Effect::HoldExpired { .. }))
        .count();
    assert_eq!(
        expired, HOLDS as usize,
        "every hold expired in the first record"
    );
    let frames = engine::wire::encode_outcome_frames(first).len();
    assert!(frames >= 4, "the outcome spans {frames} frames");
    assert_eq!(records, outcomes.len() + frames - 1);
    stack.stop();
}

#[test]
fn embedded_a_day_of_holds_expires_in_the_first_record_after_a_quiet_day() {
    let dir = tempfile::tempdir().unwrap();
    holds_expire_after_a_quiet_day(Backend::embedded(dir.path()));
}

#[test]
fn kafka_a_day_of_holds_expires_in_the_first_record_after_a_quiet_day() {
    if let Some(backend) = Backend::kafka("quiet-day") {
        holds_expire_after_a_quiet_day(backend);
    }
}
