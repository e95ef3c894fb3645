//! Search latency (BENCHMARKS.md, "Search"): an ingress whose read model holds `EVENTS`
//! events (general admission, names from a vocabulary, 200 venues in 20 cities, one
//! title per 50 events) answers `GET /v1/events` and `GET /v1/titles` searches through
//! its router (no socket): words with a typo, a radius around a city, a postal code, sorts
//! by distance and date, deep pages. The events' outcomes are written straight into an
//! embedded outcomes log (the engine makes them first) and the venues, titles and listings
//! into the control log, so no HTTP creation is timed. The first search builds the index
//! and is reported on its own.
//!
//! Run in release:
//! `cargo run --release -p boxoffice-benches --bin search -- [EVENTS] [ROUNDS]`
//! (default 100000 events, 200 rounds of each query).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use engine::catalog::{
    Chart, ChartRow, ChartSection, HallRecord, Listing, TitleRecord, VenueRecord,
};
use engine::control::{encode_control, ControlRecord};
use engine::{
    CategorySpec, Command, Engine, EngineConfig, EventSpec, PoolSpec, Reply, WaitlistPolicy,
};
use ingress::{ControlLogs, Ingress, IngressConfig, ShardLogs};
use requestlog::{EmbeddedLog, EmbeddedOptions, LogWriter};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const APPEND_RECORDS_MAX: usize = 4096;
const START_MS: u64 = 1_900_000_000_000;
const WORDS: [&str; 24] = [
    "avengers",
    "endgame",
    "jazz",
    "night",
    "symphony",
    "orchestra",
    "rock",
    "festival",
    "comedy",
    "opera",
    "ballet",
    "quartet",
    "electro",
    "summer",
    "winter",
    "gala",
    "tour",
    "live",
    "acoustic",
    "legends",
    "choir",
    "piano",
    "strings",
    "dance",
];
/// (city, latitude, longitude)
const CITIES: [(&str, f64, f64); 20] = [
    ("Paris", 48.8566, 2.3522),
    ("Lyon", 45.7640, 4.8357),
    ("Marseille", 43.2965, 5.3698),
    ("Toulouse", 43.6047, 1.4442),
    ("Nice", 43.7102, 7.2620),
    ("Nantes", 47.2184, -1.5536),
    ("Strasbourg", 48.5734, 7.7521),
    ("Montpellier", 43.6108, 3.8767),
    ("Bordeaux", 44.8378, -0.5792),
    ("Lille", 50.6292, 3.0573),
    ("Rennes", 48.1173, -1.6778),
    ("Reims", 49.2583, 4.0317),
    ("Brussels", 50.8503, 4.3517),
    ("Geneva", 46.2044, 6.1432),
    ("Luxembourg", 49.6116, 6.1319),
    ("Barcelona", 41.3874, 2.1686),
    ("Milan", 45.4642, 9.1900),
    ("Turin", 45.0703, 7.6869),
    ("Cologne", 50.9375, 6.9603),
    ("Zurich", 47.3769, 8.5417),
];
const VENUES_PER_CITY: usize = 10;
const EVENTS_PER_TITLE: usize = 50;

fn main() {
    let mut args = std::env::args().skip(1);
    let events: usize = boxoffice_benches::next_arg(&mut args, 100_000, "EVENTS");
    let rounds: usize = boxoffice_benches::next_arg(&mut args, 200, "ROUNDS");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let open = |name: &str| {
        Arc::new(EmbeddedLog::open(dir.path().join(name), EmbeddedOptions::default()).expect("log"))
    };
    let (requests, outcomes, control) = (open("requests"), open("outcomes"), open("control"));

    // The catalog: venues, titles.
    let mut records = Vec::new();
    let venue_id = |city: usize, venue: usize| format!("vn_{city}_{venue}");
    for (city, (name, lat, lng)) in CITIES.iter().enumerate() {
        for venue in 0..VENUES_PER_CITY {
            records.push(encode_control(&ControlRecord::VenueSaved {
                tenant: "demo".into(),
                venue: venue_id(city, venue),
                record: VenueRecord {
                    name: format!("{name} Hall {venue}"),
                    address: String::new(),
                    city: (*name).into(),
                    country: "EU".into(),
                    postal_code: format!("{:05}", city * 100 + venue),
                    lat_microdeg: ((lat + venue as f64 * 0.01) * 1e6) as i32,
                    lng_microdeg: ((lng + venue as f64 * 0.01) * 1e6) as i32,
                    halls: vec![HallRecord {
                        name: "Main".into(),
                        chart: Chart {
                            sections: vec![ChartSection {
                                name: "A".into(),
                                rows: vec![ChartRow {
                                    label: "1".into(),
                                    seats: 10,
                                    category: "Std".into(),
                                }],
                            }],
                        },
                    }],
                },
            }));
        }
    }
    let title_name = |title: usize| {
        format!(
            "{} {}",
            WORDS[title % WORDS.len()],
            WORDS[(title / WORDS.len()) % WORDS.len()]
        )
    };
    for title in 0..events.div_ceil(EVENTS_PER_TITLE) {
        records.push(encode_control(&ControlRecord::TitleSaved {
            tenant: "demo".into(),
            title: format!("tt_{title}"),
            record: TitleRecord {
                name: title_name(title),
                kind: "show".into(),
                description: String::new(),
            },
        }));
    }

    // The events, made by the engine; their outcomes and listings.
    let mut engine = Engine::new(EngineConfig {
        events_max: events as u32 + 10,
        ..EngineConfig::default()
    });
    let mut frames = Vec::new();
    let last_place = (
        (events - 1) % CITIES.len(),
        ((events - 1) / CITIES.len()) % VENUES_PER_CITY,
    );
    let mut at_last_place = 0;
    for index in 0..events {
        let title = index / EVENTS_PER_TITLE;
        let city = index % CITIES.len();
        let venue = (index / CITIES.len()) % VENUES_PER_CITY;
        if (city, venue) == last_place {
            at_last_place += 1;
        }
        let spec = EventSpec {
            name: format!("{} {}", title_name(title), index),
            description: format!("{} {}", WORDS[index % 7], WORDS[index % 11]),
            city: CITIES[city].0.into(),
            country: "EU".into(),
            venue: format!("{} Hall {venue}", CITIES[city].0),
            starts_at_ms: START_MS + 3_600_000 * (index as u64 * 7919 % 10_000),
            ends_at_ms: None,
            sales_open_at_ms: None,
            sales_close_at_ms: None,
            hold_ttl_ms: 300_000,
            seats_per_order_max: 10,
            seats_per_user_max: None,
            waitlist_policy: WaitlistPolicy::Strict,
            categories: vec![CategorySpec {
                name: "Std".into(),
                price_cents: 1000,
            }],
            sections: Vec::new(),
            general_admission: vec![PoolSpec {
                category: "Std".into(),
                capacity: 100,
            }],
        };
        let outcome = engine.apply(
            index as u64,
            START_MS,
            &engine::Request::new(Command::CreateEvent {
                tenant: "demo".into(),
                spec: Box::new(spec),
            }),
        );
        let Ok(Reply::EventCreated { event, .. }) = &outcome.result else {
            panic!("event {index} not made: {:?}", outcome.result);
        };
        records.push(encode_control(&ControlRecord::EventListed {
            tenant: "demo".into(),
            listing: Listing {
                event: *event,
                title: Some(format!("tt_{title}")),
                venue: venue_id(city, venue),
                hall: "Main".into(),
                chart_version: 1,
            },
        }));
        frames.extend(engine::wire::encode_outcome_frames(&engine.named(outcome)));
    }
    for chunk in frames.chunks(APPEND_RECORDS_MAX) {
        outcomes
            .writer()
            .append(chunk.to_vec())
            .expect("appending outcomes");
    }
    for chunk in records.chunks(APPEND_RECORDS_MAX) {
        control
            .writer()
            .append(chunk.to_vec())
            .expect("appending control records");
    }

    let config = IngressConfig {
        rate_limit: ingress::RateLimitConfig {
            enabled: false,
            ..Default::default()
        },
        ..IngressConfig::default()
    };
    let ingress = Ingress::start_shards(
        config,
        vec![ShardLogs {
            writer: Arc::new(requests.writer()),
            outcomes: Box::new(outcomes.reader()),
            outcomes_log_id: None,
            engine: None,
        }],
        Some(ControlLogs {
            writer: Arc::new(control.writer()),
            reader: Box::new(control.reader()),
        }),
    )
    .expect("the ingress starts");
    let router = ingress.router();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    runtime.block_on(async {
        // Caught up: the last listing (the control log's last record) is applied and
        // every event at its venue is in the read model.
        let postal = format!("{:05}", last_place.0 * 100 + last_place.1);
        let last = format!("/v1/events?per_page=1&postal_code={postal}");
        let expected = format!("\"total\":{at_last_place}");
        loop {
            let (status, _) = get(&router, "/readyz").await;
            if status == StatusCode::OK && get(&router, &last).await.1.contains(&expected) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let queries = [
        "/v1/events?q=Avngers%20endgme",
        "/v1/events?q=jazz&sort=name&page=3",
        "/v1/events?lat=48.8566&lng=2.3522&radius_km=50&sort=distance,date",
        "/v1/events?postal_code=00105&sort=date",
        "/v1/events?city=Lyon&sort=date&page=40",
        "/v1/events?sort=date&page=100",
        "/v1/titles?q=symphny&lat=45.76&lng=4.84&radius_km=100&sort=distance",
    ];
    runtime.block_on(async {
        let started = Instant::now();
        let (status, _) = get(&router, queries[0]).await;
        assert_eq!(status, StatusCode::OK);
        println!(
            "first search (builds the index of {events} events): {:?}",
            started.elapsed()
        );
        for query in queries {
            let mut times = Vec::with_capacity(rounds);
            let mut answer = String::new();
            for _ in 0..rounds {
                let started = Instant::now();
                let (status, body) = get(&router, query).await;
                times.push(started.elapsed());
                assert_eq!(status, StatusCode::OK, "{query}: {body}");
                answer = body;
            }
            times.sort();
            let total = answer
                .split("\"total\":")
                .nth(1)
                .and_then(|rest| rest.split([',', '}']).next())
                .unwrap_or("?");
            println!(
                "{query}: total {total}, p50 {:?}, p99 {:?}, max {:?}",
                times[rounds / 2],
                times[rounds * 99 / 100],
                times[rounds - 1]
            );
        }
    });
    ingress.stop();
}

async fn get(router: &axum::Router, uri: &str) -> (StatusCode, String) {
    let response = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).expect("a request"))
        .await
        .expect("an answer");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    (status, String::from_utf8_lossy(&body).into_owned())
}
