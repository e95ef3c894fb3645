//! An ingress restarts from its read-model snapshot plus the outcomes after it
//! (`follower_state`): it reads only those, answers as an ingress rebuilt from offset 0
//! does, follows a log whose early records are gone, and refuses or skips snapshots that
//! do not fit.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use ingress::{Ingress, IngressConfig};
use requestlog::{
    Durability, EmbeddedLog, EmbeddedOptions, LogError, LogReader, LogRecord, LogWriter,
};
use serde_json::{json, Value};
use snapshotter::{RocksStore, RocksStoreOptions, Snapshot, SnapshotStore};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Embedded logs and the engine runtime, which outlive the ingresses started on them.
struct Logs {
    requests: Arc<EmbeddedLog>,
    outcomes: Arc<EmbeddedLog>,
    engine: Option<runtime::Runtime>,
    dir: tempfile::TempDir,
}

impl Drop for Logs {
    fn drop(&mut self) {
        if let Some(engine) = self.engine.take() {
            // A failed runtime fails the test that made it fail, not the drop.
            let _ = engine.shutdown();
        }
    }
}

impl Logs {
    fn open() -> Logs {
        let dir = tempfile::tempdir().unwrap();
        let requests = Arc::new(
            EmbeddedLog::open(dir.path().join("requests"), EmbeddedOptions::default()).unwrap(),
        );
        let outcomes = Arc::new(
            EmbeddedLog::open(dir.path().join("outcomes"), EmbeddedOptions::default()).unwrap(),
        );
        let engine = start_runtime(requests.clone(), outcomes.clone(), engine_config());
        Logs {
            requests,
            outcomes,
            engine: Some(engine),
            dir,
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("ingress")
    }

    fn config(&self) -> IngressConfig {
        IngressConfig {
            state_dir: Some(self.state_dir()),
            snapshot_every_outcomes: 3,
            ..config()
        }
    }

    /// An ingress that resumes from the snapshots in the state directory.
    fn resume(&self, reader: Box<dyn LogReader>) -> Result<Ingress, String> {
        Ingress::start_resuming(
            self.config(),
            Arc::new(self.requests.writer()),
            reader,
            self.outcomes.log_id(),
            None,
        )
    }

    /// An ingress rebuilt from offset 0, in memory.
    fn rebuild(&self) -> Ingress {
        Ingress::start(
            config(),
            Arc::new(self.requests.writer()),
            Box::new(self.outcomes.reader()),
            None,
        )
        .unwrap()
    }

    /// Appends a request straight to the requests log (no ingress running) and waits for
    /// its outcome: the outcomes log then ends with it.
    fn append_while_down(&self, command: engine::Command) -> u64 {
        let request = engine::wire::encode_request(&engine::Request::new(command));
        let offset = self.requests.writer().append(vec![request]).unwrap()[0].offset;
        let mut reader = self.outcomes.reader();
        let mut assembler = engine::wire::OutcomeAssembler::new();
        loop {
            for record in reader.poll(64, Duration::from_secs(5)).unwrap() {
                if let Some(outcome) = assembler.push(&record.payload).unwrap() {
                    if outcome.offset == offset {
                        return offset;
                    }
                }
            }
        }
    }

    fn snapshots(&self) -> RocksStore {
        RocksStore::open(
            self.state_dir().join("slot-0").join("snapshots"),
            RocksStoreOptions {
                keep: 2,
                ..RocksStoreOptions::default()
            },
        )
        .unwrap()
    }
}

async fn ready(ingress: &Ingress) {
    assert!(ingress.wait_caught_up(CATCH_UP).await);
}

/// Stops an ingress; its last snapshot is written when this returns. Every handle on its
/// state must be gone first (the state holds its slot).
fn stop(ingress: Ingress) -> Option<u64> {
    ingress.stop()
}

/// What a user and the admin see, as JSON, for comparing two ingresses.
async fn views(
    ingress: &Ingress,
    event: &str,
    holds: &[String],
    bookings: &[String],
) -> Vec<Value> {
    let router = ingress.router();
    let ann = token("ann");
    let mut seen = Vec::new();
    let get = |uri: String, bearer: String| {
        let router = router.clone();
        async move {
            let answer = call(&router, Method::GET, &uri, Some(&bearer), None).await;
            json!({"uri": uri, "status": answer.status.as_u16(), "body": answer.body})
        }
    };
    seen.push(get(format!("/v1/events/{event}/seats"), ann.clone()).await);
    seen.push(get(format!("/v1/events/{event}"), ann.clone()).await);
    seen.push(get("/v1/bookings".into(), ann.clone()).await);
    seen.push(get("/v1/me/notifications".into(), ann.clone()).await);
    seen.push(get(format!("/v1/admin/events/{event}/attendees"), ADMIN.into()).await);
    for hold in holds {
        seen.push(get(format!("/v1/holds/{hold}"), ann.clone()).await);
    }
    for booking in bookings {
        seen.push(get(format!("/v1/bookings/{booking}"), ann.clone()).await);
    }
    seen
}

async fn hold(router: &axum::Router, event: &str, quantity: u32, key: &str) -> common::Answer {
    call_with(
        router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&token("ann")),
        &[("idempotency-key", key)],
        Some(json!({"quantity": quantity, "category": "Gold"}).to_string()),
    )
    .await
}

/// Some history through an ingress: an event, three holds (keyed), one confirmed, one
/// released. Returns (event, holds, bookings).
async fn history(ingress: &Ingress) -> (String, Vec<String>, Vec<String>) {
    let router = ingress.router();
    let event = create_event(&router, event_body("Restart", 10, 600)).await;
    let mut holds = Vec::new();
    for (quantity, key) in [(2, "h1"), (3, "h2"), (1, "h3")] {
        let answer = hold(&router, &event, quantity, key).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        holds.push(answer.body["hold_id"].as_str().unwrap().to_string());
    }
    let confirmed = call(
        &router,
        Method::POST,
        &format!("/v1/holds/{}/confirm", holds[0]),
        Some(&token("ann")),
        Some(json!({"payment_ref": "pay-1"})),
    )
    .await;
    assert_eq!(confirmed.status, StatusCode::CREATED, "{}", confirmed.text);
    let released = call(
        &router,
        Method::DELETE,
        &format!("/v1/holds/{}", holds[1]),
        Some(&token("ann")),
        None,
    )
    .await;
    assert!(released.status.is_success(), "{}", released.text);
    let booking = confirmed.body["booking_id"].as_str().unwrap().to_string();
    (event, holds, vec![booking])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_ingress_reads_only_the_outcomes_after_its_snapshot_and_answers_as_one_rebuilt_from_0(
) {
    let logs = Logs::open();
    let first = logs.resume(Box::new(logs.outcomes.reader())).unwrap();
    ready(&first).await;
    assert_eq!(first.state().resumed_from(), None);
    let (event, holds, bookings) = history(&first).await;
    let applied = first.state().applied_offset().unwrap();
    assert_eq!(
        stop(first),
        Some(applied),
        "the last snapshot is taken at stop"
    );

    // Outcomes the stopped ingress has not seen.
    let tail = [
        logs.append_while_down(engine::Command::Tick),
        logs.append_while_down(engine::Command::Tick),
    ];
    let end = *tail.last().unwrap();

    let resumed = logs.resume(Box::new(logs.outcomes.reader())).unwrap();
    ready(&resumed).await;
    assert_eq!(resumed.state().resumed_from(), Some(applied));
    assert_eq!(resumed.state().outcomes_read(), end - applied);
    assert_eq!(resumed.state().applied_offset(), Some(end));

    let rebuilt = logs.rebuild();
    ready(&rebuilt).await;
    assert_eq!(rebuilt.state().outcomes_read(), end + 1);
    assert_eq!(rebuilt.state().applied_offset(), Some(end));
    assert_eq!(
        resumed.state().read_model_digest(),
        rebuilt.state().read_model_digest(),
        "the same model, byte for byte"
    );
    assert_eq!(
        views(&resumed, &event, &holds, &bookings).await,
        views(&rebuilt, &event, &holds, &bookings).await
    );

    // An idempotent repeat is answered from the resumed index, as from the rebuilt one,
    // without reaching the log.
    let requests_end = logs.requests.writer().end_offset().unwrap();
    let from_resumed = hold(&resumed.router(), &event, 3, "h2").await;
    let from_rebuilt = hold(&rebuilt.router(), &event, 3, "h2").await;
    assert_eq!(
        from_resumed.status, from_rebuilt.status,
        "{}",
        from_resumed.text
    );
    assert_eq!(from_resumed.body, from_rebuilt.body);
    assert_eq!(
        from_resumed.body["hold_id"].as_str(),
        Some(holds[1].as_str())
    );
    assert_eq!(logs.requests.writer().end_offset().unwrap(), requests_end);
    let reused = hold(&resumed.router(), &event, 4, "h2").await;
    assert_eq!(
        reused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reused.text
    );

    // New writes go on from the resumed model.
    let more = hold(&resumed.router(), &event, 2, "h4").await;
    assert_eq!(more.status, StatusCode::CREATED, "{}", more.text);
    rebuilt.stop();
    stop(resumed);
}

/// Reads `inner`, as a log whose records before `start_offset` retention has removed
/// (raised while it is read, as retention does).
struct Truncated {
    inner: Box<dyn LogReader>,
    start_offset: Arc<AtomicU64>,
}

impl Truncated {
    fn out_of_range(&self, offset: u64) -> Option<LogError> {
        let start_offset = self.start_offset.load(Ordering::Acquire);
        (offset < start_offset).then(|| LogError::OffsetOutOfRange {
            offset,
            start_offset,
            end_offset: self.inner.end_offset().unwrap(),
        })
    }
}

impl LogReader for Truncated {
    fn seek(&mut self, offset: u64) -> Result<(), LogError> {
        match self.out_of_range(offset) {
            Some(error) => Err(error),
            None => self.inner.seek(offset),
        }
    }

    fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<Vec<LogRecord>, LogError> {
        match self.out_of_range(self.inner.position()) {
            Some(error) => Err(error),
            None => self.inner.poll(max_records, timeout),
        }
    }

    fn position(&self) -> u64 {
        self.inner.position()
    }

    fn end_offset(&self) -> Result<u64, LogError> {
        self.inner.end_offset()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_follows_a_log_whose_early_outcomes_are_gone_from_its_snapshot_and_says_so_without_one(
) {
    let logs = Logs::open();
    let first = logs.resume(Box::new(logs.outcomes.reader())).unwrap();
    ready(&first).await;
    history(&first).await;
    let snapshot = stop(first).unwrap();
    logs.append_while_down(engine::Command::Tick);
    // Retention removed every record the snapshot covers.
    let start_offset = logs.outcomes.end_offset() - 1;
    let truncated = || {
        Box::new(Truncated {
            inner: Box::new(logs.outcomes.reader()),
            start_offset: Arc::new(AtomicU64::new(start_offset)),
        })
    };
    let resumed = logs.resume(truncated()).unwrap();
    ready(&resumed).await;
    assert_eq!(resumed.state().resumed_from(), Some(snapshot));
    assert_eq!(resumed.state().outcomes_read(), 1);
    // Notifications are in the snapshot: ann's booking is still told, though its outcome
    // is gone from the log.
    let notified = call(
        &resumed.router(),
        Method::GET,
        "/v1/me/notifications",
        Some(&token("ann")),
        None,
    )
    .await;
    let types: Vec<&str> = notified.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|notification| notification["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["booking.created"], "{}", notified.text);
    stop(resumed);

    // Without a snapshot: a clear error at start, never a model missing the early outcomes.
    let other = IngressConfig {
        state_dir: Some(logs.dir.path().join("another-ingress")),
        ..logs.config()
    };
    let refused = Ingress::start_resuming(
        other,
        Arc::new(logs.requests.writer()),
        truncated(),
        logs.outcomes.log_id(),
        None,
    )
    .err()
    .expect("no snapshot and offset 0 gone");
    assert!(
        refused.contains("has no usable snapshot")
            && refused.contains(&format!("the log now starts at record {start_offset}"))
            && refused.contains("retention"),
        "{refused}"
    );
}

/// Retention removes outcomes a running ingress has not read yet (it lagged behind the
/// outcomes log's retention): `/readyz` says so, instead of serving a stale model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_whose_unread_outcomes_are_removed_is_not_ready_and_says_why() {
    let logs = Logs::open();
    let start_offset = Arc::new(AtomicU64::new(0));
    let ingress = logs
        .resume(Box::new(Truncated {
            inner: Box::new(logs.outcomes.reader()),
            start_offset: Arc::clone(&start_offset),
        }))
        .unwrap();
    ready(&ingress).await;
    history(&ingress).await;
    let end = logs.outcomes.end_offset();
    start_offset.store(end + 2, Ordering::Release);
    let router = ingress.router();
    let deadline = std::time::Instant::now() + CATCH_UP;
    let answer = loop {
        let answer = call(&router, Method::GET, "/readyz", None, None).await;
        if answer.reason() == "outcomes_truncated" {
            break answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readiness never named the removed outcomes: {}",
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    let message = answer.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("now starts at record {}", end + 2))
            && message.contains(&format!("read only up to record {end}")),
        "{message}"
    );
    drop(router);
    stop(ingress);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_another_log_is_refused_a_corrupt_one_is_skipped_for_an_older_one_and_one_without_its_index_too(
) {
    let logs = Logs::open();
    let first = logs.resume(Box::new(logs.outcomes.reader())).unwrap();
    ready(&first).await;
    let (event, holds, bookings) = history(&first).await;
    let older = stop(first).unwrap();
    let second = logs.resume(Box::new(logs.outcomes.reader())).unwrap();
    ready(&second).await;
    let more = hold(&second.router(), &event, 1, "h5").await;
    assert_eq!(more.status, StatusCode::CREATED, "{}", more.text);
    let newer = stop(second).unwrap();
    assert!(newer > older);

    // Another outcomes log: refused, naming both.
    let refused = Ingress::start_resuming(
        logs.config(),
        Arc::new(logs.requests.writer()),
        Box::new(logs.outcomes.reader()),
        "embedded:another",
        None,
    )
    .err()
    .expect("a state of another log");
    assert!(
        refused.contains("embedded:another") && refused.contains(logs.outcomes.log_id()),
        "{refused}"
    );

    // The newest snapshot damaged (sound checksums, a state that is no read model): the
    // older one is used, and the outcomes after it are read again.
    {
        let mut store = logs.snapshots();
        assert_eq!(
            store
                .list()
                .unwrap()
                .iter()
                .map(|listed| listed.offset)
                .collect::<Vec<_>>(),
            [newer, older]
        );
        let state = b"BXRM\x01not a read model".to_vec();
        store
            .write(&Snapshot {
                offset: newer,
                created_at_ms: 0,
                log_id: Some(logs.outcomes.log_id().to_string()),
                state_hash: *blake3::hash(&state).as_bytes(),
                state,
            })
            .unwrap();
    }
    let resumed = logs.resume(Box::new(logs.outcomes.reader())).unwrap();
    ready(&resumed).await;
    assert_eq!(resumed.state().resumed_from(), Some(older));
    assert_eq!(resumed.state().outcomes_read(), newer - older);
    let rebuilt = logs.rebuild();
    ready(&rebuilt).await;
    assert_eq!(
        resumed.state().read_model_digest(),
        rebuilt.state().read_model_digest()
    );
    assert_eq!(
        views(&resumed, &event, &holds, &bookings).await,
        views(&rebuilt, &event, &holds, &bookings).await
    );
    rebuilt.stop();
    let last = stop(resumed).unwrap();

    // The index lost (a snapshot counts on the index beside it covering it): every
    // snapshot is skipped and the model and index are rebuilt from offset 0.
    std::fs::remove_dir_all(logs.state_dir().join("slot-0").join("index")).unwrap();
    let rebuilt_here = logs.resume(Box::new(logs.outcomes.reader())).unwrap();
    ready(&rebuilt_here).await;
    assert_eq!(rebuilt_here.state().resumed_from(), None);
    assert_eq!(rebuilt_here.state().outcomes_read(), last + 1);
    let repeat = hold(&rebuilt_here.router(), &event, 3, "h2").await;
    assert_eq!(
        repeat.body["hold_id"].as_str(),
        Some(holds[1].as_str()),
        "{}",
        repeat.text
    );
    stop(rebuilt_here);
}

/// Reads `inner`; its records are made durable only once `gate` is open, and each sync
/// says on `begun` that it has started.
struct GatedSync {
    inner: Box<dyn LogReader>,
    gate: Arc<(Mutex<bool>, Condvar)>,
    begun: std::sync::mpsc::SyncSender<()>,
}

impl LogReader for GatedSync {
    fn seek(&mut self, offset: u64) -> Result<(), LogError> {
        self.inner.seek(offset)
    }

    fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<Vec<LogRecord>, LogError> {
        self.inner.poll(max_records, timeout)
    }

    fn position(&self) -> u64 {
        self.inner.position()
    }

    fn end_offset(&self) -> Result<u64, LogError> {
        self.inner.end_offset()
    }

    fn durability(&self) -> Option<Durability> {
        let inner = self.inner.durability().expect("an embedded log syncs");
        let (gate, begun) = (Arc::clone(&self.gate), self.begun.clone());
        Some(Durability::new(move || {
            let _ = begun.try_send(());
            let (open, opened) = &*gate;
            drop(
                opened
                    .wait_while(open.lock().unwrap(), |open| !*open)
                    .unwrap(),
            );
            inner.sync()
        }))
    }
}

/// A snapshot covers outcomes that must be durable first (the embedded outcomes log does
/// not fsync its appends); that flush is the snapshot thread's, so while it is slow the
/// follower goes on answering, and the snapshot is written once it is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sync_of_the_outcomes_for_a_snapshot_holds_up_no_answer() {
    let logs = Logs::open();
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let (begun, syncing) = std::sync::mpsc::sync_channel(16);
    let reader = GatedSync {
        inner: Box::new(logs.outcomes.reader()),
        gate: Arc::clone(&gate),
        begun,
    };
    let ingress = logs.resume(Box::new(reader)).unwrap();
    ready(&ingress).await;
    // Five outcomes: a snapshot (one every 3) is due, and its sync waits at the gate.
    let (event, _, _) = history(&ingress).await;
    let syncing =
        tokio::task::spawn_blocking(move || syncing.recv_timeout(CATCH_UP).map(|()| syncing))
            .await
            .unwrap()
            .expect("a snapshot's sync began");
    assert_eq!(
        ingress.state().snapshot_written(),
        None,
        "nothing written yet"
    );
    // Writes are answered meanwhile (their outcomes applied by the follower).
    for key in ["s1", "s2", "s3", "s4"] {
        let answer = hold(&ingress.router(), &event, 1, key).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    }
    assert_eq!(
        ingress.state().snapshot_written(),
        None,
        "still waiting for the sync"
    );
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    // The last snapshot covers every outcome, the ones answered during the sync too.
    let last = stop(ingress).expect("a snapshot once the sync is done");
    assert!(last >= logs.outcomes.end_offset() - 1, "{last}");
    drop(syncing);
}
