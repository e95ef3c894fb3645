//! The simulated cluster (TigerBeetle's VOPR is the model): replicas of the real runtime
//! (`runtime::SteppedRuntime`: reader, engine, publisher, snapshots, ticker and the role
//! machine, as step functions) on two in-memory logs with seeded faults
//! (`requestlog::MemoryLog`) and in-memory snapshot stores, on virtual time. A seeded
//! scheduler picks, step by step, which replica's component runs, when clients append
//! requests, when a replica or a log crashes and restarts, when a standby is promoted, and
//! how far the clock moves. At the end the faults stop, every replica restarts and runs
//! until the cluster is quiet, and the seed asserts:
//! - every acknowledged append is still in the requests log, unchanged, and every outcome a
//!   client saw is still in the outcomes log, unchanged;
//! - the outcomes log holds exactly one whole outcome per request offset, in offset order,
//!   each equal to what an engine applying the requests log from offset 0 computes;
//! - every replica's state hash equals that of `runtime::replay` from offset 0.
//!
//! `seeds` runs `SIM_SEEDS` seeds (default below) from `SIM_SEED_FIRST` (default 0). A
//! failing seed panics with the command that runs just that seed again (`one_seed`, with
//! `SIM_SEED`). Everything a seed does follows from the seed: no threads, no wall clock.

use engine::wire::OutcomeAssembler;
use engine::{
    BookingId, CategorySpec, Command, Engine, EngineConfig, EventId, EventSpec, HoldId, Outcome,
    PoolSpec, Reply, Request, RowSpec, SectionSpec, Selection, WaiterId, WaitlistPolicy,
};
use requestlog::{FaultPlan, LogReader, LogWriter, MemoryLog};
use runtime::{Component, Logs, Role, RuntimeOptions, SteppedRuntime};
use snapshotter::MemoryStore;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Seeds per run of `seeds`: a few hundred within about a minute in a debug build.
const SEEDS_DEFAULT: u64 = 300;
/// Scheduler steps per seed before the cluster is left to settle.
const STEPS_PER_SEED: u32 = 1_500;
/// Steps the settling cluster gets to become quiet before the seed counts as stuck.
const SETTLE_ROUNDS_MAX: u32 = 20_000;
/// The virtual clock's start: any realistic wall-clock time.
const START_MS: u64 = 1_800_000_000_000;

#[test]
fn seeds() {
    let first = env_u64("SIM_SEED_FIRST").unwrap_or(0);
    let count = env_u64("SIM_SEEDS").unwrap_or(SEEDS_DEFAULT);
    let started = Instant::now();
    // Seeds are independent: one worker per core, each taking the next seed.
    let workers = std::thread::available_parallelism().map_or(1, |cores| cores.get().min(4));
    let next_seed = std::sync::atomic::AtomicU64::new(first);
    let totals = std::sync::Mutex::new(Summary::default());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let seed = next_seed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if seed >= first + count {
                    return;
                }
                let summary = run_seed_or_explain(seed);
                totals
                    .lock()
                    .expect("no worker panics holding it")
                    .add(&summary);
            });
        }
    });
    let totals = totals.into_inner().expect("no worker panics holding it");
    let elapsed = started.elapsed();
    eprintln!(
        "simulation: {count} seeds in {:.1} s ({:.0} seeds per minute); {totals:?}",
        elapsed.as_secs_f64(),
        count as f64 * 60.0 / elapsed.as_secs_f64().max(1e-9),
    );
    // The faults the plan promises did happen, somewhere in the run.
    if count >= 100 {
        assert!(
            totals.replica_crashes > 0 && totals.log_crashes > 0,
            "{totals:?}"
        );
        assert!(
            totals.promotions > 0 && totals.snapshots_loaded > 0,
            "{totals:?}"
        );
        assert!(
            totals.appends_torn > 0 && totals.fsyncs_failed > 0,
            "{totals:?}"
        );
        assert!(
            totals.seeds_without_fencing > 0 && totals.outcomes_published_twice > 0,
            "{totals:?}"
        );
    }
}

/// Runs `SIM_SEED` (seed 0 without it): the command a failing seed prints.
#[test]
fn one_seed() {
    let seed = env_u64("SIM_SEED").unwrap_or(0);
    let summary = run_seed_or_explain(seed);
    eprintln!("seed {seed}: {summary:?}");
}

/// Found by seed 2: a handle's input (a promotion, automatic fail-over's tick) given
/// before the publisher's first step polled the role machine's decision at start, an
/// `OpenWriter` the handle cannot carry out: `promote` dropped it (the primary never
/// opened its writer), `auto_promote` panicked on it. The decision is the publisher's now.
#[test]
fn handle_inputs_before_the_first_step_leave_the_start_decision_to_the_publisher() {
    for auto_promote in [false, true] {
        let requests = MemoryLog::new("memory:requests", FaultPlan::NONE, 1);
        let outcomes = MemoryLog::fencing("memory:outcomes", FaultPlan::NONE, 1);
        let mut options = RuntimeOptions::new(EngineConfig::default());
        options.auto_promote_after_ms = if auto_promote { 1_000 } else { 0 };
        let logs = Logs {
            requests: Arc::new(requests.clone()),
            outcomes: Arc::new(outcomes.clone()),
        };
        let store = Box::new(MemoryStore::new(1));
        let mut replica = SteppedRuntime::start(options, logs, store, START_MS).unwrap();
        let handle = replica.handle();
        if auto_promote {
            assert_eq!(handle.auto_promote(0, START_MS).unwrap(), None);
        } else {
            assert!(matches!(
                handle.promote(),
                Err(runtime::RuntimeError::PromotionRefused(
                    runtime::role::PromotionRefused::Primary
                ))
            ));
        }
        for _ in 0..20 {
            for component in Component::ALL {
                replica.step(component, START_MS);
            }
        }
        let status = replica.status();
        assert_eq!(status.role, Role::Primary, "{status:?}");
        assert!(status.configured(), "{status:?}");
        assert_eq!(
            outcomes.visible_records().len(),
            1,
            "the Configure record's outcome"
        );
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")),
    )
}

fn run_seed_or_explain(seed: u64) -> Summary {
    match std::panic::catch_unwind(|| Simulation::new(seed).run()) {
        Ok(summary) => summary,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!(
                "simulation seed {seed} failed: {message}\n\
                 run just this seed again with:\n    \
                 SIM_SEED={seed} cargo test -p boxoffice-system-tests -- simulation::one_seed --nocapture"
            );
        }
    }
}

/// What a seed did, for the run's summary (and to show the faults happen).
#[derive(Clone, Debug, Default)]
struct Summary {
    requests: u64,
    outcomes_seen: u64,
    replica_crashes: u64,
    replica_failures: u64,
    log_crashes: u64,
    promotions: u64,
    operator_promotions_after_a_race: u64,
    snapshots_loaded: u64,
    appends_failed: u64,
    appends_torn: u64,
    fsyncs_failed: u64,
    writers_fenced: u64,
    /// Seeds whose outcomes log does not fence (Kafka's idempotent producer, the default).
    seeds_without_fencing: u64,
    /// Outcomes published a second time (seen again by a reader, identical): by an old
    /// primary that had not read its `Promote` yet, on a log that does not fence.
    outcomes_published_twice: u64,
}

impl Summary {
    fn add(&mut self, other: &Summary) {
        self.requests += other.requests;
        self.outcomes_seen += other.outcomes_seen;
        self.replica_crashes += other.replica_crashes;
        self.replica_failures += other.replica_failures;
        self.log_crashes += other.log_crashes;
        self.promotions += other.promotions;
        self.operator_promotions_after_a_race += other.operator_promotions_after_a_race;
        self.snapshots_loaded += other.snapshots_loaded;
        self.appends_failed += other.appends_failed;
        self.appends_torn += other.appends_torn;
        self.fsyncs_failed += other.fsyncs_failed;
        self.writers_fenced += other.writers_fenced;
        self.seeds_without_fencing += other.seeds_without_fencing;
        self.outcomes_published_twice += other.outcomes_published_twice;
    }
}

/// The scheduler's randomness: SplitMix64, seeded.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        self.next() % bound
    }

    /// True `per_mille` times in a thousand.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// One replica: its options and snapshot store survive its crashes; its runtime does not.
struct Replica {
    options: RuntimeOptions,
    store: MemoryStore,
    runtime: Option<SteppedRuntime>,
}

/// Requests the clients appended and outcomes they saw.
#[derive(Default)]
struct Clients {
    /// Acknowledged appends: offset → payload.
    acknowledged: BTreeMap<u64, Vec<u8>>,
    /// Payloads whose append failed, to retry (with their idempotency key, when they have one).
    to_retry: Vec<Vec<u8>>,
    next_key: u64,
    events: u64,
    holds: Vec<(String, HoldId)>,
    bookings: Vec<(String, BookingId)>,
    waiters: Vec<(String, WaiterId)>,
}

/// Follows the outcomes log as a client would, and checks its order as it goes.
struct Observer {
    /// The outcomes log fences older writers (a transactional Kafka producer): every
    /// outcome is published once. Otherwise an old primary may publish again, identically,
    /// outcomes up to the `Promote` that replaced it, which readers drop by offset.
    fencing: bool,
    reader: requestlog::MemoryReader,
    assembler: OutcomeAssembler,
    /// Every outcome seen (acknowledged to a client), by request offset.
    seen: BTreeMap<u64, Outcome>,
}

struct Simulation {
    random: Random,
    now_ms: u64,
    config: EngineConfig,
    requests: MemoryLog,
    outcomes: MemoryLog,
    replicas: Vec<Replica>,
    clients: Clients,
    client_writer: Arc<dyn LogWriter>,
    observer: Observer,
    summary: Summary,
}

impl Simulation {
    fn new(seed: u64) -> Simulation {
        let mut random = Random(seed);
        let requests_faults = FaultPlan {
            append_failed_per_mille: random.below(30) as u32,
            append_torn_per_mille: random.below(30) as u32,
            fsync_failed_per_mille: random.below(10) as u32,
            visibility_delay_steps_max: random.below(20) as u32,
        };
        // No delayed visibility on the outcomes log: a primary that opens the writer reads
        // the log's tail and trusts it is whole (a transactional Kafka writer, once it has
        // fenced the old one, reads every committed record).
        let outcomes_faults = FaultPlan {
            append_failed_per_mille: random.below(30) as u32,
            append_torn_per_mille: random.below(30) as u32,
            fsync_failed_per_mille: random.below(10) as u32,
            visibility_delay_steps_max: 0,
        };
        let requests = MemoryLog::new("memory:requests", requests_faults, random.next());
        // Odd seeds: an outcomes log that does not fence (Kafka's default idempotent
        // producer). By the seed, not a draw, so that even seeds run as they always did.
        let fencing = seed.is_multiple_of(2);
        let outcomes = if fencing {
            MemoryLog::fencing("memory:outcomes", outcomes_faults, random.next())
        } else {
            MemoryLog::new("memory:outcomes", outcomes_faults, random.next())
        };
        requests.set_now_ms(START_MS);
        outcomes.set_now_ms(START_MS);
        let config = EngineConfig::default();
        let replica_count = 1 + random.below(3) as usize;
        let replicas = (0..replica_count)
            .map(|index| Replica {
                options: replica_options(&mut random, &config, index),
                store: snapshot_store(&mut random),
                runtime: None,
            })
            .collect();
        let client_writer: Arc<dyn LogWriter> = Arc::new(requests.writer());
        let observer = Observer {
            fencing,
            reader: outcomes.reader(),
            assembler: OutcomeAssembler::new(),
            seen: BTreeMap::new(),
        };
        Simulation {
            random,
            now_ms: START_MS,
            config,
            requests,
            outcomes,
            replicas,
            clients: Clients::default(),
            client_writer,
            observer,
            summary: Summary::default(),
        }
    }

    fn run(mut self) -> Summary {
        for index in 0..self.replicas.len() {
            self.start_replica(index);
        }
        for _ in 0..STEPS_PER_SEED {
            self.step();
        }
        self.settle();
        self.check();
        let (requests, outcomes) = (self.requests.fault_counts(), self.outcomes.fault_counts());
        self.summary.appends_failed = requests.appends_failed + outcomes.appends_failed;
        self.summary.appends_torn = requests.appends_torn + outcomes.appends_torn;
        self.summary.fsyncs_failed = requests.fsyncs_failed + outcomes.fsyncs_failed;
        self.summary.writers_fenced = outcomes.writers_fenced;
        self.summary.seeds_without_fencing = u64::from(!self.observer.fencing);
        self.summary.requests = self.requests.visible_records().len() as u64;
        self.summary.outcomes_seen = self.observer.seen.len() as u64;
        self.summary
    }

    /// One scheduler step: the clock moves, delayed records may show, then one thing
    /// happens.
    fn step(&mut self) {
        self.now_ms += self.random.below(25);
        self.requests.set_now_ms(self.now_ms);
        self.outcomes.set_now_ms(self.now_ms);
        self.requests.advance();
        self.outcomes.advance();
        let roll = self.random.below(1000);
        match roll {
            0..=699 => self.step_component(),
            700..=869 => self.client_appends(),
            870..=949 => self.observe(),
            950..=969 => self.auto_promote(),
            970..=977 => self.crash_replica(),
            978..=981 => self.promote(),
            982..=985 => self.crash_log(),
            _ => self.restart_crashed(),
        }
        // A log that failed an fsync refuses appends until it restarts: restart it soon.
        for log in [self.requests.clone(), self.outcomes.clone()] {
            if log.is_broken() && self.random.chance(50) {
                log.crash();
                self.summary.log_crashes += 1;
            }
        }
    }

    fn start_replica(&mut self, index: usize) {
        let replica = &mut self.replicas[index];
        assert!(replica.runtime.is_none());
        let logs = Logs {
            requests: Arc::new(self.requests.clone()),
            outcomes: Arc::new(self.outcomes.clone()),
        };
        let runtime = SteppedRuntime::start(
            replica.options.clone(),
            logs,
            Box::new(replica.store.clone()),
            self.now_ms,
        )
        .unwrap_or_else(|error| panic!("replica {} cannot start: {error}", replica.options.node));
        if runtime.status().last_snapshot.is_some() {
            self.summary.snapshots_loaded += 1;
        }
        replica.runtime = Some(runtime);
    }

    fn running(&self) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|&index| self.replicas[index].runtime.is_some())
            .collect()
    }

    fn step_component(&mut self) {
        let running = self.running();
        if running.is_empty() {
            return self.restart_crashed();
        }
        let index = *self.random.pick(&running);
        let component = *self.random.pick(&Component::ALL);
        let now_ms = self.now_ms;
        // A few steps in a row, so replicas keep up with the clients most of the time.
        for _ in 0..1 + self.random.below(4) {
            let runtime = self.replicas[index].runtime.as_mut().expect("running");
            if runtime.step(component, now_ms) == runtime::Progress::Stopped {
                break;
            }
        }
        self.note_failure(index);
    }

    /// A replica whose runtime failed exits, as the process would; its supervisor restarts
    /// it later. Only failures the faults explain are expected: anything else is a bug.
    fn note_failure(&mut self, index: usize) {
        let replica = &mut self.replicas[index];
        let Some(failure) = replica
            .runtime
            .as_ref()
            .and_then(|runtime| runtime.status().failure)
        else {
            return;
        };
        let explained = ["the log is closed", "injected", "fenced"]
            .iter()
            .any(|cause| failure.contains(cause));
        assert!(
            explained,
            "replica {} failed for no injected reason: {failure}",
            replica.options.node
        );
        replica.runtime = None;
        self.summary.replica_failures += 1;
    }

    fn crash_replica(&mut self) {
        let running = self.running();
        if running.is_empty() {
            return;
        }
        let index = *self.random.pick(&running);
        let replica = &mut self.replicas[index];
        replica.runtime = None;
        self.summary.replica_crashes += 1;
        // The crash may have torn the last snapshot written, or flipped a bit of it: the
        // restart must skip it for an older one (or a replay from offset 0).
        if replica.store.last_write_kept() {
            match self.random.below(10) {
                0 => replica
                    .store
                    .tear_last_write(1 + self.random.below(64) as usize),
                1 => replica
                    .store
                    .corrupt_last_write(self.random.next() as usize),
                _ => {}
            }
        }
    }

    fn restart_crashed(&mut self) {
        let crashed: Vec<usize> = (0..self.replicas.len())
            .filter(|&index| self.replicas[index].runtime.is_none())
            .collect();
        if crashed.is_empty() {
            return;
        }
        let index = *self.random.pick(&crashed);
        self.start_replica(index);
    }

    fn crash_log(&mut self) {
        if self.random.chance(500) {
            self.requests.crash();
        } else {
            self.outcomes.crash();
        }
        self.summary.log_crashes += 1;
    }

    /// An operator promotes a running replica (refused when it is primary already).
    fn promote(&mut self) {
        let running = self.running();
        if running.is_empty() {
            return;
        }
        let index = *self.random.pick(&running);
        let runtime = self.replicas[index].runtime.as_ref().expect("running");
        if runtime.handle().promote().is_ok() {
            self.summary.promotions += 1;
        }
    }

    /// Automatic fail-over's inputs, for the replicas that have it on.
    fn auto_promote(&mut self) {
        let outcomes_end = self.outcomes.reader().end_offset().expect("memory log");
        for replica in &self.replicas {
            if let Some(runtime) = &replica.runtime {
                if let Ok(Some(_)) = runtime.handle().auto_promote(outcomes_end, self.now_ms) {
                    self.summary.promotions += 1;
                }
            }
        }
    }

    /// Clients append one to three requests in one append (or retry a failed one).
    fn client_appends(&mut self) {
        let payloads = if !self.clients.to_retry.is_empty() && self.random.chance(300) {
            vec![self.clients.to_retry.remove(0)]
        } else {
            let count = 1 + self.random.below(3);
            (0..count)
                .map(|_| {
                    let request = self.next_request();
                    engine::wire::encode_request(&request)
                })
                .collect()
        };
        match self.client_writer.append(payloads.clone()) {
            Ok(appended) => {
                for (appended, payload) in appended.iter().zip(payloads) {
                    let earlier = self.clients.acknowledged.insert(appended.offset, payload);
                    assert!(
                        earlier.is_none(),
                        "offset {} acknowledged twice",
                        appended.offset
                    );
                }
            }
            // Some of it may have landed; a client retries what has an idempotency key.
            Err(_) => self.clients.to_retry.extend(
                payloads
                    .into_iter()
                    .filter(|payload| {
                        engine::wire::decode_request(payload)
                            .is_ok_and(|request| request.idempotency_key.is_some())
                    })
                    .take(4),
            ),
        }
        self.clients.to_retry.truncate(16);
    }

    fn next_request(&mut self) -> Request {
        let users = ["ana", "bo", "cy", "di"];
        let user = self.random.pick(&users).to_string();
        let event = EventId(self.random.below(self.clients.events.max(1)) as u32);
        let command = match self.random.below(100) {
            _ if self.clients.events == 0 => self.create_event(),
            0..=4 => self.create_event(),
            5..=44 => Command::PlaceHold {
                user: user.into(),
                event,
                selection: Selection::Best {
                    quantity: 1 + self.random.below(4) as u32,
                    category: None,
                    together: self.random.chance(300),
                },
                wait: self.random.chance(300),
            },
            45..=64 => match self.pick_owned(|clients| &clients.holds) {
                Some((user, hold)) => Command::ConfirmHold {
                    user: user.into(),
                    hold,
                    payment_ref: "pay".to_string(),
                },
                None => Command::Tick,
            },
            65..=74 => match self.pick_owned(|clients| &clients.holds) {
                Some((user, hold)) => Command::ReleaseHold {
                    user: user.into(),
                    hold,
                },
                None => Command::Tick,
            },
            75..=84 => Command::JoinWaitlist {
                user: user.into(),
                event,
                quantity: 1 + self.random.below(3) as u32,
                category: None,
                together: false,
            },
            85..=89 => match self.pick_owned(|clients| &clients.waiters) {
                Some((user, waiter)) => Command::LeaveWaitlist {
                    user: user.into(),
                    waiter,
                },
                None => Command::Tick,
            },
            90..=94 => match self.pick_owned(|clients| &clients.bookings) {
                Some((user, booking)) => Command::CancelBooking {
                    user: user.into(),
                    booking,
                },
                None => Command::Tick,
            },
            _ => Command::Tick,
        };
        if matches!(command, Command::Tick) || self.random.chance(400) {
            return Request::new(command);
        }
        self.clients.next_key += 1;
        Request::with_key(command, format!("key-{}", self.clients.next_key))
    }

    fn pick_owned<T: Clone>(
        &mut self,
        list: impl Fn(&Clients) -> &Vec<(String, T)>,
    ) -> Option<(String, T)> {
        let items = list(&self.clients);
        if items.is_empty() {
            return None;
        }
        let index = self.random.below(items.len() as u64) as usize;
        Some(list(&self.clients)[index].clone())
    }

    fn create_event(&mut self) -> Command {
        self.clients.events += 1;
        let rows = 1 + self.random.below(3) as u32;
        let seats = 2 + self.random.below(5) as u32;
        Command::CreateEvent {
            tenant: "tenant".to_string(),
            spec: Box::new(event_spec(rows, seats, 1_000 + self.random.below(3_000))),
        }
    }

    /// The observer reads what the outcomes log shows now. Exactly one whole outcome per
    /// offset, in order: a repeat or a gap fails the seed at once.
    fn observe(&mut self) {
        let records = self
            .observer
            .reader
            .poll(64, Duration::ZERO)
            .expect("memory log");
        for record in records {
            let Some(outcome) = self
                .observer
                .assembler
                .push(&record.payload)
                .unwrap_or_else(|reason| panic!("outcome record {}: {reason}", record.offset))
            else {
                continue;
            };
            let expected = self
                .observer
                .seen
                .last_key_value()
                .map_or(0, |(offset, _)| offset + 1);
            if !self.observer.fencing && outcome.offset < expected {
                assert_eq!(
                    self.observer.seen.get(&outcome.offset),
                    Some(&outcome),
                    "the outcomes log's record {} holds the outcome of offset {} again, and not as first published",
                    record.offset,
                    outcome.offset
                );
                self.summary.outcomes_published_twice += 1;
                continue;
            }
            assert_eq!(
                outcome.offset, expected,
                "the outcomes log's record {} holds the outcome of offset {} where {expected} was due",
                record.offset, outcome.offset
            );
            self.learn(&outcome);
            self.observer.seen.insert(outcome.offset, outcome);
        }
    }

    /// What clients learn from outcomes: ids to confirm, release, cancel and leave.
    fn learn(&mut self, outcome: &Outcome) {
        let clients = &mut self.clients;
        match &outcome.result {
            Ok(Reply::HoldPlaced(view)) => clients.holds.push((view.user.to_string(), view.hold)),
            Ok(Reply::HoldConfirmed(view)) => {
                clients.bookings.push((view.user.to_string(), view.booking));
            }
            Ok(
                Reply::WaitlistJoined { user, waiter, .. } | Reply::Waitlisted { user, waiter, .. },
            ) => {
                clients.waiters.push((user.to_string(), *waiter));
            }
            _ => {}
        }
        // The newest few of each are what clients act on.
        keep_newest(&mut clients.holds);
        keep_newest(&mut clients.bookings);
        keep_newest(&mut clients.waiters);
    }

    /// The faults stop, both logs restart (dropping what never became durable) and show
    /// everything, every replica restarts, and the cluster runs until it is quiet: every
    /// replica has applied the whole requests log and the outcomes log answers all of it.
    fn settle(&mut self) {
        for log in [&self.requests, &self.outcomes] {
            log.set_faults(FaultPlan::NONE);
            log.crash();
            log.reveal_all();
        }
        for index in 0..self.replicas.len() {
            if self.replicas[index].runtime.is_none() {
                self.start_replica(index);
            }
        }
        for round in 0..SETTLE_ROUNDS_MAX {
            if round % 64 == 0 {
                if self.quiet() {
                    self.observe_all();
                    return;
                }
                self.promote_if_leaderless();
            }
            for index in 0..self.replicas.len() {
                for component in Component::ALL {
                    let now_ms = self.now_ms;
                    if let Some(runtime) = &mut self.replicas[index].runtime {
                        runtime.step(component, now_ms);
                    }
                    self.note_failure(index);
                    if self.replicas[index].runtime.is_none() {
                        self.start_replica(index);
                    }
                }
            }
        }
        let statuses: Vec<_> = self
            .replicas
            .iter()
            .map(|replica| replica.runtime.as_ref().map(SteppedRuntime::status))
            .collect();
        let promotions: Vec<(u64, String)> = self
            .requests
            .visible_records()
            .iter()
            .filter_map(
                |record| match engine::wire::decode_request(&record.payload) {
                    Ok(Request {
                        command: Command::Promote { node },
                        ..
                    }) => Some((record.offset, node)),
                    _ => None,
                },
            )
            .collect();
        panic!(
            "the cluster did not settle: requests log end {}, outcomes log end {}, \
             Promote records (offset, node) {promotions:?}, replicas {statuses:#?}",
            self.requests.visible_records().len(),
            self.outcomes.visible_records().len(),
        );
    }

    /// Every replica has applied the whole log and none is primary: a promotion raced a
    /// restarted old primary (which opened its writer, fencing the new one, before it
    /// applied the `Promote` record that names the new one), and both are standbys. As
    /// ARCHITECTURE.md says, the operator promotes again.
    fn promote_if_leaderless(&mut self) {
        let last = (self.requests.visible_records().len() as u64).checked_sub(1);
        let leaderless = self.replicas.iter().all(|replica| {
            let runtime = replica.runtime.as_ref().expect("running while settling");
            runtime.applied_offset() == last && runtime.status().role == Role::Standby
        });
        if !leaderless {
            return;
        }
        let index = self.random.below(self.replicas.len() as u64) as usize;
        let runtime = self.replicas[index].runtime.as_ref().expect("running");
        if runtime.handle().promote().is_ok() {
            self.summary.operator_promotions_after_a_race += 1;
        }
    }

    fn observe_all(&mut self) {
        loop {
            let before = self.observer.reader.position();
            self.observe();
            if self.observer.reader.position() == before {
                return;
            }
        }
    }

    fn quiet(&mut self) -> bool {
        let end = self.requests.visible_records().len() as u64;
        let last = end.checked_sub(1);
        let replicas_done = self.replicas.iter().all(|replica| {
            let runtime = replica.runtime.as_ref().expect("running while settling");
            let status = runtime.status();
            runtime.applied_offset() == last && status.role != Role::CatchingUp
        });
        let primary_done = self.replicas.iter().any(|replica| {
            let status = replica.runtime.as_ref().expect("running").status();
            status.role == Role::Primary && status.configured() && status.published_offset == last
        });
        replicas_done && primary_done
    }

    fn check(&mut self) {
        let requests = self.requests.visible_records();
        // Acknowledged appends are in the log, unchanged.
        for (&offset, payload) in &self.clients.acknowledged {
            let record = requests
                .get(offset as usize)
                .unwrap_or_else(|| panic!("acknowledged request {offset} is gone from the log"));
            assert_eq!(
                &record.payload, payload,
                "acknowledged request {offset} changed"
            );
        }
        // The reference: an engine applying the requests log from offset 0.
        let mut reference = Engine::new(self.config.clone());
        let mut expected = Vec::with_capacity(requests.len());
        for record in &requests {
            let outcome = match engine::wire::decode_request(&record.payload) {
                Ok(request) => reference.apply(record.offset, record.timestamp_ms, &request),
                Err(reason) => {
                    reference.apply_undecodable(record.offset, record.timestamp_ms, &reason)
                }
            };
            expected.push(reference.named(outcome));
        }
        reference.check_invariants();
        // Exactly one whole outcome per offset, each the reference's (without fencing:
        // the first of each offset, in order; a later one is a copy of it).
        let mut assembler = OutcomeAssembler::new();
        let mut published: Vec<Outcome> = Vec::new();
        for record in self.outcomes.visible_records() {
            if let Some(outcome) = assembler
                .push(&record.payload)
                .expect("outcome frames decode")
            {
                published.push(outcome);
            }
        }
        if !self.observer.fencing {
            published = crate::common::first_of_each_offset(published);
        }
        let offsets: Vec<u64> = published.iter().map(|outcome| outcome.offset).collect();
        assert_eq!(
            offsets,
            (0..requests.len() as u64).collect::<Vec<_>>(),
            "the outcomes log does not hold exactly one outcome per request offset"
        );
        for (published, expected) in published.iter().zip(&expected) {
            assert_eq!(
                published, expected,
                "the published outcome of offset {} is not the replay's",
                expected.offset
            );
        }
        // Outcomes clients saw are still there, unchanged.
        for (offset, seen) in &self.observer.seen {
            assert_eq!(
                &published[*offset as usize], seen,
                "the outcome of offset {offset} changed after a client saw it"
            );
        }
        // Every replica's state is the replay's, by `runtime::replay` as the tools run it.
        let mut replayed = Engine::new(self.config.clone());
        let summary = runtime::replay(
            &mut replayed,
            &mut self.requests.reader(),
            None,
            64,
            &mut |_| {},
        )
        .expect("replay");
        assert_eq!(summary.state_hash, reference.state_hash_hex());
        for replica in &self.replicas {
            let runtime = replica.runtime.as_ref().expect("running after settling");
            assert_eq!(
                runtime.state_hash_hex().as_deref(),
                Some(summary.state_hash.as_str()),
                "replica {}'s state differs from a replay from offset 0",
                replica.options.node
            );
        }
    }
}

/// Small batches, channels and tails, so back-pressure, cut batches, frequent snapshots
/// and re-derivation all happen within a short run.
fn replica_options(random: &mut Random, config: &EngineConfig, index: usize) -> RuntimeOptions {
    let mut options = RuntimeOptions::new(config.clone());
    options.node = format!("node-{index}");
    options.role = if index == 0 {
        Role::Primary
    } else {
        Role::Standby
    };
    options.batch_records_max = 1 + random.below(8) as usize;
    options.channel_batches_max = 1 + random.below(3) as usize;
    options.publish_records_max = 1 + random.below(8) as usize;
    options.publish_bytes_max = engine::wire::OUTCOME_FRAME_BYTES_MAX;
    options.snapshot_every_records = 5 + random.below(40);
    options.snapshot_every_ms = 500 + random.below(5_000);
    options.idle_hash_every_ms = 200;
    options.standby_outcomes_max = random.below(30) as usize;
    options.auto_promote_after_ms = if random.chance(500) {
        1_000 + random.below(3_000)
    } else {
        0
    };
    // The engine reads the requests log speculatively: it sees the records of a failed
    // fsync, which the runtime must never publish from (it stops instead).
    options.apply_before_durable = random.chance(500);
    options
}

fn keep_newest<T>(items: &mut Vec<T>) {
    const KEPT_MAX: usize = 32;
    if items.len() > KEPT_MAX {
        items.drain(..items.len() - KEPT_MAX);
    }
}

/// Keeps one to three snapshots; sometimes its writes start failing after a few.
fn snapshot_store(random: &mut Random) -> MemoryStore {
    let store = MemoryStore::new(1 + random.below(3) as usize);
    if random.chance(200) {
        store.fail_after_writes(random.below(4));
    }
    store
}

fn event_spec(rows: u32, seats_per_row: u32, hold_ttl_ms: u64) -> EventSpec {
    EventSpec {
        name: "Show".into(),
        description: String::new(),
        city: "Lyon".into(),
        country: "FR".into(),
        venue: "Hall".into(),
        starts_at_ms: u64::MAX / 2,
        ends_at_ms: None,
        sales_open_at_ms: None,
        sales_close_at_ms: None,
        hold_ttl_ms,
        seats_per_order_max: 4,
        seats_per_user_max: Some(6),
        waitlist_policy: WaitlistPolicy::Strict,
        categories: vec![
            CategorySpec {
                name: "Seat".into(),
                price_cents: 1_000,
            },
            CategorySpec {
                name: "Floor".into(),
                price_cents: 500,
            },
        ],
        sections: vec![SectionSpec {
            name: "A".into(),
            rows: (1..=rows)
                .map(|row| RowSpec {
                    label: row.to_string(),
                    seats: seats_per_row,
                    category: "Seat".into(),
                })
                .collect(),
        }],
        general_admission: vec![PoolSpec {
            category: "Floor".into(),
            capacity: 3,
        }],
    }
}

/// A requests log whose durable end the test moves by hand, read by a speculative reader
/// (`RuntimeOptions::apply_before_durable`): the engine applies what the log holds at once.
struct EarlyLog {
    log: MemoryLog,
    /// The first offset that is not durable, or why the sync failed.
    durable_end: Arc<std::sync::Mutex<Result<u64, String>>>,
}

struct Watermark(Arc<std::sync::Mutex<Result<u64, String>>>);

impl requestlog::DurableWatch for Watermark {
    fn covers(&self, offset: u64) -> Result<bool, requestlog::LogError> {
        match &*self.0.lock().unwrap() {
            Ok(end) => Ok(offset < *end),
            Err(reason) => Err(requestlog::LogError::Journal(reason.clone())),
        }
    }

    fn wait_for(&self, offset: u64, _timeout: Duration) -> Result<bool, requestlog::LogError> {
        self.covers(offset)
    }
}

impl runtime::OpenLog for EarlyLog {
    fn open_reader(&self) -> Result<Box<dyn LogReader>, requestlog::LogError> {
        Ok(Box::new(self.log.reader()))
    }

    fn open_writer(&self) -> Result<Arc<dyn LogWriter>, requestlog::LogError> {
        Ok(Arc::new(self.log.writer()))
    }

    fn log_id(&self) -> String {
        self.log.log_id()
    }

    fn open_speculative_reader(&self) -> Option<(Box<dyn LogReader>, requestlog::DurableEnd)> {
        let durable = requestlog::DurableEnd::new(Watermark(Arc::clone(&self.durable_end)));
        Some((Box::new(self.log.reader()), durable))
    }
}

/// The request offsets whose outcome's last frame is in the outcomes log.
fn published_offsets(outcomes: &MemoryLog) -> Vec<u64> {
    let mut reader = outcomes.reader();
    let records = reader.poll(1_000, Duration::ZERO).unwrap();
    records
        .iter()
        .map(|record| engine::wire::frame_header(&record.payload).unwrap())
        .filter(|header| header.is_last())
        .map(|header| header.offset)
        .collect()
}

/// Every component stepped until none works.
fn settle(replica: &mut SteppedRuntime) {
    for _ in 0..100 {
        let worked = [Component::Reader, Component::Engine, Component::Publisher]
            .into_iter()
            .filter(|&component| replica.step(component, START_MS) == runtime::Progress::Worked)
            .count();
        if worked == 0 {
            return;
        }
    }
    panic!("the runtime never settled");
}

/// With the engine applying records before they are durable, no outcome reaches the
/// outcomes log before its record is durable (a batch waits for its last record), and a
/// sync that fails stops the runtime with nothing derived from the lost records published.
#[test]
fn an_engine_applying_before_durable_publishes_only_what_is_durable_and_stops_on_a_failed_sync() {
    for sync_fails in [false, true] {
        let requests = MemoryLog::new("memory:requests", FaultPlan::NONE, 1);
        let outcomes = MemoryLog::fencing("memory:outcomes", FaultPlan::NONE, 1);
        let durable_end = Arc::new(std::sync::Mutex::new(Ok(0)));
        let early = EarlyLog {
            log: requests.clone(),
            durable_end: Arc::clone(&durable_end),
        };
        let mut options = RuntimeOptions::new(EngineConfig::default());
        options.apply_before_durable = true;
        let logs = Logs {
            requests: Arc::new(early),
            outcomes: Arc::new(outcomes.clone()),
        };
        let store = Box::new(MemoryStore::new(1));
        let mut replica = SteppedRuntime::start(options, logs, store, START_MS).unwrap();
        let tick = engine::wire::encode_request(&Request::new(Command::Tick));
        requests.writer().append(vec![tick; 3]).unwrap();

        settle(&mut replica);
        assert_eq!(
            replica.handle().status().applied_offset,
            Some(2),
            "applied at once"
        );
        assert_eq!(published_offsets(&outcomes), Vec::<u64>::new());
        // Two of the three durable: the batch still waits for its last.
        *durable_end.lock().unwrap() = Ok(2);
        settle(&mut replica);
        assert_eq!(published_offsets(&outcomes), Vec::<u64>::new());

        if sync_fails {
            *durable_end.lock().unwrap() = Err("the disk is gone".to_string());
            replica.step(Component::Publisher, START_MS);
            let failure = replica
                .handle()
                .status()
                .failure
                .expect("the runtime failed");
            assert!(failure.contains("the disk is gone"), "{failure}");
            assert_eq!(published_offsets(&outcomes), Vec::<u64>::new());
        } else {
            *durable_end.lock().unwrap() = Ok(3);
            settle(&mut replica);
            assert_eq!(published_offsets(&outcomes), vec![0, 1, 2]);
            assert_eq!(replica.handle().status().published_offset, Some(2));
        }
    }
}
