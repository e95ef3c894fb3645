//! What turning a bearer token into a pseudonym costs on the HTTP thread, step by step,
//! for users the ingress has not seen and for users it has (`ingress::identity_steps_bench`):
//! the token's check, the pseudonym, the personal-data store's sealed entry and its look-up,
//! and a returning user's whole identity, as it was found in three look-ups and as it is
//! found now, kept with the verified token.
//! The median of RUNS runs of USERS users each.
//!
//! ```sh
//! cargo run --release -p boxoffice-benches --bin identity -- 20000 5
//! ```

// The `boxoffice` binary's allocator (mimalloc), set by the benches' library.
use boxoffice_benches as _;

fn main() {
    let mut args = std::env::args().skip(1);
    let users: usize = boxoffice_benches::next_arg(&mut args, 20_000, "USERS");
    let runs: usize = boxoffice_benches::next_arg(&mut args, 5, "RUNS");
    let steps: Vec<ingress::IdentitySteps> = (0..runs)
        .map(|_| {
            let dir = tempfile::tempdir().expect("a temporary directory");
            ingress::identity_steps_bench(users, dir.path())
        })
        .collect();
    type Step = fn(&ingress::IdentitySteps) -> f64;
    let rows: [(&str, Step); 10] = [
        ("token, new (verified, cached)", |s| s.token_new_ns),
        ("token, known (cache look-up)", |s| s.token_known_ns),
        ("pseudonym, new (one HMAC)", |s| s.pseudonym_new_ns),
        ("pseudonym, known (one HMAC)", |s| s.pseudonym_known_ns),
        ("personal data, seal (new user)", |s| s.seal_ns),
        ("personal data, is it stored", |s| s.stored_ns),
        ("personal data, new user (filter)", |s| s.knows_new_ns),
        ("personal data, new entry queued", |s| s.remember_new_ns),
        ("returning user, three look-ups", |s| s.returning_three_ns),
        ("returning user, kept with token", |s| s.returning_kept_ns),
    ];
    println!("{users} users, median of {runs} runs, ns per call:");
    for (label, of) in rows {
        let mut values: Vec<f64> = steps.iter().map(of).collect();
        println!(
            "  {:<33} {:7.0}",
            format!("{label}:"),
            boxoffice_benches::median(&mut values)
        );
    }
}
