//! Ingress restart time (BENCHMARKS.md, "Ingress restart"): fills an embedded outcomes log
//! with the outcomes of `OUTCOMES` commands of the standard mix (every command but ticks
//! carries an Idempotency-Key, so the idempotency index fills too), then times an ingress
//! from start to ready (caught up with the outcomes log):
//! 1. with no snapshot: the read model and the index are rebuilt from offset 0 (the
//!    follower takes its periodic snapshots meanwhile, as in production); its last
//!    snapshot is written as it stops;
//! 2. after `TAIL` more outcomes, resumed from that snapshot: it reads only the tail.
//!
//! Run in release:
//! `cargo run --release -p boxoffice-benches --bin ingress_restart -- OUTCOMES DIR [TAIL]`
//! (`DIR` is emptied first).

use boxoffice_benches::{memory_kib, Generator, Kind, Venues, START_MS};
use engine::{Engine, EngineConfig};
use ingress::{Ingress, IngressConfig};
use requestlog::{EmbeddedLog, EmbeddedOptions, LogWriter};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Outcome frames per append (the embedded log's default `append_records_max`).
const APPEND_RECORDS_MAX: usize = 4096;

struct Filler {
    engine: Engine,
    generator: Generator,
    next_offset: u64,
}

impl Filler {
    fn new(outcomes: &EmbeddedLog) -> Filler {
        let venues = Venues::standard();
        let mut engine = Engine::new(EngineConfig::default());
        let mut frames = Vec::new();
        for (offset, request) in (0..).zip(venues.setup()) {
            let outcome = engine.apply(offset, START_MS, &request);
            let outcome = engine.named(outcome);
            frames.extend(engine::wire::encode_outcome_frames(&outcome));
        }
        let next_offset = engine.applied_offset().map_or(0, |applied| applied + 1);
        append(outcomes, frames);
        Filler {
            engine,
            generator: Generator::new(&venues, 42),
            next_offset,
        }
    }

    /// Applies `count` more commands and appends their outcomes.
    fn fill(&mut self, outcomes: &EmbeddedLog, count: u64) {
        let mut frames = Vec::with_capacity(APPEND_RECORDS_MAX);
        for _ in 0..count {
            let mut record = self.generator.next_record();
            if record.kind != Kind::Tick {
                record.request.idempotency_key = Some(format!("k{}", self.next_offset));
            }
            let outcome = self
                .engine
                .apply(self.next_offset, record.time_ms, &record.request);
            let outcome = self.engine.named(outcome);
            self.generator.observe(&outcome);
            frames.extend(engine::wire::encode_outcome_frames(&outcome));
            self.next_offset += 1;
            if frames.len() >= APPEND_RECORDS_MAX {
                append(outcomes, std::mem::take(&mut frames));
            }
            if self.next_offset.is_multiple_of(1_000_000) {
                eprintln!("filled {} outcomes", self.next_offset);
            }
        }
        append(outcomes, frames);
    }
}

fn append(outcomes: &EmbeddedLog, frames: Vec<Vec<u8>>) {
    for chunk in frames.chunks(APPEND_RECORDS_MAX) {
        outcomes
            .writer()
            .append(chunk.to_vec())
            .expect("appending outcomes");
    }
}

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Starts an ingress resuming from `state_dir` and waits until it is ready; stops it
/// (writing its last snapshot) and reports.
fn time_start(label: &str, requests: &EmbeddedLog, outcomes: &EmbeddedLog, state_dir: &Path) {
    let config = IngressConfig {
        state_dir: Some(state_dir.to_path_buf()),
        ..IngressConfig::default()
    };
    let started = Instant::now();
    let ingress = Ingress::start_resuming(
        config,
        Arc::new(requests.writer()),
        Box::new(outcomes.reader()),
        outcomes.log_id(),
        None,
    )
    .expect("starting the ingress");
    let loaded = started.elapsed();
    let state = ingress.state();
    while !state.caught_up() {
        // A benchmark's progress poll, not synchronisation.
        std::thread::sleep(Duration::from_millis(5));
    }
    let ready = started.elapsed();
    let (rss_kib, hwm_kib) = memory_kib().unwrap_or_default();
    let (resumed_from, read) = (state.resumed_from(), state.outcomes_read());
    drop(state);
    let stopping = Instant::now();
    let snapshot = ingress.stop();
    println!(
        "{label}: ready in {:.3} s (snapshot loaded and log positioned in {:.3} s), resumed from {resumed_from:?}, {read} outcomes read; VmRSS {} MiB, VmHWM {} MiB; stop (last snapshot at {snapshot:?}) {:.3} s; state directory {} MiB",
        ready.as_secs_f64(),
        loaded.as_secs_f64(),
        rss_kib / 1024,
        hwm_kib / 1024,
        stopping.elapsed().as_secs_f64(),
        dir_bytes(state_dir) >> 20,
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let outcomes_count: u64 = args
        .next()
        .and_then(|count| count.parse().ok())
        .expect("usage: ingress_restart OUTCOMES DIR [TAIL]");
    let dir = std::path::PathBuf::from(
        args.next()
            .expect("usage: ingress_restart OUTCOMES DIR [TAIL]"),
    );
    let tail: u64 = args
        .next()
        .map_or(10_000, |tail| tail.parse().expect("TAIL"));
    let _ = std::fs::remove_dir_all(&dir);
    let requests = EmbeddedLog::open(dir.join("requests"), EmbeddedOptions::default())
        .expect("opening the requests log");
    let outcomes = EmbeddedLog::open(dir.join("outcomes"), EmbeddedOptions::default())
        .expect("opening the outcomes log");
    let started = Instant::now();
    let mut filler = Filler::new(&outcomes);
    filler.fill(&outcomes, outcomes_count);
    println!(
        "filled {} outcomes ({} records) in {:.1} s; outcomes log {} MiB",
        filler.next_offset,
        outcomes.end_offset(),
        started.elapsed().as_secs_f64(),
        dir_bytes(&dir.join("outcomes")) >> 20
    );
    let state_dir = dir.join("ingress");
    time_start(
        "no snapshot (rebuilt from offset 0)",
        &requests,
        &outcomes,
        &state_dir,
    );
    filler.fill(&outcomes, tail);
    time_start(
        &format!("from its snapshot, {tail} outcomes after it"),
        &requests,
        &outcomes,
        &state_dir,
    );
}
