//! The reader thread: requests log → decoded records → the engine thread.

use crate::shared::{PanicGuard, Shared};
use crossbeam_channel::Sender;
use engine::Request;
use requestlog::{LogError, LogReader};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One record, decoded (or the reason it did not decode).
pub(crate) struct Record {
    pub(crate) offset: u64,
    pub(crate) timestamp_ms: u64,
    pub(crate) request: Result<Request, String>,
}

/// How long one poll waits for a record; also how soon the thread sees a stop.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// The log's end offset is refreshed at most this often (it is a broker call in Kafka).
const END_OFFSET_REFRESH: Duration = Duration::from_millis(100);
/// A failing poll is retried this many times, with a pause between, before the runtime
/// stops: a transient broker error heals, a corrupt record does not.
const POLL_RETRIES_MAX: u32 = 20;

pub(crate) struct ReaderThread {
    pub(crate) shared: Arc<Shared>,
    pub(crate) reader: Box<dyn LogReader>,
    pub(crate) sender: Sender<Vec<Record>>,
    pub(crate) batch_records_max: usize,
}

pub(crate) fn decode(record: requestlog::LogRecord) -> Record {
    Record {
        offset: record.offset,
        timestamp_ms: record.timestamp_ms,
        request: engine::wire::decode_request(&record.payload),
    }
}

impl ReaderThread {
    pub(crate) fn run(mut self) {
        let _guard = PanicGuard {
            shared: &self.shared,
            thread: "reader",
        };
        let mut refreshed_at = Instant::now();
        let mut failures = 0;
        while !self.shared.stopping() {
            let records = match self.reader.poll(self.batch_records_max, POLL_TIMEOUT) {
                Ok(records) => {
                    failures = 0;
                    records
                }
                Err(error) if failures < POLL_RETRIES_MAX && retryable(&error) => {
                    failures += 1;
                    tracing::warn!(%error, failures, "requests log poll failed; retrying");
                    std::thread::sleep(POLL_TIMEOUT);
                    continue;
                }
                Err(error) => {
                    self.shared
                        .fail(format!("reading the requests log: {error}"));
                    return;
                }
            };
            let last_read = records.last().map(|record| record.offset);
            if records.is_empty() || refreshed_at.elapsed() >= END_OFFSET_REFRESH {
                self.refresh_end_offset(last_read);
                refreshed_at = Instant::now();
            } else if let Some(last) = last_read {
                self.shared
                    .update(|status| status.log_end_offset = status.log_end_offset.max(last + 1));
            }
            if records.is_empty() {
                continue;
            }
            if !self.send(records.into_iter().map(decode).collect()) {
                return;
            }
        }
    }

    fn refresh_end_offset(&self, last_read: Option<u64>) {
        match self.reader.end_offset() {
            Ok(end) => {
                let end = end.max(last_read.map_or(0, |last| last + 1));
                self.shared
                    .update(|status| status.log_end_offset = status.log_end_offset.max(end));
            }
            Err(error) => tracing::warn!(%error, "cannot read the requests log's end offset"),
        }
    }

    /// Hands a batch to the engine thread (waiting while it is behind: that is the
    /// back-pressure); false when the engine thread is gone.
    fn send(&self, batch: Vec<Record>) -> bool {
        self.sender.send(batch).is_ok()
    }
}

fn retryable(error: &LogError) -> bool {
    matches!(error, LogError::Timeout { .. } | LogError::Kafka(_))
}
