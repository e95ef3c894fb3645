//! `boxoffice serve` and `boxoffice token` as a user runs them: the real binary on a
//! temporary data directory and a free port; stopped with SIGTERM and started again on the
//! same data.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use boxoffice_system_tests::default_config as config;

pub(crate) fn boxoffice() -> Command {
    let mut command = Command::new(boxoffice_system_tests::boxoffice_bin());
    command
        .arg("--config")
        .arg(config())
        // The suite runs on the demo secrets of config/default.toml: development mode.
        .arg("--dev")
        .env("RUST_LOG", "warn")
        .env("BOXOFFICE_RATE_LIMIT_ENABLED", "false");
    command
}

/// Starts `serve` and returns it with the address it printed once ready.
pub(crate) fn serve(data_dir: &std::path::Path) -> (Child, String) {
    serve_with(boxoffice(), data_dir)
}

pub(crate) fn serve_with(mut command: Command, data_dir: &std::path::Path) -> (Child, String) {
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("boxoffice serve starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let address = loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break None;
        }
        if let Some(address) = line.trim().strip_prefix("listening on http://") {
            break Some(address.to_string());
        }
    };
    match address {
        Some(address) => (child, address),
        None => panic!("serve exited before it was ready: {:?}", child.wait()),
    }
}

/// SIGTERM, then the exit status (a graceful stop exits 0).
pub(crate) fn stop(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        child.wait().unwrap().success(),
        "serve did not stop cleanly"
    );
}

/// One HTTP/1.1 request; returns the status and the body.
pub(crate) fn http(
    address: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(address).unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    if let Some(bearer) = bearer {
        request.push_str(&format!("Authorization: Bearer {bearer}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let (head, rest) = response.split_once("\r\n\r\n").expect("a header block");
    let text = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(rest)
    } else {
        rest.to_string()
    };
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

fn unchunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        body.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
    body
}

/// Creates event `ev_0` on a fresh `serve`: one row of `seats` Gold seats (`A-1-1`...).
fn create_row_event(address: &str, seats: u32) {
    let event = format!(
        r#"{{"name": "Serve", "city": "Lyon", "country": "FR", "venue": "Halle", "starts_at": "2030-05-01T20:00:00Z",
        "categories": [{{"name": "Gold", "price_cents": 100}}],
        "seating": {{"sections": [{{"name": "A", "rows": [{{"label": "1", "seats": {seats}, "category": "Gold"}}]}}]}}}}"#
    );
    let (status, created) = http(
        address,
        "POST",
        "/v1/admin/events",
        Some("demo-admin-key"),
        Some(&event),
    );
    assert_eq!(
        (status, created["event_id"].as_str()),
        (201, Some("ev_0")),
        "{created}"
    );
}

/// A user token for `user`, as `boxoffice token` mints it.
fn token(user: &str) -> String {
    let output = boxoffice()
        .args(["token", "--user", user])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[test]
fn serve_answers_stops_gracefully_and_keeps_its_data() {
    let data_dir = tempfile::tempdir().unwrap();
    let token = token("alice");
    assert_eq!(token.split('.').count(), 3, "a JWT");

    let (child, address) = serve(data_dir.path());
    assert_eq!(http(&address, "GET", "/healthz", None, None).0, 200);
    create_row_event(&address, 3);
    let (status, held) = http(
        &address,
        "POST",
        "/v1/events/ev_0/holds",
        Some(&token),
        Some(r#"{"seats": ["A-1-2"]}"#),
    );
    assert_eq!(status, 201, "{held}");
    let (status, engine) = http(
        &address,
        "GET",
        "/v1/admin/engine",
        Some("demo-operator-key"),
        None,
    );
    assert_eq!(
        (status, engine["role"].as_str()),
        (200, Some("primary")),
        "{engine}"
    );
    stop(child);

    let (child, address) = serve(data_dir.path());
    let (_, map) = http(&address, "GET", "/v1/events/ev_0/seats", None, None);
    let statuses: Vec<&str> = map["sections"][0]["rows"][0]["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|seat| seat["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["free", "held", "free"]);
    let (status, hold) = http(
        &address,
        "GET",
        &format!("/v1/holds/{}", held["hold_id"].as_str().unwrap()),
        Some(&token),
        None,
    );
    assert_eq!((status, hold["status"].as_str()), (200, Some("held")));
    stop(child);
}

/// Production is not development: without `--dev` the demo secrets stop start-up, each
/// one named; with real secrets it serves, and the development-only token endpoint does
/// not exist.
#[test]
fn production_refuses_demo_secrets_and_has_no_demo_endpoint() {
    let data_dir = tempfile::tempdir().unwrap();
    let dir = data_dir.path().to_str().unwrap();
    for args in [
        ["serve", "--data-dir", dir],
        ["engine", "--data-dir", dir],
        ["ingress", "--listen", "127.0.0.1:0"],
    ] {
        let output = Command::new(boxoffice_system_tests::boxoffice_bin())
            .arg("--config")
            .arg(config())
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        check_refused(&output);
    }
    assert!(
        std::fs::read_dir(data_dir.path()).unwrap().next().is_none(),
        "a refused start writes nothing"
    );

    // A production configuration: every secret set, no --dev.
    let text = std::fs::read_to_string(config())
        .unwrap()
        .replace("demo-operator-key", "prod-operator-key-0b7f")
        .replace("demo-user-secret", "prod-user-secret-91ac")
        .replace("demo-admin-key", "prod-admin-key-44d2")
        .replace("demo-ticket-secret", "prod-ticket-secret-7e13")
        .replace("demo-pseudonym-key", "prod-pseudonym-key-5c1e");
    let production = data_dir.path().join("production.toml");
    std::fs::write(&production, text).unwrap();
    let mut command = Command::new(boxoffice_system_tests::boxoffice_bin());
    command
        .arg("--config")
        .arg(&production)
        .env("RUST_LOG", "warn");
    let (child, address) = serve_with(command, &data_dir.path().join("data"));
    let (status, body) = http(
        &address,
        "POST",
        "/v1/demo/tokens",
        None,
        Some(r#"{"user":"alice"}"#),
    );
    assert_eq!(status, 404, "{body}");
    let (status, body) = http(
        &address,
        "GET",
        "/v1/admin/events",
        Some("prod-admin-key-44d2"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = http(
        &address,
        "GET",
        "/v1/admin/events",
        Some("demo-admin-key"),
        None,
    );
    assert_eq!(status, 401, "the demo key opens nothing in production");
    stop(child);
}

fn check_refused(output: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for key in [
        "auth.operator_key",
        "auth.user_token_secret",
        "auth.tenants.admin_key",
        "engine.ticket_secret",
        "privacy.pseudonym_key",
    ] {
        assert!(stderr.contains(key), "{key} named in: {stderr}");
    }
    assert!(stderr.contains("--dev"), "{stderr}");
}

/// The binary runs from any directory: the defaults are built in, the environment
/// overrides them, and `boxoffice config` shows the result with every secret masked.
#[test]
fn the_binary_runs_from_anywhere_and_shows_its_configuration() {
    let elsewhere = tempfile::tempdir().unwrap();
    let output = Command::new(boxoffice_system_tests::boxoffice_bin())
        .current_dir(elsewhere.path())
        .arg("config")
        .env("BOXOFFICE_ENGINE_CONFIRM_GRACE_MS", "1234")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(shown.contains("confirm_grace_ms = 1234"), "{shown}");
    for secret in [
        "demo-operator-key",
        "demo-user-secret",
        "demo-admin-key",
        "demo-ticket-secret",
        "demo-pseudonym-key",
    ] {
        assert!(!shown.contains(secret), "{secret} in:\n{shown}");
    }

    let mut command = Command::new(boxoffice_system_tests::boxoffice_bin());
    command
        .current_dir(elsewhere.path())
        .arg("--dev")
        .env("RUST_LOG", "warn");
    let (child, address) = serve_with(command, &elsewhere.path().join("data"));
    let (status, _) = http(&address, "GET", "/healthz", None, None);
    assert_eq!(status, 200);
    stop(child);
}

/// `log.segment_size_bytes` reaches the logs: with small record files, the requests and
/// outcomes logs each roll over to several, and a restart reads them all back; a size out
/// of bounds stops start-up, naming the key.
#[test]
fn the_record_files_size_is_configured_and_a_bad_one_is_refused() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut command = boxoffice();
    command.env("BOXOFFICE_LOG_SEGMENT_SIZE_BYTES", "4096");
    let (child, address) = serve_with(command, data_dir.path());
    create_row_event(&address, 60);
    let mut holds = Vec::new();
    for seat in 1..=40 {
        let (status, held) = http(
            &address,
            "POST",
            "/v1/events/ev_0/holds",
            Some(&token(&format!("buyer-{seat}"))),
            Some(&format!(r#"{{"seats": ["A-1-{seat}"]}}"#)),
        );
        assert_eq!(status, 201, "{held}");
        holds.push((seat, held["hold_id"].as_str().unwrap().to_string()));
    }
    // And the first 30 released: more records than one 4 KiB file holds.
    for (seat, hold) in holds.drain(..30) {
        let (status, released) = http(
            &address,
            "DELETE",
            &format!("/v1/holds/{hold}"),
            Some(&token(&format!("buyer-{seat}"))),
            None,
        );
        assert_eq!(status, 200, "{released}");
    }
    stop(child);
    // Every embedded log's record files, by log directory.
    let mut files: std::collections::BTreeMap<std::path::PathBuf, usize> = Default::default();
    let mut dirs = vec![data_dir.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|extension| extension == "seg") {
                *files
                    .entry(path.parent().unwrap().to_path_buf())
                    .or_default() += 1;
            }
        }
    }
    let rolled: Vec<_> = files.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        rolled.len() >= 2,
        "the requests and outcomes logs each in several files: {files:?}"
    );
    // Read back across the files: every hold is there after a restart.
    let mut command = boxoffice();
    command.env("BOXOFFICE_LOG_SEGMENT_SIZE_BYTES", "4096");
    let (child, address) = serve_with(command, data_dir.path());
    let (_, map) = http(&address, "GET", "/v1/events/ev_0/seats", None, None);
    let held = map["sections"][0]["rows"][0]["seats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|seat| seat["status"] == "held")
        .count();
    assert_eq!(held, holds.len(), "{map}");
    let (seat, hold) = &holds[holds.len() - 1];
    let (status, body) = http(
        &address,
        "GET",
        &format!("/v1/holds/{hold}"),
        Some(&token(&format!("buyer-{seat}"))),
        None,
    );
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("held")),
        "{body}"
    );
    stop(child);

    let output = boxoffice()
        .env("BOXOFFICE_LOG_SEGMENT_SIZE_BYTES", "100")
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("log.segment_size_bytes is 100; it must be from 4096 to 1073741824"),
        "{stderr}"
    );
}
