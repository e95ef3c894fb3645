//! After a run: checks through the API that nothing was sold twice and that the counts
//! add up, and (with the operator key) takes the engine's state hash so it can be
//! compared with an offline `boxoffice replay` of the same log.
//!
//! Per event:
//! - the seat map lists every seat of the layout exactly once;
//! - per category, `free + held + booked = capacity`, the capacity is the scenario's, and
//!   the seat map's counts by status equal the availability counts;
//! - against the run's own record: no seat is in two live bookings, every seat the run
//!   booked shows `booked`, booked seats per category equal the run's bookings (exact when
//!   the run was the only client and every write had a definite answer), and held seats
//!   lie between the holds certainly still alive and those possibly alive.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use crate::client::{Auth, Call, Client};
use crate::setup::{now_ms, EventLayout};
use crate::workload::Granted;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub passed: bool,
    pub checks: Vec<Check>,
    /// blake3 of every event's seat statuses and availability: equal on two servers that
    /// applied the same requests in the same order, whatever their clocks.
    pub digest: String,
    pub engine: Option<EngineStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineStatus {
    pub state_hash: String,
    pub applied_offset: Option<u64>,
    pub log_end_offset: u64,
    /// The offset the hash is of, when the server says (the engine hashes its state at idle
    /// moments, so the hash can lag `applied_offset`).
    #[serde(default)]
    pub state_hash_offset: Option<u64>,
    /// The shard these fields are of (0 in a single-shard deployment).
    #[serde(default)]
    pub shard: u32,
    /// With more than one shard: every shard's status, in shard order (each checked
    /// against a replay of its own log by `check-replay`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<EngineStatus>,
}

impl EngineStatus {
    /// The offset an offline replay must stop at to reproduce `state_hash`.
    pub fn hash_offset(&self) -> Option<u64> {
        self.state_hash_offset.or(self.applied_offset)
    }

    fn caught_up(&self) -> bool {
        self.applied_offset.map_or(0, |applied| applied + 1) >= self.log_end_offset
    }

    /// The state hash is of the last applied offset, for this shard and every listed one.
    fn settled(&self) -> bool {
        let one = |status: &EngineStatus| {
            status.caught_up()
                && status
                    .state_hash_offset
                    .is_some_and(|offset| Some(offset) == status.applied_offset)
        };
        one(self) && self.shards.iter().all(one)
    }

    /// Every shard's status to check against a replay: the listed shards, or this one.
    pub fn each_shard(&self) -> Vec<&EngineStatus> {
        if self.shards.is_empty() {
            vec![self]
        } else {
            self.shards.iter().collect()
        }
    }
}

impl Verification {
    pub fn summary(&self) -> String {
        let failed: Vec<&Check> = self.checks.iter().filter(|check| !check.passed).collect();
        let mut out = format!(
            "verification: {} ({} checks, {} failed), digest {}\n",
            if self.passed { "passed" } else { "FAILED" },
            self.checks.len(),
            failed.len(),
            short(&self.digest)
        );
        for check in failed.iter().take(20) {
            out.push_str(&format!("  FAILED {}: {}\n", check.name, check.detail));
        }
        if let Some(engine) = &self.engine {
            out.push_str(&format!(
                "engine: state_hash {} at applied_offset {:?} (log end {})\n",
                engine.state_hash, engine.applied_offset, engine.log_end_offset
            ));
        }
        out
    }

    fn push(&mut self, name: String, passed: bool, detail: String) {
        self.checks.push(Check {
            name,
            passed,
            detail,
        });
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(16)]
}

/// How the run's own record may be compared with the server.
#[derive(Clone, Copy, Debug)]
pub struct Exclusive {
    /// The run created these events and nobody else wrote to them.
    pub exclusive: bool,
    /// Confirm grace of the server, plus slack for the tick interval.
    pub expiry_slack_ms: u64,
}

impl Default for Exclusive {
    fn default() -> Self {
        Exclusive {
            exclusive: true,
            expiry_slack_ms: 5_000 + 2_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("GET {path}: HTTP {status} {code}")]
    Http {
        path: String,
        status: u16,
        code: String,
    },
    #[error("GET {path}: unexpected body: {message}")]
    Body { path: String, message: String },
    #[error("{0}")]
    Replay(String),
}

async fn get_json(client: &Client, path: &str, auth: Auth) -> Result<Value, VerifyError> {
    let answer = client.send(&Call::get(path, auth)).await;
    if answer.status != 200 {
        return Err(VerifyError::Http {
            path: path.into(),
            status: answer.status,
            code: answer.code,
        });
    }
    Ok(answer.into_body())
}

/// Per category: (capacity, free, held, booked).
type Counts = BTreeMap<String, [u64; 4]>;

/// Verifies the run's events. `granted` is the run's own record (None for a bare check).
pub async fn verify(
    client: &Client,
    events: &[EventLayout],
    granted: Option<&Granted>,
    exclusive: Exclusive,
    operator: bool,
) -> Result<Verification, VerifyError> {
    let mut verification = Verification::default();
    let mut digest = blake3::Hasher::new();
    let now = now_ms();
    for (index, layout) in events.iter().enumerate() {
        let id = &layout.event_id;
        let path = format!("/v1/events/{id}");
        let detail = get_json(client, &path, Auth::None).await?;
        let availability = parse_availability(&detail).map_err(|message| VerifyError::Body {
            path: path.clone(),
            message,
        })?;
        digest.update(id.as_bytes());
        for (category, counts) in &availability {
            digest.update(category.as_bytes());
            for count in counts {
                digest.update(&count.to_le_bytes());
            }
        }
        // Capacity and free + held + booked = capacity.
        for (category, capacity) in &layout.capacity {
            match availability.get(category) {
                Some([reported, free, held, booked]) => {
                    verification.push(
                        format!("{id} {category}: capacity"),
                        reported == capacity && free + held + booked == *capacity,
                        format!("capacity {reported} (scenario {capacity}), free {free} + held {held} + booked {booked}"),
                    );
                }
                None => verification.push(
                    format!("{id} {category}: present"),
                    false,
                    "category missing from availability".into(),
                ),
            }
        }
        // The seat map: every seat once, statuses adding up to the availability.
        let mut seat_status: Vec<Option<String>> = vec![None; layout.seats as usize];
        if layout.seats > 0 {
            let path = format!("/v1/events/{id}/seats");
            let map = get_json(client, &path, Auth::None).await?;
            let (listed, duplicates, unknown, by_category) =
                read_seat_map(layout, &map, &mut seat_status);
            for status in seat_status.iter().flatten() {
                digest.update(status.as_bytes());
            }
            verification.push(
                format!("{id}: seat map lists each seat once"),
                duplicates.is_empty() && unknown.is_empty() && listed == u64::from(layout.seats),
                format!(
                    "{listed} listed of {}, duplicates {:?}, unknown {:?}",
                    layout.seats,
                    first(&duplicates),
                    first(&unknown)
                ),
            );
            for (category, [_, free, held, booked]) in &by_category {
                let reported = availability.get(category).copied().unwrap_or_default();
                verification.push(
                    format!("{id} {category}: seat map = availability"),
                    [*free, *held, *booked] == [reported[1], reported[2], reported[3]],
                    format!(
                        "map free/held/booked {free}/{held}/{booked}, availability {}/{}/{}",
                        reported[1], reported[2], reported[3]
                    ),
                );
            }
        }
        if let Some(granted) = granted {
            check_against_run(
                &mut verification,
                index,
                layout,
                &availability,
                &seat_status,
                granted,
                exclusive,
                now,
            );
        }
    }
    verification.digest = digest.finalize().to_hex().to_string();
    if operator {
        verification.engine = Some(settled_engine_status(client).await?);
    }
    verification.passed = verification.checks.iter().all(|check| check.passed);
    Ok(verification)
}

fn first(values: &[String]) -> Vec<&String> {
    values.iter().take(5).collect()
}

fn parse_availability(detail: &Value) -> Result<Counts, String> {
    let entries = detail
        .get("availability")
        .and_then(Value::as_array)
        .ok_or("no availability array")?;
    let mut counts = Counts::new();
    for entry in entries {
        let number = |field: &str| {
            entry
                .get(field)
                .and_then(Value::as_u64)
                .ok_or(format!("availability entry without {field}"))
        };
        let category = entry
            .get("category")
            .and_then(Value::as_str)
            .ok_or("availability entry without category")?;
        counts.insert(
            category.to_string(),
            [
                number("capacity")?,
                number("free")?,
                number("held")?,
                number("booked")?,
            ],
        );
    }
    Ok(counts)
}

/// Reads a seat map into `status` (by layout index); returns (seats listed, duplicate
/// ids, ids not on the layout, counts by category).
fn read_seat_map(
    layout: &EventLayout,
    map: &Value,
    status: &mut [Option<String>],
) -> (u64, Vec<String>, Vec<String>, Counts) {
    let mut listed = 0;
    let mut duplicates = Vec::new();
    let mut unknown = Vec::new();
    let mut by_category = Counts::new();
    let seats = map
        .get("sections")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|section| {
            section
                .get("rows")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|row| {
                    row.get("seats")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                })
        });
    for seat in seats {
        listed += 1;
        let id = seat.get("id").and_then(Value::as_str).unwrap_or("");
        let seat_status = seat
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let Some(index) = layout.seat_index(id) else {
            unknown.push(id.to_string());
            continue;
        };
        let slot = &mut status[index as usize];
        if slot.is_some() {
            duplicates.push(id.to_string());
            continue;
        }
        let counts = by_category
            .entry(layout.category_of_seat(index).to_string())
            .or_default();
        match seat_status.as_str() {
            "free" => counts[1] += 1,
            "held" => counts[2] += 1,
            "booked" => counts[3] += 1,
            _ => unknown.push(format!("{id}:{seat_status}")),
        }
        *slot = Some(seat_status);
    }
    (listed, duplicates, unknown, by_category)
}

#[allow(clippy::too_many_arguments)]
fn check_against_run(
    verification: &mut Verification,
    index: usize,
    layout: &EventLayout,
    availability: &Counts,
    seat_status: &[Option<String>],
    granted: &Granted,
    exclusive: Exclusive,
    now: u64,
) {
    let id = &layout.event_id;
    // No seat in two live bookings of this run.
    let mut seen = BTreeSet::new();
    let mut double = Vec::new();
    let mut booked_by_category: BTreeMap<String, u64> = BTreeMap::new();
    let mut not_booked = Vec::new();
    for booking in granted
        .bookings
        .values()
        .filter(|booking| booking.event == index)
    {
        for &seat in &booking.seats {
            if !seen.insert(seat) {
                double.push(layout.seat_label(seat));
            }
            *booked_by_category
                .entry(layout.category_of_seat(seat).to_string())
                .or_default() += 1;
            if seat_status.get(seat as usize).and_then(Option::as_deref) != Some("booked") {
                not_booked.push(layout.seat_label(seat));
            }
        }
        if let Some((category, quantity)) = &booking.pool {
            *booked_by_category.entry(category.clone()).or_default() += u64::from(*quantity);
        }
    }
    verification.push(
        format!("{id}: no seat booked twice"),
        double.is_empty(),
        format!("seats in two bookings: {:?}", first(&double)),
    );
    verification.push(
        format!("{id}: the run's booked seats show booked"),
        not_booked.is_empty(),
        format!("not booked on the map: {:?}", first(&not_booked)),
    );
    if !exclusive.exclusive {
        return;
    }
    let mut certain_held: BTreeMap<String, u64> = BTreeMap::new();
    let mut possible_held: BTreeMap<String, u64> = BTreeMap::new();
    for hold in granted.holds.values().filter(|hold| hold.event == index) {
        let mut add = |category: &str, quantity: u64| {
            if hold.expires_at_ms > now {
                *certain_held.entry(category.to_string()).or_default() += quantity;
            }
            if hold.expires_at_ms + exclusive.expiry_slack_ms > now {
                *possible_held.entry(category.to_string()).or_default() += quantity;
            }
        };
        for &seat in &hold.seats {
            add(layout.category_of_seat(seat), 1);
        }
        if let Some((category, quantity)) = &hold.pool {
            add(category, u64::from(*quantity));
        }
    }
    // Offers to waitlist entries the run has not polled are holds it cannot know about.
    let waiters_unpolled = granted.waiters.values().any(|waiter| waiter.event == index);
    for (category, _) in &layout.capacity {
        let [_, _, held, booked] = availability.get(category).copied().unwrap_or_default();
        let ours = booked_by_category.get(category).copied().unwrap_or(0);
        let booked_ok = if granted.uncertain == 0 {
            booked == ours
        } else {
            booked >= ours
        };
        verification.push(
            format!("{id} {category}: booked = the run's bookings"),
            booked_ok,
            format!(
                "server {booked}, run {ours} ({} writes without a definite answer)",
                granted.uncertain
            ),
        );
        let low = certain_held.get(category).copied().unwrap_or(0);
        let high = possible_held.get(category).copied().unwrap_or(0);
        let held_ok = held >= low && (waiters_unpolled || granted.uncertain > 0 || held <= high);
        verification.push(
            format!("{id} {category}: held within the run's live holds"),
            held_ok,
            format!("server {held}, run: {low} certainly and {high} possibly alive"),
        );
    }
}

/// `GET /v1/admin/engine` with the operator key.
pub async fn engine_status(client: &Client) -> Result<EngineStatus, VerifyError> {
    let path = "/v1/admin/engine";
    let body = get_json(client, path, Auth::Operator).await?;
    let state_hash = body
        .get("state_hash")
        .and_then(Value::as_str)
        .ok_or(VerifyError::Body {
            path: path.into(),
            message: "no state_hash".into(),
        })?;
    let status_of = |body: &Value| EngineStatus {
        state_hash: body
            .get("state_hash")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        applied_offset: body.get("applied_offset").and_then(Value::as_u64),
        log_end_offset: body
            .get("log_end_offset")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        state_hash_offset: body.get("state_hash_offset").and_then(Value::as_u64),
        shard: body
            .get("shard")
            .and_then(Value::as_u64)
            .and_then(|shard| u32::try_from(shard).ok())
            .unwrap_or(0),
        shards: Vec::new(),
    };
    let shards: Vec<EngineStatus> = body
        .get("shards")
        .and_then(Value::as_array)
        .map(|shards| shards.iter().map(status_of).collect())
        .unwrap_or_default();
    Ok(EngineStatus {
        state_hash: state_hash.to_string(),
        // One shard lists only itself: nothing more to check.
        shards: if shards.len() > 1 { shards } else { Vec::new() },
        ..status_of(&body)
    })
}

/// How often the settling loop asks again.
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(100);
/// Without `state_hash_offset`, how long the engine must be quiet (same offset, same hash)
/// before its hash is taken as current: the runtime re-hashes after about a second idle.
const SETTLE_QUIET: std::time::Duration = std::time::Duration::from_millis(1_500);
/// Upper bound on settling; past it the last status is returned as it is.
const SETTLE_MAX: std::time::Duration = std::time::Duration::from_secs(20);

/// The engine status once its state hash is of the last applied offset: exactly when the
/// server reports `state_hash_offset`, otherwise after a quiet period.
pub async fn settled_engine_status(client: &Client) -> Result<EngineStatus, VerifyError> {
    let started = tokio::time::Instant::now();
    let mut status = engine_status(client).await?;
    let mut quiet_since = tokio::time::Instant::now();
    loop {
        let settled = match status.state_hash_offset {
            Some(_) => status.settled(),
            None => status.caught_up() && quiet_since.elapsed() >= SETTLE_QUIET,
        };
        if settled || started.elapsed() >= SETTLE_MAX {
            return Ok(status);
        }
        tokio::time::sleep(SETTLE_POLL).await;
        let next = engine_status(client).await?;
        if next.applied_offset != status.applied_offset || next.state_hash != status.state_hash {
            quiet_since = tokio::time::Instant::now();
        }
        status = next;
    }
}

/// Runs `boxoffice replay --to OFFSET` (of shard `shard`'s log, when given) on a stopped
/// server's data directory and returns the state hash it prints (`state_hash <hex>`).
pub fn offline_replay_hash(
    boxoffice: &Path,
    config: Option<&Path>,
    data_dir: &Path,
    to: Option<u64>,
    shard: Option<u32>,
) -> Result<String, VerifyError> {
    let mut command = Command::new(boxoffice);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command.arg("replay").arg("--data-dir").arg(data_dir);
    if let Some(shard) = shard {
        command.arg("--shard").arg(shard.to_string());
    }
    if let Some(to) = to {
        command.arg("--to").arg(to.to_string());
    }
    let output = command.output().map_err(|error| {
        VerifyError::Replay(format!("cannot run {}: {error}", boxoffice.display()))
    })?;
    if !output.status.success() {
        return Err(VerifyError::Replay(format!(
            "{} replay failed: {}",
            boxoffice.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    parse_replay_hash(&String::from_utf8_lossy(&output.stdout))
        .ok_or_else(|| VerifyError::Replay("no state_hash in the replay's output".into()))
}

/// The hash in `boxoffice replay` output: a `state_hash <hex>` line (or JSON field).
pub fn parse_replay_hash(output: &str) -> Option<String> {
    for line in output.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("state_hash") {
            let hash = rest
                .trim_start_matches([' ', ':', '=', '"'])
                .trim_end_matches(['"', ','])
                .trim();
            if !hash.is_empty() && hash.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                return Some(hash.to_string());
            }
        }
        if let Ok(value) = serde_json::from_str::<Value>(line) {
            if let Some(hash) = value.get("state_hash").and_then(Value::as_str) {
                return Some(hash.to_string());
            }
        }
    }
    None
}
