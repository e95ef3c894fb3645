//! Both stores against the same table of faults: whatever goes wrong with the newest
//! snapshot, loading falls back to the previous one, then to none, and a corrupt snapshot
//! never loads.

use engine::{
    CategorySpec, Command, Engine, EngineConfig, EventId, EventSpec, Request, RowSpec, SectionSpec,
    Selection, WaitlistPolicy,
};
use snapshotter::{
    load_newest, verify, CurrentLog, MemoryStore, RocksStore, RocksStoreOptions, Snapshot,
    SnapshotError, SnapshotStore,
};
use std::path::Path;
use std::sync::OnceLock;

/// The log every snapshot of these tests was taken from.
const LOG_ID: &str = "embedded:00000000000000000000000000000001";

/// The log the snapshots are loaded against: `LOG_ID`, long enough for all of them.
fn current_log() -> CurrentLog {
    CurrentLog {
        log_id: LOG_ID.into(),
        end_offset: 100,
    }
}

fn config() -> EngineConfig {
    EngineConfig::default()
}

fn event_spec() -> EventSpec {
    EventSpec {
        name: "Show".into(),
        description: String::new(),
        city: "Lyon".into(),
        country: "FR".into(),
        venue: "Hall".into(),
        starts_at_ms: 10_000_000,
        ends_at_ms: None,
        sales_open_at_ms: None,
        sales_close_at_ms: None,
        hold_ttl_ms: 60_000,
        seats_per_order_max: 10,
        seats_per_user_max: None,
        waitlist_policy: WaitlistPolicy::Strict,
        categories: vec![CategorySpec {
            name: "Standard".into(),
            price_cents: 5_000,
        }],
        sections: vec![SectionSpec {
            name: "A".into(),
            rows: (1..=20)
                .map(|row| RowSpec {
                    label: row.to_string(),
                    seats: 30,
                    category: "Standard".into(),
                })
                .collect(),
        }],
        general_admission: vec![],
    }
}

/// An engine that has applied records `0..=last`, and the hash after each record.
fn engine_through(last: u64) -> (Engine, Vec<[u8; 32]>) {
    let mut engine = Engine::new(config());
    let mut hashes = Vec::new();
    for offset in 0..=last {
        let command = if offset == 0 {
            Command::CreateEvent {
                tenant: "demo".into(),
                spec: Box::new(event_spec()),
            }
        } else {
            Command::PlaceHold {
                user: format!("u{offset}").into(),
                event: EventId(0),
                selection: Selection::Best {
                    quantity: 2,
                    category: None,
                    together: true,
                },
                wait: false,
            }
        };
        engine.apply(offset, 1_000 + offset, &Request::new(command));
        hashes.push(engine.state_hash());
    }
    (engine, hashes)
}

/// Snapshots at offsets 10, 20 and 30, and the true hash after every offset through 30
/// (computed once: the fault tables write them many times).
fn three_snapshots() -> &'static (Vec<Snapshot>, Vec<[u8; 32]>) {
    static SNAPSHOTS: OnceLock<(Vec<Snapshot>, Vec<[u8; 32]>)> = OnceLock::new();
    SNAPSHOTS.get_or_init(|| {
        let (_, hashes) = engine_through(30);
        let snapshots = [10, 20, 30]
            .map(|offset| {
                Snapshot::of_state(
                    engine_through(offset).0.state(),
                    1_700_000_000_000 + offset,
                    LOG_ID,
                )
            })
            .to_vec();
        (snapshots, hashes)
    })
}

/// Writes the snapshots at offsets 10, 20 and 30 and returns the expected hashes.
fn write_three(store: &mut dyn SnapshotStore) -> Vec<[u8; 32]> {
    let (snapshots, hashes) = three_snapshots();
    for snapshot in snapshots {
        let info = store.write(snapshot).unwrap();
        assert_eq!(info.state_hash, hashes[snapshot.offset as usize]);
    }
    hashes.clone()
}

/// Loads and returns the offset that loaded (None: replay from 0), after checking the
/// loaded engine's hash is the true hash at that offset.
fn loaded_offset(store: &dyn SnapshotStore, hashes: &[[u8; 32]]) -> Option<u64> {
    let recovery = load_newest(store, &config(), &current_log()).unwrap();
    let loaded = recovery.loaded?;
    let offset = loaded.info.offset;
    assert_eq!(loaded.engine.applied_offset(), Some(offset));
    assert_eq!(loaded.engine.state_hash(), hashes[offset as usize]);
    loaded.engine.check_invariants();
    Some(offset)
}

#[test]
fn memory_store_faults_fall_back_to_older_snapshots() {
    type Fault = fn(&MemoryStore);
    let cases: &[(&str, Fault, Option<u64>)] = &[
        ("intact", |_| {}, Some(30)),
        (
            "flipped state byte at the start",
            |store| store.corrupt_last_write(0),
            Some(20),
        ),
        (
            "flipped state byte in the middle",
            |store| store.corrupt_last_write(5_000),
            Some(20),
        ),
        (
            "flipped state byte at the end",
            |store| store.corrupt_last_write(usize::MAX),
            Some(20),
        ),
        (
            "flipped header byte",
            |store| store.corrupt_last_meta(30),
            Some(20),
        ),
        ("torn to half", |store| store.tear_last_write(100), Some(20)),
        (
            "torn to nothing",
            |store| store.tear_last_write(0),
            Some(20),
        ),
        ("newest missing", |store| store.remove(30), Some(20)),
        (
            "two newest missing",
            |store| {
                store.remove(30);
                store.remove(20);
            },
            Some(10),
        ),
        (
            "newest missing, next corrupt",
            |store| {
                store.corrupt_last_write(77);
                store.remove(20);
            },
            Some(10),
        ),
        (
            "all missing",
            |store| {
                for offset in [10, 20, 30] {
                    store.remove(offset);
                }
            },
            None,
        ),
    ];
    for (name, fault, expected) in cases {
        let mut store = MemoryStore::new(3);
        let hashes = write_three(&mut store);
        fault(&store);
        assert_eq!(loaded_offset(&store, &hashes), *expected, "{name}");
    }
}

#[test]
fn a_corrupt_snapshot_never_loads() {
    let mut store = MemoryStore::new(3);
    let hashes = write_three(&mut store);
    let state_bytes = store.read(30).unwrap().state.len();
    // Every byte of the newest snapshot, one at a time.
    for position in 0..state_bytes {
        let mut store = MemoryStore::new(3);
        write_three(&mut store);
        store.corrupt_last_write(position);
        assert_eq!(loaded_offset(&store, &hashes), Some(20), "byte {position}");
    }
    // Every truncation.
    for len in (0..state_bytes).step_by(7) {
        let mut store = MemoryStore::new(3);
        write_three(&mut store);
        store.tear_last_write(len);
        assert_eq!(loaded_offset(&store, &hashes), Some(20), "torn to {len}");
    }
}

#[test]
fn intact_bytes_with_the_wrong_state_hash_do_not_load() {
    let mut store = MemoryStore::new(3);
    let hashes = write_three(&mut store);
    // A state from offset 20 filed as offset 30 with 30's hash: checksums are right, the
    // rebuilt hash or offset is not.
    let (engine_20, _) = engine_through(20);
    let mut forged = Snapshot::of_state(engine_20.state(), 1, LOG_ID);
    forged.offset = 30;
    forged.state_hash = hashes[30];
    store.write(&forged).unwrap();
    assert!(matches!(
        verify(&store, 30, &config()),
        Err(SnapshotError::Corrupt { .. })
    ));
    assert_eq!(loaded_offset(&store, &hashes), Some(20));
    // The right state with a wrong hash.
    let (engine_30, _) = engine_through(30);
    let mut wrong_hash = Snapshot::of_state(engine_30.state(), 1, LOG_ID);
    wrong_hash.state_hash[0] ^= 1;
    store.write(&wrong_hash).unwrap();
    let error = verify(&store, 30, &config()).err().expect("rejected");
    assert!(error.to_string().contains("hashes to"), "{error}");
    assert_eq!(loaded_offset(&store, &hashes), Some(20));
}

#[test]
fn a_snapshot_encoded_into_a_used_buffer_equals_a_fresh_one() {
    let (engine_30, _) = engine_through(30);
    let (engine_20, _) = engine_through(20);
    // The larger state's bytes first: what the snapshot thread would hand back.
    let used = Snapshot::of_state(engine_30.state(), 1, LOG_ID).state;
    let capacity = used.capacity();
    let reused = Snapshot::of_state_in(engine_20.state(), 2, LOG_ID, used);
    let fresh = Snapshot::of_state(engine_20.state(), 2, LOG_ID);
    assert_eq!(reused, fresh);
    assert_eq!(reused.state_hash, engine_20.state_hash());
    assert!(
        reused.state.len() < capacity,
        "the larger state's bytes were cleared"
    );
    assert_eq!(reused.state.capacity(), capacity, "its capacity was reused");
}

#[test]
fn a_failed_write_changes_nothing_and_only_the_newest_are_kept() {
    let mut store = MemoryStore::new(2);
    let hashes = write_three(&mut store);
    assert_eq!(store.offsets(), [20, 30]);
    store.fail_after_writes(0);
    let (engine, _) = engine_through(31);
    assert!(matches!(
        store.write(&Snapshot::of_state(engine.state(), 1, LOG_ID)),
        Err(SnapshotError::Injected(_))
    ));
    assert_eq!(store.offsets(), [20, 30]);
    assert_eq!(loaded_offset(&store, &hashes), Some(30));
}

fn rocks(dir: &Path, keep: usize) -> RocksStore {
    // Small chunks, so a snapshot spans several values.
    RocksStore::open(
        dir,
        RocksStoreOptions {
            keep,
            chunk_bytes: 1024,
        },
    )
    .unwrap()
}

/// Changes the raw database of a closed store.
fn with_raw_db(dir: &Path, change: impl FnOnce(&rocksdb::DB)) {
    let db = rocksdb::DB::open_default(dir).unwrap();
    change(&db);
    db.flush().unwrap();
}

fn meta_key(offset: u64) -> Vec<u8> {
    [&[b'm'][..], &offset.to_be_bytes()].concat()
}

fn data_key(offset: u64, chunk: u32) -> Vec<u8> {
    [&[b'd'][..], &offset.to_be_bytes(), &chunk.to_be_bytes()].concat()
}

#[test]
fn rocks_store_faults_fall_back_to_older_snapshots() {
    type Fault = fn(&rocksdb::DB);
    let cases: &[(&str, Fault, Option<u64>)] = &[
        ("intact", |_| {}, Some(30)),
        (
            "flipped byte in the first chunk",
            |db| {
                let mut value = db.get(data_key(30, 0)).unwrap().unwrap();
                value[3] ^= 0x80;
                db.put(data_key(30, 0), value).unwrap();
            },
            Some(20),
        ),
        (
            "flipped byte in the last chunk",
            |db| {
                let mut chunk = 0;
                while db.get(data_key(30, chunk + 1)).unwrap().is_some() {
                    chunk += 1;
                }
                let mut value = db.get(data_key(30, chunk)).unwrap().unwrap();
                let last = value.len() - 1;
                value[last] ^= 0x01;
                db.put(data_key(30, chunk), value).unwrap();
            },
            Some(20),
        ),
        (
            "flipped header byte",
            |db| {
                let mut value = db.get(meta_key(30)).unwrap().unwrap();
                value[40] ^= 0x01;
                db.put(meta_key(30), value).unwrap();
            },
            Some(20),
        ),
        (
            "truncated chunk",
            |db| {
                let value = db.get(data_key(30, 1)).unwrap().unwrap();
                db.put(data_key(30, 1), &value[..value.len() / 2]).unwrap();
            },
            Some(20),
        ),
        (
            "missing middle chunk",
            |db| db.delete(data_key(30, 1)).unwrap(),
            Some(20),
        ),
        (
            "missing last chunks",
            |db| {
                for chunk in 2..100 {
                    db.delete(data_key(30, chunk)).unwrap();
                }
            },
            Some(20),
        ),
        (
            "missing newest header",
            |db| db.delete(meta_key(30)).unwrap(),
            Some(20),
        ),
        (
            "newest and next corrupt",
            |db| {
                db.delete(meta_key(30)).unwrap();
                db.put(meta_key(20), b"garbage").unwrap();
            },
            Some(10),
        ),
        (
            "everything corrupt",
            |db| {
                for offset in [10, 20, 30] {
                    db.delete(data_key(offset, 0)).unwrap();
                }
            },
            None,
        ),
    ];
    for (name, fault, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let hashes = write_three(&mut rocks(dir.path(), 3));
        with_raw_db(dir.path(), fault);
        let store = rocks(dir.path(), 3);
        assert_eq!(loaded_offset(&store, &hashes), *expected, "{name}");
    }
}

#[test]
fn rocks_store_survives_reopening_and_keeps_only_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let hashes = write_three(&mut rocks(dir.path(), 2));
    let mut store = rocks(dir.path(), 2);
    let listed: Vec<u64> = store
        .list()
        .unwrap()
        .iter()
        .map(|listed| listed.offset)
        .collect();
    assert_eq!(listed, [30, 20]);
    assert!(matches!(
        store.read(10),
        Err(SnapshotError::NotFound { offset: 10 })
    ));
    // No chunk of the pruned snapshot is left behind.
    drop(store);
    with_raw_db(dir.path(), |db| {
        assert!(db.get(data_key(10, 0)).unwrap().is_none())
    });
    store = rocks(dir.path(), 2);
    // Rewriting an offset replaces it whole.
    let (engine, _) = engine_through(30);
    store
        .write(&Snapshot::of_state(engine.state(), 5, LOG_ID))
        .unwrap();
    assert_eq!(store.read(30).unwrap().created_at_ms, 5);
    assert_eq!(loaded_offset(&store, &hashes), Some(30));
}

/// What loading the three snapshots (10, 20, 30) against `log` gives: the offset loaded
/// (`None`: replay from 0), or the error's text.
fn load_against(
    store: &dyn SnapshotStore,
    log_id: &str,
    end_offset: u64,
) -> Result<Option<u64>, String> {
    let log = CurrentLog {
        log_id: log_id.into(),
        end_offset,
    };
    match load_newest(store, &config(), &log) {
        Ok(recovery) => Ok(recovery.loaded.map(|loaded| loaded.info.offset)),
        Err(error) => Err(error.to_string()),
    }
}

#[test]
fn a_snapshot_ahead_of_the_log_falls_back_to_an_older_one_that_fits() {
    let mut store = MemoryStore::new(3);
    write_three(&mut store);
    // A snapshot at offset N fits a log whose end is past N (it holds records 0..=N).
    let cases: &[(u64, Result<Option<u64>, &str>)] = &[
        (100, Ok(Some(30))),
        (31, Ok(Some(30))),
        (30, Ok(Some(20))),
        (21, Ok(Some(20))),
        (20, Ok(Some(10))),
        (11, Ok(Some(10))),
        (
            10,
            Err("the snapshot at offset 30 covers records past the requests log's end (10)"),
        ),
        (
            0,
            Err("the snapshot at offset 30 covers records past the requests log's end (0)"),
        ),
    ];
    for (end_offset, expected) in cases {
        let loaded = load_against(&store, LOG_ID, *end_offset);
        match (&loaded, expected) {
            (Ok(offset), Ok(expected)) => assert_eq!(offset, expected, "end {end_offset}"),
            (Err(error), Err(expected)) => {
                assert!(error.contains(expected), "end {end_offset}: {error}")
            }
            _ => panic!("end {end_offset}: {loaded:?}, expected {expected:?}"),
        }
    }
    // The one that would fit is damaged: the next older one loads; with none left, the
    // load stops rather than replaying from 0.
    store.corrupt_last_meta(3); // 30, which does not fit anyway
    store.remove(20);
    assert_eq!(load_against(&store, LOG_ID, 25), Ok(Some(10)));
    store.remove(10);
    let error = load_against(&store, LOG_ID, 25).unwrap_err();
    assert!(error.contains("no older snapshot fits"), "{error}");
}

#[test]
fn a_snapshot_from_another_log_is_refused_naming_both_logs() {
    let other = "kafka:cluster-b/boxoffice.requests";
    let mut store = MemoryStore::new(3);
    write_three(&mut store);
    let error = load_against(&store, other, 100).unwrap_err();
    assert!(
        error.contains("snapshot at offset 30") && error.contains(LOG_ID) && error.contains(other),
        "{error}"
    );
    // Not skipped in favour of an older snapshot, nor of a replay from 0, even when the
    // newest would not fit the other log either.
    let error = load_against(&store, other, 0).unwrap_err();
    assert!(error.contains(other), "{error}");
    // The same from RocksDB: the log id survives the round trip.
    let dir = tempfile::tempdir().unwrap();
    write_three(&mut rocks(dir.path(), 3));
    let store = rocks(dir.path(), 3);
    let listed = store.list().unwrap();
    assert_eq!(
        listed[0].info.as_ref().unwrap().log_id.as_deref(),
        Some(LOG_ID)
    );
    assert_eq!(store.read(20).unwrap().log_id.as_deref(), Some(LOG_ID));
    assert_eq!(load_against(&store, LOG_ID, 100), Ok(Some(30)));
    assert!(load_against(&store, other, 100)
        .unwrap_err()
        .contains(other));
}

#[test]
fn a_snapshot_written_before_snapshots_had_a_log_id_still_loads() {
    let (snapshots, hashes) = three_snapshots();
    let mut store = MemoryStore::new(3);
    for snapshot in snapshots {
        let old = Snapshot {
            log_id: None,
            ..snapshot.clone()
        };
        store.write(&old).unwrap();
    }
    let listed = store.list().unwrap();
    let info = listed[0].info.as_ref().unwrap();
    assert_eq!((info.format_version, info.log_id.as_deref()), (1, None));
    assert_eq!(load_against(&store, "embedded:any", 100), Ok(Some(30)));
    assert_eq!(load_against(&store, "embedded:any", 25), Ok(Some(20)));
    // The next snapshot records its log; from then on another log is refused.
    let (engine, _) = engine_through(30);
    store
        .write(&Snapshot::of_state(engine.state(), 9, LOG_ID))
        .unwrap();
    assert_eq!(loaded_offset(&store, hashes), Some(30));
    assert!(load_against(&store, "embedded:any", 100).is_err());
}
