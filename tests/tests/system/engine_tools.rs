//! `boxoffice engine`, `replay`, `snapshot` and `log export` as an operator runs them, on
//! an embedded log in a temporary data directory.

use engine::{
    CategorySpec, Command, EventId, EventSpec, Request, RowSpec, SectionSpec, Selection,
    WaitlistPolicy,
};
use requestlog::{EmbeddedLog, EmbeddedOptions, LogWriter};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command as Process, Output, Stdio};

use boxoffice_system_tests::default_config as config;
const RECORDS: u64 = 40;

fn boxoffice(data_dir: &Path, args: &[&str]) -> Output {
    let output = Process::new(boxoffice_system_tests::boxoffice_bin())
        .arg("--config")
        .arg(config())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "boxoffice {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// `key value` lines → the value of `key`.
fn value<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

/// A log line without terminal colour codes.
fn plain(line: &str) -> String {
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(char) = chars.next() {
        if char == '\u{1b}' {
            chars.by_ref().find(|char| char.is_ascii_alphabetic());
        } else {
            plain.push(char);
        }
    }
    plain
}

fn fill(data_dir: &Path) {
    let log = EmbeddedLog::open(data_dir.join("requests"), EmbeddedOptions::default()).unwrap();
    let spec = EventSpec {
        name: "Show".into(),
        description: String::new(),
        city: "Lyon".into(),
        country: "FR".into(),
        venue: "Hall".into(),
        starts_at_ms: u64::MAX / 2,
        ends_at_ms: None,
        sales_open_at_ms: None,
        sales_close_at_ms: None,
        hold_ttl_ms: 3_600_000,
        seats_per_order_max: 10,
        seats_per_user_max: None,
        waitlist_policy: WaitlistPolicy::Strict,
        categories: vec![CategorySpec {
            name: "Standard".into(),
            price_cents: 5_000,
        }],
        sections: vec![SectionSpec {
            name: "A".into(),
            rows: vec![RowSpec {
                label: "1".into(),
                seats: 200,
                category: "Standard".into(),
            }],
        }],
        general_admission: vec![],
    };
    let mut payloads = vec![engine::wire::encode_request(&Request::with_key(
        Command::CreateEvent {
            tenant: "demo".into(),
            spec: Box::new(spec),
        },
        "create",
    ))];
    for index in 1..RECORDS - 1 {
        let hold = Command::PlaceHold {
            user: format!("u{index}").into(),
            event: EventId(0),
            selection: Selection::Best {
                quantity: 2,
                category: None,
                together: true,
            },
            wait: false,
        };
        payloads.push(engine::wire::encode_request(&Request::with_key(
            hold,
            format!("k{index}"),
        )));
    }
    payloads.push(vec![9, 9]);
    log.writer().append(payloads).unwrap();
}

#[test]
fn engine_then_the_offline_tools_agree_on_the_state() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    fill(dir.path());

    // The engine applies the log, publishes, snapshots; SIGINT stops it cleanly.
    let mut engine = Process::new(boxoffice_system_tests::boxoffice_bin())
        .arg("--config")
        .arg(config())
        .arg("--dev")
        .args(["engine", "--data-dir"])
        .arg(dir.path())
        .env("BOXOFFICE_SNAPSHOT_EVERY_RECORDS", "1")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(engine.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in logs.by_ref() {
        let line = plain(&line.unwrap());
        seen.push_str(&line);
        seen.push('\n');
        // The engine's `Configure` record (appended once it has caught up, as primary) is
        // the log's last: offset RECORDS.
        if line.contains("snapshot written") && line.contains(&format!("offset={RECORDS}")) {
            break;
        }
    }
    assert!(
        seen.contains("snapshot written"),
        "the engine wrote no snapshot of the whole log:\n{seen}"
    );
    let interrupted = Process::new("kill")
        .args(["-INT", &engine.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let stopped: Vec<String> = logs.map(|line| plain(&line.unwrap())).collect();
    assert!(engine.wait().unwrap().success(), "{stopped:?}");
    let final_line = stopped
        .iter()
        .find(|line| line.contains("engine runtime stopped"))
        .expect("a final status line");

    // A full replay, and one from the newest snapshot, reach the engine's state.
    let full = stdout(&boxoffice(dir.path(), &["replay"]));
    assert_eq!(value(&full, "records"), (RECORDS + 1).to_string());
    assert_eq!(value(&full, "undecodable"), "1");
    assert_eq!(value(&full, "applied_offset"), RECORDS.to_string());
    assert!(
        final_line.contains(value(&full, "state_hash")),
        "{final_line} vs {full}"
    );
    let from_snapshot = stdout(&boxoffice(dir.path(), &["replay", "--from-snapshot"]));
    assert_eq!(
        value(&from_snapshot, "state_hash"),
        value(&full, "state_hash")
    );
    assert_eq!(value(&from_snapshot, "records"), "0");
    let partial = stdout(&boxoffice(dir.path(), &["replay", "--to", "9"]));
    assert_eq!(value(&partial, "applied_offset"), "9");

    // Snapshots list, inspect and verify.
    let listed = stdout(&boxoffice(dir.path(), &["snapshot", "list"]));
    assert!(
        listed
            .lines()
            .next()
            .unwrap()
            .contains(&format!("offset {RECORDS:>12}")),
        "{listed}"
    );
    let inspected = stdout(&boxoffice(dir.path(), &["snapshot", "inspect"]));
    assert_eq!(value(&inspected, "state_hash"), value(&full, "state_hash"));
    assert_eq!(value(&inspected, "events"), "1");
    let verified = stdout(&boxoffice(dir.path(), &["snapshot", "verify"]));
    assert!(
        verified.lines().all(|line| line.contains(": ok")),
        "{verified}"
    );

    // The logs as JSON lines.
    let requests = stdout(&boxoffice(
        dir.path(),
        &["log", "export", "--from", "1", "--to", "3"],
    ));
    let lines: Vec<serde_json::Value> = requests
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        lines
            .iter()
            .map(|line| line["offset"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(lines[0]["request"]["command"]["PlaceHold"]["user"], "u1");
    let outcomes = stdout(&boxoffice(
        dir.path(),
        &["log", "export", "--log", "outcomes"],
    ));
    let outcomes: Vec<serde_json::Value> = outcomes
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        outcomes.len() as u64,
        RECORDS + 1,
        "one outcome per request"
    );
    assert!(
        outcomes[1]["outcome"]["result"]["Ok"]["HoldPlaced"].is_object(),
        "{}",
        outcomes[1]
    );
    let undecodable = &outcomes[RECORDS as usize - 1]["outcome"]["result"]["Err"];
    assert!(undecodable["Undecodable"].is_object(), "{undecodable}");
    assert_eq!(
        outcomes.last().unwrap()["outcome"]["result"]["Ok"],
        "Configured"
    );
}

/// `boxoffice promote` refuses what cannot work, says why, and writes nothing: an empty
/// node name, and the embedded log (one engine, no standby to hand over to).
#[test]
fn promote_refuses_bad_input_and_the_embedded_log_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let end_before = {
        let log =
            EmbeddedLog::open(dir.path().join("requests"), EmbeddedOptions::default()).unwrap();
        log.writer().end_offset().unwrap()
    };
    for (node, expected) in [
        ("b", "the embedded log has a single engine"),
        ("", "--node must name a replica"),
    ] {
        let output = Process::new(boxoffice_system_tests::boxoffice_bin())
            .arg("--config")
            .arg(config())
            .args([
                "promote",
                "--node",
                node,
                "--wait-seconds",
                "0",
                "--data-dir",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(1),
            "promote --node {node:?} must fail"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(expected),
            "promote --node {node:?}: {stderr}"
        );
    }
    let log = EmbeddedLog::open(dir.path().join("requests"), EmbeddedOptions::default()).unwrap();
    assert_eq!(
        log.writer().end_offset().unwrap(),
        end_before,
        "nothing was appended"
    );
}
