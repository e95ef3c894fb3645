//! The JSON-lines form of a log, one record a line, for humans and load testers: what
//! `boxoffice log export` prints and the operator endpoint `GET /v1/admin/engine/requests`
//! streams (`operator_http.rs`), one implementation for both:
//!
//! ```text
//! {"offset":0,"timestamp_ms":1700000000123,"request":{"idempotency_key":null,"command":{"CreateEvent":{...}}}}
//! {"offset":1,"timestamp_ms":1700000000124,"undecodable":"unknown record version 9"}
//! {"offset":0,"timestamp_ms":1700000000130,"outcome":{"offset":0,"time_ms":...,"result":{"Ok":...},...}}
//! {"offset":9,"timestamp_ms":1700000000131,"skipped":"frame 2 of 5 of the outcome of request 7 ..."}
//! ```
//!
//! Requests and outcomes print as their serde JSON form (enums externally tagged). An
//! outcome spans several records when it is large (`engine::wire`'s frames): its line
//! comes at the record that completes it, with that record's offset and time. Frames
//! that complete no outcome (an export that starts inside one, or an outcome cut short
//! and published again from its first frame) print as `skipped` lines.

use requestlog::{LogError, LogReader, LogRecord};
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WhichLog {
    Requests,
    Outcomes,
}

const BATCH_RECORDS: usize = 4_096;
/// A Kafka reader may stop short of the end offset (transaction markers take offsets).
const QUIET: Duration = Duration::from_secs(1);

/// Positions `reader` at `from` and returns the last offset to export: `to` or the last
/// record at this moment, whichever is first; `None` when there is nothing to export.
pub(crate) fn start(
    reader: &mut dyn LogReader,
    from: u64,
    to: Option<u64>,
) -> Result<Option<u64>, LogError> {
    let end = reader.end_offset()?;
    let Some(last) = end
        .checked_sub(1)
        .map(|last| to.map_or(last, |to| to.min(last)))
    else {
        return Ok(None);
    };
    if from > last {
        return Ok(None);
    }
    reader.seek(from)?;
    Ok(Some(last))
}

/// Writes the records from `reader`'s position through `last` as lines.
pub(crate) fn export(
    reader: &mut dyn LogReader,
    last: u64,
    log: WhichLog,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let mut lines = Lines::new(log);
    let mut quiet_since = Instant::now();
    while reader.position() <= last {
        let records = reader
            .poll(BATCH_RECORDS, Duration::from_millis(100))
            .map_err(std::io::Error::other)?;
        if records.is_empty() {
            if quiet_since.elapsed() >= QUIET {
                break;
            }
            continue;
        }
        quiet_since = Instant::now();
        for record in records.into_iter().filter(|record| record.offset <= last) {
            for line in lines.lines(&record) {
                serde_json::to_writer(&mut *out, &line)?;
                out.write_all(b"\n")?;
            }
        }
    }
    Ok(())
}

/// Turns records into JSON lines: one a request, one a complete outcome.
pub(crate) struct Lines {
    log: WhichLog,
    assembler: engine::wire::OutcomeAssembler,
}

impl Lines {
    pub(crate) fn new(log: WhichLog) -> Lines {
        Lines {
            log,
            assembler: engine::wire::OutcomeAssembler::new(),
        }
    }

    /// The record's lines: one for a request; for an outcome frame, one when it completes
    /// its outcome, and one `skipped` line for frames that complete none.
    pub(crate) fn lines(&mut self, record: &LogRecord) -> Vec<serde_json::Value> {
        let line = |key: &str, value: serde_json::Value| {
            let mut line =
                serde_json::json!({ "offset": record.offset, "timestamp_ms": record.timestamp_ms });
            line[key] = value;
            line
        };
        let value = |result: serde_json::Result<serde_json::Value>, key: &str| match result {
            Ok(value) => line(key, value),
            Err(error) => line("undecodable", error.to_string().into()),
        };
        match self.log {
            WhichLog::Requests => vec![match engine::wire::decode_request(&record.payload) {
                Ok(request) => value(serde_json::to_value(request), "request"),
                Err(reason) => line("undecodable", reason.into()),
            }],
            WhichLog::Outcomes => {
                let ignored_before = self.assembler.frames_ignored();
                let pushed = self.assembler.push(&record.payload);
                let mut lines = Vec::new();
                if self.assembler.frames_ignored() > ignored_before {
                    let completed = matches!(pushed, Ok(Some(_)));
                    let dropped = self.assembler.dropped_last();
                    let skipped = match (engine::wire::frame_header(&record.payload), dropped) {
                        // Completing an outcome drops its other copies.
                        (Ok(_), Some(copy)) if completed => format!(
                            "a copy of the outcome of request {copy} was cut short or published twice; its frames before this record make no outcome"
                        ),
                        // A first frame is never ignored itself: it dropped a copy (the
                        // one it repeats, or the oldest).
                        (Ok(header), Some(cut_short)) if header.index == 0 => format!(
                            "the outcome of request {cut_short} was cut short; frames before this record that started it are skipped (it is published again from its first frame)"
                        ),
                        (Ok(header), _) => format!(
                            "frame {} of {} of the outcome of request {} continues no outcome (the export starts inside it, or it was cut short)",
                            header.index + 1,
                            header.count,
                            header.offset
                        ),
                        (Err(reason), _) => reason,
                    };
                    lines.push(line("skipped", skipped.into()));
                }
                match pushed {
                    Ok(Some(outcome)) => {
                        lines.push(value(serde_json::to_value(outcome), "outcome"))
                    }
                    Ok(None) => {}
                    Err(reason) => lines.push(line("undecodable", reason.into())),
                }
                lines
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{Command, Effect, EventId, Outcome, Reply, Request, WaitEnd, WaiterId};

    fn lines(log: WhichLog, records: &[LogRecord]) -> Vec<String> {
        let mut lines = Lines::new(log);
        records
            .iter()
            .flat_map(|record| lines.lines(record))
            .map(|line| line.to_string())
            .collect()
    }

    #[test]
    fn lines_carry_the_decoded_request_or_the_reason() {
        let tick = LogRecord {
            offset: 3,
            timestamp_ms: 42,
            payload: engine::wire::encode_request(&Request::with_key(Command::Tick, "k")),
        };
        let garbage = LogRecord {
            offset: 4,
            timestamp_ms: 43,
            payload: vec![9, 9],
        };
        assert_eq!(
            lines(WhichLog::Requests, &[tick, garbage]),
            [
                r#"{"offset":3,"request":{"command":"Tick","idempotency_key":"k"},"timestamp_ms":42}"#,
                r#"{"offset":4,"timestamp_ms":43,"undecodable":"unknown record version 9"}"#
            ]
        );
    }

    /// An outcome over several frames prints once, at the record that completes it; frames
    /// that complete nothing say so.
    #[test]
    fn an_outcome_in_frames_is_one_line_and_torn_frames_are_skipped() {
        let big = Outcome {
            offset: 5,
            time_ms: 9,
            replayed: false,
            effects_before_reply: 0,
            idempotency: None,
            result: Ok(Reply::Ticked),
            effects: (0..30_000)
                .map(|waiter| Effect::WaitlistEnded {
                    waiter: WaiterId(waiter),
                    event: EventId(0),
                    user: format!("user-{waiter:012}").into(),
                    reason: WaitEnd::SoldOut,
                })
                .collect(),
        };
        let frames = engine::wire::encode_outcome_frames(&big);
        assert_eq!(frames.len(), 3);
        // The export starts inside the outcome, then the outcome is cut short and
        // published again.
        let payloads = [&frames[2], &frames[0], &frames[0], &frames[1], &frames[2]];
        let records: Vec<LogRecord> = payloads
            .iter()
            .zip(10..)
            .map(|(payload, offset)| LogRecord {
                offset,
                timestamp_ms: 100 + offset,
                payload: payload.to_vec(),
            })
            .collect();
        let printed = lines(WhichLog::Outcomes, &records);
        assert_eq!(printed.len(), 3, "{printed:#?}");
        assert!(printed[0].starts_with(r#"{"offset":10,"skipped":"frame 3 of 3 of the outcome of request 5 continues no outcome"#), "{}", printed[0]);
        assert!(
            printed[1]
                .starts_with(r#"{"offset":12,"skipped":"the outcome of request 5 was cut short"#),
            "{}",
            printed[1]
        );
        let whole: serde_json::Value = serde_json::from_str(&printed[2]).unwrap();
        assert_eq!(
            (
                &whole["offset"],
                &whole["timestamp_ms"],
                &whole["outcome"]["offset"]
            ),
            (&14.into(), &114.into(), &5.into())
        );
        assert_eq!(
            whole["outcome"]["effects"].as_array().map(Vec::len),
            Some(30_000)
        );
    }
}
