//! Venues, titles and search (issue "Discovery like a real box office") through the API:
//! an ingress with a control log (venues, titles and listings live there) and the engine
//! runtime (events made from a hall's chart).

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use ingress::{ControlLogs, Ingress, IngressConfig, ShardLogs};
use requestlog::{EmbeddedLog, EmbeddedOptions};
use serde_json::{json, Value};
use std::sync::Arc;

struct Discovery {
    ingress: Option<Ingress>,
    engines: Vec<runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        if let Some(ingress) = self.ingress.take() {
            ingress.stop();
        }
        for engine in self.engines.drain(..) {
            let _ = engine.shutdown();
        }
    }
}

impl Discovery {
    fn start(config: IngressConfig) -> Discovery {
        Discovery::sharded(config, 1)
    }

    /// `shards` engine runtimes, each on its own logs, and one ingress over them.
    fn sharded(config: IngressConfig, shards: u32) -> Discovery {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| {
            Arc::new(EmbeddedLog::open(dir.path().join(name), EmbeddedOptions::default()).unwrap())
        };
        let mut engines = Vec::new();
        let mut logs = Vec::new();
        for index in 0..shards {
            let requests = open(&format!("requests-{index}"));
            let outcomes = open(&format!("outcomes-{index}"));
            let engine_config = engine::EngineConfig {
                shard: engine::ShardPlace {
                    index,
                    count: shards,
                },
                ..config.engine.clone()
            };
            engines.push(start_runtime(
                requests.clone(),
                outcomes.clone(),
                engine_config,
            ));
            logs.push(ShardLogs {
                writer: Arc::new(requests.writer()),
                outcomes: Box::new(outcomes.reader()),
                outcomes_log_id: None,
                engine: None,
            });
        }
        let control = open("control");
        let ingress = Ingress::start_shards(
            config,
            logs,
            Some(ControlLogs {
                writer: Arc::new(control.writer()),
                reader: Box::new(control.reader()),
            }),
        )
        .unwrap();
        Discovery {
            ingress: Some(ingress),
            engines,
            _dir: dir,
        }
    }

    fn router(&self) -> axum::Router {
        self.ingress.as_ref().unwrap().router()
    }
}

fn hall(name: &str, rows: u32, seats: u32) -> Value {
    let rows: Vec<Value> = (1..=rows)
        .map(|row| json!({"label": row.to_string(), "seats": seats, "category": if row == 1 { "Gold" } else { "Std" }}))
        .collect();
    json!({"name": name, "seating": {"sections": [{"name": "Stalls", "rows": rows}]}})
}

/// Paris Olympia (48.8703, 2.3286), Lyon (45.7640, 4.8357), Marseille (43.2965, 5.3698).
fn venue_body(name: &str, city: &str, postal: &str, lat: f64, lng: f64) -> Value {
    json!({"name": name, "address": "1 rue de la Paix", "city": city, "country": "FR",
        "postal_code": postal, "latitude": lat, "longitude": lng,
        "halls": [hall("Main", 2, 5), hall("Studio", 1, 3)]})
}

async fn make(router: &axum::Router, admin: &str, path: &str, body: Value) -> Value {
    let made = call(router, Method::POST, path, Some(admin), Some(body)).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    made.body
}

fn show(venue: &str, hall: &str, title: Option<&str>, name: &str, starts_at: &str) -> Value {
    let mut body = json!({"name": name, "venue_id": venue, "hall": hall, "starts_at": starts_at,
        "categories": [{"name": "Gold", "price_cents": 3000}, {"name": "Std", "price_cents": 1500}]});
    if let Some(title) = title {
        body["title_id"] = json!(title);
    }
    body
}

async fn get(router: &axum::Router, uri: &str) -> Answer {
    call(router, Method::GET, uri, None, None).await
}

fn names(answer: &Answer) -> Vec<String> {
    answer.body["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", answer.text))
        .iter()
        .map(|event| event["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn venues_are_per_tenant_and_charts_are_versioned() {
    let discovery = Discovery::start(config());
    let router = discovery.router();
    let venue = make(
        &router,
        ADMIN,
        "/v1/admin/venues",
        venue_body("Olympia", "Paris", "75009", 48.8703, 2.3286),
    )
    .await;
    let id = venue["venue_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("vn_"), "{id}");
    assert_eq!(
        (
            &venue["halls"][0]["chart_version"],
            &venue["halls"][0]["seats"],
            &venue["latitude"]
        ),
        (&json!(1), &json!(10), &json!(48.8703))
    );

    // An event from the hall takes its chart and the venue's place.
    let event = create_event(
        &router,
        show(&id, "Main", None, "Concert", "2030-05-01T20:00:00Z"),
    )
    .await;
    let detail = get(&router, &format!("/v1/events/{event}")).await;
    assert_eq!(
        (
            &detail.body["venue"],
            &detail.body["city"],
            &detail.body["capacity"]
        ),
        (&json!("Olympia"), &json!("Paris"), &json!(10))
    );

    // A changed chart is version 2; the event keeps version 1's seats.
    let patched = call(
        &router,
        Method::PATCH,
        &format!("/v1/admin/venues/{id}"),
        Some(ADMIN),
        Some(json!({"halls": [hall("Main", 3, 5)], "postal_code": "75 009"})),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(
        (
            &patched.body["halls"][0]["chart_version"],
            &patched.body["halls"][0]["seats"],
            &patched.body["halls"][1]["chart_version"]
        ),
        (&json!(2), &json!(15), &json!(1))
    );
    let again = get(&router, &format!("/v1/events/{event}")).await;
    assert_eq!(again.body["capacity"], json!(10));
    let newer = create_event(
        &router,
        show(&id, "Main", None, "Encore", "2030-05-02T20:00:00Z"),
    )
    .await;
    assert_eq!(
        get(&router, &format!("/v1/events/{newer}")).await.body["capacity"],
        json!(15)
    );
    // A retried creation under its Idempotency-Key answers the venue made first; the key
    // with another body is refused.
    let keyed = |body: Value| {
        call_with(
            &router,
            Method::POST,
            "/v1/admin/venues",
            Some(ADMIN),
            &[("idempotency-key", "venue-1")],
            Some(body.to_string()),
        )
    };
    let first = keyed(venue_body("Zenith", "Paris", "75019", 48.894, 2.393)).await;
    let retry = keyed(venue_body("Zenith", "Paris", "75019", 48.894, 2.393)).await;
    assert_eq!(
        (first.status, retry.status, &retry.body["venue_id"]),
        (
            StatusCode::CREATED,
            StatusCode::CREATED,
            &first.body["venue_id"]
        )
    );
    let other = keyed(venue_body("Bercy", "Paris", "75012", 48.838, 2.378)).await;
    assert_eq!(
        (other.status, other.reason()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    let title = |name: &str| {
        call_with(
            &router,
            Method::POST,
            "/v1/admin/titles",
            Some(ADMIN),
            &[("idempotency-key", "title-1")],
            Some(json!({"name": name}).to_string()),
        )
    };
    let (made, again) = (title("Dune").await, title("Dune").await);
    assert_eq!(
        (again.status, &again.body["title_id"]),
        (StatusCode::CREATED, &made.body["title_id"])
    );
    assert_eq!(title("Dune II").await.reason(), "idempotency_key_reused");
    let unchanged = call(
        &router,
        Method::PATCH,
        &format!("/v1/admin/venues/{id}"),
        Some(ADMIN),
        Some(json!({"halls": [hall("Main", 3, 5)]})),
    )
    .await;
    assert_eq!(
        (unchanged.status, unchanged.reason()),
        (StatusCode::BAD_REQUEST, "empty_patch")
    );

    // Tenant isolation: the other tenant neither lists, reads, changes nor uses it.
    let theirs = call(
        &router,
        Method::GET,
        "/v1/admin/venues",
        Some(OTHER_ADMIN),
        None,
    )
    .await;
    assert_eq!(theirs.body["venues"], json!([]));
    let mine = call(&router, Method::GET, "/v1/admin/venues", Some(ADMIN), None).await;
    assert_eq!(mine.body["venues"].as_array().unwrap().len(), 2);
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"name": "Mine now"}))),
    ] {
        let other = call(
            &router,
            method,
            &format!("/v1/admin/venues/{id}"),
            Some(OTHER_ADMIN),
            body,
        )
        .await;
        assert_eq!(
            (other.status, other.reason()),
            (StatusCode::NOT_FOUND, "venue_not_found"),
            "{}",
            other.text
        );
    }
    let borrowed = call(
        &router,
        Method::POST,
        "/v1/admin/events",
        Some(OTHER_ADMIN),
        Some(show(&id, "Main", None, "Stolen", "2030-05-01T20:00:00Z")),
    )
    .await;
    assert_eq!(
        (borrowed.status, borrowed.field()),
        (StatusCode::BAD_REQUEST, "venue_id")
    );
    assert_eq!(
        get(&router, &format!("/v1/admin/venues/{id}")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_venues_and_events_are_400s_naming_the_field() {
    let discovery = Discovery::start(config());
    let router = discovery.router();
    let good = venue_body("Olympia", "Paris", "75009", 48.8703, 2.3286);
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    let too_many_sections = json!([{"name": "Huge", "seating": {"sections": (0..201)
        .map(|section| json!({"name": format!("S{section}"), "rows": [{"label": "1", "seats": 1, "category": "Std"}]}))
        .collect::<Vec<_>>()}}]);
    let twice = json!([hall("Main", 1, 1), hall("Main", 1, 1)]);
    let empty_row = json!([{"name": "Main", "seating": {"sections": [{"name": "A", "rows": [{"label": "1", "seats": 0, "category": "Std"}]}]}}]);
    for (body, field) in [
        (with("latitude", json!(90.5)), "latitude"),
        (with("longitude", json!(-181)), "longitude"),
        (with("postal_code", json!("75#09")), "postal_code"),
        (with("halls", json!([])), "halls"),
        (with("halls", too_many_sections), "halls[0].seating"),
        (with("halls", twice), "halls[1].name"),
        (
            with("halls", empty_row),
            "halls[0].seating.sections[0].rows[0].seats",
        ),
        (with("name", json!(" ")), "name"),
    ] {
        let refused = call(
            &router,
            Method::POST,
            "/v1/admin/venues",
            Some(ADMIN),
            Some(body),
        )
        .await;
        assert_eq!(
            (refused.status, refused.field()),
            (StatusCode::BAD_REQUEST, field),
            "{}",
            refused.text
        );
    }
    let listed = call(&router, Method::GET, "/v1/admin/venues", Some(ADMIN), None).await;
    assert_eq!(listed.body["venues"], json!([]), "nothing recorded");

    let venue = make(&router, ADMIN, "/v1/admin/venues", good.clone()).await;
    let id = venue["venue_id"].as_str().unwrap();
    // Halls added one by one until the venue would not fit one control record.
    let big_hall = |name: &str| {
        json!({"name": name, "seating": {"sections": [{"name": "A",
        "rows": (0..1000).map(|row| json!({"label": row.to_string(), "seats": 1, "category": "S"})).collect::<Vec<_>>()}]}})
    };
    let mut refused = None;
    for hall in 0..20 {
        let answer = call(
            &router,
            Method::PATCH,
            &format!("/v1/admin/venues/{id}"),
            Some(ADMIN),
            Some(json!({"halls": [big_hall(&format!("Big {hall}"))]})),
        )
        .await;
        if answer.status != StatusCode::OK {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("a venue past one control record is refused");
    assert_eq!(
        (refused.status, refused.field()),
        (StatusCode::BAD_REQUEST, "halls"),
        "{}",
        refused.text
    );
    // Every hall accepted before is there: nothing was skipped silently.
    let now = call(
        &router,
        Method::GET,
        &format!("/v1/admin/venues/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    let halls = now.body["halls"].as_array().unwrap();
    assert!(halls.len() >= 3, "{}", now.text);
    assert_eq!(
        halls.last().unwrap()["name"],
        json!(format!("Big {}", halls.len() - 3))
    );
    let mut inline_too = show(id, "Main", None, "Both", "2030-05-01T20:00:00Z");
    inline_too["seating"] = json!({"sections": [{"name": "A", "rows": [{"label": "1", "seats": 1, "category": "Gold"}]}]});
    let mut unpriced = show(id, "Main", None, "Unpriced", "2030-05-01T20:00:00Z");
    unpriced["categories"] = json!([{"name": "Gold", "price_cents": 3000}]);
    for (body, field) in [
        (
            show("vn_nope", "Main", None, "X", "2030-05-01T20:00:00Z"),
            "venue_id",
        ),
        (
            show(id, "Balcony", None, "X", "2030-05-01T20:00:00Z"),
            "hall",
        ),
        (
            show(id, "Main", Some("tt_nope"), "X", "2030-05-01T20:00:00Z"),
            "title_id",
        ),
        (inline_too, "seating"),
        (unpriced, "categories"),
    ] {
        let refused = call(
            &router,
            Method::POST,
            "/v1/admin/events",
            Some(ADMIN),
            Some(body),
        )
        .await;
        assert_eq!(
            (refused.status, refused.field()),
            (StatusCode::BAD_REQUEST, field),
            "{}",
            refused.text
        );
    }
    for (query, field) in [
        ("lat=91&lng=2", "lat"),
        ("lat=north&lng=2", "lat"),
        ("lat=48&lng=180.1", "lng"),
        ("lat=48", "lng"),
        ("radius_km=5", "radius_km"),
        ("lat=48&lng=2&radius_km=0", "radius_km"),
        ("lat=48&lng=2&radius_km=1000.5", "radius_km"),
        ("lat=48&lng=2&radius_km=NaN", "radius_km"),
        ("sort=distance", "sort"),
        ("sort=date,date", "sort"),
        ("postal_code=%2A", "postal_code"),
        ("per_page=101", "per_page"),
    ] {
        for path in ["/v1/events", "/v1/titles"] {
            let refused = get(&router, &format!("{path}?{query}")).await;
            assert_eq!(
                (refused.status, refused.field()),
                (StatusCode::BAD_REQUEST, field),
                "{path}?{query}: {}",
                refused.text
            );
        }
    }
    let day = get(&router, "/v1/titles/tt_nope/shows?date=2030-13-01").await;
    assert_eq!(day.status, StatusCode::BAD_REQUEST);
    let unknown = get(&router, "/v1/titles/tt_nope/shows").await;
    assert_eq!(
        (unknown.status, unknown.reason()),
        (StatusCode::NOT_FOUND, "title_not_found")
    );
}

/// Three venues, two titles, shows on two days; the searches of seed 002.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_words_place_distance_and_the_title_flow() {
    let discovery = Discovery::start(config());
    let router = discovery.router();
    let paris = make(
        &router,
        ADMIN,
        "/v1/admin/venues",
        venue_body("Olympia", "Paris", "75009", 48.8703, 2.3286),
    )
    .await;
    let lyon = make(
        &router,
        ADMIN,
        "/v1/admin/venues",
        venue_body("Halle Tony Garnier", "Lyon", "69007", 45.7640, 4.8357),
    )
    .await;
    let marseille = make(
        &router,
        ADMIN,
        "/v1/admin/venues",
        venue_body("Le Dôme", "Marseille", "13004", 43.2965, 5.3698),
    )
    .await;
    let (paris, lyon, marseille) = (
        paris["venue_id"].as_str().unwrap(),
        lyon["venue_id"].as_str().unwrap(),
        marseille["venue_id"].as_str().unwrap(),
    );
    let avengers = make(
        &router,
        ADMIN,
        "/v1/admin/titles",
        json!({"name": "Avengers Endgame", "kind": "film"}),
    )
    .await;
    let avengers = avengers["title_id"].as_str().unwrap();
    let jazz = make(
        &router,
        ADMIN,
        "/v1/admin/titles",
        json!({"name": "Jazz à Vienne", "kind": "festival"}),
    )
    .await;
    let jazz = jazz["title_id"].as_str().unwrap();
    create_event(
        &router,
        show(
            paris,
            "Main",
            Some(avengers),
            "Avengers Endgame",
            "2030-05-01T18:00:00Z",
        ),
    )
    .await;
    create_event(
        &router,
        show(
            paris,
            "Studio",
            Some(avengers),
            "Avengers Endgame",
            "2030-05-01T21:00:00Z",
        ),
    )
    .await;
    create_event(
        &router,
        show(
            lyon,
            "Main",
            Some(avengers),
            "Avengers Endgame",
            "2030-05-02T20:00:00Z",
        ),
    )
    .await;
    create_event(
        &router,
        show(
            marseille,
            "Main",
            Some(jazz),
            "Jazz Night",
            "2030-04-01T20:00:00Z",
        ),
    )
    .await;
    // An inline event (no venue: no place) still answers the old searches.
    create_event(&router, event_body("Tests Live", 2, 300)).await;

    // Typos find it, and the spelling is suggested.
    let typo = get(&router, "/v1/events?q=Avngers").await;
    assert_eq!(typo.body["total"], json!(3), "{}", typo.text);
    assert_eq!(typo.body["did_you_mean"], json!("avengers"));
    let exact = get(&router, "/v1/events?q=avengers%20endgame").await;
    assert_eq!(
        (exact.body["total"].as_u64(), exact.body.get("did_you_mean")),
        (Some(3), None)
    );
    assert_eq!(
        get(&router, "/v1/events?q=endg").await.body["total"],
        json!(3),
        "a prefix"
    );
    assert_eq!(
        get(&router, "/v1/events?q=zzyzx").await.body["total"],
        json!(0)
    );
    let titles = get(&router, "/v1/titles?q=Avengrs%20endgme").await;
    assert_eq!(
        titles.body["titles"][0]["title_id"],
        json!(avengers),
        "{}",
        titles.text
    );
    assert_eq!(titles.body["did_you_mean"], json!("avengers endgame"));
    assert_eq!(
        get(&router, "/v1/titles?q=vienne").await.body["titles"][0]["title_id"],
        json!(jazz)
    );
    assert_eq!(
        get(&router, "/v1/events?q=dome").await.body["total"],
        json!(1),
        "accents folded"
    );

    // Radius: Lyon is 391.5 km from the Olympia, Marseille 661 km.
    let near = |radius: &str| {
        format!("/v1/events?lat=48.8703&lng=2.3286&radius_km={radius}&sort=distance,date")
    };
    let close = get(&router, &near("1")).await;
    assert_eq!(
        names(&close),
        ["Avengers Endgame", "Avengers Endgame"],
        "{}",
        close.text
    );
    assert_eq!(close.body["events"][0]["distance_km"], json!(0.0));
    assert_eq!(
        close.body["events"][0]["starts_at"],
        json!("2030-05-01T18:00:00Z")
    );
    let to_lyon = distance(&get(&router, &near("1000")).await, 2);
    assert!((385.0..400.0).contains(&to_lyon), "{to_lyon}");
    let inside = get(&router, &near(&format!("{:.3}", to_lyon + 0.001))).await;
    assert_eq!(inside.body["total"], json!(3), "the boundary is inside");
    let outside = get(&router, &near(&format!("{:.3}", to_lyon - 0.01))).await;
    assert_eq!(outside.body["total"], json!(2));
    let all_places = get(&router, &near("1000")).await;
    assert_eq!(
        all_places.body["total"],
        json!(4),
        "the inline event has no place"
    );
    assert_eq!(all_places.body["events"][3]["name"], json!("Jazz Night"));

    // Postal code (spaces and case ignored), sort orders and paging.
    let postal = get(&router, "/v1/events?postal_code=69%20007").await;
    assert_eq!(postal.body["total"], json!(1), "{}", postal.text);
    let by_name = get(&router, "/v1/events?sort=name,date&per_page=2&page=2").await;
    assert_eq!(
        names(&by_name),
        ["Avengers Endgame", "Jazz Night"],
        "{}",
        by_name.text
    );
    assert_eq!(by_name.body["total"], json!(5));
    let by_date = get(&router, "/v1/events?sort=date&per_page=1").await;
    assert_eq!(names(&by_date), ["Jazz Night"]);
    let old_search = get(&router, "/v1/events?city=lyon&q=tests").await;
    assert_eq!(names(&old_search), ["Tests Live"]);

    // Seed 002's flow: a city → titles showing there → venues and show times → a seat map.
    let in_paris = get(&router, "/v1/titles?city=paris").await;
    assert_eq!(in_paris.body["total"], json!(1), "{}", in_paris.text);
    assert_eq!(
        (
            &in_paris.body["titles"][0]["shows"],
            &in_paris.body["titles"][0]["next_show_at"]
        ),
        (&json!(2), &json!("2030-05-01T18:00:00Z"))
    );
    let by_distance = get(&router, "/v1/titles?lat=43.3&lng=5.37&sort=distance").await;
    assert_eq!(
        by_distance.body["titles"][0]["title_id"],
        json!(jazz),
        "{}",
        by_distance.text
    );
    let shows = get(
        &router,
        &format!("/v1/titles/{avengers}/shows?city=Paris&date=2030-05-01"),
    )
    .await;
    assert_eq!(shows.status, StatusCode::OK, "{}", shows.text);
    let venues = shows.body["venues"].as_array().unwrap();
    assert_eq!(venues.len(), 1);
    assert_eq!(venues[0]["venue_id"], json!(paris));
    let times: Vec<&str> = venues[0]["shows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|show| show["starts_at"].as_str().unwrap())
        .collect();
    assert_eq!(times, ["2030-05-01T18:00:00Z", "2030-05-01T21:00:00Z"]);
    assert_eq!(venues[0]["shows"][1]["hall"], json!("Studio"));
    let seats = get(
        &router,
        venues[0]["shows"][0]["seats_url"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        seats.body["sections"][0]["name"],
        json!("Stalls"),
        "{}",
        seats.text
    );
    let next_day = get(
        &router,
        &format!("/v1/titles/{avengers}/shows?date=2030-05-02"),
    )
    .await;
    assert_eq!(next_day.body["venues"][0]["venue_id"], json!(lyon));

    // Titles are per tenant for their admins; re-listing moves a show between titles.
    let theirs = call(
        &router,
        Method::GET,
        "/v1/admin/titles",
        Some(OTHER_ADMIN),
        None,
    )
    .await;
    assert_eq!(theirs.body["titles"], json!([]));
    let jazz_night = get(&router, "/v1/events?q=jazz").await.body["events"][0]["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let relisted = call(
        &router,
        Method::PUT,
        &format!("/v1/admin/events/{jazz_night}/listing"),
        Some(ADMIN),
        Some(json!({"venue_id": marseille, "hall": "Main", "title_id": avengers})),
    )
    .await;
    assert_eq!(
        (relisted.status, &relisted.body["chart_version"]),
        (StatusCode::OK, &json!(1)),
        "{}",
        relisted.text
    );
    let moved = get(&router, &format!("/v1/titles/{avengers}/shows")).await;
    assert_eq!(
        moved.body["venues"].as_array().unwrap().len(),
        3,
        "{}",
        moved.text
    );
    assert_eq!(
        get(&router, "/v1/events?q=avengers").await.body["total"],
        json!(4),
        "re-indexed with its title"
    );
    let not_theirs = call(
        &router,
        Method::PUT,
        &format!("/v1/admin/events/{jazz_night}/listing"),
        Some(OTHER_ADMIN),
        Some(json!({"venue_id": marseille, "hall": "Main"})),
    )
    .await;
    assert_eq!(not_theirs.status, StatusCode::NOT_FOUND);

    // A renamed event is found by its new words, a canceled one only when asked for.
    let renamed = call(
        &router,
        Method::PATCH,
        &format!("/v1/admin/events/{jazz_night}"),
        Some(ADMIN),
        Some(json!({"name": "Saxophone Evening"})),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    assert_eq!(
        names(&get(&router, "/v1/events?q=saxophon").await),
        ["Saxophone Evening"]
    );
    let canceled = call(
        &router,
        Method::DELETE,
        &format!("/v1/admin/events/{jazz_night}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(canceled.status, StatusCode::OK, "{}", canceled.text);
    assert_eq!(
        get(&router, "/v1/events?q=saxophone").await.body["total"],
        json!(0)
    );
    assert_eq!(
        get(&router, "/v1/events?q=saxophone&include_canceled=true")
            .await
            .body["total"],
        json!(1)
    );
}

fn distance(answer: &Answer, index: usize) -> f64 {
    answer.body["events"][index]["distance_km"]
        .as_f64()
        .unwrap_or_else(|| panic!("{}", answer.text))
}

/// Over three shards: one title's shows land on every shard (placed by their keys), and
/// the search, the title's list and its shows merge them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_merge_every_shard() {
    let discovery = Discovery::sharded(config(), 3);
    let router = discovery.router();
    let venue = make(
        &router,
        ADMIN,
        "/v1/admin/venues",
        venue_body("Olympia", "Paris", "75009", 48.8703, 2.3286),
    )
    .await;
    let venue = venue["venue_id"].as_str().unwrap();
    let title = make(
        &router,
        ADMIN,
        "/v1/admin/titles",
        json!({"name": "Avengers Endgame"}),
    )
    .await;
    let title = title["title_id"].as_str().unwrap();
    let mut shards = std::collections::BTreeSet::new();
    for show_index in 0..9 {
        let made = call_with(
            &router,
            Method::POST,
            "/v1/admin/events",
            Some(ADMIN),
            &[("idempotency-key", &format!("show-{show_index}"))],
            Some(
                show(
                    venue,
                    "Main",
                    Some(title),
                    "Avengers Endgame",
                    &format!("2030-05-0{}T20:00:00Z", show_index + 1),
                )
                .to_string(),
            ),
        )
        .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
        let event: u64 = made.body["event_id"].as_str().unwrap()[3..]
            .parse()
            .unwrap();
        shards.insert(engine::shard_of(event, 3));
    }
    assert_eq!(shards.len(), 3, "the shows are on every shard");
    let found = get(&router, "/v1/events?q=avngers&sort=date&per_page=4&page=2").await;
    assert_eq!(found.body["total"], json!(9), "{}", found.text);
    assert_eq!(
        found.body["events"][0]["starts_at"],
        json!("2030-05-05T20:00:00Z")
    );
    let near = get(&router, "/v1/events?lat=48.87&lng=2.33&radius_km=5").await;
    assert_eq!(near.body["total"], json!(9), "{}", near.text);
    let titles = get(&router, "/v1/titles?city=paris").await;
    assert_eq!(
        titles.body["titles"][0]["shows"],
        json!(9),
        "{}",
        titles.text
    );
    let shows = get(&router, &format!("/v1/titles/{title}/shows")).await;
    assert_eq!(
        shows.body["venues"][0]["shows"].as_array().unwrap().len(),
        9,
        "{}",
        shows.text
    );
}

/// One event as the test knows it, to compute each search's expected answer.
#[derive(Clone)]
struct Known {
    id: u64,
    name: String,
    city: String,
    starts_at: String,
    description: String,
    canceled: bool,
}

impl Known {
    fn folded_name(&self) -> String {
        self.name.chars().flat_map(char::to_lowercase).collect()
    }
}

/// What `GET /v1/events?{query}` must answer over `known`: the ids of page `page` of
/// `per_page` and the total, each sort key in turn and ties by event id.
fn expected(
    known: &[Known],
    sort: &[&str],
    select: impl Fn(&Known) -> bool,
    page: usize,
    per_page: usize,
) -> (Vec<String>, usize) {
    let mut found: Vec<&Known> = known.iter().filter(|event| select(event)).collect();
    found.sort_by(|a, b| {
        sort.iter()
            .map(|key| match *key {
                "date" => a.starts_at.cmp(&b.starts_at),
                "name" => a.folded_name().cmp(&b.folded_name()),
                other => panic!("{other}"),
            })
            .fold(std::cmp::Ordering::Equal, std::cmp::Ordering::then)
            .then(a.id.cmp(&b.id))
    });
    let ids = found
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|event| format!("ev_{}", event.id))
        .collect();
    (ids, found.len())
}

/// Every sort order, with and without filters, page by page, against the test's own
/// list of the events.
async fn check_every_order(router: &axum::Router, known: &[Known]) {
    type Select = fn(&Known) -> bool;
    let filters: [(&str, Select); 6] = [
        ("", |event| !event.canceled),
        ("&city=LYON", |event| {
            !event.canceled && event.city == "Lyon"
        }),
        ("&q=jazz", |event| {
            !event.canceled && event.description.contains("jazz")
        }),
        ("&include_canceled=true", |_| true),
        (
            "&from=2030-05-02T00:00:00Z&to=2030-05-03T20:00:00Z",
            |event| {
                !event.canceled
                    && event.starts_at.as_str() >= "2030-05-02T00:00:00Z"
                    && event.starts_at.as_str() <= "2030-05-03T20:00:00Z"
            },
        ),
        ("&country=fr&venue=halle%20tony%20garnier", |event| {
            !event.canceled
        }),
    ];
    let per_page = 2;
    for sort in [
        vec!["date"],
        vec!["name"],
        vec!["date", "name"],
        vec!["name", "date"],
    ] {
        for (filter, select) in &filters {
            let pages = known.len().div_ceil(per_page) + 1;
            for page in 1..=pages {
                let uri = format!(
                    "/v1/events?sort={}&per_page={per_page}&page={page}{filter}",
                    sort.join(",")
                );
                let answer = get(router, &uri).await;
                let ids: Vec<String> = answer.body["events"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{uri}: {}", answer.text))
                    .iter()
                    .map(|event| event["event_id"].as_str().unwrap().to_string())
                    .collect();
                let (want, total) = expected(known, &sort, select, page, per_page);
                assert_eq!(
                    (ids, answer.body["total"].as_u64()),
                    (want, Some(total as u64)),
                    "{uri}"
                );
            }
        }
    }
}

/// The index keeps each event's filters and sort keys: an event changed, canceled or
/// added after a search is found as it now is, in every order, ties broken by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_follows_changes_in_every_sort_order() {
    let discovery = Discovery::sharded(config(), 2);
    let router = discovery.router();
    let mut known = Vec::new();
    // Names equal but for case, dates shared by several, accents past `z`.
    let events = [
        ("beta", "Lyon", "2030-05-02T20:00:00Z", "jazz evening"),
        ("Beta", "Paris", "2030-05-01T20:00:00Z", "rock evening"),
        ("alpha", "Lyon", "2030-05-02T20:00:00Z", "jazz matinee"),
        ("Été", "Lyon", "2030-05-03T20:00:00Z", "rock matinee"),
        ("gamma", "Paris", "2030-05-02T20:00:00Z", "jazz night"),
        ("ALPHA", "Lyon", "2030-05-04T20:00:00Z", "rock night"),
    ];
    let body = |name: &str, city: &str, starts_at: &str, description: &str| {
        let mut body = event_body(name, 2, 300);
        body["city"] = json!(city);
        body["starts_at"] = json!(starts_at);
        body["description"] = json!(description);
        body
    };
    let id_of = |event: &str| event[3..].parse::<u64>().unwrap();
    for (name, city, starts_at, description) in events {
        let event = create_event(&router, body(name, city, starts_at, description)).await;
        known.push(Known {
            id: id_of(&event),
            name: name.into(),
            city: city.into(),
            starts_at: starts_at.into(),
            description: description.into(),
            canceled: false,
        });
    }
    check_every_order(&router, &known).await;

    // Renamed and moved; described anew; canceled; added (tied with others).
    let patch = |event: u64, body: Value| {
        let router = router.clone();
        async move {
            let patched = call(
                &router,
                Method::PATCH,
                &format!("/v1/admin/events/ev_{event}"),
                Some(ADMIN),
                Some(body),
            )
            .await;
            assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
        }
    };
    patch(
        known[2].id,
        json!({"name": "Zulu", "starts_at": "2030-04-30T20:00:00Z"}),
    )
    .await;
    known[2].name = "Zulu".into();
    known[2].starts_at = "2030-04-30T20:00:00Z".into();
    patch(known[1].id, json!({"description": "jazz at last"})).await;
    known[1].description = "jazz at last".into();
    let canceled = call(
        &router,
        Method::DELETE,
        &format!("/v1/admin/events/ev_{}", known[0].id),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(canceled.status, StatusCode::OK, "{}", canceled.text);
    known[0].canceled = true;
    let added = create_event(
        &router,
        body("beta", "Lyon", "2030-05-01T20:00:00Z", "jazz encore"),
    )
    .await;
    known.push(Known {
        id: id_of(&added),
        name: "beta".into(),
        city: "Lyon".into(),
        starts_at: "2030-05-01T20:00:00Z".into(),
        description: "jazz encore".into(),
        canceled: false,
    });
    check_every_order(&router, &known).await;

    // A page far past the end is empty and still counts everything.
    let far = get(&router, "/v1/events?sort=name&page=4000000000&per_page=100").await;
    assert_eq!(
        (far.body["events"].clone(), far.body["total"].clone()),
        (json!([]), json!(6)),
        "{}",
        far.text
    );
}

/// Titles by place: the shows' places come from the venues that pass when those hold
/// fewer events than the shows to look at, else show by show; both answer alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn titles_by_place_count_the_shows_there_either_way() {
    let discovery = Discovery::start(config());
    let router = discovery.router();
    let venue = |name: &str, city: &str, postal: &str, lat: f64, lng: f64| {
        let router = router.clone();
        let body = venue_body(name, city, postal, lat, lng);
        async move {
            make(&router, ADMIN, "/v1/admin/venues", body).await["venue_id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let paris = venue("Olympia", "Paris", "75009", 48.8703, 2.3286).await;
    let lyon = venue("Halle Tony Garnier", "Lyon", "69007", 45.7640, 4.8357).await;
    let title = |name: &str| {
        let router = router.clone();
        let body = json!({"name": name});
        async move {
            make(&router, ADMIN, "/v1/admin/titles", body).await["title_id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let (dune, alien) = (title("Dune").await, title("Alien").await);
    for (venue, title, starts_at) in [
        (&paris, Some(&dune), "2030-05-01T18:00:00Z"),
        (&lyon, Some(&dune), "2030-05-03T20:00:00Z"),
        (&lyon, Some(&dune), "2030-05-02T20:00:00Z"),
        (&lyon, Some(&alien), "2030-05-04T20:00:00Z"),
        (&lyon, Some(&alien), "2030-05-05T20:00:00Z"),
        (&lyon, None, "2030-05-06T20:00:00Z"),
    ] {
        create_event(
            &router,
            show(venue, "Main", title.map(String::as_str), "Show", starts_at),
        )
        .await;
    }
    let summary = |answer: &Answer| -> Vec<(String, u64, String, Option<f64>)> {
        answer.body["titles"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", answer.text))
            .iter()
            .map(|title| {
                (
                    title["name"].as_str().unwrap().to_string(),
                    title["shows"].as_u64().unwrap(),
                    title["next_show_at"].as_str().unwrap().to_string(),
                    title["distance_km"].as_f64(),
                )
            })
            .collect()
    };
    // Paris: one event there, five shows to look at (from the venue).
    let near_paris = get(&router, "/v1/titles?lat=48.8703&lng=2.3286&radius_km=10").await;
    assert_eq!(
        summary(&near_paris),
        [("Dune".into(), 1, "2030-05-01T18:00:00Z".into(), Some(0.0))]
    );
    let in_75009 = get(&router, "/v1/titles?postal_code=75009").await;
    assert_eq!(
        summary(&in_75009),
        [("Dune".into(), 1, "2030-05-01T18:00:00Z".into(), None)]
    );
    // Lyon: five events there, three shows of Dune to look at (show by show).
    let dune_in_lyon = get(
        &router,
        "/v1/titles?q=dune&lat=45.764&lng=4.8357&radius_km=10",
    )
    .await;
    assert_eq!(
        summary(&dune_in_lyon),
        [("Dune".into(), 2, "2030-05-02T20:00:00Z".into(), Some(0.0))]
    );
    let in_69007 = get(&router, "/v1/titles?postal_code=69007&sort=name").await;
    assert_eq!(
        summary(&in_69007),
        [
            ("Alien".into(), 2, "2030-05-04T20:00:00Z".into(), None),
            ("Dune".into(), 2, "2030-05-02T20:00:00Z".into(), None)
        ]
    );
}
