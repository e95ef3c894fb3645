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

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::*;
use engine::query::SeatStatus;
use engine::{Effect, Engine, EventId, HoldId, Outcome, Reply};
use ingress::{AppState, Ingress, IngressConfig};
use runtime::{Logs, OpenLog, Runtime, RuntimeOptions};
use serde_json::{json, Value};
use snapshotter::MemoryStore;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tower::ServiceExt;

const WAITERS: u32 = 200_000;
const BOOKINGS: u32 = 100_000;
const HOLDS: u32 = 100_000;
/// Every scenario's first event: ten seats, free for the hold after the big outcome.
const SPARE: EventId = EventId(0);
const BIG: EventId = EventId(1);
const ADMIN: &str = "demo-admin-key";

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

fn token(user: &str) -> String {
    ingress::mint_user_token(ingress::DEVELOPMENT_USER_TOKEN_SECRET, user, 3_600)
}

/// The runtime and an ingress on one backend's logs.
struct Stack {
    backend: Backend,
    /// The requests log as the runtime reads it (with the test's log time, if any).
    requests: Arc<dyn OpenLog>,
    runtime: Option<Runtime>,
    ingress: Option<Ingress>,
    state: AppState,
    http: tokio::runtime::Runtime,
    started: Instant,
}

impl Stack {
    fn start(backend: Backend, time: Option<LogTime>, options: RuntimeOptions) -> Stack {
        let started = Instant::now();
        let logs = backend.logs();
        let requests: Arc<dyn OpenLog> = match time {
            Some(time) => Arc::new(time),
            None => Arc::clone(&logs.requests),
        };
        let runtime = Runtime::start(
            options,
            Logs {
                requests: Arc::clone(&requests),
                outcomes: Arc::clone(&logs.outcomes),
            },
            Box::new(MemoryStore::new(1)),
        )
        .unwrap();
        let mut config = IngressConfig {
            engine: engine_config(),
            outcome_timeout: Duration::from_secs(60),
            ..IngressConfig::default()
        };
        config.rate_limit.enabled = false;
        let ingress = Ingress::start(
            config,
            logs.requests.open_writer().unwrap(),
            logs.outcomes.open_reader().unwrap(),
            None,
        )
        .unwrap();
        let http = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Stack {
            backend,
            requests,
            runtime: Some(runtime),
            state: ingress.state(),
            ingress: Some(ingress),
            http,
            started,
        }
    }

    fn say(&self, what: &str) {
        eprintln!("{:>7.2} s  {what}", self.started.elapsed().as_secs_f64());
    }

    /// Appends the setup straight to the requests log; returns the log's end.
    fn append(&self, payloads: Vec<Vec<u8>>) -> u64 {
        let end = append_all(self.backend.logs().requests.as_ref(), payloads);
        self.say(&format!("setup appended: the requests log ends at {end}"));
        end
    }

    /// One request through the router.
    fn call(
        &self,
        method: Method,
        uri: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(bearer) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(body.map_or_else(Body::empty, |body| Body::from(body.to_string())))
            .unwrap();
        let router = ingress::app(self.state.clone());
        self.http.block_on(async move {
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        })
    }

    /// Waits until the ingress's read model has applied the outcome of `offset`.
    fn wait_read_model(&self, offset: u64) {
        let deadline = Instant::now() + DEADLINE;
        while self.state.applied_offset() < Some(offset) {
            assert!(
                Instant::now() < deadline,
                "the read model stayed at {:?}, short of {offset}",
                self.state.applied_offset()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn hold(&self, user: &str, event: EventId, seat: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/v1/events/{event}/holds"),
            Some(&token(user)),
            Some(json!({ "seats": [seat] })),
        )
    }

    /// The checks every scenario ends with; returns the outcomes and how many records
    /// carried them.
    fn check(&self, events: &[EventId]) -> (Vec<Outcome>, usize) {
        let runtime = self.runtime.as_ref().unwrap();
        let end = self.requests.open_reader().unwrap().end_offset().unwrap();
        let status = wait_settled(&runtime.handle(), end);
        assert_eq!(status.failure, None);
        self.say("the runtime has applied and published everything");
        let records = read_all(self.backend.logs().outcomes.as_ref());
        let outcomes = decode_outcomes(&records);
        let engine = check_outcomes_against(self.requests.as_ref(), &status, &outcomes);
        self.say(&format!(
            "{} outcomes in {} records, equal to a replay's",
            outcomes.len(),
            records.len()
        ));
        self.wait_read_model(end - 1);
        for &event in events {
            self.check_read_model(&engine, event);
        }
        self.say("the read model agrees with the engine");
        (outcomes, records.len())
    }

    /// The ingress shows the engine's availability and seat map.
    fn check_read_model(&self, engine: &Engine, event: EventId) {
        let (status, shown) = self.call(Method::GET, &format!("/v1/events/{event}"), None, None);
        assert_eq!(status, StatusCode::OK, "{shown}");
        let shown: Vec<Value> = shown["availability"]
            .as_array()
            .expect("availability")
            .iter()
            .map(|category| {
                json!([category["category"], category["capacity"], category["free"], category["held"], category["booked"]])
            })
            .collect();
        let expected: Vec<Value> = engine
            .availability(event)
            .unwrap()
            .into_iter()
            .map(|category| {
                json!([category.category, category.capacity, category.free, category.held, category.booked])
            })
            .collect();
        assert_eq!(shown, expected, "availability of {event}");

        let (status, map) = self.call(Method::GET, &format!("/v1/events/{event}/seats"), None, None);
        assert_eq!(status, StatusCode::OK, "{map}");
        let shown: Vec<(&str, &str)> = map["sections"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|section| section["rows"].as_array().unwrap())
            .flat_map(|row| row["seats"].as_array().unwrap())
            .map(|seat| (seat["id"].as_str().unwrap(), seat["status"].as_str().unwrap()))
            .collect();
        let seats = engine.seat_count(event).unwrap();
        let labels: Vec<String> = (0..seats)
            .map(|seat| engine.seat_label(event, seat).unwrap())
            .collect();
        let expected: Vec<(&str, &str)> = (0..seats)
            .map(|seat| {
                let status = match engine.seat_status(event, seat).unwrap() {
                    SeatStatus::Free => "free",
                    SeatStatus::Held => "held",
                    SeatStatus::Booked => "booked",
                };
                (labels[seat as usize].as_str(), status)
            })
            .collect();
        assert!(shown == expected, "the seat map of {event} differs from the engine's");
    }

    fn stop(mut self) {
        if let Some(ingress) = self.ingress.take() {
            ingress.stop();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown().unwrap();
        }
        self.say("stopped");
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
    );
    let mut payloads = vec![
        create_event(seated_event(1, 10, 600_000)),
        create_event(seated_event(1, 1, 600_000)),
        hold_seat("holder", BIG, "A-1-1"),
    ];
    payloads.extend((0..WAITERS).map(|index| join_waitlist(&format!("waiter-{index}"), BIG)));
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
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("expired")), "{body}");
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
    let stack = Stack::start(backend, None, options(RuntimeOptions::new(engine_config()).publish_bytes_max));
    let seat = |index: u32| format!("A-{}-{}", index / 1_000 + 1, index % 1_000 + 1);
    let user = |index: u32| format!("buyer-{index}");
    let mut payloads = vec![
        create_event(seated_event(1, 10, 600_000)),
        create_event(seated_event(BOOKINGS / 1_000, 1_000, 600_000)),
    ];
    payloads.extend((0..BOOKINGS).map(|index| hold_seat(&user(index), BIG, &seat(index))));
    payloads.extend((0..BOOKINGS).map(|index| confirm(&user(index), HoldId(u64::from(index) + 1))));
    let end = stack.append(payloads);
    stack.wait_read_model(end - 1);
    stack.say("the read model has every booking");

    let (status, body) = stack.call(Method::DELETE, &format!("/v1/admin/events/{BIG}"), Some(ADMIN), None);
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
    let (status, body) = stack.call(Method::GET, "/v1/bookings/b_1", Some(&token(&user(0))), None);
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("canceled")), "{body}");
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
    payloads.extend((0..HOLDS).map(|index| hold_seat(&format!("holder-{index}"), BIG, &seat(index))));
    // The setup happened a day ago, over an hour (less than the holds' TTL, so none
    // expires during it); later records keep the time the log gave them.
    let quiet_from = payloads.len() as u64;
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
    assert!(matches!(first.result, Ok(Reply::HoldPlaced(_))), "{:?}", first.result);
    let expired = first
        .effects
        .iter()
        .filter(|effect| matches!(effect, Effect::HoldExpired { .. }))
        .count();
    assert_eq!(expired, HOLDS as usize, "every hold expired in the first record");
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
