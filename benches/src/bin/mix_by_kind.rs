//! Where the standard mix's time goes, by kind of command: replays the log
//! `engine/standard_mix` replays (seed 42, 200,000 commands, users by id) on fresh engines,
//! timing each `Engine::apply` with a pair of `Instant`s, and prints per kind its share of
//! the commands, its mean time, its share of the time and how many were accepted.
//!
//! Run: `cargo run --release -p boxoffice-benches --bin mix_by_kind [ROUNDS]` (default 5
//! replays; each kind's figure is the median over the rounds). The pair of `Instant`s
//! around each command costs time of its own, measured around nothing and subtracted
//! (printed as `timer`); the untimed replay's commands/s is printed beside, so the sum can
//! be checked against it.

use boxoffice_benches::{median, record_in, replay, Kind, UserForm, Venues};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

const MIX_COMMANDS: usize = 200_000;
const SEED: u64 = 42;

#[derive(Default, Clone, Copy)]
struct Tally {
    count: u64,
    accepted: u64,
    ns: u64,
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|rounds| rounds.parse().expect("ROUNDS is a number"))
        .unwrap_or(5);
    assert!(rounds > 0, "at least one round");
    let venues = Venues::standard();
    let log = record_in(&venues, SEED, MIX_COMMANDS, UserForm::ById);

    // The cost of the timing itself: a pair of `Instant`s around nothing.
    let timer_ns = {
        let pairs = 1_000_000u32;
        let start = Instant::now();
        for _ in 0..pairs {
            let before = Instant::now();
            black_box(before.elapsed());
        }
        start.elapsed().as_nanos() as f64 / f64::from(pairs)
    };

    let mut untimed = Vec::new();
    let mut rounds_by_kind: Vec<BTreeMap<Kind, Tally>> = Vec::new();
    for _ in 0..rounds {
        let mut engine = venues.build();
        let start = Instant::now();
        black_box(replay(&mut engine, &log));
        untimed.push(log.len() as f64 / start.elapsed().as_secs_f64());
        drop(engine);

        let mut engine = venues.build();
        let mut by_kind = BTreeMap::<Kind, Tally>::new();
        let first_offset = engine.applied_offset().map_or(0, |applied| applied + 1);
        for (offset, record) in (first_offset..).zip(&log) {
            let before = Instant::now();
            let outcome = engine.apply(offset, record.time_ms, &record.request);
            let accepted = outcome.result.is_ok();
            drop(black_box(outcome));
            let ns = before.elapsed().as_nanos() as u64;
            let tally = by_kind.entry(record.kind).or_default();
            tally.count += 1;
            tally.accepted += u64::from(accepted);
            tally.ns += ns;
        }
        rounds_by_kind.push(by_kind);
    }

    let kinds: Vec<Kind> = rounds_by_kind[0].keys().copied().collect();
    let mean_ns = |kind: Kind| {
        median(
            &mut rounds_by_kind
                .iter()
                .map(|by_kind| {
                    let tally = by_kind[&kind];
                    (tally.ns as f64 / tally.count as f64 - timer_ns).max(0.0)
                })
                .collect::<Vec<_>>(),
        )
    };
    let total_ns: f64 = kinds
        .iter()
        .map(|kind| mean_ns(*kind) * rounds_by_kind[0][kind].count as f64)
        .sum();
    let commands = log.len() as f64;
    println!(
        "standard mix, {} commands, seed {SEED}, users by id; median of {rounds} rounds",
        log.len()
    );
    println!(
        "untimed replay: {:.2} M commands/s; timed, less the timer ({timer_ns:.1} ns a pair): {:.2} M commands/s ({:.0} ns per command)",
        median(&mut untimed) / 1e6,
        commands / total_ns * 1e3,
        total_ns / commands
    );
    println!();
    println!("| kind | share of commands | accepted | mean ns | share of time |");
    println!("|---|---|---|---|---|");
    let mut rows: Vec<(Kind, f64)> = kinds.iter().map(|kind| (*kind, mean_ns(*kind))).collect();
    rows.sort_by(|a, b| {
        let share = |(kind, ns): &(Kind, f64)| ns * rounds_by_kind[0][kind].count as f64;
        share(b).total_cmp(&share(a))
    });
    for (kind, ns) in rows {
        let tally = rounds_by_kind[0][&kind];
        println!(
            "| {kind:?} | {:.1}% | {:.0}% | {ns:.0} | {:.1}% |",
            100.0 * tally.count as f64 / commands,
            100.0 * tally.accepted as f64 / tally.count as f64,
            100.0 * ns * tally.count as f64 / total_ns
        );
    }
}
