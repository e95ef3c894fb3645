//! The runtime's view of a log: something that opens readers and writers.
//!
//! The runtime opens its own handles, and only when it needs them: a standby must not open
//! the outcomes writer (in Kafka it is transactional, and opening it fences the primary).

use crate::RuntimeError;
use requestlog::{DurableEnd, EmbeddedLog, KafkaLog, LogError, LogReader, LogWriter, MemoryLog};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Opens handles on one log (the requests log, or the outcomes log).
pub trait OpenLog: Send + Sync {
    /// A reader positioned at offset 0.
    fn open_reader(&self) -> Result<Box<dyn LogReader>, LogError>;
    /// A writer. For a transactional Kafka log this fences earlier writers.
    fn open_writer(&self) -> Result<Arc<dyn LogWriter>, LogError>;
    /// The log's identity (`EmbeddedLog::log_id`, `KafkaLog::log_id`), which snapshots
    /// record: a snapshot is only loaded against the log it was taken from.
    fn log_id(&self) -> String;
    /// Makes every record appended so far durable: a no-op but for an embedded log that
    /// does not fsync its appends (`EmbeddedOptions::sync_appends`).
    fn make_durable(&self) -> Result<(), LogError> {
        Ok(())
    }
    /// A reader positioned at offset 0 that sees records before they are durable, and
    /// what says when they are ([`EmbeddedLog::speculative_reader`]); `None` where the
    /// log has no such reader.
    fn open_speculative_reader(&self) -> Option<(Box<dyn LogReader>, DurableEnd)> {
        None
    }
}

impl OpenLog for EmbeddedLog {
    fn open_reader(&self) -> Result<Box<dyn LogReader>, LogError> {
        Ok(Box::new(self.reader()))
    }

    fn open_writer(&self) -> Result<Arc<dyn LogWriter>, LogError> {
        Ok(Arc::new(self.writer()))
    }

    fn log_id(&self) -> String {
        EmbeddedLog::log_id(self).to_string()
    }

    fn make_durable(&self) -> Result<(), LogError> {
        self.sync()
    }

    fn open_speculative_reader(&self) -> Option<(Box<dyn LogReader>, DurableEnd)> {
        let (reader, durable) = self.speculative_reader();
        Some((Box::new(reader), durable))
    }
}

impl OpenLog for KafkaLog {
    fn open_reader(&self) -> Result<Box<dyn LogReader>, LogError> {
        Ok(Box::new(self.reader()?))
    }

    fn open_writer(&self) -> Result<Arc<dyn LogWriter>, LogError> {
        Ok(Arc::new(self.writer()?))
    }

    fn log_id(&self) -> String {
        KafkaLog::log_id(self).to_string()
    }
}

/// The simulation tests' log: opening a writer of a fencing `MemoryLog` fences the older
/// ones, as a transactional Kafka producer does.
impl OpenLog for MemoryLog {
    fn open_reader(&self) -> Result<Box<dyn LogReader>, LogError> {
        Ok(Box::new(self.reader()))
    }

    fn open_writer(&self) -> Result<Arc<dyn LogWriter>, LogError> {
        Ok(Arc::new(self.writer()))
    }

    fn log_id(&self) -> String {
        MemoryLog::log_id(self)
    }

    fn open_speculative_reader(&self) -> Option<(Box<dyn LogReader>, DurableEnd)> {
        let (reader, durable) = self.speculative_reader();
        Some((Box::new(reader), durable))
    }
}

impl<T: OpenLog + ?Sized> OpenLog for Arc<T> {
    fn open_reader(&self) -> Result<Box<dyn LogReader>, LogError> {
        (**self).open_reader()
    }

    fn open_writer(&self) -> Result<Arc<dyn LogWriter>, LogError> {
        (**self).open_writer()
    }

    fn log_id(&self) -> String {
        (**self).log_id()
    }

    fn make_durable(&self) -> Result<(), LogError> {
        (**self).make_durable()
    }

    fn open_speculative_reader(&self) -> Option<(Box<dyn LogReader>, DurableEnd)> {
        (**self).open_speculative_reader()
    }
}

/// Records per poll while looking for the outcomes log's tail.
const TAIL_POLL_RECORDS: usize = 1024;
/// A Kafka reader may stop short of the end offset for good (transaction markers, aborted
/// records take offsets): after this long without a record, what was read is the tail.
const TAIL_QUIET: Duration = Duration::from_millis(1_000);
/// Upper bound on reading one window of the tail.
const TAIL_DEADLINE: Duration = Duration::from_secs(60);

/// The request offset answered by the last complete outcome in the outcomes log (`None`
/// when it holds none): the last record that is the last frame of its outcome. When the
/// log ends in the middle of an outcome (a publisher stopped between the appends of a
/// large one), that outcome is not published: the publisher publishes it again from
/// frame 0, and readers drop the torn copy. Reads only frame headers, backwards in growing
/// windows from the end, so it costs one small read on a dense log. Call it after opening
/// the outcomes writer, so no earlier writer can append behind it.
pub fn last_published_offset(outcomes: &dyn OpenLog) -> Result<Option<u64>, RuntimeError> {
    let mut reader = outcomes.open_reader().map_err(RuntimeError::OutcomesLog)?;
    let end = reader.end_offset().map_err(RuntimeError::OutcomesLog)?;
    if end == 0 {
        return Ok(None);
    }
    // Wide enough that one seek nearly always finds a record: librdkafka (up to 2.15) can
    // abort the process when a consumer is re-assigned several times in quick succession
    // (confluentinc/librdkafka#5573), and every seek of a Kafka reader is a re-assignment.
    let mut window = 256u64;
    loop {
        let start = end.saturating_sub(window);
        if start != reader.position() {
            reader.seek(start).map_err(RuntimeError::OutcomesLog)?;
        }
        if let Some(offset) = last_complete(reader.as_mut(), end)? {
            return Ok(Some(offset));
        }
        if start == 0 {
            return Ok(None);
        }
        window = window.saturating_mul(8);
    }
}

/// Reads from the reader's position to `end` and returns the highest request offset
/// whose outcome's last frame is there.
fn last_complete(reader: &mut dyn LogReader, end: u64) -> Result<Option<u64>, RuntimeError> {
    let deadline = Instant::now() + TAIL_DEADLINE;
    let mut last = None;
    let mut quiet_since = Instant::now();
    while reader.position() < end {
        let records = reader
            .poll(TAIL_POLL_RECORDS, Duration::from_millis(100))
            .map_err(RuntimeError::OutcomesLog)?;
        if records.is_empty() {
            if quiet_since.elapsed() >= TAIL_QUIET {
                break;
            }
        } else {
            quiet_since = Instant::now();
        }
        for record in records {
            let header = engine::wire::frame_header(&record.payload).map_err(|reason| {
                RuntimeError::CorruptOutcome {
                    offset: record.offset,
                    reason,
                }
            })?;
            if header.is_last() {
                // The highest, not the latest: a second publisher writing at the same time
                // (an old primary that has not read its `Promote` yet) may be behind.
                last = last.max(Some(header.offset));
            }
        }
        if Instant::now() > deadline {
            return Err(RuntimeError::OutcomesLog(LogError::Timeout {
                operation: "reading the outcomes log's tail",
                timeout_ms: TAIL_DEADLINE.as_millis() as u64,
            }));
        }
    }
    Ok(last)
}
