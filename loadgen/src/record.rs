//! Request logs: JSON lines, one request a line.
//!
//! The load tester writes its own form, a timeline: a header line with the wall-clock
//! time the recording started, one line per request sent (setup included) with its
//! intended send time as an offset from that start, the absolute times its body carries
//! (`times`, JSON pointers: a replay moves exactly these onto its own clock), what it was
//! answered (status, error code, body shape) and the ids its answer created (a replay maps
//! them to the ids a fresh server gives), and a last line written when the run ended,
//! with the server's engine state hash when the run had the operator key:
//!
//! ```text
//! {"loadgen_request_log":2,"started_at_ms":1700000000000,"scenario":"theatre"}
//! {"at_us":1830,"kind":"create_event","call":{"method":"POST","path":"/v1/admin/events","auth":{"admin":"demo"},"body":{...}},"times":["/starts_at","/sales_open_at"],"status":201,"shape":"{event_id}","created":{"/event_id":"ev_0"}}
//! {"at_us":3004120,"kind":"hold_best","call":{...},"status":201,"shape":"{...}","created":{"/hold_id":"h_0"}}
//! {"server_log":{"offset":0,"timestamp_ms":1700000000002,"request":{"command":{"CreateEvent":{...}},...}}}
//! {"loadgen_recording_end":{"at_us":20511000,"engine":{"state_hash":"9f...","applied_offset":402,...},"server_log_records":403}}
//! ```
//!
//! With the operator key the recording also carries the server's own requests log (format
//! 3): `server_log` lines, each one line of `boxoffice log export` as the server's
//! `GET /v1/admin/engine/requests` streamed it, from offset 0 through the offset the end
//! line's state hash is of. That log holds what no HTTP client sees (the server's
//! `Configure`, `Tick` and `Promote` records, and the log's own times), so a replay of it
//! into a fresh embedded log (`loadgen replay --into-data-dir`) rebuilds the same state,
//! hash for hash; the HTTP timeline cannot.
//!
//! Format 1 (before the timeline) put setup at 0 and the load from the load's start, and
//! marked no times: it is still read, with the event bodies' four time fields taken as
//! its times.
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

/// 2: the timeline (setup included), marked times, answer shapes, the end line.
/// 3: the server's requests log (`server_log` lines).
pub const FORMAT_VERSION: u64 = 3;

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
    /// Intended send time, microseconds after the recording's start (`started_at_ms`).
    pub at_us: u64,
    pub kind: Kind,
    pub call: Call,
    /// JSON pointers of the body's absolute times (RFC 3339 strings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<String>,
    /// The answer's status (0: none came).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The error's code when the answer was not a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The answer body's [`crate::timeline::shape_of`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<String>,
    /// Ids the answer carried, by JSON pointer (`/hold_id` → `h_12`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub created: BTreeMap<String, String>,
    /// Line in the file it was read from (1-based; 0 when not read from a file).
    #[serde(skip)]
    pub line: usize,
}

impl HttpRecord {
    /// A record of `call` sent at `at_us`, answered `answer`.
    pub fn answered(at_us: u64, kind: Kind, call: Call, answer: &Answer) -> HttpRecord {
        let times = match (&call.body, kind) {
            (Some(body), Kind::CreateEvent) => crate::timeline::event_time_pointers(body),
            _ => Vec::new(),
        };
        HttpRecord {
            at_us,
            kind,
            call,
            times,
            status: Some(answer.status),
            code: (answer.code != "ok").then(|| answer.code.clone()),
            shape: Some(crate::timeline::shape_of(answer.body())),
            created: ids_in(answer),
            line: 0,
        }
    }

    /// What the recording says the request was answered, if it says.
    pub fn outcome(&self) -> Option<crate::timeline::Outcome> {
        let status = self.status?;
        Some(crate::timeline::Outcome {
            status,
            code: self.code.clone().unwrap_or_else(|| {
                if (200..300).contains(&status) {
                    "ok".into()
                } else {
                    // Format 1 kept the status only.
                    Answer::from_parts(status, Value::Null).code
                }
            }),
            shape: self.shape.clone(),
        })
    }
}

/// The recording's last line: when the run ended and the server's engine state then.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordingEnd {
    /// Offset of the run's end in the timeline.
    pub at_us: u64,
    /// The engine's state hash after the run (runs with `--verify --operator-key`): an
    /// exact replay of the server's requests log ends in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<crate::verify::EngineStatus>,
    /// How many `server_log` lines the recording holds (offsets 0 through the engine's
    /// hash offset), when it holds the server's requests log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_log_records: Option<u64>,
}

/// A record of the engine's requests log (`boxoffice log export`).
#[derive(Clone, Debug, PartialEq)]
pub struct EngineRecord {
    pub offset: u64,
    pub timestamp_ms: u64,
    pub request: engine::Request,
    /// Line in the file it was read from (1-based).
    pub line: usize,
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

    /// Line in the file it was read from.
    pub fn line(&self) -> usize {
        match self {
            Entry::Http(record) => record.line,
            Entry::Engine(record) => record.line,
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
    /// The recording's end line, when it has one (format 2).
    pub end: Option<RecordingEnd>,
    /// The server's requests log, in offset order, when the recording carries it (format 3).
    pub server_log: Vec<EngineRecord>,
    /// The first record of the server's log that was stored as undecodable (its offset and
    /// reason): such a log cannot be rebuilt exactly.
    pub server_log_undecodable: Option<(u64, String)>,
}

impl RequestLog {
    /// Wall-clock ms at which the timeline starts: the recording's start, or the first
    /// record's log time for a `boxoffice log export`.
    pub fn start_ms(&self) -> u64 {
        self.header
            .as_ref()
            .map_or(self.first_timestamp_ms, |header| header.started_at_ms)
    }

    /// The offset of the last request in the timeline.
    pub fn last_at_us(&self) -> u64 {
        self.entries
            .iter()
            .map(|entry| entry.at_us(self.first_timestamp_ms))
            .max()
            .unwrap_or(0)
    }

    /// The recording's format (1 without a header).
    pub fn format(&self) -> u64 {
        self.header
            .as_ref()
            .map_or(1, |header| header.loadgen_request_log)
    }
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
                let header: Header =
                    serde_json::from_value(value).map_err(|error| line_error(error.to_string()))?;
                if header.loadgen_request_log > FORMAT_VERSION {
                    return Err(line_error(format!(
                        "request log format {} is newer than this loadgen reads ({FORMAT_VERSION})",
                        header.loadgen_request_log
                    )));
                }
                log.header = Some(header);
            } else if let Some(end) = value.get("loadgen_recording_end") {
                log.end = Some(
                    serde_json::from_value(end.clone())
                        .map_err(|error| line_error(error.to_string()))?,
                );
            } else if value.get("call").is_some() {
                let mut record: HttpRecord =
                    serde_json::from_value(value).map_err(|error| line_error(error.to_string()))?;
                record.line = number + 1;
                if record.times.is_empty() && record.kind == Kind::CreateEvent && log.format() < 2 {
                    // Format 1 marked no times: its event bodies carry the four time fields.
                    if let Some(body) = &record.call.body {
                        record.times = crate::timeline::event_time_pointers(body);
                    }
                }
                log.entries.push(Entry::Http(record));
            } else if let Some(line) = value.get("server_log") {
                match export_line(line, number + 1).map_err(line_error)? {
                    ExportLine::Request(record) => log.server_log.push(*record),
                    ExportLine::Undecodable { offset, reason } => {
                        log.server_log_undecodable.get_or_insert((offset, reason));
                    }
                    ExportLine::Other => {
                        return Err(line_error("a server_log line holds no request".into()))
                    }
                }
            } else if value.get("request").is_some() {
                let ExportLine::Request(record) =
                    export_line(&value, number + 1).map_err(line_error)?
                else {
                    unreachable!("a line with a request is a request");
                };
                first_timestamp.get_or_insert(record.timestamp_ms);
                log.entries.push(Entry::Engine(*record));
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
        // Send order; a stable sort keeps calls recorded at the same time in file order.
        log.entries.sort_by_key(|entry| entry.at_us(first));
        Ok(log)
    }
}

/// One line of `boxoffice log export`.
enum ExportLine {
    Request(Box<EngineRecord>),
    Undecodable {
        offset: u64,
        reason: String,
    },
    /// An outcome or a skipped frame.
    Other,
}

fn export_line(value: &Value, line: usize) -> Result<ExportLine, String> {
    let number_field = |field: &str| {
        value
            .get(field)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("no {field}"))
    };
    if let Some(request) = value.get("request") {
        let request: engine::Request = serde_json::from_value(request.clone())
            .map_err(|error| format!("not an engine request: {error}"))?;
        return Ok(ExportLine::Request(Box::new(EngineRecord {
            offset: number_field("offset")?,
            timestamp_ms: number_field("timestamp_ms")?,
            request,
            line,
        })));
    }
    if let Some(reason) = value.get("undecodable") {
        return Ok(ExportLine::Undecodable {
            offset: number_field("offset")?,
            reason: reason.as_str().unwrap_or_default().to_string(),
        });
    }
    Ok(ExportLine::Other)
}

/// Why a recording's server log cannot be replayed exactly.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ServerLogError {
    #[error("the recording holds no server log (record with --operator-key so it does)")]
    Missing,
    #[error("the server's log holds an undecodable record at offset {offset} ({reason}): it cannot be rebuilt from its lines")]
    Undecodable { offset: u64, reason: String },
    #[error("the server log's record {index} has offset {found}, expected {expected}: the recording's server log is not whole")]
    Gap {
        index: usize,
        expected: u64,
        found: u64,
    },
    #[error("the recording's end says the server log has {said} records, it holds {held}: it is not whole")]
    Count { said: u64, held: u64 },
    #[error("the server log ends at offset {last:?}, the recorded state hash is of offset {hash_offset:?}")]
    NotTheHashedLog {
        last: Option<u64>,
        hash_offset: Option<u64>,
    },
}

impl RequestLog {
    /// The server's requests log and the state hash it ends in, checked whole: offsets
    /// 0, 1, 2, ... up to the offset the recorded hash is of, every record decoded.
    pub fn exact_server_log(
        &self,
    ) -> Result<(&[EngineRecord], &crate::verify::EngineStatus), ServerLogError> {
        let end = self.end.as_ref();
        let (Some(engine), Some(said)) = (
            end.and_then(|end| end.engine.as_ref()),
            end.and_then(|end| end.server_log_records),
        ) else {
            return Err(ServerLogError::Missing);
        };
        if let Some((offset, reason)) = &self.server_log_undecodable {
            return Err(ServerLogError::Undecodable {
                offset: *offset,
                reason: reason.clone(),
            });
        }
        for (index, record) in self.server_log.iter().enumerate() {
            if record.offset != index as u64 {
                return Err(ServerLogError::Gap {
                    index,
                    expected: index as u64,
                    found: record.offset,
                });
            }
        }
        let held = self.server_log.len() as u64;
        if said != held {
            return Err(ServerLogError::Count { said, held });
        }
        let last = held.checked_sub(1);
        if last != engine.hash_offset() {
            return Err(ServerLogError::NotTheHashedLog {
                last,
                hash_offset: engine.hash_offset(),
            });
        }
        Ok((&self.server_log, engine))
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

    /// Writes one line of the server's requests log (a `boxoffice log export` line, kept
    /// as the server sent it).
    pub fn write_server_log_line(&self, export_line: &str) -> std::io::Result<()> {
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        out.write_all(b"{\"server_log\":")?;
        out.write_all(export_line.trim_end().as_bytes())?;
        out.write_all(b"}\n")
    }

    /// Writes the recording's end line.
    pub fn finish(&self, end: &RecordingEnd) -> std::io::Result<()> {
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        serde_json::to_writer(
            &mut *out,
            &serde_json::json!({ "loadgen_recording_end": end }),
        )?;
        out.write_all(b"\n")?;
        out.flush()
    }

    pub fn flush(&self) -> std::io::Result<()> {
        self.out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .flush()
    }
}
