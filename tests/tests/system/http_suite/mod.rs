//! The end-to-end HTTP suite, run against real `boxoffice` processes over a real socket
//! with a real client (reqwest). One module, two deployments:
//!
//! - embedded: one `boxoffice serve` process (ingress + engine on the embedded log);
//! - Kafka: `boxoffice engine` and `boxoffice ingress` as two processes on fresh topics of
//!   the broker at `KAFKA_BOOTSTRAP`.
//!
//! The modules `serve_suite` and `kafka_mode` each instantiate [`suite!`] with their
//! way of starting a [`Service`], so both run literally the same scenarios. Every scenario
//! gets its own processes (and topics, and data directory), so "the log's end offset did not
//! move" is about that scenario's requests alone.
#![allow(dead_code, unreachable_pub)]

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Barrier;

/// Upper bound on waiting for something that must happen (a process to be ready, the log
/// to show a record). Generous: the machine running the suite may be loaded.
pub const DEADLINE: Duration = Duration::from_secs(90);

pub const ADMIN: &str = "demo-admin-key";
/// The second tenant's admin key, added to the configuration by [`Service`].
pub const OTHER_ADMIN: &str = "other-admin-key";
pub const OPERATOR: &str = "demo-operator-key";
/// A refused request: method, path, token, body, and the status and error code expected.
type BadRequestCase = (
    Method,
    String,
    String,
    Option<Value>,
    StatusCode,
    &'static str,
);
const USER_SECRET: &str = "demo-user-secret";

/// Instantiates every scenario as a `#[tokio::test]` on the services `$start` makes:
/// `$start(name: &str) -> Option<Service>` (`None` skips, which only the Kafka run does,
/// and only outside CI).
macro_rules! suite {
    ($start:path) => {
        suite!(@tests $start;
            two_hundred_users_race_for_ten_seats,
            expiry_frees_seats_for_the_waitlist_in_fcfs_order,
            idempotent_retry_returns_the_first_answer,
            cancel_and_release_free_seats,
            tenants_and_users_are_kept_apart,
            bad_input_is_refused_and_never_reaches_the_log,
        );
    };
    (@tests $start:path; $($scenario:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                if let Some(service) = $start(stringify!($scenario)).await {
                    http_suite::$scenario(&service).await;
                }
            }
        )*
    };
}

/// `config/default.toml` plus a second tenant, written into the test's directory. Everything
/// else comes from the environment (`BOXOFFICE_*`), as an operator would do it.
fn write_config(dir: &Path) -> PathBuf {
    let default = boxoffice_system_tests::default_config();
    let mut text = std::fs::read_to_string(&default)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", default.display()));
    text.push_str(&format!(
        "\n[[auth.tenants]]\nid = \"other\"\nadmin_key = \"{OTHER_ADMIN}\"\n"
    ));
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn unique_suffix() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// A `boxoffice` child process, killed (and reaped) on drop. Its stderr goes to a file in
/// the test's directory and is printed when the test fails.
struct Process {
    name: &'static str,
    child: Child,
    stderr: PathBuf,
}

impl Process {
    /// Fails the test, with the process's log, if it has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "boxoffice {} exited ({status}):\n{}",
                self.name,
                tail(&self.stderr)
            );
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- boxoffice {} (stderr, last lines) ---\n{}",
                self.name,
                tail(&self.stderr)
            );
        }
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// How a scenario sees the requests log's end offset (the next offset to be written).
enum LogProbe {
    /// `GET /v1/admin/engine` of `serve` (the engine runs in the ingress's process).
    EngineStatus,
    /// The requests topic itself.
    Kafka(requestlog::KafkaReader),
}

/// The processes of one scenario and what they share. Dropped field by field in this
/// order: the processes stop before their data directory goes.
struct Deployment {
    processes: std::sync::Mutex<Vec<Process>>,
    probe: std::sync::Mutex<LogProbe>,
    /// The environment that points a `boxoffice` process at this deployment's topics
    /// (Kafka only).
    kafka_env: Vec<(&'static str, String)>,
    config: PathBuf,
    dir: tempfile::TempDir,
}

/// One ingress of a running deployment: its HTTP address and a client.
pub struct Service {
    pub base: String,
    pub client: reqwest::Client,
    deployment: Arc<Deployment>,
}

/// The command line every child starts from: the binary, the test's configuration, fast
/// timers, and rate limits off (the race comes from one address).
fn boxoffice(config: &Path) -> Command {
    let mut command = Command::new(boxoffice_system_tests::boxoffice_bin());
    command
        .arg("--config")
        .arg(config)
        // The suite runs on the demo secrets of config/default.toml: development mode.
        .arg("--dev")
        .env("RUST_LOG", "info")
        .env("BOXOFFICE_RATE_LIMIT_ENABLED", "false")
        // A short grace, so an expired hold is refused about a second after it was made.
        .env("BOXOFFICE_ENGINE_CONFIRM_GRACE_MS", "200")
        .env("BOXOFFICE_ENGINE_TICK_INTERVAL_MS", "50")
        // The machine running the suite may be loaded: a slow outcome is not what is tested.
        .env("BOXOFFICE_HTTP_OUTCOME_TIMEOUT_MS", "30000");
    command
}

/// Starts `command`; its stdout lines come through the receiver, its stderr is kept in
/// `<dir>/<name>.log`.
fn start(
    name: &'static str,
    mut command: Command,
    dir: &Path,
) -> (Process, std::sync::mpsc::Receiver<String>) {
    let stderr = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&stderr).unwrap();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start boxoffice {name}: {error}"));
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // Keep draining after nobody listens: a closed pipe would fail the child's
            // next `println!`.
            let _ = sender.send(line.trim().to_string());
        }
    });
    (
        Process {
            name,
            child,
            stderr,
        },
        receiver,
    )
}

impl Service {
    /// `boxoffice serve` on a data directory in a tempdir.
    pub async fn serve(_test: &str) -> Option<Service> {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path());
        let mut command = boxoffice(&config);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"));
        let (mut process, listening) = start("serve", command, dir.path());
        let address = wait_line(&mut process, &listening, listening_address);
        let deployment = Deployment {
            processes: std::sync::Mutex::new(vec![process]),
            probe: std::sync::Mutex::new(LogProbe::EngineStatus),
            kafka_env: Vec::new(),
            config,
            dir,
        };
        Some(Service::ready(address, Arc::new(deployment)).await)
    }

    /// `boxoffice engine` and `boxoffice ingress` on fresh topics of the broker at
    /// `KAFKA_BOOTSTRAP`. `None` (with a note) when it is not set on a developer's machine;
    /// in CI (`CI=true`) an unset `KAFKA_BOOTSTRAP` fails the test: never skipped there.
    pub async fn kafka(test: &str) -> Option<Service> {
        Service::kafka_with_env(test, Vec::new()).await
    }

    /// [`Service::kafka`] with more environment for every process (`[payments]`, say).
    pub async fn kafka_with_env(
        test: &str,
        extra_env: Vec<(&'static str, String)>,
    ) -> Option<Service> {
        let brokers = requestlog::test_kafka_bootstrap(&format!("the Kafka run of {test}"))?;
        let unique = unique_suffix();
        let requests_topic = format!("http-suite-{test}-requests-{unique}");
        let outcomes_topic = format!("http-suite-{test}-outcomes-{unique}");
        let kafka_env = vec![
            ("BOXOFFICE_LOG_KIND", "kafka".to_string()),
            ("BOXOFFICE_KAFKA_BROKERS", brokers.clone()),
            ("BOXOFFICE_KAFKA_REQUESTS_TOPIC", requests_topic.clone()),
            ("BOXOFFICE_KAFKA_OUTCOMES_TOPIC", outcomes_topic),
            (
                "BOXOFFICE_KAFKA_TRANSACTIONAL_ID",
                format!("http-suite-{test}-{unique}"),
            ),
        ]
        .into_iter()
        .chain(extra_env)
        .collect::<Vec<_>>();
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path());
        // The probe opens (and so creates) the requests topic before either process starts.
        let probe = requestlog::KafkaLog::open(requestlog::KafkaOptions::new(
            brokers.as_str(),
            requests_topic.as_str(),
        ))
        .and_then(|log| log.reader())
        .unwrap_or_else(|error| panic!("cannot open {requests_topic} on {brokers}: {error}"));
        let mut engine = boxoffice(&config);
        engine
            .args(["engine", "--data-dir"])
            .arg(dir.path().join("engine"))
            .env("BOXOFFICE_ENGINE_OPERATOR_LISTEN", "127.0.0.1:0")
            .envs(kafka_env.iter().map(|(name, value)| (name, value)));
        let (mut engine, lines) = start("engine", engine, dir.path());
        wait_line(&mut engine, &lines, |line| {
            (line.starts_with("node ") && line.ends_with(" is primary")).then_some(())
        });
        // A primary writes its `Configure` record once it has caught up, a moment after it
        // says it is primary: the first record of these fresh topics. Scenarios that count
        // offsets start after it (it once landed between a scenario's two reads of the
        // log's end, on a loaded machine).
        let began = Instant::now();
        while requestlog::LogReader::end_offset(&probe).expect("the requests topic's end") < 1 {
            assert!(
                began.elapsed() < DEADLINE,
                "the engine wrote no Configure record"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let deployment = Arc::new(Deployment {
            processes: std::sync::Mutex::new(vec![engine]),
            probe: std::sync::Mutex::new(LogProbe::Kafka(probe)),
            kafka_env,
            config,
            dir,
        });
        let address = start_ingress(&deployment, "ingress", Vec::new());
        Some(Service::ready(address, deployment).await)
    }

    /// Starts one more `boxoffice ingress` on this deployment's topics (Kafka only) and
    /// returns it once it says it listens (its read model has caught up) and `/readyz` is 200.
    pub async fn another_ingress(&self) -> Service {
        self.another_ingress_with_env(Vec::new()).await
    }

    /// [`Service::another_ingress`] with more environment for that ingress alone, over the
    /// deployment's (its own `BOXOFFICE_KAFKA_BROKERS`, say).
    pub async fn another_ingress_with_env(
        &self,
        extra_env: Vec<(&'static str, String)>,
    ) -> Service {
        assert!(
            !self.deployment.kafka_env.is_empty(),
            "only a Kafka deployment runs ingresses of its own"
        );
        let address = start_ingress(&self.deployment, "second-ingress", extra_env);
        Service::ready(address, Arc::clone(&self.deployment)).await
    }

    /// Starts `boxoffice effects` on this deployment's topics (Kafka only); returns its
    /// listener's base URL once it printed it.
    pub fn start_effects(&self) -> String {
        let deployment = &self.deployment;
        assert!(
            !deployment.kafka_env.is_empty(),
            "only a Kafka deployment runs the effects worker on its own"
        );
        let mut command = boxoffice(&deployment.config);
        command
            .args(["effects", "--listen", "127.0.0.1:0"])
            .envs(
                deployment
                    .kafka_env
                    .iter()
                    .map(|(name, value)| (name, value)),
            )
            .env("BOXOFFICE_DATA_DIR", deployment.dir.path().join("effects"));
        let (mut process, lines) = start("effects", command, deployment.dir.path());
        let address = wait_line(&mut process, &lines, |line| {
            line.strip_prefix("effects endpoint on ")
                .map(str::to_string)
        });
        deployment.processes.lock().unwrap().push(process);
        address
    }

    /// Kills `boxoffice effects` with SIGKILL (nothing of it runs after: its store is left
    /// as the kill found it) and waits for it to be gone.
    pub fn kill_effects(&self) {
        let mut processes = self.deployment.processes.lock().unwrap();
        let index = processes
            .iter()
            .position(|process| process.name == "effects")
            .expect("an effects process was started");
        let mut process = processes.remove(index);
        // `Child::kill` is SIGKILL on Unix.
        process.child.kill().unwrap();
        process.child.wait().unwrap();
    }

    /// Polls `/readyz` until it answers 200 (bounded).
    async fn ready(address: String, deployment: Arc<Deployment>) -> Service {
        let service = Service {
            base: format!("http://{address}"),
            client: reqwest::Client::new(),
            deployment,
        };
        service.wait_ready().await;
        service
    }

    /// Polls `/readyz` until it answers 200 (bounded).
    pub async fn wait_ready(&self) {
        let began = Instant::now();
        loop {
            let (status, body) = self.get("/readyz", None).await;
            if status == StatusCode::OK {
                return;
            }
            self.assert_running();
            assert!(began.elapsed() < DEADLINE, "never ready: {status} {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fails the test if one of the processes has exited.
    pub fn assert_running(&self) {
        for process in self.deployment.processes.lock().unwrap().iter_mut() {
            process.assert_running();
        }
    }

    /// The requests log's end offset: the next offset to be written.
    pub async fn requests_end(&self) -> u64 {
        let kafka_end = match &*self.deployment.probe.lock().unwrap() {
            LogProbe::Kafka(reader) => {
                Some(requestlog::LogReader::end_offset(reader).expect("the requests topic's end"))
            }
            LogProbe::EngineStatus => None,
        };
        if let Some(end) = kafka_end {
            return end;
        }
        let (status, body) = self.get("/v1/admin/engine", Some(OPERATOR)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["log_end_offset"].as_u64().expect("log_end_offset")
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        self.send_with(method, path, bearer, &[], body.map(|body| body.to_string()))
            .await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> (StatusCode, Value) {
        let answer = self.send(Method::GET, path, bearer, None).await;
        (answer.status, answer.body)
    }

    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let has_content_type = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !has_content_type {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                self.assert_running();
                panic!("{path}: {error}");
            }
        };
        let status = response.status();
        let log_offset = response
            .headers()
            .get("x-log-offset")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        let text = response.text().await.unwrap_or_default();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            log_offset,
        }
    }

    /// Creates an event as the `demo` tenant; returns its id.
    pub async fn create_event(&self, body: Value) -> String {
        let answer = self
            .send(Method::POST, "/v1/admin/events", Some(ADMIN), Some(body))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        answer.body["event_id"].as_str().unwrap().to_string()
    }

    /// The seat statuses of each row of section A, as strings of `f`, `h`, `b`.
    pub async fn seat_rows(&self, event: &str) -> Vec<String> {
        let (status, map) = self.get(&format!("/v1/events/{event}/seats"), None).await;
        assert_eq!(status, StatusCode::OK, "{map}");
        map["sections"][0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                row["seats"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|seat| &seat["status"].as_str().unwrap()[..1])
                    .collect()
            })
            .collect()
    }
}

/// Starts a `boxoffice ingress` on the deployment's topics, with `extra_env` over the
/// deployment's environment; returns where it listens once it said so.
fn start_ingress(
    deployment: &Deployment,
    name: &'static str,
    extra_env: Vec<(&'static str, String)>,
) -> String {
    let mut command = boxoffice(&deployment.config);
    command
        .args(["ingress", "--listen", "127.0.0.1:0"])
        .envs(
            deployment
                .kafka_env
                .iter()
                .map(|(name, value)| (name, value)),
        )
        // Its idempotency index (a slot per ingress) stays in the test's directory.
        .env("BOXOFFICE_DATA_DIR", deployment.dir.path().join("ingress"))
        // Last, so that they override (`Command::env` keeps the last value of a name).
        .envs(extra_env);
    let (mut process, listening) = start(name, command, deployment.dir.path());
    let address = wait_line(&mut process, &listening, listening_address);
    deployment.processes.lock().unwrap().push(process);
    address
}

/// `listening on http://ADDR` → `ADDR`: what `serve` and `ingress` print once ready.
fn listening_address(line: &str) -> Option<String> {
    line.strip_prefix("listening on http://")
        .map(str::to_string)
}

/// Waits (bounded) for the process to print a line `matches` accepts.
fn wait_line<T>(
    process: &mut Process,
    lines: &std::sync::mpsc::Receiver<String>,
    matches: impl Fn(&str) -> Option<T>,
) -> T {
    let began = Instant::now();
    loop {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Some(found) = matches(&line) {
                    return found;
                }
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                // Stdout closed before the line: the process is gone (or going).
                let _ = process.child.wait();
                process.assert_running();
                panic!(
                    "boxoffice {} closed its stdout before it was ready",
                    process.name
                );
            }
        }
        process.assert_running();
        assert!(
            began.elapsed() < DEADLINE,
            "boxoffice {} was not ready within {DEADLINE:?}:\n{}",
            process.name,
            tail(&process.stderr)
        );
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
    /// `X-Log-Offset`: for a write, the offset of its request in the log.
    pub log_offset: Option<i64>,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn field(&self) -> &str {
        self.body["error"]["details"]["field"]
            .as_str()
            .unwrap_or("")
    }

    /// The refusal's reason (`error.details.reason`), `""` without one.
    pub fn reason(&self) -> &str {
        self.body["error"]["details"]["reason"]
            .as_str()
            .unwrap_or("")
    }
}

pub fn token(user: &str) -> String {
    ingress::mint_user_token(USER_SECRET, user, 3600)
}

/// A reserved-seating event: section A, rows 1 and 2 of `seats_per_row` Gold seats, plus
/// a general-admission Floor pool of 50.
pub fn event_body(name: &str, seats_per_row: u32, hold_ttl_seconds: u64) -> Value {
    json!({
        "name": name,
        "description": "An evening of tests",
        "city": "Lyon",
        "country": "FR",
        "venue": "Halle Tony Garnier",
        "starts_at": "2030-05-01T20:00:00Z",
        "hold_ttl_seconds": hold_ttl_seconds,
        "max_seats_per_order": 10,
        "categories": [{"name": "Gold", "price_cents": 5000}, {"name": "Floor", "price_cents": 2000}],
        "seating": {"sections": [{"name": "A", "rows": [
            {"label": "1", "seats": seats_per_row, "category": "Gold"},
            {"label": "2", "seats": seats_per_row, "category": "Gold"}
        ]}]},
        "general_admission": [{"category": "Floor", "capacity": 50}]
    })
}

// ---------------------------------------------------------------------------------------
// The scenarios.

/// 200 users send a hold for one of the same 10 seats at once: exactly 10 are granted,
/// every other one is 409 `seats_unavailable` naming its seat, every attempt is in the log
/// once, and the seat map and availability agree.
pub async fn two_hundred_users_race_for_ten_seats(service: &Service) {
    let event = service.create_event(event_body("Race", 10, 300)).await;
    let end_before = service.requests_end().await;

    const USERS: usize = 200;
    let tokens: Vec<String> = (0..USERS)
        .map(|index| token(&format!("racer-{index}")))
        .collect();
    let barrier = Arc::new(Barrier::new(USERS));
    let attempts = tokens.iter().enumerate().map(|(index, user)| {
        let barrier = Arc::clone(&barrier);
        let event = event.clone();
        async move {
            let seat = format!("A-1-{}", index % 10 + 1);
            barrier.wait().await;
            let answer = service
                .send(
                    Method::POST,
                    &format!("/v1/events/{event}/holds"),
                    Some(user),
                    Some(json!({"seats": [seat]})),
                )
                .await;
            (seat, answer)
        }
    });
    let answers = futures_join_all(attempts).await;
    let mut granted = BTreeMap::new();
    let mut refused = 0;
    for (seat, answer) in answers {
        match answer.status {
            StatusCode::CREATED => {
                assert_eq!(answer.body["seats"], json!([seat]));
                assert!(
                    granted
                        .insert(seat, answer.body["hold_id"].as_str().unwrap().to_string())
                        .is_none(),
                    "a seat was granted twice"
                );
            }
            StatusCode::CONFLICT => {
                assert_eq!(answer.code(), "seats_unavailable", "{}", answer.text);
                assert_eq!(
                    answer.body["error"]["details"]["seats"],
                    json!([seat]),
                    "the refusal names the seat"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", answer.text),
        }
    }
    assert_eq!((granted.len(), refused), (10, USERS - 10));
    assert_eq!(
        service.requests_end().await,
        end_before + USERS as u64,
        "every attempt is in the log once"
    );
    assert_eq!(
        service.seat_rows(&event).await,
        ["hhhhhhhhhh", "ffffffffff"]
    );
    let (_, detail) = service.get(&format!("/v1/events/{event}"), None).await;
    assert_eq!(
        (
            detail["availability"][0]["held"].as_u64(),
            detail["availability"][0]["free"].as_u64()
        ),
        (Some(10), Some(10)),
        "{detail}"
    );
}

/// A hold runs out: its seats go to the waitlist in FCFS order (the long-polls return the
/// offers), confirming it after expiry + grace is 409 `hold_expired`, and a released offer
/// goes on to the next waiter who fits.
pub async fn expiry_frees_seats_for_the_waitlist_in_fcfs_order(service: &Service) {
    // The hold must outlive the three joins below (their positions assume it is still
    // held): 4 s, not 1 s, so a loaded machine's slower Kafka round trips fit in it (at
    // 1 s, a run at load average 15 expired it before the third join).
    let event = service.create_event(event_body("Expiry", 2, 4)).await;
    let holder = token("holder");
    let held = service
        .send(
            Method::POST,
            &format!("/v1/events/{event}/holds"),
            Some(&holder),
            Some(json!({"quantity": 4, "category": "Gold"})),
        )
        .await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
    let hold = held.body["hold_id"].as_str().unwrap().to_string();

    // Three waiters, in this order: two for a pair each, one for a single seat.
    let mut entries = Vec::new();
    for (name, quantity) in [("first", 2), ("second", 2), ("third", 1)] {
        let joined = service
            .send(
                Method::POST,
                &format!("/v1/events/{event}/holds"),
                Some(&token(name)),
                Some(json!({"quantity": quantity, "category": "Gold", "wait": true})),
            )
            .await;
        assert_eq!(joined.status, StatusCode::ACCEPTED, "{}", joined.text);
        entries.push((
            token(name),
            joined.body["waitlist_id"].as_str().unwrap().to_string(),
            joined.body["position"].as_u64().unwrap(),
        ));
    }
    assert_eq!(
        entries.iter().map(|entry| entry.2).collect::<Vec<_>>(),
        [1, 2, 3]
    );

    // The hold expires (4 s TTL); the long-polls of the first two return the offers.
    let poll = |user: &str, entry: &str| {
        let path = format!("/v1/waitlist/{entry}?wait_seconds=30");
        let user = user.to_string();
        async move { service.get(&path, Some(&user)).await.1 }
    };
    let (first, second) = tokio::join!(
        poll(&entries[0].0, &entries[0].1),
        poll(&entries[1].0, &entries[1].1)
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
    let (_, third) = service
        .get(
            &format!("/v1/waitlist/{}", entries[2].1),
            Some(&entries[2].0),
        )
        .await;
    assert_eq!(
        (third["status"].as_str(), third["position"].as_u64()),
        (Some("waiting"), Some(1)),
        "{third}"
    );

    // The expired hold cannot be confirmed any more (its grace is long past: the offers were
    // made at expiry + grace), and shows as expired.
    let late = service
        .send(
            Method::POST,
            &format!("/v1/holds/{hold}/confirm"),
            Some(&holder),
            Some(json!({"payment_ref": "too-late"})),
        )
        .await;
    assert_eq!(
        (late.status, late.code()),
        (StatusCode::CONFLICT, "hold_expired"),
        "{}",
        late.text
    );
    let (_, shown) = service
        .get(&format!("/v1/holds/{hold}"), Some(&holder))
        .await;
    assert_eq!(shown["status"], "expired", "{shown}");

    // The first waiter lets their offer go: the third gets a seat, announced by its long-poll.
    let offered = first["hold"]["hold_id"].as_str().unwrap();
    let released = service
        .send(
            Method::DELETE,
            &format!("/v1/holds/{offered}"),
            Some(&entries[0].0),
            None,
        )
        .await;
    assert_eq!(released.status, StatusCode::OK, "{}", released.text);
    let third = poll(&entries[2].0, &entries[2].1).await;
    assert_eq!(
        (third["status"].as_str(), third["hold"]["quantity"].as_u64()),
        (Some("offered"), Some(1)),
        "{third}"
    );
    // The second waiter confirms in time.
    let second_hold = second["hold"]["hold_id"].as_str().unwrap();
    let booking = service
        .send(
            Method::POST,
            &format!("/v1/holds/{second_hold}/confirm"),
            Some(&entries[1].0),
            Some(json!({"payment_ref": "ok"})),
        )
        .await;
    assert_eq!(booking.status, StatusCode::CREATED, "{}", booking.text);
}

/// A retry with the same `Idempotency-Key` returns the first answer and changes nothing,
/// for holds and for confirms; the same key from another user is another request; the
/// same key with another body is 422 `idempotency_key_reused` and changes nothing.
pub async fn idempotent_retry_returns_the_first_answer(service: &Service) {
    let event = service.create_event(event_body("Retry", 5, 300)).await;
    let dave = token("dave");
    let holds = format!("/v1/events/{event}/holds");
    let body = json!({"quantity": 2, "category": "Gold"}).to_string();
    let key = [("idempotency-key", "order-42")];
    let first = service
        .send_with(Method::POST, &holds, Some(&dave), &key, Some(body.clone()))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let second = service
        .send_with(Method::POST, &holds, Some(&dave), &key, Some(body.clone()))
        .await;
    assert_eq!((second.status, &second.body), (first.status, &first.body));
    let erin = service
        .send_with(Method::POST, &holds, Some(&token("erin")), &key, Some(body))
        .await;
    assert_eq!(erin.status, StatusCode::CREATED, "{}", erin.text);
    assert_ne!(erin.body["hold_id"], first.body["hold_id"]);
    // Two holds of two: the second avoids stranding row 1's last seat (best available
    // prefers a run that fits exactly or leaves two), so it takes row 2.
    assert_eq!(
        service.seat_rows(&event).await,
        ["hhfff", "hhfff"],
        "dave's retry held nothing more"
    );

    let hold = first.body["hold_id"].as_str().unwrap();
    let confirm = format!("/v1/holds/{hold}/confirm");
    let pay = Some(json!({"payment_ref": "pay-1"}).to_string());
    let key = [("idempotency-key", "pay-42")];
    let booked = service
        .send_with(Method::POST, &confirm, Some(&dave), &key, pay.clone())
        .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text);
    let again = service
        .send_with(Method::POST, &confirm, Some(&dave), &key, pay)
        .await;
    assert_eq!((again.status, &again.body), (booked.status, &booked.body));
    // The same key with another body is another request: 422, and nothing changes.
    let other_pay = Some(json!({"payment_ref": "pay-2"}).to_string());
    let reused = service
        .send_with(Method::POST, &confirm, Some(&dave), &key, other_pay)
        .await;
    assert_eq!(
        (
            reused.status,
            reused.body["error"]["code"].as_str(),
            reused.body["error"]["details"]["reason"].as_str()
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("idempotency_key_reused"),
            Some("idempotency_key_reused")
        ),
        "{}",
        reused.text
    );
    let reused_hold = service
        .send_with(
            Method::POST,
            &holds,
            Some(&dave),
            &[("idempotency-key", "order-42")],
            Some(json!({"quantity": 1, "category": "Gold"}).to_string()),
        )
        .await;
    assert_eq!(
        reused_hold.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reused_hold.text
    );
    assert_eq!(
        service.seat_rows(&event).await,
        ["bbfff", "hhfff"],
        "a reused key held or booked nothing more"
    );
    let (_, bookings) = service.get("/v1/bookings", Some(&dave)).await;
    assert_eq!(
        bookings["bookings"].as_array().map(Vec::len),
        Some(1),
        "{bookings}"
    );
}

/// Releasing a hold and canceling a booking free their seats at once, for anyone.
pub async fn cancel_and_release_free_seats(service: &Service) {
    let event = service.create_event(event_body("Cancel", 4, 300)).await;
    let carol = token("carol");
    let holds = format!("/v1/events/{event}/holds");
    let held = service
        .send(
            Method::POST,
            &holds,
            Some(&carol),
            Some(json!({"seats": ["A-1-1", "A-1-2"]})),
        )
        .await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
    let hold = held.body["hold_id"].as_str().unwrap().to_string();
    let booked = service
        .send(
            Method::POST,
            &format!("/v1/holds/{hold}/confirm"),
            Some(&carol),
            Some(json!({"payment_ref": "p"})),
        )
        .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text);
    assert_eq!(booked.body["tickets"].as_array().map(Vec::len), Some(2));
    let other = service
        .send(
            Method::POST,
            &holds,
            Some(&carol),
            Some(json!({"seats": ["A-1-3"]})),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.text);
    assert_eq!(service.seat_rows(&event).await, ["bbhf", "ffff"]);

    // Release the hold: free at once (read-your-writes on the same ingress).
    let other_hold = other.body["hold_id"].as_str().unwrap();
    let released = service
        .send(
            Method::DELETE,
            &format!("/v1/holds/{other_hold}"),
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(released.status, StatusCode::OK, "{}", released.text);
    assert_eq!(service.seat_rows(&event).await, ["bbff", "ffff"]);
    let (_, shown) = service
        .get(&format!("/v1/holds/{other_hold}"), Some(&carol))
        .await;
    assert_eq!(shown["status"], "released", "{shown}");

    // Cancel the booking: its seats are free, and someone else can hold them.
    let booking = booked.body["booking_id"].as_str().unwrap();
    let canceled = service
        .send(
            Method::DELETE,
            &format!("/v1/bookings/{booking}"),
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(
        (canceled.status, canceled.body["status"].as_str()),
        (StatusCode::OK, Some("canceled")),
        "{}",
        canceled.text
    );
    assert_eq!(service.seat_rows(&event).await, ["ffff", "ffff"]);
    let (_, detail) = service.get(&format!("/v1/events/{event}"), None).await;
    assert_eq!(
        (
            detail["availability"][0]["free"].as_u64(),
            detail["availability"][0]["booked"].as_u64()
        ),
        (Some(8), Some(0)),
        "{detail}"
    );
    let taken = service
        .send(
            Method::POST,
            &holds,
            Some(&token("dan")),
            Some(json!({"seats": ["A-1-1", "A-1-2", "A-1-3"]})),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CREATED, "{}", taken.text);
}

/// Tenant A's admin never sees tenant B's events or attendees; a user reaching for another
/// user's hold, booking or waitlist entry gets 404; keys work only where they belong.
pub async fn tenants_and_users_are_kept_apart(service: &Service) {
    let event = service.create_event(event_body("Mine", 2, 300)).await;
    let alice = token("alice");
    let bob = token("bob");
    let holds = format!("/v1/events/{event}/holds");
    let held = service
        .send(
            Method::POST,
            &holds,
            Some(&alice),
            Some(json!({"seats": ["A-1-1"]})),
        )
        .await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
    let hold = held.body["hold_id"].as_str().unwrap().to_string();
    let booked = service
        .send(
            Method::POST,
            &format!("/v1/holds/{hold}/confirm"),
            Some(&alice),
            Some(json!({"payment_ref": "p"})),
        )
        .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text);
    let booking = booked.body["booking_id"].as_str().unwrap().to_string();
    let second = service
        .send(
            Method::POST,
            &holds,
            Some(&alice),
            Some(json!({"seats": ["A-1-2"]})),
        )
        .await;
    let second_hold = second.body["hold_id"].as_str().unwrap().to_string();
    let joined = service
        .send(
            Method::POST,
            &format!("/v1/events/{event}/waitlist"),
            Some(&alice),
            Some(json!({"quantity": 1, "category": "Gold"})),
        )
        .await;
    assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.text);
    let entry = joined.body["waitlist_id"].as_str().unwrap().to_string();

    let end = service.requests_end().await;
    let pay = Some(json!({"payment_ref": "x"}));
    let cases: Vec<BadRequestCase> = vec![
        // Another tenant's admin.
        (
            Method::GET,
            format!("/v1/admin/events/{event}"),
            OTHER_ADMIN.into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            format!("/v1/admin/events/{event}/attendees"),
            OTHER_ADMIN.into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::PATCH,
            format!("/v1/admin/events/{event}"),
            OTHER_ADMIN.into(),
            Some(json!({"name": "Theirs"})),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::DELETE,
            format!("/v1/admin/events/{event}"),
            OTHER_ADMIN.into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        // Another user.
        (
            Method::GET,
            format!("/v1/holds/{second_hold}"),
            bob.clone(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            format!("/v1/holds/{second_hold}/confirm"),
            bob.clone(),
            pay,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::DELETE,
            format!("/v1/holds/{second_hold}"),
            bob.clone(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            format!("/v1/bookings/{booking}"),
            bob.clone(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::DELETE,
            format!("/v1/bookings/{booking}"),
            bob.clone(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            format!("/v1/waitlist/{entry}"),
            bob.clone(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::DELETE,
            format!("/v1/waitlist/{entry}"),
            bob.clone(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        // Keys where they do not belong.
        (
            Method::GET,
            format!("/v1/admin/events/{event}"),
            OPERATOR.into(),
            None,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Method::GET,
            "/v1/admin/engine".into(),
            ADMIN.into(),
            None,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Method::GET,
            format!("/v1/admin/events/{event}"),
            alice.clone(),
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Method::GET,
            "/v1/bookings".into(),
            ADMIN.into(),
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Method::GET,
            "/v1/bookings".into(),
            ingress::mint_user_token("wrong-secret", "alice", 60),
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
    ];
    for (method, path, key, body, status, code) in cases {
        let answer = service.send(method.clone(), &path, Some(&key), body).await;
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{method} {path}: {}",
            answer.text
        );
    }
    assert_eq!(
        service.requests_end().await,
        end,
        "a refused request reached the log"
    );

    // Bob sees none of Alice's things; Alice's are untouched; the other tenant lists nothing.
    let (_, bob_bookings) = service.get("/v1/bookings", Some(&bob)).await;
    assert_eq!(bob_bookings["bookings"], json!([]), "{bob_bookings}");
    let (_, alice_hold) = service
        .get(&format!("/v1/holds/{second_hold}"), Some(&alice))
        .await;
    assert_eq!(alice_hold["status"], "held", "{alice_hold}");
    let (_, detail) = service.get(&format!("/v1/events/{event}"), None).await;
    assert_eq!(detail["name"], "Mine");
    let (status, attendees) = service
        .get(&format!("/v1/admin/events/{event}/attendees"), Some(ADMIN))
        .await;
    assert_eq!(status, StatusCode::OK, "{attendees}");
    assert!(attendees.to_string().contains(&booking), "{attendees}");
}

/// Every kind of bad input gets its status and error code, and nothing reaches the log: the
/// requests log's end does not move, and the next good write takes the very next offset.
pub async fn bad_input_is_refused_and_never_reaches_the_log(service: &Service) {
    let event = service.create_event(event_body("Strict", 3, 300)).await;
    let alice = token("alice");
    let holds = format!("/v1/events/{event}/holds");
    let held = service
        .send(
            Method::POST,
            &holds,
            Some(&alice),
            Some(json!({"seats": ["A-1-1"]})),
        )
        .await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
    let hold = held.body["hold_id"].as_str().unwrap().to_string();
    let end = service.requests_end().await;
    assert_eq!(
        held.log_offset,
        Some(end as i64 - 1),
        "the hold is the log's last record"
    );

    let long_key = "k".repeat(65);
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(70 * 1024));
    let created = event_body("X", 1, 300);
    let with_field = |field: &str, value: Value| {
        let mut body = created.clone();
        body[field] = value;
        Some(body.to_string())
    };
    let mut without_name = created.clone();
    without_name.as_object_mut().unwrap().remove("name");
    let admin = Some(ADMIN);
    let user = Some(alice.as_str());
    let events = "/v1/admin/events".to_string();
    type Case<'a> = (
        Method,
        String,
        Option<&'a str>,
        Vec<(&'a str, &'a str)>,
        Option<String>,
        StatusCode,
        &'a str,
        &'a str,
    );
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        (Method::POST, events.clone(), None, vec![], Some(created.to_string()), StatusCode::UNAUTHORIZED, "unauthorized", ""),
        (Method::POST, events.clone(), Some("nope"), vec![], Some(created.to_string()), StatusCode::UNAUTHORIZED, "unauthorized", ""),
        (Method::POST, events.clone(), admin, vec![], Some("{\"name\": ".into()), StatusCode::BAD_REQUEST, "bad_request", ""),
        (Method::POST, events.clone(), admin, vec![("content-type", "text/plain")], Some(created.to_string()), StatusCode::BAD_REQUEST, "bad_request", ""),
        (Method::POST, events.clone(), admin, vec![], Some(without_name.to_string()), StatusCode::BAD_REQUEST, "bad_request", "name"),
        (Method::POST, events.clone(), admin, vec![], with_field("colour", json!("red")), StatusCode::BAD_REQUEST, "bad_request", "colour"),
        (Method::POST, events.clone(), admin, vec![], with_field("starts_at", json!("soon")), StatusCode::BAD_REQUEST, "bad_request", "starts_at"),
        (Method::POST, events.clone(), admin, vec![], with_field("hold_ttl_seconds", json!(9000)), StatusCode::BAD_REQUEST, "bad_request", "hold_ttl_seconds"),
        (Method::POST, events.clone(), admin, vec![], with_field("general_admission", json!([{"category": "Gold", "capacity": 5}])), StatusCode::BAD_REQUEST, "bad_request", "general_admission[0].category"),
        (Method::POST, events.clone(), admin, vec![], Some(big), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", ""),
        (Method::POST, events.clone(), admin, vec![("idempotency-key", long_key.as_str())], Some(created.to_string()), StatusCode::BAD_REQUEST, "bad_request", "Idempotency-Key"),
        (Method::PATCH, "/v1/admin/events/ev_99".into(), admin, vec![], Some("{\"name\": \"x\"}".into()), StatusCode::NOT_FOUND, "not_found", ""),
        (Method::POST, format!("/v1/admin/events/{event}/checkin"), admin, vec![], Some("{\"code\": \"t_1_1.0123456789abcdef\"}".into()), StatusCode::NOT_FOUND, "not_found", ""),
        (Method::POST, holds.clone(), None, vec![], Some("{\"quantity\": 1}".into()), StatusCode::UNAUTHORIZED, "unauthorized", ""),
        (Method::POST, holds.clone(), Some("garbage.token.here"), vec![], Some("{\"quantity\": 1}".into()), StatusCode::UNAUTHORIZED, "unauthorized", ""),
        (Method::POST, holds.clone(), user, vec![], Some("{}".into()), StatusCode::BAD_REQUEST, "bad_request", "seats"),
        (Method::POST, holds.clone(), user, vec![], Some("{\"quantity\": 0}".into()), StatusCode::BAD_REQUEST, "bad_request", "quantity"),
        (Method::POST, holds.clone(), user, vec![], Some("{\"quantity\": \"two\"}".into()), StatusCode::BAD_REQUEST, "bad_request", "quantity"),
        (Method::POST, holds.clone(), user, vec![], Some("{\"quantity\": 500}".into()), StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded", ""),
        (Method::POST, holds.clone(), user, vec![], Some("{\"quantity\": 1, \"category\": \"Nope\"}".into()), StatusCode::BAD_REQUEST, "bad_request", "category"),
        (Method::POST, holds.clone(), user, vec![], Some("{\"seats\": [\"A-1-2\", \"A-1-2\"]}".into()), StatusCode::BAD_REQUEST, "bad_request", "seats[1]"),
        (Method::POST, holds.clone(), user, vec![], Some("{\"seats\": [\"A-9-1\", \"A-1-2\"]}".into()), StatusCode::NOT_FOUND, "not_found", ""),
        (Method::POST, "/v1/events/ev_77/holds".into(), user, vec![], Some("{\"quantity\": 1}".into()), StatusCode::NOT_FOUND, "not_found", ""),
        (Method::POST, format!("/v1/holds/{hold}/confirm"), user, vec![], Some("{\"payment_ref\": \"  \"}".into()), StatusCode::BAD_REQUEST, "bad_request", "payment_ref"),
        (Method::POST, "/v1/holds/h_9999/confirm".into(), user, vec![], Some("{\"payment_ref\": \"p\"}".into()), StatusCode::NOT_FOUND, "not_found", ""),
        (Method::DELETE, "/v1/bookings/b_0".into(), user, vec![], None, StatusCode::NOT_FOUND, "not_found", ""),
        (Method::POST, format!("/v1/events/{event}/waitlist"), user, vec![], Some("{\"quantity\": 0}".into()), StatusCode::BAD_REQUEST, "bad_request", "quantity"),
        (Method::GET, "/v1/events?per_page=101".into(), None, vec![], None, StatusCode::BAD_REQUEST, "bad_request", "per_page"),
        (Method::GET, "/v1/events/ev_0x".into(), None, vec![], None, StatusCode::NOT_FOUND, "not_found", ""),
    ];
    for (method, path, bearer, headers, body, status, code, field) in cases {
        let answer = service
            .send_with(method.clone(), &path, bearer, &headers, body)
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{method} {path}: {}",
            answer.text
        );
        if !field.is_empty() {
            assert_eq!(answer.field(), field, "{method} {path}: {}", answer.text);
        }
        assert!(
            !answer.body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .is_empty(),
            "{method} {path}: {}",
            answer.text
        );
    }
    assert_eq!(
        service.requests_end().await,
        end,
        "a refused request reached the log"
    );
    // The next good write is the very next record: nothing refused is hidden before it.
    let next = service
        .send(
            Method::POST,
            &holds,
            Some(&alice),
            Some(json!({"seats": ["A-1-2"]})),
        )
        .await;
    assert_eq!(next.status, StatusCode::CREATED, "{}", next.text);
    assert_eq!(next.log_offset, Some(end as i64));
    assert_eq!(service.requests_end().await, end + 1);
}

/// `join_all` without the `futures` crate: spawn-free, polls every future on this task.
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut pending = false;
        for (future, output) in set.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}
