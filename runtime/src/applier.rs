//! The engine thread: applies decoded records in offset order, hands outcomes to the
//! publisher and state copies to the snapshot thread. It does no I/O.

use crate::reader::Record;
use crate::shared::{PanicGuard, Shared, NO_TIMER};
use crate::snapshots::Job;
use crate::RuntimeOptions;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use engine::{Engine, Outcome};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) struct Applier {
    shared: Arc<Shared>,
    engine: Engine,
    records: Receiver<Vec<Record>>,
    outcomes: Sender<Vec<Outcome>>,
    jobs: Sender<Job>,
    snapshot_every_records: u64,
    snapshot_every: Duration,
    idle: Duration,
    idle_hash_every: Duration,
    /// Records applied since the last snapshot hand-off.
    records_since_snapshot: u64,
    last_snapshot_at: Instant,
    /// The offset whose state hash was last asked for.
    hashed_offset: Option<u64>,
    last_hash_at: Instant,
}

impl Applier {
    pub(crate) fn new(
        shared: Arc<Shared>,
        engine: Engine,
        records: Receiver<Vec<Record>>,
        outcomes: Sender<Vec<Outcome>>,
        jobs: Sender<Job>,
        options: &RuntimeOptions,
    ) -> Applier {
        let hashed_offset = engine.applied_offset();
        Applier {
            shared,
            engine,
            records,
            outcomes,
            jobs,
            snapshot_every_records: options.snapshot_every_records,
            snapshot_every: Duration::from_millis(options.snapshot_every_ms),
            idle: Duration::from_millis(options.idle_ms),
            idle_hash_every: Duration::from_millis(options.idle_hash_every_ms),
            records_since_snapshot: 0,
            last_snapshot_at: Instant::now(),
            hashed_offset,
            last_hash_at: Instant::now(),
        }
    }

    pub(crate) fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let _guard = PanicGuard {
            shared: &shared,
            thread: "engine",
        };
        loop {
            match self.records.recv_timeout(self.idle) {
                Ok(batch) => {
                    if !self.apply(batch) {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.on_idle(),
                // The reader stopped; everything it read is applied.
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if self.snapshot_due() {
                self.hand_off(true);
            }
        }
    }

    /// Applies one batch; false when the publisher is gone.
    fn apply(&mut self, batch: Vec<Record>) -> bool {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut stop = None;
        for record in batch {
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
        self.shared.next_due_ms.store(
            self.engine.next_due_ms().unwrap_or(NO_TIMER),
            Ordering::Release,
        );
        // The status may say "applied" before the publisher has the outcomes: published_offset
        // tells the rest.
        self.shared
            .update(|status| status.applied_offset = applied_offset);
        let sent = self.outcomes.send(outcomes).is_ok();
        if let Some(failure) = stop {
            tracing::error!(%failure, "stopping the engine runtime");
            self.shared.fail(failure);
            return false;
        }
        sent
    }

    fn snapshot_due(&self) -> bool {
        self.records_since_snapshot >= self.snapshot_every_records
            || (self.records_since_snapshot > 0
                && self.last_snapshot_at.elapsed() >= self.snapshot_every)
    }

    fn on_idle(&mut self) {
        let applied = self.engine.applied_offset();
        if applied != self.hashed_offset && self.last_hash_at.elapsed() >= self.idle_hash_every {
            self.hand_off(false);
        }
    }

    /// Gives a copy of the state to the snapshot thread, if it is free. The copy is cheap
    /// (the big parts of the state are copy-on-write); the pause is measured and reported.
    fn hand_off(&mut self, write: bool) {
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
                self.last_hash_at = Instant::now();
                if write {
                    self.records_since_snapshot = 0;
                    self.last_snapshot_at = Instant::now();
                }
            }
            Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => tracing::warn!("the snapshot thread is gone"),
        }
    }
}
