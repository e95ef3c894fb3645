//! The configuration that decides outcomes is part of the history: a replica restarted
//! from a snapshot with another decision-relevant configuration (here the confirm grace,
//! and the ticket secret) refuses to start, naming the key, instead of panicking later on
//! a timer computed with the old value or silently deciding differently.

mod common;

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
            spec: event_spec(3_600_000),
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
