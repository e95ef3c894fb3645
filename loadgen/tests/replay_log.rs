//! Engine-only replay: a request log (ours, with reads mixed in) appended straight into an
//! embedded requests log decodes back to the same engine requests, in order.

use loadgen::client::{Auth, Call};
use loadgen::convert::http_to_engine;
use loadgen::record::{Entry, Header, HttpRecord, RequestLog, FORMAT_VERSION};
use loadgen::replay::{import_server_log, replay_into_log, Pace};
use loadgen::scenario::Kind;
use requestlog::{EmbeddedLog, EmbeddedOptions, LogReader};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

fn record(at_us: u64, kind: Kind, call: Call) -> Entry {
    Entry::Http(HttpRecord {
        at_us,
        kind,
        call,
        times: Vec::new(),
        status: Some(201),
        code: None,
        shape: None,
        created: BTreeMap::new(),
        line: 0,
    })
}

#[test]
fn a_recorded_run_is_appended_as_engine_requests() {
    let event = json!({
        "name": "Show", "city": "Lyon", "country": "FR", "venue": "Opéra", "starts_at": "2030-01-01T20:00:00Z",
        "categories": [{"name": "Stalls", "price_cents": 5000}],
        "seating": {"sections": [{"name": "A", "rows": [{"label": "1", "seats": 10, "category": "Stalls"}]}]},
    });
    let mut entries = vec![record(
        0,
        Kind::CreateEvent,
        Call::post("/v1/admin/events", Auth::Admin("demo".into()), event),
    )];
    for index in 0..2_500u64 {
        let user = Auth::User(format!("u{index}"));
        entries.push(record(
            index * 10,
            Kind::HoldBest,
            Call::post(
                "/v1/events/ev_0/holds",
                user.clone(),
                json!({"quantity": 1, "together": false}),
            ),
        ));
        entries.push(record(
            index * 10 + 5,
            Kind::ReadEvent,
            Call::get("/v1/events/ev_0", Auth::None),
        ));
    }
    let log = RequestLog {
        entries,
        ..RequestLog::default()
    };
    let directory = tempfile::tempdir().unwrap();
    let replayed =
        replay_into_log(&log, directory.path(), Pace::Max, 1_000, u64::MAX).expect("appended");
    assert_eq!(
        (replayed.appended, replayed.skipped),
        (2_501, 2_500),
        "reads have no engine form"
    );
    assert_eq!(
        (replayed.first_offset, replayed.last_offset),
        (Some(0), Some(2_500))
    );
    assert_eq!(replayed.recorder.summarize().responses, 2_501);

    // Read it back the way the engine's reader does.
    let embedded = EmbeddedLog::open(
        directory.path().join("requests"),
        EmbeddedOptions::default(),
    )
    .expect("the log reopens");
    let mut reader = embedded.reader();
    let mut decoded = Vec::new();
    while decoded.len() < 2_501 {
        let records = reader
            .poll(4_096, Duration::from_secs(5))
            .expect("readable");
        assert!(!records.is_empty(), "every appended record is readable");
        decoded.extend(
            records
                .into_iter()
                .map(|record| engine::wire::decode_request(&record.payload).expect("decodable")),
        );
    }
    let expected: Vec<engine::Request> = log
        .entries
        .iter()
        .filter_map(|entry| match entry {
            Entry::Http(record) => http_to_engine(&record.call),
            Entry::Engine(record) => Some(record.request.clone()),
        })
        .collect();
    assert_eq!(decoded, expected);
}

/// A recording made yesterday: its event's sales window opened 1 s after the recording
/// started, and a hold came 1.5 s in. Appended into a log today at full speed, the window
/// opens 1 s after the replay started and the hold waits for it (a gate).
#[test]
fn an_engine_only_replay_moves_marked_times_to_its_own_clock_and_waits_at_gates() {
    const DAY_MS: u64 = 86_400_000;
    let recorded_start_ms = loadgen::setup::now_ms() - DAY_MS;
    let open_ms = recorded_start_ms + 1_000;
    let event = json!({
        "name": "Show", "city": "Lyon", "country": "FR", "venue": "Opéra",
        "starts_at": loadgen::setup::rfc3339(recorded_start_ms + 30 * DAY_MS),
        "sales_open_at": loadgen::setup::rfc3339(open_ms),
        "categories": [{"name": "Stalls", "price_cents": 5000}],
        "general_admission": [{"category": "Stalls", "capacity": 10}],
    });
    let Entry::Http(mut create) = record(
        0,
        Kind::CreateEvent,
        Call::post("/v1/admin/events", Auth::Admin("demo".into()), event),
    ) else {
        unreachable!()
    };
    create.times = vec!["/starts_at".into(), "/sales_open_at".into()];
    let hold = record(
        1_500_000,
        Kind::HoldBest,
        Call::post(
            "/v1/events/ev_0/holds",
            Auth::User("u1".into()),
            json!({"quantity": 1}),
        ),
    );
    let log = RequestLog {
        header: Some(Header {
            loadgen_request_log: FORMAT_VERSION,
            started_at_ms: recorded_start_ms,
            scenario: "yesterday".into(),
        }),
        entries: vec![Entry::Http(create), hold],
        ..RequestLog::default()
    };
    let directory = tempfile::tempdir().unwrap();
    let before_ms = loadgen::setup::now_ms();
    let replayed =
        replay_into_log(&log, directory.path(), Pace::Max, 1_000, u64::MAX).expect("appended");
    assert_eq!(replayed.appended, 2);
    assert_eq!(replayed.gates_waited, 1, "the hold waited for the opening");

    let records = read_back(directory.path(), 2);
    assert_eq!(records.len(), 2);
    let request = engine::wire::decode_request(&records[0].payload).expect("decodable");
    let engine::Command::CreateEvent { spec, .. } = request.command else {
        panic!("the event comes first: {request:?}")
    };
    let open_at = spec.sales_open_at_ms.expect("a sales window");
    assert!(
        open_at >= before_ms + 1_000 && open_at <= records[1].timestamp_ms,
        "opens 1 s after the replay started ({before_ms}), before the hold's log time: {open_at} vs {}",
        records[1].timestamp_ms
    );
    assert!(spec.starts_at_ms >= before_ms + 30 * DAY_MS);
}

/// A recording (format 3) that carries the server's requests log: `server_log` lines as
/// `GET /v1/admin/engine/requests` streamed them, and the end line with the state hash of
/// the log's last offset.
fn recording_with_server_log(server_log: &[(u64, u64, engine::Request)], said: u64) -> String {
    let mut text = format!(
        "{}\n",
        json!({"loadgen_request_log": FORMAT_VERSION, "started_at_ms": 1_700_000_000_000u64, "scenario": "t"})
    );
    text.push_str(
        &json!({"at_us": 0, "kind": "read_event", "call": {"method": "GET", "path": "/v1/events", "auth": "none"}, "status": 200})
            .to_string(),
    );
    text.push('\n');
    for (offset, timestamp_ms, request) in server_log {
        let export_line =
            json!({"offset": offset, "timestamp_ms": timestamp_ms, "request": request});
        text.push_str(&json!({ "server_log": export_line }).to_string());
        text.push('\n');
    }
    let last = server_log.last().map(|(offset, _, _)| *offset);
    text.push_str(
        &json!({"loadgen_recording_end": {"at_us": 5, "engine": {"state_hash": "ab12", "applied_offset": last, "log_end_offset": said, "state_hash_offset": last}, "server_log_records": said}})
            .to_string(),
    );
    text.push('\n');
    text
}

fn tick(key: &str) -> engine::Request {
    engine::Request::with_key(engine::Command::Tick, key)
}

#[test]
fn an_exact_replay_imports_the_servers_log_with_its_offsets_and_times() {
    let server_log = vec![
        (0, 1_700_000_000_010, tick("a")),
        (1, 1_700_000_000_010, tick("b")),
        (
            2,
            1_700_000_003_000,
            engine::Request::new(engine::Command::Tick),
        ),
    ];
    let text = recording_with_server_log(&server_log, 3);
    let log = RequestLog::parse(text.as_bytes(), "rec.jsonl").expect("a recording");
    assert_eq!(
        log.entries.len(),
        1,
        "server log lines are not replayed over HTTP"
    );
    assert_eq!(log.server_log.len(), 3);

    let directory = tempfile::tempdir().unwrap();
    let imported = import_server_log(&log, directory.path()).expect("imported");
    assert_eq!(
        (
            imported.records,
            imported.hash_offset,
            imported.state_hash.as_str()
        ),
        (3, 2, "ab12")
    );
    let records = read_back(directory.path(), 10);
    let read: Vec<(u64, u64, engine::Request)> = records
        .into_iter()
        .map(|record| {
            (
                record.offset,
                record.timestamp_ms,
                engine::wire::decode_request(&record.payload).expect("decodable"),
            )
        })
        .collect();
    assert_eq!(read, server_log);
}

/// A server log that is not whole, or not decodable, or a data directory that already
/// holds a log: refused with the cause, nothing written.
#[test]
fn an_exact_replay_refuses_a_partial_server_log_and_a_used_data_directory() {
    let whole = vec![(0, 1_000, tick("a")), (1, 1_000, tick("b"))];
    let cases = [
        (
            recording_with_server_log(&whole, 3),
            "the recording's end says the server log has 3 records, it holds 2",
        ),
        (
            recording_with_server_log(&[(0, 1_000, tick("a")), (2, 1_000, tick("b"))], 2),
            "record 1 has offset 2, expected 1",
        ),
        (
            recording_with_server_log(&whole, 2).replace(
                r#"{"server_log":{"offset":1,"request":{"command":"Tick","idempotency_key":"b"},"timestamp_ms":1000}}"#,
                r#"{"server_log":{"offset":1,"timestamp_ms":1000,"undecodable":"unknown record version 9"}}"#,
            ),
            "undecodable record at offset 1 (unknown record version 9)",
        ),
    ];
    for (text, message) in cases {
        let log = RequestLog::parse(text.as_bytes(), "rec.jsonl").expect("a recording");
        let directory = tempfile::tempdir().unwrap();
        let error = import_server_log(&log, directory.path())
            .err()
            .expect("refused");
        assert!(error.to_string().contains(message), "{error}");
        assert!(!directory.path().join("requests").exists());
    }

    let log = RequestLog::parse(recording_with_server_log(&whole, 2).as_bytes(), "rec.jsonl")
        .expect("a recording");
    let directory = tempfile::tempdir().unwrap();
    import_server_log(&log, directory.path()).expect("imported");
    let error = import_server_log(&log, directory.path())
        .err()
        .expect("refused");
    assert!(
        error
            .to_string()
            .contains("already holds records (offsets 0..2)"),
        "{error}"
    );

    let without = RequestLog::parse(
        recording_with_server_log(&whole, 2)
            .lines()
            .filter(|line| !line.starts_with(r#"{"loadgen_recording_end""#))
            .collect::<Vec<_>>()
            .join("\n")
            .as_bytes(),
        "rec.jsonl",
    )
    .expect("a recording");
    let error = import_server_log(&without, tempfile::tempdir().unwrap().path())
        .err()
        .expect("refused");
    assert!(error.to_string().contains("holds no server log"), "{error}");
}

/// Up to `count` records of the requests log a replay wrote into `data_dir`, reopened.
fn read_back(data_dir: &std::path::Path, count: usize) -> Vec<requestlog::LogRecord> {
    let embedded = EmbeddedLog::open(data_dir.join("requests"), EmbeddedOptions::default())
        .expect("the log reopens");
    embedded
        .reader()
        .poll(count, Duration::from_secs(5))
        .expect("readable")
}
