//! Time-dependent fields of the read side (an event's sales status) come from log time,
//! the clock the engine decides with, never from the ingress machine's wall clock. The
//! outcomes here are made by a real engine at log times far from the wall clock and
//! appended straight to the outcomes log the ingress follows.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use engine::{
    CategorySpec, Command, Effect, Engine, EventSpec, PoolSpec, Request, Selection, WaitlistPolicy,
};
use requestlog::LogWriter;
use std::time::{Duration, Instant};

const HOUR_MS: u64 = 3_600_000;
/// 2030-01-01T00:00:00Z: years after any wall clock this test runs under.
const LOG_TIME_MS: u64 = 1_893_456_000_000;
/// 2027-01-01T00:00:00Z: the sales window opens after the wall clock of the day this was
/// written, before the log time.
const OPEN_MS: u64 = 1_798_761_600_000;

fn spec() -> EventSpec {
    EventSpec {
        name: "Late show".into(),
        description: String::new(),
        city: "Lyon".into(),
        country: "FR".into(),
        venue: "Hall".into(),
        starts_at_ms: LOG_TIME_MS + 100 * HOUR_MS,
        ends_at_ms: None,
        sales_open_at_ms: Some(OPEN_MS),
        sales_close_at_ms: Some(LOG_TIME_MS + HOUR_MS),
        hold_ttl_ms: 60_000,
        seats_per_order_max: 4,
        seats_per_user_max: None,
        waitlist_policy: WaitlistPolicy::Strict,
        categories: vec![CategorySpec {
            name: "Floor".into(),
            price_cents: 1_000,
        }],
        sections: vec![],
        general_admission: vec![PoolSpec {
            category: "Floor".into(),
            capacity: 10,
        }],
    }
}

/// Waits until the ingress has applied the outcome of `offset`, then reads event 0.
async fn event_after(harness: &Harness, offset: i64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = call(
            &harness.router(),
            Method::GET,
            "/v1/events/ev_0",
            None,
            None,
        )
        .await;
        if answer.status == StatusCode::OK && answer.log_offset() >= offset {
            return answer.body;
        }
        assert!(Instant::now() < deadline, "outcome {offset} never applied");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn sales_after(harness: &Harness, offset: i64) -> String {
    event_after(harness, offset).await["sales"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Appends a real engine's outcome (its users named) to the outcomes log the ingress
/// follows.
fn publish(harness: &Harness, engine: &Engine, outcome: engine::Outcome<engine::UserNumber>) {
    harness
        .outcomes
        .writer()
        .append(engine::wire::encode_outcome_frames(&engine.named(outcome)))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sales_status_follows_log_time_not_the_wall_clock() {
    let harness = Harness::with_config(config(), false);
    let mut engine = Engine::new(engine_config());
    let created = engine.apply(
        0,
        LOG_TIME_MS,
        &Request::new(Command::CreateEvent {
            tenant: "demo".into(),
            spec: Box::new(spec()),
        }),
    );
    assert!(created.result.is_ok(), "{created:?}");
    publish(&harness, &engine, created);
    // The wall clock is before OPEN_MS; the log's clock is past it: open, as the engine
    // would decide a hold applied now.
    assert_eq!(sales_after(&harness, 0).await, "open");

    // Log time passes the close; the wall clock does not.
    let ticked = engine.apply(1, LOG_TIME_MS + 2 * HOUR_MS, &Request::new(Command::Tick));
    publish(&harness, &engine, ticked);
    assert_eq!(sales_after(&harness, 1).await, "closed");
}

/// An idempotent repeat's outcome (`replayed`) carries the expiries its record's log time
/// set off: the ingress's follower applies them (it used to skip a repeat's outcome whole,
/// and the expired hold's places stayed held on the read side for good).
#[tokio::test(flavor = "multi_thread")]
async fn a_repeat_s_outcome_frees_what_its_clock_expired() {
    let harness = Harness::with_config(config(), false);
    let mut engine = Engine::new(engine_config());
    let hold = |user: &str, quantity| Command::PlaceHold {
        user: user.into(),
        event: engine::EventId(0),
        selection: Selection::Best {
            quantity,
            category: None,
            together: false,
        },
        wait: false,
    };
    let create = Request::new(Command::CreateEvent {
        tenant: "demo".into(),
        spec: Box::new(spec()),
    });
    let first = engine.apply(0, LOG_TIME_MS, &create);
    publish(&harness, &engine, first);
    let held = engine.apply(1, LOG_TIME_MS, &Request::new(hold("ana", 3)));
    assert!(held.result.is_ok(), "{held:?}");
    publish(&harness, &engine, held);
    let keyed = Request {
        idempotency_key: Some("k-1".into()),
        command: hold("bo", 2),
    };
    let answered = engine.apply(2, LOG_TIME_MS + 1_000, &keyed);
    assert!(answered.result.is_ok(), "{answered:?}");
    publish(&harness, &engine, answered);
    assert_eq!(
        event_after(&harness, 2).await["availability"][0]["free"],
        10 - 3 - 2
    );
    // Repeated past ana's hold's expiry (60 s), before bo's.
    let repeat = engine.apply(3, LOG_TIME_MS + 60_500, &keyed);
    assert!(repeat.replayed, "{repeat:?}");
    assert!(
        matches!(&repeat.effects[..], [Effect::HoldExpired { .. }]),
        "{repeat:?}"
    );
    publish(&harness, &engine, repeat);
    assert_eq!(
        event_after(&harness, 3).await["availability"][0]["free"],
        10 - 2
    );
}
