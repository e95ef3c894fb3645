//! What the engine's prefetch hints (`Engine::prefetch_ahead`) buy: the log
//! `engine/standard_mix` replays (seed 42, 200,000 commands, users by id), replayed on fresh
//! engines with and without the hints, alternated in one process (each round runs both,
//! the first of the pair swapped every round), so that the machine's drift and the
//! process's layout are the same for both.
//!
//! Run: `taskset -c 1 cargo run --release -p boxoffice-benches --bin engine_hints [ROUNDS]`
//! (default 20). Prints each side's median commands/s and the median of the rounds'
//! speed-ups (without / with, in time), with how many rounds the hints won.

use boxoffice_benches::{median, record_in, replay_hinted, UserForm, Venues};
use std::hint::black_box;
use std::time::Instant;

const MIX_COMMANDS: usize = 200_000;
const SEED: u64 = 42;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|rounds| rounds.parse().expect("ROUNDS is a number"))
        .unwrap_or(20);
    assert!(rounds > 0, "at least one round");
    let venues = Venues::standard();
    let log = record_in(&venues, SEED, MIX_COMMANDS, UserForm::ById);
    let (mut with, mut without, mut speedups) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut seconds = [0.0; 2];
        for step in 0..2 {
            let hints = (round + step) % 2 == 0;
            let mut engine = venues.build();
            let start = Instant::now();
            let accepted = black_box(replay_hinted(&mut engine, &log, hints));
            seconds[usize::from(hints)] = start.elapsed().as_secs_f64();
            assert!(accepted > 0);
        }
        without.push(log.len() as f64 / seconds[0]);
        with.push(log.len() as f64 / seconds[1]);
        speedups.push(seconds[0] / seconds[1]);
    }
    let won = speedups.iter().filter(|speedup| **speedup > 1.0).count();
    println!(
        "without hints {:.3} M commands/s, with {:.3} M/s; speed-up median {:.3}, hints faster in {won} of {rounds} rounds",
        median(&mut without) / 1e6,
        median(&mut with) / 1e6,
        median(&mut speedups),
    );
}
