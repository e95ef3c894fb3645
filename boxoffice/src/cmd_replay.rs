//! `boxoffice replay [--from-snapshot] [--to OFFSET]`: applies the requests log to a fresh
//! engine (or to the newest valid snapshot) and prints the state hash and the rate. Two
//! replays of the same log to the same offset print the same hash on every machine; a
//! running engine's `state_hash` at that offset is the same too.

use crate::cmd_engine::{log_error, open_logs, open_snapshots, ToolError};
use crate::settings::Settings;
use engine::Engine;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;

/// Records per read; big batches keep the reader thread ahead of the engine.
const BATCH_RECORDS: usize = 16 * 1024;

pub(crate) fn run(
    settings: &Settings,
    data_dir: &Path,
    from_snapshot: bool,
    to: Option<u64>,
) -> Result<(), ToolError> {
    let logs = open_logs(settings, data_dir)?;
    let mut engine = Engine::new(settings.engine_config());
    let mut reader = logs
        .requests
        .open_reader()
        .map_err(log_error("cannot read the requests log"))?;
    if from_snapshot {
        let store = open_snapshots(settings, data_dir)?;
        let current_log = snapshotter::CurrentLog {
            log_id: logs.requests.log_id(),
            end_offset: reader
                .end_offset()
                .map_err(log_error("cannot read the requests log's end"))?,
        };
        let recovery = snapshotter::load_newest(&store, &settings.engine_config(), &current_log)?;
        for rejected in &recovery.rejected {
            eprintln!(
                "skipped snapshot at offset {}: {}",
                rejected.offset, rejected.reason
            );
        }
        match recovery.loaded {
            Some(loaded) => {
                eprintln!(
                    "starting from the snapshot at offset {}",
                    loaded.info.offset
                );
                engine = loaded.engine;
            }
            None => eprintln!("no valid snapshot: starting from offset 0"),
        }
    }
    if let (Some(to), Some(applied)) = (to, engine.applied_offset()) {
        if to < applied {
            return Err(ToolError::Invalid(format!(
                "--to {to} is before the snapshot's offset {applied}"
            )));
        }
    }
    let bar = ProgressBar::hidden();
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} records, {per_sec}, eta {eta}")
            .expect("a valid template"),
    );
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    let first = engine.applied_offset().map_or(0, |applied| applied + 1);
    let summary = runtime::replay(
        &mut engine,
        reader.as_mut(),
        to,
        BATCH_RECORDS,
        &mut |progress| {
            bar.set_length((progress.target_offset + 1).saturating_sub(first));
            bar.set_position(progress.records);
        },
    )?;
    bar.finish_and_clear();
    println!("state_hash {}", summary.state_hash);
    match summary.applied_offset {
        Some(applied) => println!("applied_offset {applied}"),
        None => println!("applied_offset none"),
    }
    println!("first_offset {}", summary.first_offset);
    println!("records {}", summary.records);
    println!("undecodable {}", summary.undecodable);
    println!("elapsed_s {:.3}", summary.elapsed.as_secs_f64());
    println!("records_per_second {:.0}", summary.records_per_second());
    Ok(())
}
