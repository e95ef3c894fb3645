//! The report JSON round-trips; request logs are read in both forms (ours and
//! `boxoffice log export`); HTTP calls and engine requests convert both ways.

use loadgen::client::{Answer, Auth, Call};
use loadgen::convert::{engine_to_http, http_to_engine, SeatLabels};
use loadgen::record::{
    Entry, Header, HttpRecord, RecordingEnd, RequestLog, RequestLogWriter, FORMAT_VERSION,
};
use loadgen::replay::parse_http_metrics;
use loadgen::report::{GrantedSummary, Recorder, Report, StepReport};
use loadgen::scenario::Kind;
use loadgen::verify::{parse_replay_hash, Check, EngineStatus, Verification};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

fn sample_report() -> Report {
    let mut recorder = Recorder::default();
    for index in 0..1_000u64 {
        let kind = [Kind::HoldBest, Kind::Confirm, Kind::ReadSeats][(index % 3) as usize];
        let code = if index % 10 == 0 { "sold_out" } else { "ok" };
        let route = "POST /v1/events/{event_id}/holds".to_string();
        recorder.record(
            kind,
            code,
            Duration::from_micros(200 + index * 37),
            Duration::from_millis(index * 3),
            &route,
            if code == "ok" { 201 } else { 409 },
        );
    }
    Report {
        loadgen_version: "0.1.0".into(),
        scenario: "flash-sale".into(),
        scale: 0.01,
        mode: "step".into(),
        target: "http://127.0.0.1:8080".into(),
        started_at: "2024-06-01T12:00:00Z".into(),
        seed: 7,
        duration_seconds: 3.25,
        target_rate_per_second: Some(1_500.0),
        achieved_rate_per_second: 1_487.5,
        concurrency: None,
        slots: 1_010,
        requests_sent: 1_000,
        skipped_slots: 10,
        dispatch_lag_max_us: 1_234,
        events: vec!["ev_0".into()],
        measurements: recorder.summarize(),
        steps: vec![StepReport {
            target_rate_per_second: 1_000.0,
            achieved_rate_per_second: 998.5,
            responses: 10_000,
            errors: 3,
            p50_us: 900,
            p99_us: 12_000,
            max_us: 40_000,
            cut_short: false,
        }],
        knee_rate_per_second: Some(1_000.0),
        p99_threshold_ms: Some(50.0),
        granted: Some(GrantedSummary {
            holds_granted: 50,
            bookings_granted: 40,
            waitlisted: 3,
            holds_live: 10,
            bookings_live: 39,
            seats_booked_live: 39,
        }),
        cpu: vec![loadgen::cpu::ProcessCpu {
            name: "serve".into(),
            pid: Some(4242),
            cpu_ms: 1_190,
            cpu_us_per_response: 119.0,
            threads: vec![
                loadgen::cpu::ThreadCpu {
                    name: "http".into(),
                    cpu_ms: 900,
                    cpu_us_per_response: 90.0,
                },
                loadgen::cpu::ThreadCpu {
                    name: "requestlog-writ".into(),
                    cpu_ms: 290,
                    cpu_us_per_response: 29.0,
                },
            ],
        }],
        replay: None,
        draws: vec![loadgen::report::DrawSpread {
            event_id: "ev_0".into(),
            seed_source: "fallback".into(),
            entries: 2,
            buckets: vec![loadgen::report::DrawBucket {
                from_seconds_before: 20.0,
                to_seconds_before: 0.0,
                entries: 2,
                mean_place_fraction: 0.5,
            }],
        }],
        verification: Some(Verification {
            passed: true,
            checks: vec![Check {
                name: "ev_0 General: capacity".into(),
                passed: true,
                detail: "capacity 50".into(),
            }],
            digest: "ab".repeat(32),
            engine: Some(EngineStatus {
                state_hash: "cd".repeat(32),
                applied_offset: Some(1_060),
                log_end_offset: 1_061,
                state_hash_offset: Some(1_059),
                ..EngineStatus::default()
            }),
        }),
    }
}

#[test]
fn the_report_json_round_trips() {
    let report = sample_report();
    let text = report.to_json();
    assert_eq!(Report::from_json(&text).unwrap(), report);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    // The fields people and scripts read.
    for pointer in [
        "/measurements/kinds/hold_best/latency/p99_us",
        "/measurements/overall/p9999_us",
        "/measurements/errors_by_code/sold_out",
        "/knee_rate_per_second",
        "/verification/engine/state_hash",
    ] {
        assert!(value.pointer(pointer).is_some(), "{pointer} in {text}");
    }
    assert_eq!(
        value.pointer("/measurements/errors_by_code/sold_out"),
        Some(&json!(100))
    );
    assert!(report.table().contains("knee: 1000/s"));
    assert!(
        report
            .table()
            .contains("cpu serve (pid 4242): 1190 ms, 119.0 us per response"),
        "{}",
        report.table()
    );
    assert!(
        report
            .table()
            .contains("cpu serve by thread, us per response: http 90.0, requestlog-writ 29.0"),
        "{}",
        report.table()
    );
    // A report written before the split by thread still reads (no threads).
    let mut unsplit: serde_json::Value = serde_json::from_str(&text).unwrap();
    unsplit["cpu"][0].as_object_mut().unwrap().remove("threads");
    assert!(Report::from_json(&unsplit.to_string()).unwrap().cpu[0]
        .threads
        .is_empty());
    // A report written before CPU figures existed still reads.
    let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
    old.as_object_mut().unwrap().remove("cpu");
    assert!(Report::from_json(&old.to_string()).unwrap().cpu.is_empty());
}

#[test]
fn percentiles_come_from_the_histograms() {
    let mut recorder = Recorder::default();
    for millis in 1..=1_000u64 {
        recorder.record(
            Kind::HoldExact,
            "ok",
            Duration::from_millis(millis),
            Duration::from_secs(millis / 500),
            "POST /v1/events/{event_id}/holds",
            201,
        );
    }
    let summary = recorder.summarize();
    let latency = &summary.kinds["hold_exact"].latency;
    // HDR with three significant digits: within 0.1%.
    let near = |value: u64, expected: u64| {
        (value as f64 - expected as f64).abs() <= expected as f64 * 0.001 + 1.0
    };
    assert!(near(latency.p50_us, 500_000), "{latency:?}");
    assert!(near(latency.p90_us, 900_000));
    assert!(near(latency.p99_us, 990_000));
    assert!(near(latency.max_us, 1_000_000));
    assert_eq!(
        summary
            .timeline
            .iter()
            .map(|point| point.second)
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(
        summary
            .timeline
            .iter()
            .map(|point| point.responses)
            .sum::<u64>(),
        1_000
    );
    assert_eq!(
        summary.by_route["POST /v1/events/{event_id}/holds"]["201"],
        1_000
    );
}

#[test]
fn request_logs_accept_our_records_and_boxoffice_exports() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("requests.jsonl");
    let writer = RequestLogWriter::create(
        &path,
        &Header {
            loadgen_request_log: FORMAT_VERSION,
            started_at_ms: 1_700_000_000_000,
            scenario: "theatre".into(),
        },
    )
    .unwrap();
    let hold = HttpRecord {
        at_us: 2_000,
        kind: Kind::HoldBest,
        call: Call::post(
            "/v1/events/ev_0/holds",
            Auth::User("u1".into()),
            json!({"quantity": 2, "category": "Stalls", "together": true}),
        ),
        times: Vec::new(),
        status: Some(201),
        code: None,
        shape: Some("{hold_id}".into()),
        created: BTreeMap::from([("/hold_id".to_string(), "h_0".to_string())]),
        line: 0,
    };
    let create = HttpRecord {
        at_us: 0,
        kind: Kind::CreateEvent,
        call: Call::post(
            "/v1/admin/events",
            Auth::Admin("demo".into()),
            json!({"name": "x", "sales_open_at": "2023-11-14T22:13:23Z"}),
        ),
        times: vec!["/sales_open_at".into()],
        status: Some(201),
        code: None,
        shape: None,
        created: BTreeMap::new(),
        line: 0,
    };
    // Written in completion order; read back in send order, with their lines.
    writer.write(&hold).unwrap();
    writer.write(&create).unwrap();
    let end = RecordingEnd {
        at_us: 9_000,
        engine: Some(EngineStatus {
            state_hash: "ab".repeat(32),
            applied_offset: Some(2),
            log_end_offset: 3,
            state_hash_offset: Some(2),
            ..EngineStatus::default()
        }),
        server_log_records: None,
    };
    writer.finish(&end).unwrap();
    let log = RequestLog::read(&path).unwrap();
    assert_eq!(log.header.as_ref().unwrap().scenario, "theatre");
    let (hold, create) = (
        HttpRecord { line: 2, ..hold },
        HttpRecord { line: 3, ..create },
    );
    assert_eq!(log.entries, vec![Entry::Http(create), Entry::Http(hold)]);
    assert_eq!(log.end, Some(end));
    assert_eq!(
        (log.start_ms(), log.last_at_us()),
        (1_700_000_000_000, 2_000)
    );

    // A format this loadgen does not know is refused, naming the line.
    let newer = format!(
        "{{\"loadgen_request_log\":{},\"started_at_ms\":0}}\n",
        FORMAT_VERSION + 1
    );
    let error = RequestLog::parse(newer.as_bytes(), "newer")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("newer:1") && error.contains("newer than"),
        "{error}"
    );
    // Format 1 marked no times: an event body's time fields are its times.
    let old = concat!(
        r#"{"loadgen_request_log":1,"started_at_ms":1700000000000,"scenario":"x"}"#,
        "\n",
        r#"{"at_us":0,"kind":"create_event","call":{"method":"POST","path":"/v1/admin/events","auth":{"admin":"demo"},"body":{"name":"x","starts_at":"2030-01-01T00:00:00Z"}},"status":201}"#,
        "\n",
    );
    let old = RequestLog::parse(old.as_bytes(), "old").unwrap();
    let Entry::Http(old_create) = &old.entries[0] else {
        panic!("an HTTP record")
    };
    assert_eq!(old_create.times, ["/starts_at"]);
    assert_eq!(old_create.outcome().unwrap().code, "ok");

    let export = concat!(
        r#"{"offset":0,"timestamp_ms":1700000000100,"request":{"idempotency_key":null,"command":{"PlaceHold":{"user":"u1","event":3,"selection":{"Seats":["A-1-7"]},"wait":false}}}}"#,
        "\n",
        r#"{"offset":1,"timestamp_ms":1700000000090,"undecodable":"unknown record version 9"}"#,
        "\n",
        r#"{"offset":2,"timestamp_ms":1700000000350,"request":{"idempotency_key":"k","command":"Tick"}}"#,
        "\n",
    );
    let log = RequestLog::parse(export.as_bytes(), "export").unwrap();
    assert_eq!(log.skipped, 1);
    assert_eq!(log.entries.len(), 2);
    assert_eq!(log.entries[1].at_us(log.first_timestamp_ms), 250_000);
    let Entry::Engine(first) = &log.entries[0] else {
        panic!("an engine record")
    };
    assert_eq!(
        first.request.command,
        engine::Command::PlaceHold {
            user: "u1".into(),
            event: engine::EventId(3),
            selection: engine::Selection::Seats(vec!["A-1-7".into()]),
            wait: false
        }
    );
    assert!(RequestLog::parse("{\"what\": 1}\n".as_bytes(), "bad")
        .unwrap_err()
        .to_string()
        .contains("bad:1"));
}

#[test]
fn calls_and_engine_requests_convert_both_ways() {
    let event_body = json!({
        "name": "Show", "city": "Lyon", "country": "FR", "venue": "Opéra",
        "starts_at": "2030-01-01T20:00:00Z", "sales_open_at": "2029-12-01T10:00:00Z",
        "hold_ttl_seconds": 120, "max_seats_per_order": 4, "max_seats_per_user": 6,
        "categories": [{"name": "Stalls", "price_cents": 5000}, {"name": "Floor", "price_cents": 3000}],
        "seating": {"sections": [{"name": "A", "rows": [{"label": "1", "seats": 10, "category": "Stalls"}]}]},
        "general_admission": [{"category": "Floor", "capacity": 100}],
    });
    let calls = [
        Call::post("/v1/admin/events", Auth::Admin("demo".into()), event_body),
        Call::post(
            "/v1/events/ev_3/holds",
            Auth::User("u1".into()),
            json!({"seats": ["A-1-1", "A-1-2"]}),
        ),
        Call::post(
            "/v1/events/ev_3/holds",
            Auth::User("u1".into()),
            json!({"quantity": 2, "category": "Stalls", "together": true, "wait": true}),
        ),
        Call::post(
            "/v1/holds/h_9/confirm",
            Auth::User("u1".into()),
            json!({"payment_ref": "pay-1"}),
        ),
        Call::delete("/v1/holds/h_9", Auth::User("u1".into())),
        Call::delete("/v1/bookings/b_4", Auth::User("u1".into())),
        Call::post(
            "/v1/events/ev_3/waitlist",
            Auth::User("u2".into()),
            json!({"quantity": 1, "category": "Floor", "together": false}),
        ),
        Call::delete("/v1/waitlist/w_2", Auth::User("u2".into())),
    ];
    for call in calls {
        let request =
            http_to_engine(&call).unwrap_or_else(|| panic!("{call:?} has an engine form"));
        let back = engine_to_http(&request, &SeatLabels::default()).unwrap();
        assert_eq!(
            (back.method.as_str(), back.path.as_str(), &back.auth),
            (call.method.as_str(), call.path.as_str(), &call.auth)
        );
        assert_eq!(http_to_engine(&back), Some(request), "{call:?}");
        // And the record format carries it.
        let bytes = engine::wire::encode_request(&http_to_engine(&call).unwrap());
        assert!(engine::wire::decode_request(&bytes).is_ok());
    }
    assert_eq!(
        http_to_engine(&Call::get("/v1/events/ev_3", Auth::None)),
        None,
        "reads have no engine form"
    );
    let spec = match http_to_engine(&Call::post("/v1/admin/events", Auth::Admin("demo".into()), json!({"name": "n", "city": "c", "country": "FR", "venue": "v", "starts_at": "2030-01-01T00:00:00Z", "categories": [{"name": "G", "price_cents": 1}], "general_admission": [{"category": "G", "capacity": 5}]}))).unwrap().command {
        engine::Command::CreateEvent { spec, .. } => spec,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (spec.hold_ttl_ms, spec.seats_per_order_max),
        (300_000, 10),
        "the API's defaults"
    );
}

#[test]
fn answers_routes_metrics_and_replay_output_are_read_tolerantly() {
    let answer = Answer::from_parts(
        409,
        json!({"error": {"code": "seats_unavailable", "message": "taken", "details": {"seats": ["A-1-1"]}}}),
    );
    assert_eq!(answer.code, "seats_unavailable");
    assert_eq!(
        Answer::from_parts(502, serde_json::Value::Null).code,
        "http_502"
    );
    assert_eq!(Answer::from_parts(201, json!({})).code, "ok");
    assert_eq!(
        Call::post("/v1/holds/h_12/confirm", Auth::None, json!({})).route(),
        "/v1/holds/{hold_id}/confirm"
    );
    assert_eq!(
        Call::get("/v1/events/ev_1/seats", Auth::None).route(),
        "/v1/events/{event_id}/seats"
    );
    assert_eq!(
        Call::get("/v1/waitlist/w_1?wait_seconds=5", Auth::None).route(),
        "/v1/waitlist/{waitlist_id}"
    );
    let metrics = "# TYPE boxoffice_http_requests_total counter\nboxoffice_http_requests_total{route=\"/v1/holds/{hold_id}/confirm\",method=\"POST\",status=\"201\"} 12\nboxoffice_http_request_duration_seconds_count{route=\"x\"} 3\n";
    assert_eq!(
        parse_http_metrics(metrics)["POST /v1/holds/{hold_id}/confirm"]["201"],
        12
    );
    let hash = "0f".repeat(32);
    assert_eq!(
        parse_replay_hash(&format!("state_hash {hash}\napplied_offset 3\n")),
        Some(hash.clone())
    );
    assert_eq!(
        parse_replay_hash(&format!("{{\"state_hash\": \"{hash}\"}}")),
        Some(hash)
    );
    assert_eq!(parse_replay_hash("nothing here"), None);
}

#[test]
fn only_loopback_targets_are_accepted() {
    for good in [
        "http://127.0.0.1:8080",
        "http://localhost:1",
        "http://[::1]:80/",
        "http://127.10.0.3:9",
    ] {
        assert!(loadgen::client::loopback_target(good).is_ok(), "{good}");
    }
    for bad in [
        "http://10.0.0.1:8080",
        "http://example.com",
        "https://127.0.0.1",
        "http://192.168.1.1",
        "127.0.0.1:8080",
    ] {
        assert!(loadgen::client::loopback_target(bad).is_err(), "{bad}");
    }
}

/// The draw's spread: entries bucketed by arrival over the window, each bucket's mean
/// place as a fraction (0 first, 1 last); entries outside the window or without a place
/// are left out.
#[test]
fn the_draw_spread_buckets_places_by_arrival_time() {
    use loadgen::report::draw_spread;
    use std::collections::BTreeMap;
    let (opens, draws) = (10_000, 20_000);
    let arrivals: Vec<(String, u64)> = [
        ("w_1", 10_000), // first span
        ("w_2", 14_999), // first span (two spans of 5 s)
        ("w_3", 15_000), // second span
        ("w_4", 19_999), // second span
        ("w_5", 20_000), // at opening: not an entry
        ("w_6", 12_000), // no place
    ]
    .iter()
    .map(|(id, at)| (id.to_string(), *at))
    .collect();
    let places: BTreeMap<String, u64> =
        [("w_1", 1), ("w_2", 5), ("w_3", 2), ("w_4", 3), ("w_5", 4)]
            .iter()
            .map(|(id, place)| (id.to_string(), *place))
            .collect();
    let buckets = draw_spread(opens, draws, &arrivals, &places, 5, 2);
    assert_eq!(buckets.len(), 2);
    assert_eq!(
        (buckets[0].from_seconds_before, buckets[0].to_seconds_before),
        (10.0, 5.0)
    );
    assert_eq!(
        (buckets[1].from_seconds_before, buckets[1].to_seconds_before),
        (5.0, 0.0)
    );
    assert_eq!((buckets[0].entries, buckets[1].entries), (2, 2));
    // Places 1 and 5 of 5: fractions 0 and 1; places 2 and 3: 0.25 and 0.5.
    assert_eq!(buckets[0].mean_place_fraction, 0.5);
    assert_eq!(buckets[1].mean_place_fraction, 0.375);
    // An empty span says so.
    let empty = draw_spread(opens, draws, &[], &places, 5, 3);
    assert!(empty
        .iter()
        .all(|bucket| bucket.entries == 0 && bucket.mean_place_fraction == 0.0));
}

/// Holds and waitlist joins the ingress appended with category indices replay as the names
/// of the log's own events; an index no created event has becomes a name none has, so the
/// replay is refused as unknown, as the index was.
#[test]
fn categories_by_index_convert_to_the_events_names() {
    let create = http_to_engine(&Call::post(
        "/v1/admin/events",
        Auth::Admin("demo".into()),
        json!({"name": "n", "city": "c", "country": "FR", "venue": "v", "starts_at": "2030-01-01T00:00:00Z",
               "categories": [{"name": "Gold", "price_cents": 1}, {"name": "Floor", "price_cents": 1}],
               "general_admission": [{"category": "Floor", "capacity": 5}]}),
    ))
    .unwrap();
    let labels = SeatLabels::of([&create]);
    let hold = |category| {
        engine::Request::new(engine::Command::PlaceHold {
            user: "u1".into(),
            event: engine::EventId(0),
            selection: engine::Selection::BestIndexed {
                quantity: 2,
                category,
                together: false,
            },
            wait: false,
        })
    };
    let join = |category| {
        engine::Request::new(engine::Command::JoinWaitlistIndexed {
            user: "u2".into(),
            event: engine::EventId(0),
            quantity: 1,
            category,
            together: true,
        })
    };
    let body = |request: engine::Request| engine_to_http(&request, &labels).unwrap().body;
    assert_eq!(
        body(hold(Some(1))),
        Some(json!({"quantity": 2, "together": false, "category": "Floor"}))
    );
    assert_eq!(
        body(hold(None)),
        Some(json!({"quantity": 2, "together": false}))
    );
    assert_eq!(
        body(hold(Some(7))),
        Some(json!({"quantity": 2, "together": false, "category": "#7"}))
    );
    assert_eq!(
        body(join(Some(0))),
        Some(json!({"quantity": 1, "together": true, "category": "Gold"}))
    );
}
