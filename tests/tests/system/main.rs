//! The system tests, in one executable so the whole set links once: real `boxoffice`
//! processes over real sockets, the runtime with its real logs (embedded, and the Kafka
//! broker at `KAFKA_BOOTSTRAP`), crashes, fail-over, the operator tools and the load
//! generator end to end. One module per scenario file; select one with its module path,
//! e.g. `cargo test -p boxoffice-system-tests -- failover::`.
//!
//! Tests that need Kafka skip with a note when `KAFKA_BOOTSTRAP` is unset, and fail
//! instead when `CI=true`. The `boxoffice` binary comes from
//! `boxoffice_system_tests::boxoffice_bin` (built on first use).

// Shared by the modules below: the HTTP suite's scenarios and processes (`suite!` first, so
// the modules after it can use it), the runtime's logs, workload and checks.
#[macro_use]
mod http_suite;
mod common;

// Against `boxoffice` processes.
mod engine_tools;
mod failover;
mod kafka_mode;
mod loadgen_end_to_end;
mod privacy;
mod refunds_kill;
mod replay_timeline;
mod serve;
mod serve_suite;
mod shards;
mod webhooks;

// The runtime in this process, or in a child process it kills.
mod big_outcomes;
mod config_change;
mod crash;
mod log_identity;
mod readiness;
mod runtime;

// The simulated cluster: the runtime's components stepped on virtual time over faulty
// in-memory logs, a few hundred seeds.
mod simulation;
