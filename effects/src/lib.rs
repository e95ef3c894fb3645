//! `effects`: the one place where Boxoffice acts on the outside world (issue "Effects
//! outside, exactly once"). A worker follows every shard's outcomes log and the control
//! log, and sends each tenant's webhook endpoints what happened, signed as the Standard
//! Webhooks specification says, at least once and in order per endpoint. It runs inside
//! `boxoffice serve` and as `boxoffice effects` next to a Kafka deployment.
//!
//! Layout:
//! - [`messages`]: outcomes to webhook messages (pure; ids `msg_<shard>_<offset>_<index>`),
//!   `engine::messages` re-exported: the ingress's notifications make the same ones.
//! - [`signing`]: `webhook-signature` and `whsec_` secrets.
//! - [`schedule`]: the delivery state machine, sans-io (ordering, backoff with jitter,
//!   disabling).
//! - [`store`]: the worker's RocksDB (positions, owners, backlogs, the delivery log).
//! - [`worker`]: the threads and HTTP.
//! - [`metrics`]: deliveries by outcome, backlogs (a bounded label set), the oldest
//!   undelivered message's age, in the OpenMetrics text format.
//! - [`refunds`]: succeeded payments the control log says are due back, refunded through
//!   the payment gateway once each and recorded in the control log.
//!
//! Architecture invariant: an outcome's messages and the shard's position move together
//! (one atomic write), so a restart neither loses nor re-routes an outcome; a message
//! leaves its endpoint's backlog only once a 2xx answer to it is recorded.

pub use engine::messages;
pub mod metrics;
pub mod refunds;
pub mod schedule;
pub mod signing;
pub mod store;
pub mod worker;

pub use schedule::{RetryPolicy, Scheduler, Verdict};
pub use store::{Attempt, StoredMessage};
pub use worker::{Worker, WorkerConfig, WorkerError, WorkerLogs, WorkerMetrics};
