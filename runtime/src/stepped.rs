//! The runtime without threads: every component is a step function, and whoever holds a
//! [`SteppedRuntime`] decides which one steps next and what time it is. The simulation
//! tests (`tests/tests/system/simulation.rs`) drive replicas this way with a seeded scheduler on
//! virtual time; production drives the same step functions from one thread each
//! ([`crate::Runtime`]), which wait on their channels, logs and clock between steps.

use crate::{
    applier, publisher, reader, snapshots, ticker, Driver, EngineStatus, Logs, Parts, RuntimeError,
    RuntimeHandle, RuntimeOptions,
};
use snapshotter::SnapshotStore;
use std::time::Duration;

/// What one step of a component did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// It did some work: stepping it again may do more.
    Worked,
    /// It had nothing to do: stepping it again does nothing until another component, a
    /// log or the clock moves.
    Idle,
    /// It waits for another component: the next stage's channel is full, or a snapshot's
    /// outcomes are not published yet.
    Blocked,
    /// It has stopped for good (its input is gone, or the runtime stopped or failed).
    Stopped,
}

/// The components, as [`SteppedRuntime::step`] names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    Reader,
    Engine,
    Publisher,
    Snapshots,
    Ticker,
}

impl Component {
    pub const ALL: [Component; 5] = [
        Component::Reader,
        Component::Engine,
        Component::Publisher,
        Component::Snapshots,
        Component::Ticker,
    ];
}

/// A runtime whose components run only when stepped (see the module's documentation).
/// Dropping it is a crash: everything not in the logs or the snapshot store is gone.
pub struct SteppedRuntime {
    handle: RuntimeHandle,
    // A stopped component is dropped, which closes its channels as a returning thread
    // would: the stages behind it drain what they hold and stop in turn.
    reader: Option<reader::Reader>,
    applier: Option<applier::Applier>,
    publisher: Option<publisher::Publisher>,
    snapshots: Option<snapshots::SnapshotThread>,
    ticker: Option<ticker::Ticker>,
}

impl SteppedRuntime {
    /// Loads the newest valid snapshot and positions the reader after it, as
    /// [`crate::Runtime::start`] does, at the virtual time `now_ms`; nothing runs until
    /// stepped.
    pub fn start(
        options: RuntimeOptions,
        logs: Logs,
        store: Box<dyn SnapshotStore>,
        now_ms: u64,
    ) -> Result<SteppedRuntime, RuntimeError> {
        let (handle, parts) = Parts::assemble(options, logs, store, Driver::Simulator { now_ms })?;
        Ok(SteppedRuntime {
            handle,
            reader: Some(parts.reader),
            applier: Some(parts.applier),
            publisher: Some(parts.publisher),
            snapshots: Some(parts.snapshots),
            ticker: Some(parts.ticker),
        })
    }

    /// One bounded unit of `component`'s work at the virtual time `now_ms` (the clock the
    /// logs stamp records with). Never waits.
    pub fn step(&mut self, component: Component, now_ms: u64) -> Progress {
        let progress = match component {
            Component::Reader => self
                .reader
                .as_mut()
                .map(|reader| reader.step(now_ms, Duration::ZERO)),
            Component::Engine => self
                .applier
                .as_mut()
                .map(|applier| applier.step(now_ms, Duration::ZERO)),
            Component::Publisher => self
                .publisher
                .as_mut()
                .map(|publisher| publisher.step(Duration::ZERO)),
            Component::Snapshots => self
                .snapshots
                .as_mut()
                .map(|snapshots| snapshots.step(now_ms, Duration::ZERO)),
            Component::Ticker => self.ticker.as_mut().map(|ticker| ticker.step(now_ms)),
        }
        .unwrap_or(Progress::Stopped);
        if progress == Progress::Stopped {
            match component {
                Component::Reader => self.reader = None,
                Component::Engine => self.applier = None,
                Component::Publisher => self.publisher = None,
                Component::Snapshots => self.snapshots = None,
                Component::Ticker => self.ticker = None,
            }
        }
        progress
    }

    /// Stops the runtime as [`crate::Runtime::shutdown`] does: the stages then drain what
    /// they hold when stepped, and stop.
    pub fn request_stop(&self) {
        self.handle.shared.request_stop();
    }

    pub fn handle(&self) -> RuntimeHandle {
        self.handle.clone()
    }

    pub fn status(&self) -> EngineStatus {
        self.handle.status()
    }

    /// The engine's state hash (hex) as of its last applied record; `None` once the
    /// engine has stopped.
    pub fn state_hash_hex(&self) -> Option<String> {
        self.applier
            .as_ref()
            .map(|applier| applier.engine().state_hash_hex())
    }

    /// The engine's last applied offset; `None` when it applied nothing or has stopped.
    pub fn applied_offset(&self) -> Option<u64> {
        self.applier
            .as_ref()
            .and_then(|applier| applier.engine().applied_offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Logs, Role};
    use requestlog::{FaultPlan, LogWriter, MemoryLog};
    use snapshotter::MemoryStore;
    use std::sync::Arc;

    fn append_tick(requests: &MemoryLog, now_ms: u64) -> u64 {
        requests.set_now_ms(now_ms);
        let tick = engine::wire::encode_request(&engine::Request::new(engine::Command::Tick));
        requests.writer().append(vec![tick]).unwrap()[0].offset
    }

    /// Steps the reader and the engine until the engine has applied `offset`.
    fn apply_through(runtime: &mut SteppedRuntime, offset: u64, now_ms: u64) {
        for _ in 0..100 {
            if runtime.status().applied_offset >= Some(offset) {
                return;
            }
            runtime.step(Component::Reader, now_ms);
            runtime.step(Component::Engine, now_ms);
        }
        panic!("offset {offset} not applied: {:?}", runtime.status());
    }

    /// The status shows the engine's clock: the log time of what it applied, not the
    /// time it was applied at.
    #[test]
    fn the_status_shows_the_log_time_of_the_last_applied_record() {
        let requests = MemoryLog::new("requests", FaultPlan::NONE, 1);
        let outcomes = MemoryLog::new("outcomes", FaultPlan::NONE, 2);
        let options = RuntimeOptions {
            role: Role::Standby,
            ..RuntimeOptions::new(engine::EngineConfig::default())
        };
        let logs = Logs {
            requests: Arc::new(requests.clone()),
            outcomes: Arc::new(outcomes),
        };
        let mut runtime =
            SteppedRuntime::start(options, logs, Box::new(MemoryStore::new(1)), 0).unwrap();
        assert_eq!(
            runtime.status().applied_log_time_ms,
            None,
            "nothing applied"
        );

        let first = append_tick(&requests, 1_000);
        apply_through(&mut runtime, first, 9_000);
        assert_eq!(runtime.status().applied_log_time_ms, Some(1_000));

        let second = append_tick(&requests, 5_000);
        apply_through(&mut runtime, second, 9_500);
        assert_eq!(runtime.status().applied_log_time_ms, Some(5_000));
    }
}
