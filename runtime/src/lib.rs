//! `runtime`: the engine runtime, the shell that feeds the sans-io `engine` from the
//! requests log and publishes its outcomes.
//!
//! ```text
//!  requests log ──► reader ──(batches of decoded records)──► engine ──(outcomes)──► publisher ──► outcomes log
//!       ▲            thread        bounded channel           thread   bounded       thread
//!       │                                                      │ every N records / T ms:
//!       │ Tick                                                 │ a copy of the state (cheap:
//!    ticker ◄── next_due_ms, applied offset (shared) ◄─────────┤ copy-on-write), try_send
//!    thread                                                    ▼
//!                                    snapshot thread: encode, hash, wait until published, write
//! ```
//!
//! - **reader** (`reader.rs`): polls the requests [`requestlog::LogReader`] and decodes each record
//!   with `engine::wire::decode_request`. A record that does not decode still goes on, as
//!   an error the engine answers with `apply_undecodable`: never a crash, never a skip.
//!   With [`RuntimeOptions::apply_before_durable`] on a log that allows it (embedded), the
//!   reader is speculative: it sees a group commit while its fsync is in flight, and the
//!   publisher and the snapshot thread hold what the engine derived until the log's
//!   [`requestlog::DurableEnd`] covers it (a failed sync stops the runtime).
//! - **engine** (`applier.rs`): owns the [`Engine`]; applies strictly in offset order, in
//!   batches; does no I/O (its only waits are on channels: a slow publisher pushes back).
//!   It hands copies of the state to the snapshot thread (`try_send`, never waiting) and,
//!   when idle, asks it for the state hash of the current state. Its outcomes name users by
//!   number; each batch goes with the names of the users it numbered (`applier::Applied`).
//! - **publisher** (`publisher.rs`): names the outcomes' users from its own table
//!   (`engine::UserNames`), then encodes outcomes as frames
//!   (`engine::wire::encode_outcome_frames`: an outcome of any size becomes records of at
//!   most `OUTCOME_FRAME_BYTES_MAX` bytes) and appends them to the outcomes log in appends
//!   bounded in records and bytes, when this replica is primary. Who is
//!   primary is decided by the log: a `Promote { node }` record names the primary from its
//!   offset on (the named replica opens the outcomes writer there — in Kafka this fences
//!   the old primary's producer — and publishes what the outcomes log lacks; a primary
//!   that reads a record naming another steps down). At start every replica is catching
//!   up and publishes nothing until it has caught up with the log's end as of its start,
//!   then takes the role the log gives it (the configured role only while no record names
//!   anyone). The rules are [`role`]'s, a sans-io state machine the publisher feeds with
//!   the outcomes it handles and whose actions (open the writer, step down) it carries out.
//!   Opening the writer reads the outcomes log's last complete outcome first, so outcomes
//!   that were already published are not published twice, and an outcome whose frames
//!   were cut short (a publisher that stopped in the middle) is published again from
//!   frame 0. A standby keeps a bounded tail of outcomes for its promotion; what the
//!   outcomes log lacks beyond that tail is re-derived by a replay from offset 0.
//! - **ticker** (`ticker.rs`): appends a `Command::Tick` record to the requests log when
//!   the engine's `next_due_ms()` has passed by the wall clock, the engine is caught up and
//!   no tick it wrote is still unapplied. It wakes every `tick_interval_ms`, so a hold
//!   expires within about `tick_interval_ms` (plus one append) of its due time.
//! - **snapshots** (`snapshots.rs`): encodes a state copy, computes its hash, waits until
//!   every outcome it covers is published (so a restart from it loses no outcome), writes
//!   it to the [`SnapshotStore`].
//!
//! Every component is a step function (`step(now_ms, wait) -> Progress`: one bounded unit
//! of work, a poll, a batch, a job, a look at the clock) that never sleeps; its only wait is
//! the `wait` it is given on its input, and a full output channel makes it return
//! [`Progress::Blocked`] with the batch kept, rather than wait. [`Runtime`] drives each one
//! from its own thread (`run`: step, and wait on the channel, the log or the clock when
//! idle or blocked). [`SteppedRuntime`] (`stepped.rs`) holds the same components with no
//! thread: the simulation tests (`tests/simulation.rs`) pick which one steps, on virtual
//! time, with seeded faults in `requestlog::MemoryLog` and `snapshotter::MemoryStore`, and
//! check the invariants below after every seed. Time reaches the components only as
//! `now_ms` (the wall clock in production, for ticks and snapshot times; a monotonic clock
//! for the engine's intervals), so a simulated replica sees only virtual time. (The
//! publisher still pauses between retries of a failed append in production.)
//!
//! On start, [`Runtime::start`] loads the newest valid snapshot of this requests log that
//! fits its end (falling back to older ones, then to an empty engine; a snapshot from
//! another log, or only snapshots ahead of the log's end, stop the start: see
//! `snapshotter`), seeks the reader to its offset + 1, and the threads replay the tail;
//! outcomes that were never published are published then.
//!
//! Architecture invariant: every request offset gets exactly one whole outcome in the
//! outcomes log, in offset order, across crashes and restarts (the publisher's dedupe
//! above, and snapshots never cover unpublished outcomes). The frames of an outcome cut
//! short by a crash may precede its whole copy; readers reassemble and skip them.
//!
//! Architecture invariant: the state after applying offsets `0..=n` is the same, and has
//! the same hash, whether reached by one run, by restarts, or by [`replay`].
//!
//! Other files: `logs.rs` ([`OpenLog`], how the runtime opens log handles, and
//! [`last_published_offset`]); `stepped.rs` ([`SteppedRuntime`], [`Progress`]); `shared.rs` (status, stop flag, the role machine);
//! `role.rs` (the role rules, sans-io); `replay.rs` (offline
//! replay for tools and tests).

mod applier;
mod logs;
mod publisher;
mod reader;
mod replay;
pub mod role;
mod shared;
mod snapshots;
mod stepped;
mod ticker;

pub use logs::{last_published_offset, OpenLog};
pub use replay::{replay, ReplayProgress, ReplaySummary};
pub use role::Role;
pub use stepped::{Component, Progress, SteppedRuntime};

use engine::wire::{RecentOutcomes, SharedRecentOutcomes};
use engine::{Engine, EngineConfig};
use requestlog::LogError;
use shared::Shared;
use snapshotter::{SnapshotError, SnapshotStore};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The outcomes a publisher keeps for the readers in its process
/// ([`RuntimeHandle::recent_outcomes`]): a few group commits' worth under load (a reader
/// further behind decodes what it reads, as it does at start). Perf: few, so the one it
/// lets go is still in the cache (with 4,096 that drop was 7% of the publisher's time).
pub const RECENT_OUTCOMES_MAX: usize = 256;

/// How a runtime runs.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// Must be the same on every replica, or they diverge.
    pub engine: EngineConfig,
    /// The role while the log names no primary (see `publisher.rs` for the rules).
    pub role: Role,
    /// This replica's name, as `Promote` records name it. Replicas need distinct names.
    pub node: String,
    /// How often the ticker looks for due timers.
    pub tick_interval_ms: u64,
    /// A snapshot is taken after this many applied records...
    pub snapshot_every_records: u64,
    /// ...or this long after the last one, if any record was applied since.
    pub snapshot_every_ms: u64,
    /// Records per reader poll, which is also the engine's batch.
    pub batch_records_max: usize,
    /// Batches in flight on each channel (reader → engine → publisher).
    pub channel_batches_max: usize,
    /// Records (outcome frames) per append to the outcomes log (at most the log's
    /// `append_records_max`).
    pub publish_records_max: usize,
    /// Bytes per append to the outcomes log: at most the embedded log's
    /// `batch_size_max_bytes` (one group commit), and at least one frame
    /// (`engine::wire::OUTCOME_FRAME_BYTES_MAX`). An outcome larger than this is published
    /// over several appends.
    pub publish_bytes_max: usize,
    /// How long the engine waits for a record before it counts as idle.
    pub idle_ms: u64,
    /// Once the log is quiet (five `idle_ms` waits without a record), the state hash in
    /// the status is refreshed, at most this often.
    pub idle_hash_every_ms: u64,
    /// The newest outcomes a standby keeps, to publish if it is promoted.
    pub standby_outcomes_max: usize,
    /// Automatic fail-over: a standby promotes itself once outcomes it applied have gone
    /// unanswered by the outcomes log for this long (`role.rs`; the driver calls
    /// [`RuntimeHandle::auto_promote`]). 0: off.
    pub auto_promote_after_ms: u64,
    /// The engine applies a group commit of the requests log while its `fdatasync` is in
    /// flight, where the log allows it (an embedded log: `OpenLog::open_speculative_reader`);
    /// the publisher and the snapshot thread hold back whatever it derived until the
    /// records are durable, and a failed sync stops the runtime. Saves the engine's share
    /// of a write's latency; changes no outcome.
    pub apply_before_durable: bool,
}

impl RuntimeOptions {
    pub fn new(engine: EngineConfig) -> RuntimeOptions {
        RuntimeOptions {
            engine,
            role: Role::Primary,
            node: "engine".to_string(),
            tick_interval_ms: 500,
            snapshot_every_records: 1_000_000,
            snapshot_every_ms: 60_000,
            batch_records_max: 4_096,
            channel_batches_max: 16,
            publish_records_max: 4_096,
            publish_bytes_max: 8 * 1024 * 1024,
            idle_ms: 20,
            idle_hash_every_ms: 1_000,
            standby_outcomes_max: 1_000_000,
            auto_promote_after_ms: 0,
            apply_before_durable: false,
        }
    }

    fn assert_valid(&self) {
        assert!(self.tick_interval_ms > 0);
        assert!(self.snapshot_every_records > 0);
        assert!(self.snapshot_every_ms > 0);
        assert!(self.batch_records_max > 0);
        assert!(self.channel_batches_max > 0);
        assert!(self.publish_records_max > 0);
        assert!(
            self.publish_bytes_max >= engine::wire::OUTCOME_FRAME_BYTES_MAX,
            "one outcome frame must fit an append"
        );
        assert!(self.idle_ms > 0);
        assert!(!self.node.is_empty());
        assert!(
            self.role != Role::CatchingUp,
            "the configured role is primary or standby"
        );
    }
}

/// The logs a runtime works on.
pub struct Logs {
    /// Read by the reader thread; written by the ticker.
    pub requests: Arc<dyn OpenLog>,
    /// Written by the publisher (when primary); read once to find the last published outcome.
    pub outcomes: Arc<dyn OpenLog>,
}

/// The last snapshot this runtime wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotStatus {
    pub offset: u64,
    /// Wall-clock milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub state_bytes: u64,
    /// How long the engine thread paused to copy the state.
    pub pause_us: u64,
    /// Encoding and hashing, on the snapshot thread.
    pub encode_ms: u64,
    /// The store's write.
    pub write_ms: u64,
}

/// What `GET /v1/admin/engine` shows, and what tests wait on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineStatus {
    pub role: Role,
    /// The last applied request offset.
    pub applied_offset: Option<u64>,
    /// The engine's clock after the last applied record: the log time (milliseconds since
    /// the Unix epoch, from the records' timestamps) its time rules (hold expiry, the
    /// idempotency window) go by. `None` until a record is applied.
    pub applied_log_time_ms: Option<u64>,
    /// The requests log's end (next offset to be written), as last seen by the reader.
    pub log_end_offset: u64,
    /// The highest request offset whose outcome is known to be in the outcomes log (all of
    /// its frames).
    pub published_offset: Option<u64>,
    pub last_snapshot: Option<SnapshotStatus>,
    /// The state hash (hex) as of `state_hash_offset`: the last idle moment, snapshot or start.
    pub state_hash: String,
    pub state_hash_offset: Option<u64>,
    /// Set when a thread failed; the runtime has stopped.
    pub failure: Option<String>,
    /// The offset of the `Configure` record this replica wrote for its current term as
    /// primary (`ticker.rs`); `None` on a standby and until it is written.
    pub configure_offset: Option<u64>,
}

impl EngineStatus {
    /// Every record the reader has seen as written is applied.
    pub fn caught_up(&self) -> bool {
        self.applied_offset.map_or(0, |applied| applied + 1) >= self.log_end_offset
    }

    /// Every applied record's outcome is published.
    pub fn published_all(&self) -> bool {
        self.published_offset >= self.applied_offset
    }

    /// A primary has written its `Configure` record for this term and applied it, so it
    /// appends nothing more until a timer is due (a standby appends nothing at all).
    pub fn configured(&self) -> bool {
        self.role != Role::Primary
            || self
                .configure_offset
                .is_some_and(|offset| self.applied_offset >= Some(offset))
    }
}

/// The runtime boundary's error.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("requests log: {0}")]
    RequestsLog(#[source] LogError),
    #[error("outcomes log: {0}")]
    OutcomesLog(#[source] LogError),
    #[error("snapshots: {0}")]
    Snapshots(#[from] SnapshotError),
    #[error("the outcomes log holds an undecodable outcome at offset {offset}: {reason}")]
    CorruptOutcome { offset: u64, reason: String },
    #[error("the requests log's Configure record at offset {offset}: {mismatch}")]
    ConfigMismatch {
        offset: u64,
        mismatch: engine::config::ConfigMismatch,
    },
    #[error("cannot promote: {0}")]
    PromotionRefused(#[from] role::PromotionRefused),
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the engine runtime failed: {0}")]
    Failed(String),
}

/// A cheap, cloneable handle for status and promotion (for the HTTP layer).
#[derive(Clone)]
pub struct RuntimeHandle {
    shared: Arc<Shared>,
    requests: Arc<dyn OpenLog>,
    node: String,
}

impl RuntimeHandle {
    pub fn status(&self) -> EngineStatus {
        self.shared.status()
    }

    /// The outcomes this runtime's publisher appended last (the newest
    /// [`RECENT_OUTCOMES_MAX`]), for the readers of its outcomes log in this process, which
    /// take them instead of decoding what they read
    /// ([`engine::wire::OutcomeAssembler::push_at_known`]). Kept from the first call on.
    pub fn recent_outcomes(&self) -> SharedRecentOutcomes {
        Arc::clone(
            self.shared
                .recent_outcomes
                .get_or_init(|| Arc::new(Mutex::new(RecentOutcomes::new(RECENT_OUTCOMES_MAX)))),
        )
    }

    /// Asks for this standby to become primary: appends a `Promote` record naming this
    /// node to the requests log and returns its offset. Every replica applies it at that
    /// offset: this one opens the outcomes writer there (fencing the old primary's Kafka
    /// producer) and publishes what the outcomes log lacks; a primary that reads it steps
    /// down. Returns once the record is durable; the status's role says when it is done.
    pub fn promote(&self) -> Result<u64, RuntimeError> {
        let (asked, actions) = self.shared.role_input(|role| role.request_promotion());
        asked?;
        self.append_promote_if_asked(actions)
            .map(|offset| offset.expect("a promotion asked for is an AppendPromote"))
    }

    /// Automatic fail-over's inputs: the outcomes log's end as just read, and the time
    /// (milliseconds on a clock that never goes back). When the role machine says the
    /// primary is gone (`role.rs`), appends a `Promote` record naming this node and
    /// returns its offset. Does nothing unless `auto_promote_after_ms` is set.
    pub fn auto_promote(
        &self,
        outcomes_end_offset: u64,
        now_ms: u64,
    ) -> Result<Option<u64>, RuntimeError> {
        let ((), actions) = self.shared.role_input(|role| {
            role.outcomes_log_end(outcomes_end_offset);
            role.tick(now_ms);
        });
        self.append_promote_if_asked(actions)
    }

    fn append_promote_if_asked(
        &self,
        actions: Vec<role::Action>,
    ) -> Result<Option<u64>, RuntimeError> {
        let mut appended = None;
        for action in actions {
            assert_eq!(
                action,
                role::Action::AppendPromote,
                "the handle's inputs ask for nothing else"
            );
            match append_promote(self.requests.as_ref(), &self.node) {
                Ok(offset) => appended = Some(offset),
                Err(error) => {
                    self.shared.role_input(|role| role.promote_append_failed());
                    return Err(error);
                }
            }
        }
        Ok(appended)
    }

    /// This replica's node name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Waits until `condition` holds on the status (true), or the runtime stops or
    /// `timeout` passes (false). Returns the last status seen.
    pub fn wait_for(
        &self,
        timeout: Duration,
        condition: impl Fn(&EngineStatus) -> bool,
    ) -> (EngineStatus, bool) {
        self.shared.wait_for(timeout, condition)
    }
}

/// Appends a `Promote` record naming `node` to the requests log; returns its offset.
/// (`boxoffice promote` calls this directly: the log, not a process, is what promotes.)
pub fn append_promote(requests: &dyn OpenLog, node: &str) -> Result<u64, RuntimeError> {
    let record = engine::wire::encode_request(&engine::Request::new(engine::Command::Promote {
        node: node.to_string(),
    }));
    let writer = requests.open_writer().map_err(RuntimeError::RequestsLog)?;
    let appended = writer
        .append(vec![record])
        .map_err(RuntimeError::RequestsLog)?;
    Ok(appended.first().expect("one record appended").offset)
}

/// A running engine runtime. Stop it with [`Runtime::shutdown`]; dropping it stops it too.
pub struct Runtime {
    handle: RuntimeHandle,
    threads: Vec<(&'static str, JoinHandle<()>)>,
    /// Dropped at shutdown, which wakes the ticker from its wait.
    ticker_stop: Option<crossbeam_channel::Sender<()>>,
}

impl Runtime {
    /// Loads the newest valid snapshot, positions the reader after it and starts the
    /// threads, which replay the log's tail and then follow it. Returns once the threads
    /// run (not once caught up: see [`EngineStatus::caught_up`]).
    pub fn start(
        options: RuntimeOptions,
        logs: Logs,
        store: Box<dyn SnapshotStore>,
    ) -> Result<Runtime, RuntimeError> {
        let (handle, parts) = Parts::assemble(options, logs, store, Driver::Threads)?;
        let mut runtime = Runtime {
            handle,
            threads: Vec::new(),
            ticker_stop: None,
        };
        let (ticker_stop, ticker_stopped) = crossbeam_channel::bounded::<()>(0);
        runtime.ticker_stop = Some(ticker_stop);
        let Parts {
            reader,
            applier,
            publisher,
            snapshots,
            mut ticker,
        } = parts;
        ticker.stopped = ticker_stopped;
        runtime.spawn("reader", move || reader.run())?;
        runtime.spawn("engine", move || applier.run())?;
        runtime.spawn("publisher", move || publisher.run())?;
        runtime.spawn("snapshot", move || snapshots.run())?;
        runtime.spawn("ticker", move || ticker.run())?;
        Ok(runtime)
    }

    fn spawn(
        &mut self,
        name: &'static str,
        body: impl FnOnce() + Send + 'static,
    ) -> Result<(), RuntimeError> {
        let thread = std::thread::Builder::new()
            .name(format!("engine-{name}"))
            .spawn(body)
            .map_err(|error| {
                self.handle.shared.request_stop();
                RuntimeError::Thread(error)
            })?;
        self.threads.push((name, thread));
        Ok(())
    }

    pub fn handle(&self) -> RuntimeHandle {
        self.handle.clone()
    }

    pub fn status(&self) -> EngineStatus {
        self.handle.status()
    }

    /// See [`RuntimeHandle::promote`].
    pub fn promote(&self) -> Result<u64, RuntimeError> {
        self.handle.promote()
    }

    /// Stops reading, lets the engine apply what was read and the publisher publish it,
    /// joins every thread. Returns the runtime's failure, if it had one.
    pub fn shutdown(mut self) -> Result<EngineStatus, RuntimeError> {
        self.stop_and_join();
        let status = self.handle.status();
        match &status.failure {
            Some(failure) => Err(RuntimeError::Failed(failure.clone())),
            None => Ok(status),
        }
    }

    fn stop_and_join(&mut self) {
        self.handle.shared.request_stop();
        self.ticker_stop = None;
        for (name, thread) in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!(thread = name, "engine runtime thread panicked");
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// What drives the runtime's step functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Driver {
    /// One thread each, waiting on channels and sleeping between retries ([`Runtime`]).
    Threads,
    /// A single-threaded simulator on virtual time ([`SteppedRuntime`]): nothing waits.
    Simulator { now_ms: u64 },
}

/// The runtime's components, connected by their channels, not running yet.
pub(crate) struct Parts {
    pub(crate) reader: reader::Reader,
    pub(crate) applier: applier::Applier,
    pub(crate) publisher: publisher::Publisher,
    pub(crate) snapshots: snapshots::SnapshotThread,
    pub(crate) ticker: ticker::Ticker,
}

impl Parts {
    /// Loads the newest valid snapshot, positions the reader after it and builds the
    /// components (see [`Runtime::start`]).
    pub(crate) fn assemble(
        options: RuntimeOptions,
        logs: Logs,
        store: Box<dyn SnapshotStore>,
        driver: Driver,
    ) -> Result<(RuntimeHandle, Parts), RuntimeError> {
        options.assert_valid();
        let mut reader = logs
            .requests
            .open_reader()
            .map_err(RuntimeError::RequestsLog)?;
        let log_end_offset = reader.end_offset().map_err(RuntimeError::RequestsLog)?;
        let current_log = snapshotter::CurrentLog {
            log_id: logs.requests.log_id(),
            end_offset: log_end_offset,
        };
        let recovery = snapshotter::load_newest(store.as_ref(), &options.engine, &current_log)?;
        let (engine, snapshot) = match recovery.loaded {
            Some(loaded) => (loaded.engine, Some(loaded.info)),
            None => (Engine::new(options.engine.clone()), None),
        };
        let start_offset = engine.applied_offset().map_or(0, |applied| applied + 1);
        assert!(
            start_offset <= log_end_offset,
            "a loaded snapshot fits the log"
        );
        // The snapshot fits the durable log (above); the engine may read further.
        let durable = match options.apply_before_durable {
            true => logs.requests.open_speculative_reader(),
            false => None,
        };
        let durable = durable.map(|(speculative, durable)| {
            reader = speculative;
            durable
        });
        if start_offset != reader.position() {
            reader
                .seek(start_offset)
                .map_err(RuntimeError::RequestsLog)?;
        }
        // Read only: the writer is opened once the log says this replica is primary.
        let published_at_start = last_published_offset(logs.outcomes.as_ref())?;
        let status = EngineStatus {
            // Every replica starts catching up: it publishes nothing until it has caught
            // up and the log says it is primary (`role.rs`).
            role: Role::CatchingUp,
            applied_offset: engine.applied_offset(),
            applied_log_time_ms: engine.applied_offset().map(|_| engine.now_ms()),
            log_end_offset,
            published_offset: published_at_start,
            last_snapshot: snapshot.as_ref().map(|info| SnapshotStatus {
                offset: info.offset,
                at_ms: info.created_at_ms,
                state_bytes: info.state_bytes,
                pause_us: 0,
                encode_ms: 0,
                write_ms: 0,
            }),
            state_hash: engine.state_hash_hex(),
            state_hash_offset: engine.applied_offset(),
            failure: None,
            configure_offset: None,
        };
        let mut role = role::RoleMachine::new(role::RoleStart {
            node: options.node.clone(),
            configured: options.role,
            named_primary: engine.epoch().1.map(str::to_string),
            next_offset: start_offset,
            log_end_offset,
            auto_promote_after_ms: options.auto_promote_after_ms,
        });
        tracing::info!(node = options.node, role = options.role.as_str(), start_offset, log_end_offset, snapshot = ?snapshot.map(|info| info.offset), "engine runtime starting");
        // What the machine decided at start (nothing to replay: caught up at once) is the
        // publisher's to carry out. Taken here, before any handle exists: a handle's input
        // polls every queued action, and would take (and lose) an `OpenWriter` that its
        // caller cannot carry out.
        let start_actions: Vec<role::Action> = std::iter::from_fn(|| role.poll_action()).collect();
        let shared = Arc::new(Shared::new(status, role));
        shared.next_due_ms.store(
            engine.next_due_ms().unwrap_or(shared::NO_TIMER),
            std::sync::atomic::Ordering::Release,
        );
        let handle = RuntimeHandle {
            shared: Arc::clone(&shared),
            requests: Arc::clone(&logs.requests),
            node: options.node.clone(),
        };
        let (now_ms, append_retry_pause) = match driver {
            Driver::Threads => (monotonic_ms(), publisher::APPEND_RETRY_PAUSE),
            Driver::Simulator { now_ms } => (now_ms, Duration::ZERO),
        };
        let users = engine.user_names();
        let (records_sender, records) = std::sync::mpsc::sync_channel(options.channel_batches_max);
        let (outcomes_sender, outcomes) =
            std::sync::mpsc::sync_channel(options.channel_batches_max);
        // One job waiting plus one being written: the engine never queues more copies.
        let (jobs_sender, jobs) = crossbeam_channel::bounded(1);
        let next_offset = start_offset;
        let parts = Parts {
            reader: reader::Reader {
                shared: Arc::clone(&shared),
                reader,
                sender: records_sender,
                batch_records_max: options.batch_records_max,
                end_refreshed_at_ms: None,
                failures: 0,
                outbox: None,
            },
            applier: applier::Applier::new(
                Arc::clone(&shared),
                engine,
                records,
                outcomes_sender,
                jobs_sender,
                &options,
                now_ms,
            ),
            publisher: publisher::Publisher::new(
                Arc::clone(&shared),
                publisher::PublisherLogs {
                    outcomes: Arc::clone(&logs.outcomes),
                    requests: Arc::clone(&logs.requests),
                },
                outcomes,
                publisher::PublisherStart {
                    published_at_start,
                    next_offset,
                    actions: start_actions,
                    users,
                },
                &options,
                append_retry_pause,
                durable.clone(),
            ),
            snapshots: snapshots::SnapshotThread::new(
                Arc::clone(&shared),
                store,
                jobs,
                logs.requests.log_id(),
                Arc::clone(&logs.outcomes),
                durable,
            ),
            ticker: ticker::Ticker {
                shared,
                requests: logs.requests,
                interval: Duration::from_millis(options.tick_interval_ms),
                config: options.engine.stamp(),
                // Replaced by the thread driver; the simulator never waits on it.
                stopped: crossbeam_channel::never(),
                writer: None,
                outstanding: None,
                configured: false,
            },
        };
        Ok((handle, parts))
    }
}

/// Milliseconds on a clock that never goes back (for intervals, not for log times).
pub(crate) fn monotonic_ms() -> u64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

pub(crate) fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}
