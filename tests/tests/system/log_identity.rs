//! Snapshots belong to one requests log: a snapshot from another log is refused at start
//! (never skipped in favour of a replay from 0 of the wrong log), and a snapshot ahead of
//! the log's end falls back to an older one that fits, or stops the start when none does.
//! On the embedded log, and on Kafka when `KAFKA_BOOTSTRAP` is set.

use crate::common;

use common::*;
use requestlog::LogRecord;
use runtime::{Runtime, RuntimeError, RuntimeOptions};
use snapshotter::{MemoryStore, Snapshot, SnapshotError, SnapshotStore};

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

/// Writes no snapshot of its own, so the status keeps naming the one it started from.
fn no_snapshots() -> RuntimeOptions {
    RuntimeOptions {
        snapshot_every_records: u64::MAX,
        snapshot_every_ms: u64::MAX,
        ..options()
    }
}

/// Appends workload records `from..to`; returns the log's end.
fn append_records(logs: &runtime::Logs, seed: u64, from: u64, to: u64) -> u64 {
    let payloads = (from..to)
        .map(|index| workload_record(seed, index, 60_000))
        .collect();
    append_all(logs.requests.as_ref(), payloads)
}

// ---- another log --------------------------------------------------------------------------

fn a_snapshot_from_another_log_is_refused(first: Backend, second: Backend) {
    let store = MemoryStore::new(3);
    let first_logs = first.logs();
    let runtime = Runtime::start(options(), first.logs(), Box::new(store.clone())).unwrap();
    let end = append_records(&first_logs, 11, 0, 100);
    let (_, written) = runtime
        .handle()
        .wait_for(DEADLINE, |status| status.last_snapshot.is_some());
    assert!(written, "a snapshot was written");
    wait_settled(&runtime.handle(), end);
    runtime.shutdown().unwrap();
    let snapshot_offset = *store.offsets().last().unwrap();

    // The second log is longer than the snapshot, so only its identity tells them apart.
    let second_logs = second.logs();
    append_records(&second_logs, 12, 0, 200);
    let first_id = first_logs.requests.log_id();
    let second_id = second_logs.requests.log_id();
    assert_ne!(first_id, second_id);
    match Runtime::start(options(), second.logs(), Box::new(store.clone())) {
        Err(RuntimeError::Snapshots(SnapshotError::OtherLog {
            offset,
            snapshot_log_id,
            log_id,
        })) => {
            assert_eq!(
                (offset, snapshot_log_id, log_id),
                (snapshot_offset, first_id.clone(), second_id.clone())
            );
        }
        Err(other) => panic!("expected OtherLog, got {other}"),
        Ok(_) => panic!("a snapshot from {first_id} was loaded against {second_id}"),
    }
    assert_eq!(
        *store.offsets().last().unwrap(),
        snapshot_offset,
        "the snapshots were left alone"
    );

    // Its own log still starts from it.
    let runtime = Runtime::start(no_snapshots(), first.logs(), Box::new(store.clone())).unwrap();
    assert_eq!(
        runtime
            .status()
            .last_snapshot
            .map(|snapshot| snapshot.offset),
        Some(snapshot_offset)
    );
    let status = wait_settled(&runtime.handle(), end);
    runtime.shutdown().unwrap();
    check_exactly_once(&first, &status);
}

#[test]
fn embedded_a_snapshot_from_another_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    a_snapshot_from_another_log_is_refused(
        Backend::embedded(&dir.path().join("first")),
        Backend::embedded(&dir.path().join("second")),
    );
}

#[test]
fn kafka_a_snapshot_from_another_topic_is_refused() {
    if let (Some(first), Some(second)) = (
        Backend::kafka("identity-first"),
        Backend::kafka("identity-second"),
    ) {
        a_snapshot_from_another_log_is_refused(first, second);
    }
}

// ---- ahead of the log ---------------------------------------------------------------------

/// The log holds records 0..100 (as a log restored from an older copy would): a snapshot
/// at 149 of the same log does not fit; the one at 59 does.
fn a_snapshot_ahead_of_the_log_falls_back(backend: Backend) {
    let logs = backend.logs();
    let end = append_records(&logs, 13, 0, 100);
    assert_eq!(end, 100);
    let log_id = logs.requests.log_id();
    let mut records = read_all(logs.requests.as_ref());
    let last_timestamp_ms = records.last().unwrap().timestamp_ms;
    // Records 100..150 that this log lost (or never had).
    records.extend((100..150).map(|offset| LogRecord {
        offset,
        timestamp_ms: last_timestamp_ms,
        payload: workload_record(13, offset, 60_000),
    }));
    let mut store = MemoryStore::new(3);
    for offset in [59, 149] {
        let (engine, _) = replay_from_scratch(&records, offset);
        store
            .write(&Snapshot::of_state(engine.state(), 1, &log_id))
            .unwrap();
    }
    // A snapshot never covers an unpublished outcome: publish those the one at 59 covers.
    let (_, published) = replay_from_scratch(&records, 59);
    append_all(
        logs.outcomes.as_ref(),
        published
            .iter()
            .flat_map(engine::wire::encode_outcome_frames)
            .collect(),
    );

    let runtime = Runtime::start(no_snapshots(), backend.logs(), Box::new(store.clone())).unwrap();
    assert_eq!(
        runtime
            .status()
            .last_snapshot
            .map(|snapshot| snapshot.offset),
        Some(59),
        "started from the snapshot that fits"
    );
    let status = wait_settled(&runtime.handle(), end);
    runtime.shutdown().unwrap();
    check_exactly_once(&backend, &status);

    // Only snapshots ahead of the log: the start stops, naming the offsets, rather than
    // replaying from 0.
    for offset in store.offsets() {
        if offset < 149 {
            store.remove(offset);
        }
    }
    assert_eq!(store.offsets(), [149]);
    // (The runtime may have appended ticks since.)
    let end = logs.requests.open_reader().unwrap().end_offset().unwrap();
    assert!(end <= 149, "{end}");
    match Runtime::start(options(), backend.logs(), Box::new(store.clone())) {
        Err(error @ RuntimeError::Snapshots(SnapshotError::AheadOfLog { .. })) => {
            let message = error.to_string();
            assert!(
                message.contains("offset 149") && message.contains(&format!("({end})")),
                "{message}"
            );
        }
        Err(other) => panic!("expected AheadOfLog, got {other}"),
        Ok(_) => panic!("started with only a snapshot ahead of the log"),
    }
}

#[test]
fn embedded_a_snapshot_ahead_of_the_log_falls_back_to_one_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    a_snapshot_ahead_of_the_log_falls_back(Backend::embedded(dir.path()));
}

#[test]
fn kafka_a_snapshot_ahead_of_the_log_falls_back_to_one_that_fits() {
    if let Some(backend) = Backend::kafka("ahead") {
        a_snapshot_ahead_of_the_log_falls_back(backend);
    }
}
