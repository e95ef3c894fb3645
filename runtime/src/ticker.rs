//! The ticker thread: time only passes in the engine through logged records, so when a
//! timer is due and nothing else is written, it writes a `Tick`. It also writes the
//! primary's `Configure` record (the configuration it applies the log with) once per
//! term, when this replica has become primary and caught up.

use crate::logs::OpenLog;
use crate::shared::{PanicGuard, Shared, NO_TIMER};
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
}

impl Ticker {
    pub(crate) fn run(self) {
        let _guard = PanicGuard {
            shared: &self.shared,
            thread: "ticker",
        };
        let mut writer: Option<Arc<dyn LogWriter>> = None;
        // The offset of the last tick written, until the engine has applied it.
        let mut outstanding: Option<u64> = None;
        // Whether this primary term's `Configure` record is written.
        let mut configured = false;
        loop {
            // Until this term's `Configure` record is written, look often: it should be in
            // the log right after the role is taken, whatever the tick interval.
            let wait = if configured {
                self.interval
            } else {
                self.interval.min(CONFIGURE_POLL)
            };
            match self.stopped.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            if self.shared.stopping() {
                return;
            }
            if !self.shared.is_primary() {
                if configured {
                    configured = false;
                    self.shared.update(|status| status.configure_offset = None);
                }
                continue;
            }
            let status = self.shared.status();
            if outstanding.is_some_and(|tick| status.applied_offset < Some(tick))
                || !status.caught_up()
            {
                continue;
            }
            outstanding = None;
            let due_ms = self.shared.next_due_ms.load(Ordering::Acquire);
            let tick_due = due_ms != NO_TIMER && due_ms <= crate::wall_clock_ms();
            if configured && !tick_due {
                continue;
            }
            if writer.is_none() {
                match self.requests.open_writer() {
                    Ok(opened) => writer = Some(opened),
                    Err(error) => {
                        tracing::warn!(%error, "cannot open the requests log for ticks");
                        continue;
                    }
                }
            }
            let writer = writer.as_ref().expect("opened");
            if !configured {
                let configure = Command::Configure {
                    stamp: self.config.clone(),
                };
                let record = engine::wire::encode_request(&Request::new(configure));
                match writer.append(vec![record]) {
                    Ok(appended) => {
                        configured = true;
                        let offset = appended.first().map(|appended| appended.offset);
                        self.shared
                            .update(|status| status.configure_offset = offset);
                        tracing::info!(?offset, "configuration recorded in the requests log");
                    }
                    Err(error) => tracing::warn!(%error, "Configure append failed"),
                }
                continue;
            }
            let tick = engine::wire::encode_request(&Request::new(Command::Tick));
            match writer.append(vec![tick]) {
                Ok(appended) => {
                    outstanding = appended.first().map(|appended| appended.offset);
                    tracing::debug!(offset = ?outstanding, due_ms, "tick appended");
                }
                // The next interval tries again.
                Err(error) => tracing::warn!(%error, "tick append failed"),
            }
        }
    }
}
