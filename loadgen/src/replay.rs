//! Replays a request log: against the HTTP API (original pacing, N× faster, or as fast
//! as `concurrency` allows), or straight into an embedded requests log (engine-only:
//! no HTTP, for measuring the engine with `boxoffice replay` or `serve` afterwards).
//! A recording that carries the server's own requests log goes into the embedded log
//! exactly instead ([`import_server_log`]: the server's offsets and times), so `boxoffice
//! replay` of it ends in the recorded state hash.
//!
//! HTTP replay keeps the recorded order where it matters: admin writes (event creation)
//! are barriers, and a request naming an id the recorded run was given (`h_12`) waits for
//! the replayed request that creates it and uses the fresh server's id instead. Times
//! follow the replay's clock ([`crate::timeline`]): the recorded timeline is replayed at
//! `--speed`, the marked times of the bodies move with it, and at `--max-speed` a request
//! recorded after a marked time (a sales opening) waits until that time has come in the
//! replay. Every answer is compared with the recorded one ([`Comparison`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use requestlog::{EmbeddedLog, EmbeddedOptions, LogWriter};

use crate::client::{Answer, Auth, Call, Client};
use crate::convert::{engine_to_http, http_to_engine, SeatLabels};
use crate::record::{Entry, RequestLog};
use crate::report::Recorder;
use crate::scenario::Kind;
use crate::setup::now_ms;
use crate::timeline::{event_time_pointers, Comparison, Gates, Outcome, ReplayClock};

pub use crate::timeline::Pace;

/// How long a request waits for the replayed request that creates an id it names.
const ID_WAIT: Duration = Duration::from_secs(30);

/// Recorded id → the fresh server's id, filled in as replayed answers arrive.
#[derive(Default)]
struct IdMap {
    ids: Mutex<HashMap<String, watch::Receiver<Option<String>>>>,
}

impl IdMap {
    /// Promises the ids a record's answer created; returns the senders to keep them.
    fn promise(
        &self,
        created: &BTreeMap<String, String>,
    ) -> Vec<(String, String, watch::Sender<Option<String>>)> {
        let mut ids = self
            .ids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut promised = Vec::new();
        for (pointer, old) in created {
            if ids.contains_key(old) {
                continue;
            }
            let (sender, receiver) = watch::channel(None);
            ids.insert(old.clone(), receiver);
            promised.push((pointer.clone(), old.clone(), sender));
        }
        promised
    }

    async fn resolve(&self, old: &str) -> String {
        let receiver = self
            .ids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(old)
            .cloned();
        let Some(mut receiver) = receiver else {
            return old.to_string();
        };
        let waited = tokio::time::timeout(ID_WAIT, receiver.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(value)) => value.clone().unwrap_or_else(|| old.to_string()),
            _ => old.to_string(),
        }
    }

    /// The path with every recorded id replaced by the fresh one.
    async fn rewrite(&self, path: &str) -> String {
        let mut out = Vec::new();
        for segment in path.split('/') {
            let is_id = ["ev_", "h_", "b_", "w_"].iter().any(|prefix| {
                segment.strip_prefix(prefix).is_some_and(|digits| {
                    !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit())
                })
            });
            out.push(if is_id {
                self.resolve(segment).await
            } else {
                segment.to_string()
            });
        }
        out.join("/")
    }
}

fn fulfil(promised: Vec<(String, String, watch::Sender<Option<String>>)>, answer: &Answer) {
    for (pointer, old, sender) in promised {
        // A failed replay keeps the old id: what names it then fails as it would have.
        let fresh = answer.text(&pointer).map_or(old, str::to_string);
        let _ = sender.send(Some(fresh));
    }
}

/// Outcome of an HTTP replay.
pub struct HttpReplay {
    pub recorder: Recorder,
    pub sent: u64,
    pub skipped: u64,
    pub elapsed: Duration,
    pub dispatch_lag_max: Duration,
    /// The replayed answers against the recorded ones (recorded HTTP runs only).
    pub comparison: Comparison,
}

/// One entry of a log as an HTTP replay sends it.
struct Planned {
    call: Call,
    /// Pointers of the body's absolute times.
    times: Vec<String>,
    recorded: Option<Outcome>,
    created: BTreeMap<String, String>,
}

fn planned(entry: &Entry, labels: &SeatLabels) -> Option<Planned> {
    match entry {
        Entry::Http(record) => Some(Planned {
            call: record.call.clone(),
            times: record.times.clone(),
            recorded: record.outcome(),
            created: record.created.clone(),
        }),
        Entry::Engine(record) => engine_to_http(&record.request, labels).map(|call| Planned {
            times: match (&record.request.command, &call.body) {
                (engine::Command::CreateEvent { .. }, Some(body)) => event_time_pointers(body),
                _ => Vec::new(),
            },
            call,
            recorded: None,
            created: BTreeMap::new(),
        }),
    }
}

/// The seat labels of the events an engine log creates (HTTP recordings carry labels).
fn seat_labels(log: &RequestLog) -> SeatLabels {
    SeatLabels::of(log.entries.iter().filter_map(|entry| match entry {
        Entry::Engine(record) => Some(&record.request),
        Entry::Http(_) => None,
    }))
}

/// The marked times of `log` that fall inside its timeline.
fn gates_of(log: &RequestLog) -> Gates {
    let labels = seat_labels(log);
    let calls: Vec<(usize, Planned)> = log
        .entries
        .iter()
        .filter_map(|entry| planned(entry, &labels).map(|planned| (entry.line(), planned)))
        .collect();
    Gates::collect(
        log.start_ms(),
        log.last_at_us(),
        calls.iter().filter_map(|(line, planned)| {
            planned
                .call
                .body
                .as_ref()
                .map(|body| (body, planned.times.as_slice(), format!("line {line}")))
        }),
    )
}

/// Waits until the replay's wall clock has reached the replayed time of the last gate
/// before the recorded offset `at_us`; returns how long it waited, and which gate.
/// Pacing against the clock the server stamps requests with, not synchronisation.
fn gate_wait(gates: &Gates, clock: &ReplayClock, at_us: u64) -> Option<(Duration, u64)> {
    let gate = gates.before(at_us)?;
    let due_ms = clock.map_ms(gate.recorded_ms);
    let now = now_ms();
    (now < due_ms).then(|| (Duration::from_millis(due_ms - now), gate.at_us))
}

/// Counts gate waits once per gate.
#[derive(Default)]
struct GateLog {
    last_gate_us: Option<u64>,
    waited: u64,
    wait: Duration,
}

impl GateLog {
    fn note(&mut self, gate_us: u64, wait: Duration) {
        if self.last_gate_us != Some(gate_us) {
            self.last_gate_us = Some(gate_us);
            self.waited += 1;
        }
        self.wait += wait;
    }
}

fn kind_of(entry: &Entry) -> Kind {
    match entry {
        Entry::Http(record) => record.kind,
        Entry::Engine(record) => match &record.request.command {
            engine::Command::CreateEvent { .. } => Kind::CreateEvent,
            engine::Command::PlaceHold {
                selection: engine::Selection::Seats(_),
                ..
            } => Kind::HoldExact,
            engine::Command::PlaceHold { .. } => Kind::HoldBest,
            engine::Command::ConfirmHold { .. } => Kind::Confirm,
            engine::Command::ReleaseHold { .. } => Kind::Release,
            engine::Command::CancelBooking { .. } => Kind::Cancel,
            engine::Command::JoinWaitlist { .. } => Kind::WaitlistJoin,
            _ => Kind::Other,
        },
    }
}

/// Replays `log` against `client`. `concurrency` bounds requests in flight (1 replays
/// strictly in order, which reproduces the recorded log order).
pub async fn replay_http(
    client: Arc<Client>,
    log: &RequestLog,
    pace: Pace,
    concurrency: usize,
    requests_max: u64,
    duration_max: Duration,
) -> HttpReplay {
    assert!(concurrency > 0);
    let ids = Arc::new(IdMap::default());
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let comparison = Arc::new(Mutex::new(Comparison {
        concurrency,
        ..Comparison::default()
    }));
    let permits = Arc::new(Semaphore::new(concurrency));
    let gates = gates_of(log);
    let mut gate_log = GateLog::default();
    let start = Instant::now();
    let clock = ReplayClock {
        recorded_start_ms: log.start_ms(),
        replay_start_ms: now_ms(),
        pace,
    };
    let mut sent = 0;
    let mut skipped = 0;
    let mut bookings_recorded = 0;
    let mut dispatch_lag_max = Duration::ZERO;
    let mut tasks = tokio::task::JoinSet::new();
    let labels = seat_labels(log);
    for entry in &log.entries {
        if sent >= requests_max || start.elapsed() >= duration_max {
            break;
        }
        let Some(Planned {
            mut call,
            times,
            recorded,
            created,
        }) = planned(entry, &labels)
        else {
            skipped += 1;
            continue;
        };
        let kind = kind_of(entry);
        let at_us = entry.at_us(log.first_timestamp_ms);
        let mut intended = start + Duration::from_micros(clock.map_offset_us(at_us));
        tokio::time::sleep_until(intended).await;
        if let Some((wait, gate_us)) = gate_wait(&gates, &clock, at_us) {
            tokio::time::sleep(wait).await;
            gate_log.note(gate_us, wait);
        }
        if pace == Pace::Max {
            intended = Instant::now();
        }
        if let Some(body) = call.body.as_mut() {
            clock.rewrite_times(body, &times);
        }
        let barrier = matches!(call.auth, Auth::Admin(_)) && call.method != "GET";
        if barrier {
            while tasks.join_next().await.is_some() {}
        }
        let permit = permits.clone().acquire_owned().await.expect("never closed");
        dispatch_lag_max = dispatch_lag_max.max(Instant::now().saturating_duration_since(intended));
        sent += 1;
        if kind == Kind::Confirm
            && recorded
                .as_ref()
                .is_some_and(|outcome| outcome.status == 201)
        {
            bookings_recorded += 1;
        }
        let promised = ids.promise(&created);
        let (client, ids, recorder, comparison) = (
            client.clone(),
            ids.clone(),
            recorder.clone(),
            comparison.clone(),
        );
        let line = entry.line();
        let task = async move {
            let request = format!("{} {}", call.method, call.path);
            call.path = ids.rewrite(&call.path).await;
            let answer = client.send(&call).await;
            let completed = Instant::now();
            fulfil(promised, &answer);
            drop(permit);
            let mut route = String::new();
            call.method_route_into(&mut route);
            let latency = completed.saturating_duration_since(intended);
            recorder
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .record(
                    kind,
                    &answer.code,
                    latency,
                    completed - start,
                    &route,
                    answer.status,
                );
            let mut comparison = comparison
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if kind == Kind::Confirm && answer.status == 201 {
                comparison.bookings_replayed += 1;
            }
            if let Some(recorded) = recorded {
                comparison.record(line, request, &recorded, &Outcome::of(&answer));
            }
        };
        tasks.spawn(task);
        if barrier {
            while tasks.join_next().await.is_some() {}
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let recorder = Arc::try_unwrap(recorder)
        .ok()
        .expect("every task finished")
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut comparison = Arc::try_unwrap(comparison)
        .expect("every task finished")
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    comparison.bookings_recorded = bookings_recorded;
    comparison.gates_waited = gate_log.waited;
    comparison.gate_wait_ms = gate_log.wait.as_millis() as u64;
    HttpReplay {
        recorder,
        sent,
        skipped,
        elapsed: start.elapsed(),
        dispatch_lag_max,
        comparison,
    }
}

/// Outcome of an engine-only replay.
pub struct LogReplay {
    pub recorder: Recorder,
    pub appended: u64,
    pub skipped: u64,
    pub first_offset: Option<u64>,
    pub last_offset: Option<u64>,
    pub elapsed: Duration,
    /// Gates waited at, and for how long in all.
    pub gates_waited: u64,
    pub gate_wait: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LogReplayError {
    #[error("cannot open the requests log under {path}: {message}")]
    Open { path: String, message: String },
    #[error("append failed: {0}")]
    Append(String),
    #[error("no exact replay: {0}")]
    ServerLog(#[from] crate::record::ServerLogError),
    #[error("cannot import the server's log: {0}")]
    Import(#[from] requestlog::ImportError),
}

/// What an exact replay wrote: the recorded server's own log.
pub struct ExactImport {
    pub records: u64,
    /// The state hash the recorded server reported, and the offset it is of (the log's
    /// last record): `boxoffice replay` of the data directory must print it.
    pub state_hash: String,
    pub hash_offset: u64,
    pub elapsed: Duration,
}

/// Writes the recorded server's requests log (the recording's `server_log`, checked whole)
/// into a fresh embedded requests log at `<data_dir>/requests`: the same offsets and the
/// same timestamps, each request encoded by `engine::wire` as the ingress encodes it. The
/// log must be empty or absent ([`requestlog::EmbeddedLog::import`] refuses anything else,
/// writing nothing), and no server may run on it.
pub fn import_server_log(log: &RequestLog, data_dir: &Path) -> Result<ExactImport, LogReplayError> {
    let started = std::time::Instant::now();
    let (server_log, engine) = log.exact_server_log()?;
    let records: Vec<requestlog::LogRecord> = server_log
        .iter()
        .map(|record| requestlog::LogRecord {
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
            payload: engine::wire::encode_request(&record.request),
        })
        .collect();
    let imported = EmbeddedLog::import(
        data_dir.join("requests"),
        &EmbeddedOptions::default(),
        &records,
    )?;
    Ok(ExactImport {
        records: imported.records,
        state_hash: engine.state_hash.clone(),
        hash_offset: engine
            .hash_offset()
            .expect("a whole server log ends at the hash's offset"),
        elapsed: started.elapsed(),
    })
}

/// Appends the log's requests (encoded with `engine::wire`) to the embedded requests log
/// at `<data_dir>/requests`, in batches of at most `batch_records`. The server must not be
/// running on that directory. Latency is per record, from its intended time to the end
/// of the durable append that carried it.
pub fn replay_into_log(
    log: &RequestLog,
    data_dir: &Path,
    pace: Pace,
    batch_records: usize,
    requests_max: u64,
) -> Result<LogReplay, LogReplayError> {
    assert!(batch_records > 0);
    let path = data_dir.join("requests");
    std::fs::create_dir_all(&path).map_err(|error| LogReplayError::Open {
        path: path.display().to_string(),
        message: error.to_string(),
    })?;
    let options = EmbeddedOptions::default();
    let batch_records = batch_records.min(options.append_records_max);
    let embedded = EmbeddedLog::open(&path, options).map_err(|error| LogReplayError::Open {
        path: path.display().to_string(),
        message: error.to_string(),
    })?;
    let writer = embedded.writer();
    let gates = gates_of(log);
    let mut gate_log = GateLog::default();
    let clock = ReplayClock {
        recorded_start_ms: log.start_ms(),
        replay_start_ms: now_ms(),
        pace,
    };
    let start = std::time::Instant::now();
    // (due offset, kind, encoded request, wall-clock ms it may not be appended before)
    let mut requests = Vec::new();
    let mut skipped = 0;
    for entry in &log.entries {
        if requests.len() as u64 >= requests_max {
            break;
        }
        let request = match entry {
            Entry::Http(record) => {
                let mut call = record.call.clone();
                if let Some(body) = call.body.as_mut() {
                    clock.rewrite_times(body, &record.times);
                }
                http_to_engine(&call)
            }
            Entry::Engine(record) => {
                let mut request = record.request.clone();
                if let engine::Command::CreateEvent { spec, .. } = &mut request.command {
                    move_spec_times(spec, &clock);
                }
                Some(request)
            }
        };
        let at_us = entry.at_us(log.first_timestamp_ms);
        match request {
            Some(request) => requests.push((
                Duration::from_micros(clock.map_offset_us(at_us)),
                kind_of(entry),
                engine::wire::encode_request(&request),
                gates
                    .before(at_us)
                    .map(|gate| (clock.map_ms(gate.recorded_ms), gate.at_us)),
            )),
            None => skipped += 1,
        }
    }
    let mut recorder = Recorder::default();
    let (mut first_offset, mut last_offset) = (None, None);
    let mut next = 0;
    while next < requests.len() {
        let due_at = |index: usize| requests[index].0;
        let wait = due_at(next).saturating_sub(start.elapsed());
        if !wait.is_zero() {
            // Pacing, not synchronisation: the next record is not due yet.
            std::thread::sleep(wait);
        }
        if let Some((gate_ms, gate_us)) = requests[next].3 {
            let now = now_ms();
            if now < gate_ms {
                // Pacing against the clock the log stamps records with: a gate.
                let wait = Duration::from_millis(gate_ms - now);
                std::thread::sleep(wait);
                gate_log.note(gate_us, wait);
            }
        }
        let now = start.elapsed();
        let now_wall_ms = now_ms();
        // At full speed a record is due when its batch may go (after any gate).
        let charged_from = |index: usize| match pace {
            Pace::Speed(_) => due_at(index),
            Pace::Max => now,
        };
        let mut end = next + 1;
        while end < requests.len()
            && end - next < batch_records
            && due_at(end) <= now
            && requests[end]
                .3
                .is_none_or(|(gate_ms, _)| gate_ms <= now_wall_ms)
        {
            end += 1;
        }
        let payloads: Vec<Vec<u8>> = requests[next..end]
            .iter()
            .map(|(_, _, bytes, _)| bytes.clone())
            .collect();
        let appended = writer
            .append(payloads)
            .map_err(|error| LogReplayError::Append(error.to_string()))?;
        let completed = start.elapsed();
        first_offset = first_offset.or(appended.first().map(|record| record.offset));
        last_offset = appended.last().map(|record| record.offset).or(last_offset);
        for (index, request) in requests.iter().enumerate().take(end).skip(next) {
            recorder.record(
                request.1,
                "ok",
                completed.saturating_sub(charged_from(index)),
                completed,
                "APPEND requests",
                0,
            );
        }
        next = end;
    }
    Ok(LogReplay {
        recorder,
        appended: next as u64,
        skipped,
        first_offset,
        last_offset,
        elapsed: start.elapsed(),
        gates_waited: gate_log.waited,
        gate_wait: gate_log.wait,
    })
}

/// Moves an event spec's times (a `boxoffice log export` record) onto the replay's clock.
fn move_spec_times(spec: &mut engine::EventSpec, clock: &ReplayClock) {
    spec.starts_at_ms = clock.map_ms(spec.starts_at_ms);
    for time in [
        &mut spec.ends_at_ms,
        &mut spec.sales_open_at_ms,
        &mut spec.sales_close_at_ms,
    ] {
        *time = time.map(|ms| clock.map_ms(ms));
    }
}

/// Reads `/metrics` (Prometheus text) into `"METHOD route" → status → count` from
/// `boxoffice_http_requests_total`.
pub fn parse_http_metrics(text: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("boxoffice_http_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once('}') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let label = |name: &str| -> Option<String> {
            let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
            let end = labels[start..].find('"')? + start;
            Some(labels[start..end].to_string())
        };
        if let (Some(route), Some(method), Some(status)) =
            (label("route"), label("method"), label("status"))
        {
            *counts
                .entry(format!("{method} {route}"))
                .or_default()
                .entry(status)
                .or_default() += value as u64;
        }
    }
    counts
}
