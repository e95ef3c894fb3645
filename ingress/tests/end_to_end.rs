//! End-to-end over a real socket (reqwest → axum → embedded requests log → test engine →
//! embedded outcomes log → follower → read model → answer).

mod common;

use common::*;
use engine::query::SeatStatus;
use engine::EventId;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{oneshot, Barrier};

struct Server {
    harness: Harness,
    base: String,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(harness: Harness) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(ingress::serve(
            listener,
            harness.state.clone(),
            async move {
                let _ = signal.await;
            },
        ));
        Server {
            harness,
            base: format!("http://{address}"),
            client: reqwest::Client::new(),
            shutdown: Some(shutdown),
            task,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn stop(mut self) -> Harness {
        let _ = self.shutdown.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
        self.harness
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_users_race_for_ten_seats() {
    let server = Arc::new(Server::start(Harness::start()).await);
    let (status, created) = server
        .send(
            reqwest::Method::POST,
            "/v1/admin/events",
            Some(ADMIN),
            Some(event_body("Race", 10, 300)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let event = created["event_id"].as_str().unwrap().to_string();
    let end_before = server.harness.requests_end();

    const USERS: usize = 200;
    let barrier = Arc::new(Barrier::new(USERS));
    let mut racers = Vec::new();
    for index in 0..USERS {
        let (server, barrier, event) = (Arc::clone(&server), Arc::clone(&barrier), event.clone());
        racers.push(tokio::spawn(async move {
            let seat = format!("A-1-{}", index % 10 + 1);
            let user = token(&format!("racer-{index}"));
            barrier.wait().await;
            let (status, body) = server
                .send(
                    reqwest::Method::POST,
                    &format!("/v1/events/{event}/holds"),
                    Some(&user),
                    Some(json!({"seats": [seat]})),
                )
                .await;
            (seat, status, body)
        }));
    }
    let mut granted = std::collections::BTreeMap::new();
    let mut refused = 0;
    for racer in racers {
        let (seat, status, body) = racer.await.unwrap();
        match status {
            StatusCode::CREATED => {
                assert_eq!(body["seats"], json!([seat]));
                assert!(
                    granted
                        .insert(seat, body["hold_id"].as_str().unwrap().to_string())
                        .is_none(),
                    "a seat was granted twice"
                );
            }
            StatusCode::CONFLICT => {
                assert_eq!(body["error"]["code"], "seats_unavailable", "{body}");
                assert_eq!(
                    body["error"]["details"]["seats"],
                    json!([seat]),
                    "the refusal names the seat"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((granted.len(), refused), (10, USERS - 10));
    assert_eq!(
        server.harness.requests_end(),
        end_before + USERS as u64,
        "every attempt is in the log once"
    );

    let (_, map) = server
        .send(
            reqwest::Method::GET,
            &format!("/v1/events/{event}/seats"),
            None,
            None,
        )
        .await;
    let rows = map["sections"][0]["rows"].as_array().unwrap();
    assert!(
        rows[0]["seats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|seat| seat["status"] == "held"),
        "{map}"
    );
    assert!(rows[1]["seats"]
        .as_array()
        .unwrap()
        .iter()
        .all(|seat| seat["status"] == "free"));
    let (_, detail) = server
        .send(
            reqwest::Method::GET,
            &format!("/v1/events/{event}"),
            None,
            None,
        )
        .await;
    assert_eq!(detail["availability"][0]["held"], 10);
    // The read model agrees with the engine itself (its state, replayed from the log up
    // to what the runtime applied).
    let engine = server.harness.engine_replayed();
    let engine_view: Vec<SeatStatus> = (0..20)
        .map(|seat| engine.seat_status(EventId(0), seat).unwrap())
        .collect();
    assert!(
        engine_view[..10]
            .iter()
            .all(|status| *status == SeatStatus::Held)
            && engine_view[10..]
                .iter()
                .all(|status| *status == SeatStatus::Free)
    );
    match Arc::try_unwrap(server) {
        Ok(server) => drop(server.stop().await),
        Err(_) => panic!("racers still hold the server"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_frees_seats_for_the_waitlist_in_fcfs_order() {
    let server = Server::start(Harness::start()).await;
    let post = reqwest::Method::POST;
    let (_, created) = server
        .send(
            post.clone(),
            "/v1/admin/events",
            Some(ADMIN),
            Some(event_body("Expiry", 2, 1)),
        )
        .await;
    let event = created["event_id"].as_str().unwrap().to_string();
    let holder = token("holder");
    let (status, held) = server
        .send(
            post.clone(),
            &format!("/v1/events/{event}/holds"),
            Some(&holder),
            Some(json!({"quantity": 4, "category": "Gold"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    let hold = held["hold_id"].as_str().unwrap().to_string();

    // Three waiters, in this order: two for a pair each, one for a single seat.
    let mut entries = Vec::new();
    for (name, quantity) in [("first", 2), ("second", 2), ("third", 1)] {
        let (status, body) = server
            .send(
                post.clone(),
                &format!("/v1/events/{event}/holds"),
                Some(&token(name)),
                Some(json!({"quantity": quantity, "category": "Gold", "wait": true})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        entries.push((
            token(name),
            body["waitlist_id"].as_str().unwrap().to_string(),
            body["position"].as_u64().unwrap(),
        ));
    }
    assert_eq!(
        entries.iter().map(|entry| entry.2).collect::<Vec<_>>(),
        [1, 2, 3]
    );

    // The hold expires (1 s TTL + grace); the long-polls of the first two return the offers.
    let poll = |user: String, entry: String| {
        let client = server.client.clone();
        let url = format!("{}/v1/waitlist/{entry}?wait_seconds=30", server.base);
        async move {
            client
                .get(url)
                .bearer_auth(user)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let (first, second) = tokio::join!(
        poll(entries[0].0.clone(), entries[0].1.clone()),
        poll(entries[1].0.clone(), entries[1].1.clone())
    );
    assert_eq!(
        (first["status"].as_str(), second["status"].as_str()),
        (Some("offered"), Some("offered")),
        "{first} {second}"
    );
    assert_eq!(
        first["hold"]["seats"],
        json!(["A-1-1", "A-1-2"]),
        "the earliest waiter gets the best seats"
    );
    assert_eq!(second["hold"]["seats"], json!(["A-2-1", "A-2-2"]));
    let hold_number = |body: &Value| {
        body["hold"]["hold_id"].as_str().unwrap()[2..]
            .parse::<u64>()
            .unwrap()
    };
    assert!(hold_number(&first) < hold_number(&second));
    let (_, third) = server
        .send(
            reqwest::Method::GET,
            &format!("/v1/waitlist/{}", entries[2].1),
            Some(&entries[2].0),
            None,
        )
        .await;
    assert_eq!(
        (third["status"].as_str(), third["position"].as_u64()),
        (Some("waiting"), Some(1)),
        "{third}"
    );

    // The expired hold cannot be confirmed any more, and shows as expired.
    let (status, late) = server
        .send(
            post.clone(),
            &format!("/v1/holds/{hold}/confirm"),
            Some(&holder),
            Some(json!({"payment_ref": "too-late"})),
        )
        .await;
    assert_eq!(
        (status, late["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("hold_expired")),
        "{late}"
    );
    let (_, shown) = server
        .send(
            reqwest::Method::GET,
            &format!("/v1/holds/{hold}"),
            Some(&holder),
            None,
        )
        .await;
    assert_eq!(shown["status"], "expired");

    // The first waiter lets their offer go: the third gets a seat, announced by its long-poll.
    let offered = first["hold"]["hold_id"].as_str().unwrap();
    let (status, _) = server
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/holds/{offered}"),
            Some(&entries[0].0),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let third = poll(entries[2].0.clone(), entries[2].1.clone()).await;
    assert_eq!(
        (third["status"].as_str(), third["hold"]["quantity"].as_u64()),
        (Some("offered"), Some(1)),
        "{third}"
    );
    // The second waiter confirms in time.
    let second_hold = second["hold"]["hold_id"].as_str().unwrap();
    let (status, booking) = server
        .send(
            post,
            &format!("/v1/holds/{second_hold}/confirm"),
            Some(&entries[1].0),
            Some(json!({"payment_ref": "ok"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_long_polls_and_finishes() {
    let server = Server::start(Harness::start()).await;
    let post = reqwest::Method::POST;
    let (_, created) = server
        .send(
            post.clone(),
            "/v1/admin/events",
            Some(ADMIN),
            Some(event_body("Shutdown", 1, 300)),
        )
        .await;
    let event = created["event_id"].as_str().unwrap().to_string();
    server
        .send(
            post.clone(),
            &format!("/v1/events/{event}/holds"),
            Some(&token("a")),
            Some(json!({"quantity": 2, "category": "Gold"})),
        )
        .await;
    let waiter = token("b");
    let (_, joined) = server
        .send(
            post,
            &format!("/v1/events/{event}/waitlist"),
            Some(&waiter),
            Some(json!({"quantity": 1, "category": "Gold"})),
        )
        .await;
    let entry = joined["waitlist_id"].as_str().unwrap().to_string();
    let url = format!("{}/v1/waitlist/{entry}?wait_seconds=60", server.base);
    let client = server.client.clone();
    let poll = tokio::spawn(async move {
        client
            .get(url)
            .bearer_auth(waiter)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    // Shut down only once the long-poll is registered on the server.
    while server.harness.state.long_polls() == 0 {
        tokio::task::yield_now().await;
    }
    let began = std::time::Instant::now();
    server.stop().await;
    let answered = poll.await.unwrap();
    assert_eq!(answered["status"], "waiting");
    assert!(
        began.elapsed() < std::time::Duration::from_secs(30),
        "the long-poll did not hold the shutdown for its full minute"
    );
}
