//! Issue 23, "No personal data in the log or snapshots", on `boxoffice serve` as a user
//! runs it: users whose ids are e-mail addresses hold, book, wait and read their
//! notifications; the attendee export names them; then no e-mail is anywhere in the data
//! directory (logs, snapshots, read-model snapshots, idempotency index, personal-data
//! store, effects store). An erased user is `erased` in every export, before and after a
//! restart, and the engine's state hash is the same after the erasure, after a restart
//! and in an offline replay.

use super::serve::{boxoffice, http, serve_with, stop};
use std::path::Path;

const ADMIN: &str = "demo-admin-key";
const OPERATOR: &str = "demo-operator-key";

/// `serve` taking an engine snapshot after every record, so the data directory holds
/// snapshots of every state the run went through (the ingress snapshots its read model as
/// it stops).
fn serve(data_dir: &Path) -> (std::process::Child, String) {
    let mut command = boxoffice();
    command.env("BOXOFFICE_SNAPSHOT_EVERY_RECORDS", "1");
    serve_with(command, data_dir)
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// The files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    files(dir)
        .into_iter()
        .filter(|path| {
            let bytes = std::fs::read(path).unwrap_or_default();
            bytes
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        })
        .collect()
}

fn token(user: &str) -> String {
    ingress::mint_user_token("demo-user-secret", user, 3_600)
}

/// The engine's settled state hash and its offset (`GET /v1/admin/engine`): asked until
/// the engine has applied its whole log and hashed that state (it hashes at idle moments).
fn state_hash(address: &str) -> (String, u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (status, engine) = http(address, "GET", "/v1/admin/engine", Some(OPERATOR), None);
        assert_eq!(status, 200, "{engine}");
        let applied = engine["applied_offset"].as_u64();
        let settled = applied.is_some()
            && applied.map(|applied| applied + 1) == engine["log_end_offset"].as_u64()
            && engine["state_hash_offset"] == engine["applied_offset"];
        if settled {
            return (
                engine["state_hash"].as_str().unwrap().to_string(),
                applied.unwrap(),
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the engine never settled: {engine}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `boxoffice replay --to <offset>` on the stopped server's data: its state hash.
fn replayed_hash(data_dir: &Path, to: u64) -> String {
    let output = boxoffice()
        .args(["replay", "--to", &to.to_string(), "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .find_map(|line| line.strip_prefix("state_hash "))
        .unwrap_or_else(|| panic!("no state_hash in {text}"))
        .to_string()
}

fn attendees(address: &str) -> Vec<serde_json::Value> {
    let (status, body) = http(
        address,
        "GET",
        "/v1/admin/events/ev_0/attendees",
        Some(ADMIN),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["attendees"].as_array().unwrap().clone()
}

/// The attendee of `booking`: (user, identity, pseudonym).
fn attendee(address: &str, booking: &str) -> (serde_json::Value, String, String) {
    let found = attendees(address)
        .into_iter()
        .find(|attendee| attendee["booking_id"] == booking)
        .unwrap_or_else(|| panic!("{booking} is not in the export"));
    (
        found["user"].clone(),
        found["identity"].as_str().unwrap().to_string(),
        found["pseudonym"].as_str().unwrap().to_string(),
    )
}

/// Books one seat as `user`; the booking's id.
fn book(address: &str, user: &str, seat: &str) -> String {
    let token = token(user);
    let (status, held) = http(
        address,
        "POST",
        "/v1/events/ev_0/holds",
        Some(&token),
        Some(&format!(r#"{{"seats": ["{seat}"]}}"#)),
    );
    assert_eq!(status, 201, "{held}");
    let hold = held["hold_id"].as_str().unwrap();
    let (status, booked) = http(
        address,
        "POST",
        &format!("/v1/holds/{hold}/confirm"),
        Some(&token),
        Some(r#"{"payment_ref": "pay_1"}"#),
    );
    assert_eq!(status, 201, "{booked}");
    booked["booking_id"].as_str().unwrap().to_string()
}

#[test]
fn no_email_reaches_the_data_directory_and_an_erased_user_stays_erased() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    // Tags no file holds by chance, one per e-mail and one for the event's name: a
    // compressed file keeps the first occurrence of a string in its block as it is, so a
    // tag that occurs nowhere else is found wherever its e-mail is.
    let [alice_tag, bob_tag, carol_tag, event_tag] = [0; 4].map(|_| random_tag());
    let alice = format!("alice.{alice_tag}@example.org");
    let bob = format!("bob.{bob_tag}@example.org");
    let carol = format!("carol.{carol_tag}@example.org");
    let tags = [&alice_tag, &bob_tag, &carol_tag];
    let event_name = format!("Show {event_tag}");

    let (child, address) = serve(&data_dir);
    let event = format!(
        r#"{{"name": "{event_name}", "city": "Lyon", "country": "FR", "venue": "Halle", "starts_at": "2030-05-01T20:00:00Z",
        "categories": [{{"name": "Gold", "price_cents": 100}}],
        "seating": {{"sections": [{{"name": "A", "rows": [{{"label": "1", "seats": 3, "category": "Gold"}}]}}]}}}}"#
    );
    let (status, created) = http(
        &address,
        "POST",
        "/v1/admin/events",
        Some(ADMIN),
        Some(&event),
    );
    assert_eq!(
        (status, created["event_id"].as_str()),
        (201, Some("ev_0")),
        "{created}"
    );
    let alice_booking = book(&address, &alice, "A-1-1");
    let bob_booking = book(&address, &bob, "A-1-2");
    // Carol takes the last seat and releases it, then waits for one.
    let (status, held) = http(
        &address,
        "POST",
        "/v1/events/ev_0/holds",
        Some(&token(&carol)),
        Some(r#"{"seats": ["A-1-3"]}"#),
    );
    assert_eq!(status, 201, "{held}");
    let (status, released) = http(
        &address,
        "DELETE",
        &format!("/v1/holds/{}", held["hold_id"].as_str().unwrap()),
        Some(&token(&carol)),
        None,
    );
    assert!(status == 200 || status == 204, "{status} {released}");
    let (status, notifications) = http(
        &address,
        "GET",
        "/v1/me/notifications",
        Some(&token(&alice)),
        None,
    );
    assert_eq!(status, 200, "{notifications}");
    // A user's own answers name them by pseudonym, never by the e-mail.
    assert!(
        !notifications.to_string().contains(&alice_tag),
        "{notifications}"
    );

    // The export, the one place that hands user ids out, resolves them.
    let (user, identity, alice_pseudonym) = attendee(&address, &alice_booking);
    assert_eq!(
        (user, identity.as_str()),
        (serde_json::json!(alice), "known")
    );
    assert!(alice_pseudonym.starts_with("u_"), "{alice_pseudonym}");
    assert_eq!(attendee(&address, &bob_booking).0, serde_json::json!(bob));

    // Bad erasures: clear errors, nothing recorded.
    for (body, expected, reason) in [
        (r#"{}"#.to_string(), 400, "invalid_body"),
        (
            format!(r#"{{"user_id": "{alice}", "pseudonym": "{alice_pseudonym}"}}"#),
            400,
            "invalid_body",
        ),
        (
            r#"{"pseudonym": "alice@example.org"}"#.to_string(),
            400,
            "malformed_pseudonym",
        ),
        (r#"{"user_id": ""}"#.to_string(), 400, "invalid_field"),
        (
            r#"{"user_id": "nobody@example.org"}"#.to_string(),
            404,
            "unknown_user",
        ),
        (
            r#"{"pseudonym": "u_aaaaaaaaaaaaaaaaaaaaaaaa"}"#.to_string(),
            404,
            "unknown_user",
        ),
    ] {
        let (status, refused) = http(
            &address,
            "POST",
            "/v1/operator/users/erase",
            Some(OPERATOR),
            Some(&body),
        );
        assert_eq!(
            (status, refused["error"]["details"]["reason"].as_str()),
            (expected, Some(reason)),
            "{body}: {refused}"
        );
    }
    let (status, refused) = http(
        &address,
        "POST",
        "/v1/operator/users/erase",
        Some(ADMIN),
        Some(&format!(r#"{{"user_id": "{alice}"}}"#)),
    );
    assert_eq!(status, 403, "a tenant's key does not erase: {refused}");

    let (hash_before, offset_before) = state_hash(&address);
    let (status, erased) = http(
        &address,
        "POST",
        "/v1/operator/users/erase",
        Some(OPERATOR),
        Some(&format!(r#"{{"user_id": "{alice}"}}"#)),
    );
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["pseudonym"], serde_json::json!(alice_pseudonym));
    let (status, again) = http(
        &address,
        "POST",
        "/v1/operator/users/erase",
        Some(OPERATOR),
        Some(&format!(r#"{{"pseudonym": "{alice_pseudonym}"}}"#)),
    );
    assert_eq!(
        (status, again["error"]["details"]["reason"].as_str()),
        (409, Some("user_erased")),
        "{again}"
    );
    // Erased from every read: the export, and alice's own reads (she comes back as a new
    // pseudonym that has no bookings); bob is untouched.
    assert_eq!(
        attendee(&address, &alice_booking),
        (
            serde_json::Value::Null,
            "erased".to_string(),
            alice_pseudonym.clone()
        )
    );
    assert_eq!(attendee(&address, &bob_booking).1, "known");
    let (status, bookings) = http(&address, "GET", "/v1/bookings", Some(&token(&alice)), None);
    assert_eq!(status, 200, "{bookings}");
    assert_eq!(bookings["bookings"], serde_json::json!([]), "{bookings}");
    let (status, notifications) = http(
        &address,
        "GET",
        "/v1/me/notifications",
        Some(&token(&alice)),
        None,
    );
    assert_eq!(status, 200, "{notifications}");
    assert!(
        !notifications.to_string().contains(&alice_pseudonym),
        "{notifications}"
    );
    // The engine never sees an erasure: its state is what it was.
    let (status, held) = http(&address, "GET", "/v1/events/ev_0/seats", None, None);
    assert_eq!(status, 200, "{held}");
    stop(child);

    // No e-mail anywhere in the data directory (logs, engine and read-model snapshots,
    // idempotency index, personal-data store, effects store); the same search finds the
    // event's name, so it can see through the stores' files. The personal-data store is
    // in the requests log's database (its tables ride the log's commits), not apart.
    let all = files(&data_dir);
    for part in ["snapshots", "index", "requests", "outcomes", "control"] {
        assert!(
            all.iter().any(|path| path.to_string_lossy().contains(part)),
            "no {part} in {all:?}"
        );
    }
    assert!(
        !all.iter()
            .any(|path| path.to_string_lossy().contains("personal")),
        "a personal-data store apart: {all:?}"
    );
    let requests_options = all
        .iter()
        .filter(|path| {
            path.parent().is_some_and(|dir| dir.ends_with("requests"))
                && path.to_string_lossy().contains("OPTIONS-")
        })
        .map(|path| std::fs::read_to_string(path).unwrap_or_default())
        .collect::<String>();
    for table in ingress::PERSONAL_DATA_TABLES {
        assert!(
            requests_options.contains(table),
            "the requests log hosts {table}"
        );
    }
    assert!(
        !files_containing(&data_dir, &event_name).is_empty(),
        "the search finds what the logs hold"
    );
    for tag in tags {
        assert_eq!(
            files_containing(&data_dir, tag),
            Vec::<std::path::PathBuf>::new(),
            "{tag}"
        );
    }

    // A restart: the erasure holds (the control log is applied again, the key stays
    // gone), the other users resolve, and the state is the one the log gives.
    let (child, address) = serve(&data_dir);
    assert_eq!(
        attendee(&address, &alice_booking),
        (
            serde_json::Value::Null,
            "erased".to_string(),
            alice_pseudonym.clone()
        )
    );
    assert_eq!(attendee(&address, &bob_booking).0, serde_json::json!(bob));
    let (hash_after, offset_after) = state_hash(&address);
    stop(child);
    assert_eq!(replayed_hash(&data_dir, offset_before), hash_before);
    assert_eq!(replayed_hash(&data_dir, offset_after), hash_after);
    for tag in tags {
        assert!(files_containing(&data_dir, tag).is_empty(), "{tag}");
    }
}

/// 16 hexadecimal digits from the standard library's per-instance random keys.
fn random_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(0);
    format!("{:016x}", hasher.finish())
}
