//! Test harness: embedded requests and outcomes logs in a temporary directory, the engine
//! runtime (`runtime::Runtime`, as `boxoffice engine` runs it) applying them, and an
//! ingress in front.

#![allow(dead_code, unreachable_pub)]

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use engine::EngineConfig;
use ingress::{AppState, Ingress, IngressConfig};
use requestlog::{EmbeddedLog, EmbeddedOptions, LogWriter};
use runtime::{EngineStatus, Role, Runtime, RuntimeOptions};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

pub const ADMIN: &str = "demo-admin-key";
pub const OTHER_ADMIN: &str = "other-admin-key";
pub const OPERATOR: &str = "demo-operator-key";
pub const SECRET: &str = "demo-user-secret";
pub const TICK: Duration = Duration::from_millis(20);

pub fn token(user: &str) -> String {
    ingress::mint_user_token(SECRET, user, 3600)
}

/// What the logs, webhooks and notifications name `user` by (issue 23: the ingress turns a
/// token's `sub` into a pseudonym before anything is appended).
pub fn pseudonym(user: &str) -> String {
    ingress::deployment_pseudonym(ingress::DEVELOPMENT_PSEUDONYM_KEY, user)
}

pub fn config() -> IngressConfig {
    let mut config = IngressConfig::default();
    config.tenants.push(ingress::Tenant {
        id: "other".into(),
        admin_key: OTHER_ADMIN.into(),
    });
    config.rate_limit.enabled = false;
    // The harness runs with the development secrets, as `boxoffice --dev` does.
    config.development = true;
    config.engine = engine_config();
    config
}

/// A short confirm grace, so expiry tests run in about a second.
pub fn engine_config() -> EngineConfig {
    EngineConfig {
        confirm_grace_ms: 200,
        ..EngineConfig::default()
    }
}

/// Dropping it stops the ingress and the engine, joins their threads, closes the logs and
/// only then removes the directory.
pub struct Harness {
    pub state: AppState,
    /// The engine's configuration: the ingress's own `config.engine`.
    pub engine_config: EngineConfig,
    pub ingress: Option<Ingress>,
    pub engine: Option<Runtime>,
    pub requests: Arc<EmbeddedLog>,
    pub outcomes: Arc<EmbeddedLog>,
    pub dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(ingress) = self.ingress.take() {
            ingress.stop();
        }
        if let Some(engine) = self.engine.take() {
            // A failed runtime fails the test that made it fail, not the drop.
            let _ = engine.shutdown();
        }
    }
}

impl Harness {
    pub fn start() -> Harness {
        Harness::with_config(config(), true)
    }

    /// `with_engine: false` leaves the requests unapplied (writes time out) until
    /// [`Harness::start_engine`]. The engine runs with `config.engine`.
    pub fn with_config(config: IngressConfig, with_engine: bool) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let requests = Arc::new(
            EmbeddedLog::open(dir.path().join("requests"), EmbeddedOptions::default()).unwrap(),
        );
        let outcomes = Arc::new(
            EmbeddedLog::open(dir.path().join("outcomes"), EmbeddedOptions::default()).unwrap(),
        );
        let engine_config = config.engine.clone();
        let engine = with_engine.then(|| start_engine(&requests, &outcomes, engine_config.clone()));
        // The runtime stands for an engine in another process (as in Kafka mode).
        let ingress = Ingress::start(
            config,
            Arc::new(requests.writer()),
            Box::new(outcomes.reader()),
            None,
        )
        .unwrap();
        let state = ingress.state();
        Harness {
            engine_config,
            dir,
            requests,
            outcomes,
            engine,
            ingress: Some(ingress),
            state,
        }
    }

    /// Starts the engine of a harness made without one.
    pub fn start_engine(&mut self) {
        assert!(self.engine.is_none());
        self.engine = Some(start_engine(
            &self.requests,
            &self.outcomes,
            self.engine_config.clone(),
        ));
    }

    pub fn router(&self) -> Router {
        ingress::app(self.state.clone())
    }

    pub fn requests_end(&self) -> u64 {
        self.requests.writer().end_offset().unwrap()
    }

    /// The engine runtime's status.
    pub fn engine_status(&self) -> EngineStatus {
        self.engine.as_ref().expect("an engine runs").status()
    }

    /// Waits until the engine has applied `offset`; returns its status then.
    pub fn wait_applied(&self, offset: u64) -> EngineStatus {
        let (status, applied) = self
            .engine
            .as_ref()
            .expect("an engine runs")
            .handle()
            .wait_for(CATCH_UP, |status| status.applied_offset >= Some(offset));
        assert!(applied, "offset {offset} not applied: {status:?}");
        status
    }

    /// The engine's state as of what the runtime has applied, replayed from the requests
    /// log (the same state, by the runtime's replay invariant).
    pub fn engine_replayed(&self) -> engine::Engine {
        let applied = self.engine_status().applied_offset;
        let mut engine = engine::Engine::new(self.engine_config.clone());
        if let Some(applied) = applied {
            let mut reader = self.requests.reader();
            runtime::replay(&mut engine, &mut reader, Some(applied), 512, &mut |_| {}).unwrap();
        }
        engine
    }
}

/// How long the harness waits for the engine to catch up.
pub const CATCH_UP: Duration = Duration::from_secs(30);

/// The runtime's options in tests: the harness's engine configuration, ticks every `TICK`.
pub fn runtime_options(config: EngineConfig) -> RuntimeOptions {
    RuntimeOptions {
        tick_interval_ms: TICK.as_millis() as u64,
        ..RuntimeOptions::new(config)
    }
}

/// Starts the engine runtime as primary and waits until it has written and applied its
/// `Configure` record, so nothing it appends at start lands between a test's requests.
pub fn start_runtime(
    requests: Arc<dyn runtime::OpenLog>,
    outcomes: Arc<dyn runtime::OpenLog>,
    config: EngineConfig,
) -> Runtime {
    let runtime = Runtime::start(
        runtime_options(config),
        runtime::Logs { requests, outcomes },
        Box::new(snapshotter::MemoryStore::new(1)),
    )
    .unwrap();
    let (status, configured) = runtime.handle().wait_for(CATCH_UP, |status| {
        status.role == Role::Primary && status.configured()
    });
    assert!(
        configured,
        "the engine did not start as primary: {status:?}"
    );
    runtime
}

fn start_engine(
    requests: &Arc<EmbeddedLog>,
    outcomes: &Arc<EmbeddedLog>,
    config: EngineConfig,
) -> Runtime {
    start_runtime(requests.clone(), outcomes.clone(), config)
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// `details.reason`: which rule refused the request.
    pub fn reason(&self) -> &str {
        self.body["error"]["details"]["reason"]
            .as_str()
            .unwrap_or("")
    }

    pub fn field(&self) -> &str {
        self.body["error"]["details"]["field"]
            .as_str()
            .unwrap_or("")
    }

    pub fn log_offset(&self) -> i64 {
        self.headers
            .get("x-log-offset")
            .expect("X-Log-Offset")
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }
}

/// One request through the router without a socket.
pub async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> Answer {
    call_with(
        router,
        method,
        uri,
        bearer,
        &[],
        body.map(|body| body.to_string()),
    )
    .await
}

pub async fn call_with(
    router: &Router,
    method: Method,
    uri: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(bearer) = bearer {
        request = request.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
    }
    let has_content_type = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
    if body.is_some() && !has_content_type {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(body.map_or_else(Body::empty, Body::from))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    answer(response).await
}

/// A response read whole: status, headers, body as text and as JSON (`Null` if not JSON).
pub async fn answer(response: axum::response::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

/// A reserved-seating event: section A, rows 1 and 2 of `seats_per_row` Gold seats, plus
/// a general-admission Floor pool of 50.
pub fn event_body(name: &str, seats_per_row: u32, hold_ttl_seconds: u64) -> Value {
    json!({
        "name": name,
        "description": "An evening of tests",
        "city": "Lyon",
        "country": "FR",
        "venue": "Halle Tony Garnier",
        "starts_at": "2030-05-01T20:00:00Z",
        "hold_ttl_seconds": hold_ttl_seconds,
        "max_seats_per_order": 10,
        "categories": [{"name": "Gold", "price_cents": 5000}, {"name": "Floor", "price_cents": 2000}],
        "seating": {"sections": [{"name": "A", "rows": [
            {"label": "1", "seats": seats_per_row, "category": "Gold"},
            {"label": "2", "seats": seats_per_row, "category": "Gold"}
        ]}]},
        "general_admission": [{"category": "Floor", "capacity": 50}]
    })
}

pub async fn create_event(router: &Router, body: Value) -> String {
    let answer = call(
        router,
        Method::POST,
        "/v1/admin/events",
        Some(ADMIN),
        Some(body),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    answer.body["event_id"].as_str().unwrap().to_string()
}
