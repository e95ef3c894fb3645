//! The effects worker as a real process, killed with SIGKILL mid-backlog: `boxoffice serve`
//! (the worker runs inside it) sends a tenant's bookings to a receiver in this test (an
//! axum server that checks every signature and answers 500 to some first attempts). After
//! some deliveries the receiver holds the next request unanswered; the test kills the
//! server there (`kill -9`, so the worker's store is left as the crash left it) and starts
//! it again on the same data directory. Then: every booking arrives, in log order, and a
//! message that arrives twice arrives with the same `webhook-id` and the same bytes;
//! bookings made after the restart arrive too; `/metrics` counts the deliveries.

use crate::loadgen_end_to_end::Server;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

const ADMIN: &str = "demo-admin-key";
/// Every wait ends here at the latest: a failure, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(120);
/// Bookings made before the kill, and how many of their messages the receiver takes
/// before it holds the next one unanswered (the kill comes then: mid-backlog).
const BOOKINGS_BEFORE_KILL: usize = 30;
const DELIVERED_BEFORE_KILL: usize = 10;
const BOOKINGS_AFTER_RESTART: usize = 10;

#[derive(Default)]
struct Received {
    /// The endpoint's signing key, once its creation answered.
    key: Option<Vec<u8>>,
    /// (webhook-id, body) of every 2xx answer, in arrival order, duplicates included.
    accepted: Vec<(String, Vec<u8>)>,
    attempts: BTreeMap<String, u32>,
    answered_500: u32,
    bad_signatures: u32,
    /// Hold every request once this many distinct messages were accepted (until released).
    hold_after: Option<usize>,
}

impl Received {
    fn distinct(&self) -> usize {
        self.accepted
            .iter()
            .map(|(id, _)| id)
            .collect::<BTreeSet<_>>()
            .len()
    }
}

#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Received>>,
    /// Something arrived (accepted, or a request is being held).
    arrived: Arc<Notify>,
    holding: Arc<Mutex<bool>>,
    release: Arc<Notify>,
}

async fn hook(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let hold = {
        let mut received = receiver.received.lock().unwrap();
        let key = received.key.clone().unwrap_or_default();
        let expected =
            effects::signing::signature(&key, &id, timestamp.parse().unwrap_or(0), &body);
        if header("webhook-signature") != expected {
            received.bad_signatures += 1;
            return StatusCode::BAD_REQUEST;
        }
        let attempts = {
            let attempts = received.attempts.entry(id.clone()).or_default();
            *attempts += 1;
            *attempts
        };
        let known = received.accepted.iter().any(|(seen, _)| *seen == id);
        if received
            .hold_after
            .is_some_and(|after| received.distinct() >= after && !known)
        {
            true
        } else if attempts == 1 && place(&id).1.is_multiple_of(3) {
            // Some first attempts fail (a deterministic third of them, by log offset).
            received.answered_500 += 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        } else {
            received.accepted.push((id, body.to_vec()));
            false
        }
    };
    if hold {
        let released = receiver.release.notified();
        *receiver.holding.lock().unwrap() = true;
        receiver.arrived.notify_waiters();
        released.await;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    receiver.arrived.notify_waiters();
    StatusCode::NO_CONTENT
}

impl Receiver {
    /// Waits until `done` holds of what arrived.
    async fn wait(&self, what: &str, done: impl Fn(&Received, bool) -> bool) {
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                let arrived = self.arrived.notified();
                if done(
                    &self.received.lock().unwrap(),
                    *self.holding.lock().unwrap(),
                ) {
                    return;
                }
                arrived.await;
            }
        })
        .await;
        let received = self.received.lock().unwrap();
        assert!(
            waited.is_ok(),
            "{what}: {} distinct messages arrived",
            received.distinct()
        );
    }
}

/// The default configuration with retries in milliseconds (a failed attempt is retried
/// within 50 ms), written into the test's directory.
fn config(dir: &Path) -> std::path::PathBuf {
    let default = boxoffice_system_tests::default_config();
    let text = std::fs::read_to_string(&default).unwrap();
    let text = text
        .replace("first_retry_ms = 5000", "first_retry_ms = 10")
        .replace("retry_max_ms = 3600000", "retry_max_ms = 50");
    assert!(text.contains("first_retry_ms = 10") && text.contains("retry_max_ms = 50"));
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, Option<u64>) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(bearer);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{path}: {error}"));
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        let offset = response
            .headers()
            .get("x-log-offset")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            offset,
        )
    }

    /// Books one Floor seat for `user`: the booking's id and its confirm's log offset.
    async fn book(&self, event: &str, user: &str) -> (String, u64) {
        let token = ingress::mint_user_token("demo-user-secret", user, 3600);
        let (status, hold, _) = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/events/{event}/holds"),
                &token,
                Some(json!({"quantity": 1, "category": "Floor"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{hold}");
        let hold = hold["hold_id"].as_str().unwrap();
        let (status, booking, offset) = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/holds/{hold}/confirm"),
                &token,
                Some(json!({"payment_ref": "pay"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{booking}");
        (
            booking["booking_id"].as_str().unwrap().to_string(),
            offset.expect("a write's answer names its log offset"),
        )
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

fn event_body() -> Value {
    json!({
        "name": "Webhooks", "description": "", "city": "Lyon", "country": "FR",
        "venue": "Halle", "starts_at": "2030-05-01T20:00:00Z", "hold_ttl_seconds": 300,
        "max_seats_per_order": 4,
        "categories": [{"name": "Floor", "price_cents": 2000}],
        "general_admission": [{"category": "Floor", "capacity": 100}]
    })
}

/// `msg_<shard>_<offset>_<index>` → (shard, offset, index).
fn place(id: &str) -> (u64, u64, u64) {
    let parts: Vec<u64> = id
        .strip_prefix("msg_")
        .unwrap_or_else(|| panic!("{id}: not a message id"))
        .split('_')
        .map(|part| part.parse().unwrap())
        .collect();
    assert_eq!(parts.len(), 3, "{id}");
    (parts[0], parts[1], parts[2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_backlog_loses_no_webhook_and_keeps_their_order() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let config = config(directory.path());

    let receiver = Receiver::default();
    receiver.received.lock().unwrap().hold_after = Some(DELIVERED_BEFORE_KILL);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(receiver.clone());
    let receiving = tokio::spawn(async move { axum::serve(listener, router).await });

    let server = tokio::task::spawn_blocking({
        let (data_dir, config) = (data_dir.clone(), config.clone());
        move || Server::start_with(&data_dir, &config)
    })
    .await
    .unwrap();
    let client = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let (status, made, _) = client
        .call(
            reqwest::Method::POST,
            "/v1/admin/webhooks",
            ADMIN,
            Some(json!({"url": hook_url, "event_types": ["booking.created"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let webhook = made["webhook_id"].as_str().unwrap().to_string();
    let secret = made["secret"].as_str().unwrap();
    receiver.received.lock().unwrap().key = Some(
        base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap(),
    );
    let (status, event, _) = client
        .call(
            reqwest::Method::POST,
            "/v1/admin/events",
            ADMIN,
            Some(event_body()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    let event = event["event_id"].as_str().unwrap().to_string();

    // The bookings, one after another: their messages are in log order.
    let mut bookings: Vec<(String, u64)> = Vec::new();
    for index in 0..BOOKINGS_BEFORE_KILL {
        bookings.push(client.book(&event, &format!("fan-{index}")).await);
    }

    // Mid-backlog: some delivered, the next one held by the receiver, the rest waiting.
    receiver
        .wait("the receiver holds a request", |_, holding| holding)
        .await;
    let mut server = server;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let delivered_before = receiver.received.lock().unwrap().distinct();
    assert_eq!(delivered_before, DELIVERED_BEFORE_KILL);
    receiver.received.lock().unwrap().hold_after = None;
    receiver.release.notify_waiters();

    let server = tokio::task::spawn_blocking({
        let (data_dir, config) = (data_dir.clone(), config.clone());
        move || Server::start_with(&data_dir, &config)
    })
    .await
    .unwrap();
    let client = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
    };
    for index in 0..BOOKINGS_AFTER_RESTART {
        bookings.push(client.book(&event, &format!("late-{index}")).await);
    }
    let expected = bookings.len();
    receiver
        .wait("every booking arrives", |received, _| {
            received.distinct() >= expected
        })
        .await;

    let received = std::mem::take(&mut *receiver.received.lock().unwrap());
    assert_eq!(received.bad_signatures, 0, "every signature checks");
    assert!(received.answered_500 > 0, "some first attempts failed");
    // Distinct ids in order of first arrival; a duplicate carries the same bytes.
    let mut first: Vec<(String, Vec<u8>)> = Vec::new();
    for (id, body) in &received.accepted {
        match first.iter().find(|(seen, _)| seen == id) {
            Some((_, body_first)) => assert_eq!(body_first, body, "{id} twice, with other bytes"),
            None => first.push((id.clone(), body.clone())),
        }
    }
    // Each booking once, under the id of its confirm's log offset, in log order.
    let arrived: Vec<(String, String)> = first
        .iter()
        .map(|(id, body)| {
            let body: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(body["type"], "booking.created", "{body}");
            assert_eq!(body["data"]["event_id"], json!(event));
            (
                id.clone(),
                body["data"]["booking_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let wanted: Vec<(String, String)> = bookings
        .iter()
        .map(|(booking, offset)| (format!("msg_0_{offset}_0"), booking.clone()))
        .collect();
    assert_eq!(
        arrived, wanted,
        "every booking, once each by id, in log order"
    );
    let places: Vec<(u64, u64, u64)> = arrived.iter().map(|(id, _)| place(id)).collect();
    assert!(places.windows(2).all(|pair| pair[0] < pair[1]));

    // The delivery log shows every message delivered once the worker recorded the last
    // answer; /metrics counts this run's deliveries and an empty backlog.
    let deliveries = format!("/v1/admin/webhooks/{webhook}/deliveries");
    let began = std::time::Instant::now();
    loop {
        let (status, log, _) = client
            .call(reqwest::Method::GET, &deliveries, ADMIN, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        let listed = log["deliveries"].as_array().unwrap();
        if listed.len() == expected
            && listed
                .iter()
                .all(|delivery| delivery["status"] == "delivered")
        {
            break;
        }
        assert!(began.elapsed() < PATIENCE, "the delivery log: {log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = client.metrics().await;
    for line in [
        format!("boxoffice_webhook_backlog_messages{{endpoint=\"{webhook}\"}} 0"),
        "boxoffice_webhook_oldest_undelivered_age_seconds 0".to_string(),
    ] {
        assert!(metrics.contains(&line), "no {line} in\n{metrics}");
    }
    let delivered_after_restart = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix("boxoffice_webhook_deliveries_total{outcome=\"delivered\"} ")
        })
        .unwrap_or_else(|| panic!("no delivered count in\n{metrics}"));
    assert!(
        delivered_after_restart.parse::<u64>().unwrap() >= (expected - delivered_before) as u64,
        "{metrics}"
    );
    server.stop();
    receiving.abort();
}
