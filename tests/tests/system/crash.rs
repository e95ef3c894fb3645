//! Crash tests: the engine runs in a child process (this test binary, re-executed with
//! `CRASH_CHILD` set) that appends a seeded workload and runs the runtime, snapshotting
//! often. The parent kills it with SIGKILL at seeded points, during apply or right as a
//! snapshot write begins, restarts it, and kills it again. Finally it recovers in-process
//! and checks that every acknowledged record has exactly one outcome, that the published
//! outcomes equal a from-scratch replay's, and that the state hash equals the replay's.

use crate::common;

use common::*;
use runtime::{Runtime, RuntimeOptions};
use snapshotter::{
    RocksStore, RocksStoreOptions, Snapshot, SnapshotError, SnapshotInfo, SnapshotStore,
};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "CRASH_CHILD";
const SEED_ENV: &str = "CRASH_SEED";
const LINE_PREFIX: &str = "CRASH-CHILD ";
/// The child stops appending after this many records (a bound, not a target: it is killed
/// long before).
const CHILD_RECORDS_MAX: u64 = 50_000;

fn child_options() -> RuntimeOptions {
    RuntimeOptions {
        tick_interval_ms: 20,
        idle_ms: 5,
        snapshot_every_records: 40,
        snapshot_every_ms: 30,
        ..RuntimeOptions::new(engine_config())
    }
}

fn snapshot_dir(backend: &Backend, scratch: &std::path::Path) -> std::path::PathBuf {
    match backend {
        Backend::Embedded { dir, .. } => dir.join("snapshots"),
        Backend::Kafka { .. } => scratch.join("snapshots"),
    }
}

fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{LINE_PREFIX}{line}").unwrap();
    stdout.flush().unwrap();
}

/// Announces each snapshot write on stdout, so the parent can kill the child mid-write.
struct AnnouncingStore(RocksStore);

impl SnapshotStore for AnnouncingStore {
    fn write(&mut self, snapshot: &Snapshot) -> Result<SnapshotInfo, SnapshotError> {
        say(&format!("snapshot-begin {}", snapshot.offset));
        let info = self.0.write(snapshot)?;
        say(&format!("snapshot-end {}", snapshot.offset));
        Ok(info)
    }

    fn list(&self) -> Result<Vec<snapshotter::Listed>, SnapshotError> {
        self.0.list()
    }

    fn read(&self, offset: u64) -> Result<Snapshot, SnapshotError> {
        self.0.read(offset)
    }
}

/// The child's body: runs until killed. Not a test on its own (it returns at once unless
/// the parent set `CRASH_CHILD`).
#[test]
fn crash_child() {
    let Ok(backend) = std::env::var(CHILD_ENV) else {
        return;
    };
    let backend = Backend::from_env(&backend);
    let scratch = std::path::PathBuf::from(std::env::var("CRASH_SCRATCH").unwrap());
    let seed: u64 = std::env::var(SEED_ENV).unwrap().parse().unwrap();
    let store = RocksStore::open(
        snapshot_dir(&backend, &scratch),
        RocksStoreOptions {
            keep: 2,
            chunk_bytes: 2048,
        },
    )
    .unwrap();
    let logs = backend.logs();
    let writer = logs.requests.open_writer().unwrap();
    // The requests log is open and recovered and nothing of this run is written yet: all
    // its newest record file holds is durable (written back synced, or synced at the
    // open). What the log writes to it from here on is unsynced (the journal is synced
    // instead): a crash of the machine may lose any tail of it (`Crash::Machine` below).
    if let Backend::Embedded { dir, .. } = &backend {
        let (file, bytes) = newest_record_file(&dir.join("requests"));
        say(&format!("records {} {bytes}", file.display()));
    }
    let runtime = Runtime::start(
        child_options(),
        backend.logs(),
        Box::new(AnnouncingStore(store)),
    )
    .unwrap();
    let status = runtime.status();
    let snapshot = status
        .last_snapshot
        .as_ref()
        .map(|snapshot| snapshot.offset);
    say(&format!(
        "started snapshot={snapshot:?} published={:?} log_end={}",
        status.published_offset, status.log_end_offset
    ));
    // Continue the workload where the log ends: record i is always workload_record(seed, i).
    let mut next = writer.end_offset().unwrap();
    let mut rng = Rng::new(seed ^ next);
    while next < CHILD_RECORDS_MAX {
        let size = 1 + rng.below(8);
        let payloads = (next..next + size)
            .map(|index| workload_record(seed, index, 2_000))
            .collect();
        let appended = writer.append(payloads).unwrap();
        let (first, last) = (appended[0].offset, appended.last().unwrap().offset);
        say(&format!("acked {first} {last}"));
        next += size;
    }
    // Not reached in the tests: the parent kills the child well before.
    loop {
        std::thread::park();
    }
}

/// The newest record file of an embedded log's directory (`requestlog`'s segment files)
/// and its size; the first one's name and 0 when there is none yet.
fn newest_record_file(dir: &std::path::Path) -> (std::path::PathBuf, u64) {
    let segments = dir.join("segments");
    let newest = std::fs::read_dir(&segments)
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.extension().is_some_and(|extension| extension == "seg"))
                .max()
        })
        .unwrap_or(None);
    match newest {
        Some(path) => {
            let bytes = std::fs::metadata(&path).unwrap().len();
            (path, bytes)
        }
        None => (segments.join(format!("{:020}.seg", 0)), 0),
    }
}

/// What the parent learnt from one child's stdout.
#[derive(Default)]
struct ChildReport {
    acked: BTreeSet<u64>,
    /// The requests log's write-ahead log file, and its durable size when the run began.
    records: Option<(std::path::PathBuf, u64)>,
    /// How each run started: which snapshot it loaded, what was already published.
    starts: Vec<String>,
    snapshots_begun: u64,
}

enum KillPoint {
    /// After this many more records are acknowledged: mid-stream, the engine applying.
    AfterAcks(u64),
    /// As the n-th snapshot write of this run begins.
    AtSnapshot(u64),
}

fn run_child_until_killed(
    backend: &Backend,
    scratch: &std::path::Path,
    seed: u64,
    kill: &KillPoint,
) -> ChildReport {
    // `crash_child`'s path in the system tests' executable: `--exact` runs it alone.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash::crash_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, backend.to_env())
        .env("CRASH_SCRATCH", scratch)
        .env(SEED_ENV, seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut report = ChildReport::default();
    let mut killed = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        // libtest may print "test crash::crash_child ... " in front of the first line.
        let Some((_, event)) = line.split_once(LINE_PREFIX) else {
            continue;
        };
        let words: Vec<&str> = event.split(' ').collect();
        match words.as_slice() {
            ["acked", first, last] => report
                .acked
                .extend(first.parse::<u64>().unwrap()..=last.parse::<u64>().unwrap()),
            ["snapshot-begin", _] => report.snapshots_begun += 1,
            ["records", path, bytes] => {
                report.records = Some((path.into(), bytes.parse().unwrap()));
            }
            ["started", ..] => report.starts.push(event.to_string()),
            _ => {}
        }
        let due = match kill {
            KillPoint::AfterAcks(count) => report.acked.len() as u64 >= *count,
            KillPoint::AtSnapshot(count) => report.snapshots_begun >= *count,
        };
        if due {
            child.kill().unwrap(); // SIGKILL
            killed = true;
            break;
        }
    }
    assert!(killed, "the child ended by itself: {:?}", child.wait());
    // Acks the child printed before it died still count.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(["acked", first, last]) = line
            .split_once(LINE_PREFIX)
            .map(|(_, event)| event.split(' ').collect::<Vec<_>>())
            .as_deref()
        {
            report
                .acked
                .extend(first.parse::<u64>().unwrap()..=last.parse::<u64>().unwrap());
        }
    }
    child.wait().unwrap();
    report
}

/// What a kill does to the requests log's write-ahead log.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// The process dies; the operating system keeps what it was given.
    Process,
    /// The machine dies: a seeded tail of what the requests log wrote unsynced to its
    /// newest record file since the run began is lost (cut anywhere, mid-record too).
    Machine,
}

fn crash_and_recover(backend: Backend, scratch: &std::path::Path, seed: u64, crash: Crash) {
    let mut rng = Rng::new(seed);
    let mut acked = BTreeSet::new();
    let mut kills = Vec::new();
    let mut starts = Vec::new();
    for _ in 0..3 {
        let kill = match rng.below(2) {
            0 => KillPoint::AfterAcks(20 + rng.below(300)),
            _ => KillPoint::AtSnapshot(1 + rng.below(3)),
        };
        let report = run_child_until_killed(&backend, scratch, seed, &kill);
        kills.push(match kill {
            KillPoint::AfterAcks(count) => format!("after {count} acks"),
            KillPoint::AtSnapshot(count) => format!("at snapshot {count}"),
        });
        if crash == Crash::Machine {
            let (file, durable) = report
                .records
                .clone()
                .expect("an embedded child names its log");
            // A file made in this run may not exist yet: nothing was written to lose. What
            // the log synced during the run (leaving a half of its journal) is kept.
            let written = std::fs::metadata(&file).map_or(durable, |metadata| metadata.len());
            let durable = match requestlog::newest_record_file_synced(
                file.parent().and_then(std::path::Path::parent).unwrap(),
            )
            .unwrap()
            {
                Some((synced_file, synced)) if synced_file == file => durable.max(synced),
                _ => durable,
            };
            let kept = durable + rng.below(written - durable + 1);
            if written > durable {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&file)
                    .unwrap()
                    .set_len(kept)
                    .unwrap();
            }
            kills.push(format!(
                "lost {} of {} unsynced bytes",
                written - kept,
                written - durable
            ));
        }
        acked.extend(report.acked);
        starts.extend(report.starts);
    }
    // Recover in this process and check.
    let store = RocksStore::open(
        snapshot_dir(&backend, scratch),
        RocksStoreOptions {
            keep: 2,
            chunk_bytes: 2048,
        },
    )
    .unwrap();
    for listed in store.list().unwrap() {
        snapshotter::verify(&store, listed.offset, &engine_config()).unwrap_or_else(|error| {
            panic!(
                "seed {seed}: snapshot {} does not verify: {error}",
                listed.offset
            )
        });
    }
    let logs = backend.logs();
    let end = logs.requests.open_writer().unwrap().end_offset().unwrap();
    // No ticks while recovering here: a tick appended after the check's "settled" would have
    // no outcome yet when the log is read.
    let recovery_options = RuntimeOptions {
        tick_interval_ms: 3_600_000,
        ..child_options()
    };
    let runtime = Runtime::start(recovery_options, backend.logs(), Box::new(store)).unwrap();
    let status = wait_settled(&runtime.handle(), end);
    runtime.shutdown().unwrap();
    eprintln!(
        "seed {seed}: kills {kills:?}; starts {starts:?}; {} records acknowledged, log end {end}",
        acked.len()
    );
    assert!(
        acked.last().is_none_or(|last| *last < end),
        "seed {seed}: an acknowledged record is missing from the log"
    );
    check_exactly_once(&backend, &status);
    // Every acknowledged record is in the outcomes log (check_exactly_once covered all of
    // 0..end, and the acknowledged ones are below end).
    assert!(!acked.is_empty());
}

/// [`crash_and_recover`] on a fresh embedded deployment per seed.
fn crash_embedded(seeds: std::ops::RangeInclusive<u64>, crash: Crash) {
    for seed in seeds {
        let dir = tempfile::tempdir().unwrap();
        crash_and_recover(Backend::embedded(dir.path()), dir.path(), seed, crash);
    }
}

#[test]
fn embedded_engine_survives_kill_9() {
    crash_embedded(11..=16, Crash::Process);
}

/// A crash of the machine, not only of the process: after each kill the requests log's
/// newest record file loses a seeded tail of what was written to it unsynced in that run
/// (commits are made durable by the log's journal, not by syncing the record files).
/// Every acknowledged record must still be there, each with one outcome, the state hash a
/// replay's: opening the log writes back from the journal what the file lost.
#[test]
fn embedded_engine_survives_a_machine_crash_that_loses_the_record_files_unsynced_tail() {
    crash_embedded(31..=34, Crash::Machine);
}

#[test]
fn kafka_engine_survives_kill_9() {
    for seed in [21, 22] {
        let dir = tempfile::tempdir().unwrap();
        let Some(backend) = Backend::kafka(&format!("crash{seed}")) else {
            return;
        };
        crash_and_recover(backend, dir.path(), seed, Crash::Process);
    }
}
