//! The read model's snapshot pause: how long the outcome follower answers no write while
//! it copies the model for its snapshot thread, after N purchases (hold + confirm), and
//! what the first purchases after a copy cost against the same without one.
//!
//! ```sh
//! cargo run --release -p boxoffice-benches --bin read_model_copy -- 500000 3
//! ```

// The `boxoffice` binary's allocator (mimalloc), set by the benches' library.
use boxoffice_benches as _;

fn main() {
    let mut args = std::env::args().skip(1);
    let purchases: u64 = boxoffice_benches::next_arg(&mut args, 500_000, "PURCHASES");
    let runs: u32 = boxoffice_benches::next_arg(&mut args, 3, "RUNS");
    for run in 1..=runs {
        let pause = ingress::copy_pause_bench(purchases);
        println!(
            "run {run}: {purchases} purchases: copy {:.3} ms; {} purchases: {:.1} ms before the copy, {:.1} ms right after it, {:.1} ms once it is dropped",
            pause.copy_pause.as_secs_f64() * 1e3,
            pause.purchases_after,
            pause.before_copy.as_secs_f64() * 1e3,
            pause.after_copy.as_secs_f64() * 1e3,
            pause.without_copy.as_secs_f64() * 1e3,
        );
    }
}
