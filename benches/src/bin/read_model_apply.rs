//! The outcome follower's read model applying a crowd's purchases: `PURCHASES` hold +
//! confirm pairs by new users (each a best-available hold of 1-2 seats in one of 120
//! arenas, then its confirm), the outcomes made beforehand by an engine, so that only
//! `ReadModel::apply` is timed (seats, holds, bookings, each user's bookings list and
//! notifications). The median of RUNS runs, nanoseconds an outcome. In-process, so a
//! change to the model is measured without the HTTP benchmark's noise.
//!
//! ```sh
//! cargo run --release -p boxoffice-benches --bin read_model_apply -- 100000 5
//! ```

// The `boxoffice` binary's allocator (mimalloc), set by the benches' library.
use boxoffice_benches as _;

fn main() {
    let mut args = std::env::args().skip(1);
    let purchases: u64 = boxoffice_benches::next_arg(&mut args, 100_000, "PURCHASES");
    let runs: usize = boxoffice_benches::next_arg(&mut args, 5, "RUNS");
    let mut ns: Vec<f64> = (0..runs)
        .map(|_| ingress::read_model_apply_bench(purchases))
        .collect();
    let each = ns
        .iter()
        .map(|ns| format!("{ns:.0}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "{purchases} purchases, {runs} runs: median {:.0} ns an outcome ({each})",
        boxoffice_benches::median(&mut ns)
    );
}
