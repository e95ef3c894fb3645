//! The state every handler shares, and what the outcome follower shares with them.

use crate::auth::Auth;
use crate::client_address::ClientAddress;
use crate::config::IngressConfig;
use crate::engine_control::EngineControl;
use crate::error::{AppError, Reason};
use crate::idempotency_index::IdempotencyIndex;
use crate::live::EventFeeds;
use crate::metrics::{Gauges, Metrics};
use crate::open_caps::{OpenCounts, OpenPlace};
use crate::rate_limit::{retry_after_seconds, RateLimiter};
use crate::read_model::ReadModel;
use crate::writes::{Pending, Writes};
use engine::WaiterId;
use requestlog::LogWriter;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// How long before the request timeout a long-poll answers at the latest.
const LONG_POLL_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// A long-poll's places under its caps, freed when it answers.
#[derive(Default)]
pub(crate) struct LongPollPlaces {
    _user: Option<OpenPlace<String>>,
    _address: Option<OpenPlace<IpAddr>>,
}

/// Cheap to clone: everything is behind one `Arc`.
#[derive(Clone)]
pub struct AppState {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) config: IngressConfig,
    pub(crate) auth: Auth,
    pub(crate) writes: Writes,
    pub(crate) pending: Arc<Pending>,
    pub(crate) model: Arc<RwLock<ReadModel>>,
    /// First answers to keyed requests, for the contract's window (fed by the follower).
    pub(crate) idempotency: Arc<IdempotencyIndex>,
    pub(crate) follower: Arc<FollowerStatus>,
    pub(crate) watchers: Arc<Watchers>,
    /// Seat-map streams per event (`GET /v1/events/{id}/stream`).
    pub(crate) feeds: Arc<EventFeeds>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) user_limiter: RateLimiter<String>,
    /// Keyed by [`ClientAddress::limit_key`] (an IPv6 client by its /64).
    pub(crate) address_limiter: RateLimiter<IpAddr>,
    pub(crate) long_polls_per_user: Arc<OpenCounts<String>>,
    pub(crate) long_polls_per_address: Arc<OpenCounts<IpAddr>>,
    pub(crate) streams_per_address: Arc<OpenCounts<IpAddr>>,
    pub(crate) engine: Option<Arc<dyn EngineControl>>,
    pub(crate) writer: Arc<dyn LogWriter>,
    /// Set when the server begins shutting down: long-polls answer at once.
    pub(crate) shutdown: watch::Sender<bool>,
}

/// What the follower thread tells the rest (readiness, lag).
#[derive(Default)]
pub(crate) struct FollowerStatus {
    pub(crate) position: AtomicU64,
    pub(crate) end_offset: AtomicU64,
    /// The follower has read everything the outcomes log held when it last looked.
    pub(crate) caught_up: AtomicBool,
    pub(crate) running: AtomicBool,
    /// When the read model last applied a new outcome (or the follower started): how long
    /// the engine has been silent, for readiness.
    pub(crate) last_outcome_at: Mutex<Option<Instant>>,
    /// When readiness last appended a `Tick` to ask an idle engine whether it answers.
    pub(crate) probed_at: Mutex<Option<Instant>>,
    /// The first gap seen in the outcomes log: (the offset expected, the offset that came).
    /// The read model then lacks what those outcomes did, so readiness stays 503.
    pub(crate) gap: Mutex<Option<(u64, u64)>>,
    /// Set when the outcomes log no longer holds the record the follower reads next:
    /// (that record, the log's first record). The read model then lacks what the removed
    /// outcomes did, so readiness stays 503.
    pub(crate) truncated: Mutex<Option<(u64, u64)>>,
    /// Outcomes read from the outcomes log since start (duplicates and replays included).
    pub(crate) outcomes_read: AtomicU64,
    /// The offset of the snapshot the read model started from, plus one (0: from offset 0).
    pub(crate) resumed_from: AtomicU64,
    /// The offset of the last snapshot written, plus one (0: none yet).
    pub(crate) snapshot_written: Arc<AtomicU64>,
}

impl FollowerStatus {
    pub(crate) fn note_outcome(&self) {
        *self
            .last_outcome_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
    }

    /// How long since the read model last applied a new outcome (or the follower started)
    /// and since readiness last asked the engine (`note_probe`), whichever is shorter.
    pub(crate) fn silent_for(&self) -> Option<std::time::Duration> {
        let since = |at: &Mutex<Option<Instant>>| {
            at.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .map(|at| at.elapsed())
        };
        match (since(&self.last_outcome_at), since(&self.probed_at)) {
            (Some(outcome), Some(probe)) => Some(outcome.min(probe)),
            (outcome, probe) => outcome.or(probe),
        }
    }

    pub(crate) fn note_gap(&self, expected: u64, seen: u64) {
        let mut gap = self
            .gap
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if gap.is_none() {
            tracing::error!(
                expected,
                seen,
                "the outcomes log has a gap: the read model is missing outcomes and readiness says so"
            );
            *gap = Some((expected, seen));
        }
    }

    pub(crate) fn note_truncated(&self, position: u64, start_offset: u64) {
        let mut truncated = self
            .truncated
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if truncated.is_none() {
            tracing::error!(
                position,
                start_offset,
                "the outcomes log no longer holds the records this ingress reads next: the read model is stale and readiness says so"
            );
            *truncated = Some((position, start_offset));
        }
    }

    pub(crate) fn truncated(&self) -> Option<(u64, u64)> {
        *self
            .truncated
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn gap(&self) -> Option<(u64, u64)> {
        *self
            .gap
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn note_probe(&self) {
        *self
            .probed_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
    }
}

/// Long-polls waiting for a waitlist entry's status to change.
#[derive(Default)]
pub(crate) struct Watchers {
    waiting: Mutex<HashMap<WaiterId, Arc<Notify>>>,
}

impl Watchers {
    pub(crate) fn watch(&self, waiter: WaiterId) -> Arc<Notify> {
        let mut waiting = self
            .waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(waiting.entry(waiter).or_default())
    }

    /// Drops the entry when no long-poll holds it any more.
    pub(crate) fn release(&self, waiter: WaiterId) {
        let mut waiting = self
            .waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if waiting
            .get(&waiter)
            .is_some_and(|notify| Arc::strong_count(notify) == 1)
        {
            waiting.remove(&waiter);
        }
    }

    pub(crate) fn notify(&self, waiters: &[WaiterId]) {
        if waiters.is_empty() {
            return;
        }
        let mut waiting = self
            .waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for waiter in waiters {
            if let Some(notify) = waiting.remove(waiter) {
                notify.notify_waiters();
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}

impl AppState {
    pub(crate) fn config(&self) -> &IngressConfig {
        &self.shared.config
    }

    /// The read model, for a short read. Never held across an `.await`.
    pub(crate) fn model(&self) -> RwLockReadGuard<'_, ReadModel> {
        self.shared
            .model
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn check_user_rate(&self, user: &String) -> Result<(), AppError> {
        if !self.shared.config.rate_limit.enabled {
            return Ok(());
        }
        self.shared.user_limiter.check(user).map_err(|wait| {
            self.shared.metrics.rate_limited.inc();
            AppError::rate_limited(Reason::UserRateLimit, retry_after_seconds(wait))
        })
    }

    pub(crate) fn check_address_rate(&self, address: ClientAddress) -> Result<(), AppError> {
        if !self.shared.config.rate_limit.enabled {
            return Ok(());
        }
        let key = address.limit_key();
        self.shared.address_limiter.check(&key).map_err(|wait| {
            self.shared.metrics.rate_limited.inc();
            AppError::rate_limited(Reason::AddressRateLimit, retry_after_seconds(wait))
        })
    }

    /// Places for one waitlist long-poll under the per-user and per-address caps (off with
    /// the rate limits); 429 over either.
    pub(crate) fn open_long_poll(
        &self,
        user: &str,
        address: Option<ClientAddress>,
    ) -> Result<LongPollPlaces, AppError> {
        if !self.shared.config.rate_limit.enabled {
            return Ok(LongPollPlaces::default());
        }
        let shared = &self.shared;
        let refused = |reason, limit, max| {
            shared.metrics.rate_limited.inc();
            AppError::too_many_open(reason, limit, max, "waitlist long-polls")
        };
        let user = shared
            .long_polls_per_user
            .open(user.to_string())
            .ok_or_else(|| {
                refused(
                    Reason::LongPollsPerUserMax,
                    "long_polls_per_user",
                    shared.long_polls_per_user.max(),
                )
            })?;
        let address = address
            .map(|address| {
                shared
                    .long_polls_per_address
                    .open(address.limit_key())
                    .ok_or_else(|| {
                        refused(
                            Reason::LongPollsPerAddressMax,
                            "long_polls_per_address",
                            shared.long_polls_per_address.max(),
                        )
                    })
            })
            .transpose()?;
        Ok(LongPollPlaces {
            _user: Some(user),
            _address: address,
        })
    }

    /// A place for one seat-map stream under the per-address cap (off with the rate
    /// limits); 429 over it.
    pub(crate) fn open_stream(
        &self,
        address: Option<ClientAddress>,
    ) -> Result<Option<OpenPlace<IpAddr>>, AppError> {
        let Some(address) = address.filter(|_| self.shared.config.rate_limit.enabled) else {
            return Ok(None);
        };
        let streams = &self.shared.streams_per_address;
        streams.open(address.limit_key()).map(Some).ok_or_else(|| {
            self.shared.metrics.rate_limited.inc();
            AppError::too_many_open(
                Reason::StreamsPerAddressMax,
                "streams_per_address",
                streams.max(),
                "seat-map streams per client address",
            )
        })
    }

    /// The longest a long-poll waits: below the request timeout, so it answers (with the
    /// current status) before the timeout would.
    pub(crate) fn long_poll_wait_max(&self) -> Duration {
        let timeout = self.shared.config.request_timeout;
        timeout.saturating_sub(LONG_POLL_TIMEOUT_MARGIN.min(timeout / 2))
    }

    pub(crate) fn gauges(&self) -> Gauges {
        let model = self.model();
        let follower = &self.shared.follower;
        Gauges {
            applied_offset: model.applied_offset,
            outcomes_position: follower.position.load(Ordering::Relaxed),
            outcomes_end_offset: follower.end_offset.load(Ordering::Relaxed),
            live_holds: model.live_holds,
            live_bookings: model.live_bookings,
            waiting: model.waiting,
            events: model.events().count() as u64,
            pending_writes: self.shared.pending.waiting() as u64,
            long_polls: self.shared.watchers.len() as u64,
            seat_map_streams: self.shared.feeds.streams() as u64,
            read_model_anomalies: model.anomalies,
        }
    }

    /// Input offset of the last outcome applied to the read model.
    pub fn applied_offset(&self) -> Option<u64> {
        self.model().applied_offset
    }

    /// True once the follower has read the whole outcomes log (as of its last look).
    pub fn caught_up(&self) -> bool {
        self.shared.follower.caught_up.load(Ordering::Acquire)
    }

    /// blake3 of the read model's canonical encoding (`follower_state`): equal for two
    /// ingresses whose models are the same, whatever their history (tests and tools).
    pub fn read_model_digest(&self) -> String {
        let bytes = crate::follower_state::encode(0, &self.model());
        blake3::hash(&bytes).to_hex().to_string()
    }

    /// Outcomes the follower has read since this ingress started.
    pub fn outcomes_read(&self) -> u64 {
        self.shared.follower.outcomes_read.load(Ordering::Acquire)
    }

    /// The outcome offset of the snapshot the read model was loaded from (`None`: it was
    /// rebuilt from offset 0).
    pub fn resumed_from(&self) -> Option<u64> {
        self.shared
            .follower
            .resumed_from
            .load(Ordering::Acquire)
            .checked_sub(1)
    }

    /// The outcome offset of the last snapshot this ingress wrote.
    pub fn snapshot_written(&self) -> Option<u64> {
        self.shared
            .follower
            .snapshot_written
            .load(Ordering::Acquire)
            .checked_sub(1)
    }

    /// Long-polls waiting for a status change right now.
    pub fn long_polls(&self) -> usize {
        self.shared.watchers.len()
    }

    /// Makes long-polls answer at once; call when shutting down.
    pub fn begin_shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }
}
