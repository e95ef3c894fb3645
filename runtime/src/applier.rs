//! The engine: applies decoded records in offset order, hands outcomes to the publisher
//! and state copies to the snapshot thread. It does no I/O. A step function (one batch, or
//! one idle moment) driven by its own thread in production and by the simulator in tests.

use crate::reader::Record;
use crate::shared::{PanicGuard, Shared, NO_TIMER};
use crate::snapshots::Job;
use crate::{Progress, RuntimeOptions};
// Records in and outcomes out through std's channels: their blocking receive spins briefly
// and then parks, where crossbeam's snoozes with `sched_yield` first (4-9% of `serve`'s CPU
// under load, BENCHMARKS.md "HTTP hold + confirm").
use engine::{Engine, Outcome, UserName, UserNumber};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many idle waits (`idle_ms` each) without a record make the log quiet enough to
/// refresh the state hash ([`Applier::on_idle`]).
const IDLE_HASH_QUIET_IDLES: u64 = 5;

/// One applied batch, for the publisher: the outcomes as the engine made them (users by
/// number), and the names of the users the batch numbered (the publisher names outcomes
/// from its own table, so the engine thread never touches a name for an outcome).
pub(crate) struct Applied {
    pub(crate) outcomes: Vec<Outcome<UserNumber>>,
    /// The number of `users[0]`.
    pub(crate) users_from: usize,
    pub(crate) users: Vec<UserName>,
}

pub(crate) struct Applier {
    shared: Arc<Shared>,
    engine: Engine,
    records: Receiver<Vec<Record>>,
    outcomes: SyncSender<Applied>,
    jobs: crossbeam_channel::Sender<Job>,
    snapshot_every_records: u64,
    snapshot_every_ms: u64,
    idle: Duration,
    idle_hash_every_ms: u64,
    /// Records applied since the last snapshot hand-off.
    records_since_snapshot: u64,
    last_snapshot_at_ms: u64,
    /// The offset whose state hash was last asked for.
    hashed_offset: Option<u64>,
    last_hash_at_ms: u64,
    /// When the last batch came (the step's clock).
    last_batch_at_ms: u64,
    /// Outcomes the publisher's channel had no room for yet.
    outbox: Option<Applied>,
    /// Set when a record must not be applied (a `Configure` mismatch): the runtime fails
    /// with it once the outcomes before that record are handed over.
    failure: Option<String>,
}

impl Applier {
    pub(crate) fn new(
        shared: Arc<Shared>,
        engine: Engine,
        records: Receiver<Vec<Record>>,
        outcomes: SyncSender<Applied>,
        jobs: crossbeam_channel::Sender<Job>,
        options: &RuntimeOptions,
        now_ms: u64,
    ) -> Applier {
        let hashed_offset = engine.applied_offset();
        Applier {
            shared,
            engine,
            records,
            outcomes,
            jobs,
            snapshot_every_records: options.snapshot_every_records,
            snapshot_every_ms: options.snapshot_every_ms,
            idle: Duration::from_millis(options.idle_ms),
            idle_hash_every_ms: options.idle_hash_every_ms,
            records_since_snapshot: 0,
            last_snapshot_at_ms: now_ms,
            hashed_offset,
            last_hash_at_ms: now_ms,
            last_batch_at_ms: now_ms,
            outbox: None,
            failure: None,
        }
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The production driver: steps, waiting up to `idle_ms` for a batch, and waiting on
    /// the publisher's channel while the publisher is behind.
    pub(crate) fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let _guard = PanicGuard {
            shared: &shared,
            thread: "engine",
        };
        loop {
            match self.step(crate::monotonic_ms(), self.idle) {
                Progress::Worked | Progress::Idle => {}
                // The back-pressure: wait until the publisher takes the outcomes.
                Progress::Blocked => {
                    let outcomes = self.outbox.take().expect("blocked on outcomes");
                    if self.outcomes.send(outcomes).is_err() {
                        return;
                    }
                }
                Progress::Stopped => return,
            }
        }
    }

    /// Applies one batch (waiting up to `wait` for it) or, when none comes, does the idle
    /// work; then hands a state copy to the snapshot thread if one is due. Blocked while
    /// the publisher's channel is full; stopped once the reader is gone and everything it
    /// read is applied, or the log holds a record this configuration must not apply.
    pub(crate) fn step(&mut self, now_ms: u64, wait: Duration) -> Progress {
        if let Some(outcomes) = self.outbox.take() {
            return self.send(outcomes);
        }
        if let Some(failure) = self.failure.take() {
            tracing::error!(%failure, "stopping the engine runtime");
            self.shared.fail(failure);
            return Progress::Stopped;
        }
        let progress = match self.records.recv_timeout(wait) {
            Ok(batch) => {
                self.last_batch_at_ms = now_ms;
                let outcomes = self.apply(batch);
                self.send(outcomes)
            }
            Err(RecvTimeoutError::Timeout) => {
                self.on_idle(now_ms);
                Progress::Idle
            }
            // The reader stopped; everything it read is applied.
            Err(RecvTimeoutError::Disconnected) => return Progress::Stopped,
        };
        if self.snapshot_due(now_ms) {
            self.hand_off(true, now_ms);
        }
        progress
    }

    /// Hands outcomes to the publisher without waiting; keeps them when the channel is full.
    fn send(&mut self, outcomes: Applied) -> Progress {
        match self.outcomes.try_send(outcomes) {
            Ok(()) => Progress::Worked,
            Err(TrySendError::Full(outcomes)) => {
                self.outbox = Some(outcomes);
                Progress::Blocked
            }
            // The publisher is gone.
            Err(TrySendError::Disconnected(_)) => Progress::Stopped,
        }
    }

    /// Applies one batch, up to a record this configuration must not apply (which sets
    /// `failure`), and returns its outcomes.
    fn apply(&mut self, batch: Vec<Record>) -> Applied {
        let users_from = self.engine.users_len();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut stop = None;
        for (index, record) in batch.iter().enumerate() {
            // Perf: the cache asked for what the next commands read (`engine::prefetch`).
            self.engine.prefetch_ahead(index, |index| {
                batch
                    .get(index)
                    .and_then(|record| record.request.as_ref().ok())
            });
            let outcome = match &record.request {
                Ok(request) => {
                    if let Some(mismatch) = self.engine.logged_config_mismatch(request) {
                        // The log was applied with another configuration: applying its
                        // history with this one could decide differently. Stop before the
                        // record; what came before it is still published.
                        stop = Some(
                            crate::RuntimeError::ConfigMismatch {
                                offset: record.offset,
                                mismatch,
                            }
                            .to_string(),
                        );
                        break;
                    }
                    self.engine
                        .apply(record.offset, record.timestamp_ms, request)
                }
                Err(reason) => {
                    self.engine
                        .apply_undecodable(record.offset, record.timestamp_ms, reason)
                }
            };
            debug_assert_eq!(outcome.offset, record.offset);
            outcomes.push(outcome);
        }
        self.records_since_snapshot += outcomes.len() as u64;
        let applied_offset = self.engine.applied_offset();
        let applied_log_time_ms = applied_offset.map(|_| self.engine.now_ms());
        self.shared.next_due_ms.store(
            self.engine.next_due_ms().unwrap_or(NO_TIMER),
            Ordering::Release,
        );
        // The status may say "applied" before the publisher has the outcomes: published_offset
        // tells the rest.
        self.shared.update(|status| {
            status.applied_offset = applied_offset;
            status.applied_log_time_ms = applied_log_time_ms;
        });
        self.failure = stop;
        Applied {
            outcomes,
            users_from,
            users: self.engine.user_names_from(users_from),
        }
    }

    fn snapshot_due(&self, now_ms: u64) -> bool {
        self.records_since_snapshot >= self.snapshot_every_records
            || (self.records_since_snapshot > 0
                && now_ms.saturating_sub(self.last_snapshot_at_ms) >= self.snapshot_every_ms)
    }

    /// Refreshes the status's state hash once the log has been quiet for
    /// [`IDLE_HASH_QUIET_IDLES`] idle waits, at most every `idle_hash_every_ms`. Quiet, not
    /// merely idle: under load the engine is idle for `idle_ms` now and then (a slow
    /// fsync), and each hash encodes the whole state (about 1.3 us of CPU per request
    /// under 64 clients when any such pause refreshed it, once a second).
    fn on_idle(&mut self, now_ms: u64) {
        let applied = self.engine.applied_offset();
        let quiet_ms = self.idle.as_millis() as u64 * IDLE_HASH_QUIET_IDLES;
        if applied != self.hashed_offset
            && now_ms.saturating_sub(self.last_batch_at_ms) >= quiet_ms
            && now_ms.saturating_sub(self.last_hash_at_ms) >= self.idle_hash_every_ms
        {
            self.hand_off(false, now_ms);
        }
    }

    /// Gives a copy of the state to the snapshot thread, if it is free. The copy is cheap
    /// (the big parts of the state are copy-on-write); the pause is measured and reported.
    fn hand_off(&mut self, write: bool, now_ms: u64) {
        let Some(offset) = self.engine.applied_offset() else {
            return;
        };
        if self.jobs.is_full() {
            return; // busy: try again after the next batch
        }
        let started = Instant::now();
        let state = self.engine.state().clone();
        let pause = started.elapsed();
        let job = Job {
            state,
            offset,
            write,
            pause_us: pause.as_micros() as u64,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {
                self.hashed_offset = Some(offset);
                self.last_hash_at_ms = now_ms;
                if write {
                    self.records_since_snapshot = 0;
                    self.last_snapshot_at_ms = now_ms;
                }
            }
            Err(crossbeam_channel::TrySendError::Full(_)) => {}
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                tracing::warn!("the snapshot thread is gone")
            }
        }
    }
}
