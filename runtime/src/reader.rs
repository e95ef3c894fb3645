//! The reader: requests log → decoded records → the engine. A step function (one poll,
//! one hand-off) driven by its own thread in production and by the simulator in tests.

use crate::shared::{PanicGuard, Shared};
use crate::Progress;
use engine::Request;
use requestlog::{LogError, LogReader};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// One record, decoded (or the reason it did not decode).
pub(crate) struct Record {
    pub(crate) offset: u64,
    pub(crate) timestamp_ms: u64,
    pub(crate) request: Result<Request, String>,
}

/// How long one poll waits for a record; also how soon the thread sees a stop.
pub(crate) const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// The log's end offset is refreshed at most this often (it is a broker call in Kafka).
const END_OFFSET_REFRESH_MS: u64 = 100;
/// A failing poll is retried this many times, with a pause between, before the runtime
/// stops: a transient broker error heals, a corrupt record does not.
const POLL_RETRIES_MAX: u32 = 20;

pub(crate) struct Reader {
    pub(crate) shared: Arc<Shared>,
    pub(crate) reader: Box<dyn LogReader>,
    pub(crate) sender: SyncSender<Vec<Record>>,
    pub(crate) batch_records_max: usize,
    /// When the log's end offset was last refreshed (`None`: not yet).
    pub(crate) end_refreshed_at_ms: Option<u64>,
    /// Failed polls in a row.
    pub(crate) failures: u32,
    /// A decoded batch the engine's channel had no room for yet.
    pub(crate) outbox: Option<Vec<Record>>,
}

pub(crate) fn decode(record: requestlog::LogRecord) -> Record {
    decode_lent(record.offset, record.timestamp_ms, &record.payload)
}

/// [`decode`], of a record the log lends (`LogReader::poll_each`).
pub(crate) fn decode_lent(offset: u64, timestamp_ms: u64, payload: &[u8]) -> Record {
    Record {
        offset,
        timestamp_ms,
        request: engine::wire::decode_request(payload),
    }
}

impl Reader {
    /// The production driver: steps, waiting in the log's poll while idle, pausing after a
    /// failed poll, and waiting on the channel while the engine is behind.
    pub(crate) fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let _guard = PanicGuard {
            shared: &shared,
            thread: "reader",
        };
        loop {
            match self.step(crate::monotonic_ms(), POLL_TIMEOUT) {
                Progress::Worked => {}
                Progress::Idle if self.failures > 0 => std::thread::sleep(POLL_TIMEOUT),
                Progress::Idle => {}
                // The back-pressure: wait until the engine takes the batch.
                Progress::Blocked => {
                    let batch = self.outbox.take().expect("blocked on a batch");
                    if self.sender.send(batch).is_err() {
                        return;
                    }
                }
                Progress::Stopped => return,
            }
        }
    }

    /// One poll of the requests log (waiting up to `poll_timeout` for a record), decoded
    /// and handed to the engine. Blocked while the engine's channel is full.
    pub(crate) fn step(&mut self, now_ms: u64, poll_timeout: Duration) -> Progress {
        if self.shared.stopping() {
            return Progress::Stopped;
        }
        if let Some(batch) = self.outbox.take() {
            return self.send(batch);
        }
        // Decoded as the log lends them (`poll_each`: no copy of each record first).
        let mut records = Vec::new();
        let polled = self.reader.poll_each(
            self.batch_records_max,
            poll_timeout,
            &mut |offset, timestamp_ms, payload| {
                records.push(decode_lent(offset, timestamp_ms, payload))
            },
        );
        match polled {
            Ok(_) => {
                self.failures = 0;
            }
            Err(error) if self.failures < POLL_RETRIES_MAX && retryable(&error) => {
                self.failures += 1;
                tracing::warn!(%error, failures = self.failures, "requests log poll failed; retrying");
                return Progress::Idle;
            }
            Err(error) => {
                self.shared
                    .fail(format!("reading the requests log: {error}"));
                return Progress::Stopped;
            }
        };
        let last_read = records.last().map(|record| record.offset);
        let refresh_due = self
            .end_refreshed_at_ms
            .is_none_or(|at_ms| now_ms.saturating_sub(at_ms) >= END_OFFSET_REFRESH_MS);
        if records.is_empty() || refresh_due {
            self.refresh_end_offset(last_read);
            self.end_refreshed_at_ms = Some(now_ms);
        } else if let Some(last) = last_read {
            self.shared
                .update(|status| status.log_end_offset = status.log_end_offset.max(last + 1));
        }
        if records.is_empty() {
            return Progress::Idle;
        }
        self.send(records)
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

    /// Hands a batch to the engine without waiting; keeps it when the channel is full.
    fn send(&mut self, batch: Vec<Record>) -> Progress {
        match self.sender.try_send(batch) {
            Ok(()) => Progress::Worked,
            Err(TrySendError::Full(batch)) => {
                self.outbox = Some(batch);
                Progress::Blocked
            }
            // The engine thread is gone.
            Err(TrySendError::Disconnected(_)) => Progress::Stopped,
        }
    }
}

fn retryable(error: &LogError) -> bool {
    matches!(error, LogError::Timeout { .. } | LogError::Kafka(_))
}
