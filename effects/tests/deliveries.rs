//! The effects worker against a real HTTP receiver (an axum server in the test): it checks
//! every signature, answers 500 a few times, goes dark, comes back. Outcomes are written
//! straight to an embedded outcomes log (as the engine's publisher writes them) and
//! endpoints straight to the control log (as the admin API records them).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use effects::signing::signature;
use effects::{RetryPolicy, Worker, WorkerConfig, WorkerLogs};
use engine::control::{decode_control, encode_control, ControlRecord};
use engine::webhook::WebhookEventType;
use engine::{
    BookingId, BookingView, Effect, EventId, EventSpec, HoldId, Items, Outcome, Reply,
    WaitlistPolicy,
};
use requestlog::{EmbeddedLog, EmbeddedOptions, LogReader, LogWriter};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

const KEY: [u8; 32] = [42; 32];
/// Every wait for the worker ends here at the latest (a failure, not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Received {
    /// (message id, body) in arrival order, duplicates included.
    messages: Vec<(String, Vec<u8>)>,
    /// Answer 500 to this many more requests.
    failures_left: u32,
    answered_500: u32,
}

#[derive(Clone)]
struct Receiver {
    received: Arc<Mutex<Received>>,
    arrived: Arc<Notify>,
}

async fn hook(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers[name].to_str().unwrap().to_string();
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let expected = signature(&KEY, &id, timestamp.parse().unwrap(), &body);
    assert_eq!(
        header("webhook-signature"),
        expected,
        "a valid signature on {id}"
    );
    let mut received = receiver.received.lock().unwrap();
    if received.failures_left > 0 {
        received.failures_left -= 1;
        received.answered_500 += 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    received.messages.push((id, body.to_vec()));
    drop(received);
    receiver.arrived.notify_waiters();
    StatusCode::NO_CONTENT
}

/// Serves the receiver on `address` until `stop` is notified.
async fn serve(receiver: Receiver, listener: tokio::net::TcpListener, stop: Arc<Notify>) {
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(receiver);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.notified().await })
        .await
        .unwrap();
}

impl Receiver {
    /// Waits until `count` distinct messages arrived.
    async fn wait_for(&self, count: usize) {
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                let arrived = self.arrived.notified();
                if self.distinct().len() >= count {
                    return;
                }
                arrived.await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "only {} of {count} messages arrived",
            self.distinct().len()
        );
    }

    /// Distinct ids in order of first arrival; panics on a duplicate with another body.
    fn distinct(&self) -> Vec<String> {
        let received = self.received.lock().unwrap();
        let mut seen: Vec<(String, Vec<u8>)> = Vec::new();
        for (id, body) in &received.messages {
            match seen.iter().find(|(known, _)| known == id) {
                Some((_, first)) => {
                    assert_eq!(first, body, "a duplicate of {id} with another body")
                }
                None => seen.push((id.clone(), body.clone())),
            }
        }
        seen.into_iter().map(|(id, _)| id).collect()
    }
}

fn spec() -> EventSpec {
    EventSpec {
        name: "Show".into(),
        description: String::new(),
        city: "Lyon".into(),
        country: "FR".into(),
        venue: "Opera".into(),
        starts_at_ms: 2_000_000_000_000,
        ends_at_ms: None,
        sales_open_at_ms: None,
        sales_close_at_ms: None,
        hold_ttl_ms: 60_000,
        seats_per_order_max: 4,
        seats_per_user_max: None,
        waitlist_policy: WaitlistPolicy::Strict,
        categories: vec![],
        sections: vec![],
        general_admission: vec![],
    }
}

fn outcome(offset: u64, result: Reply, effects: Vec<Effect>) -> Outcome {
    Outcome {
        offset,
        time_ms: 1_700_000_000_000 + offset,
        replayed: false,
        result: Ok(result),
        effects,
        effects_before_reply: 0,
        idempotency: None,
    }
}

/// Offset `offset`'s outcome: a confirmed booking plus one expired hold (two messages).
fn sale(offset: u64) -> Outcome {
    outcome(
        offset,
        Reply::HoldConfirmed(BookingView {
            booking: BookingId(offset),
            hold: HoldId(offset),
            event: EventId(0),
            user: "ana".into(),
            items: Items::Pool {
                category: 0,
                quantity: 1,
            },
            total_cents: 100,
            payment_ref: "".into(),
            booked_at_ms: 1_700_000_000_000,
        }),
        vec![Effect::HoldExpired {
            hold: HoldId(1_000 + offset),
            event: EventId(0),
            user: "bo".into(),
            items: Items::Pool {
                category: 0,
                quantity: 1,
            },
            waiter: None,
        }],
    )
}

struct Setup {
    dir: tempfile::TempDir,
    outcomes: Arc<EmbeddedLog>,
    control: Arc<EmbeddedLog>,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| {
            Arc::new(EmbeddedLog::open(dir.path().join(name), EmbeddedOptions::default()).unwrap())
        };
        let (outcomes, control) = (open("outcomes"), open("control"));
        Setup {
            dir,
            outcomes,
            control,
        }
    }

    fn publish(&self, outcomes: impl IntoIterator<Item = Outcome>) {
        let writer = self.outcomes.writer();
        for outcome in outcomes {
            writer
                .append(engine::wire::encode_outcome_frames(&outcome))
                .unwrap();
        }
    }

    fn endpoint(&self, tenant: &str, webhook: &str, url: String) {
        self.control
            .writer()
            .append(vec![encode_control(&ControlRecord::WebhookCreated {
                tenant: tenant.into(),
                webhook: webhook.into(),
                url,
                event_types: vec![
                    WebhookEventType::BookingCreated,
                    WebhookEventType::HoldExpired,
                ],
                secret: KEY.to_vec(),
            })])
            .unwrap();
    }

    fn worker(&self, disable_after_ms: u64) -> Worker {
        Worker::start(
            WorkerConfig {
                state_dir: self.dir.path().join("effects"),
                policy: RetryPolicy {
                    first_retry_ms: 10,
                    retry_max_ms: 40,
                    disable_after_ms,
                },
                attempt_timeout: Duration::from_secs(5),
                backlog_per_endpoint_max: 10_000,
                deliveries_in_flight_max: 8,
                private_addresses_allowed: true,
                seed: 7,
            },
            WorkerLogs {
                outcomes: vec![Box::new(self.outcomes.reader())],
                control_reader: Box::new(self.control.reader()),
                control_writer: Arc::new(self.control.writer()),
                recent_outcomes: Vec::new(),
            },
        )
        .unwrap()
    }
}

/// Waits until `done` holds, looking every few milliseconds: the worker's store has no
/// signal to wait on. Bounded by [`PATIENCE`], a failure rather than a timing assertion.
async fn wait_until(done: impl Fn() -> bool) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the worker did not get there");
}

/// The ids the sales at `offsets` make, in log order.
fn ids(offsets: std::ops::RangeInclusive<u64>) -> Vec<String> {
    offsets
        .flat_map(|offset| [format!("msg_0_{offset}_0"), format!("msg_0_{offset}_1")])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_arrives_signed_in_order_through_500s_darkness_and_a_restart() {
    let setup = Setup::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let receiver = Receiver {
        received: Arc::new(Mutex::new(Received {
            failures_left: 3,
            ..Received::default()
        })),
        arrived: Arc::new(Notify::new()),
    };
    let stop = Arc::new(Notify::new());
    let server = tokio::spawn(serve(receiver.clone(), listener, Arc::clone(&stop)));
    // A dead endpoint of the same tenant (nothing listens on port 9) and another tenant's.
    setup.endpoint("acme", "wh_live", format!("http://{address}/hook"));
    setup.endpoint("acme", "wh_dead", "http://127.0.0.1:9/hook".into());
    setup.endpoint("other", "wh_other", format!("http://{address}/other"));
    let created = outcome(
        0,
        Reply::EventCreated {
            event: EventId(0),
            tenant: "acme".into(),
            spec: Box::new(spec()),
        },
        vec![],
    );
    setup.publish([created]);
    setup.publish((1..=10).map(sale));
    let worker = setup.worker(3_600_000);

    // Three 500s, then everything, in log order: the dead endpoint holds up nobody.
    receiver.wait_for(20).await;
    assert_eq!(receiver.received.lock().unwrap().answered_500, 3);
    assert_eq!(receiver.distinct(), ids(1..=10));

    // Dark: the receiver is gone; the worker keeps the messages and retries.
    stop.notify_one();
    server.await.unwrap();
    setup.publish((11..=15).map(sale));
    let failed = || {
        worker
            .metrics()
            .failed_attempts
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let failed_before = failed();
    wait_until(|| {
        worker.backlog().get("wh_live").copied().unwrap_or(0) == 10 && failed() >= failed_before + 3
    })
    .await;

    // A restart mid-backlog (the store is the only state): nothing is lost.
    worker.stop();
    drop(worker); // closes the store
    setup.publish((16..=20).map(sale));
    let worker = setup.worker(3_600_000);
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let stop = Arc::new(Notify::new());
    let server = tokio::spawn(serve(receiver.clone(), listener, Arc::clone(&stop)));
    receiver.wait_for(40).await;
    assert_eq!(
        receiver.distinct(),
        ids(1..=20),
        "every message, in order, once each (by id)"
    );

    // The delivery log: the live endpoint's newest first with their attempts (the last
    // answer arrives at the worker just after the receiver counted it).
    wait_until(|| !worker.backlog().contains_key("wh_live")).await;
    let log = worker.deliveries("wh_live", 100).unwrap();
    assert_eq!(log.len(), 40);
    assert_eq!(log[0].id, "msg_0_20_1");
    assert!(log.iter().all(|message| message.delivered));
    let first = log.last().unwrap();
    assert_eq!(first.id, "msg_0_1_0");
    assert_eq!(
        first
            .attempts
            .iter()
            .map(|attempt| attempt.status_code)
            .collect::<Vec<_>>(),
        [Some(500), Some(500), Some(500), Some(204)]
    );
    // The dead endpoint still holds all of its messages; the other tenant got none.
    assert_eq!(worker.backlog().get("wh_dead"), Some(&40));
    assert!(worker.deliveries("wh_other", 10).unwrap().is_empty());

    // A manual re-send: the same id and body once more.
    assert!(worker.resend("wh_live", "msg_0_1_0").unwrap());
    assert!(!worker.resend("wh_live", "msg_0_99_0").unwrap());
    let resent = tokio::time::timeout(PATIENCE, async {
        loop {
            let arrived = receiver.arrived.notified();
            if receiver.received.lock().unwrap().messages.len() > 40 {
                return;
            }
            arrived.await;
        }
    })
    .await;
    assert!(resent.is_ok());
    let received = receiver
        .received
        .lock()
        .unwrap()
        .messages
        .last()
        .unwrap()
        .0
        .clone();
    assert_eq!(received, "msg_0_1_0");
    receiver.distinct(); // same body
    worker.stop();
    stop.notify_one();
    server.await.unwrap();
}

/// An endpoint that fails for `disable_after_ms` is disabled through the control log, with
/// its messages kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_failure_disables_an_endpoint_in_the_control_log() {
    let setup = Setup::new();
    setup.endpoint("acme", "wh_dead", "http://127.0.0.1:9/hook".into());
    let created = outcome(
        0,
        Reply::EventCreated {
            event: EventId(0),
            tenant: "acme".into(),
            spec: Box::new(spec()),
        },
        vec![],
    );
    setup.publish([created, sale(1)]);
    let worker = setup.worker(200);
    let mut reader = setup.control.reader();
    let disabled = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + PATIENCE;
        while std::time::Instant::now() < deadline {
            for record in reader.poll(16, Duration::from_millis(100)).unwrap() {
                if let Ok(ControlRecord::WebhookDisabled {
                    webhook, reason, ..
                }) = decode_control(&record.payload)
                {
                    return Some((webhook, reason));
                }
            }
        }
        None
    })
    .await
    .unwrap();
    let (webhook, reason) = disabled.expect("a WebhookDisabled record");
    assert_eq!(webhook, "wh_dead");
    assert!(reason.starts_with("every attempt failed for"), "{reason}");
    assert_eq!(
        worker.backlog().get("wh_dead"),
        Some(&2),
        "its messages wait"
    );
    worker.stop();
}
