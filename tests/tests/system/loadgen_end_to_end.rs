//! End to end against a real `boxoffice serve` on a temporary data directory and a free
//! loopback port (rate limits off):
//! - a short open-loop run passes verification and its counts match the server's `/metrics`;
//! - a recorded run replayed on a fresh server gives the same seat maps and answers, and on
//!   both servers the live engine's state hash equals an offline `boxoffice replay` of its log.
//!
//! The binary is the one `boxoffice_system_tests::boxoffice_bin` builds. Server readiness is
//! its `listening on http://ADDR` line.

use boxoffice_system_tests::{boxoffice_bin, workspace_dir as workspace_root};
use loadgen::client::{Client, Credentials};
use loadgen::record::RequestLog;
use loadgen::replay::{parse_http_metrics, replay_http, Pace};
use loadgen::run::{run_scenario, Mode, RunOptions};
use loadgen::scenario::Scenario;
use loadgen::setup::EventLayout;
use loadgen::verify::{offline_replay_hash, verify, Exclusive};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Upper bound on a server's start-up (a bound, not a wait: readiness is its printed line).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A `boxoffice serve` process (also used by `replay_timeline`).
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    data_dir: PathBuf,
}

impl Server {
    pub(crate) fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, Path::new("config/default.toml"))
    }

    /// A server on the configuration file `config` (over the built-in defaults).
    pub(crate) fn start_with(data_dir: &Path, config: &Path) -> Server {
        Server::start_with_env(data_dir, config, &[])
    }

    /// [`Server::start_with`] with more environment (`BOXOFFICE_…` overrides).
    pub(crate) fn start_with_env(data_dir: &Path, config: &Path, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(boxoffice_bin())
            .current_dir(workspace_root())
            .arg("--config")
            .arg(config)
            .args(["--dev", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("BOXOFFICE_RATE_LIMIT_ENABLED", "false")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("boxoffice serve starts");
        let stdout = child.stdout.take().expect("piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(address) = line.strip_prefix("listening on ") {
                    let _ = sender.send(address.trim().to_string());
                }
            }
        });
        let base = match receiver.recv_timeout(START_TIMEOUT) {
            Ok(base) => base,
            Err(error) => {
                let _ = child.kill();
                panic!(
                    "boxoffice serve did not print `listening on` ({error}): see its stderr above"
                );
            }
        };
        Server {
            child,
            base,
            data_dir: data_dir.to_path_buf(),
        }
    }

    fn client(&self) -> Arc<Client> {
        let credentials = Credentials::default();
        Arc::new(
            Client::new(&self.base, credentials, Duration::from_secs(30))
                .expect("a loopback address"),
        )
    }

    /// SIGTERM, then wait for the graceful shutdown (the data directory is free afterwards).
    pub(crate) fn stop(mut self) -> PathBuf {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = self.child.wait().expect("the server exits");
        assert!(exit.success(), "boxoffice serve exited with {exit}");
        std::mem::take(&mut self.data_dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn scenario(name: &str, scale: f64) -> Scenario {
    let path = workspace_root()
        .join("config/scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path)
        .expect("a shipped scenario")
        .scaled(scale)
}

fn options(scenario: Scenario, mode: Mode, record: Option<PathBuf>, out: &Path) -> RunOptions {
    RunOptions {
        scenario,
        scale: 1.0,
        mode,
        concurrency: 1,
        step_start_rate: None,
        step_factor: 2.0,
        step_seconds: 1.0,
        step_rate_max: 1_000.0,
        p99_threshold_ms: 50.0,
        tenant: "demo".into(),
        record,
        out: Some(out.to_path_buf()),
        plots: true,
        verify: true,
        operator: true,
        progress: false,
        cpu_of: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_run_verifies_and_its_counts_match_the_server_metrics() {
    let directory = tempfile::tempdir().unwrap();
    let server = Server::start(&directory.path().join("data"));
    let client = server.client();
    // Flash sale at 1/500: 10 tickets, 100 users, one attempt each; 100 requests/s.
    let mut flash = scenario("flash-sale", 0.002);
    flash.load.rate_per_second = 100.0;
    flash.load.duration_seconds = 10.0;
    flash.think.hold_ms = loadgen::scenario::DelayRange {
        min_ms: 0,
        max_ms: 200,
    };
    let out = directory.path().join("out");
    let mut run_options = options(flash, Mode::Open, None, &out);
    let server_pid = server.child.id();
    run_options.cpu_of = vec![loadgen::cpu::Watched {
        name: "serve".into(),
        pid: Some(server_pid),
    }];
    let report = run_scenario(client.clone(), run_options)
        .await
        .expect("the run completes");
    // The server's CPU and the load generator's own, over the measured phase: serving
    // about 200 requests costs the server more than one 10 ms clock tick.
    let cpu_names: Vec<(&str, Option<u32>)> = report
        .cpu
        .iter()
        .map(|process| (process.name.as_str(), process.pid))
        .collect();
    assert_eq!(cpu_names, [("serve", Some(server_pid)), ("loadgen", None)]);
    assert!(report.cpu[0].cpu_ms > 0, "{:?}", report.cpu);
    assert!(report
        .table()
        .contains(&format!("cpu serve (pid {server_pid}):")));
    // Split by thread name: every tick of the server's is under some name, and its
    // threads are the server's own (the HTTP workers serve every request).
    let threads = &report.cpu[0].threads;
    let named: u64 = threads.iter().map(|thread| thread.cpu_ms).sum();
    assert!(named >= report.cpu[0].cpu_ms, "{threads:?}");
    assert!(
        threads
            .iter()
            .any(|thread| thread.name == "http" && thread.cpu_ms > 0),
        "{threads:?}"
    );
    let verification = report.verification.clone().expect("verified");
    assert!(verification.passed, "{}", verification.summary());
    let granted = report.granted.clone().unwrap();
    assert_eq!(
        granted.bookings_granted,
        10,
        "every ticket sold once: {}",
        report.table()
    );
    assert_eq!(
        report.measurements.kinds["hold_best"].count, 100,
        "each user tried once"
    );
    assert_eq!(
        report.measurements.kinds["hold_best"]
            .errors_by_code
            .get("sold_out"),
        Some(&90)
    );
    assert!(
        out.join("report.json").exists()
            && out.join("latency-over-time.svg").exists()
            && out.join("percentile-curve.svg").exists()
    );

    let metrics = parse_http_metrics(&client.get_text("/metrics").await.expect("metrics"));
    for route in [
        "POST /v1/events/{event_id}/holds",
        "POST /v1/holds/{hold_id}/confirm",
    ] {
        assert_eq!(
            metrics.get(route),
            report.measurements.by_route.get(route),
            "{route}: server vs loadgen"
        );
    }
    server.stop();
}

/// `holds.pay`: every hold is paid through the payment flow (the development gateway,
/// whose payments succeed at once) and confirmed with its payment, which the server checks
/// against the gateway: a confirm with a reference of the run's own would be refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_pays_through_the_flow_books_every_ticket() {
    let directory = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        &directory.path().join("data"),
        Path::new("config/default.toml"),
        &[("BOXOFFICE_PAYMENTS_GATEWAY", "test")],
    );
    let client = server.client();
    let mut flash = scenario("flash-sale", 0.002);
    flash.load.rate_per_second = 100.0;
    flash.load.duration_seconds = 10.0;
    flash.holds.pay = true;
    let out = directory.path().join("out");
    let report = run_scenario(client.clone(), options(flash, Mode::Open, None, &out))
        .await
        .expect("the run completes");
    let verification = report.verification.clone().expect("verified");
    assert!(verification.passed, "{}", verification.summary());
    assert_eq!(
        report.granted.clone().unwrap().bookings_granted,
        10,
        "every ticket sold once, paid: {}",
        report.table()
    );
    let metrics = parse_http_metrics(&client.get_text("/metrics").await.expect("metrics"));
    for route in [
        "POST /v1/holds/{hold_id}/payment",
        "POST /v1/holds/{hold_id}/confirm",
    ] {
        let answers = report.measurements.by_route.get(route);
        assert_eq!(
            answers.and_then(|statuses| statuses.get("201")),
            Some(&10),
            "{route}: {answers:?}"
        );
        assert_eq!(metrics.get(route), answers, "{route}: server vs loadgen");
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_run_replays_to_the_same_state_on_a_fresh_server() {
    let directory = tempfile::tempdir().unwrap();
    let log_path = directory.path().join("requests.jsonl");
    // Theatre at 1/100: 2 shows; one closed-loop user, so the log order is the send order.
    let mut theatre = scenario("theatre", 0.01);
    theatre.load.requests_max = 150;
    theatre.load.duration_seconds = 20.0;
    theatre.think.hold_ms = loadgen::scenario::DelayRange {
        min_ms: 0,
        max_ms: 50,
    };
    theatre.think.booking_ms = loadgen::scenario::DelayRange {
        min_ms: 0,
        max_ms: 50,
    };
    theatre.think.waitlist_ms = loadgen::scenario::DelayRange {
        min_ms: 0,
        max_ms: 50,
    };

    let first = Server::start(&directory.path().join("first"));
    let report = run_scenario(
        first.client(),
        options(
            theatre,
            Mode::Closed,
            Some(log_path.clone()),
            &directory.path().join("out"),
        ),
    )
    .await
    .expect("the run completes");
    let recorded = report.verification.clone().expect("verified");
    assert!(recorded.passed, "{}", recorded.summary());
    let recorded_engine = recorded
        .engine
        .clone()
        .expect("the operator key gives the engine status");
    let first_dir = first.stop();
    let replayed_hash = offline_replay_hash(
        boxoffice_bin(),
        Some(&workspace_root().join("config/default.toml")),
        &first_dir,
        recorded_engine.hash_offset(),
        None,
    )
    .expect("boxoffice replay");
    assert_eq!(
        replayed_hash, recorded_engine.state_hash,
        "live engine vs offline replay of the same log"
    );

    let second = Server::start(&directory.path().join("second"));
    let client = second.client();
    let log = RequestLog::read(&log_path).expect("the recorded log");
    assert_eq!(
        log.entries.len() as u64,
        report.requests_sent + report.events.len() as u64
    );
    let replay = replay_http(
        client.clone(),
        &log,
        Pace::Max,
        1,
        u64::MAX,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        replay.comparison.same,
        replay.comparison.compared,
        "every replayed answer is the recorded one: {}",
        replay.comparison.summary()
    );
    assert_eq!(replay.comparison.compared, log.entries.len() as u64);
    let layouts: Vec<EventLayout> = serde_json::from_str(
        &std::fs::read_to_string(directory.path().join("out/events.json")).unwrap(),
    )
    .unwrap();
    let again = verify(
        &client,
        &layouts,
        None,
        Exclusive {
            exclusive: false,
            ..Default::default()
        },
        true,
    )
    .await
    .expect("verification runs");
    assert!(again.passed, "{}", again.summary());
    assert_eq!(
        again.digest, recorded.digest,
        "same seat maps and availability on the fresh server"
    );
    let second_engine = again.engine.clone().unwrap();
    let second_dir = second.stop();
    let second_hash = offline_replay_hash(
        boxoffice_bin(),
        Some(&workspace_root().join("config/default.toml")),
        &second_dir,
        second_engine.hash_offset(),
        None,
    )
    .expect("boxoffice replay");
    assert_eq!(
        second_hash, second_engine.state_hash,
        "the replayed server's engine vs an offline replay of its log"
    );
}

/// `serve` with two shards: a run verifies on every event of both, the engine status lists
/// both shards, and each shard's live state hash equals an offline `boxoffice replay
/// --shard K` of its own requests log (what `loadgen check-replay` does per shard).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_server_verifies_and_every_shard_replays_to_its_hash() {
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("shards.toml");
    std::fs::write(&config, "shards = 2\n").unwrap();
    let mut theatre = scenario("theatre", 0.05);
    theatre.load.requests_max = 150;
    theatre.load.duration_seconds = 20.0;
    let server = Server::start_with(&directory.path().join("data"), &config);
    let report = run_scenario(
        server.client(),
        options(theatre, Mode::Closed, None, &directory.path().join("out")),
    )
    .await
    .expect("the run completes");
    let verification = report.verification.clone().expect("verified");
    assert!(verification.passed, "{}", verification.summary());
    let placed: std::collections::BTreeSet<u64> = report
        .events
        .iter()
        .map(|event| event.trim_start_matches("ev_").parse::<u64>().unwrap() % 2)
        .collect();
    assert_eq!(
        placed.len(),
        2,
        "the run's events are on both shards: {:?}",
        report.events
    );
    let engine = verification.engine.clone().expect("the engine status");
    assert_eq!(
        engine
            .shards
            .iter()
            .map(|shard| shard.shard)
            .collect::<Vec<_>>(),
        [0, 1]
    );
    let data_dir = server.stop();
    for shard in engine.each_shard() {
        let replayed = offline_replay_hash(
            boxoffice_bin(),
            Some(&config),
            &data_dir,
            shard.hash_offset(),
            Some(shard.shard),
        )
        .expect("boxoffice replay --shard");
        assert_eq!(replayed, shard.state_hash, "shard {}", shard.shard);
    }
}
