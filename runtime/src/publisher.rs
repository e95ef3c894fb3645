//! The publisher: outcomes → the outcomes log, each exactly once, as frames
//! (`engine::wire`: one record per frame of at most `OUTCOME_FRAME_BYTES_MAX` bytes). A
//! step function (one batch of outcomes) driven by its own thread in production and by the
//! simulator in tests.

use crate::applier::Applied;
use crate::logs::{last_published_offset, OpenLog};
use crate::role::Action;
use crate::shared::{PanicGuard, Shared};
use crate::{Progress, RuntimeError, RuntimeOptions};
use engine::{EngineConfig, Outcome, Reply, UserNames};
use requestlog::{LogError, LogWriter};
use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

/// How long a waiting publisher blocks before it looks again (for shutdown).
const ROLE_CHECK: Duration = Duration::from_millis(50);
/// A failing append is retried this many times before the runtime stops.
const APPEND_RETRIES_MAX: u32 = 20;
pub(crate) const APPEND_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// An open outcomes writer and what the outcomes log already holds.
pub(crate) struct Publishing {
    writer: Arc<dyn LogWriter>,
    /// The request offset of the last outcome in the outcomes log.
    pub(crate) last_published: Option<u64>,
}

impl Publishing {
    /// Opens the writer first (a fencing log, such as Kafka with
    /// `kafka.outcomes_transactional`, fences any older writer there), then reads the log's
    /// tail. Without fencing an old primary that has not read its `Promote` yet may still
    /// append after that read: only outcomes up to the `Promote`, byte for byte the ones
    /// this replica publishes, which readers drop by request offset.
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

/// The logs a publisher works on: it appends to `outcomes`, and reads `requests` only to
/// re-derive outcomes the outcomes log lacks when it becomes primary.
pub(crate) struct PublisherLogs {
    pub(crate) outcomes: Arc<dyn OpenLog>,
    pub(crate) requests: Arc<dyn OpenLog>,
}

/// Where a publisher starts.
pub(crate) struct PublisherStart {
    /// The outcomes log's last outcome, read without opening a writer.
    pub(crate) published_at_start: Option<u64>,
    /// The offset of the first outcome the engine will hand over.
    pub(crate) next_offset: u64,
    /// What the role machine decided at start (nothing to replay: caught up at once).
    pub(crate) actions: Vec<Action>,
    /// The engine's users when it started ([`engine::Engine::user_names`]).
    pub(crate) users: UserNames,
}

/// Publishes outcomes while the role machine (`role.rs`) says this replica is primary,
/// and keeps a bounded tail of them otherwise, for a promotion. It feeds the machine the
/// outcomes it handles, in order, and carries out `OpenWriter` and `StepDown`.
pub(crate) struct Publisher {
    shared: Arc<Shared>,
    outcomes_log: Arc<dyn OpenLog>,
    requests_log: Arc<dyn OpenLog>,
    /// Every replica applies the log with this configuration (`Configure` records check it).
    engine_config: EngineConfig,
    outcomes: Receiver<Applied>,
    /// The engine's users by number, to name its outcomes with.
    users: UserNames,
    /// The offset of the next outcome the engine hands over.
    next_offset: u64,
    /// The open outcomes writer, while primary.
    writer: Option<Publishing>,
    node: String,
    /// The outcomes log's last outcome when this replica started (read without opening a
    /// writer): older outcomes need not be retained.
    published_at_start: Option<u64>,
    retained: VecDeque<Outcome>,
    retained_max: usize,
    /// Outcomes gathered from the engine before publishing (each append is also cut by
    /// `append_budget`).
    publish_records_max: usize,
    append_budget: AppendBudget,
    /// The pause before a failed append is retried (none in a simulation: its time is
    /// virtual, and its log's failures are drawn, not waited out).
    append_retry_pause: Duration,
    /// The role machine's decision at start, until the first step carries it out.
    start_actions: Option<Vec<Action>>,
    /// When the engine applies records before they are durable
    /// (`RuntimeOptions::apply_before_durable`): no outcome is handled (published,
    /// retained, or shown to the role machine) before its record is durable.
    durable: Option<requestlog::DurableEnd>,
    /// A batch waiting for its records to be durable.
    held: Option<Vec<Outcome>>,
}

impl Publisher {
    pub(crate) fn new(
        shared: Arc<Shared>,
        logs: PublisherLogs,
        outcomes: Receiver<Applied>,
        start: PublisherStart,
        options: &RuntimeOptions,
        append_retry_pause: Duration,
        durable: Option<requestlog::DurableEnd>,
    ) -> Publisher {
        let PublisherStart {
            published_at_start,
            next_offset,
            actions: start_actions,
            users,
        } = start;
        Publisher {
            shared,
            outcomes_log: logs.outcomes,
            requests_log: logs.requests,
            engine_config: options.engine.clone(),
            outcomes,
            users,
            next_offset,
            writer: None,
            node: options.node.clone(),
            published_at_start,
            retained: VecDeque::new(),
            retained_max: options.standby_outcomes_max,
            publish_records_max: options.publish_records_max,
            append_budget: AppendBudget {
                records_max: options.publish_records_max,
                bytes_max: options.publish_bytes_max,
            },
            append_retry_pause,
            start_actions: Some(start_actions),
            durable,
            held: None,
        }
    }

    /// The production driver: steps, waiting up to `ROLE_CHECK` for outcomes.
    pub(crate) fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let _guard = PanicGuard {
            shared: &shared,
            thread: "publisher",
        };
        loop {
            match self.step(ROLE_CHECK) {
                Progress::Stopped => return,
                // Waits for the held batch's records to be durable (a failure is the next
                // step's to report).
                Progress::Blocked => {
                    let durable = self.durable.as_ref().expect("blocked on durability");
                    let held = self.held.as_ref().expect("blocked on a held batch");
                    let last = held.last().expect("a held batch is not empty").offset;
                    let _ = durable.wait_for(last, ROLE_CHECK);
                }
                Progress::Worked | Progress::Idle => {}
            }
        }
    }

    /// Handles one batch of outcomes (waiting up to `wait` for it), with whatever else is
    /// already waiting. Stopped once the engine is gone and everything it applied is
    /// handled, or when publishing failed (the runtime then fails).
    pub(crate) fn step(&mut self, wait: Duration) -> Progress {
        match self.try_step(wait) {
            Ok(progress) => progress,
            Err(error) => {
                self.shared.fail(format!("publishing outcomes: {error}"));
                Progress::Stopped
            }
        }
    }

    fn try_step(&mut self, wait: Duration) -> Result<Progress, RuntimeError> {
        if let Some(actions) = self.start_actions.take() {
            self.carry_out(actions)?;
            return Ok(Progress::Worked);
        }
        let batch = match self.held.take() {
            Some(batch) => batch,
            None => {
                let first = match self.outcomes.recv_timeout(wait) {
                    Ok(applied) => applied,
                    Err(RecvTimeoutError::Timeout) => return Ok(Progress::Idle),
                    // The engine stopped and everything it applied has been handled.
                    Err(RecvTimeoutError::Disconnected) => return Ok(Progress::Stopped),
                };
                // Whatever else is already waiting joins this append (group commit).
                let mut batch = Vec::with_capacity(first.outcomes.len());
                self.name(first, &mut batch);
                while batch.len() < self.publish_records_max {
                    match self.outcomes.try_recv() {
                        Ok(more) => self.name(more, &mut batch),
                        Err(_) => break,
                    }
                }
                batch
            }
        };
        if let (Some(durable), Some(last)) = (&self.durable, batch.last()) {
            // Records are durable in offset order: the last one's durability is the batch's.
            if !durable
                .covers(last.offset)
                .map_err(RuntimeError::RequestsLog)?
            {
                self.held = Some(batch);
                return Ok(Progress::Blocked);
            }
        }
        self.handle(batch)?;
        Ok(Progress::Worked)
    }

    /// Names the users of an applied batch's outcomes (learning the users it numbered
    /// first) into `batch`.
    fn name(&mut self, applied: Applied, batch: &mut Vec<Outcome>) {
        self.users.extend(applied.users_from, applied.users);
        batch.extend(
            applied
                .outcomes
                .into_iter()
                .map(|outcome| self.users.outcome(outcome)),
        );
    }

    /// Delivers a batch in order, cutting it after every outcome that can change the role
    /// (a `Promote` record's, and the one that ends catching up), and tells the role
    /// machine what was seen.
    fn handle(&mut self, mut batch: Vec<Outcome>) -> Result<(), RuntimeError> {
        while !batch.is_empty() {
            let until = self.shared.role_query(|role| role.catching_up_until());
            let cut = batch
                .iter()
                .position(|outcome| {
                    promoted_node(outcome).is_some()
                        || until.is_some_and(|until| outcome.offset + 1 >= until)
                })
                .map_or(batch.len(), |cut| cut + 1);
            let rest = batch.split_off(cut);
            let turning = batch.last().expect("a cut keeps at least one outcome");
            let offset = turning.offset;
            let named = promoted_node(turning).map(str::to_string);
            self.deliver(batch)?;
            let ((), actions) = self
                .shared
                .role_input(|role| role.outcome_seen(offset, named.as_deref()));
            self.carry_out(actions)?;
            batch = rest;
        }
        Ok(())
    }

    fn carry_out(&mut self, actions: Vec<Action>) -> Result<(), RuntimeError> {
        for action in actions {
            match action {
                Action::OpenWriter => self.become_primary()?,
                Action::StepDown => self.step_down(),
                Action::AppendPromote => {
                    unreachable!("the publisher's inputs never ask for a Promote record")
                }
            }
        }
        Ok(())
    }

    /// Publishes or retains, by whether the writer is open. A fenced writer steps down
    /// and keeps the outcomes.
    fn deliver(&mut self, outcomes: Vec<Outcome>) -> Result<(), RuntimeError> {
        if let Some(last) = outcomes.last() {
            self.next_offset = self.next_offset.max(last.offset + 1);
        }
        if self.writer.is_none() {
            self.retain(outcomes);
            return Ok(());
        }
        let published = self.publish(&outcomes);
        if let (Ok(()), Some(recent)) = (&published, self.shared.recent_outcomes.get()) {
            // Appended, every one: the readers in this process may take them from here.
            engine::wire::lock_recent(recent).extend(outcomes.into_iter().map(Arc::new));
            return Ok(());
        }
        match published {
            Err(RuntimeError::OutcomesLog(LogError::Fenced)) => {
                tracing::warn!("fenced: another replica opened the outcomes writer");
                let ((), actions) = self.shared.role_input(|role| role.fenced());
                self.carry_out(actions)?;
                self.retain(outcomes);
                Ok(())
            }
            result => result,
        }
    }

    fn retain(&mut self, batch: Vec<Outcome>) {
        let published = self.published_at_start;
        self.retained.extend(
            batch
                .into_iter()
                .filter(|outcome| Some(outcome.offset) > published),
        );
        while self.retained.len() > self.retained_max {
            self.retained.pop_front();
        }
    }

    fn step_down(&mut self) {
        tracing::warn!(
            node = self.node,
            "stepping down: publishing nothing from here on"
        );
        self.writer = None;
    }

    fn become_primary(&mut self) -> Result<(), RuntimeError> {
        let publishing = Publishing::open(self.outcomes_log.as_ref())?;
        let missing_from = publishing.last_published.map_or(0, |last| last + 1);
        // What this replica can publish from memory starts at its oldest retained outcome,
        // or (nothing retained: a restart from a snapshot) at the next one the engine
        // hands over. Anything before it that the log lacks is re-derived below.
        let first_kept = self
            .retained
            .front()
            .map_or(self.next_offset, |first| first.offset);
        self.shared
            .update(|status| status.published_offset = publishing.last_published);
        self.writer = Some(publishing);
        if missing_from < first_kept {
            self.rederive(missing_from, first_kept)?;
        }
        let retained: Vec<Outcome> = std::mem::take(&mut self.retained).into();
        self.shared.role_input(|role| role.writer_opened());
        tracing::info!(node = self.node, "primary: publishing outcomes");
        self.deliver(retained)
    }

    /// Publishes the outcomes of offsets `from..until`, which the outcomes log lacks and
    /// this replica no longer holds (a backlog over `standby_outcomes_max`, or a restart
    /// from a snapshot past the last published outcome): outcomes are a pure function of
    /// the requests log, so a replay from offset 0 on a second engine derives them exactly
    /// as they were first computed. Never skipped: the outcomes log has no gap.
    /// (Cost: a replay of the log up to `until`; starting from an older snapshot is the
    /// follow-up.)
    fn rederive(&mut self, from: u64, until: u64) -> Result<(), RuntimeError> {
        tracing::warn!(
            from,
            until,
            "re-deriving outcomes the outcomes log lacks: replaying the requests log from offset 0"
        );
        let mut engine = engine::Engine::new(self.engine_config.clone());
        let mut reader = self
            .requests_log
            .open_reader()
            .map_err(RuntimeError::RequestsLog)?;
        let mut next = 0;
        while next < until {
            let wanted = usize::try_from(until - next)
                .unwrap_or(usize::MAX)
                .min(self.publish_records_max);
            let records = reader
                .poll(wanted, ROLE_CHECK)
                .map_err(RuntimeError::RequestsLog)?;
            let mut derived = Vec::new();
            for record in records.into_iter().map(crate::reader::decode) {
                if record.offset >= until {
                    break;
                }
                let outcome = match &record.request {
                    Ok(request) => engine.apply(record.offset, record.timestamp_ms, request),
                    Err(reason) => {
                        engine.apply_undecodable(record.offset, record.timestamp_ms, reason)
                    }
                };
                let outcome = engine.named(outcome);
                next = record.offset + 1;
                if outcome.offset >= from {
                    derived.push(outcome);
                }
            }
            if !derived.is_empty() {
                self.publish(&derived)?;
            }
        }
        Ok(())
    }

    /// Appends the outcomes the log does not hold yet, as frames cut into appends (see
    /// [`Appends`]), retrying failures. After a failure the log is asked for its last
    /// complete outcome, and publishing goes on from the next outcome's frame 0.
    fn publish(&mut self, outcomes: &[Outcome]) -> Result<(), RuntimeError> {
        let mut appends = Appends::new(outcomes, self.append_budget);
        let mut failures = 0;
        loop {
            let Some(publishing) = &mut self.writer else {
                unreachable!("publish is only called while the writer is open");
            };
            let Some(append) = appends.next(publishing.last_published) else {
                break;
            };
            match publishing.writer.append(append.payloads) {
                Ok(_) => {
                    failures = 0;
                    if let Some(completed) = append.completed {
                        publishing.last_published = Some(completed);
                        self.shared
                            .update(|status| status.published_offset = Some(completed));
                    }
                }
                Err(
                    error @ (LogError::Fenced
                    | LogError::Closed
                    | LogError::Storage(_)
                    | LogError::Journal(_)
                    | LogError::Files(_)
                    | LogError::PayloadTooLarge { .. }
                    | LogError::TooManyRecords { .. }),
                ) => {
                    return Err(RuntimeError::OutcomesLog(error));
                }
                Err(error) if failures < APPEND_RETRIES_MAX => {
                    failures += 1;
                    tracing::warn!(%error, failures, "outcomes append failed; retrying");
                    if !self.append_retry_pause.is_zero() {
                        std::thread::sleep(self.append_retry_pause);
                    }
                    // Part of the failed append may have landed: ask the log what it holds.
                    publishing.last_published = last_published_offset(self.outcomes_log.as_ref())?
                        .max(publishing.last_published);
                    appends = Appends::new(outcomes, self.append_budget);
                }
                Err(error) => return Err(RuntimeError::OutcomesLog(error)),
            }
        }
        Ok(())
    }
}

/// The most one append to the outcomes log may carry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AppendBudget {
    pub(crate) records_max: usize,
    pub(crate) bytes_max: usize,
}

/// One append's frames, and the last outcome they complete.
struct Append {
    payloads: Vec<Vec<u8>>,
    completed: Option<u64>,
}

/// Cuts outcomes into appends of frames within the budget. An outcome's frames go in one
/// append whenever they fit one (an append that cannot take them all is cut before
/// them); an outcome too large for any append is spread over several, whole appends of
/// its own frames. Readers reassemble, and a publisher that stops in the middle of an
/// outcome publishes it again from frame 0, so a torn outcome is never lost.
struct Appends<'a> {
    outcomes: &'a [Outcome],
    budget: AppendBudget,
    /// The next outcome to take frames from.
    next: usize,
    /// Frames of `outcomes[next]` not appended yet (empty: not encoded yet).
    frames: VecDeque<Vec<u8>>,
}

impl<'a> Appends<'a> {
    fn new(outcomes: &'a [Outcome], budget: AppendBudget) -> Appends<'a> {
        assert!(budget.records_max > 0);
        assert!(budget.bytes_max >= engine::wire::OUTCOME_FRAME_BYTES_MAX);
        Appends {
            outcomes,
            budget,
            next: 0,
            frames: VecDeque::new(),
        }
    }

    /// The next append, skipping outcomes at or below `published`; `None` when done.
    fn next(&mut self, published: Option<u64>) -> Option<Append> {
        let mut payloads: Vec<Vec<u8>> = Vec::new();
        let mut bytes = 0;
        let mut completed = None;
        loop {
            if self.frames.is_empty() {
                while self
                    .outcomes
                    .get(self.next)
                    .is_some_and(|outcome| Some(outcome.offset) <= published)
                {
                    self.next += 1;
                }
                let Some(outcome) = self.outcomes.get(self.next) else {
                    break;
                };
                self.frames = engine::wire::encode_outcome_frames(outcome).into();
            }
            let offset = self.outcomes[self.next].offset;
            let frames_bytes: usize = self.frames.iter().map(Vec::len).sum();
            if payloads.len() + self.frames.len() <= self.budget.records_max
                && bytes + frames_bytes <= self.budget.bytes_max
            {
                bytes += frames_bytes;
                payloads.extend(self.frames.drain(..));
                completed = Some(offset);
                self.next += 1;
                continue;
            }
            if !payloads.is_empty() {
                break;
            }
            // Too large for any append: as many of its frames as fit this one.
            while let Some(frame) = self.frames.front() {
                if payloads.len() == self.budget.records_max
                    || bytes + frame.len() > self.budget.bytes_max
                {
                    break;
                }
                bytes += frame.len();
                payloads.extend(self.frames.pop_front());
            }
            assert!(!payloads.is_empty(), "one frame always fits an append");
            if self.frames.is_empty() {
                completed = Some(offset);
                self.next += 1;
            }
            break;
        }
        debug_assert!(payloads.len() <= self.budget.records_max);
        debug_assert!(bytes <= self.budget.bytes_max);
        (!payloads.is_empty()).then_some(Append {
            payloads,
            completed,
        })
    }
}

/// The node a `Promote` record's outcome names.
fn promoted_node(outcome: &Outcome) -> Option<&str> {
    match &outcome.result {
        Ok(Reply::Promoted { node, .. }) => Some(node),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::wire::{frame_header, OUTCOME_FRAME_BYTES_MAX};
    use engine::{Effect, EventId, WaitEnd, WaiterId};

    /// An outcome of about `bytes` bytes (at least a few).
    fn outcome(offset: u64, bytes: usize) -> Outcome {
        Outcome {
            offset,
            time_ms: 1,
            replayed: false,
            effects_before_reply: 0,
            idempotency: None,
            result: Ok(Reply::Ticked),
            effects: (0..bytes as u64 / 24)
                .map(|waiter| Effect::WaitlistEnded {
                    waiter: WaiterId(waiter),
                    event: EventId(0),
                    user: format!("user-{waiter:012}").into(),
                    reason: WaitEnd::SoldOut,
                })
                .collect(),
        }
    }

    /// One append as (request offset, frame index) per record, and what it completes.
    type CutAppend = (Vec<(u64, u32)>, Option<u64>);

    /// Every append as (request offset, frame index) per record, and what it completes.
    fn cut(outcomes: &[Outcome], budget: AppendBudget, published: Option<u64>) -> Vec<CutAppend> {
        let mut appends = Appends::new(outcomes, budget);
        std::iter::from_fn(|| appends.next(published))
            .map(|append| {
                let bytes: usize = append.payloads.iter().map(Vec::len).sum();
                assert!(append.payloads.len() <= budget.records_max);
                assert!(bytes <= budget.bytes_max, "{bytes} bytes");
                let frames = append
                    .payloads
                    .iter()
                    .map(|payload| {
                        let header = frame_header(payload).unwrap();
                        (header.offset, header.index)
                    })
                    .collect();
                (frames, append.completed)
            })
            .collect()
    }

    #[test]
    fn appends_are_cut_by_records_and_bytes_keeping_an_outcome_whole_when_it_fits() {
        let budget = AppendBudget {
            records_max: 3,
            bytes_max: 3 * OUTCOME_FRAME_BYTES_MAX,
        };
        let small = |offset| outcome(offset, 10);
        // By records: three outcomes an append.
        assert_eq!(
            cut(&(0..5).map(small).collect::<Vec<_>>(), budget, None),
            [
                (vec![(0, 0), (1, 0), (2, 0)], Some(2)),
                (vec![(3, 0), (4, 0)], Some(4)),
            ]
        );
        // Published outcomes are skipped.
        assert_eq!(
            cut(&(0..5).map(small).collect::<Vec<_>>(), budget, Some(3)),
            [(vec![(4, 0)], Some(4))]
        );
        // A two-frame outcome that does not fit after two others starts the next append.
        let two_frames = outcome(2, OUTCOME_FRAME_BYTES_MAX + 1000);
        assert_eq!(
            cut(&[small(0), small(1), two_frames, small(3)], budget, None),
            [
                (vec![(0, 0), (1, 0)], Some(1)),
                (vec![(2, 0), (2, 1), (3, 0)], Some(3)),
            ]
        );
        // By bytes: two outcomes of most of a frame each cannot share an append of two
        // frames' bytes with a third.
        let budget = AppendBudget {
            records_max: 100,
            bytes_max: 2 * OUTCOME_FRAME_BYTES_MAX,
        };
        let large = |offset| outcome(offset, OUTCOME_FRAME_BYTES_MAX * 3 / 4);
        assert_eq!(
            cut(&[large(0), large(1), large(2)], budget, None),
            [(vec![(0, 0), (1, 0)], Some(1)), (vec![(2, 0)], Some(2)),]
        );
    }

    #[test]
    fn an_outcome_larger_than_an_append_goes_over_several_of_its_own() {
        let budget = AppendBudget {
            records_max: 2,
            bytes_max: 100 * OUTCOME_FRAME_BYTES_MAX,
        };
        let huge = outcome(1, 4 * OUTCOME_FRAME_BYTES_MAX + 1000);
        let frames = engine::wire::encode_outcome_frames(&huge).len() as u32;
        assert_eq!(frames, 5);
        assert_eq!(
            cut(
                &[outcome(0, 10), huge.clone(), outcome(2, 10)],
                budget,
                None
            ),
            [
                (vec![(0, 0)], Some(0)),
                (vec![(1, 0), (1, 1)], None),
                (vec![(1, 2), (1, 3)], None),
                (vec![(1, 4), (2, 0)], Some(2)),
            ]
        );
        // The same by bytes.
        let budget = AppendBudget {
            records_max: 100,
            bytes_max: 2 * OUTCOME_FRAME_BYTES_MAX,
        };
        let appends = cut(&[huge], budget, None);
        assert_eq!(appends.len(), 3);
        assert_eq!(appends.last().unwrap().1, Some(1));
    }
}
