//! State shared by the runtime's threads and its handles: the status, the stop flag and
//! the role machine. Everything else flows through channels.

use crate::role::{Action, RoleMachine};
use crate::{EngineStatus, SnapshotStatus};
use engine::wire::SharedRecentOutcomes;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// `next_due_ms` when the engine has no timer.
pub(crate) const NO_TIMER: u64 = u64::MAX;

pub(crate) struct Shared {
    status: Mutex<EngineStatus>,
    changed: Condvar,
    stop: AtomicBool,
    /// The role rules (`role.rs`); fed by the publisher and the handles.
    role: Mutex<RoleMachine>,
    /// What the role machine says, for the ticker and the snapshot thread (`ROLE_*`).
    role_now: AtomicU8,
    /// The engine's `next_due_ms()` after its last batch, for the ticker.
    pub(crate) next_due_ms: AtomicU64,
    /// The outcomes the publisher appended last, once a reader in this process asked for
    /// them ([`crate::RuntimeHandle::recent_outcomes`]); none kept before.
    pub(crate) recent_outcomes: OnceLock<SharedRecentOutcomes>,
}

/// Publishing outcomes and ticking.
const ROLE_PRIMARY: u8 = 0;
/// Publishing nothing (`RoleMachine::publishes_nothing`).
const ROLE_STANDBY: u8 = 1;
/// Catching up or opening the writer: about to decide, or to publish.
const ROLE_DECIDING: u8 = 2;

fn role_now(role: &RoleMachine) -> u8 {
    if role.publishes_nothing() {
        ROLE_STANDBY
    } else if role.role() == crate::Role::Primary {
        ROLE_PRIMARY
    } else {
        ROLE_DECIDING
    }
}

impl Shared {
    pub(crate) fn new(mut status: EngineStatus, role: RoleMachine) -> Shared {
        status.role = role.role();
        Shared {
            status: Mutex::new(status),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            role_now: AtomicU8::new(role_now(&role)),
            role: Mutex::new(role),
            next_due_ms: AtomicU64::new(NO_TIMER),
            recent_outcomes: OnceLock::new(),
        }
    }

    /// Asks the role machine something (no input, so no action).
    pub(crate) fn role_query<T>(&self, query: impl FnOnce(&RoleMachine) -> T) -> T {
        query(&self.role.lock().expect("runtime role poisoned"))
    }

    /// Gives the role machine an input; returns its answer and the actions it asked for,
    /// which are the caller's to carry out (see `role.rs`). The status shows the new role.
    pub(crate) fn role_input<T>(
        &self,
        input: impl FnOnce(&mut RoleMachine) -> T,
    ) -> (T, Vec<Action>) {
        let mut role = self.role.lock().expect("runtime role poisoned");
        let answer = input(&mut role);
        let actions = std::iter::from_fn(|| role.poll_action()).collect();
        self.role_now.store(role_now(&role), Ordering::Release);
        let shown = role.role();
        // Lock order: the role, then the status (nothing takes them the other way).
        let mut status = self.lock();
        if status.role != shown {
            status.role = shown;
            drop(status);
            self.changed.notify_all();
        }
        (answer, actions)
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
        self.role_now.load(Ordering::Acquire) == ROLE_PRIMARY
    }

    /// See `RoleMachine::publishes_nothing`.
    pub(crate) fn publishes_nothing(&self) -> bool {
        self.role_now.load(Ordering::Acquire) == ROLE_STANDBY
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
