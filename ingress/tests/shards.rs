//! An ingress over three shards (issue "Past one engine thread"): three engine runtimes,
//! each on its own embedded requests and outcomes logs with its place in the engine
//! configuration, a control log, and one ingress routing by the ids' shards.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use engine::{EngineConfig, ShardPlace};
use ingress::{ControlLogs, Ingress, ShardLogs};
use requestlog::{EmbeddedLog, EmbeddedOptions, LogWriter};
use runtime::Runtime;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const SHARDS: u32 = 3;

struct Shard {
    requests: Arc<EmbeddedLog>,
    outcomes: Arc<EmbeddedLog>,
    engine: Option<Runtime>,
    config: EngineConfig,
}

struct Sharded {
    ingress: Option<Ingress>,
    shards: Vec<Shard>,
    _dir: tempfile::TempDir,
}

impl Drop for Sharded {
    fn drop(&mut self) {
        if let Some(ingress) = self.ingress.take() {
            ingress.stop();
        }
        for shard in &mut self.shards {
            if let Some(engine) = shard.engine.take() {
                let _ = engine.shutdown();
            }
        }
    }
}

fn shard_config(index: u32, count: u32) -> EngineConfig {
    EngineConfig {
        shard: ShardPlace { index, count },
        ..engine_config()
    }
}

impl Sharded {
    fn start(outcome_timeout: Duration) -> Sharded {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: String| {
            Arc::new(EmbeddedLog::open(dir.path().join(name), EmbeddedOptions::default()).unwrap())
        };
        let shards: Vec<Shard> = (0..SHARDS)
            .map(|index| {
                let requests = open(format!("requests-{index}"));
                let outcomes = open(format!("outcomes-{index}"));
                let config = shard_config(index, SHARDS);
                let engine = start_runtime(requests.clone(), outcomes.clone(), config.clone());
                Shard {
                    requests,
                    outcomes,
                    engine: Some(engine),
                    config,
                }
            })
            .collect();
        let control = open("control".into());
        let mut config = config();
        config.outcome_timeout = outcome_timeout;
        let ingress = Ingress::start_shards(
            config,
            shards
                .iter()
                .map(|shard| ShardLogs {
                    writer: Arc::new(shard.requests.writer()),
                    outcomes: Box::new(shard.outcomes.reader()),
                    outcomes_log_id: None,
                    engine: None,
                })
                .collect(),
            Some(ControlLogs {
                writer: Arc::new(control.writer()),
                reader: Box::new(control.reader()),
            }),
        )
        .unwrap();
        Sharded {
            ingress: Some(ingress),
            shards,
            _dir: dir,
        }
    }

    fn router(&self) -> axum::Router {
        self.ingress.as_ref().unwrap().router()
    }
}

fn shard_of(id: &str) -> u32 {
    let digits: u64 = id
        .rsplit('_')
        .next()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no number in {id}"));
    engine::shard_of(digits, SHARDS)
}

async fn create_keyed(router: &axum::Router, name: &str, key: &str) -> Answer {
    call_with(
        router,
        Method::POST,
        "/v1/admin/events",
        Some(ADMIN),
        &[("idempotency-key", key)],
        Some(event_body(name, 10, 300).to_string()),
    )
    .await
}

async fn hold(router: &axum::Router, user: &str, event: &str, quantity: u32) -> Answer {
    call(
        router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&token(user)),
        Some(json!({"quantity": quantity, "category": "Gold"})),
    )
    .await
}

/// Events spread over the shards by request; every id an answer carries says its shard;
/// holds, confirms and reads reach it; lists merge every shard's; a retry of a creation
/// reaches the shard of its first try and gets its first answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_spread_over_shards_and_every_id_routes_itself() {
    let sharded = Sharded::start(Duration::from_secs(5));
    let router = sharded.router();
    let mut events = Vec::new();
    for number in 0..12 {
        let created = create_keyed(
            &router,
            &format!("Show {number}"),
            &format!("create-{number}"),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        events.push(created.body["event_id"].as_str().unwrap().to_string());
    }
    let placed: std::collections::BTreeSet<u32> = events.iter().map(|id| shard_of(id)).collect();
    assert_eq!(
        placed.len(),
        SHARDS as usize,
        "12 events reach every shard: {events:?}"
    );
    let retry = create_keyed(&router, "Show 0", "create-0").await;
    assert_eq!(
        (retry.status, retry.body["event_id"].as_str()),
        (StatusCode::CREATED, Some(events[0].as_str())),
        "{}",
        retry.text
    );

    // One booking per shard for one user, each through ids that route themselves.
    let mut bookings = Vec::new();
    for shard in 0..SHARDS {
        let event = events.iter().find(|id| shard_of(id) == shard).unwrap();
        let held = hold(&router, "ana", event, 2).await;
        assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
        let hold_id = held.body["hold_id"].as_str().unwrap().to_string();
        assert_eq!(shard_of(&hold_id), shard, "{hold_id} of {event}");
        let read = call(
            &router,
            Method::GET,
            &format!("/v1/holds/{hold_id}"),
            Some(&token("ana")),
            None,
        )
        .await;
        assert_eq!(
            (read.status, read.body["status"].as_str()),
            (StatusCode::OK, Some("held"))
        );
        let confirmed = call(
            &router,
            Method::POST,
            &format!("/v1/holds/{hold_id}/confirm"),
            Some(&token("ana")),
            Some(json!({"payment_ref": format!("pay-{shard}")})),
        )
        .await;
        assert_eq!(confirmed.status, StatusCode::CREATED, "{}", confirmed.text);
        let booking = confirmed.body["booking_id"].as_str().unwrap().to_string();
        assert_eq!(shard_of(&booking), shard);
        for ticket in confirmed.body["tickets"].as_array().unwrap() {
            let ticket_id = ticket["ticket_id"].as_str().unwrap();
            assert!(
                ticket_id.starts_with(&format!("t_{}_", &booking[2..])),
                "{ticket_id}"
            );
        }
        bookings.push(booking);
        let seats = call(
            &router,
            Method::GET,
            &format!("/v1/events/{event}"),
            None,
            None,
        )
        .await;
        let gold = &seats.body["availability"][0];
        assert_eq!(
            (gold["booked"].as_u64(), gold["held"].as_u64()),
            (Some(2), Some(0)),
            "{}",
            seats.text
        );
    }
    let mine = call(
        &router,
        Method::GET,
        "/v1/bookings",
        Some(&token("ana")),
        None,
    )
    .await;
    let listed: Vec<&str> = mine.body["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|booking| booking["booking_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), SHARDS as usize, "{}", mine.text);
    for booking in &bookings {
        assert!(
            listed.contains(&booking.as_str()),
            "{booking} not in {listed:?}"
        );
    }
    let offsets = mine
        .headers
        .get("x-log-offsets")
        .expect("X-Log-Offsets")
        .to_str()
        .unwrap();
    assert_eq!(offsets.split(',').count(), SHARDS as usize, "{offsets}");

    // Her notifications merge every shard's: one booking.created per shard, each under the
    // id of its shard's message, in booking order; the cursor has a part per shard.
    let notified = call(
        &router,
        Method::GET,
        "/v1/me/notifications",
        Some(&token("ana")),
        None,
    )
    .await;
    let notifications = notified.body["notifications"].as_array().unwrap();
    let told: Vec<(&str, &str)> = notifications
        .iter()
        .map(|notification| {
            (
                notification["id"].as_str().unwrap(),
                notification["data"]["booking_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(told.len(), SHARDS as usize, "{}", notified.text);
    for ((id, booking), shard) in told.iter().zip(0..) {
        assert_eq!(*booking, bookings[shard as usize]);
        assert!(id.starts_with(&format!("msg_{shard}_")), "{id}");
    }
    let cursor = notified.body["cursor"].as_str().unwrap();
    assert_eq!(cursor.split('.').count(), SHARDS as usize, "{cursor}");
    let first = notifications[0]["cursor"].as_str().unwrap();
    let rest = call(
        &router,
        Method::GET,
        &format!("/v1/me/notifications?after={first}"),
        Some(&token("ana")),
        None,
    )
    .await;
    let rest: Vec<&str> = rest.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|notification| notification["data"]["booking_id"].as_str().unwrap())
        .collect();
    assert_eq!(rest, bookings[1..]);
    let one_part = call(
        &router,
        Method::GET,
        "/v1/me/notifications?after=n",
        Some(&token("ana")),
        None,
    )
    .await;
    assert_eq!(
        (one_part.status, one_part.field()),
        (StatusCode::BAD_REQUEST, "after"),
        "a cursor of another deployment: {}",
        one_part.text
    );

    let search = call(
        &router,
        Method::GET,
        "/v1/events?per_page=5&page=2&sort=name",
        None,
        None,
    )
    .await;
    assert_eq!(search.body["total"], json!(12), "{}", search.text);
    let names: Vec<&str> = search.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["name"].as_str().unwrap())
        .collect();
    // Names sort as text across every shard: Show 0, 1, 10, 11, 2 | 3, 4, 5, 6, 7 | ...
    assert_eq!(names, ["Show 3", "Show 4", "Show 5", "Show 6", "Show 7"]);
    let cities = call(&router, Method::GET, "/v1/cities", None, None).await;
    assert_eq!(
        cities.body["cities"],
        json!([{"city": "Lyon", "country": "FR", "events": 12}])
    );
    let admin = call(&router, Method::GET, "/v1/admin/events", Some(ADMIN), None).await;
    assert_eq!(admin.body["events"].as_array().unwrap().len(), 12);

    // Every shard's engine holds only its own events, and no seat is sold twice.
    for (index, shard) in (0u32..).zip(&sharded.shards) {
        let status = shard.engine.as_ref().unwrap().status();
        let mut replayed = engine::Engine::new(shard.config.clone());
        runtime::replay(
            &mut replayed,
            &mut shard.requests.reader(),
            status.applied_offset,
            512,
            &mut |_| {},
        )
        .unwrap();
        replayed.check_invariants();
        let owned = events.iter().filter(|id| shard_of(id) == index).count();
        assert_eq!(replayed.event_count() as usize, owned, "shard {index}");
    }
}

/// The operator pins a tenant to a shard through the control log: its new events go
/// there; events already made stay where they are; bad pins are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_pinned_to_a_shard_places_its_new_events_there() {
    let sharded = Sharded::start(Duration::from_secs(5));
    let router = sharded.router();
    let path = "/v1/operator/tenants/demo/placement";
    let before = call(&router, Method::GET, path, Some(OPERATOR), None).await;
    assert_eq!(
        before.body,
        json!({"tenant_id": "demo", "shard": null, "shards": 3})
    );
    let pinned = call(
        &router,
        Method::PUT,
        path,
        Some(OPERATOR),
        Some(json!({"shard": 2})),
    )
    .await;
    assert_eq!(
        (pinned.status, &pinned.body["shard"]),
        (StatusCode::OK, &json!(2)),
        "{}",
        pinned.text
    );
    for number in 0..6 {
        let created = create_keyed(
            &router,
            &format!("Pinned {number}"),
            &format!("pinned-{number}"),
        )
        .await;
        assert_eq!(
            shard_of(created.body["event_id"].as_str().unwrap()),
            2,
            "{}",
            created.text
        );
    }
    for (body, status, reason) in [
        (
            json!({"shard": 3}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"shard": -1}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"shard": 1, "extra": true}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
    ] {
        let refused = call(
            &router,
            Method::PUT,
            path,
            Some(OPERATOR),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (refused.status, refused.reason()),
            (status, reason),
            "{body}: {}",
            refused.text
        );
    }
    let unknown = call(
        &router,
        Method::PUT,
        "/v1/operator/tenants/nobody/placement",
        Some(OPERATOR),
        Some(json!({"shard": 1})),
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.reason()),
        (StatusCode::NOT_FOUND, "tenant_not_found")
    );
    let not_operator = call(
        &router,
        Method::PUT,
        path,
        Some(ADMIN),
        Some(json!({"shard": 1})),
    )
    .await;
    assert_eq!(not_operator.status, StatusCode::FORBIDDEN);
    let unpinned = call(
        &router,
        Method::PUT,
        path,
        Some(OPERATOR),
        Some(json!({"shard": null})),
    )
    .await;
    assert_eq!(unpinned.body["shard"], Value::Null);

    // One shard: no control log, so nothing to pin.
    let single = Harness::start();
    let refused = call(
        &single.router(),
        Method::PUT,
        path,
        Some(OPERATOR),
        Some(json!({"shard": 0})),
    )
    .await;
    assert_eq!(
        (refused.status, refused.reason()),
        (StatusCode::CONFLICT, "no_control_log"),
        "{}",
        refused.text
    );
}

/// One shard's engine stops: its events answer 503 (`shard_unavailable` at once, with
/// nothing appended, once a write of this ingress has gone unanswered for the outcome
/// timeout) while every other shard keeps selling; readiness lists the shard and stays
/// ready; once the shard's engine is back, its events sell again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_that_is_down_stops_only_its_own_events() {
    let mut sharded = Sharded::start(Duration::from_millis(500));
    let router = sharded.router();
    let mut events = Vec::new();
    for number in 0..12 {
        let created =
            create_keyed(&router, &format!("Show {number}"), &format!("k-{number}")).await;
        events.push(created.body["event_id"].as_str().unwrap().to_string());
    }
    let on = |shard: u32| {
        events
            .iter()
            .find(|id| shard_of(id) == shard)
            .unwrap()
            .clone()
    };
    // A shard idle for longer than the outcome timeout is not down: a burst of writes to
    // it is answered (the idle time is the scenario here, not a wait for something).
    std::thread::sleep(Duration::from_millis(700));
    let burst = (0..8).map(|user| {
        let (router, event) = (router.clone(), on(1));
        async move { hold(&router, &format!("burst{user}"), &event, 1).await }
    });
    for held in futures_util::future::join_all(burst).await {
        assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
    }
    let down = &mut sharded.shards[1];
    down.engine.take().unwrap().shutdown().unwrap();
    let first = hold(&router, "ana", &on(1), 1).await;
    assert_eq!(
        (first.status, first.reason()),
        (StatusCode::SERVICE_UNAVAILABLE, "not_answered_in_time"),
        "{}",
        first.text
    );
    let end = sharded.shards[1].requests.writer().end_offset().unwrap();
    let started = std::time::Instant::now();
    let refused = hold(&router, "ana", &on(1), 1).await;
    assert_eq!(
        (refused.status, refused.reason()),
        (StatusCode::SERVICE_UNAVAILABLE, "shard_unavailable"),
        "{}",
        refused.text
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "answered at once, not after the timeout"
    );
    assert_eq!(
        sharded.shards[1].requests.writer().end_offset().unwrap(),
        end,
        "nothing appended"
    );
    for shard in [0, 2] {
        let held = hold(&router, "ana", &on(shard), 1).await;
        assert_eq!(
            held.status,
            StatusCode::CREATED,
            "shard {shard}: {}",
            held.text
        );
    }
    let ready = call(&router, Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    let shards = ready.body["shards"].as_array().unwrap();
    assert_eq!(
        shards
            .iter()
            .map(|shard| shard["ready"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        [true, false, true],
        "{}",
        ready.text
    );
    // Back: the waiting hold gets its outcome, and the shard sells again once this
    // ingress has applied it.
    let shard = &mut sharded.shards[1];
    shard.engine = Some(start_runtime(
        shard.requests.clone(),
        shard.outcomes.clone(),
        shard.config.clone(),
    ));
    let state = sharded.ingress.as_ref().unwrap().state();
    let deadline = std::time::Instant::now() + CATCH_UP;
    while state.applied_offsets()[1] < Some(end - 1) {
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted shard never answered"
        );
        tokio::task::yield_now().await;
    }
    let held = hold(&router, "ana", &on(1), 1).await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
}
