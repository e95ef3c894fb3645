//! Request logs: JSON lines, one request a line.
//!
//! The load tester writes its own form (a header line, then one line per request sent,
//! with its intended send time and the ids its answer created, so a replay can map them
//! to the ids a fresh server gives):
//!
//! ```text
//! {"loadgen_request_log":1,"started_at_ms":1700000000000,"scenario":"theatre"}
//! {"at_us":0,"kind":"create_event","call":{"method":"POST","path":"/v1/admin/events","auth":{"admin":"demo"},"body":{...}},"status":201,"created":{"/event_id":"ev_0"}}
//! {"at_us":2000,"kind":"hold_best","call":{...},"status":201,"created":{"/hold_id":"h_0"}}
//! ```
//!
//! `boxoffice log export` output is accepted too: lines with `offset`, `timestamp_ms` and
//! `request` (the engine's request in serde JSON) become engine records paced by their
//! timestamps; `undecodable` and `outcome` lines are skipped.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use crate::client::{Answer, Call};
use crate::scenario::Kind;

pub const FORMAT_VERSION: u64 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub loadgen_request_log: u64,
    pub started_at_ms: u64,
    #[serde(default)]
    pub scenario: String,
}

/// A request the load tester sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HttpRecord {
    /// Intended send time, microseconds after the run's start.
    pub at_us: u64,
    pub kind: Kind,
    pub call: Call,
    /// The answer's status (0: none came).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Ids the answer carried, by JSON pointer (`/hold_id` → `h_12`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub created: BTreeMap<String, String>,
}

/// A record of the engine's requests log (`boxoffice log export`).
#[derive(Clone, Debug, PartialEq)]
pub struct EngineRecord {
    pub offset: u64,
    pub timestamp_ms: u64,
    pub request: engine::Request,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Http(HttpRecord),
    Engine(EngineRecord),
}

impl Entry {
    /// Send time relative to the log's first entry, in microseconds.
    pub fn at_us(&self, first_timestamp_ms: u64) -> u64 {
        match self {
            Entry::Http(record) => record.at_us,
            Entry::Engine(record) => record.timestamp_ms.saturating_sub(first_timestamp_ms) * 1_000,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestLog {
    pub header: Option<Header>,
    /// In send order (stable by time).
    pub entries: Vec<Entry>,
    /// Lines that are not requests (outcomes, undecodable records).
    pub skipped: u64,
    pub first_timestamp_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
}

/// The JSON pointers whose ids a replay maps from the recorded run to the fresh server.
pub const ID_POINTERS: [&str; 5] = [
    "/event_id",
    "/hold_id",
    "/booking_id",
    "/waitlist_id",
    "/hold/hold_id",
];

/// The ids in an answer, by pointer.
pub fn ids_in(answer: &Answer) -> BTreeMap<String, String> {
    ID_POINTERS
        .iter()
        .filter_map(|pointer| {
            answer
                .text(pointer)
                .map(|id| (pointer.to_string(), id.to_string()))
        })
        .collect()
}

impl RequestLog {
    pub fn read(path: &Path) -> Result<RequestLog, RecordError> {
        let shown = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| RecordError::Io {
            path: shown.clone(),
            source,
        })?;
        RequestLog::parse(std::io::BufReader::new(file), &shown)
    }

    pub fn parse(reader: impl BufRead, path: &str) -> Result<RequestLog, RecordError> {
        let mut log = RequestLog::default();
        let mut first_timestamp: Option<u64> = None;
        for (number, line) in reader.lines().enumerate() {
            let line = line.map_err(|source| RecordError::Io {
                path: path.to_string(),
                source,
            })?;
            let line_error = |message: String| RecordError::Line {
                path: path.to_string(),
                line: number + 1,
                message,
            };
            if line.trim().is_empty() {
                continue;
            }
            let value: Value =
                serde_json::from_str(&line).map_err(|error| line_error(error.to_string()))?;
            if value.get("loadgen_request_log").is_some() {
                log.header = Some(
                    serde_json::from_value(value).map_err(|error| line_error(error.to_string()))?,
                );
            } else if value.get("call").is_some() {
                log.entries.push(Entry::Http(
                    serde_json::from_value(value).map_err(|error| line_error(error.to_string()))?,
                ));
            } else if let Some(request) = value.get("request") {
                let request: engine::Request = serde_json::from_value(request.clone())
                    .map_err(|error| line_error(format!("not an engine request: {error}")))?;
                let number_field = |field: &str| {
                    value
                        .get(field)
                        .and_then(Value::as_u64)
                        .ok_or_else(|| line_error(format!("no {field}")))
                };
                let record = EngineRecord {
                    offset: number_field("offset")?,
                    timestamp_ms: number_field("timestamp_ms")?,
                    request,
                };
                first_timestamp.get_or_insert(record.timestamp_ms);
                log.entries.push(Entry::Engine(record));
            } else if value.get("undecodable").is_some() || value.get("outcome").is_some() {
                log.skipped += 1;
            } else {
                return Err(line_error(
                    "neither a loadgen request nor a `boxoffice log export` record".into(),
                ));
            }
        }
        log.first_timestamp_ms = first_timestamp.unwrap_or(0);
        let first = log.first_timestamp_ms;
        // Send order; a stable sort keeps setup calls (all at 0) in the order they were made.
        log.entries.sort_by_key(|entry| entry.at_us(first));
        Ok(log)
    }
}

/// Appends records to a file as they complete. Cheap to share behind an `Arc`.
pub struct RequestLogWriter {
    out: Mutex<BufWriter<std::fs::File>>,
}

impl RequestLogWriter {
    pub fn create(path: &Path, header: &Header) -> std::io::Result<RequestLogWriter> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = BufWriter::new(std::fs::File::create(path)?);
        serde_json::to_writer(&mut out, header)?;
        out.write_all(b"\n")?;
        Ok(RequestLogWriter {
            out: Mutex::new(out),
        })
    }

    pub fn write(&self, record: &HttpRecord) -> std::io::Result<()> {
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        serde_json::to_writer(&mut *out, record)?;
        out.write_all(b"\n")
    }

    pub fn flush(&self) -> std::io::Result<()> {
        self.out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .flush()
    }
}
