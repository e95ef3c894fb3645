//! The publisher thread: outcomes → the outcomes log, each exactly once.

use crate::logs::{last_published_offset, OpenLog};
use crate::shared::{PanicGuard, Shared};
use crate::{RuntimeError, RuntimeOptions};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use engine::Outcome;
use requestlog::{LogError, LogWriter};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// How often a waiting publisher looks at its role (for promotion).
const ROLE_CHECK: Duration = Duration::from_millis(50);
/// A failing append is retried this many times before the runtime stops.
const APPEND_RETRIES_MAX: u32 = 20;
const APPEND_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// An open outcomes writer and what the outcomes log already holds.
pub(crate) struct Publishing {
    writer: Arc<dyn LogWriter>,
    /// The request offset of the last outcome in the outcomes log.
    pub(crate) last_published: Option<u64>,
}

impl Publishing {
    /// Opens the writer first (in Kafka this fences any older writer), then reads the
    /// log's tail, which no one else can extend any more.
    pub(crate) fn open(outcomes: &dyn OpenLog) -> Result<Publishing, RuntimeError> {
        let writer = outcomes.open_writer().map_err(RuntimeError::OutcomesLog)?;
        let last_published = last_published_offset(outcomes)?;
        tracing::info!(?last_published, "outcomes log opened for publishing");
        Ok(Publishing {
            writer,
            last_published,
        })
    }
}

pub(crate) struct Publisher {
    shared: Arc<Shared>,
    outcomes_log: Arc<dyn OpenLog>,
    outcomes: Receiver<Vec<Outcome>>,
    publishing: Option<Publishing>,
    /// A standby's newest outcomes, to publish if promoted.
    retained: VecDeque<Outcome>,
    retained_max: usize,
    publish_records_max: usize,
}

impl Publisher {
    pub(crate) fn new(
        shared: Arc<Shared>,
        outcomes_log: Arc<dyn OpenLog>,
        outcomes: Receiver<Vec<Outcome>>,
        publishing: Option<Publishing>,
        options: &RuntimeOptions,
    ) -> Publisher {
        Publisher {
            shared,
            outcomes_log,
            outcomes,
            publishing,
            retained: VecDeque::new(),
            retained_max: options.standby_outcomes_max,
            publish_records_max: options.publish_records_max,
        }
    }

    pub(crate) fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let _guard = PanicGuard {
            shared: &shared,
            thread: "publisher",
        };
        if let Err(error) = self.serve() {
            self.shared.fail(format!("publishing outcomes: {error}"));
        }
    }

    fn serve(&mut self) -> Result<(), RuntimeError> {
        loop {
            if self.publishing.is_none() && self.shared.promotion_requested() {
                self.promote()?;
            }
            let first = match self.outcomes.recv_timeout(ROLE_CHECK) {
                Ok(batch) => batch,
                Err(RecvTimeoutError::Timeout) => continue,
                // The engine stopped and everything it applied has been handled.
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            };
            match self.publishing.is_some() {
                true => {
                    // Whatever else is already waiting joins this append (group commit).
                    let mut batch = first;
                    while batch.len() < self.publish_records_max {
                        match self.outcomes.try_recv() {
                            Ok(more) => batch.extend(more),
                            Err(_) => break,
                        }
                    }
                    self.publish(batch)?;
                }
                false => self.retain(first),
            }
        }
    }

    fn retain(&mut self, batch: Vec<Outcome>) {
        self.retained.extend(batch);
        while self.retained.len() > self.retained_max {
            self.retained.pop_front();
        }
    }

    fn promote(&mut self) -> Result<(), RuntimeError> {
        let publishing = Publishing::open(self.outcomes_log.as_ref())?;
        let missing_from = publishing.last_published.map_or(0, |last| last + 1);
        if let Some(first) = self
            .retained
            .front()
            .filter(|first| first.offset > missing_from)
        {
            // The primary published less than this standby kept: outcomes in between are
            // lost to readers until a full fail-over replays them (a later issue).
            tracing::error!(
                missing_from,
                first_kept = first.offset,
                "promoted standby cannot publish every missing outcome"
            );
        }
        self.shared
            .update(|status| status.published_offset = publishing.last_published);
        self.publishing = Some(publishing);
        let retained: Vec<Outcome> = std::mem::take(&mut self.retained).into();
        self.publish(retained)?;
        self.shared.promoted();
        tracing::info!("standby promoted to primary");
        Ok(())
    }

    /// Appends the outcomes the log does not hold yet, in chunks, retrying failures.
    fn publish(&mut self, outcomes: Vec<Outcome>) -> Result<(), RuntimeError> {
        let mut pending: &[Outcome] = &outcomes;
        let mut failures = 0;
        loop {
            let publishing = self.publishing.as_mut().expect("publishing");
            let skip = pending
                .iter()
                .take_while(|outcome| Some(outcome.offset) <= publishing.last_published)
                .count();
            pending = &pending[skip..];
            let Some(last) = pending.len().checked_sub(1) else {
                break;
            };
            let chunk = &pending[..=last.min(self.publish_records_max - 1)];
            let payloads = chunk.iter().map(engine::wire::encode_outcome).collect();
            match publishing.writer.append(payloads) {
                Ok(_) => {
                    failures = 0;
                    let published = chunk.last().map(|outcome| outcome.offset);
                    publishing.last_published = published;
                    self.shared
                        .update(|status| status.published_offset = published);
                    pending = &pending[chunk.len()..];
                }
                Err(
                    error @ (LogError::Fenced
                    | LogError::Closed
                    | LogError::Storage(_)
                    | LogError::PayloadTooLarge { .. }
                    | LogError::TooManyRecords { .. }),
                ) => {
                    return Err(RuntimeError::OutcomesLog(error));
                }
                Err(error) if failures < APPEND_RETRIES_MAX => {
                    failures += 1;
                    tracing::warn!(%error, failures, "outcomes append failed; retrying");
                    std::thread::sleep(APPEND_RETRY_PAUSE);
                    // Part of the failed append may have landed: ask the log what it holds.
                    publishing.last_published = last_published_offset(self.outcomes_log.as_ref())?
                        .max(publishing.last_published);
                }
                Err(error) => return Err(RuntimeError::OutcomesLog(error)),
            }
        }
        Ok(())
    }
}
