//! `boxoffice log export [--from OFFSET] [--to OFFSET] [--log requests|outcomes]`: a log
//! as JSON lines, one record a line, for humans and load testers:
//!
//! ```text
//! {"offset":0,"timestamp_ms":1700000000123,"request":{"idempotency_key":null,"command":{"CreateEvent":{...}}}}
//! {"offset":1,"timestamp_ms":1700000000124,"undecodable":"unknown record version 9"}
//! {"offset":0,"timestamp_ms":1700000000130,"outcome":{"offset":0,"time_ms":...,"result":{"Ok":...},...}}
//! ```
//!
//! Requests and outcomes print as their serde JSON form (enums externally tagged).

use crate::cmd_engine::{log_error, open_logs, ToolError};
use crate::settings::Settings;
use requestlog::{LogReader, LogRecord};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(clap::Subcommand, Debug)]
pub(crate) enum LogCommand {
    /// Records as JSON lines on stdout.
    Export {
        /// First offset (default: the log's start).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Last offset, inclusive (default: the last record at the start of the export).
        #[arg(long)]
        to: Option<u64>,
        /// Which log.
        #[arg(long, value_enum, default_value_t = WhichLog::Requests)]
        log: WhichLog,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WhichLog {
    Requests,
    Outcomes,
}

const BATCH_RECORDS: usize = 4_096;
/// A Kafka reader may stop short of the end offset (transaction markers take offsets).
const QUIET: Duration = Duration::from_secs(1);

pub(crate) fn run(
    settings: &Settings,
    data_dir: &Path,
    command: LogCommand,
) -> Result<(), ToolError> {
    let LogCommand::Export { from, to, log } = command;
    let logs = open_logs(settings, data_dir)?;
    let opened = match log {
        WhichLog::Requests => &logs.requests,
        WhichLog::Outcomes => &logs.outcomes,
    };
    let mut reader = opened
        .open_reader()
        .map_err(log_error("cannot read the log"))?;
    let end = reader
        .end_offset()
        .map_err(log_error("cannot read the log's end"))?;
    let Some(last) = end
        .checked_sub(1)
        .map(|last| to.map_or(last, |to| to.min(last)))
    else {
        return Ok(());
    };
    if from > last {
        return Ok(());
    }
    reader
        .seek(from)
        .map_err(log_error(format!("cannot seek to {from}")))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match export(reader.as_mut(), last, log, &mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // `| head` closed the pipe: that is how a reader says it has seen enough.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(source) => Err(ToolError::Io {
            what: "writing the export".into(),
            source,
        }),
    }
}

fn export(
    reader: &mut dyn LogReader,
    last: u64,
    log: WhichLog,
    out: &mut impl Write,
) -> std::io::Result<()> {
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
            serde_json::to_writer(&mut *out, &line(&record, log))?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// One record's JSON line.
pub(crate) fn line(record: &LogRecord, log: WhichLog) -> serde_json::Value {
    let mut line =
        serde_json::json!({ "offset": record.offset, "timestamp_ms": record.timestamp_ms });
    let decoded = match log {
        WhichLog::Requests => engine::wire::decode_request(&record.payload)
            .map(|request| ("request", serde_json::to_value(request))),
        WhichLog::Outcomes => engine::wire::decode_outcome(&record.payload)
            .map(|outcome| ("outcome", serde_json::to_value(outcome))),
    };
    match decoded {
        Ok((key, Ok(value))) => line[key] = value,
        Ok((_, Err(error))) => line["undecodable"] = error.to_string().into(),
        Err(reason) => line["undecodable"] = reason.into(),
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{Command, Request};

    #[test]
    fn lines_carry_the_decoded_request_or_the_reason() {
        let tick = LogRecord {
            offset: 3,
            timestamp_ms: 42,
            payload: engine::wire::encode_request(&Request::with_key(Command::Tick, "k")),
        };
        assert_eq!(
            line(&tick, WhichLog::Requests).to_string(),
            r#"{"offset":3,"request":{"command":"Tick","idempotency_key":"k"},"timestamp_ms":42}"#
        );
        let garbage = LogRecord {
            offset: 4,
            timestamp_ms: 43,
            payload: vec![9, 9],
        };
        assert_eq!(
            line(&garbage, WhichLog::Requests).to_string(),
            r#"{"offset":4,"timestamp_ms":43,"undecodable":"unknown record version 9"}"#
        );
    }
}
