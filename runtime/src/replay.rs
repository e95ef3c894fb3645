//! Offline replay: apply a log to an engine as fast as it can be read, with no publishing,
//! ticking or snapshots. For `boxoffice replay` and for tests that compare a runtime's state
//! with a from-scratch replay. Reading, decoding and applying run on three threads.

use crate::reader::{decode, Record};
use crate::RuntimeError;
use engine::Engine;
use requestlog::LogReader;
use std::time::{Duration, Instant};

/// A reader that stops short of the end offset for this long (Kafka transaction markers) has
/// read everything.
const QUIET: Duration = Duration::from_secs(1);

/// Where a replay is, for progress bars.
#[derive(Clone, Copy, Debug)]
pub struct ReplayProgress {
    pub applied_offset: Option<u64>,
    /// The last offset this replay will apply.
    pub target_offset: u64,
    pub records: u64,
}

#[derive(Clone, Debug)]
pub struct ReplaySummary {
    /// The first offset read (the engine's applied offset + 1, or 0).
    pub first_offset: u64,
    pub applied_offset: Option<u64>,
    pub records: u64,
    /// Records that did not decode (applied as `Undecodable` rejections).
    pub undecodable: u64,
    pub elapsed: Duration,
    pub state_hash: String,
}

impl ReplaySummary {
    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Applies `reader`'s log to `engine` from the engine's applied offset + 1 through `to`
/// (inclusive), or through the log's last record at the start when `to` is `None`.
pub fn replay(
    engine: &mut Engine,
    reader: &mut dyn LogReader,
    to: Option<u64>,
    batch_records_max: usize,
    progress: &mut dyn FnMut(&ReplayProgress),
) -> Result<ReplaySummary, RuntimeError> {
    let started = Instant::now();
    let first_offset = engine.applied_offset().map_or(0, |applied| applied + 1);
    let end = reader.end_offset().map_err(RuntimeError::RequestsLog)?;
    let mut summary = ReplaySummary {
        first_offset,
        applied_offset: engine.applied_offset(),
        records: 0,
        undecodable: 0,
        elapsed: Duration::ZERO,
        state_hash: String::new(),
    };
    let target = match (end.checked_sub(1), to) {
        (Some(last), Some(to)) => last.min(to),
        (Some(last), None) => last,
        (None, _) => first_offset.wrapping_sub(1),
    };
    if end > 0 && first_offset <= target {
        if first_offset != reader.position() {
            reader
                .seek(first_offset)
                .map_err(RuntimeError::RequestsLog)?;
        }
        let (sender, read) = crossbeam_channel::bounded::<Vec<requestlog::LogRecord>>(4);
        let (decoded, batches) = crossbeam_channel::bounded::<Vec<Record>>(4);
        std::thread::scope(|scope| -> Result<(), RuntimeError> {
            // Three stages on their own threads: reading (RocksDB, checksums), decoding,
            // applying. Each is a large part of a replay's time.
            let reading = std::thread::Builder::new()
                .name("replay-reader".into())
                .spawn_scoped(scope, move || {
                    read_until(reader, target, batch_records_max, &sender)
                })
                .map_err(RuntimeError::Thread)?;
            std::thread::Builder::new()
                .name("replay-decoder".into())
                .spawn_scoped(scope, move || {
                    for batch in read.iter() {
                        if decoded
                            .send(batch.into_iter().map(decode).collect())
                            .is_err()
                        {
                            break;
                        }
                    }
                })
                .map_err(RuntimeError::Thread)?;
            // Owned here, so that stopping early drops it and the stages behind it end.
            let batches = batches;
            let mut stopped = None;
            'batches: for batch in batches.iter() {
                for (index, record) in batch.iter().enumerate() {
                    engine.prefetch_ahead(index, |index| {
                        batch
                            .get(index)
                            .and_then(|record| record.request.as_ref().ok())
                    });
                    let outcome = match &record.request {
                        Ok(request) => {
                            if let Some(mismatch) = engine.logged_config_mismatch(request) {
                                stopped = Some(RuntimeError::ConfigMismatch {
                                    offset: record.offset,
                                    mismatch,
                                });
                                break 'batches;
                            }
                            engine.apply(record.offset, record.timestamp_ms, request)
                        }
                        Err(reason) => {
                            summary.undecodable += 1;
                            engine.apply_undecodable(record.offset, record.timestamp_ms, reason)
                        }
                    };
                    drop(outcome);
                    summary.records += 1;
                }
                progress(&ReplayProgress {
                    applied_offset: engine.applied_offset(),
                    target_offset: target,
                    records: summary.records,
                });
            }
            if let Some(error) = stopped {
                drop(batches);
                // The reader ends on its closed channel; its error says nothing more.
                let _ = reading.join().expect("the replay reader panicked");
                return Err(error);
            }
            reading.join().expect("the replay reader panicked")
        })?;
    }
    summary.applied_offset = engine.applied_offset();
    summary.elapsed = started.elapsed();
    summary.state_hash = engine.state_hash_hex();
    Ok(summary)
}

fn read_until(
    reader: &mut dyn LogReader,
    target: u64,
    batch_records_max: usize,
    sender: &crossbeam_channel::Sender<Vec<requestlog::LogRecord>>,
) -> Result<(), RuntimeError> {
    let mut quiet_since = Instant::now();
    while reader.position() <= target {
        let records = reader
            .poll(batch_records_max, Duration::from_millis(100))
            .map_err(RuntimeError::RequestsLog)?;
        if records.is_empty() {
            if quiet_since.elapsed() >= QUIET {
                break;
            }
            continue;
        }
        quiet_since = Instant::now();
        let batch = records
            .into_iter()
            .filter(|record| record.offset <= target)
            .collect();
        if sender.send(batch).is_err() {
            break;
        }
    }
    Ok(())
}
