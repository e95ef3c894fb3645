//! Old engine versus new: prints what the standard mix decided (a digest of every
//! outcome, the final seat digest, the accepted count) for a few seeds and millions of
//! records, so two builds of the engine can be compared record for record.
//!
//! Run: `cargo run --release -p boxoffice-benches --bin engine_equivalence [COUNT]`
//! (default 2,000,000 commands per seed) on both commits and compare the lines.

use boxoffice_benches::{decisions, Venues};

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .map(|count| count.parse().expect("COUNT is a number"))
        .unwrap_or(2_000_000);
    for seed in [1, 42, 2026] {
        let found = decisions(&Venues::standard(), seed, count);
        println!(
            "seed {seed} commands {count}: outcomes {} seats {} accepted {}",
            found.outcomes, found.seats, found.accepted
        );
    }
}
