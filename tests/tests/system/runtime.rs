//! The runtime end to end: requests appended to the log come out as outcomes, one per
//! request, in order, equal to a from-scratch replay's; restarts publish nothing twice and
//! lose nothing; ticks expire holds; a standby publishes nothing until promoted. Every
//! scenario runs on the embedded log, and on Kafka when `KAFKA_BOOTSTRAP` is set.

use crate::common;

use common::*;
use engine::{Effect, Rejection};
use runtime::{Logs, Role, Runtime, RuntimeOptions};
use snapshotter::{MemoryStore, RocksStore, RocksStoreOptions, SnapshotStore};
use std::sync::Arc;
use std::time::Duration;

fn options() -> RuntimeOptions {
    RuntimeOptions {
        tick_interval_ms: 50,
        idle_ms: 5,
        idle_hash_every_ms: 0,
        snapshot_every_records: 25,
        snapshot_every_ms: 200,
        ..RuntimeOptions::new(engine_config())
    }
}

/// Appends workload records `from..to` in batches of varying size; returns the log's end.
fn append_workload(backend_logs: &runtime::Logs, seed: u64, from: u64, to: u64) -> u64 {
    let writer = backend_logs.requests.open_writer().unwrap();
    let mut rng = Rng::new(seed);
    let mut next = from;
    while next < to {
        let size = (1 + rng.below(16)).min(to - next);
        let payloads = (next..next + size)
            .map(|index| workload_record(seed, index, 60_000))
            .collect();
        let appended = writer.append(payloads).unwrap();
        next += size;
        assert_eq!(appended.len() as u64, size);
    }
    writer.end_offset().unwrap()
}

fn rocks_store(dir: &std::path::Path) -> Box<dyn SnapshotStore> {
    Box::new(
        RocksStore::open(
            dir.join("snapshots"),
            RocksStoreOptions {
                keep: 3,
                chunk_bytes: 4096,
            },
        )
        .unwrap(),
    )
}

// ---- one request, one outcome -----------------------------------------------------------

fn requests_become_outcomes(backend: Backend, store_dir: &std::path::Path) {
    let logs = backend.logs();
    let runtime = Runtime::start(options(), backend.logs(), rocks_store(store_dir)).unwrap();
    let recent = runtime.handle().recent_outcomes();
    let end = append_workload(&logs, 1, 0, 300);
    let status = wait_settled(&runtime.handle(), end);
    let status_after = runtime.shutdown().unwrap();
    assert_eq!(status_after.applied_offset, status.applied_offset);
    check_exactly_once(&backend, &status);
    // The garbage records were answered, not skipped.
    let outcomes = decode_outcomes(&read_all(logs.outcomes.as_ref()));
    // What the publisher kept for readers in its process is what it appended: a reader
    // that takes them gets every outcome a reader that decodes gets.
    let recent = recent.lock().unwrap();
    assert_eq!(
        recent.len(),
        outcomes.len().min(runtime::RECENT_OUTCOMES_MAX)
    );
    let mut knowing = engine::wire::OutcomeAssembler::new();
    let mut taken = Vec::new();
    for record in read_all(logs.outcomes.as_ref()) {
        taken.extend(
            knowing
                .push_at_known(record.offset, &record.payload, Some(&recent))
                .unwrap(),
        );
    }
    assert_eq!(taken.len(), outcomes.len());
    let first_kept = outcomes.len() - recent.len();
    for (index, (taken, decoded)) in taken.iter().zip(&outcomes).enumerate() {
        assert_eq!(**taken, *decoded);
        let kept = recent.get(decoded.offset);
        assert_eq!(kept.is_some(), index >= first_kept, "{index}");
        assert!(kept.is_none_or(|kept| Arc::ptr_eq(taken, kept)), "{index}");
    }
    assert!(outcomes
        .iter()
        .any(|outcome| matches!(outcome.result, Err(Rejection::Undecodable { .. }))));
    assert!(
        outcomes.iter().any(|outcome| outcome.replayed),
        "some requests are retried under their key"
    );
    assert!(
        outcomes
            .iter()
            .any(|outcome| outcome.result == Err(Rejection::IdempotencyKeyReused)),
        "some keys are reused for another request"
    );
}

#[test]
fn embedded_requests_become_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    requests_become_outcomes(Backend::embedded(dir.path()), dir.path());
}

#[test]
fn kafka_requests_become_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    if let Some(backend) = Backend::kafka("outcomes") {
        requests_become_outcomes(backend, dir.path());
    }
}

/// The outcomes log as the runtime opens it, counting the runtime's calls to make it
/// durable and the outcomes it held at each.
struct CountingDurability {
    log: Arc<dyn runtime::OpenLog>,
    durable_ends: std::sync::Mutex<Vec<u64>>,
}

impl runtime::OpenLog for CountingDurability {
    fn open_reader(&self) -> Result<Box<dyn requestlog::LogReader>, requestlog::LogError> {
        self.log.open_reader()
    }

    fn open_writer(&self) -> Result<Arc<dyn requestlog::LogWriter>, requestlog::LogError> {
        self.log.open_writer()
    }

    fn log_id(&self) -> String {
        self.log.log_id()
    }

    fn make_durable(&self) -> Result<(), requestlog::LogError> {
        let end = self.log.open_reader()?.end_offset()?;
        self.durable_ends.lock().unwrap().push(end);
        self.log.make_durable()
    }
}

/// The embedded outcomes log does not fsync its appends (only the requests log is on the
/// write path's disk): a snapshot makes the outcomes it claims durable before it is
/// written, or a machine crash could leave a snapshot past the outcomes log's end.
#[test]
fn embedded_snapshots_make_their_outcomes_durable_first() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::embedded(dir.path());
    let logs = backend.logs();
    let outcomes = Arc::new(CountingDurability {
        log: Arc::clone(&logs.outcomes),
        durable_ends: std::sync::Mutex::default(),
    });
    let runtime = Runtime::start(
        options(),
        Logs {
            requests: Arc::clone(&logs.requests),
            outcomes: Arc::clone(&outcomes) as Arc<dyn runtime::OpenLog>,
        },
        rocks_store(dir.path()),
    )
    .unwrap();
    let end = append_workload(&logs, 3, 0, 200);
    let status = wait_settled(&runtime.handle(), end);
    let snapshot = runtime
        .handle()
        .wait_for(Duration::from_secs(30), |status| {
            status.last_snapshot.is_some()
        })
        .0
        .last_snapshot
        .expect("a snapshot is written after 25 records");
    runtime.shutdown().unwrap();
    let durable_ends = outcomes.durable_ends.lock().unwrap().clone();
    assert!(
        !durable_ends.is_empty(),
        "snapshot at {} written without making its outcomes durable",
        snapshot.offset
    );
    check_exactly_once(&backend, &status);
}

// ---- restarts -----------------------------------------------------------------------------

fn restarts_are_exact(backend: Backend, store_dir: &std::path::Path) {
    let mut end = 0;
    for round in 0..4u64 {
        // Fresh handles each round: the embedded logs are closed and opened again.
        let logs = backend.logs();
        let runtime = Runtime::start(options(), backend.logs(), rocks_store(store_dir)).unwrap();
        let start_status = runtime.status();
        if round > 0 {
            // Restarted from a snapshot (not from offset 0) once one was written.
            assert!(
                start_status.last_snapshot.is_some(),
                "round {round}: {start_status:?}"
            );
        }
        end = append_workload(&logs, 2, end, end + 120);
        if round % 2 == 0 {
            let status = wait_settled(&runtime.handle(), end);
            runtime.shutdown().unwrap();
            check_exactly_once(&backend, &status);
        } else {
            // Stop while the engine may still be behind: the next start catches up.
            runtime.shutdown().unwrap();
        }
    }
    let runtime = Runtime::start(options(), backend.logs(), rocks_store(store_dir)).unwrap();
    let status = wait_settled(&runtime.handle(), end);
    runtime.shutdown().unwrap();
    check_exactly_once(&backend, &status);
}

#[test]
fn embedded_restarts_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    restarts_are_exact(Backend::embedded(dir.path()), dir.path());
}

#[test]
fn kafka_restarts_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    if let Some(backend) = Backend::kafka("restarts") {
        restarts_are_exact(backend, dir.path());
    }
}

/// A restart whose newest snapshot is corrupt starts from the one before; with every
/// snapshot corrupt, from offset 0; either way the result is exact.
#[test]
fn embedded_restart_falls_back_past_corrupt_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::embedded(dir.path());
    let logs = backend.logs();
    let store = MemoryStore::new(3);
    let runtime = Runtime::start(options(), backend.logs(), Box::new(store.clone())).unwrap();
    let end = append_workload(&logs, 3, 0, 200);
    let (_, written) = runtime
        .handle()
        .wait_for(DEADLINE, |status| status.last_snapshot.is_some());
    assert!(written);
    wait_settled(&runtime.handle(), end);
    runtime.shutdown().unwrap();
    let offsets = store.offsets();
    assert!(!offsets.is_empty());

    store.corrupt_last_write(11);
    let runtime = Runtime::start(options(), backend.logs(), Box::new(store.clone())).unwrap();
    let loaded = runtime
        .status()
        .last_snapshot
        .map(|snapshot| snapshot.offset);
    assert!(
        loaded.is_none() || loaded < offsets.last().copied(),
        "the corrupt newest snapshot was not loaded: {loaded:?} of {offsets:?}"
    );
    let status = wait_settled(&runtime.handle(), end);
    runtime.shutdown().unwrap();
    check_exactly_once(&backend, &status);

    for offset in store.offsets() {
        store.replace_state(offset, vec![1, 2, 3]);
    }
    let runtime = Runtime::start(options(), backend.logs(), Box::new(store.clone())).unwrap();
    assert_eq!(
        runtime.status().applied_offset,
        None,
        "no snapshot loads: replay from 0"
    );
    let status = wait_settled(&runtime.handle(), end);
    runtime.shutdown().unwrap();
    check_exactly_once(&backend, &status);
}

/// Snapshot writes that fail do not stop the runtime.
#[test]
fn embedded_failing_snapshot_writes_are_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::embedded(dir.path());
    let logs = backend.logs();
    let store = MemoryStore::new(3);
    store.fail_after_writes(0);
    let runtime = Runtime::start(options(), backend.logs(), Box::new(store.clone())).unwrap();
    let end = append_workload(&logs, 4, 0, 150);
    let status = wait_settled(&runtime.handle(), end);
    assert!(status.failure.is_none());
    assert_eq!(status.last_snapshot, None);
    runtime.shutdown().unwrap();
    check_exactly_once(&backend, &status);
}

// ---- outcomes in frames -------------------------------------------------------------------

/// The publisher stops between two appends of one large outcome (its writer refuses the
/// third frame, which stops the runtime): the outcomes log ends inside that outcome.
/// Started again, the runtime counts only complete outcomes as published and publishes the
/// torn one again from its first frame; readers drop the torn frames.
#[test]
fn embedded_a_torn_outcome_is_published_again_from_its_first_frame() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::embedded(dir.path());
    let logs = backend.logs();
    // One seat, held then confirmed: the confirm ends 5,000 waiters with long names, an
    // outcome of about a megabyte (several frames).
    let event = engine::EventId(0);
    let mut payloads = vec![
        create_event(seated_event(1, 1, 60_000)),
        hold_seat("holder", event, "A-1-1"),
    ];
    let user = |index: u32| format!("{index:0>200}");
    payloads.extend((0..5_000).map(|index| join_waitlist(&user(index), event)));
    payloads.push(confirm("holder", engine::HoldId(1)));
    let end = append_all(logs.requests.as_ref(), payloads);
    let options = RuntimeOptions {
        // One frame an append, so the outcome's frames go in appends of their own.
        publish_bytes_max: engine::wire::OUTCOME_FRAME_BYTES_MAX,
        ..options()
    };
    let refusing = Logs {
        requests: Arc::clone(&logs.requests),
        outcomes: Arc::new(RefusingLog {
            log: Arc::clone(&logs.outcomes),
            refuse: Arc::new(|payloads: &[Vec<u8>]| {
                engine::wire::frame_header(&payloads[0]).unwrap().index >= 2
            }),
        }),
    };
    let runtime = Runtime::start(options.clone(), refusing, Box::new(MemoryStore::new(1))).unwrap();
    let (status, _) = runtime
        .handle()
        .wait_for(DEADLINE, |status| status.failure.is_some());
    assert_eq!(status.published_offset, Some(end - 2), "{status:?}");
    assert!(runtime
        .shutdown()
        .unwrap_err()
        .to_string()
        .contains("publishing outcomes: outcomes log"),);
    let records = read_all(logs.outcomes.as_ref());
    let tail: Vec<(u64, u32, u32)> = records[records.len() - 2..]
        .iter()
        .map(|record| {
            let header = engine::wire::frame_header(&record.payload).unwrap();
            (header.offset, header.index, header.count)
        })
        .collect();
    let frames = tail[0].2;
    assert!(frames >= 4, "{tail:?}");
    assert_eq!(tail, [(end - 1, 0, frames), (end - 1, 1, frames)]);
    assert_eq!(
        runtime::last_published_offset(logs.outcomes.as_ref()).unwrap(),
        Some(end - 2),
        "a torn outcome is not published"
    );

    let runtime = Runtime::start(options, backend.logs(), Box::new(MemoryStore::new(1))).unwrap();
    let status = wait_settled(&runtime.handle(), end);
    runtime.shutdown().unwrap();
    assert_eq!(check_exactly_once_after_tears(&backend, &status), 2);
    let outcomes = decode_outcomes_allowing_torn(&read_all(logs.outcomes.as_ref())).0;
    // The restarted primary's `Configure` record may follow it.
    let confirmed = outcomes
        .iter()
        .find(|outcome| outcome.offset == end - 1)
        .unwrap();
    assert!(matches!(
        confirmed.result,
        Ok(engine::Reply::HoldConfirmed(_))
    ));
    assert_eq!(confirmed.effects.len(), 5_000, "every waiter ended");
}

/// An outcomes log written before outcomes were framed (version 1) is refused at start,
/// with what to do: outcomes are re-derived from the requests log by replay.
#[test]
fn embedded_an_outcomes_log_of_version_1_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::embedded(dir.path());
    let logs = backend.logs();
    append_all(logs.requests.as_ref(), vec![request(engine::Command::Tick)]);
    // Version 1: one whole outcome (a Tick's) per record.
    append_all(logs.outcomes.as_ref(), vec![vec![1, 0, 0, 0, 0, 15, 0]]);
    let Err(error) = Runtime::start(options(), backend.logs(), Box::new(MemoryStore::new(1)))
    else {
        panic!("a runtime started on a version-1 outcomes log");
    };
    let error = error.to_string();
    assert!(
        error.starts_with(
            "the outcomes log holds an undecodable outcome at offset 0: outcome record version 1"
        ),
        "{error}"
    );
    assert!(error.contains("re-derive them by replay"), "{error}");
}

// ---- ticks --------------------------------------------------------------------------------

fn holds_expire_by_ticks(backend: Backend, store_dir: &std::path::Path) {
    let logs = backend.logs();
    let runtime = Runtime::start(options(), backend.logs(), rocks_store(store_dir)).unwrap();
    let writer = logs.requests.open_writer().unwrap();
    let ttl_ms = 1_000;
    writer.append(vec![workload_record(0, 0, ttl_ms)]).unwrap();
    let hold = engine::Request::new(engine::Command::PlaceHold {
        user: "u1".into(),
        event: engine::EventId(0),
        selection: engine::Selection::Seats(vec!["A-1-1".into()]),
        wait: false,
    });
    let placed = writer
        .append(vec![engine::wire::encode_request(&hold)])
        .unwrap()[0];
    // No other record is written: only the ticker can move time past the hold's expiry.
    let mut reader = logs.outcomes.open_reader().unwrap();
    let deadline = std::time::Instant::now() + DEADLINE;
    let expired = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the hold never expired"
        );
        let outcomes = decode_outcomes(&reader.poll(100, Duration::from_millis(100)).unwrap());
        if let Some(outcome) = outcomes.into_iter().find(|outcome| {
            outcome
                .effects
                .iter()
                .any(|effect| matches!(effect, Effect::HoldExpired { .. }))
        }) {
            break outcome;
        }
    };
    // The runtime's ticker writes both: a `Tick`, or the `Configure` record it appends once
    // per term on taking the primary role, when that lands after the hold's expiry (a slow
    // start on a loaded machine). Either way no client record moved time.
    assert!(
        matches!(
            expired.result,
            Ok(engine::Reply::Ticked) | Ok(engine::Reply::Configured)
        ),
        "a record of the runtime's ticker expired it: {:?}",
        expired.result
    );
    let due_ms = placed.timestamp_ms + ttl_ms;
    let late_ms = expired.time_ms.saturating_sub(due_ms);
    assert!(late_ms < 1_500, "expired {late_ms} ms after its due time");
    runtime.shutdown().unwrap();
}

#[test]
fn embedded_holds_expire_by_ticks() {
    let dir = tempfile::tempdir().unwrap();
    holds_expire_by_ticks(Backend::embedded(dir.path()), dir.path());
}

#[test]
fn kafka_holds_expire_by_ticks() {
    let dir = tempfile::tempdir().unwrap();
    if let Some(backend) = Backend::kafka("ticks") {
        holds_expire_by_ticks(backend, dir.path());
    }
}

// ---- standby ------------------------------------------------------------------------------

fn node_options(node: &str, role: Role) -> RuntimeOptions {
    RuntimeOptions {
        node: node.to_string(),
        role,
        ..options()
    }
}

fn wait_role(handle: &runtime::RuntimeHandle, role: Role) {
    let (status, reached) = handle.wait_for(DEADLINE, |status| status.role == role);
    assert!(
        reached,
        "{} did not become {role:?}: {status:?}",
        handle.node()
    );
}

/// With `standby_outcomes_max` below the 30 outcomes nobody published, the promoted
/// standby re-derives the ones it no longer holds: the outcomes log has no gap.
fn standby_publishes_only_once_promoted(
    backend: Backend,
    store_dir: &std::path::Path,
    standby_outcomes_max: usize,
) {
    let logs = backend.logs();
    let standby = Runtime::start(
        RuntimeOptions {
            standby_outcomes_max,
            ..node_options("b", Role::Standby)
        },
        backend.logs(),
        rocks_store(&store_dir.join("standby")),
    )
    .unwrap();
    // A primary publishes the first 100 outcomes, then goes away.
    let primary = Runtime::start(
        node_options("a", Role::Primary),
        backend.logs(),
        Box::new(MemoryStore::new(1)),
    )
    .unwrap();
    wait_role(&primary.handle(), Role::Primary);
    assert!(matches!(
        primary.promote(),
        Err(runtime::RuntimeError::PromotionRefused(_))
    ));
    // Its `Configure` record first (the log was empty), so the workload follows it.
    let (status, configured) = primary.handle().wait_for(DEADLINE, |status| {
        status.log_end_offset == 1 && status.caught_up() && status.published_all()
    });
    assert!(configured, "{status:?}");
    let end = append_workload(&logs, 5, 0, 100);
    wait_settled(&primary.handle(), end);
    primary.shutdown().unwrap();
    let published = read_all(logs.outcomes.as_ref()).len();
    assert_eq!(
        published as u64, end,
        "the Configure record and 100 requests"
    );
    // The standby applies 30 more that nobody publishes.
    let end = append_workload(&logs, 5, end, end + 30);
    let (status, caught_up) = standby.handle().wait_for(DEADLINE, |status| {
        status.log_end_offset >= end && status.caught_up()
    });
    assert!(caught_up, "{status:?}");
    assert_eq!(
        (status.role, status.published_offset),
        (Role::Standby, None)
    );
    assert_eq!(
        read_all(logs.outcomes.as_ref()).len(),
        published,
        "a standby publishes nothing"
    );
    // Promoted (a record in the log), it publishes those 30 and nothing twice, then goes
    // on as the primary.
    let promote_offset = standby.promote().unwrap();
    assert_eq!(
        promote_offset, end,
        "the Promote record goes at the log's end"
    );
    assert!(matches!(
        standby.promote(),
        Err(runtime::RuntimeError::PromotionRefused(_))
    ));
    wait_role(&standby.handle(), Role::Primary);
    let end = append_workload(&logs, 5, end + 1, end + 51);
    let status = wait_settled(&standby.handle(), end);
    standby.shutdown().unwrap();
    check_exactly_once(&backend, &status);
}

/// Both replicas alive: the role moves at the `Promote` record's offset, the old primary
/// steps down by itself, and it can be promoted back. A restarted replica takes the role
/// the log gives it, whatever its configuration says.
fn promotion_moves_the_role_at_its_record(backend: Backend, store_dir: &std::path::Path) {
    let logs = backend.logs();
    let a = Runtime::start(
        node_options("a", Role::Primary),
        backend.logs(),
        rocks_store(&store_dir.join("a")),
    )
    .unwrap();
    let b = Runtime::start(
        node_options("b", Role::Standby),
        backend.logs(),
        rocks_store(&store_dir.join("b")),
    )
    .unwrap();
    let end = append_workload(&logs, 9, 0, 80);
    wait_settled(&a.handle(), end);
    let promote_b = b.promote().unwrap();
    wait_role(&b.handle(), Role::Primary);
    wait_role(&a.handle(), Role::Standby);
    let end = append_workload(&logs, 9, promote_b + 1, promote_b + 61);
    let status_b = wait_settled(&b.handle(), end);
    let status_a = a.status();
    assert!(
        status_a.published_offset <= Some(promote_b),
        "the old primary publishes nothing after the record that named another: {status_a:?}"
    );
    // Fail back, with both still alive.
    let promote_a = a.promote().unwrap();
    assert!(promote_a > promote_b);
    wait_role(&a.handle(), Role::Primary);
    wait_role(&b.handle(), Role::Standby);
    let end = append_workload(&logs, 9, promote_a + 1, promote_a + 41);
    let status = wait_settled(&a.handle(), end);
    assert!(status_b.state_hash_offset.is_some());
    // B restarts configured as primary: the log named A last, so it comes back standby.
    b.shutdown().unwrap();
    let b = Runtime::start(
        node_options("b", Role::Primary),
        backend.logs(),
        rocks_store(&store_dir.join("b")),
    )
    .unwrap();
    // Replaying, it is neither standby nor primary; once caught up the log decides.
    let (status_b, caught_up) = b.handle().wait_for(DEADLINE, |status| {
        status.caught_up()
            && status.log_end_offset >= end
            && status.state_hash_offset == status.applied_offset
            && status.role != Role::CatchingUp
    });
    assert!(caught_up, "{status_b:?}");
    assert_eq!(status_b.role, Role::Standby);
    // A's `Configure` record for its new term may have come after `end`: compare at B's offset.
    let (status_a, same_offset) = a.handle().wait_for(DEADLINE, |status| {
        status.state_hash_offset == status_b.state_hash_offset
    });
    assert!(same_offset, "{status_a:?} vs {status_b:?}");
    assert_eq!(
        status_b.state_hash, status_a.state_hash,
        "the replicas agree"
    );
    b.shutdown().unwrap();
    a.shutdown().unwrap();
    check_at_least_once_identical(&backend, &status);
}

#[test]
fn embedded_promotion_moves_the_role_at_its_record() {
    let dir = tempfile::tempdir().unwrap();
    promotion_moves_the_role_at_its_record(Backend::embedded(dir.path()), dir.path());
}

#[test]
fn kafka_promotion_moves_the_role_at_its_record() {
    let dir = tempfile::tempdir().unwrap();
    if let Some(backend) = Backend::kafka("promotion") {
        promotion_moves_the_role_at_its_record(backend, dir.path());
    }
}

#[test]
fn embedded_standby_publishes_only_once_promoted() {
    let dir = tempfile::tempdir().unwrap();
    standby_publishes_only_once_promoted(Backend::embedded(dir.path()), dir.path(), 1_000_000);
}

#[test]
fn kafka_standby_publishes_only_once_promoted() {
    let dir = tempfile::tempdir().unwrap();
    if let Some(backend) = Backend::kafka("standby") {
        standby_publishes_only_once_promoted(backend, dir.path(), 1_000_000);
    }
}

#[test]
fn embedded_a_backlog_over_the_standby_buffer_is_re_derived_when_promoted() {
    let dir = tempfile::tempdir().unwrap();
    standby_publishes_only_once_promoted(Backend::embedded(dir.path()), dir.path(), 5);
}

#[test]
fn kafka_a_backlog_over_the_standby_buffer_is_re_derived_when_promoted() {
    let dir = tempfile::tempdir().unwrap();
    if let Some(backend) = Backend::kafka("backlog") {
        standby_publishes_only_once_promoted(backend, dir.path(), 5);
    }
}

/// A standby that snapshotted past the last published outcome, restarted from that
/// snapshot (it holds none of those outcomes any more) and then promoted, publishes the
/// range between the last published outcome and its snapshot (re-derived), then goes on.
fn restarted_standby_promoted_publishes_the_gap(backend: Backend, store_dir: &std::path::Path) {
    let logs = backend.logs();
    let standby_options = || RuntimeOptions {
        snapshot_every_records: 1,
        ..node_options("b", Role::Standby)
    };
    let standby = Runtime::start(
        standby_options(),
        backend.logs(),
        rocks_store(&store_dir.join("standby")),
    )
    .unwrap();
    let primary = Runtime::start(
        node_options("a", Role::Primary),
        backend.logs(),
        Box::new(MemoryStore::new(1)),
    )
    .unwrap();
    let end = append_workload(&logs, 7, 0, 60);
    wait_settled(&primary.handle(), end);
    primary.shutdown().unwrap();
    let published = read_all(logs.outcomes.as_ref()).len();
    // 30 more that nobody publishes; the standby snapshots them.
    let end = append_workload(&logs, 7, end, end + 30);
    let (status, snapshotted) = standby.handle().wait_for(DEADLINE, |status| {
        status.log_end_offset >= end
            && status.caught_up()
            && status
                .last_snapshot
                .as_ref()
                .is_some_and(|snapshot| snapshot.offset + 1 >= end)
    });
    assert!(snapshotted, "{status:?}");
    standby.shutdown().unwrap();
    assert_eq!(read_all(logs.outcomes.as_ref()).len(), published);

    let standby = Runtime::start(
        standby_options(),
        backend.logs(),
        rocks_store(&store_dir.join("standby")),
    )
    .unwrap();
    assert!(
        standby.status().applied_offset >= Some(end - 1),
        "restarted from its snapshot: {:?}",
        standby.status()
    );
    let (status, caught_up) = standby
        .handle()
        .wait_for(DEADLINE, |status| status.role == Role::Standby);
    assert!(caught_up, "{status:?}");
    standby.promote().unwrap();
    wait_role(&standby.handle(), Role::Primary);
    let end = append_workload(&logs, 7, end + 1, end + 21);
    let status = wait_settled(&standby.handle(), end);
    standby.shutdown().unwrap();
    check_exactly_once(&backend, &status);
}

#[test]
fn embedded_a_restarted_standby_promoted_publishes_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    restarted_standby_promoted_publishes_the_gap(Backend::embedded(dir.path()), dir.path());
}

#[test]
fn kafka_a_restarted_standby_promoted_publishes_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    if let Some(backend) = Backend::kafka("restarted-standby") {
        restarted_standby_promoted_publishes_the_gap(backend, dir.path());
    }
}
