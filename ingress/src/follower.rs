//! The outcome follower: one thread reads the outcomes log (from offset 0, or from after
//! the snapshot it resumed from: `follower_state`), reassembles
//! each outcome from its frames (`engine::wire::OutcomeAssembler`: an outcome of any size
//! spans several records), applies it to the read model (each user's notifications included), then completes
//! the write waiting on its offset and wakes long-polls. Next to the engine (`serve`), a
//! record whose outcome the publisher still holds gives that outcome, not a decode of its
//! bytes (`EngineControl::recent_outcomes`, `OutcomeAssembler::push_at_known`).
//!
//! Architecture invariant: a waiter is completed only after the read model applied its
//! outcome (read-your-writes: after a 201 hold, the seat map already shows the seats held).
//! Architecture invariant: outcomes are applied in strictly increasing input offsets; a
//! repeated offset (an engine that restarted re-publishes) is dropped, and a `replayed`
//! outcome (an idempotent repeat) answers its waiter but changes nothing.
//!
//! Every `snapshot_every_outcomes` outcomes or `snapshot_interval` it hands a copy of the
//! model to the snapshot thread (`follower_state`), never waiting for it, with the outcomes
//! log position after the record that completed the model's last outcome (where a restart
//! reads from: a fresh assembler there sees only whole outcomes or torn copies it drops).

use crate::follower_state::{SnapshotJob, SnapshotTrigger};
use crate::idempotency_index::IdempotencyIndex;
use crate::live::{self, EventFeeds};
use crate::metrics::Metrics;
use crate::read_model::ReadModel;
use crate::state::{FollowerStatus, Watchers};
use crate::writes::Pending;
use engine::wire::OutcomeAssembler;
use engine::Outcome;
use requestlog::LogReader;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const POLL_RECORDS_MAX: usize = 1024;
/// Outcomes applied (under one write lock) before their writers are answered: a group
/// commit's outcomes arrive together, and answering them a few at a time lets the HTTP
/// threads send the first responses while this thread applies the rest. Under 64 hold +
/// confirm clients, 6-16 gave 3-8% more requests/s than a whole batch at once, at the same
/// CPU per request (BENCHMARKS.md, session 36). A whole poll at once instead (one lock,
/// one index write and one wake a group commit), re-measured with `serve` on one CPU and
/// its pipeline under `SCHED_BATCH`: no difference told from the machine's noise (44
/// pairs, median 0.98 of the CPU a response, from 0.93 to 1.08 by sequence; session 54).
const APPLY_CHUNK_OUTCOMES: usize = 8;
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// How often the outcomes log's end is looked up while records keep coming.
const END_CHECK_INTERVAL: Duration = Duration::from_millis(500);
const ERROR_BACKOFF: Duration = Duration::from_millis(200);

/// The outcomes log's end as last looked up (every [`END_CHECK_INTERVAL`] once the
/// reader has drained what it could), and whether the reader has reached it. The verdict
/// is taken against the last end after every poll, not only at the look-up: on Kafka the
/// end counts a transaction's commit marker, which the reader steps over on a later poll,
/// so a verdict taken at the look-up alone said "catching up" for a whole interval after
/// every outcome.
#[derive(Default)]
struct EndCheck {
    checked_at: Option<Instant>,
    /// `None` before the first look-up and after a failed one: not caught up.
    end_offset: Option<u64>,
}

impl EndCheck {
    fn check_due(&self, now: Instant) -> bool {
        self.checked_at
            .is_none_or(|checked| now.duration_since(checked) >= END_CHECK_INTERVAL)
    }

    fn looked_up(&mut self, end_offset: u64, now: Instant) {
        self.end_offset = Some(end_offset);
        self.checked_at = Some(now);
    }

    fn failed(&mut self) {
        self.end_offset = None;
    }

    fn caught_up(&self, position: u64) -> bool {
        self.end_offset.is_some_and(|end| position >= end)
    }
}

pub(crate) struct Follower {
    pub(crate) model: Arc<RwLock<ReadModel>>,
    pub(crate) pending: Arc<Pending>,
    /// Fed with every outcome before its waiter is answered.
    pub(crate) idempotency: Arc<IdempotencyIndex>,
    pub(crate) watchers: Arc<Watchers<engine::WaiterId>>,
    /// Notification long-polls, woken per user told something.
    pub(crate) user_watchers: Arc<Watchers<engine::UserName>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) status: Arc<FollowerStatus>,
    /// Seat-map streams, woken per event after the model applied a change to it.
    pub(crate) feeds: Arc<EventFeeds>,
    /// Events made, changed or canceled, for the search index (`crate::search`).
    pub(crate) search_changes: Arc<crate::search::SearchChanges>,
    pub(crate) snapshots: SnapshotTrigger,
    /// The outcomes log record after the last one that completed an outcome outside any
    /// other copy (`OutcomeAssembler::push_at`): where a restart resumes.
    pub(crate) resume_position: u64,
    /// The outcomes the engine in this process published last (`serve`): taken, not
    /// decoded, when a record is one of them.
    pub(crate) recent_outcomes: Option<engine::wire::SharedRecentOutcomes>,
}

impl Follower {
    pub(crate) fn spawn(
        mut self,
        mut reader: Box<dyn LogReader>,
        stop: Arc<AtomicBool>,
    ) -> JoinHandle<()> {
        std::thread::Builder::new()
            .name("ingress-follower".into())
            .spawn(move || {
                self.status.note_outcome();
                self.status.running.store(true, Ordering::Release);
                self.run(&mut *reader, &stop);
                self.status.running.store(false, Ordering::Release);
                // The last snapshot: a restart after a clean stop reads nothing again.
                let job = self.snapshot_job(reader.durability());
                self.snapshots.finish(job);
            })
            .expect("spawning the outcome follower")
    }

    fn run(&mut self, reader: &mut dyn LogReader, stop: &AtomicBool) {
        let mut end = EndCheck::default();
        let mut assembler = OutcomeAssembler::new();
        while !stop.load(Ordering::Acquire) {
            let mut outcomes = Vec::new();
            let polled = self.assemble(reader, &mut assembler, &mut outcomes);
            let polled = match polled {
                Ok(polled) => polled,
                Err(requestlog::LogError::OffsetOutOfRange { start_offset, .. })
                    if reader.position() < start_offset =>
                {
                    // Retention removed what this follower has not read: never skip it.
                    self.metrics.outcome_read_errors.inc();
                    self.status.note_truncated(reader.position(), start_offset);
                    std::thread::sleep(ERROR_BACKOFF);
                    continue;
                }
                Err(error) => {
                    self.metrics.outcome_read_errors.inc();
                    tracing::error!(%error, position = reader.position(), "reading the outcomes log failed");
                    std::thread::sleep(ERROR_BACKOFF);
                    continue;
                }
            };
            let drained = polled < POLL_RECORDS_MAX;
            let count = outcomes.len() as u64;
            self.status
                .outcomes_read
                .fetch_add(count, Ordering::Relaxed);
            let mut outcomes = outcomes.into_iter().peekable();
            while outcomes.peek().is_some() {
                let chunk = outcomes.by_ref().take(APPLY_CHUNK_OUTCOMES).collect();
                self.apply(chunk, outcomes.peek().is_none());
            }
            self.snapshots.note_outcomes(count);
            if self.snapshots.due() {
                if let Some(job) = self.snapshot_job(reader.durability()) {
                    self.snapshots.offer(job);
                }
            }
            self.status
                .position
                .store(reader.position(), Ordering::Release);
            if drained && end.check_due(Instant::now()) {
                match reader.end_offset() {
                    Ok(offset) => {
                        self.status.end_offset.store(offset, Ordering::Release);
                        end.looked_up(offset, Instant::now());
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the outcomes log's end offset");
                        end.failed();
                    }
                }
            }
            self.status
                .caught_up
                .store(end.caught_up(reader.position()), Ordering::Release);
        }
    }

    /// One poll of the outcomes log: the outcomes its records complete go to `outcomes`;
    /// returns how many records it read. A record that is not a frame, or frames that do
    /// not decode, are counted and logged; frames that continue no outcome (a torn
    /// outcome, published again from frame 0) are logged. The records are lent, not
    /// copied (`LogReader::poll_each`), and the publisher's recent outcomes locked once
    /// records have come, not while the poll waits for them.
    fn assemble(
        &mut self,
        reader: &mut dyn LogReader,
        assembler: &mut OutcomeAssembler,
        outcomes: &mut Vec<Arc<Outcome>>,
    ) -> Result<usize, requestlog::LogError> {
        let recent = self.recent_outcomes.clone();
        let mut known = None;
        reader.poll_each(
            POLL_RECORDS_MAX,
            POLL_TIMEOUT,
            &mut |offset, _timestamp_ms, payload| {
                let known =
                    known.get_or_insert_with(|| recent.as_ref().map(engine::wire::lock_recent));
                let ignored_before = assembler.frames_ignored();
                match assembler.push_at_known(offset, payload, known.as_deref()) {
                    Ok(Some(outcome)) => {
                        outcomes.push(outcome);
                        if let Some(position) = assembler.resume_position() {
                            self.resume_position = position;
                        }
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        self.metrics.outcomes_undecodable.inc();
                        tracing::error!(offset, %reason, "an outcome record could not be decoded");
                    }
                }
                let ignored = assembler.frames_ignored() - ignored_before;
                if ignored > 0 {
                    tracing::warn!(
                        offset,
                        ignored,
                        "outcome frames that complete no outcome were skipped"
                    );
                }
            },
        )
    }

    /// A copy of the model for a snapshot; `None` when there is nothing to snapshot, or the
    /// model is stale (a gap: a restart must not resume from it). `durable` makes the
    /// outcomes it covers durable: the snapshot thread calls it before it writes (see
    /// `SnapshotJob`), so this thread never waits for the disk.
    fn snapshot_job(&self, durable: Option<requestlog::Durability>) -> Option<SnapshotJob> {
        if !self.snapshots.pending() || self.status.gap().is_some() {
            return None;
        }
        // The follower is the model's only writer: a read lock gives a consistent copy.
        let model = self
            .model
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        model.applied_offset?;
        Some(SnapshotJob {
            model,
            position: self.resume_position,
            durable,
        })
    }

    /// Applies a batch under one write lock, then answers waiters and long-polls. `last`:
    /// the last batch of a poll, whose index write records how far the index covers
    /// (before a snapshot can be taken of the model: see `follower_state`).
    pub(crate) fn apply(&self, outcomes: Vec<Arc<Outcome>>, last: bool) {
        if outcomes.is_empty() {
            return;
        }
        let mut fresh = Vec::with_capacity(outcomes.len());
        let mut changed_waiters = Vec::new();
        let mut told_users = Vec::new();
        let mut changed_events = Vec::new();
        let applied_offset;
        {
            let mut model = self
                .model
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for outcome in outcomes {
                if model
                    .applied_offset
                    .is_some_and(|applied| outcome.offset <= applied)
                {
                    self.metrics.outcomes_duplicate.inc();
                    continue;
                }
                // Every request offset has an outcome, in order: a jump is a gap.
                let expected = model.applied_offset.map_or(0, |applied| applied + 1);
                if outcome.offset > expected {
                    self.status.note_gap(expected, outcome.offset);
                }
                // A replayed outcome's reply was applied the first time, but its clock's
                // effects (an expiry at the repeat's log time) are new: applied too.
                let changes = model.apply(&outcome);
                if outcome.replayed {
                    self.metrics.outcomes_replayed.inc();
                } else {
                    self.metrics.outcomes_applied.inc();
                    if let Ok(reply) = &outcome.result {
                        self.search_changes.note_reply(reply);
                    }
                }
                changed_waiters.extend(changes.waiters);
                told_users.extend(changes.users);
                live::touched_events(&outcome, &mut changed_events);
                fresh.push(outcome);
            }
            applied_offset = model.applied_offset.unwrap_or(0);
        }
        let recorded = match last {
            true => self.idempotency.record(fresh.iter().map(Arc::as_ref)),
            false => self
                .idempotency
                .record_stamped(fresh.iter().map(Arc::as_ref)),
        };
        if let Err(error) = recorded {
            self.metrics.idempotency_index_errors.inc();
            tracing::error!(%error, "recording outcomes in the idempotency index failed");
        }
        if !fresh.is_empty() {
            self.status.note_outcome();
        }
        self.pending.complete(fresh);
        self.watchers.notify(&changed_waiters);
        self.user_watchers.notify(&told_users);
        self.feeds.notify(&mut changed_events, applied_offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_is_caught_up_once_past_the_end_last_looked_up() {
        let start = Instant::now();
        let mut end = EndCheck::default();
        assert!(
            end.check_due(start) && !end.caught_up(0),
            "nothing looked up yet"
        );
        // Kafka: the outcome ends at offset 4, its commit marker is offset 5, the end 6.
        end.looked_up(6, start);
        assert!(!end.caught_up(5));
        assert!(!end.check_due(start + END_CHECK_INTERVAL / 2));
        // The next poll steps over the marker, before the next look-up is due.
        assert!(end.caught_up(6));
        assert!(end.check_due(start + END_CHECK_INTERVAL));
        // A failed look-up: not caught up, whatever the position.
        end.failed();
        assert!(!end.caught_up(6));
    }
}
