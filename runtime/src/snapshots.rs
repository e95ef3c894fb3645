//! The snapshot thread: encodes and hashes state copies; writes the ones that are due,
//! once every outcome they cover is published. A step function (one job, or one look at
//! whether the waiting snapshot's outcomes are published) driven by its own thread in
//! production and by the simulator in tests.

use crate::logs::OpenLog;
use crate::shared::{PanicGuard, Shared};
use crate::{Progress, SnapshotStatus};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use engine::State;
use snapshotter::{Snapshot, SnapshotStore};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the production driver waits for a job, or for outcomes to be published,
/// before it looks again.
const WAIT: Duration = Duration::from_secs(1);

/// A copy of the state as of `offset`, from the engine thread.
pub(crate) struct Job {
    pub(crate) state: State,
    pub(crate) offset: u64,
    /// Write a snapshot; otherwise only refresh the status's state hash.
    pub(crate) write: bool,
    /// How long the engine thread paused to make the copy.
    pub(crate) pause_us: u64,
}

/// An encoded snapshot waiting for its outcomes to be published.
struct Waiting {
    snapshot: Snapshot,
    pause_us: u64,
    encode_ms: u64,
}

pub(crate) struct SnapshotThread {
    pub(crate) shared: Arc<Shared>,
    pub(crate) store: Box<dyn SnapshotStore>,
    pub(crate) jobs: Receiver<Job>,
    /// The requests log's identity, recorded in every snapshot.
    pub(crate) log_id: String,
    /// Made durable before a snapshot claims its outcomes (an embedded outcomes log does
    /// not fsync its appends).
    outcomes: Arc<dyn OpenLog>,
    /// When the engine applies records before they are durable
    /// (`RuntimeOptions::apply_before_durable`): a snapshot waits until they are.
    durable: Option<requestlog::DurableEnd>,
    waiting: Option<Waiting>,
    /// The last encoded state's bytes, cleared and encoded into again: keeps its pages
    /// (a state of hundreds of megabytes, encoded every few seconds under load; fresh
    /// pages cost more to fault in than the encoding itself).
    spare: Vec<u8>,
}

impl SnapshotThread {
    pub(crate) fn new(
        shared: Arc<Shared>,
        store: Box<dyn SnapshotStore>,
        jobs: Receiver<Job>,
        log_id: String,
        outcomes: Arc<dyn OpenLog>,
        durable: Option<requestlog::DurableEnd>,
    ) -> SnapshotThread {
        SnapshotThread {
            shared,
            store,
            jobs,
            log_id,
            outcomes,
            durable,
            waiting: None,
            spare: Vec::new(),
        }
    }

    /// The production driver: steps, and while a snapshot waits for its outcomes, waits
    /// on the status until they are published or the runtime stops.
    pub(crate) fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let _guard = PanicGuard {
            shared: &shared,
            thread: "snapshot",
        };
        loop {
            match self.step(crate::wall_clock_ms(), WAIT) {
                Progress::Worked | Progress::Idle => {}
                Progress::Blocked => {
                    let offset = self
                        .waiting
                        .as_ref()
                        .expect("blocked on a snapshot")
                        .snapshot
                        .offset;
                    self.shared
                        .wait_for(WAIT, |status| self.published(status, offset));
                }
                Progress::Stopped => return,
            }
        }
    }

    /// Writes the waiting snapshot once its outcomes are published (blocked until then),
    /// or takes the next job (waiting up to `wait` for it): encodes it, hashes it, and
    /// writes it if it is due. Stopped once the engine is gone.
    pub(crate) fn step(&mut self, now_ms: u64, wait: Duration) -> Progress {
        if let Some(waiting) = self.waiting.take() {
            let offset = waiting.snapshot.offset;
            let status = self.shared.status();
            if self.published(&status, offset) {
                self.write(&waiting.snapshot, waiting.pause_us, waiting.encode_ms);
                self.spare = waiting.snapshot.state;
                return Progress::Worked;
            }
            if self.shared.stopping() || status.failure.is_some() {
                tracing::info!(
                    offset,
                    "snapshot abandoned: stopping before its outcomes were published"
                );
                return Progress::Worked;
            }
            self.waiting = Some(waiting);
            return Progress::Blocked;
        }
        let job = match self.jobs.recv_timeout(wait) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => return Progress::Idle,
            Err(RecvTimeoutError::Disconnected) => return Progress::Stopped,
        };
        let started = Instant::now();
        let buffer = std::mem::take(&mut self.spare);
        let snapshot = Snapshot::of_state_in(&job.state, now_ms, &self.log_id, buffer);
        drop(job.state);
        assert_eq!(snapshot.offset, job.offset);
        let encode_ms = started.elapsed().as_millis() as u64;
        let hash = snapshotter::hex(&snapshot.state_hash);
        self.shared.update(|status| {
            if status.state_hash_offset < Some(job.offset) {
                status.state_hash = hash;
                status.state_hash_offset = Some(job.offset);
            }
        });
        if job.write {
            self.waiting = Some(Waiting {
                snapshot,
                pause_us: job.pause_us,
                encode_ms,
            });
        } else {
            self.spare = snapshot.state;
        }
        Progress::Worked
    }

    /// A snapshot must never cover an outcome that is not in the outcomes log: a restart
    /// from it would never publish that outcome. A standby publishes nothing and waits for
    /// nothing but its records' durability (a snapshot past the durable log would not fit
    /// it after a crash; a failed sync stops the runtime, so this waits for ever then).
    fn published(&self, status: &crate::EngineStatus, offset: u64) -> bool {
        let durable = self
            .durable
            .as_ref()
            .is_none_or(|durable| durable.covers(offset).unwrap_or(false));
        durable && (self.shared.publishes_nothing() || status.published_offset >= Some(offset))
    }

    fn write(&mut self, snapshot: &Snapshot, pause_us: u64, encode_ms: u64) {
        let started = Instant::now();
        // The outcomes it covers are published; they must also survive a machine crash, or
        // a restart from this snapshot would never publish the ones lost.
        if let Err(error) = self.outcomes.make_durable() {
            tracing::warn!(offset = snapshot.offset, %error, "snapshot not written: the outcomes log cannot be made durable");
            return;
        }
        match self.store.write(snapshot) {
            Ok(info) => {
                let write_ms = started.elapsed().as_millis() as u64;
                tracing::info!(
                    offset = info.offset,
                    state_bytes = info.state_bytes,
                    pause_us,
                    encode_ms,
                    write_ms,
                    "snapshot written"
                );
                self.shared.snapshot_written(SnapshotStatus {
                    offset: info.offset,
                    at_ms: info.created_at_ms,
                    state_bytes: info.state_bytes,
                    pause_us,
                    encode_ms,
                    write_ms,
                });
            }
            // Not fatal: the log still holds everything; the next snapshot may succeed.
            Err(error) => tracing::warn!(offset = snapshot.offset, %error, "snapshot write failed"),
        }
    }
}
