//! The snapshot thread: encodes and hashes state copies; writes the ones that are due.

use crate::shared::{PanicGuard, Shared};
use crate::SnapshotStatus;
use crossbeam_channel::Receiver;
use engine::State;
use snapshotter::{Snapshot, SnapshotStore};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A copy of the state as of `offset`, from the engine thread.
pub(crate) struct Job {
    pub(crate) state: State,
    pub(crate) offset: u64,
    /// Write a snapshot; otherwise only refresh the status's state hash.
    pub(crate) write: bool,
    /// How long the engine thread paused to make the copy.
    pub(crate) pause_us: u64,
}

pub(crate) struct SnapshotThread {
    pub(crate) shared: Arc<Shared>,
    pub(crate) store: Box<dyn SnapshotStore>,
    pub(crate) jobs: Receiver<Job>,
    /// The requests log's identity, recorded in every snapshot.
    pub(crate) log_id: String,
}

impl SnapshotThread {
    pub(crate) fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let _guard = PanicGuard {
            shared: &shared,
            thread: "snapshot",
        };
        while let Ok(job) = self.jobs.recv() {
            let started = Instant::now();
            let snapshot = Snapshot::of_state(&job.state, crate::wall_clock_ms(), &self.log_id);
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
            if job.write && self.wait_until_published(job.offset) {
                self.write(&snapshot, job.pause_us, encode_ms);
            }
        }
    }

    /// A snapshot must never cover an outcome that is not in the outcomes log: a restart
    /// from it would never publish that outcome. A standby publishes nothing and waits for
    /// nothing. False when the runtime stopped first.
    fn wait_until_published(&self, offset: u64) -> bool {
        loop {
            let shared = &self.shared;
            let (status, published) = shared.wait_for(Duration::from_secs(1), |status| {
                shared.publishes_nothing() || status.published_offset >= Some(offset)
            });
            if published {
                return true;
            }
            if self.shared.stopping() || status.failure.is_some() {
                tracing::info!(
                    offset,
                    "snapshot abandoned: stopping before its outcomes were published"
                );
                return false;
            }
        }
    }

    fn write(&mut self, snapshot: &Snapshot, pause_us: u64, encode_ms: u64) {
        let started = Instant::now();
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
