//! The configuration that decides outcomes is part of the history: a replica restarted
//! from a snapshot with another decision-relevant configuration (here the confirm grace,
//! and the ticket secret) refuses to start, naming the key, instead of panicking later on
//! a timer computed with the old value or silently deciding differently. With no snapshot
//! (a replay from offset 0), the primary's `Configure` record in the log stops it, naming
//! the key, before it applies anything with the other configuration.

use crate::common;

use common::*;
use engine::{Command, EngineConfig, Request, Selection};
use runtime::{Runtime, RuntimeError, RuntimeOptions};
use snapshotter::MemoryStore;

fn options(engine: EngineConfig) -> RuntimeOptions {
    RuntimeOptions {
        tick_interval_ms: 50,
        idle_ms: 5,
        idle_hash_every_ms: 0,
        snapshot_every_records: 1,
        snapshot_every_ms: 10,
        ..RuntimeOptions::new(engine)
    }
}

/// An event and a hold that is still live when the snapshot is taken.
fn append_event_and_hold(logs: &runtime::Logs) -> u64 {
    let writer = logs.requests.open_writer().unwrap();
    let records = vec![
        engine::wire::encode_request(&Request::new(Command::CreateEvent {
            tenant: "demo".into(),
            spec: Box::new(event_spec(3_600_000)),
        })),
        engine::wire::encode_request(&Request::new(Command::PlaceHold {
            user: "alice".into(),
            event: engine::EventId(0),
            selection: Selection::Best {
                quantity: 2,
                category: None,
                together: true,
            },
            wait: false,
        })),
    ];
    writer.append(records).unwrap();
    writer.end_offset().unwrap()
}

fn refused_with(changed: EngineConfig, key: &str) {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::embedded(dir.path());
    let logs = backend.logs();
    let store = MemoryStore::new(3);
    let runtime = Runtime::start(
        options(engine_config()),
        backend.logs(),
        Box::new(store.clone()),
    )
    .unwrap();
    let end = append_event_and_hold(&logs);
    let (status, snapshotted) = runtime.handle().wait_for(DEADLINE, |status| {
        status
            .last_snapshot
            .as_ref()
            .is_some_and(|snapshot| snapshot.offset + 1 >= end)
    });
    assert!(snapshotted, "a snapshot covering the hold: {status:?}");
    runtime.shutdown().unwrap();

    let error = match Runtime::start(options(changed), backend.logs(), Box::new(store.clone())) {
        Ok(_) => panic!("a replica with a changed {key} must not start"),
        Err(error) => error,
    };
    let message = error.to_string();
    assert!(
        matches!(error, RuntimeError::Snapshots(snapshotter::SnapshotError::ConfigMismatch { ref mismatch, .. }) if mismatch.key == key),
        "{message}"
    );
    assert!(message.contains(&format!("engine.{key}")), "{message}");

    // With the configuration the history was applied with, it starts and is exact.
    let runtime =
        Runtime::start(options(engine_config()), backend.logs(), Box::new(store)).unwrap();
    let status = wait_settled(&runtime.handle(), end);
    assert!(status.failure.is_none(), "{status:?}");
    runtime.shutdown().unwrap();
    check_exactly_once(&backend, &status);
}

#[test]
fn a_changed_grace_is_refused_naming_the_key() {
    refused_with(
        EngineConfig {
            confirm_grace_ms: engine_config().confirm_grace_ms + 10_000,
            ..engine_config()
        },
        "confirm_grace_ms",
    );
}

#[test]
fn a_rotated_ticket_secret_is_refused_naming_the_key() {
    refused_with(
        EngineConfig {
            ticket_secret: b"another-secret".to_vec(),
            ..engine_config()
        },
        "ticket_secret",
    );
}

/// A primary records its configuration in the log; a replica with another one that
/// replays from offset 0 (no snapshot at all) stops at that record, naming the key, and
/// publishes nothing it decided with the other configuration. The offline replay stops
/// there too.
#[test]
fn a_changed_grace_stops_a_replay_from_offset_0_at_the_logged_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::embedded(dir.path());
    let logs = backend.logs();
    let runtime = Runtime::start(
        options(engine_config()),
        backend.logs(),
        Box::new(MemoryStore::new(3)),
    )
    .unwrap();
    let end = append_event_and_hold(&logs);
    // The ticker appends the `Configure` record once this primary has caught up.
    let (status, configured) = runtime.handle().wait_for(DEADLINE, |status| {
        status.log_end_offset > end && status.caught_up() && status.published_all()
    });
    assert!(configured, "the Configure record applied: {status:?}");
    runtime.shutdown().unwrap();
    let requests = read_all(logs.requests.as_ref());
    let configure_offsets: Vec<u64> = requests
        .iter()
        .filter(|record| {
            matches!(
                engine::wire::decode_request(&record.payload).map(|request| request.command),
                Ok(Command::Configure { .. })
            )
        })
        .map(|record| record.offset)
        .collect();
    assert_eq!(configure_offsets.len(), 1, "one per primary term");
    let configure_offset = configure_offsets[0];
    let published_before = read_all(logs.outcomes.as_ref()).len();

    let changed = EngineConfig {
        confirm_grace_ms: engine_config().confirm_grace_ms + 10_000,
        ..engine_config()
    };
    // A fresh store: nothing to restore, so the replica replays the log from offset 0.
    let runtime = Runtime::start(
        options(changed.clone()),
        backend.logs(),
        Box::new(MemoryStore::new(3)),
    )
    .unwrap();
    let (status, stopped) = runtime
        .handle()
        .wait_for(DEADLINE, |status| status.failure.is_some());
    assert!(stopped, "{status:?}");
    let failure = status.failure.clone().unwrap();
    assert!(
        failure.contains("engine.confirm_grace_ms")
            && failure.contains(&format!("offset {configure_offset}")),
        "{failure}"
    );
    assert_eq!(
        status.applied_offset,
        configure_offset.checked_sub(1),
        "stopped before the record"
    );
    let _ = runtime.shutdown();
    assert_eq!(
        read_all(logs.outcomes.as_ref()).len(),
        published_before,
        "nothing republished or added"
    );

    let mut engine = engine::Engine::new(changed);
    let mut reader = logs.requests.open_reader().unwrap();
    let error = runtime::replay(&mut engine, reader.as_mut(), None, 64, &mut |_| {}).unwrap_err();
    assert!(
        matches!(error, RuntimeError::ConfigMismatch { offset, ref mismatch } if offset == configure_offset && mismatch.key == "confirm_grace_ms"),
        "{error}"
    );

    // With the configuration the log was applied with, the same replay goes through it.
    let mut engine = engine::Engine::new(engine_config());
    let mut reader = logs.requests.open_reader().unwrap();
    let summary = runtime::replay(&mut engine, reader.as_mut(), None, 64, &mut |_| {}).unwrap();
    assert_eq!(summary.applied_offset, Some(requests.len() as u64 - 1));
}
