//! A replay's clock and what it compares (sans-io: no sockets, no sleeps).
//!
//! A recording is a timeline: every request at its offset from the recording's start
//! (`at_us`), setup included, and the absolute times its bodies carry (a sales window,
//! `starts_at`) marked by JSON pointer. A replay maps the recorded timeline onto its own:
//! at `--speed S` the offset `t` is replayed at `t / S` after the replay's start, and an
//! absolute time `T` of a body becomes `replay start + (T - recording start) / S`, so a
//! request that came after the sales opening in the recording comes after it in the
//! replay too. At `--max-speed` requests go out as fast as they can, times move by the
//! replay's delay alone (`S = 1`), and the marked times that fall inside the recording
//! are *gates*: a request recorded at or after a gate waits until the gate's replayed
//! time has passed ([`Gates`]).
//!
//! Outcomes are compared by status, error code and body shape ([`shape_of`]): the keys of
//! the body and the lengths of its arrays, not the values (ids differ between servers).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::Answer;
use crate::setup::{parse_rfc3339_ms, rfc3339};

/// The absolute times of a `POST /v1/admin/events` body, as JSON pointers.
pub const EVENT_TIME_POINTERS: [&str; 4] = [
    "/starts_at",
    "/ends_at",
    "/sales_open_at",
    "/sales_close_at",
];

/// The pointers of [`EVENT_TIME_POINTERS`] that `body` holds.
pub fn event_time_pointers(body: &Value) -> Vec<String> {
    EVENT_TIME_POINTERS
        .iter()
        .filter(|pointer| body.pointer(pointer).is_some_and(Value::is_string))
        .map(|pointer| pointer.to_string())
        .collect()
}

/// How fast a replay runs against its recording.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Recorded offsets divided by this factor (1 = original pacing).
    Speed(f64),
    /// No pacing: as fast as the concurrency bound allows, waiting only at gates.
    Max,
}

impl Pace {
    /// The factor the recorded timeline is compressed by (1 at `Max`: only gates pace it).
    pub fn factor(self) -> f64 {
        match self {
            Pace::Speed(speed) => speed,
            Pace::Max => 1.0,
        }
    }
}

/// Maps recorded wall-clock times onto the replay's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplayClock {
    /// Wall-clock ms at which the recording's timeline starts (`at_us` 0).
    pub recorded_start_ms: u64,
    /// Wall-clock ms at which the replay's timeline starts.
    pub replay_start_ms: u64,
    pub pace: Pace,
}

impl ReplayClock {
    /// The replay's wall-clock time for a recorded one (never before the Unix epoch).
    pub fn map_ms(&self, recorded_ms: u64) -> u64 {
        let offset_ms = recorded_ms as i128 - self.recorded_start_ms as i128;
        let scaled = (offset_ms as f64 / self.pace.factor()).ceil() as i128;
        (self.replay_start_ms as i128 + scaled).clamp(0, u64::MAX as i128) as u64
    }

    /// The replay's offset (from its start) for a recorded offset.
    pub fn map_offset_us(&self, recorded_us: u64) -> u64 {
        match self.pace {
            Pace::Speed(speed) => (recorded_us as f64 / speed) as u64,
            Pace::Max => 0,
        }
    }

    /// Rewrites the RFC 3339 times at `pointers` in `body` onto the replay's clock.
    /// Pointers that name nothing, or no time, are left alone.
    pub fn rewrite_times(&self, body: &mut Value, pointers: &[String]) {
        for pointer in pointers {
            let Some(slot) = body.pointer_mut(pointer) else {
                continue;
            };
            let Some(ms) = slot.as_str().and_then(parse_rfc3339_ms) else {
                continue;
            };
            *slot = Value::String(rfc3339(self.map_ms(ms)));
        }
    }
}

/// A marked time that falls inside the recording: requests recorded at or after it must
/// reach the server after its replayed time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gate {
    /// Offset in the recording's timeline.
    pub at_us: u64,
    /// The recorded wall-clock time.
    pub recorded_ms: u64,
    /// What it is (`/sales_open_at of line 2`).
    pub what: String,
}

/// The gates of a recording, in timeline order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gates {
    gates: Vec<Gate>,
}

impl Gates {
    /// Collects the marked times of `bodies` (each with its pointers and a label) that lie
    /// between the recording's start and its last request (`end_us`).
    pub fn collect<'a>(
        recorded_start_ms: u64,
        end_us: u64,
        bodies: impl IntoIterator<Item = (&'a Value, &'a [String], String)>,
    ) -> Gates {
        let mut gates = Vec::new();
        for (body, pointers, label) in bodies {
            for pointer in pointers {
                let Some(ms) = body
                    .pointer(pointer)
                    .and_then(Value::as_str)
                    .and_then(parse_rfc3339_ms)
                else {
                    continue;
                };
                let Some(offset_ms) = ms.checked_sub(recorded_start_ms) else {
                    continue;
                };
                let at_us = offset_ms.saturating_mul(1_000);
                if at_us <= end_us {
                    gates.push(Gate {
                        at_us,
                        recorded_ms: ms,
                        what: format!("{pointer} of {label}"),
                    });
                }
            }
        }
        gates.sort_by_key(|gate| gate.at_us);
        Gates { gates }
    }

    /// The latest gate at or before the recorded offset `at_us`: the one a request
    /// recorded there must follow.
    pub fn before(&self, at_us: u64) -> Option<&Gate> {
        let passed = self.gates.partition_point(|gate| gate.at_us <= at_us);
        passed.checked_sub(1).map(|index| &self.gates[index])
    }

    pub fn len(&self) -> usize {
        self.gates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.gates.is_empty()
    }
}

/// The shape of a JSON body: object keys sorted (nested objects recursively) and array
/// lengths, no values: `{hold_id,seats[2]}`.
pub fn shape_of(body: &Value) -> String {
    match body {
        Value::Object(object) => {
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|key| match &object[key] {
                    Value::Object(_) => format!("{key}{}", shape_of(&object[key])),
                    Value::Array(items) => format!("{key}[{}]", items.len()),
                    _ => key.clone(),
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!("[{}]", items.len()),
        Value::Null => String::new(),
        _ => "value".into(),
    }
}

/// What a request was answered, as a replay compares it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: u16,
    /// `ok`, or the error's `code`.
    pub code: String,
    /// [`shape_of`] the body; `None` when the recording did not keep it (format 1).
    pub shape: Option<String>,
}

impl Outcome {
    pub fn of(answer: &Answer) -> Outcome {
        Outcome {
            status: answer.status,
            code: answer.code.clone(),
            shape: Some(shape_of(answer.body())),
        }
    }

    /// Same status and code, and the same shape when both have one.
    pub fn same_as(&self, other: &Outcome) -> bool {
        self.status == other.status
            && self.code == other.code
            && match (&self.shape, &other.shape) {
                (Some(mine), Some(theirs)) => mine == theirs,
                _ => true,
            }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} {}", self.status, self.code)?;
        if let Some(shape) = &self.shape {
            write!(formatter, " {shape}")?;
        }
        Ok(())
    }
}

/// A replayed answer that differs from the recorded one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    /// Line of the request in the recording (1-based).
    pub line: usize,
    /// `POST /v1/events/ev_0/holds` as recorded.
    pub request: String,
    pub recorded: String,
    pub replayed: String,
}

/// How many divergences a comparison keeps (the first ones by line).
pub const DIVERGENCES_KEPT: usize = 20;

/// The comparison of a replay with its recording.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Replayed requests that had a recorded answer.
    pub compared: u64,
    /// Of those, the ones answered the same.
    pub same: u64,
    /// Requests in flight at most: 1 replays in the recorded order; above 1 the figure
    /// measures how sensitive the outcomes are to order.
    pub concurrency: usize,
    /// The first divergences by line.
    pub divergences: Vec<Divergence>,
    /// `POST /v1/holds/{id}/confirm` answered 201, in the recording and in the replay.
    pub bookings_recorded: u64,
    pub bookings_replayed: u64,
    /// Gates waited at (`--max-speed`), and for how long in all.
    pub gates_waited: u64,
    pub gate_wait_ms: u64,
}

impl Comparison {
    pub fn record(&mut self, line: usize, request: String, recorded: &Outcome, replayed: &Outcome) {
        self.compared += 1;
        if recorded.same_as(replayed) {
            self.same += 1;
            return;
        }
        let divergence = Divergence {
            line,
            request,
            recorded: recorded.to_string(),
            replayed: replayed.to_string(),
        };
        let position = self
            .divergences
            .partition_point(|kept| kept.line < divergence.line);
        if position < DIVERGENCES_KEPT {
            self.divergences.insert(position, divergence);
            self.divergences.truncate(DIVERGENCES_KEPT);
        }
    }

    /// `same outcome: N of M` and the first divergences, for the terminal.
    pub fn summary(&self) -> String {
        let mut out = format!("same outcome: {} of {}", self.same, self.compared);
        if self.concurrency > 1 {
            out.push_str(&format!(
                " (concurrency {}: a measure of order sensitivity; --concurrency 1 replays in the recorded order)",
                self.concurrency
            ));
        }
        out.push('\n');
        out.push_str(&format!(
            "bookings: {} recorded, {} replayed\n",
            self.bookings_recorded, self.bookings_replayed
        ));
        if self.gates_waited > 0 {
            out.push_str(&format!(
                "waited {:.3} s at {} gate(s) (recorded times the requests after them must follow)\n",
                self.gate_wait_ms as f64 / 1_000.0,
                self.gates_waited
            ));
        }
        if !self.divergences.is_empty() {
            out.push_str("first divergences (line: request: recorded -> replayed):\n");
            for divergence in &self.divergences {
                out.push_str(&format!(
                    "  {}: {}: {} -> {}\n",
                    divergence.line, divergence.request, divergence.recorded, divergence.replayed
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DAY_MS: u64 = 86_400_000;
    const RECORDED_MS: u64 = 1_700_000_000_000;

    fn clock(pace: Pace) -> ReplayClock {
        ReplayClock {
            recorded_start_ms: RECORDED_MS,
            replay_start_ms: RECORDED_MS + DAY_MS,
            pace,
        }
    }

    #[test]
    fn times_keep_their_offset_from_the_start_at_the_recorded_pace() {
        let clock = clock(Pace::Speed(1.0));
        assert_eq!(
            clock.map_ms(RECORDED_MS + 3_000),
            RECORDED_MS + DAY_MS + 3_000
        );
        assert_eq!(clock.map_ms(RECORDED_MS - 500), RECORDED_MS + DAY_MS - 500);
        assert_eq!(clock.map_offset_us(3_000_000), 3_000_000);
    }

    #[test]
    fn times_and_offsets_shrink_together_at_a_higher_speed() {
        let clock = clock(Pace::Speed(4.0));
        // The sales opening 3 s in comes 0.75 s in, and a hold recorded 3.2 s in is sent
        // 0.8 s in: after the opening, as it was.
        assert_eq!(
            clock.map_ms(RECORDED_MS + 3_000),
            RECORDED_MS + DAY_MS + 750
        );
        assert_eq!(clock.map_offset_us(3_200_000), 800_000);
        // A time the engine rounds down never lands before its recorded order: ceil.
        assert_eq!(clock.map_ms(RECORDED_MS + 1), RECORDED_MS + DAY_MS + 1);
    }

    #[test]
    fn at_max_speed_times_move_by_the_delay_and_nothing_is_scheduled() {
        let clock = clock(Pace::Max);
        assert_eq!(
            clock.map_ms(RECORDED_MS + 3_000),
            RECORDED_MS + DAY_MS + 3_000
        );
        assert_eq!(clock.map_offset_us(3_200_000), 0);
    }

    #[test]
    fn only_the_marked_times_are_rewritten() {
        let mut body = json!({
            "name": "2023-11-14T22:13:20Z",
            "starts_at": rfc3339(RECORDED_MS + 90 * DAY_MS),
            "sales_open_at": rfc3339(RECORDED_MS + 3_000),
            "nested": {"at": rfc3339(RECORDED_MS)},
            "hold_ttl_seconds": 600,
        });
        let pointers: Vec<String> = [
            "/sales_open_at",
            "/nested/at",
            "/missing",
            "/hold_ttl_seconds",
        ]
        .map(String::from)
        .to_vec();
        clock(Pace::Speed(2.0)).rewrite_times(&mut body, &pointers);
        assert_eq!(
            body["name"], "2023-11-14T22:13:20Z",
            "a time-like string, not marked"
        );
        assert_eq!(
            body["starts_at"],
            rfc3339(RECORDED_MS + 90 * DAY_MS),
            "not marked"
        );
        assert_eq!(body["sales_open_at"], rfc3339(RECORDED_MS + DAY_MS + 1_500));
        assert_eq!(body["nested"]["at"], rfc3339(RECORDED_MS + DAY_MS));
        assert_eq!(body["hold_ttl_seconds"], 600, "a duration is no time");
    }

    #[test]
    fn event_bodies_mark_the_times_they_hold() {
        let body = json!({"starts_at": "2030-01-01T00:00:00Z", "sales_open_at": "2030-01-01T00:00:00Z", "ends_at": null});
        assert_eq!(event_time_pointers(&body), ["/starts_at", "/sales_open_at"]);
    }

    #[test]
    fn gates_are_the_marked_times_inside_the_recording() {
        let event = json!({
            "starts_at": rfc3339(RECORDED_MS + 90 * DAY_MS),
            "sales_open_at": rfc3339(RECORDED_MS + 3_000),
            "sales_close_at": rfc3339(RECORDED_MS + 10_000),
        });
        let early = json!({"sales_open_at": rfc3339(RECORDED_MS - 1_000)});
        let pointers = event_time_pointers(&event);
        let early_pointers = event_time_pointers(&early);
        let gates = Gates::collect(
            RECORDED_MS,
            20_000_000,
            [
                (&event, pointers.as_slice(), "line 2".to_string()),
                (&early, early_pointers.as_slice(), "line 3".to_string()),
            ],
        );
        assert_eq!(
            gates.len(),
            2,
            "starts_at is after the end, the early one before the start"
        );
        assert_eq!(gates.before(2_999_999), None);
        let opening = gates.before(3_000_000).unwrap();
        assert_eq!(
            (opening.at_us, opening.what.as_str()),
            (3_000_000, "/sales_open_at of line 2")
        );
        assert_eq!(gates.before(12_000_000).unwrap().at_us, 10_000_000);
    }

    #[test]
    fn shapes_keep_keys_and_lengths_not_values() {
        let hold = json!({"hold_id": "h_1", "seats": ["A-1-1", "A-1-2"], "expires_at": "x", "pool": {"category": "Floor"}});
        assert_eq!(
            shape_of(&hold),
            "{expires_at,hold_id,pool{category},seats[2]}"
        );
        let other = json!({"seats": ["B-2-7", "B-2-8"], "hold_id": "h_9", "expires_at": "y", "pool": {"category": "Upper"}});
        assert_eq!(
            shape_of(&hold),
            shape_of(&other),
            "ids and values differ, the shape does not"
        );
        assert_ne!(
            shape_of(&hold),
            shape_of(
                &json!({"hold_id": "h_1", "seats": ["A-1-1"], "expires_at": "x", "pool": {"category": "Floor"}})
            )
        );
    }

    #[test]
    fn outcomes_compare_status_code_and_shape() {
        let ok = |shape: Option<&str>| Outcome {
            status: 201,
            code: "ok".into(),
            shape: shape.map(String::from),
        };
        let closed = Outcome {
            status: 409,
            code: "sales_closed".into(),
            shape: Some("{error{code,message}}".into()),
        };
        assert!(ok(Some("{hold_id}")).same_as(&ok(Some("{hold_id}"))));
        assert!(!ok(Some("{hold_id}")).same_as(&ok(Some("{hold_id,seats[1]}"))));
        assert!(
            ok(None).same_as(&ok(Some("{hold_id}"))),
            "format 1 kept no shape"
        );
        assert!(!ok(None).same_as(&closed));
    }

    #[test]
    fn a_comparison_counts_and_keeps_the_first_divergences_by_line() {
        let recorded = Outcome {
            status: 201,
            code: "ok".into(),
            shape: None,
        };
        let refused = Outcome {
            status: 409,
            code: "sales_closed".into(),
            shape: None,
        };
        let mut comparison = Comparison::default();
        // Answers complete out of order at a higher concurrency.
        for line in (2..40).rev() {
            let replayed = if line % 2 == 0 { &refused } else { &recorded };
            comparison.record(
                line,
                format!("POST /v1/events/ev_0/holds #{line}"),
                &recorded,
                replayed,
            );
        }
        assert_eq!((comparison.same, comparison.compared), (19, 38));
        assert_eq!(comparison.divergences.len(), 19);
        assert_eq!(comparison.divergences[0].line, 2);
        assert_eq!(comparison.divergences[0].replayed, "409 sales_closed");
        let summary = comparison.summary();
        assert!(summary.starts_with("same outcome: 19 of 38\n"), "{summary}");
        assert!(
            summary.contains("  2: POST /v1/events/ev_0/holds #2: 201 ok -> 409 sales_closed"),
            "{summary}"
        );
        for line in 40..80 {
            comparison.record(line, String::new(), &recorded, &refused);
        }
        assert_eq!(comparison.divergences.len(), DIVERGENCES_KEPT);
        assert_eq!(comparison.divergences.last().unwrap().line, 40);
    }
}
