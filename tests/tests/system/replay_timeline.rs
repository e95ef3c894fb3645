//! A recorded crowd replays to the same outcomes, tomorrow as today: the real `boxoffice`
//! binary records a short on-sale whose sales window opens after its event is created,
//! the recording is moved to the day before (as if made yesterday), and `boxoffice
//! loadgen replay --concurrency 1` on fresh servers, at the recorded pace and at
//! `--max-speed`, answers every request as recorded, with the same bookings.
//! `check-replay` finds its `boxoffice` without the `PATH`. A recording made with the
//! operator key carries the server's requests log, and `loadgen replay --into-data-dir`
//! of it ends, through `boxoffice replay`, in the recorded server's state hash.

use crate::loadgen_end_to_end::Server;
use boxoffice_system_tests::{boxoffice_bin, workspace_dir};
use loadgen::record::RequestLog;
use loadgen::report::Report;
use loadgen::setup::{parse_rfc3339_ms, rfc3339};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const DAY_MS: u64 = 86_400_000;

/// `boxoffice loadgen ARGS` against `server`, from the repository (scenario paths are
/// relative to it); panics with its output when it fails.
fn loadgen(server: &Server, args: &[&str]) -> Output {
    let output = Command::new(boxoffice_bin())
        .current_dir(workspace_dir())
        .arg("loadgen")
        .args(args)
        .args(["--target", &server.base])
        .output()
        .expect("boxoffice loadgen runs");
    assert!(
        output.status.success(),
        "boxoffice loadgen {args:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn report(path: &Path) -> Report {
    Report::from_json(&std::fs::read_to_string(path).expect("report.json")).expect("a report")
}

/// Moves a recording `ms` earlier: its start and every time its records mark as one.
fn move_recording_earlier(path: &Path, ms: u64) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut moved = String::new();
    let mut times_moved = 0;
    for line in text.lines() {
        let mut value: Value = serde_json::from_str(line).unwrap();
        if let Some(started) = value.get("started_at_ms").and_then(Value::as_u64) {
            value["started_at_ms"] = (started - ms).into();
        }
        let pointers: Vec<String> = value
            .get("times")
            .and_then(Value::as_array)
            .map(|times| {
                times
                    .iter()
                    .map(|time| time.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        for pointer in pointers {
            let slot = value
                .pointer_mut(&format!("/call/body{pointer}"))
                .expect("a marked time is in the body");
            let at = parse_rfc3339_ms(slot.as_str().unwrap()).unwrap();
            *slot = rfc3339(at - ms).into();
            times_moved += 1;
        }
        moved.push_str(&value.to_string());
        moved.push('\n');
    }
    assert!(times_moved >= 2, "the event's start and its sales opening");
    std::fs::write(path, moved).unwrap();
}

#[test]
fn a_recording_made_yesterday_replays_in_order_to_the_same_outcomes() {
    let directory = tempfile::tempdir().unwrap();
    let recording = directory.path().join("requests.jsonl");
    let recording_text = recording.to_str().unwrap();
    let out = directory.path().join("recorded");

    // The stadium on-sale at 1/100: the window opens 3 s after the event is created and
    // the crowd comes at the opening, 20 requests/s for 6 s.
    let recorded = Server::start(&directory.path().join("recorded-data"));
    loadgen(
        &recorded,
        &[
            "run",
            "config/scenarios/stadium-onsale.toml",
            "--scale",
            "0.01",
            "--duration",
            "6",
            "--verify",
            "--operator-key",
            "demo-operator-key",
            "--record",
            recording_text,
            "--out",
            out.to_str().unwrap(),
            "--quiet",
            "--no-plots",
        ],
    );
    recorded.stop();
    let run = report(&out.join("report.json"));
    let bookings = run.granted.as_ref().expect("granted").bookings_granted;
    assert!(bookings > 0, "{}", run.table());
    let log = RequestLog::read(&recording).expect("the recording");
    assert!(
        log.end
            .as_ref()
            .and_then(|end| end.engine.as_ref())
            .is_some(),
        "the recording ends with the server's state hash"
    );
    let requests = log.entries.len() as u64;
    assert_eq!(
        requests,
        run.requests_sent + 1,
        "the setup call is recorded"
    );

    move_recording_earlier(&recording, DAY_MS);

    for pace in [&["--speed", "1"][..], &["--max-speed"][..]] {
        let replay_out = directory.path().join(format!("replay{}", pace.join("")));
        let fresh = Server::start(&directory.path().join(format!("data{}", pace.join(""))));
        let mut args = vec![
            "replay",
            recording_text,
            "--concurrency",
            "1",
            "--out",
            replay_out.to_str().unwrap(),
            "--no-plots",
        ];
        args.extend_from_slice(pace);
        let output = loadgen(&fresh, &args);
        fresh.stop();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains(&format!("same outcome: {requests} of {requests}\n")),
            "{pace:?}: {stdout}"
        );
        let comparison = report(&replay_out.join("report.json"))
            .replay
            .expect("a replay compares");
        assert_eq!(
            (comparison.same, comparison.compared),
            (requests, requests),
            "{pace:?}: {}",
            comparison.summary()
        );
        assert!(comparison.divergences.is_empty());
        assert_eq!(
            (comparison.bookings_recorded, comparison.bookings_replayed),
            (bookings, bookings),
            "{pace:?}"
        );
        if pace == ["--max-speed"] {
            // The crowd was recorded after the opening: at full speed it waits for it.
            assert_eq!(comparison.gates_waited, 1, "{}", comparison.summary());
            assert!(stdout.contains("at 1 gate(s)"), "{stdout}");
        }
    }
}

#[test]
fn check_replay_runs_its_own_boxoffice_without_the_path() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let out = directory.path().join("out");
    let server = Server::start(&data_dir);
    run_flash_sale(&server, &out, &["--verify"]);
    server.stop();
    let empty = directory.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let output = Command::new(boxoffice_bin())
        .current_dir(workspace_dir())
        .env("PATH", &empty)
        .args(["loadgen", "check-replay"])
        .arg("--report")
        .arg(out.join("report.json"))
        .arg("--config")
        .arg(workspace_dir().join("config/default.toml"))
        .arg("--data-dir")
        .arg(&data_dir)
        .output()
        .expect("boxoffice runs by its path");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("equal"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `boxoffice ARGS` from the repository; its output, whatever its status.
fn boxoffice(args: &[&str]) -> Output {
    Command::new(boxoffice_bin())
        .current_dir(workspace_dir())
        .args(args)
        .output()
        .expect("boxoffice runs")
}

fn replay_hash(data_dir: &str) -> String {
    let output = boxoffice(&[
        "--config",
        "config/default.toml",
        "replay",
        "--data-dir",
        data_dir,
    ]);
    assert!(output.status.success(), "{output:?}");
    loadgen::verify::parse_replay_hash(&String::from_utf8_lossy(&output.stdout))
        .expect("boxoffice replay prints a state hash")
}

#[test]
fn an_engine_level_replay_of_a_recording_ends_in_the_recorded_state_hash() {
    let directory = tempfile::tempdir().unwrap();
    let recording = directory.path().join("requests.jsonl");
    let recording_text = recording.to_str().unwrap();
    let server = Server::start(&directory.path().join("recorded-data"));
    // With the operator key (no --verify needed): the recording ends with the server's
    // state hash and carries its requests log up to the hash's offset.
    run_flash_sale(
        &server,
        &directory.path().join("out"),
        &["--record", recording_text],
    );
    server.stop();
    let log = RequestLog::read(&recording).expect("the recording");
    let (server_log, engine) = log.exact_server_log().expect("a whole server log");
    assert!(
        server_log
            .iter()
            .any(|record| matches!(record.request.command, engine::Command::Configure { .. })),
        "the server's own Configure record, which no HTTP client sent, is in it"
    );
    assert!(
        server_log.len() > log.entries.len() / 2,
        "{}",
        server_log.len()
    );

    let data_dir = directory.path().join("replayed-data");
    let data_dir_text = data_dir.to_str().unwrap();
    let replay = |data_dir: &str| {
        boxoffice(&[
            "loadgen",
            "replay",
            recording_text,
            "--into-data-dir",
            data_dir,
            "--config",
            "config/default.toml",
            "--out",
            directory.path().join("replay-out").to_str().unwrap(),
            "--no-plots",
        ])
    };
    let output = replay(data_dir_text);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("state hash: same\n"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("recorded state_hash {}", engine.state_hash)),
        "{stdout}"
    );
    // `boxoffice replay` of the directory, by hand, prints the recorded hash.
    assert_eq!(replay_hash(data_dir_text), engine.state_hash);

    // Again into the same directory: refused, naming the cause, and the log is untouched.
    let output = replay(data_dir_text);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!(
            "already holds records (offsets 0..{})",
            server_log.len()
        )),
        "{stderr}"
    );
    assert_eq!(replay_hash(data_dir_text), engine.state_hash);
}

/// A short flash-sale run against `server` with the operator key, its report in `out`.
fn run_flash_sale(server: &Server, out: &std::path::Path, extra: &[&str]) {
    let mut args = vec![
        "run",
        "config/scenarios/flash-sale.toml",
        "--scale",
        "0.002",
        "--duration",
        "2",
        "--operator-key",
        "demo-operator-key",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--no-plots",
    ];
    args.extend_from_slice(extra);
    loadgen(server, &args);
}
