//! The shell: threads, logs, HTTP. A control-log follower keeps the endpoints
//! (`engine::webhook::Webhooks`); one follower per shard routes that shard's outcomes
//! into the store ([`Store::route`]; in `serve`, taking the outcomes its publisher still
//! holds rather than decoding them: [`WorkerLogs::recent_outcomes`]); one delivery thread (a small tokio runtime) drives
//! the [`Scheduler`] on the wall clock and sends with `reqwest` (no redirects; with the
//! SSRF guard on, a resolver that refuses private addresses and a check of literal ones).
//!
//! Nothing here can slow the engine or an ingress: the worker only reads their logs, and a
//! slow or dead endpoint holds only its own lane.

use crate::messages::{messages_of, owners_created, rfc3339};
use crate::schedule::{RetryPolicy, Scheduler, Verdict};
use crate::signing::signature;
use crate::store::{Attempt, Position, Routed, Store, StoreError, StoredMessage};
use engine::control::{decode_control, encode_control, ControlRecord};
use engine::webhook::{address_public, Webhooks};
use engine::wire::{lock_recent, OutcomeAssembler, SharedRecentOutcomes};
use rand::rngs::StdRng;
use rand::SeedableRng;
use requestlog::{LogReader, LogWriter};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const POLL_RECORDS_MAX: usize = 1024;
const POLL_WAIT: Duration = Duration::from_millis(100);
const ERROR_BACKOFF: Duration = Duration::from_millis(200);
/// The longest the delivery loop sleeps without looking (stop, endpoint changes).
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// After routing a batch that did not fill a poll, the outcome follower waits this long
/// before it polls again, so that a busy log is routed in batches of many commits (one
/// store write and one wake-up each) instead of one per commit: under load it woke once
/// per group commit of the outcomes log, and the wake-up and the store's write cost more
/// than routing the outcomes. A webhook leaves at most this much later; an idle log
/// still wakes the follower at once (the poll waits for the first record).
const ROUTE_LINGER: Duration = Duration::from_millis(5);

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The store's directory (`<data_dir>/effects`).
    pub state_dir: PathBuf,
    pub policy: RetryPolicy,
    pub attempt_timeout: Duration,
    pub backlog_per_endpoint_max: u64,
    pub deliveries_in_flight_max: usize,
    /// The SSRF guard off (development mode, tests with a local receiver).
    pub private_addresses_allowed: bool,
    /// Seeds the retry jitter.
    pub seed: u64,
}

/// The logs the worker follows.
pub struct WorkerLogs {
    /// Shard k's outcomes log at index k, read from offset 0 (the worker seeks).
    pub outcomes: Vec<Box<dyn LogReader>>,
    pub control_reader: Box<dyn LogReader>,
    /// Where the worker records an endpoint it disabled.
    pub control_writer: Arc<dyn LogWriter>,
    /// Shard k's outcomes as its publisher appended them last, at index k, when that
    /// publisher runs in this process (`serve`): taken instead of decoding the records
    /// read (`engine::wire::OutcomeAssembler::push_at_known`). Empty: decode everything.
    pub recent_outcomes: Vec<SharedRecentOutcomes>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("effects worker: {0}")]
    Log(#[from] requestlog::LogError),
    #[error("effects worker: {0}")]
    Start(String),
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub disabled: AtomicU64,
    pub dropped_backlog_full: AtomicU64,
    pub outcomes_routed: AtomicU64,
}

struct Shared {
    store: Store,
    webhooks: RwLock<Webhooks>,
    /// Messages routed since the delivery loop last looked, per endpoint.
    queued: Mutex<BTreeMap<String, u64>>,
    wake: tokio::sync::Notify,
    metrics: WorkerMetrics,
    /// Payments due back and refunded (`refunds`), from the control log.
    refunds: crate::refunds::RefundsShared,
}

pub struct Worker {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

impl Worker {
    /// Opens the store, reads the control log to its end (so every endpoint defined before
    /// the start is known before any outcome is routed), then starts the followers and the
    /// delivery thread.
    pub fn start(config: WorkerConfig, logs: WorkerLogs) -> Result<Worker, WorkerError> {
        Worker::start_with_gateway(config, logs, None)
    }

    /// [`Worker::start`], refunding the payments the control log says are due through
    /// `gateway` (`refunds`); without one, refunds wait (counted, never dropped).
    pub fn start_with_gateway(
        config: WorkerConfig,
        logs: WorkerLogs,
        gateway: Option<crate::refunds::RefundGateway>,
    ) -> Result<Worker, WorkerError> {
        std::fs::create_dir_all(&config.state_dir).map_err(|error| {
            WorkerError::Start(format!("{}: {error}", config.state_dir.display()))
        })?;
        let store = Store::open(&config.state_dir)?;
        let shared = Arc::new(Shared {
            store,
            webhooks: RwLock::new(Webhooks::default()),
            queued: Mutex::new(BTreeMap::new()),
            wake: tokio::sync::Notify::new(),
            metrics: WorkerMetrics::default(),
            refunds: crate::refunds::RefundsShared::default(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let WorkerLogs {
            outcomes,
            mut control_reader,
            control_writer,
            recent_outcomes,
        } = logs;
        let control_end = control_reader.end_offset()?;
        while control_reader.position() < control_end {
            for record in control_reader.poll(POLL_RECORDS_MAX, POLL_WAIT)? {
                apply_control(&shared, record.offset, &record.payload);
            }
        }
        let mut threads = Vec::new();
        let spawn = |name: String, run: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(run)
                .map_err(|error| WorkerError::Start(error.to_string()))
        };
        {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            threads.push(spawn(
                "effects-control".into(),
                Box::new(move || follow_control(&shared, control_reader, &stop)),
            )?);
        }
        for (shard, mut reader) in (0u32..).zip(outcomes) {
            let position = shared.store.position(shard)?;
            reader.seek(position.record)?;
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            let backlog_max = config.backlog_per_endpoint_max;
            // With a gateway, bookings' payments and cancellations (`refunds::observe`).
            let payments = gateway
                .as_ref()
                .map(|gateway| (Arc::clone(&control_writer), gateway.currency.clone()));
            let recent = recent_outcomes.get(shard as usize).cloned();
            threads.push(spawn(
                format!("effects-shard-{shard}"),
                Box::new(move || {
                    follow_outcomes(
                        &shared,
                        ShardReader {
                            shard,
                            position,
                            reader,
                            recent,
                        },
                        backlog_max,
                        payments,
                        &stop,
                    )
                }),
            )?);
        }
        if let Some(gateway) = gateway {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            let control_writer = Arc::clone(&control_writer);
            threads.push(spawn(
                "effects-refunds".into(),
                Box::new(move || {
                    crate::refunds::run(&shared.refunds, gateway.gateway, control_writer, &stop)
                }),
            )?);
        }
        {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            threads.push(spawn(
                "effects-delivery".into(),
                Box::new(move || deliver(&shared, &config, control_writer, &stop)),
            )?);
        }
        Ok(Worker {
            shared,
            stop,
            threads: Mutex::new(threads),
        })
    }

    /// Stops and joins every thread; attempts in flight are abandoned (sent again after a
    /// restart, with the same id). The store closes when the worker is dropped.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        self.shared.refunds.notify();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
            let _ = thread.join();
        }
    }

    pub fn metrics(&self) -> &WorkerMetrics {
        &self.shared.metrics
    }

    pub fn refund_metrics(&self) -> &crate::refunds::RefundMetrics {
        &self.shared.refunds.metrics
    }

    /// Payments due back that are not refunded yet.
    pub fn refunds_due(&self) -> usize {
        self.shared.refunds.due_count()
    }

    /// Messages waiting per endpoint.
    pub fn backlog(&self) -> BTreeMap<String, u64> {
        self.shared.store.waiting()
    }

    /// The age of the oldest undelivered message of every enabled endpoint (now minus its
    /// event's log time), in milliseconds; 0 when none waits. From the store, so a restart
    /// does not reset it; a disabled endpoint's backlog is not counted (it waits for its
    /// admin, and `boxoffice_webhook_endpoints{state="disabled"}` says so).
    pub fn oldest_undelivered_age_ms(&self) -> u64 {
        let now = now_ms();
        let enabled: Vec<String> = {
            let webhooks = self
                .shared
                .webhooks
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            self.shared
                .store
                .waiting()
                .into_keys()
                .filter(|endpoint| {
                    webhooks
                        .get(endpoint)
                        .is_some_and(|webhook| webhook.enabled)
                })
                .collect()
        };
        enabled
            .iter()
            .filter_map(|endpoint| match self.shared.store.head(endpoint) {
                Ok(head) => head.map(|(_, message)| now.saturating_sub(message.time_ms)),
                Err(error) => {
                    tracing::warn!(%error, endpoint, "cannot read an endpoint's oldest message");
                    None
                }
            })
            .max()
            .unwrap_or(0)
    }

    /// Whose endpoint `webhook` is (`None`: unknown or deleted).
    pub fn tenant_of(&self, webhook: &str) -> Option<String> {
        self.shared
            .webhooks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(webhook)
            .map(|webhook| webhook.tenant.clone())
    }

    /// The worker's metrics in the OpenMetrics text format, without the closing `# EOF`
    /// line, so they can be written into another exposition (`serve`'s `/metrics`) or
    /// closed alone (`boxoffice effects`). See [`crate::metrics`].
    pub fn metrics_text(&self) -> String {
        let endpoints: Vec<(String, bool)> = self
            .shared
            .webhooks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .all()
            .map(|webhook| (webhook.id.clone(), webhook.enabled))
            .collect();
        crate::metrics::render(&crate::metrics::Snapshot {
            counters: &self.shared.metrics,
            endpoints,
            backlog: self.backlog(),
            oldest_undelivered_age_ms: self.oldest_undelivered_age_ms(),
        })
    }

    /// Endpoint `webhook`'s newest messages, newest first.
    pub fn deliveries(
        &self,
        webhook: &str,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.shared.store.messages(webhook, limit)
    }

    /// Queues a message again; false when it is no longer kept.
    pub fn resend(&self, webhook: &str, message_id: &str) -> Result<bool, StoreError> {
        let queued = self.shared.store.resend(webhook, message_id)?;
        if queued {
            *lock(&self.shared.queued)
                .entry(webhook.to_string())
                .or_default() += 1;
            self.shared.wake.notify_one();
        }
        Ok(queued)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn apply_control(shared: &Shared, offset: u64, payload: &[u8]) {
    match decode_control(payload) {
        Ok(record) => {
            shared.refunds.apply(&record);
            let applied = shared
                .webhooks
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .apply(offset, &record);
            if let Err(skipped) = applied {
                tracing::warn!(offset, ?skipped, "webhook control record skipped");
            }
            if let ControlRecord::WebhookDeleted { webhook, .. } = &record {
                if let Err(error) = shared.store.remove_endpoint(webhook) {
                    tracing::error!(%error, webhook, "cannot forget a deleted endpoint's messages");
                }
            }
            shared.wake.notify_one();
        }
        Err(error) => tracing::error!(offset, %error, "control record skipped"),
    }
}

fn follow_control(shared: &Shared, mut reader: Box<dyn LogReader>, stop: &AtomicBool) {
    requestlog::follow(
        reader.as_mut(),
        stop,
        POLL_RECORDS_MAX,
        POLL_WAIT,
        "control log",
        |record| apply_control(shared, record.offset, &record.payload),
    );
}

/// A shard's outcomes log as the worker reads it: from `position`, taking the outcomes
/// `recent` still holds instead of decoding them.
struct ShardReader {
    shard: u32,
    position: Position,
    reader: Box<dyn LogReader>,
    recent: Option<SharedRecentOutcomes>,
}

/// Routes shard `shard`'s outcomes from `position` on, one atomic store batch per poll.
fn follow_outcomes(
    shared: &Shared,
    ShardReader {
        shard,
        mut position,
        mut reader,
        recent,
    }: ShardReader,
    backlog_max: u64,
    payments: Option<(Arc<dyn LogWriter>, String)>,
    stop: &AtomicBool,
) {
    let mut assembler = OutcomeAssembler::new();
    while !stop.load(Ordering::Acquire) {
        // The records are lent (`LogReader::poll_each`) and assembled under the publisher's
        // lock (when there is one), taken once records have come; the outcomes are used
        // after it.
        let mut assembled = Vec::new();
        let mut known = None;
        let polled = reader.poll_each(POLL_RECORDS_MAX, POLL_WAIT, &mut |offset, _, payload| {
            let known = known.get_or_insert_with(|| recent.as_ref().map(lock_recent));
            match assembler.push_at_known(offset, payload, known.as_deref()) {
                Ok(Some(outcome)) => assembled.push((outcome, assembler.resume_position())),
                Ok(None) => {}
                Err(reason) => {
                    tracing::error!(shard, offset, %reason, "an outcome record could not be decoded; skipped");
                }
            }
        });
        drop(known);
        let polled = match polled {
            Ok(polled) => polled,
            Err(error) => {
                tracing::error!(%error, shard, "reading the outcomes log failed; retrying");
                std::thread::sleep(ERROR_BACKOFF);
                continue;
            }
        };
        if polled == 0 {
            continue;
        }
        let mut owners = Vec::new();
        let mut messages = Vec::new();
        let mut payment_outcomes = Vec::new();
        let mut terms = Vec::new();
        let mut next = position;
        let mut routed_outcomes = 0;
        // With no endpoint anywhere no message can be routed: skip building them (JSON
        // bodies) and looking up their owners; the position and new owners still advance,
        // so an endpoint created later gets every event after its creation is applied.
        let any_endpoint = !shared
            .webhooks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_empty();
        for (outcome, resume) in assembled {
            if let Some(resume) = resume {
                next.record = resume;
            }
            if next.offset.is_some_and(|offset| outcome.offset <= offset) {
                continue; // published again (a fail-over): routed already
            }
            next.offset = Some(outcome.offset);
            routed_outcomes += 1;
            owners.extend(owners_created(&outcome));
            terms.extend(crate::refunds::terms_set(&outcome));
            if any_endpoint {
                messages.extend(messages_of(shard, &outcome));
            }
            if payments.is_some() && crate::refunds::relevant(&outcome) {
                payment_outcomes.push(outcome);
            }
        }
        if next == position {
            continue;
        }
        // Kept with or without a gateway (one configured later refunds as the terms say).
        // Before the position moves past them: a crash does this again, never skips it.
        while let Err(error) = shared.store.remember_event_terms(&terms) {
            tracing::error!(%error, shard, "cannot record events' terms; retrying");
            if stop.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(ERROR_BACKOFF);
        }
        if let (Some((control_writer, currency)), false) = (&payments, payment_outcomes.is_empty())
        {
            while let Err(error) = crate::refunds::observe(
                &shared.store,
                control_writer.as_ref(),
                currency,
                &payment_outcomes,
            ) {
                tracing::error!(%error, shard, "cannot record bookings' payments or refunds due; retrying");
                if stop.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(ERROR_BACKOFF);
            }
        }
        let mut routed = Vec::new();
        {
            let webhooks = shared
                .webhooks
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for message in messages {
                let tenant = match owners.iter().find(|(owner, _)| *owner == message.owner) {
                    Some((_, tenant)) => Some(tenant.clone()),
                    None => match shared.store.owner(message.owner) {
                        Ok(tenant) => tenant,
                        Err(error) => {
                            tracing::error!(%error, "cannot read an owner; the message is not routed");
                            None
                        }
                    },
                };
                let Some(tenant) = tenant else { continue };
                for webhook in webhooks.of_tenant(&tenant) {
                    if webhook.subscribes(message.kind) {
                        routed.push((
                            webhook.id.clone(),
                            StoredMessage {
                                id: message.id.clone(),
                                kind: message.kind.as_str().to_string(),
                                time_ms: message.time_ms,
                                body: message.body.clone(),
                                attempts: Vec::new(),
                                attempts_total: 0,
                                delivered: false,
                            },
                        ));
                    }
                }
            }
        }
        let batch: Vec<Routed<'_>> = routed
            .iter()
            .map(|(endpoint, message)| Routed {
                endpoint,
                message: message.clone(),
            })
            .collect();
        loop {
            match shared
                .store
                .route(shard, next, &owners, batch_clone(&batch), backlog_max)
            {
                Ok((queued, dropped)) => {
                    if dropped > 0 {
                        tracing::warn!(
                            shard,
                            dropped,
                            "messages dropped: their endpoints' backlogs are full"
                        );
                        shared
                            .metrics
                            .dropped_backlog_full
                            .fetch_add(dropped, Ordering::Relaxed);
                    }
                    shared
                        .metrics
                        .outcomes_routed
                        .fetch_add(routed_outcomes, Ordering::Relaxed);
                    if !queued.is_empty() {
                        let mut waiting = lock(&shared.queued);
                        for (endpoint, count) in queued {
                            *waiting.entry(endpoint).or_default() += count;
                        }
                        drop(waiting);
                        shared.wake.notify_one();
                    }
                    break;
                }
                Err(error) => {
                    tracing::error!(%error, shard, "cannot write the effects store; retrying");
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    std::thread::sleep(ERROR_BACKOFF);
                }
            }
        }
        position = next;
        if polled < POLL_RECORDS_MAX && !stop.load(Ordering::Acquire) {
            std::thread::sleep(ROUTE_LINGER);
        }
    }
}

fn batch_clone<'a>(batch: &[Routed<'a>]) -> Vec<Routed<'a>> {
    batch
        .iter()
        .map(|routed| Routed {
            endpoint: routed.endpoint,
            message: routed.message.clone(),
        })
        .collect()
}

/// Resolves names for deliveries, refusing any name with a private address while the
/// SSRF guard is on (checked where the connection is made, so a name that changes its
/// address after the endpoint was made is caught too).
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(private) = addresses
                .iter()
                .find(|address| !address_public(address.ip()))
            {
                return Err(
                    format!("{host} resolves to {}, a private address", private.ip()).into(),
                );
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The outcome of one HTTP attempt.
struct Sent {
    endpoint: String,
    seq: u64,
    message: StoredMessage,
    attempt: Attempt,
    delivered: bool,
}

async fn send(
    client: reqwest::Client,
    private_allowed: bool,
    endpoint: String,
    url: String,
    key: Vec<u8>,
    seq: u64,
    message: StoredMessage,
) -> Sent {
    let started_ms = now_ms();
    let started = Instant::now();
    let timestamp_s = started_ms / 1000;
    // A literal address never meets the resolver: check it here.
    let literal_private = reqwest::Url::parse(&url).ok().and_then(|parsed| {
        let host = parsed
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        host.parse::<std::net::IpAddr>().ok()
    });
    let result = match literal_private {
        Some(address) if !private_allowed && !address_public(address) => {
            Err(format!("{address} is a private address"))
        }
        _ => client
            .post(&url)
            .header("content-type", "application/json")
            .header("webhook-id", &message.id)
            .header("webhook-timestamp", timestamp_s.to_string())
            .header(
                "webhook-signature",
                signature(&key, &message.id, timestamp_s, &message.body),
            )
            .body(message.body.clone())
            .send()
            .await
            .map(|response| response.status().as_u16())
            .map_err(|error| {
                let mut text = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    text.push_str(": ");
                    text.push_str(&cause.to_string());
                    source = cause.source();
                }
                text
            }),
    };
    let latency_ms = started.elapsed().as_millis() as u64;
    let (status_code, error) = match result {
        Ok(status) => (Some(status), None),
        Err(error) => (None, Some(error)),
    };
    let delivered = status_code.is_some_and(|status| (200..300).contains(&status));
    Sent {
        endpoint,
        seq,
        message,
        attempt: Attempt {
            at_ms: started_ms,
            status_code,
            error,
            latency_ms,
        },
        delivered,
    }
}

fn deliver(
    shared: &Arc<Shared>,
    config: &WorkerConfig,
    control_writer: Arc<dyn LogWriter>,
    stop: &AtomicBool,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "the effects worker cannot start its delivery runtime");
            return;
        }
    };
    runtime.block_on(deliver_loop(shared, config, control_writer, stop));
}

async fn deliver_loop(
    shared: &Arc<Shared>,
    config: &WorkerConfig,
    control_writer: Arc<dyn LogWriter>,
    stop: &AtomicBool,
) {
    let mut builder = reqwest::Client::builder()
        .timeout(config.attempt_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("boxoffice-webhooks/1");
    if !config.private_addresses_allowed {
        builder = builder.dns_resolver(Arc::new(GuardedResolver));
    }
    let client = match builder.build() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "the effects worker cannot build its HTTP client");
            return;
        }
    };
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut scheduler = Scheduler::new(config.policy);
    for (endpoint, waiting) in shared.store.waiting() {
        scheduler.enqueued(&endpoint, waiting);
    }
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<Sent>();
    while !stop.load(Ordering::Acquire) {
        // Endpoints as the control log has them now.
        {
            let webhooks = shared
                .webhooks
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let gone: Vec<String> = scheduler
                .endpoints()
                .filter(|endpoint| webhooks.get(endpoint).is_none())
                .map(str::to_string)
                .collect();
            for endpoint in gone {
                scheduler.remove_endpoint(&endpoint);
            }
            for webhook in webhooks.all() {
                scheduler.set_endpoint(&webhook.id, webhook.enabled);
            }
        }
        for (endpoint, count) in std::mem::take(&mut *lock(&shared.queued)) {
            scheduler.enqueued(&endpoint, count);
        }
        let now = now_ms();
        for endpoint in scheduler.due(now, config.deliveries_in_flight_max) {
            let target = {
                let webhooks = shared
                    .webhooks
                    .read()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                webhooks
                    .get(&endpoint)
                    .map(|webhook| (webhook.url.clone(), webhook.secret.clone()))
            };
            let head = shared.store.head(&endpoint);
            match (target, head) {
                (Some((url, key)), Ok(Some((seq, message)))) => {
                    let sent_tx = sent_tx.clone();
                    let client = client.clone();
                    let private_allowed = config.private_addresses_allowed;
                    tokio::spawn(async move {
                        let sent =
                            send(client, private_allowed, endpoint, url, key, seq, message).await;
                        let _ = sent_tx.send(sent);
                    });
                }
                (_, Err(error)) => {
                    tracing::error!(%error, endpoint, "cannot read an endpoint's backlog");
                    scheduler.finished(&endpoint, now, false, &mut rng);
                }
                _ => {
                    // Nothing is stored for it after all (deleted meanwhile).
                    scheduler.finished(&endpoint, now, true, &mut rng);
                }
            }
        }
        let wait = scheduler
            .next_due_ms()
            .map_or(IDLE_WAIT, |due| {
                Duration::from_millis(due.saturating_sub(now_ms()))
            })
            .min(IDLE_WAIT);
        tokio::select! {
            sent = sent_rx.recv() => {
                if let Some(sent) = sent {
                    finish(shared, &mut scheduler, &mut rng, &control_writer, sent).await;
                    while let Ok(sent) = sent_rx.try_recv() {
                        finish(shared, &mut scheduler, &mut rng, &control_writer, sent).await;
                    }
                }
            }
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn finish(
    shared: &Arc<Shared>,
    scheduler: &mut Scheduler,
    rng: &mut StdRng,
    control_writer: &Arc<dyn LogWriter>,
    sent: Sent,
) {
    let Sent {
        endpoint,
        seq,
        message,
        attempt,
        delivered,
    } = sent;
    let now = now_ms();
    if let Err(error) =
        shared
            .store
            .record_attempt(&endpoint, seq, message.clone(), attempt.clone(), delivered)
    {
        // Not recorded: it is sent again (same id), at least once.
        tracing::error!(%error, endpoint, "cannot record a delivery attempt");
        scheduler.finished(&endpoint, now, false, rng);
        return;
    }
    if delivered {
        shared.metrics.delivered.fetch_add(1, Ordering::Relaxed);
    } else {
        shared
            .metrics
            .failed_attempts
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(endpoint, message = message.id, status = ?attempt.status_code, error = ?attempt.error, "delivery attempt failed");
    }
    if let Verdict::Disable { failing_for_ms } = scheduler.finished(&endpoint, now, delivered, rng)
    {
        shared.metrics.disabled.fetch_add(1, Ordering::Relaxed);
        let tenant = shared
            .webhooks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&endpoint)
            .map(|webhook| webhook.tenant.clone());
        if let Some(tenant) = tenant {
            let last = match (&attempt.status_code, &attempt.error) {
                (Some(status), _) => format!("HTTP {status}"),
                (None, Some(error)) => error.clone(),
                (None, None) => "no answer".into(),
            };
            let record = encode_control(&ControlRecord::WebhookDisabled {
                tenant,
                webhook: endpoint.clone(),
                reason: format!(
                    "every attempt failed for {} s (last: {last}); since {}",
                    failing_for_ms / 1000,
                    rfc3339(now.saturating_sub(failing_for_ms))
                ),
            });
            let writer = Arc::clone(control_writer);
            match tokio::task::spawn_blocking(move || writer.append(vec![record])).await {
                Ok(Ok(_)) => tracing::warn!(
                    endpoint,
                    "webhook endpoint disabled after sustained failure"
                ),
                Ok(Err(error)) => {
                    tracing::error!(%error, endpoint, "cannot record a disabled endpoint")
                }
                Err(error) => {
                    tracing::error!(%error, endpoint, "cannot record a disabled endpoint")
                }
            }
        }
    }
}
