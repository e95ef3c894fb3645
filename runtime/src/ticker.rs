//! The ticker thread: time only passes in the engine through logged records, so when a
//! timer is due and nothing else is written, it writes a `Tick`. It also writes the
//! primary's `Configure` record (the configuration it applies the log with) once per
//! term, when this replica has become primary and caught up. A step function (one look
//! at the clock and the status) driven by its own thread in production, which waits
//! `tick_interval_ms` between steps, and by the simulator in tests.

use crate::logs::OpenLog;
use crate::shared::{PanicGuard, Shared, NO_TIMER};
use crate::Progress;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use engine::{Command, Request};
use requestlog::LogWriter;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How often a replica that has not written its `Configure` record looks whether it may.
const CONFIGURE_POLL: Duration = Duration::from_millis(20);

pub(crate) struct Ticker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) requests: Arc<dyn OpenLog>,
    pub(crate) interval: Duration,
    /// This replica's `EngineConfig::stamp`, for its `Configure` record.
    pub(crate) config: engine::config::ConfigStamp,
    /// Disconnected at shutdown.
    pub(crate) stopped: Receiver<()>,
    pub(crate) writer: Option<Arc<dyn LogWriter>>,
    /// The offset of the last tick written, until the engine has applied it.
    pub(crate) outstanding: Option<u64>,
    /// Whether this primary term's `Configure` record is written.
    pub(crate) configured: bool,
}

impl Ticker {
    /// The production driver: a step every `interval` (more often until the `Configure`
    /// record is written), until shutdown.
    pub(crate) fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let _guard = PanicGuard {
            shared: &shared,
            thread: "ticker",
        };
        loop {
            // Until this term's `Configure` record is written, look often: it should be in
            // the log right after the role is taken, whatever the tick interval.
            let wait = if self.configured {
                self.interval
            } else {
                self.interval.min(CONFIGURE_POLL)
            };
            match self.stopped.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            if self.step(crate::wall_clock_ms()) == Progress::Stopped {
                return;
            }
        }
    }

    /// Appends this term's `Configure` record, or a `Tick` when a timer is due by
    /// `now_ms` (the clock the log stamps records with), if this replica is primary, caught
    /// up, and its last tick is applied.
    pub(crate) fn step(&mut self, now_ms: u64) -> Progress {
        if self.shared.stopping() {
            return Progress::Stopped;
        }
        if !self.shared.is_primary() {
            if self.configured {
                self.configured = false;
                self.shared.update(|status| status.configure_offset = None);
            }
            return Progress::Idle;
        }
        let status = self.shared.status();
        if self
            .outstanding
            .is_some_and(|tick| status.applied_offset < Some(tick))
            || !status.caught_up()
        {
            return Progress::Idle;
        }
        self.outstanding = None;
        let due_ms = self.shared.next_due_ms.load(Ordering::Acquire);
        let tick_due = due_ms != NO_TIMER && due_ms <= now_ms;
        if self.configured && !tick_due {
            return Progress::Idle;
        }
        if self.writer.is_none() {
            match self.requests.open_writer() {
                Ok(opened) => self.writer = Some(opened),
                Err(error) => {
                    tracing::warn!(%error, "cannot open the requests log for ticks");
                    return Progress::Idle;
                }
            }
        }
        let writer = self.writer.as_ref().expect("opened");
        if !self.configured {
            let configure = Command::Configure {
                stamp: self.config.clone(),
            };
            let record = engine::wire::encode_request(&Request::new(configure));
            match writer.append(vec![record]) {
                Ok(appended) => {
                    self.configured = true;
                    let offset = appended.first().map(|appended| appended.offset);
                    self.shared
                        .update(|status| status.configure_offset = offset);
                    tracing::info!(?offset, "configuration recorded in the requests log");
                }
                Err(error) => tracing::warn!(%error, "Configure append failed"),
            }
            return Progress::Worked;
        }
        let tick = engine::wire::encode_request(&Request::new(Command::Tick));
        match writer.append(vec![tick]) {
            Ok(appended) => {
                self.outstanding = appended.first().map(|appended| appended.offset);
                tracing::debug!(offset = ?self.outstanding, due_ms, "tick appended");
            }
            // The next interval tries again.
            Err(error) => tracing::warn!(%error, "tick append failed"),
        }
        Progress::Worked
    }
}
