//! One run of a scenario: setup, load (open loop, closed loop or step), report, plots,
//! verification. Everything is bounded: the scenario's (or the flags') request budget and
//! duration, capped by [`crate::scenario::DURATION_MAX_SECONDS`] and
//! [`crate::scenario::REQUESTS_MAX`].

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

use crate::client::{Answer, Auth, Call, Client};
use crate::record::{Header, HttpRecord, RecordingEnd, RequestLogWriter, FORMAT_VERSION};
use crate::report::{GrantedSummary, Recorder, Report, StepReport};
use crate::scenario::{Kind, Scenario};
use crate::schedule::{drive_open_loop, DriveSummary, Pacer, Slot};
use crate::setup::{now_ms, rfc3339, setup_calls, EventLayout};
use crate::verify::{verify, Exclusive, Verification};
use crate::workload::{Action, Plan, Workload};
use crate::LoadgenError;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A fixed offered rate; latency from each request's intended send time.
    Open,
    /// `--concurrency` virtual users, each waiting for its answer (and think time).
    Closed,
    /// Open loop at rising rates until p99 passes the threshold.
    Step,
}

/// Everything a run needs, already resolved from flags and the scenario.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub scenario: Scenario,
    pub scale: f64,
    pub mode: Mode,
    pub concurrency: usize,
    pub step_start_rate: Option<f64>,
    pub step_factor: f64,
    pub step_seconds: f64,
    pub step_rate_max: f64,
    pub p99_threshold_ms: f64,
    pub tenant: String,
    pub record: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub plots: bool,
    pub verify: bool,
    pub operator: bool,
    pub progress: bool,
    /// Processes whose CPU time the report gives per response (`--cpu-of`); the load
    /// generator's own is always given.
    pub cpu_of: Vec<crate::cpu::Watched>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A crowd up to this size has every user's token minted before the run (about 300
/// bytes and a few microseconds each: 75 MB and about a second at most), so the load
/// generator's CPU per response measures the calls, not the signing of tokens; a larger
/// one mints each on first use.
const USERS_TOKENS_MINTED_AHEAD_MAX: u64 = 250_000;

thread_local! {
    /// The answer's `METHOD /route` key, built in place (one buffer per worker thread,
    /// not a `format!` per answer).
    static ROUTE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Shared by the dispatcher and the completion callbacks.
struct Shared {
    workload: Mutex<Workload>,
    recorder: Mutex<Recorder>,
    /// The current step's answers (step mode; reset at each step).
    step_recorder: Mutex<Recorder>,
    writer: Option<RequestLogWriter>,
    progress: ProgressBar,
    start: Instant,
    /// Where `start` sits in the recording's timeline (after setup).
    timeline_offset: Duration,
}

impl Shared {
    fn complete(&self, slot: Slot, action: Action, call: Call, answer: Answer, latency: Duration) {
        let now = self.start.elapsed();
        lock(&self.workload).observe(&action, &answer, now);
        ROUTE.with_borrow_mut(|route| {
            call.method_route_into(route);
            for recorder in [&self.recorder, &self.step_recorder] {
                lock(recorder).record(
                    action.kind(),
                    &answer.code,
                    latency,
                    now,
                    route,
                    answer.status,
                );
            }
        });
        if let Some(writer) = &self.writer {
            let at = self.timeline_offset + slot.intended;
            let record = HttpRecord::answered(at.as_micros() as u64, action.kind(), call, &answer);
            // A full disk must not stop the load: the run's report says what was recorded.
            let _ = writer.write(&record);
        }
        self.progress.inc(1);
    }
}

/// Creates the scenario's events; records the calls, at their place in the timeline
/// that starts at `timeline_start`, when recording.
async fn setup(
    client: &Client,
    scenario: &Scenario,
    tenant: &str,
    writer: Option<&RequestLogWriter>,
    timeline_start: Instant,
) -> Result<Vec<EventLayout>, LoadgenError> {
    let mut layouts = Vec::new();
    for (call, mut layout) in setup_calls(scenario, tenant, now_ms()) {
        let at = timeline_start.elapsed();
        let answer = client.send(&call).await;
        let Some(event_id) = answer.text("/event_id").filter(|_| answer.status == 201) else {
            return Err(LoadgenError::Setup(format!(
                "POST /v1/admin/events answered {} {}: {}",
                answer.status,
                answer.code,
                answer.body()
            )));
        };
        layout.event_id = event_id.to_string();
        if let Some(writer) = writer {
            let record =
                HttpRecord::answered(at.as_micros() as u64, Kind::CreateEvent, call, &answer);
            writer.write(&record).map_err(|error| LoadgenError::Io {
                what: "writing the request log".into(),
                source: error,
            })?;
        }
        layouts.push(layout);
    }
    Ok(layouts)
}

fn progress_bar(enabled: bool, length: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} {bar:40} {pos}/{len} answers {per_sec} {msg}",
        )
        .expect("a valid template"),
    );
    bar
}

/// One open-loop phase: its rate, length, request budget, arrivals' seed and start.
struct OpenPhase {
    rate: f64,
    duration: Duration,
    /// At most this many requests (slots with nothing due are free).
    requests_max: u64,
    seed: u64,
    start: Instant,
}

/// One open-loop phase at `phase.rate` for `phase.duration` (at most `phase.requests_max`
/// requests); true with it when the workload ran out (every user done) before the phase
/// did.
async fn open_phase(
    client: &Arc<Client>,
    shared: &Arc<Shared>,
    phase: OpenPhase,
    scenario: &Scenario,
) -> (DriveSummary, bool) {
    let OpenPhase {
        rate,
        duration,
        requests_max,
        seed,
        start: phase_start,
    } = phase;
    // The budget counts requests, not slots: slots with nothing due are free.
    let pacer = Pacer::new(rate, scenario.load.arrivals, seed, u64::MAX, duration);
    let planner = shared.clone();
    let exhausted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ran_out = exhausted.clone();
    let offset = phase_start.saturating_duration_since(shared.start);
    let mut sent = 0u64;
    let plan = move |slot: Slot| -> Result<Option<_>, ()> {
        if sent >= requests_max {
            return Err(());
        }
        let plan = lock(&planner.workload).plan(offset + slot.intended);
        match plan {
            Plan::Send(action, call) => {
                sent += 1;
                let client = client.clone();
                Ok(Some(async move {
                    let answer = client.send(&call).await;
                    (action, call, answer)
                }))
            }
            Plan::Skip => Ok(None),
            Plan::Exhausted => {
                ran_out.store(true, std::sync::atomic::Ordering::Relaxed);
                Err(())
            }
        }
    };
    let completer = shared.clone();
    let complete =
        move |slot: Slot, (action, call, answer): (Action, Call, Answer), latency: Duration| {
            let slot = Slot {
                index: slot.index,
                intended: offset + slot.intended,
            };
            completer.complete(slot, action, call, answer, latency);
        };
    let summary = drive_open_loop(
        pacer,
        phase_start,
        scenario.load.in_flight_max,
        plan,
        complete,
    )
    .await;
    (
        summary,
        exhausted.load(std::sync::atomic::Ordering::Relaxed),
    )
}

/// Whether a step counts as sustained for the knee: p99 under the threshold, at most 1% of
/// answers lost to transport errors, timeouts or 503s, and the step ran its full length (a
/// step cut short because the users or the request budget ran out measured a burst).
pub fn step_sustained(
    p99_us: u64,
    p99_threshold_ms: f64,
    transport_errors: u64,
    responses: u64,
    cut_short: bool,
) -> bool {
    (p99_us as f64) < p99_threshold_ms * 1_000.0
        && transport_errors * 100 <= responses.max(1)
        && responses > 0
        && !cut_short
}

/// Closed loop: `concurrency` users, each sending its next request when the previous
/// answered (plus the scenario's closed-loop think time).
async fn closed_phase(
    client: &Arc<Client>,
    shared: &Arc<Shared>,
    concurrency: usize,
    duration: Duration,
    requests_max: u64,
    scenario: &Scenario,
) -> DriveSummary {
    let budget = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut users = tokio::task::JoinSet::new();
    for user in 0..concurrency {
        let (client, shared, budget) = (client.clone(), shared.clone(), budget.clone());
        let think = scenario.think.closed_loop_ms;
        users.spawn(async move {
            let mut summary = DriveSummary::default();
            let mut think_rng = user as u64;
            loop {
                let now = shared.start.elapsed();
                if now >= duration {
                    break;
                }
                let plan = lock(&shared.workload).plan(now);
                let (action, call) = match plan {
                    Plan::Send(action, call) => (action, call),
                    Plan::Exhausted => break,
                    Plan::Skip => {
                        summary.skipped += 1;
                        // Nothing due yet: the next follow-up's think time has not passed.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                };
                let index = budget.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if index >= requests_max {
                    lock(&shared.workload).abandon(&action, now);
                    break;
                }
                summary.sent += 1;
                let sent_at = Instant::now();
                let answer = client.send(&call).await;
                let latency = sent_at.elapsed();
                shared.complete(
                    Slot {
                        index,
                        intended: sent_at - shared.start,
                    },
                    action,
                    call,
                    answer,
                    latency,
                );
                // A small deterministic spread of think time per user.
                think_rng = think_rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let span = think.max_ms - think.min_ms;
                let pause = think.min_ms
                    + if span == 0 {
                        0
                    } else {
                        (think_rng >> 33) % (span + 1)
                    };
                if pause > 0 {
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }
            summary
        });
    }
    let mut total = DriveSummary::default();
    while let Some(result) = users.join_next().await {
        if let Ok(summary) = result {
            total.sent += summary.sent;
            total.skipped += summary.skipped;
        }
    }
    total.slots = total.sent + total.skipped;
    total
}

/// Runs a scenario against `client` and returns its report (also written to `out`).
pub async fn run_scenario(
    client: Arc<Client>,
    options: RunOptions,
) -> Result<Report, LoadgenError> {
    let scenario = options.scenario.clone();
    scenario.validate().map_err(LoadgenError::Scenario)?;
    let ready = client
        .send(&Call::get("/healthz", crate::client::Auth::None))
        .await;
    if ready.status != 200 {
        return Err(LoadgenError::Setup(format!(
            "{} is not answering /healthz ({} {})",
            client.base(),
            ready.status,
            ready.code
        )));
    }
    // The recording's timeline: wall-clock `started_at_ms` is offset 0 of `timeline_start`.
    let started_at_ms = now_ms();
    let timeline_start = Instant::now();
    let writer = match &options.record {
        Some(path) => Some(
            RequestLogWriter::create(
                path,
                &Header {
                    loadgen_request_log: FORMAT_VERSION,
                    started_at_ms,
                    scenario: scenario.name.clone(),
                },
            )
            .map_err(|source| LoadgenError::Io {
                what: format!("creating {}", path.display()),
                source,
            })?,
        ),
        None => None,
    };
    if scenario.users.count <= USERS_TOKENS_MINTED_AHEAD_MAX {
        let users = &scenario.users;
        client.mint_numbered_user_tokens(&users.prefix, users.count);
    }
    let layouts = setup(
        &client,
        &scenario,
        &options.tenant,
        writer.as_ref(),
        timeline_start,
    )
    .await?;
    if scenario.load.start_at_sales_open {
        // An on-sale starts when its window opens, or its arrival window if it has one.
        if let Some(open_at) = layouts
            .iter()
            .filter_map(|layout| {
                let open = layout.sales_open_at_ms?;
                Some(open.saturating_sub(layout.arrival_window_ms.unwrap_or(0)))
            })
            .max()
        {
            let wait = open_at.saturating_sub(now_ms());
            // Pacing: the on-sale starts when the window opens.
            tokio::time::sleep(Duration::from_millis(wait + 1)).await;
        }
    }
    let duration = Duration::from_secs_f64(scenario.load.duration_seconds);
    let requests_max = scenario.load.requests_max;
    let expected = match options.mode {
        Mode::Open => requests_max
            .min((scenario.load.rate_per_second * scenario.load.duration_seconds).ceil() as u64),
        _ => requests_max,
    };
    // The measured phase starts here: setup is not charged to anyone's CPU figure.
    let cpu_start = crate::cpu::CpuStart::take(&options.cpu_of).map_err(LoadgenError::Setup)?;
    let load_start = Instant::now();
    let load_start_wall_ms = now_ms();
    let shared = Arc::new(Shared {
        workload: Mutex::new(Workload::new(scenario.clone(), layouts.clone())),
        recorder: Mutex::new(Recorder::default()),
        step_recorder: Mutex::new(Recorder::default()),
        writer,
        progress: progress_bar(options.progress, expected),
        start: load_start,
        timeline_offset: load_start - timeline_start,
    });
    let mut steps = Vec::new();
    let mut knee = None;
    let summary = match options.mode {
        Mode::Open => {
            open_phase(
                &client,
                &shared,
                OpenPhase {
                    rate: scenario.load.rate_per_second,
                    duration,
                    requests_max,
                    seed: scenario.seed,
                    start: shared.start,
                },
                &scenario,
            )
            .await
            .0
        }
        Mode::Closed => {
            closed_phase(
                &client,
                &shared,
                options.concurrency.max(1),
                duration,
                requests_max,
                &scenario,
            )
            .await
        }
        Mode::Step => {
            let mut rate = options
                .step_start_rate
                .unwrap_or(scenario.load.rate_per_second);
            let step = Duration::from_secs_f64(options.step_seconds);
            let mut total = DriveSummary::default();
            let mut issued = 0u64;
            let mut step_index = 0u64;
            while rate <= options.step_rate_max
                && shared.start.elapsed() + step <= duration
                && issued < requests_max
            {
                *lock(&shared.step_recorder) = Recorder::default();
                let phase_start = Instant::now();
                shared.progress.set_message(format!("step {rate:.0}/s"));
                let full_step = (rate * options.step_seconds).ceil() as u64;
                let budget = (requests_max - issued).min(full_step);
                let (phase, users_ran_out) = open_phase(
                    &client,
                    &shared,
                    OpenPhase {
                        rate,
                        duration: step,
                        requests_max: budget,
                        seed: scenario.seed.wrapping_add(step_index),
                        start: phase_start,
                    },
                    &scenario,
                )
                .await;
                let elapsed = phase_start.elapsed().as_secs_f64();
                let measured = std::mem::take(&mut *lock(&shared.step_recorder));
                issued += phase.sent;
                total.slots += phase.slots;
                total.sent += phase.sent;
                total.skipped += phase.skipped;
                total.dispatch_lag_max = total.dispatch_lag_max.max(phase.dispatch_lag_max);
                if phase.sent == 0 {
                    break; // nothing left to send: not a step
                }
                // The users or the run's request budget ran out before the step's end.
                let cut_short = users_ran_out || budget < full_step;
                let summary = measured.summarize();
                let p99 = summary.overall.p99_us;
                steps.push(StepReport {
                    target_rate_per_second: rate,
                    achieved_rate_per_second: summary.responses as f64 / elapsed.max(1e-9),
                    responses: summary.responses,
                    errors: measured.errors(),
                    p50_us: summary.overall.p50_us,
                    p99_us: p99,
                    max_us: summary.overall.max_us,
                    cut_short,
                });
                let transport_errors = summary
                    .errors_by_code
                    .iter()
                    .filter(|(code, _)| {
                        matches!(code.as_str(), "transport" | "timeout" | "unavailable")
                    })
                    .map(|(_, count)| count)
                    .sum::<u64>();
                if !step_sustained(
                    p99,
                    options.p99_threshold_ms,
                    transport_errors,
                    summary.responses,
                    cut_short,
                ) {
                    break;
                }
                knee = Some(rate);
                rate *= options.step_factor;
                step_index += 1;
            }
            total
        }
    };
    shared.progress.finish_and_clear();
    if let Some(writer) = &shared.writer {
        writer.flush().map_err(|source| LoadgenError::Io {
            what: "flushing the request log".into(),
            source,
        })?;
    }
    let elapsed = shared.start.elapsed().as_secs_f64();
    let measurements = lock(&shared.recorder).summarize();
    let cpu = cpu_start
        .finish(measurements.responses)
        .map_err(LoadgenError::Setup)?;
    let granted = lock(&shared.workload).granted.clone();
    let granted_summary = GrantedSummary {
        holds_granted: granted.holds_granted,
        bookings_granted: granted.bookings_granted,
        waitlisted: granted.waitlisted,
        holds_live: granted.holds.len() as u64,
        bookings_live: granted.bookings.len() as u64,
        seats_booked_live: granted
            .bookings
            .values()
            .map(|booking| {
                booking.seats.len() as u64
                    + booking
                        .pool
                        .as_ref()
                        .map_or(0, |(_, quantity)| u64::from(*quantity))
            })
            .sum(),
    };
    let verification: Option<Verification> = if options.verify {
        // Writes the run sent are all answered (the driver waited), so their outcomes are applied.
        Some(
            verify(
                &client,
                &layouts,
                Some(&granted),
                Exclusive::default(),
                options.operator,
            )
            .await
            .map_err(|error| LoadgenError::Verify(error.to_string()))?,
        )
    } else {
        None
    };
    if let Some(writer) = &shared.writer {
        let at_us = timeline_start.elapsed().as_micros() as u64;
        let engine = match verification
            .as_ref()
            .and_then(|verification| verification.engine.clone())
        {
            Some(engine) => Some(engine),
            None if options.operator => Some(
                crate::verify::settled_engine_status(&client)
                    .await
                    .map_err(|error| LoadgenError::Verify(error.to_string()))?,
            ),
            None => None,
        };
        // A sharded server has a requests log per shard; the recording carries one log
        // (an exact replay of a sharded recording is not built: each shard is checked
        // against its own log by `check-replay` instead).
        let server_log_records = match engine
            .as_ref()
            .filter(|engine| engine.shards.is_empty())
            .and_then(|engine| engine.hash_offset())
        {
            Some(hash_offset) => Some(record_server_log(&client, writer, hash_offset).await?),
            None => None,
        };
        let end = RecordingEnd {
            at_us,
            engine,
            server_log_records,
        };
        writer.finish(&end).map_err(|source| LoadgenError::Io {
            what: "finishing the request log".into(),
            source,
        })?;
    }
    let draws = draw_spreads(&client, &layouts, &granted, load_start_wall_ms).await;
    let report = Report {
        loadgen_version: env!("CARGO_PKG_VERSION").into(),
        scenario: scenario.name.clone(),
        scale: options.scale,
        mode: match options.mode {
            Mode::Open => "open",
            Mode::Closed => "closed",
            Mode::Step => "step",
        }
        .into(),
        target: client.base().to_string(),
        started_at: rfc3339(started_at_ms),
        seed: scenario.seed,
        duration_seconds: elapsed,
        target_rate_per_second: (options.mode == Mode::Open)
            .then_some(scenario.load.rate_per_second),
        achieved_rate_per_second: measurements.responses as f64 / elapsed.max(1e-9),
        concurrency: (options.mode == Mode::Closed).then_some(options.concurrency),
        slots: summary.slots,
        requests_sent: summary.sent,
        skipped_slots: summary.skipped,
        dispatch_lag_max_us: summary.dispatch_lag_max.as_micros() as u64,
        events: layouts
            .iter()
            .map(|layout| layout.event_id.clone())
            .collect(),
        measurements,
        steps,
        knee_rate_per_second: knee,
        p99_threshold_ms: (options.mode == Mode::Step).then_some(options.p99_threshold_ms),
        granted: Some(granted_summary),
        verification,
        cpu,
        replay: None,
        draws,
    };
    if let Some(out) = &options.out {
        write_outputs(&report, out, options.plots)?;
        let layouts_path = out.join("events.json");
        let layouts_json = serde_json::to_string_pretty(&layouts).expect("layouts serialize");
        std::fs::write(&layouts_path, layouts_json).map_err(|source| LoadgenError::Io {
            what: format!("writing {}", layouts_path.display()),
            source,
        })?;
    }
    Ok(report)
}

/// Stores the server's requests log, offsets 0 through `hash_offset` (the offset of the
/// state hash the recording ends with, so the two describe one log), in the recording as
/// `server_log` lines; returns how many. Each line is checked (JSON, the next offset) as
/// it arrives, and the whole must arrive: a log cut short fails the run's recording.
async fn record_server_log(
    client: &Client,
    writer: &RequestLogWriter,
    hash_offset: u64,
) -> Result<u64, LoadgenError> {
    let mut next_offset = 0;
    let path = format!("/v1/admin/engine/requests?to={hash_offset}");
    client
        .get_operator_lines(&path, |line| {
            let value: serde_json::Value = serde_json::from_slice(line)
                .map_err(|error| format!("line {}: not JSON: {error}", next_offset + 1))?;
            let offset = value.get("offset").and_then(serde_json::Value::as_u64);
            if offset != Some(next_offset) {
                return Err(format!(
                    "expected the record at offset {next_offset}, got {offset:?}"
                ));
            }
            next_offset += 1;
            writer
                .write_server_log_line(std::str::from_utf8(line).expect("JSON is UTF-8"))
                .map_err(|error| format!("cannot write the recording: {error}"))
        })
        .await
        .and_then(|()| {
            (next_offset == hash_offset + 1)
                .then_some(next_offset)
                .ok_or_else(|| {
                    format!("the log ended at offset {next_offset}, before offset {hash_offset}")
                })
        })
        .map_err(|error| {
            LoadgenError::Verify(format!("cannot record the server's requests log: {error}"))
        })
}

/// Writes `report.json` and the plots under `out`.
pub fn write_outputs(report: &Report, out: &Path, plots: bool) -> Result<(), LoadgenError> {
    std::fs::create_dir_all(out).map_err(|source| LoadgenError::Io {
        what: format!("creating {}", out.display()),
        source,
    })?;
    let path = out.join("report.json");
    std::fs::write(&path, report.to_json()).map_err(|source| LoadgenError::Io {
        what: format!("writing {}", path.display()),
        source,
    })?;
    if plots {
        if !report.measurements.timeline.is_empty() {
            crate::plot::latency_over_time(report, &out.join("latency-over-time.svg"))
                .map_err(|error| LoadgenError::Plot(error.to_string()))?;
            crate::plot::percentile_curve(report, &out.join("percentile-curve.svg"))
                .map_err(|error| LoadgenError::Plot(error.to_string()))?;
        }
        if !report.steps.is_empty() {
            crate::plot::steps(report, &out.join("steps.svg"))
                .map_err(|error| LoadgenError::Plot(error.to_string()))?;
        }
    }
    Ok(())
}

/// How long after an event's opening the report waits for its draw to be published.
const DRAW_WAIT_MS: u64 = 30_000;

/// For each event with an arrival window: its draw as published (`GET
/// /v1/events/{id}/draw`), and the spread of the places of the run's entries by when they
/// arrived (their answer's time; ten spans of the window).
async fn draw_spreads(
    client: &Client,
    layouts: &[EventLayout],
    granted: &crate::workload::Granted,
    load_start_wall_ms: u64,
) -> Vec<crate::report::DrawSpread> {
    let mut spreads = Vec::new();
    for (index, layout) in layouts.iter().enumerate() {
        let (Some(draws_at_ms), Some(window_ms)) =
            (layout.sales_open_at_ms, layout.arrival_window_ms)
        else {
            continue;
        };
        // A run that ends inside the window waits for the draw (made by the engine's first
        // record at or past the opening; its ticks come at least every second).
        let call = Call::get(format!("/v1/events/{}/draw", layout.event_id), Auth::None);
        let give_up_ms = draws_at_ms + DRAW_WAIT_MS;
        let answer = loop {
            let answer = client.send(&call).await;
            if answer.text("/status") != Some("pending") || now_ms() > give_up_ms {
                break answer;
            }
            let until_draw_ms = draws_at_ms.saturating_sub(now_ms());
            tokio::time::sleep(Duration::from_millis(until_draw_ms.clamp(50, 1_000))).await;
        };
        let seed_source = answer.text("/seed_source").unwrap_or_default().to_string();
        let places: BTreeMap<String, u64> = answer
            .body()
            .pointer("/entries")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                Some((
                    entry.get("waitlist_id")?.as_str()?.to_string(),
                    entry.get("place")?.as_u64()?,
                ))
            })
            .collect();
        let arrivals: Vec<(String, u64)> = granted
            .entries
            .iter()
            .filter(|entry| entry.event == index)
            .map(|entry| {
                (
                    entry.waitlist_id.clone(),
                    load_start_wall_ms + entry.answered_after_ms,
                )
            })
            .collect();
        let opens_at_ms = draws_at_ms.saturating_sub(window_ms);
        spreads.push(crate::report::DrawSpread {
            event_id: layout.event_id.clone(),
            seed_source,
            entries: places.len() as u64,
            buckets: crate::report::draw_spread(
                opens_at_ms,
                draws_at_ms,
                &arrivals,
                &places,
                places.len() as u64,
                10,
            ),
        });
    }
    spreads
}
