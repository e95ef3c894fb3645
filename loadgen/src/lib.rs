//! `loadgen`: the load tester of Boxoffice (`boxoffice loadgen`, or the standalone
//! `loadgen` binary).
//!
//! It creates a scenario's events through the admin API, then sends a seeded request mix
//! from a user population against a server on a loopback address, measures every answer
//! in HDR histograms from the request's *intended* send time (open loop, no coordinated
//! omission), and writes a JSON report and SVG plots. It can record what it sent and
//! replay it (over HTTP, or straight into an embedded requests log), and verify the
//! server's state afterwards.
//!
//! Layout:
//! - [`scenario`]: the TOML scenario files (`config/scenarios/*.toml`), validation, `--scale`.
//! - [`schedule`]: the open-loop [`schedule::Pacer`] (sans-io) and its tokio driver.
//! - [`workload`]: the user population's state machine: which request a slot becomes.
//! - [`setup`]: event layouts and the admin calls that create them.
//! - [`client`]: API calls as data, user tokens (HS256), the loopback-only HTTP client.
//! - [`report`]: per-kind histograms, error codes, the JSON report; [`plot`]: SVG plots.
//! - [`record`]: request logs (ours, and `boxoffice log export`); [`replay`]: replays;
//!   [`timeline`]: the replay's clock, gates and the outcome comparison (sans-io);
//!   [`convert`]: HTTP call ⇄ `engine::Request`.
//! - [`verify`]: post-run checks through the API and the engine's state hash.
//! - [`run`]: one run, wiring all of the above.
//!
//! Load tests assume the server runs with `BOXOFFICE_RATE_LIMIT_ENABLED=false`.

pub mod client;
pub mod convert;
pub mod cpu;
pub mod plot;
pub mod record;
pub mod replay;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod setup;
pub mod timeline;
pub mod verify;
pub mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use client::{Client, Credentials};
use record::RequestLog;
use replay::Pace;
use report::Report;
use run::{Mode, RunOptions};
use scenario::Scenario;

#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error(transparent)]
    ScenarioFile(#[from] scenario::ScenarioError),
    #[error("invalid scenario: {0}")]
    Scenario(String),
    #[error(transparent)]
    Target(#[from] client::TargetError),
    #[error("setup failed: {0}")]
    Setup(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Record(#[from] record::RecordError),
    #[error(transparent)]
    LogReplay(#[from] replay::LogReplayError),
    #[error("verification could not run: {0}")]
    Verify(String),
    #[error("verification failed")]
    VerificationFailed,
    #[error("plot: {0}")]
    Plot(String),
    #[error("{0}")]
    Usage(String),
}

/// `boxoffice loadgen ...` / `loadgen ...`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
    /// Tokio worker threads of the load generator (the server needs the other cores).
    #[arg(long, global = true, default_value_t = 1)]
    pub threads: usize,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Run a scenario against a server on a loopback address.
    Run(RunArgs),
    /// Replay a request log (ours or `boxoffice log export`) over HTTP or into a requests log.
    Replay(ReplayArgs),
    /// Check a server's events through the API (and its engine state hash with the operator key).
    Verify(VerifyArgs),
    /// Compare a report's engine state hash with `boxoffice replay` of the stopped server's data dir.
    CheckReplay(CheckReplayArgs),
    /// Parse a scenario (and scale it) and print it back as TOML.
    Scenario {
        path: PathBuf,
        /// As `run --scale`: inventory, users, request budget and rate times this factor,
        /// the duration too (never below 20 s nor above the scenario's).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Base URL of the server; only loopback addresses are accepted.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "LOADGEN_TARGET")]
    pub target: String,
    /// Secret that signs user tokens (HS256, `sub` = user id).
    #[arg(
        long,
        default_value = "demo-user-secret",
        env = "BOXOFFICE_AUTH_USER_TOKEN_SECRET"
    )]
    pub user_token_secret: String,
    /// Tenant whose admin key creates the events.
    #[arg(long, default_value = "demo")]
    pub tenant: String,
    #[arg(long, default_value = "demo-admin-key", env = "LOADGEN_ADMIN_KEY")]
    pub admin_key: String,
    /// Operator key: enables the engine state-hash check.
    #[arg(long, env = "LOADGEN_OPERATOR_KEY")]
    pub operator_key: Option<String>,
    /// The engine's operator endpoint, when the engine is not behind `--target` (Kafka
    /// mode: the address `boxoffice engine --operator-listen` printed).
    #[arg(long, env = "LOADGEN_ENGINE_TARGET")]
    pub engine_target: Option<String>,
    /// Per-request timeout.
    #[arg(long, default_value_t = 30.0)]
    pub timeout_seconds: f64,
}

impl ConnectArgs {
    fn client(&self) -> Result<Client, LoadgenError> {
        let credentials = Credentials {
            user_token_secret: self.user_token_secret.clone(),
            admin_keys: vec![(self.tenant.clone(), self.admin_key.clone())],
            operator_key: self.operator_key.clone(),
        };
        let client = Client::new(
            &self.target,
            credentials,
            Duration::from_secs_f64(self.timeout_seconds.clamp(0.1, 600.0)),
        )?;
        Ok(match &self.engine_target {
            Some(engine_target) => client.with_operator_target(engine_target)?,
            None => client,
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Scenario file (`config/scenarios/*.toml`).
    pub scenario: PathBuf,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Multiplies the inventory (event copies, rows, general-admission pools), the users,
    /// the request budget and the rate by this factor, and the duration too but never
    /// below 20 s nor above the scenario's: `--scale 0.01` is a dry run of at most 20 s.
    /// Seats per row, the mix, think times and sales windows stay.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    #[arg(long, value_enum, default_value_t = Mode::Open)]
    pub mode: Mode,
    /// Offered rate (requests/s), overriding the scenario's.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Run length in seconds, overriding the scenario's.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Request budget, overriding the scenario's.
    #[arg(long)]
    pub requests: Option<u64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Requests in flight at most (open loop).
    #[arg(long)]
    pub in_flight: Option<usize>,
    /// Closed loop: concurrent virtual users.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Closed loop: no pause between a user's requests (the scenario's `think.closed_loop_ms`
    /// is ignored), for throughput comparisons with tools that do not pause either.
    #[arg(long)]
    pub no_think: bool,
    /// Step mode: first rate (default: the scenario's rate).
    #[arg(long)]
    pub step_start: Option<f64>,
    /// Step mode: each step multiplies the rate by this.
    #[arg(long, default_value_t = 1.5)]
    pub step_factor: f64,
    /// Step mode: seconds per step.
    #[arg(long, default_value_t = 10.0)]
    pub step_seconds: f64,
    /// Step mode: highest rate tried.
    #[arg(long, default_value_t = 200_000.0)]
    pub step_max: f64,
    /// Step mode: the knee is the highest rate whose p99 stays under this.
    #[arg(long, default_value_t = 50.0)]
    pub p99_threshold_ms: f64,
    /// Record every request sent into this JSON-lines request log.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Directory for report.json, events.json and the plots.
    #[arg(long, default_value = "loadgen-out")]
    pub out: PathBuf,
    #[arg(long)]
    pub no_plots: bool,
    /// Verify the server's state after the run (exit status 1 when a check fails).
    #[arg(long)]
    pub verify: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Report the CPU time of this process over the measured phase, per response:
    /// `NAME=PID`, repeatable (e.g. `--cpu-of serve=$(pgrep -f 'boxoffice.*serve')`).
    /// The load generator's own is always reported. Each process's figure is also split
    /// by thread name (threads of one name summed), so a run says which stage costs what.
    #[arg(long, value_name = "NAME=PID", value_parser = cpu::Watched::parse)]
    pub cpu_of: Vec<cpu::Watched>,
}

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Request log: `loadgen run --record` output or `boxoffice log export` output.
    pub log: PathBuf,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Append into the embedded requests log under this data directory instead of HTTP
    /// (engine-only replay; the server must not be running on it). A recording that holds
    /// the server's requests log (recorded with --operator-key) is written exactly (its
    /// offsets and times, into an empty log; no pacing), then `boxoffice replay` of the
    /// directory is compared with the recorded state hash: "state hash: same" or
    /// "differs" (exit status 1).
    #[arg(long)]
    pub into_data_dir: Option<PathBuf>,
    /// The `boxoffice` binary that replays an exact import (default: as check-replay's).
    #[arg(long)]
    pub boxoffice: Option<PathBuf>,
    /// The configuration `boxoffice replay` runs with for an exact import: the recorded
    /// server's (its engine keys are checked against the log's Configure record).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Replay N times faster than recorded (1 = original pacing); the times in the
    /// recorded bodies (sales windows, `starts_at`) move with the replay's clock.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// No pacing: as fast as the concurrency allows, except that a request recorded after
    /// a time its bodies name (a sales opening) waits for that time in the replay (a gate;
    /// the report says how long).
    #[arg(long)]
    pub max_speed: bool,
    /// Requests in flight at most (1 keeps the recorded order exactly, and its "same
    /// outcome" figure should be every request; above 1 it measures order sensitivity).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Records per append (engine-only replay).
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    #[arg(long, default_value_t = u64::MAX)]
    pub requests: u64,
    #[arg(long, default_value_t = 3_600.0)]
    pub duration: f64,
    #[arg(long, default_value = "loadgen-out")]
    pub out: PathBuf,
    #[arg(long)]
    pub no_plots: bool,
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// `events.json` written by a run: checks those events against the API.
    #[arg(long)]
    pub events: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct CheckReplayArgs {
    /// `report.json` of a run made with `--verify --operator-key`.
    #[arg(long)]
    pub report: PathBuf,
    /// The `boxoffice` binary (default: this executable when it is `boxoffice`, else the
    /// `boxoffice` next to it, else `boxoffice` on the `PATH`).
    #[arg(long)]
    pub boxoffice: Option<PathBuf>,
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The stopped server's data directory.
    #[arg(long)]
    pub data_dir: PathBuf,
}

/// Runs a `loadgen` command to completion. Blocks; builds its own tokio runtime.
pub fn run(args: Args) -> Result<(), LoadgenError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.clamp(1, 64))
        .enable_all()
        .build()
        .map_err(|source| LoadgenError::Io {
            what: "starting the async runtime".into(),
            source,
        })?;
    runtime.block_on(run_async(args.command))
}

async fn run_async(command: Command) -> Result<(), LoadgenError> {
    match command {
        Command::Run(args) => {
            let options = run_options(&args)?;
            let client = Arc::new(args.connect.client()?);
            let report = run::run_scenario(client, options).await?;
            print!("{}", report.table());
            println!("report: {}", args.out.join("report.json").display());
            if report
                .verification
                .as_ref()
                .is_some_and(|verification| !verification.passed)
            {
                return Err(LoadgenError::VerificationFailed);
            }
            Ok(())
        }
        Command::Replay(args) => replay_command(args).await,
        Command::Verify(args) => {
            let client = args.connect.client()?;
            let text =
                std::fs::read_to_string(&args.events).map_err(|source| LoadgenError::Io {
                    what: format!("reading {}", args.events.display()),
                    source,
                })?;
            let layouts: Vec<setup::EventLayout> =
                serde_json::from_str(&text).map_err(|error| {
                    LoadgenError::Usage(format!("{}: {error}", args.events.display()))
                })?;
            let verification = verify::verify(
                &client,
                &layouts,
                None,
                verify::Exclusive {
                    exclusive: false,
                    ..Default::default()
                },
                args.connect.operator_key.is_some(),
            )
            .await
            .map_err(|error| LoadgenError::Verify(error.to_string()))?;
            print!("{}", verification.summary());
            if verification.passed {
                Ok(())
            } else {
                Err(LoadgenError::VerificationFailed)
            }
        }
        Command::CheckReplay(args) => {
            let text =
                std::fs::read_to_string(&args.report).map_err(|source| LoadgenError::Io {
                    what: format!("reading {}", args.report.display()),
                    source,
                })?;
            let report = Report::from_json(&text).map_err(|error| {
                LoadgenError::Usage(format!("{}: {error}", args.report.display()))
            })?;
            let Some(engine) = report
                .verification
                .and_then(|verification| verification.engine)
            else {
                return Err(LoadgenError::Usage(
                    "the report has no engine state hash: run with --verify --operator-key".into(),
                ));
            };
            let boxoffice = args.boxoffice.clone().unwrap_or_else(boxoffice_executable);
            // Every shard against a replay of its own requests log.
            let sharded = !engine.shards.is_empty();
            let mut equal = true;
            for status in engine.each_shard() {
                let replayed = verify::offline_replay_hash(
                    &boxoffice,
                    args.config.as_deref(),
                    &args.data_dir,
                    status.hash_offset(),
                    sharded.then_some(status.shard),
                )
                .map_err(|error| LoadgenError::Verify(error.to_string()))?;
                let shard = if sharded {
                    format!(" (shard {})", status.shard)
                } else {
                    String::new()
                };
                println!(
                    "server  state_hash {} at offset {:?}{shard}",
                    status.state_hash,
                    status.hash_offset()
                );
                println!("replay  state_hash {replayed}{shard}");
                equal &= replayed == status.state_hash;
            }
            if equal {
                println!("equal");
                Ok(())
            } else {
                Err(LoadgenError::VerificationFailed)
            }
        }
        Command::Scenario { path, scale } => {
            let scenario = Scenario::load(&path)?;
            let scaled = if scale == 1.0 {
                scenario
            } else {
                scenario.scaled(scale)
            };
            print!("{}", scaled.to_toml());
            eprintln!(
                "{} events, {} seats, {} users",
                scaled.event_instances().len(),
                scaled.seats_total(),
                scaled.users.count
            );
            Ok(())
        }
    }
}

/// The `boxoffice` binary a command runs by default: this executable when it is
/// `boxoffice` (`boxoffice loadgen ...`), else the `boxoffice` beside it (the standalone
/// `loadgen` that cargo builds into the same directory), else `boxoffice` on the `PATH`.
pub fn boxoffice_executable() -> PathBuf {
    let name = format!("boxoffice{}", std::env::consts::EXE_SUFFIX);
    let Ok(current) = std::env::current_exe() else {
        return PathBuf::from(name);
    };
    if current
        .file_name()
        .is_some_and(|file| file == name.as_str())
    {
        return current;
    }
    match current.parent().map(|directory| directory.join(&name)) {
        Some(sibling) if sibling.is_file() => sibling,
        _ => PathBuf::from(name),
    }
}

/// `replay --into-data-dir` of a recording that holds the server's requests log: imports
/// it exactly, replays it with `boxoffice replay` and compares the state hash.
fn exact_replay(
    log: &RequestLog,
    data_dir: &std::path::Path,
    args: &ReplayArgs,
) -> Result<(), LoadgenError> {
    let imported = tokio::task::block_in_place(|| replay::import_server_log(log, data_dir))?;
    println!(
        "imported the recorded server's requests log: {} records (offsets 0..={}) with their recorded times, in {:.3} s (no pacing: the times are the server's)",
        imported.records,
        imported.hash_offset,
        imported.elapsed.as_secs_f64()
    );
    let boxoffice = args.boxoffice.clone().unwrap_or_else(boxoffice_executable);
    let replayed = tokio::task::block_in_place(|| {
        verify::offline_replay_hash(
            &boxoffice,
            args.config.as_deref(),
            data_dir,
            Some(imported.hash_offset),
            None,
        )
    })
    .map_err(|error| LoadgenError::Verify(error.to_string()))?;
    println!(
        "recorded state_hash {} at offset {}",
        imported.state_hash, imported.hash_offset
    );
    println!("replayed state_hash {replayed}");
    if replayed == imported.state_hash {
        println!("state hash: same");
        Ok(())
    } else {
        println!("state hash: differs");
        Err(LoadgenError::VerificationFailed)
    }
}

/// Resolves a run's flags over its scenario.
pub fn run_options(args: &RunArgs) -> Result<RunOptions, LoadgenError> {
    if !(args.scale.is_finite() && args.scale > 0.0) {
        return Err(LoadgenError::Usage("--scale must be positive".into()));
    }
    let loaded = Scenario::load(&args.scenario)?;
    let mut scenario = if args.scale == 1.0 {
        loaded
    } else {
        loaded.scaled(args.scale)
    };
    if let Some(rate) = args.rate {
        scenario.load.rate_per_second = rate;
    }
    if let Some(duration) = args.duration {
        scenario.load.duration_seconds = duration;
    }
    if let Some(requests) = args.requests {
        scenario.load.requests_max = requests;
    }
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    if let Some(in_flight) = args.in_flight {
        scenario.load.in_flight_max = in_flight;
    }
    if args.no_think {
        scenario.think.closed_loop_ms = scenario::DelayRange {
            min_ms: 0,
            max_ms: 0,
        };
    }
    scenario.validate().map_err(LoadgenError::Scenario)?;
    if args.mode == Mode::Step
        && !(args.step_factor > 1.0 && args.step_seconds > 0.0 && args.p99_threshold_ms > 0.0)
    {
        return Err(LoadgenError::Usage(
            "step mode needs --step-factor > 1, --step-seconds > 0 and --p99-threshold-ms > 0"
                .into(),
        ));
    }
    Ok(RunOptions {
        scenario,
        scale: args.scale,
        mode: args.mode,
        concurrency: args.concurrency.clamp(1, 65_536),
        step_start_rate: args.step_start,
        step_factor: args.step_factor,
        step_seconds: args.step_seconds,
        step_rate_max: args.step_max,
        p99_threshold_ms: args.p99_threshold_ms,
        tenant: args.connect.tenant.clone(),
        record: args.record.clone(),
        out: Some(args.out.clone()),
        plots: !args.no_plots,
        verify: args.verify,
        operator: args.connect.operator_key.is_some(),
        progress: !args.quiet,
        cpu_of: args.cpu_of.clone(),
    })
}

async fn replay_command(args: ReplayArgs) -> Result<(), LoadgenError> {
    let log = RequestLog::read(&args.log)?;
    let pace = if args.max_speed {
        Pace::Max
    } else if args.speed.is_finite() && args.speed > 0.0 {
        Pace::Speed(args.speed)
    } else {
        return Err(LoadgenError::Usage("--speed must be positive".into()));
    };
    let scenario = log.header.as_ref().map_or_else(
        || "boxoffice-log".to_string(),
        |header| header.scenario.clone(),
    );
    let duration_max =
        Duration::from_secs_f64(args.duration.clamp(0.001, scenario::DURATION_MAX_SECONDS));
    if let Some(data_dir) = args.into_data_dir.as_ref().filter(|_| {
        log.end
            .as_ref()
            .is_some_and(|end| end.server_log_records.is_some())
    }) {
        return exact_replay(&log, data_dir, &args);
    }
    let mut comparison = None;
    let (mode, target, recorder, sent, skipped, elapsed, lag) = match &args.into_data_dir {
        Some(data_dir) => {
            let batch = args.batch.max(1);
            let replayed = tokio::task::block_in_place(|| {
                replay::replay_into_log(&log, data_dir, pace, batch, args.requests)
            })?;
            println!(
                "appended {} records (offsets {:?}..={:?}), skipped {} without an engine form, in {:.3} s = {:.0} records/s",
                replayed.appended,
                replayed.first_offset,
                replayed.last_offset,
                replayed.skipped,
                replayed.elapsed.as_secs_f64(),
                replayed.appended as f64 / replayed.elapsed.as_secs_f64().max(1e-9)
            );
            if replayed.gates_waited > 0 {
                println!(
                    "waited {:.3} s at {} gate(s) (recorded times the records after them must follow)",
                    replayed.gate_wait.as_secs_f64(),
                    replayed.gates_waited
                );
            }
            if let Some(engine) = log.end.as_ref().and_then(|end| end.engine.as_ref()) {
                // Not a claim of equality: the log stamps these records with the replay's
                // times, and the server's own Configure and Tick records are not in an
                // HTTP recording, so `boxoffice replay` of this directory hashes another
                // state. A recording with the server's log replays exactly.
                println!(
                    "the recorded server ended at state_hash {} (offset {:?}); this log is rebuilt from its HTTP requests at today's times, so its hash differs (record with --operator-key to carry the server's log for an exact replay)",
                    engine.state_hash,
                    engine.hash_offset(),
                );
            }
            (
                "replay_log",
                data_dir.display().to_string(),
                replayed.recorder,
                replayed.appended,
                replayed.skipped,
                replayed.elapsed,
                Duration::ZERO,
            )
        }
        None => {
            let client = Arc::new(args.connect.client()?);
            let replayed = replay::replay_http(
                client.clone(),
                &log,
                pace,
                args.concurrency.max(1),
                args.requests,
                duration_max,
            )
            .await;
            comparison = Some(replayed.comparison);
            (
                "replay_http",
                client.base().to_string(),
                replayed.recorder,
                replayed.sent,
                replayed.skipped,
                replayed.elapsed,
                replayed.dispatch_lag_max,
            )
        }
    };
    let measurements = recorder.summarize();
    let report = Report {
        loadgen_version: env!("CARGO_PKG_VERSION").into(),
        scenario,
        scale: 1.0,
        mode: mode.into(),
        target,
        started_at: setup::rfc3339(setup::now_ms()),
        duration_seconds: elapsed.as_secs_f64(),
        achieved_rate_per_second: measurements.responses as f64 / elapsed.as_secs_f64().max(1e-9),
        concurrency: Some(args.concurrency),
        slots: sent + skipped,
        requests_sent: sent,
        skipped_slots: skipped,
        dispatch_lag_max_us: lag.as_micros() as u64,
        measurements,
        replay: comparison,
        ..Report::default()
    };
    run::write_outputs(&report, &args.out, !args.no_plots)?;
    print!("{}", report.table());
    if let Some(comparison) = report.replay.as_ref().filter(|c| c.compared > 0) {
        print!("{}", comparison.summary());
    }
    println!("report: {}", args.out.join("report.json").display());
    Ok(())
}
