//! The write path: encode a request, append it to the requests log, wait for its outcome.
//!
//! ```text
//! handler ──start_append──▶ the log's own queue (embedded: its writer thread's group commit)
//!    │       or, when the log has no such path or its queue is full:
//!    │ ──job──▶ bounded queue ──▶ appender threads (batch, LogWriter::append: durable)
//!    │                                   │ durable at `offset`: Pending::attach(offset, answer)
//!    │                                   ▼
//!    │                 Pending ◀── follower: read model applied, then complete(outcomes)
//!    ◀──── one answer: the outcome, or why none comes
//!    ▼
//! answer from the outcome (or 503 after outcome_timeout)
//! ```
//!
//! The handler waits on one channel, woken once: whoever learns that the record is durable
//! (the log's writer thread, or an appender thread) files the handler's answer channel in
//! [`Pending`] under the record's offset, and the follower answers it there. The follower
//! may complete an offset before it is filed (durability's report and the outcome race):
//! completed outcomes nobody waited for are kept, a bounded number of them, and looked up
//! under the same lock as filing, so no outcome is missed; and an answer is never sent
//! before the record is durable, since it is filed only then.

use crate::error::{AppError, Reason};
use crate::metrics::Metrics;
use engine::{Outcome, Reply, Request};
use requestlog::{AppendDone, BeforeCommit, LogWriter};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Outcomes waited for, and outcomes that arrived before anyone waited.
pub(crate) struct Pending {
    inner: Mutex<PendingInner>,
    completed_max: usize,
    /// Observes, per answered write, how long its outcome took once its record was durable.
    after_durable: Option<prometheus_client::metrics::histogram::Histogram>,
}

struct PendingInner {
    /// Each with when its record was known durable.
    waiters: HashMap<u64, (oneshot::Sender<Answer>, Instant)>,
    /// `waiters` is swept of answers nobody waits for any more (their writer gave up)
    /// when it grows past this.
    sweep_at: usize,
    completed: HashMap<u64, Arc<Outcome>>,
    completed_order: VecDeque<u64>,
    /// The highest input offset completed so far.
    completed_offset: Option<u64>,
}

/// The fewest waiters worth sweeping for writers that gave up.
const SWEEP_AT_MIN: usize = 1024;

/// What a write's handler is told, once: its outcome, or why none will come.
#[derive(Debug)]
pub(crate) enum Answer {
    Outcome(Arc<Outcome>),
    /// The append failed: nothing (or perhaps something) was written.
    Failed(AppendFailed),
    /// The outcome came and was forgotten (the completed cache overflowed).
    Gone,
}

impl Pending {
    pub(crate) fn new(completed_max: usize) -> Pending {
        assert!(completed_max > 0);
        Pending {
            inner: Mutex::new(PendingInner {
                waiters: HashMap::new(),
                sweep_at: SWEEP_AT_MIN,
                completed: HashMap::new(),
                completed_order: VecDeque::new(),
                completed_offset: None,
            }),
            completed_max,
            after_durable: None,
        }
    }

    /// The same, observing into `histogram` how long each answered write's outcome took
    /// once its record was durable (`boxoffice_outcome_after_durable_seconds`).
    pub(crate) fn observing(
        self,
        histogram: prometheus_client::metrics::histogram::Histogram,
    ) -> Pending {
        Pending {
            after_durable: Some(histogram),
            ..self
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PendingInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The request at `offset` is durable: `answer` gets its outcome, at once when the
    /// follower already completed it, else when it does. Called only once the record is
    /// durable, so nothing is answered before that.
    pub(crate) fn attach(&self, offset: u64, answer: oneshot::Sender<Answer>) {
        let mut inner = self.lock();
        if let Some(outcome) = inner.completed.remove(&offset) {
            drop(inner);
            if let Some(histogram) = &self.after_durable {
                histogram.observe(0.0); // known before its record was (reported) durable
            }
            let _ = answer.send(Answer::Outcome(outcome));
            return;
        }
        if inner
            .completed_offset
            .is_some_and(|completed| completed >= offset)
        {
            drop(inner);
            let _ = answer.send(Answer::Gone);
            return;
        }
        if inner.waiters.len() >= inner.sweep_at {
            // Writers that timed out leave their entry (they never learn their offset);
            // an outcome that never comes (a stopped engine) must not keep it forever.
            inner.waiters.retain(|_, (waiter, _)| !waiter.is_closed());
            inner.sweep_at = (inner.waiters.len() * 2).max(SWEEP_AT_MIN);
        }
        let previous = inner.waiters.insert(offset, (answer, Instant::now()));
        assert!(previous.is_none(), "one writer per offset");
    }

    /// Called by the follower after the read model applied the outcomes: one lock for
    /// the batch, and the writers are woken after it is released (a wake-up is a system
    /// call, and the log's writer thread takes this lock to file answers).
    pub(crate) fn complete(&self, outcomes: impl IntoIterator<Item = Arc<Outcome>>) {
        let mut answers = Vec::new();
        {
            let mut inner = self.lock();
            for outcome in outcomes {
                if let Some(answer) = self.complete_one(&mut inner, outcome) {
                    answers.push(answer);
                }
            }
        }
        for (waiter, outcome, durable_at) in answers {
            // Observed out of the lock (a histogram takes a lock of its own).
            if let Some(histogram) = &self.after_durable {
                histogram.observe(durable_at.elapsed().as_secs_f64());
            }
            // The writer may have timed out meanwhile; then nobody needs it.
            let _ = waiter.send(Answer::Outcome(outcome));
        }
    }

    /// Completes one outcome; its waiter, if one is filed, to be answered.
    fn complete_one(
        &self,
        inner: &mut PendingInner,
        outcome: Arc<Outcome>,
    ) -> Option<(oneshot::Sender<Answer>, Arc<Outcome>, Instant)> {
        let offset = outcome.offset;
        inner.completed_offset = Some(
            inner
                .completed_offset
                .map_or(offset, |completed| completed.max(offset)),
        );
        if let Some((waiter, durable_at)) = inner.waiters.remove(&offset) {
            return Some((waiter, outcome, durable_at));
        }
        // Ticks and promotions are appended by the engine runtime; no ingress waits for them.
        if matches!(
            outcome.result,
            Ok(Reply::Ticked | Reply::Promoted { .. } | Reply::Configured)
        ) {
            return None;
        }
        inner.completed.insert(offset, outcome);
        inner.completed_order.push_back(offset);
        while inner.completed_order.len() > self.completed_max {
            let oldest = inner
                .completed_order
                .pop_front()
                .expect("longer than the maximum");
            inner.completed.remove(&oldest);
        }
        None
    }

    /// Writes waiting for their outcome (a writer that gave up is not counted).
    pub(crate) fn waiting(&self) -> usize {
        self.lock()
            .waiters
            .values()
            .filter(|(waiter, _)| !waiter.is_closed())
            .count()
    }
}

struct AppendJob {
    payload: Vec<u8>,
    answer: oneshot::Sender<Answer>,
}

/// Why an append gave no offset, as its writer is told.
#[derive(Clone, Debug)]
pub(crate) enum AppendFailed {
    /// What must precede the commit (a new user's personal-data entry) could not be made
    /// durable: the commit was refused whole, so nothing of the request was written.
    NothingWritten(String),
    /// The log failed: the record may or may not be in it (a Kafka delivery timeout, say).
    MaybeWritten(String),
}

impl From<&requestlog::LogError> for AppendFailed {
    fn from(error: &requestlog::LogError) -> AppendFailed {
        match error {
            requestlog::LogError::BeforeCommit(reason) => {
                AppendFailed::NothingWritten(reason.clone())
            }
            error => AppendFailed::MaybeWritten(error.to_string()),
        }
    }
}

/// Appends requests and waits for their outcomes.
pub(crate) struct Writes {
    /// `None` once closed: new writes are refused, the appenders drain and stop.
    jobs: Mutex<Option<mpsc::Sender<AppendJob>>>,
    appenders: Mutex<Vec<std::thread::JoinHandle<()>>>,
    pending: Arc<Pending>,
    timeout: Duration,
    metrics: Arc<Metrics>,
    /// Tried first (`LogWriter::start_append`): no appender thread in between.
    writer: Arc<dyn LogWriter>,
    /// When a write of this ingress last gave up waiting (its append or its outcome did not
    /// come within the outcome timeout): with the follower's last outcome, whether the
    /// shard is answering (`ShardState::down`).
    timed_out_at: Mutex<Option<Instant>>,
    /// What the appender threads make durable before each append, when the log's own
    /// writer does not ([`Writes::sync_before_commits`]).
    before_append: Arc<std::sync::OnceLock<BeforeCommit>>,
    /// The hook the log's writer runs (it holds it weakly: this keeps it alive).
    before_commit: std::sync::OnceLock<BeforeCommit>,
}

impl Writes {
    /// Starts `threads` appender threads. They stop at [`Writes::close`] (or when the last
    /// `Writes` is dropped).
    pub(crate) fn start(
        writer: Arc<dyn LogWriter>,
        pending: Arc<Pending>,
        metrics: Arc<Metrics>,
        timeout: Duration,
        queue_depth: usize,
        batch_max: usize,
        threads: usize,
    ) -> Writes {
        let (jobs, receiver) = mpsc::channel(queue_depth);
        let receiver = Arc::new(Mutex::new(receiver));
        let before_append = Arc::new(std::sync::OnceLock::new());
        let appenders = (0..threads)
            .map(|index| {
                let (writer, receiver, pending, metrics, before) = (
                    Arc::clone(&writer),
                    Arc::clone(&receiver),
                    Arc::clone(&pending),
                    Arc::clone(&metrics),
                    Arc::clone(&before_append),
                );
                std::thread::Builder::new()
                    .name(format!("ingress-appender-{index}"))
                    .spawn(move || {
                        append_loop(&*writer, &receiver, &pending, &metrics, &before, batch_max)
                    })
                    .expect("spawning an appender thread")
            })
            .collect();
        Writes {
            jobs: Mutex::new(Some(jobs)),
            appenders: Mutex::new(appenders),
            pending,
            timeout,
            metrics,
            writer,
            timed_out_at: Mutex::new(None),
            before_append,
            before_commit: std::sync::OnceLock::new(),
        }
    }

    /// Makes `hook` run before every commit of this shard's requests: in the log's writer
    /// thread where it has one (embedded), else in the appender threads before each append
    /// (Kafka). Set once, before the first request.
    pub(crate) fn sync_before_commits(&self, hook: BeforeCommit) {
        let set = match self.writer.sync_before_commit(&hook) {
            true => self.before_commit.set(hook),
            false => self.before_append.set(hook),
        };
        assert!(set.is_ok(), "one hook before commits");
    }

    /// The tables this shard's requests log keeps beside its records, if it keeps any.
    pub(crate) fn hosted_tables(&self) -> Option<requestlog::HostedTables> {
        self.writer.hosted_tables()
    }

    /// When a write of this ingress last gave up waiting, if one ever did.
    pub(crate) fn timed_out_at(&self) -> Option<Instant> {
        *self
            .timed_out_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Refuses new writes, lets the appenders finish what is queued, and joins them.
    pub(crate) fn close(&self) {
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let appenders = std::mem::take(
            &mut *self
                .appenders
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for appender in appenders {
            if appender.join().is_err() {
                tracing::error!("an appender thread panicked");
            }
        }
    }

    /// Appends the request and returns its outcome once the read model has applied it.
    /// 503 when the log refuses the append or the outcome does not come in time.
    pub(crate) async fn submit(&self, request: &Request) -> Result<Arc<Outcome>, AppError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let payload = engine::wire::encode_request(request);
        // Bodies are capped far below this, so only a bug gets here.
        if payload.len() > engine::wire::RECORD_BYTES_MAX {
            return Err(AppError::internal(format!(
                "a {}-byte record is over the record limit",
                payload.len()
            )));
        }
        let (answer, mut answered) = oneshot::channel();
        let jobs = self
            .jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let jobs = jobs.ok_or_else(|| {
            AppError::unavailable(
                Reason::ShuttingDown,
                "the service is shutting down; nothing was applied",
            )
        })?;
        let payload = match self
            .writer
            .start_append(vec![payload], self.completion(answer))
        {
            Ok(()) => None,
            Err(refused) => {
                // Through an appender thread, with an answer channel of its own (`done`
                // owns the first one).
                drop(refused.done);
                let (answer, fallback) = oneshot::channel();
                answered = fallback;
                let payload = refused.payloads.into_iter().next();
                Some((payload.expect("one payload handed back"), answer))
            }
        };
        if let Some((payload, answer)) = payload {
            self.queue(&jobs, deadline, AppendJob { payload, answer })
                .await?;
        }
        self.wait(deadline, answered).await
    }

    /// A `start_append` callback (run by the log's writer thread once the record is
    /// durable, or failed): counts the append and files `answer` under the record's offset,
    /// where the follower answers it (the handler is woken once, by the outcome).
    fn completion(&self, answer: oneshot::Sender<Answer>) -> AppendDone {
        let metrics = Arc::clone(&self.metrics);
        let pending = Arc::clone(&self.pending);
        let started = Instant::now();
        Box::new(move |result| {
            metrics.log_append.observe(started.elapsed().as_secs_f64());
            match result {
                Ok(appended) => {
                    metrics.log_appended_records.inc();
                    let appended = appended.into_iter().next().expect("one record appended");
                    pending.attach(appended.offset, answer);
                }
                Err(error) => {
                    metrics.log_append_errors.inc();
                    tracing::error!(%error, "appending to the requests log failed");
                    let _ = answer.send(Answer::Failed(AppendFailed::from(&error)));
                }
            }
        })
    }

    /// Queues `job` for the appender threads.
    async fn queue(
        &self,
        jobs: &mpsc::Sender<AppendJob>,
        deadline: tokio::time::Instant,
        job: AppendJob,
    ) -> Result<(), AppError> {
        match tokio::time::timeout_at(deadline, jobs.send(job)).await {
            Err(_) => Err(self.timed_out()),
            Ok(Err(_)) => Err(AppError::unavailable(
                Reason::ShuttingDown,
                "the log is shut down; nothing was applied",
            )),
            Ok(Ok(())) => Ok(()),
        }
    }

    fn timed_out(&self) -> AppError {
        *self
            .timed_out_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
        self.metrics.outcome_timeouts.inc();
        AppError::outcome_unknown(
            Reason::NotAnsweredInTime,
            "the engine did not answer in time",
        )
    }

    /// Waits for the one answer: the outcome (filed once the record was durable), or why
    /// none comes.
    async fn wait(
        &self,
        deadline: tokio::time::Instant,
        answered: oneshot::Receiver<Answer>,
    ) -> Result<Arc<Outcome>, AppError> {
        match tokio::time::timeout_at(deadline, answered).await {
            // The record may be in the log; its filed answer is swept once nobody waits.
            Err(_) => Err(self.timed_out()),
            // The appender (or the log's writer) dropped it: the record may be in the log.
            Ok(Err(_)) => Err(AppError::outcome_unknown(
                Reason::ShuttingDown,
                "the service is shutting down",
            )),
            Ok(Ok(Answer::Outcome(outcome))) => Ok(outcome),
            // Refused before anything was written: a definite failure, safe to retry.
            Ok(Ok(Answer::Failed(AppendFailed::NothingWritten(reason)))) => {
                tracing::warn!(%reason, "append refused before its commit");
                Err(AppError::unavailable(
                    Reason::PersonalDataUnavailable,
                    "the personal-data store cannot be written; nothing was applied, try again",
                ))
            }
            // A failed append (a Kafka delivery timeout, say) may still have written it.
            Ok(Ok(Answer::Failed(AppendFailed::MaybeWritten(error)))) => {
                tracing::warn!(%error, "append failed");
                Err(AppError::outcome_unknown(
                    Reason::LogNotWritable,
                    "the request log is not writable",
                ))
            }
            Ok(Ok(Answer::Gone)) => Err(AppError::outcome_unknown(
                Reason::OutcomeMissed,
                "the outcome was missed",
            )),
        }
    }
}

fn append_loop(
    writer: &dyn LogWriter,
    receiver: &Mutex<mpsc::Receiver<AppendJob>>,
    pending: &Pending,
    metrics: &Metrics,
    before_append: &std::sync::OnceLock<BeforeCommit>,
    batch_max: usize,
) {
    loop {
        let mut batch = Vec::with_capacity(batch_max);
        {
            // One thread gathers a batch while another may be appending the previous one.
            let mut receiver = receiver
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let Some(first) = receiver.blocking_recv() else {
                return;
            };
            batch.push(first);
            while batch.len() < batch_max {
                match receiver.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        // A writer that gave up before its record was written is dropped here: nothing of it
        // reaches the log.
        batch.retain(|job| !job.answer.is_closed());
        if batch.is_empty() {
            continue;
        }
        let (payloads, answers): (Vec<Vec<u8>>, Vec<_>) = batch
            .into_iter()
            .map(|job| (job.payload, job.answer))
            .unzip();
        let count = payloads.len();
        let started = Instant::now();
        // No tables of this log to add to: the hook makes its writes durable itself.
        let result = match before_append.get().map(|hook| hook.before_commit(None)) {
            Some(Err(reason)) => Err(requestlog::LogError::BeforeCommit(reason)),
            Some(Ok(added)) => {
                assert!(!added, "nothing is added to a commit without tables");
                writer.append(payloads)
            }
            None => writer.append(payloads),
        };
        metrics.log_append.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(appended) => {
                assert_eq!(appended.len(), count, "one Appended per payload");
                metrics.log_appended_records.inc_by(count as u64);
                for (answer, appended) in answers.into_iter().zip(appended) {
                    pending.attach(appended.offset, answer);
                }
            }
            Err(error) => {
                metrics.log_append_errors.inc();
                tracing::error!(%error, records = count, "appending to the requests log failed");
                let failed = AppendFailed::from(&error);
                for answer in answers {
                    let _ = answer.send(Answer::Failed(failed.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use requestlog::Appended;

    fn outcome(offset: u64) -> Arc<Outcome> {
        Arc::new(Outcome {
            offset,
            time_ms: 0,
            replayed: false,
            result: Err(engine::Rejection::SoldOut {
                category: None,
                free: 0,
            }),
            effects: vec![],
            effects_before_reply: 0,
            idempotency: None,
        })
    }

    fn attached(pending: &Pending, offset: u64) -> oneshot::Receiver<Answer> {
        let (answer, answered) = oneshot::channel();
        pending.attach(offset, answer);
        answered
    }

    fn outcome_offset(answered: &mut oneshot::Receiver<Answer>) -> Option<u64> {
        match answered.try_recv() {
            Ok(Answer::Outcome(outcome)) => Some(outcome.offset),
            _ => None,
        }
    }

    #[test]
    fn an_outcome_before_its_writer_registers_is_not_lost() {
        let pending = Pending::new(2);
        pending.complete([outcome(5)]);
        assert_eq!(outcome_offset(&mut attached(&pending, 5)), Some(5));
        let mut waiting = attached(&pending, 6);
        assert!(
            waiting.try_recv().is_err(),
            "not answered before its outcome"
        );
        pending.complete([outcome(6)]);
        assert_eq!(outcome_offset(&mut waiting), Some(6));
        pending.complete((7..10).map(outcome));
        // Only the last two are kept; an older one is known to be gone.
        assert!(matches!(attached(&pending, 7).try_recv(), Ok(Answer::Gone)));
        assert_eq!(outcome_offset(&mut attached(&pending, 9)), Some(9));
        assert_eq!(pending.waiting(), 0);
    }

    #[test]
    fn every_answered_write_observes_how_long_its_outcome_took_once_durable() {
        let histogram = prometheus_client::metrics::histogram::Histogram::new([0.001, 1.0]);
        let pending = Pending::new(4).observing(histogram.clone());
        pending.complete([outcome(1)]); // before its writer registers: observed as 0
        assert_eq!(outcome_offset(&mut attached(&pending, 1)), Some(1));
        let mut waiting = attached(&pending, 2);
        let _given_up = attached(&pending, 3);
        pending.complete([outcome(2), outcome(3), outcome(4)]); // 4: nobody waits
        assert_eq!(outcome_offset(&mut waiting), Some(2));
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("after_durable", "", histogram);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        // 1 (at once), 2 and 3 (its writer gone, the outcome came all the same): not 4.
        assert!(text.contains("after_durable_count 3\n"), "{text}");
        assert!(
            text.contains("after_durable_bucket{le=\"1.0\"} 3\n"),
            "{text}"
        );
    }

    /// A writer that gave up (its outcome never came: a stopped engine) leaves its filed
    /// answer; those are swept, so they cannot pile up, and the others still get theirs.
    #[test]
    fn answers_nobody_waits_for_are_swept() {
        let pending = Pending::new(2);
        for offset in 0..SWEEP_AT_MIN as u64 {
            drop(attached(&pending, offset));
        }
        let mut alive = attached(&pending, 5_000);
        assert_eq!(pending.waiting(), 1, "given-up writers are not counted");
        assert!(
            pending.lock().waiters.len() <= 1,
            "swept when the table reached {SWEEP_AT_MIN}"
        );
        pending.complete([outcome(5_000)]);
        assert_eq!(outcome_offset(&mut alive), Some(5_000));
    }

    /// A log whose `start_append` keeps the callback until the test says the record is
    /// durable, as the embedded log's writer thread does until its group commit returns.
    #[derive(Default)]
    struct HeldLog {
        held: Mutex<Vec<(usize, AppendDone)>>,
    }

    impl LogWriter for HeldLog {
        fn append(&self, _: Vec<Vec<u8>>) -> Result<Vec<Appended>, requestlog::LogError> {
            unreachable!("start_append takes every append")
        }

        fn end_offset(&self) -> Result<u64, requestlog::LogError> {
            Ok(0)
        }

        fn start_append(
            &self,
            payloads: Vec<Vec<u8>>,
            done: AppendDone,
        ) -> Result<(), requestlog::StartRefused> {
            self.held.lock().unwrap().push((payloads.len(), done));
            Ok(())
        }
    }

    /// A log with neither `start_append` nor hooks (as Kafka): what happens, in order.
    #[derive(Default)]
    struct RecordingLog {
        events: Arc<Mutex<Vec<&'static str>>>,
    }

    impl LogWriter for RecordingLog {
        fn append(&self, payloads: Vec<Vec<u8>>) -> Result<Vec<Appended>, requestlog::LogError> {
            self.events.lock().unwrap().push("append");
            Ok((0..payloads.len() as u64)
                .map(|offset| Appended {
                    offset,
                    timestamp_ms: 1,
                })
                .collect())
        }

        fn end_offset(&self) -> Result<u64, requestlog::LogError> {
            Ok(0)
        }
    }

    /// Where the log's writer cannot run it, the appender makes what must precede a commit
    /// durable before each append, and a failure of it appends nothing and answers 503.
    #[tokio::test]
    async fn the_appender_syncs_what_must_precede_a_commit_before_appending() {
        let log = Arc::new(RecordingLog::default());
        let events = Arc::clone(&log.events);
        let pending = Arc::new(Pending::new(16));
        let writes = Writes::start(
            Arc::clone(&log) as Arc<dyn LogWriter>,
            Arc::clone(&pending),
            Arc::new(Metrics::default()),
            Duration::from_secs(60),
            16,
            16,
            1,
        );
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (hook_events, hook_failing) = (Arc::clone(&events), Arc::clone(&failing));
        writes.sync_before_commits(Arc::new(move || {
            hook_events.lock().unwrap().push("sync");
            match hook_failing.load(std::sync::atomic::Ordering::SeqCst) {
                true => Err("no space left".into()),
                false => Ok(()),
            }
        }));
        pending.complete([outcome(0)]);
        let request = Request::new(engine::Command::Tick);
        let answered = writes
            .submit(&request)
            .await
            .expect("appended and answered");
        assert_eq!(answered.offset, 0);
        assert_eq!(*events.lock().unwrap(), ["sync", "append"]);

        failing.store(true, std::sync::atomic::Ordering::SeqCst);
        let refused = writes.submit(&request).await.expect_err("refused");
        // Nothing was written: a definite 503 to retry, not "outcome unknown".
        assert_eq!(refused.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.reason, Reason::PersonalDataUnavailable);
        assert!(
            refused.message.contains("nothing was applied"),
            "{}",
            refused.message
        );
        assert_eq!(
            *events.lock().unwrap(),
            ["sync", "append", "sync"],
            "nothing appended after a failed sync"
        );
        writes.close();
    }

    fn poll<F: std::future::Future>(
        future: &mut std::pin::Pin<&mut F>,
    ) -> std::task::Poll<F::Output> {
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        future.as_mut().poll(&mut context)
    }

    /// Nothing is acknowledged before its request is durable and its outcome known: with
    /// no appender thread between the handler and the log, the answer still waits for the
    /// log's "durable" and then for the outcome, in that order.
    #[tokio::test]
    async fn a_write_is_answered_only_once_durable_and_its_outcome_is_known() {
        let log = Arc::new(HeldLog::default());
        let pending = Arc::new(Pending::new(16));
        let writes = Writes::start(
            Arc::clone(&log) as Arc<dyn LogWriter>,
            Arc::clone(&pending),
            Arc::new(Metrics::default()),
            Duration::from_secs(60),
            16,
            16,
            1,
        );
        let request = Request::new(engine::Command::Tick);
        let mut submitted = std::pin::pin!(writes.submit(&request));
        assert!(poll(&mut submitted).is_pending());
        // The outcome may even come first (the follower raced ahead): still not answered,
        // since the append has not said "durable".
        pending.complete([outcome(7)]);
        assert!(poll(&mut submitted).is_pending());
        let (count, done) = log.held.lock().unwrap().pop().expect("the append started");
        assert_eq!(count, 1);
        assert_eq!(pending.waiting(), 0, "nobody registered before durable");
        done(Ok(vec![Appended {
            offset: 7,
            timestamp_ms: 1,
        }]));
        match poll(&mut submitted) {
            std::task::Poll::Ready(Ok(outcome)) => assert_eq!(outcome.offset, 7),
            other => panic!(
                "answered with {:?}",
                other.map(|result| result.map(|o| o.offset))
            ),
        }

        // And the usual order: durable, then the outcome.
        let mut submitted = std::pin::pin!(writes.submit(&request));
        assert!(poll(&mut submitted).is_pending());
        let (_, done) = log.held.lock().unwrap().pop().expect("the append started");
        done(Ok(vec![Appended {
            offset: 8,
            timestamp_ms: 1,
        }]));
        assert!(
            poll(&mut submitted).is_pending(),
            "durable, outcome unknown"
        );
        assert_eq!(pending.waiting(), 1);
        pending.complete([outcome(8)]);
        assert!(
            matches!(poll(&mut submitted), std::task::Poll::Ready(Ok(found)) if found.offset == 8)
        );
        writes.close();
    }
}
