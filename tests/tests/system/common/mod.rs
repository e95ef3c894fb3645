//! Shared by the runtime's tests: the logs to run on (embedded in a tempdir, or Kafka when
//! `KAFKA_BOOTSTRAP` is set), a seeded workload, and the checks every scenario ends with;
//! and, for the tests of processes, a pausable TCP proxy that cuts one off the broker
//! (`proxy`).
#![allow(dead_code, unreachable_pub)]

pub mod proxy;
pub mod stack;

use engine::{
    CategorySpec, Command, Engine, EngineConfig, EventId, EventSpec, HoldId, Outcome, Request,
    RowSpec, SectionSpec, Selection, WaitlistPolicy,
};
use requestlog::{
    Appended, EmbeddedLog, EmbeddedOptions, KafkaLog, KafkaOptions, LogError, LogReader, LogRecord,
    LogWriter,
};
use runtime::{EngineStatus, Logs, OpenLog, RuntimeHandle};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Upper bound on waiting for something that must happen.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Where a test's logs live. Serializable to one string, so a child process can open the
/// same logs.
#[derive(Clone, Debug)]
pub enum Backend {
    /// RocksDB allows one open per directory and process: handles opened while others are
    /// alive share them.
    Embedded {
        dir: PathBuf,
        open: Arc<Mutex<OpenEmbedded>>,
    },
    Kafka {
        brokers: String,
        requests_topic: String,
        outcomes_topic: String,
        transactional_id: String,
    },
}

impl Backend {
    pub fn embedded(dir: &std::path::Path) -> Backend {
        Backend::Embedded {
            dir: dir.to_path_buf(),
            open: Arc::default(),
        }
    }

    /// Fresh topics on the broker at `KAFKA_BOOTSTRAP`; `None` (with a note) when it is not
    /// set on a developer's machine. In CI (`CI=true`) an unset `KAFKA_BOOTSTRAP` fails the
    /// test: Kafka tests are never skipped there.
    pub fn kafka(test: &str) -> Option<Backend> {
        let brokers = requestlog::test_kafka_bootstrap(&format!("the Kafka variant of {test}"))?;
        let unique = format!(
            "{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        Some(Backend::Kafka {
            brokers,
            requests_topic: format!("runtime-test-{test}-requests-{unique}"),
            outcomes_topic: format!("runtime-test-{test}-outcomes-{unique}"),
            transactional_id: format!("runtime-test-{test}-{unique}"),
        })
    }

    /// Opens (requests, outcomes). Embedded logs close when every handle is dropped.
    pub fn open(&self) -> (Arc<dyn OpenLog>, Arc<dyn OpenLog>) {
        match self {
            Backend::Embedded { dir, open } => {
                let mut open = open.lock().unwrap();
                let get = |cached: &mut Weak<EmbeddedLog>, name: &str| -> Arc<dyn OpenLog> {
                    if let Some(log) = cached.upgrade() {
                        return log;
                    }
                    // As `boxoffice serve` and `engine` open them: only the requests log
                    // fsyncs its appends.
                    let options = EmbeddedOptions {
                        sync_appends: name != "outcomes",
                        ..EmbeddedOptions::default()
                    };
                    let log = Arc::new(EmbeddedLog::open(dir.join(name), options).unwrap());
                    *cached = Arc::downgrade(&log);
                    log
                };
                let requests = get(&mut open.requests, "requests");
                let outcomes = get(&mut open.outcomes, "outcomes");
                (requests, outcomes)
            }
            Backend::Kafka {
                brokers,
                requests_topic,
                outcomes_topic,
                transactional_id,
            } => {
                let requests = KafkaLog::open(kafka_options(brokers, requests_topic)).unwrap();
                let mut outcomes_options = kafka_options(brokers, outcomes_topic);
                outcomes_options.transactional_id = Some(transactional_id.clone());
                let outcomes = KafkaLog::open(outcomes_options).unwrap();
                (Arc::new(requests), Arc::new(outcomes))
            }
        }
    }

    pub fn logs(&self) -> Logs {
        let (requests, outcomes) = self.open();
        Logs { requests, outcomes }
    }

    pub fn to_env(&self) -> String {
        match self {
            Backend::Embedded { dir, .. } => format!("embedded|{}", dir.display()),
            Backend::Kafka {
                brokers,
                requests_topic,
                outcomes_topic,
                transactional_id,
            } => format!("kafka|{brokers}|{requests_topic}|{outcomes_topic}|{transactional_id}"),
        }
    }

    pub fn from_env(text: &str) -> Backend {
        let parts: Vec<&str> = text.split('|').collect();
        match parts.as_slice() {
            ["embedded", dir] => Backend::embedded(std::path::Path::new(dir)),
            ["kafka", brokers, requests, outcomes, id] => Backend::Kafka {
                brokers: brokers.to_string(),
                requests_topic: requests.to_string(),
                outcomes_topic: outcomes.to_string(),
                transactional_id: id.to_string(),
            },
            _ => panic!("bad backend {text:?}"),
        }
    }
}

#[derive(Debug, Default)]
pub struct OpenEmbedded {
    requests: Weak<EmbeddedLog>,
    outcomes: Weak<EmbeddedLog>,
}

fn kafka_options(brokers: &str, topic: &str) -> KafkaOptions {
    let mut options = KafkaOptions::new(brokers, topic);
    options.operation_timeout = Duration::from_secs(20);
    options.delivery_timeout = Duration::from_secs(20);
    options
}

pub fn engine_config() -> EngineConfig {
    // No grace, so a hold's expiry is due right at its TTL.
    EngineConfig {
        confirm_grace_ms: 0,
        ..EngineConfig::default()
    }
}

pub fn event_spec(hold_ttl_ms: u64) -> EventSpec {
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
        seats_per_order_max: 10,
        seats_per_user_max: Some(30),
        waitlist_policy: WaitlistPolicy::Strict,
        categories: vec![
            CategorySpec {
                name: "Gold".into(),
                price_cents: 9_000,
            },
            CategorySpec {
                name: "Standard".into(),
                price_cents: 5_000,
            },
        ],
        sections: vec![SectionSpec {
            name: "A".into(),
            rows: (1..=20)
                .map(|row| RowSpec {
                    label: row.to_string(),
                    seats: 25,
                    category: if row <= 5 {
                        "Gold".into()
                    } else {
                        "Standard".into()
                    },
                })
                .collect(),
        }],
        general_admission: vec![],
    }
}

/// A small deterministic generator (splitmix64).
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// The payload of workload record `index` for `seed`: an event first, then holds (exact and
/// best available), confirms, releases, now and then a retry of an earlier record or an
/// earlier record's key reused for another request, and a record that does not decode. The same `(seed, index)` always gives the same bytes.
pub fn workload_record(seed: u64, index: u64, hold_ttl_ms: u64) -> Vec<u8> {
    if index == 0 {
        return engine::wire::encode_request(&Request::with_key(
            Command::CreateEvent {
                tenant: "demo".into(),
                spec: Box::new(event_spec(hold_ttl_ms)),
            },
            "create",
        ));
    }
    let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(index));
    let user = format!("u{}", rng.below(40));
    let hold = HoldId(1 + rng.below(index.max(1)));
    let command = match rng.below(20) {
        0 => return vec![9, 9, 9],
        1..=6 => Command::PlaceHold {
            user: user.into(),
            event: EventId(0),
            selection: Selection::Best {
                quantity: 1 + rng.below(4) as u32,
                category: None,
                together: rng.below(2) == 0,
            },
            wait: false,
        },
        7..=10 => {
            let seats = (0..1 + rng.below(3))
                .map(|_| format!("A-{}-{}", 1 + rng.below(20), 1 + rng.below(25)))
                .collect();
            Command::PlaceHold {
                user: user.into(),
                event: EventId(0),
                selection: Selection::Seats(seats),
                wait: false,
            }
        }
        11..=14 => Command::ConfirmHold {
            user: user.into(),
            hold,
            payment_ref: format!("pay-{index}"),
        },
        15..=17 => Command::ReleaseHold {
            user: user.into(),
            hold,
        },
        _ => Command::Tick,
    };
    // Now and then a key that an earlier record used: half of those retry that record
    // exactly (the engine answers with its first outcome), the other half send another
    // request under it (refused: a key is bound to its first request).
    let key_index = if rng.below(10) == 0 {
        rng.below(index)
    } else {
        index
    };
    if key_index != index && rng.below(2) == 0 {
        return workload_record(seed, key_index, hold_ttl_ms);
    }
    engine::wire::encode_request(&Request::with_key(command, format!("k{key_index}")))
}

/// Every record of a log, from offset 0 to its end.
pub fn read_all(log: &dyn OpenLog) -> Vec<LogRecord> {
    let mut reader = log.open_reader().unwrap();
    let end = reader.end_offset().unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    let mut quiet_since = Instant::now();
    while reader.position() < end {
        let batch = reader.poll(4096, Duration::from_millis(100)).unwrap();
        if batch.is_empty() {
            // A Kafka reader stops short of the end after a transaction marker.
            if quiet_since.elapsed() > Duration::from_secs(2) {
                break;
            }
        } else {
            quiet_since = Instant::now();
        }
        records.extend(batch);
        assert!(
            Instant::now() < deadline,
            "reading the log took over {DEADLINE:?}"
        );
    }
    records
}

/// The outcomes a log's records make, reassembled from their frames. Fails the test on a
/// record that is not a frame, or on frames that complete no outcome.
pub fn decode_outcomes(records: &[LogRecord]) -> Vec<Outcome> {
    let (outcomes, frames_ignored) = decode_outcomes_allowing_torn(records);
    assert_eq!(
        frames_ignored, 0,
        "every outcome frame is part of a whole outcome"
    );
    outcomes
}

/// As [`decode_outcomes`], where frames of outcomes cut short (and published again) are
/// expected: returns the outcomes and how many frames made none.
pub fn decode_outcomes_allowing_torn(records: &[LogRecord]) -> (Vec<Outcome>, u64) {
    let mut assembler = engine::wire::OutcomeAssembler::new();
    let outcomes = records
        .iter()
        .filter_map(|record| {
            assembler
                .push(&record.payload)
                .unwrap_or_else(|reason| panic!("outcome record {}: {reason}", record.offset))
        })
        .collect();
    assert_eq!(
        assembler.unfinished_offset(),
        None,
        "the outcomes log ends with a whole outcome"
    );
    (outcomes, assembler.frames_ignored())
}

/// Replays `requests` from scratch through `last_offset` and returns the engine and every
/// outcome.
pub fn replay_from_scratch(requests: &[LogRecord], last_offset: u64) -> (Engine, Vec<Outcome>) {
    let mut engine = Engine::new(engine_config());
    let mut outcomes = Vec::new();
    for record in requests
        .iter()
        .filter(|record| record.offset <= last_offset)
    {
        let outcome = match engine::wire::decode_request(&record.payload) {
            Ok(request) => engine.apply(record.offset, record.timestamp_ms, &request),
            Err(reason) => engine.apply_undecodable(record.offset, record.timestamp_ms, &reason),
        };
        outcomes.push(engine.named(outcome));
    }
    engine.check_invariants();
    (engine, outcomes)
}

/// Waits until the runtime has applied and published every record up to the log's end, and
/// its status's state hash is as of that offset.
pub fn wait_settled(handle: &RuntimeHandle, log_end_offset: u64) -> EngineStatus {
    let (status, settled) = handle.wait_for(DEADLINE, |status| {
        status.log_end_offset >= log_end_offset
            && status.caught_up()
            && status.published_all()
            && status.state_hash_offset == status.applied_offset
            && status.configured()
    });
    assert!(
        settled,
        "the runtime did not settle at {log_end_offset}: {status:?}"
    );
    status
}

/// The checks every scenario ends with: one outcome per request offset, in order, equal to
/// a from-scratch replay's; and the runtime's state hash equal to the replay's.
pub fn check_exactly_once(backend: &Backend, status: &EngineStatus) {
    let (_, outcomes_log) = backend.open();
    let outcomes = decode_outcomes(&read_all(outcomes_log.as_ref()));
    check_outcomes(backend, status, outcomes);
}

/// As [`check_exactly_once`], when some outcome was cut short and published again from its
/// first frame: returns how many frames made no outcome.
pub fn check_exactly_once_after_tears(backend: &Backend, status: &EngineStatus) -> u64 {
    let (_, outcomes_log) = backend.open();
    let (outcomes, frames_ignored) =
        decode_outcomes_allowing_torn(&read_all(outcomes_log.as_ref()));
    check_outcomes(backend, status, outcomes);
    frames_ignored
}

/// As [`check_exactly_once`], but an outcome may appear twice if the copies are
/// byte-identical and in order: two replicas may both publish the outcomes around a
/// promotion (consumers drop duplicates by input offset).
pub fn check_at_least_once_identical(backend: &Backend, status: &EngineStatus) {
    let (_, outcomes_log) = backend.open();
    let outcomes = decode_outcomes(&read_all(outcomes_log.as_ref()));
    check_outcomes(backend, status, first_of_each_offset(outcomes));
}

/// The first outcome of each request offset, in log order, where a later one of an offset
/// already seen must be byte for byte the first (a re-publication around a promotion, or
/// an old primary's before it read its `Promote`); fails the test otherwise.
pub fn first_of_each_offset(outcomes: Vec<Outcome>) -> Vec<Outcome> {
    let mut unique: Vec<Outcome> = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        match unique.last() {
            Some(last) if last.offset >= outcome.offset => {
                let first = unique
                    .iter()
                    .rev()
                    .find(|kept| kept.offset == outcome.offset)
                    .unwrap_or_else(|| panic!("outcome of offset {} out of order", outcome.offset));
                assert_eq!(
                    engine::wire::encode_outcome_frames(first),
                    engine::wire::encode_outcome_frames(&outcome),
                    "a re-published outcome of offset {} differs",
                    outcome.offset
                );
            }
            _ => unique.push(outcome),
        }
    }
    unique
}

fn check_outcomes(backend: &Backend, status: &EngineStatus, outcomes: Vec<Outcome>) {
    let (requests_log, _) = backend.open();
    check_outcomes_against(requests_log.as_ref(), status, &outcomes);
}

/// One outcome per record of `requests`, in order, none twice, equal to a from-scratch
/// replay's; the runtime's state hash equal to the replay's. Returns the replayed engine.
pub fn check_outcomes_against(
    requests: &dyn OpenLog,
    status: &EngineStatus,
    outcomes: &[Outcome],
) -> Engine {
    let requests = read_all(requests);
    let last = requests.last().expect("some requests").offset;
    assert_eq!(status.applied_offset, Some(last));
    let offsets: Vec<u64> = outcomes.iter().map(|outcome| outcome.offset).collect();
    let expected: Vec<u64> = requests.iter().map(|record| record.offset).collect();
    assert!(
        offsets == expected,
        "one outcome per request, in order, none twice: {} outcomes for {} requests",
        offsets.len(),
        expected.len()
    );
    let (engine, replayed) = replay_from_scratch(&requests, last);
    assert_eq!(
        status.state_hash,
        engine.state_hash_hex(),
        "the runtime's state equals a from-scratch replay"
    );
    for (published, replayed) in outcomes.iter().zip(&replayed) {
        assert!(
            published == replayed,
            "published outcome of offset {} differs from the replay's",
            published.offset
        );
    }
    engine
}

/// A log read with other timestamps: records are read with `time(offset, timestamp_ms)`.
/// The logs stamp records themselves (the embedded log with the wall clock, Kafka with the
/// broker's); this is how a test sets log time. Writes go through unchanged.
#[derive(Clone)]
pub struct LogTime {
    pub log: Arc<dyn OpenLog>,
    pub time: Arc<dyn Fn(u64, u64) -> u64 + Send + Sync>,
}

impl OpenLog for LogTime {
    fn open_reader(&self) -> Result<Box<dyn LogReader>, LogError> {
        Ok(Box::new(TimedReader {
            reader: self.log.open_reader()?,
            time: Arc::clone(&self.time),
        }))
    }

    fn open_writer(&self) -> Result<Arc<dyn LogWriter>, LogError> {
        self.log.open_writer()
    }

    fn log_id(&self) -> String {
        self.log.log_id()
    }
}

struct TimedReader {
    reader: Box<dyn LogReader>,
    time: Arc<dyn Fn(u64, u64) -> u64 + Send + Sync>,
}

impl LogReader for TimedReader {
    fn seek(&mut self, offset: u64) -> Result<(), LogError> {
        self.reader.seek(offset)
    }

    fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<Vec<LogRecord>, LogError> {
        let mut records = self.reader.poll(max_records, timeout)?;
        for record in &mut records {
            record.timestamp_ms = (self.time)(record.offset, record.timestamp_ms);
        }
        Ok(records)
    }

    fn position(&self) -> u64 {
        self.reader.position()
    }

    fn end_offset(&self) -> Result<u64, LogError> {
        self.reader.end_offset()
    }
}

/// Picks the appends a [`RefusingLog`] refuses.
pub type RefusePredicate = Arc<dyn Fn(&[Vec<u8>]) -> bool + Send + Sync>;

/// A log whose writers refuse (`Closed`, which stops a runtime) the appends `refuse` picks:
/// a publisher that stops in the middle of its work.
pub struct RefusingLog {
    pub log: Arc<dyn OpenLog>,
    pub refuse: RefusePredicate,
}

impl OpenLog for RefusingLog {
    fn open_reader(&self) -> Result<Box<dyn LogReader>, LogError> {
        self.log.open_reader()
    }

    fn open_writer(&self) -> Result<Arc<dyn LogWriter>, LogError> {
        Ok(Arc::new(RefusingWriter {
            writer: self.log.open_writer()?,
            refuse: Arc::clone(&self.refuse),
        }))
    }

    fn log_id(&self) -> String {
        self.log.log_id()
    }
}

struct RefusingWriter {
    writer: Arc<dyn LogWriter>,
    refuse: RefusePredicate,
}

impl LogWriter for RefusingWriter {
    fn append(&self, payloads: Vec<Vec<u8>>) -> Result<Vec<Appended>, LogError> {
        if (self.refuse)(&payloads) {
            return Err(LogError::Closed);
        }
        self.writer.append(payloads)
    }

    fn end_offset(&self) -> Result<u64, LogError> {
        self.writer.end_offset()
    }
}

/// An event of `rows` rows of `seats_per_row` seats (section A, one category, "Seat"),
/// with no per-user limit.
pub fn seated_event(rows: u32, seats_per_row: u32, hold_ttl_ms: u64) -> EventSpec {
    EventSpec {
        seats_per_order_max: 10,
        seats_per_user_max: None,
        categories: vec![CategorySpec {
            name: "Seat".into(),
            price_cents: 1_000,
        }],
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
        ..event_spec(hold_ttl_ms)
    }
}

/// The user id a request of `name`'s token carries in the log: its pseudonym (issue 23) under
/// the development pseudonym key, so records appended straight to the log act as the
/// same user as HTTP requests with `token(name)`.
pub fn logged_user(name: &str) -> String {
    ingress::deployment_pseudonym(ingress::DEVELOPMENT_PSEUDONYM_KEY, name)
}

pub fn request(command: Command) -> Vec<u8> {
    engine::wire::encode_request(&Request::new(command))
}

pub fn create_event(spec: EventSpec) -> Vec<u8> {
    request(Command::CreateEvent {
        tenant: "demo".into(),
        spec: Box::new(spec),
    })
}

pub fn hold_seat(user: &str, event: EventId, seat: &str) -> Vec<u8> {
    request(Command::PlaceHold {
        user: user.into(),
        event,
        selection: Selection::Seats(vec![seat.into()]),
        wait: false,
    })
}

pub fn join_waitlist(user: &str, event: EventId) -> Vec<u8> {
    request(Command::JoinWaitlist {
        user: user.into(),
        event,
        quantity: 1,
        category: None,
        together: false,
    })
}

pub fn confirm(user: &str, hold: HoldId) -> Vec<u8> {
    request(Command::ConfirmHold {
        user: user.into(),
        hold,
        payment_ref: format!("pay-{}", hold.0),
    })
}

/// Appends `payloads` in appends of at most `append_records_max` records; returns the
/// log's end.
pub fn append_all(log: &dyn OpenLog, payloads: Vec<Vec<u8>>) -> u64 {
    let writer = log.open_writer().unwrap();
    let mut payloads = payloads.into_iter().peekable();
    while payloads.peek().is_some() {
        writer
            .append(payloads.by_ref().take(4096).collect())
            .unwrap();
    }
    writer.end_offset().unwrap()
}
