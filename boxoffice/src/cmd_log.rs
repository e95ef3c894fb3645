//! `boxoffice log export [--from OFFSET] [--to OFFSET] [--log requests|outcomes]`: a log
//! as JSON lines on stdout, one record a line (the format: `log_export.rs`).

use crate::cmd_engine::{log_error, open_logs, ToolError};
use crate::log_export::{export, start, WhichLog};
use crate::settings::Settings;
use std::io::Write;
use std::path::Path;

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
    let Some(last) = start(reader.as_mut(), from, to)
        .map_err(log_error(format!("cannot read the log from offset {from}")))?
    else {
        return Ok(());
    };
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
