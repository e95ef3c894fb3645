//! A runtime with a real ingress in front, in one process (as `boxoffice serve` runs
//! them, on any backend): the ingress's router is called without a socket.

use super::*;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use engine::query::SeatStatus;
use engine::{Engine, EventId};
use ingress::{AppState, Ingress, IngressConfig};
use runtime::{Logs, OpenLog, Runtime, RuntimeOptions};
use serde_json::{json, Value};
use snapshotter::MemoryStore;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

pub const ADMIN: &str = "demo-admin-key";

pub fn token(user: &str) -> String {
    ingress::mint_user_token(ingress::DEVELOPMENT_USER_TOKEN_SECRET, user, 3_600)
}

/// The runtime and an ingress on one backend's logs.
pub struct Stack {
    pub backend: Backend,
    /// The backend's logs, open for as long as the stack (an embedded log opens once).
    pub logs: Logs,
    /// The requests log as the runtime reads it (with the test's log time, if any).
    pub requests: Arc<dyn OpenLog>,
    pub runtime: Option<Runtime>,
    pub ingress: Option<Ingress>,
    pub state: AppState,
    http: tokio::runtime::Runtime,
    started: Instant,
}

impl Stack {
    /// `outcome_timeout`: how long a write waits for its outcome (and how long the engine
    /// may be silent before readiness says it is not answering).
    pub fn start(
        backend: Backend,
        time: Option<LogTime>,
        options: RuntimeOptions,
        outcome_timeout: Duration,
    ) -> Stack {
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
        // The primary's `Configure` record first, so on a fresh log it is at offset 0 and
        // the test's records follow it.
        let (status, configured) = runtime.handle().wait_for(DEADLINE, |status| {
            status.role == runtime::Role::Primary && status.configured()
        });
        assert!(configured, "{status:?}");
        let mut config = IngressConfig {
            engine: engine_config(),
            outcome_timeout,
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
            logs,
            requests,
            runtime: Some(runtime),
            state: ingress.state(),
            ingress: Some(ingress),
            http,
            started,
        }
    }

    pub fn say(&self, what: &str) {
        eprintln!("{:>7.2} s  {what}", self.started.elapsed().as_secs_f64());
    }

    /// The logs as the runtime opens them (the requests log with the test's log time).
    pub fn runtime_logs(&self) -> Logs {
        Logs {
            requests: Arc::clone(&self.requests),
            outcomes: Arc::clone(&self.logs.outcomes),
        }
    }

    /// Appends the setup straight to the requests log; returns the log's end.
    pub fn append(&self, payloads: Vec<Vec<u8>>) -> u64 {
        let end = append_all(self.logs.requests.as_ref(), payloads);
        self.say(&format!("setup appended: the requests log ends at {end}"));
        end
    }

    /// One request through the router.
    pub fn call(
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
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        })
    }

    /// Waits until the ingress's read model has applied the outcome of `offset`.
    pub fn wait_read_model(&self, offset: u64) {
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

    pub fn hold(&self, user: &str, event: EventId, seat: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/v1/events/{event}/holds"),
            Some(&token(user)),
            Some(json!({ "seats": [seat] })),
        )
    }

    /// The checks every scenario ends with; returns the outcomes and how many records
    /// carried them.
    pub fn check(&self, events: &[EventId]) -> (Vec<Outcome>, usize) {
        let runtime = self.runtime.as_ref().unwrap();
        let end = self.requests.open_reader().unwrap().end_offset().unwrap();
        let status = wait_settled(&runtime.handle(), end);
        assert_eq!(status.failure, None);
        self.say("the runtime has applied and published everything");
        let records = read_all(self.logs.outcomes.as_ref());
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
    pub fn check_read_model(&self, engine: &Engine, event: EventId) {
        let (status, shown) = self.call(Method::GET, &format!("/v1/events/{event}"), None, None);
        assert_eq!(status, StatusCode::OK, "{shown}");
        let shown: Vec<Value> = shown["availability"]
            .as_array()
            .expect("availability")
            .iter()
            .map(|category| {
                json!([
                    category["category"],
                    category["capacity"],
                    category["free"],
                    category["held"],
                    category["booked"]
                ])
            })
            .collect();
        let expected: Vec<Value> = engine
            .availability(event)
            .unwrap()
            .into_iter()
            .map(|category| {
                json!([
                    category.category,
                    category.capacity,
                    category.free,
                    category.held,
                    category.booked
                ])
            })
            .collect();
        assert_eq!(shown, expected, "availability of {event}");

        let (status, map) = self.call(
            Method::GET,
            &format!("/v1/events/{event}/seats"),
            None,
            None,
        );
        assert_eq!(status, StatusCode::OK, "{map}");
        let shown: Vec<(&str, &str)> = map["sections"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|section| section["rows"].as_array().unwrap())
            .flat_map(|row| row["seats"].as_array().unwrap())
            .map(|seat| {
                (
                    seat["id"].as_str().unwrap(),
                    seat["status"].as_str().unwrap(),
                )
            })
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
        assert!(
            shown == expected,
            "the seat map of {event} differs from the engine's"
        );
    }

    pub fn stop(mut self) {
        if let Some(ingress) = self.ingress.take() {
            ingress.stop();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown().unwrap();
        }
        self.say("stopped");
    }
}
