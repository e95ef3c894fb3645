//! The longest single command while new users keep arriving, for BENCHMARKS.md: every
//! command is a new user's one-seat best-available hold on the stadium, released at once,
//! so the engine names one more user per hold (`engine::engine::users`). Prints the
//! slowest holds with how many users the engine had then, and the time percentiles of all
//! of them: a table of every user that grows by doubling shows as a pause at each power of
//! two, longer each time.
//!
//! Run in release: `cargo run --release -p boxoffice-benches --bin engine_new_users [users]`

use boxoffice_benches::Venues;
use engine::{Command, EventId, Reply, Request, Selection};
use std::time::Instant;

fn main() {
    let users: usize = std::env::args()
        .nth(1)
        .map(|users| users.parse().expect("users: a count"))
        .unwrap_or(2_000_000);
    let venues = Venues::stadium();
    let mut engine = venues.build();
    let mut offset = engine.applied_offset().map_or(0, |applied| applied + 1);
    let time_ms = 1_000;
    let mut hold_ns: Vec<(u64, usize)> = Vec::with_capacity(users);
    for user in 0..users {
        let hold = Request {
            idempotency_key: None,
            command: Command::PlaceHold {
                user: format!("fan-{user}").into(),
                event: EventId(0),
                selection: Selection::BestIndexed {
                    quantity: 1,
                    category: None,
                    together: false,
                },
                wait: false,
            },
        };
        let started = Instant::now();
        let outcome = engine.apply(offset, time_ms, &hold);
        hold_ns.push((started.elapsed().as_nanos() as u64, user));
        offset += 1;
        let Ok(Reply::HoldPlaced(held)) = outcome.result else {
            panic!("hold {user} refused: {:?}", outcome.result);
        };
        let release = Request {
            idempotency_key: None,
            command: Command::ReleaseHold {
                user: format!("fan-{user}").into(),
                hold: held.hold,
            },
        };
        assert!(engine.apply(offset, time_ms, &release).result.is_ok());
        offset += 1;
    }
    let mut slowest = hold_ns.clone();
    slowest.sort_unstable_by(|a, b| b.cmp(a));
    println!("{users} new users' holds on one stadium, each released at once");
    for (ns, user) in slowest.iter().take(8) {
        println!("  {:>9.3} ms at user {user}", *ns as f64 / 1e6);
    }
    let mut ns: Vec<u64> = hold_ns.iter().map(|(ns, _)| *ns).collect();
    ns.sort_unstable();
    let at = |quantile: f64| ns[((ns.len() - 1) as f64 * quantile) as usize] as f64 / 1e3;
    println!(
        "hold us: p50 {:.2}, p99 {:.2}, p99.99 {:.1}, max {:.1}",
        at(0.5),
        at(0.99),
        at(0.9999),
        at(1.0)
    );
}
