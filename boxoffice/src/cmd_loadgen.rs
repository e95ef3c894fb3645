//! `boxoffice loadgen ...`: the load tester of the `loadgen` crate (scenarios, open-loop
//! load, record and replay, verification), the same commands as the standalone `loadgen`
//! binary. Secrets come from its flags or the `BOXOFFICE_AUTH_*` environment.

/// Runs a loadgen command; any error ends the process with status 1.
pub(crate) fn run(args: loadgen::Args) {
    if let Err(error) = loadgen::run(args) {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}
