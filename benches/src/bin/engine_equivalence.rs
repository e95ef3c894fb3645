//! Old engine versus new: prints what the standard mix decided (a digest of every
//! outcome, the final seat digest, the accepted count) for a few seeds and millions of
//! records, so two builds of the engine can be compared record for record.
//!
//! Run: `cargo run --release -p boxoffice-benches --bin engine_equivalence [COUNT]
//! [--by-id]` (default 2,000,000 commands per seed) on both commits and compare the lines.
//! `--by-id` sends every user the engine knows by id (`UserForm::ById`): the lines must
//! be the same as by name.

use boxoffice_benches::{decisions_in, UserForm, Venues};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let form = if args.iter().any(|arg| arg == "--by-id") {
        UserForm::ById
    } else {
        UserForm::ByName
    };
    let count: usize = args
        .iter()
        .find(|arg| !arg.starts_with("--"))
        .map(|count| count.parse().expect("COUNT is a number"))
        .unwrap_or(2_000_000);
    for seed in [1, 42, 2026] {
        let found = decisions_in(&Venues::standard(), seed, count, form);
        println!(
            "seed {seed} commands {count}: outcomes {} seats {} accepted {}",
            found.outcomes, found.seats, found.accepted
        );
    }
}
