//! `/readyz` of an ingress in front of the runtime, on the embedded log and on Kafka (when
//! `KAFKA_BOOTSTRAP` is set). The ingress cannot see the engine's process (in Kafka mode it
//! is another one): it is ready while the engine answers, answers 503
//! `engine_not_answering` once requests wait for outcomes and none has come for the
//! outcome timeout, and is ready again once an engine publishes what was missing. An engine
//! that stops while nothing is written is noticed too: readiness asks it with a `Tick`.
//! (`boxoffice serve`, where the engine shares the ingress's process, also reports the
//! runtime's failure at once: see `boxoffice/src/cmd_serve.rs`.)

use crate::common;

use axum::http::{Method, StatusCode};
use common::stack::Stack;
use common::*;
use engine::EventId;
use runtime::{Runtime, RuntimeOptions};
use serde_json::{json, Value};
use snapshotter::MemoryStore;
use std::time::{Duration, Instant};

/// How long a write waits for its outcome, and how long the engine may be silent while
/// requests wait before the ingress says it is not answering.
const OUTCOME_TIMEOUT: Duration = Duration::from_secs(1);

fn options() -> RuntimeOptions {
    RuntimeOptions {
        tick_interval_ms: 50,
        idle_ms: 5,
        ..RuntimeOptions::new(engine_config())
    }
}

/// Polls `/readyz` until it answers `expected` (the follower looks at the outcomes log's
/// end twice a second) and, when it is a 503, with `reason` in its details; returns the
/// last body. Not ready for another reason on the way is no failure: on Kafka a brief
/// `catching_up` follows an outcome until the follower has stepped over its commit marker.
fn wait_readyz(stack: &Stack, expected: StatusCode, reason: Option<&str>) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body) = stack.call(Method::GET, "/readyz", None, None);
        if status == expected
            && reason.is_none_or(|reason| body["error"]["details"]["reason"] == json!(reason))
        {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {status}, not {expected} {reason:?}: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn readiness_follows_the_engine(backend: Backend) {
    let mut stack = Stack::start(backend, None, options(), OUTCOME_TIMEOUT);
    let end = stack.append(vec![create_event(seated_event(1, 10, 600_000))]);
    stack.wait_read_model(end - 1);
    let ready = wait_readyz(&stack, StatusCode::OK, None);
    // Past `end` only by readiness's own probes (a `Tick` once the engine has been silent
    // for the outcome timeout: a slow machine may take that long to get here).
    assert_eq!(ready["engine_answering"], json!(true), "{ready}");
    assert!(
        ready["requests_end_offset"].as_u64().unwrap() >= end
            && ready["applied_offset"].as_u64().unwrap() >= end - 1,
        "{ready}"
    );

    // The engine stops (its process is gone): a write goes unanswered.
    stack.runtime.take().unwrap().shutdown().unwrap();
    let (status, body) = stack.hold("alice", EventId(0), "A-1-1");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = stack.call(Method::GET, "/readyz", None, None);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let details = &body["error"]["details"];
    assert_eq!(
        (&details["reason"], &details["engine_answering"]),
        (&json!("engine_not_answering"), &json!(false)),
        "{body}"
    );
    // The hold (and perhaps a readiness probe's tick) waits past what the engine applied.
    let (requests_end, applied) = (
        details["requests_end_offset"].as_u64().unwrap(),
        details["applied_offset"].as_u64().unwrap(),
    );
    assert!(
        requests_end > end && applied >= end - 1 && applied < requests_end,
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the engine is not answering"),
        "{body}"
    );

    // An engine starts again: it answers the waiting hold, and readiness comes back.
    stack.runtime = Some(
        Runtime::start(
            options(),
            stack.runtime_logs(),
            Box::new(MemoryStore::new(1)),
        )
        .unwrap(),
    );
    let ready = wait_readyz(&stack, StatusCode::OK, None);
    // The hold, then perhaps the restarted primary's `Configure` record.
    assert!(ready["applied_offset"].as_u64().unwrap() >= end, "{ready}");
    let (_, map) = stack.call(Method::GET, "/v1/events/ev_0/seats", None, None);
    assert_eq!(
        map["sections"][0]["rows"][0]["seats"][0]["status"],
        json!("held"),
        "{map}"
    );
    stack.stop();
}

#[test]
fn embedded_readiness_follows_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    readiness_follows_the_engine(Backend::embedded(dir.path()));
}

#[test]
fn kafka_readiness_follows_the_engine() {
    if let Some(backend) = Backend::kafka("readiness") {
        readiness_follows_the_engine(backend);
    }
}

/// The engine stops while nothing is written: readiness writes a `Tick` once the engine
/// has been silent for the outcome timeout, and the unanswered tick turns it 503.
fn readiness_notices_an_engine_gone_while_idle(backend: Backend) {
    let mut stack = Stack::start(backend, None, options(), OUTCOME_TIMEOUT);
    let end = stack.append(vec![create_event(seated_event(1, 10, 600_000))]);
    stack.wait_read_model(end - 1);
    wait_readyz(&stack, StatusCode::OK, None);

    stack.runtime.take().unwrap().shutdown().unwrap();
    let body = wait_readyz(
        &stack,
        StatusCode::SERVICE_UNAVAILABLE,
        Some("engine_not_answering"),
    );
    let details = &body["error"]["details"];
    assert_eq!(
        (&details["reason"], &details["engine_answering"]),
        (&json!("engine_not_answering"), &json!(false)),
        "{body}"
    );
    let probes = details["requests_end_offset"].as_u64().unwrap() - end;
    assert!(probes >= 1, "{body}");

    // An engine starts again and answers the probe: ready again.
    stack.runtime = Some(
        Runtime::start(
            options(),
            stack.runtime_logs(),
            Box::new(MemoryStore::new(1)),
        )
        .unwrap(),
    );
    wait_readyz(&stack, StatusCode::OK, None);
    stack.stop();
}

#[test]
fn embedded_readiness_notices_an_engine_gone_while_idle() {
    let dir = tempfile::tempdir().unwrap();
    readiness_notices_an_engine_gone_while_idle(Backend::embedded(dir.path()));
}

#[test]
fn kafka_readiness_notices_an_engine_gone_while_idle() {
    if let Some(backend) = Backend::kafka("readiness-idle") {
        readiness_notices_an_engine_gone_while_idle(backend);
    }
}
