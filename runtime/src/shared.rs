//! State shared by the runtime's threads and its handles: the status, the stop flag and
//! the role. Everything else flows through channels.

use crate::{EngineStatus, Role, SnapshotStatus};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// `next_due_ms` when the engine has no timer.
pub(crate) const NO_TIMER: u64 = u64::MAX;

pub(crate) struct Shared {
    status: Mutex<EngineStatus>,
    changed: Condvar,
    stop: AtomicBool,
    /// What the publisher is doing (`ROLE_*`); the status's `role` is what it shows.
    role: AtomicU8,
    /// The engine's `next_due_ms()` after its last batch, for the ticker.
    pub(crate) next_due_ms: AtomicU64,
}

/// Publishing outcomes and ticking.
const ROLE_PRIMARY: u8 = 0;
const ROLE_STANDBY: u8 = 1;
/// A standby that has appended a `Promote` record naming itself, not yet applied.
const ROLE_PROMOTING: u8 = 2;
/// Just started: the role is decided once caught up with the log (see `publisher.rs`).
const ROLE_CLAIMING: u8 = 3;

impl Shared {
    pub(crate) fn new(status: EngineStatus) -> Shared {
        Shared {
            status: Mutex::new(status),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            role: AtomicU8::new(ROLE_CLAIMING),
            next_due_ms: AtomicU64::new(NO_TIMER),
        }
    }

    fn lock(&self) -> MutexGuard<'_, EngineStatus> {
        self.status.lock().expect("runtime status poisoned")
    }

    pub(crate) fn status(&self) -> EngineStatus {
        self.lock().clone()
    }

    /// Changes the status and wakes everyone waiting on it.
    pub(crate) fn update(&self, change: impl FnOnce(&mut EngineStatus)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }

    /// Waits until `condition` holds, the runtime stops, or `timeout` passes; returns the
    /// last status seen and whether the condition held.
    pub(crate) fn wait_for(
        &self,
        timeout: Duration,
        condition: impl Fn(&EngineStatus) -> bool,
    ) -> (EngineStatus, bool) {
        let deadline = Instant::now() + timeout;
        let mut status = self.lock();
        loop {
            if condition(&status) {
                return (status.clone(), true);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || self.stopping() {
                return (status.clone(), false);
            }
            status = self
                .changed
                .wait_timeout(status, remaining)
                .expect("runtime status poisoned")
                .0;
        }
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.changed.notify_all();
    }

    /// Records the first failure and stops the runtime.
    pub(crate) fn fail(&self, failure: String) {
        tracing::error!(%failure, "engine runtime failed");
        self.update(|status| {
            status.failure.get_or_insert(failure);
        });
        self.request_stop();
    }

    pub(crate) fn is_primary(&self) -> bool {
        self.role.load(Ordering::Acquire) == ROLE_PRIMARY
    }

    /// A standby (promoting or not): it publishes nothing and its snapshots wait for
    /// nothing. A replica still deciding its role is not one: it may be about to publish.
    pub(crate) fn publishes_nothing(&self) -> bool {
        matches!(
            self.role.load(Ordering::Acquire),
            ROLE_STANDBY | ROLE_PROMOTING
        )
    }

    /// Standby (or still deciding) → promoting; false when primary or already promoting.
    pub(crate) fn request_promotion(&self) -> bool {
        [ROLE_STANDBY, ROLE_CLAIMING].into_iter().any(|from| {
            self.role
                .compare_exchange(from, ROLE_PROMOTING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
    }

    /// The `Promote` record could not be appended: back to standby.
    pub(crate) fn promotion_failed(&self) {
        let _ = self.role.compare_exchange(
            ROLE_PROMOTING,
            ROLE_STANDBY,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Called by the publisher once its writer is open.
    pub(crate) fn promoted(&self) {
        self.role.store(ROLE_PRIMARY, Ordering::Release);
        self.update(|status| status.role = Role::Primary);
    }

    /// Called by the publisher when it publishes nothing from here on.
    pub(crate) fn stepped_down(&self) {
        // A promotion asked for meanwhile stays asked for: its record is still to come.
        let _ = self.role.compare_exchange(
            ROLE_PRIMARY,
            ROLE_STANDBY,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        let _ = self.role.compare_exchange(
            ROLE_CLAIMING,
            ROLE_STANDBY,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.update(|status| status.role = Role::Standby);
    }

    pub(crate) fn snapshot_written(&self, snapshot: SnapshotStatus) {
        self.update(|status| status.last_snapshot = Some(snapshot));
    }
}

/// Records a failure when a thread unwinds (an engine assertion is a bug: the runtime
/// stops, loudly, rather than run on without that thread).
pub(crate) struct PanicGuard<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) thread: &'static str,
}

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shared
                .fail(format!("the {} thread panicked", self.thread));
        }
    }
}
