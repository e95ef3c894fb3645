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
use std::hash::Hash;
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

/// One shard as this ingress sees it: where its writes go, what follows its outcomes,
/// and the read model of its events. Ids say their shard (`id % shards`), so a handler
/// finds the shard of anything it is asked about without asking anyone.
pub(crate) struct ShardState {
    pub(crate) writes: Writes,
    pub(crate) pending: Arc<Pending>,
    pub(crate) model: Arc<RwLock<ReadModel>>,
    /// First answers to keyed requests, for the contract's window (fed by the follower).
    pub(crate) idempotency: Arc<IdempotencyIndex>,
    pub(crate) follower: Arc<FollowerStatus>,
    pub(crate) engine: Option<Arc<dyn EngineControl>>,
    pub(crate) writer: Arc<dyn LogWriter>,
}

impl ShardState {
    /// The read model, for a short read. Never held across an `.await`.
    pub(crate) fn model(&self) -> RwLockReadGuard<'_, ReadModel> {
        self.model
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Why this shard's engine is known not to answer now, if it is: it stopped (in this
    /// process), or a write of this ingress gave up waiting for its outcome and no outcome
    /// has come since. Cheap (no log is asked), and never true of an engine that is merely
    /// idle or slow: the first outcome after the timeout clears it.
    pub(crate) fn down(&self) -> Option<String> {
        if let Some(failure) = self.engine.as_ref().and_then(|engine| engine.failure()) {
            return Some(format!("the engine has stopped: {failure}"));
        }
        let timed_out_at = self.writes.timed_out_at()?;
        let last_outcome_at = *self
            .follower
            .last_outcome_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if last_outcome_at.is_some_and(|at| at > timed_out_at) {
            return None;
        }
        Some("a write timed out waiting for its outcome and none has come since".to_string())
    }
}

pub(crate) struct Shared {
    pub(crate) config: IngressConfig,
    /// Ticket codes' MAC under `config.engine.ticket_secret`, its key absorbed once.
    pub(crate) ticket_mac: engine::tickets::TicketMac,
    pub(crate) auth: Auth,
    /// Token `sub` → pseudonym, the only user id that reaches a log (`privacy`).
    pub(crate) pseudonyms: crate::privacy::Pseudonyms,
    /// Pseudonym → user id, sealed per user (`personal_data`).
    pub(crate) personal: Arc<crate::personal_data::PersonalData>,
    /// Every shard, by index; one in a single-shard deployment.
    pub(crate) shards: Vec<ShardState>,
    /// Tenant-wide records (the control log): where a tenant's events are placed.
    pub(crate) control: Arc<crate::control::Control>,
    pub(crate) watchers: Arc<Watchers<WaiterId>>,
    /// Notification long-polls, by user (`GET /v1/me/notifications`).
    pub(crate) user_watchers: Arc<Watchers<engine::UserName>>,
    /// Seat-map streams per event (`GET /v1/events/{id}/stream`).
    pub(crate) feeds: Arc<EventFeeds>,
    /// Full-text search over events and titles (`crate::search`).
    pub(crate) search: crate::search::SearchIndex,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) user_limiter: RateLimiter<String>,
    /// Keyed by [`ClientAddress::limit_key`] (an IPv6 client by its /64).
    pub(crate) address_limiter: RateLimiter<IpAddr>,
    pub(crate) long_polls_per_user: Arc<OpenCounts<String>>,
    pub(crate) long_polls_per_address: Arc<OpenCounts<IpAddr>>,
    pub(crate) streams_per_address: Arc<OpenCounts<IpAddr>>,
    /// The effects worker in this process, once it runs (`Ingress::set_effects`).
    pub(crate) effects: std::sync::OnceLock<Arc<dyn crate::EffectsControl>>,
    /// The payment gateway, once set (`Ingress::set_payments`).
    pub(crate) payments: std::sync::OnceLock<crate::payments::PaymentsConfig>,
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

/// Long-polls waiting for something keyed by `K` to change: a waitlist entry's status
/// (`WaiterId`), a user's notifications (their name).
pub(crate) struct Watchers<K> {
    waiting: Mutex<HashMap<K, Arc<Notify>>>,
}

impl<K> Default for Watchers<K> {
    fn default() -> Self {
        Watchers {
            waiting: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone> Watchers<K> {
    pub(crate) fn watch(&self, key: &K) -> Arc<Notify> {
        let mut waiting = self
            .waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(waiting.entry(key.clone()).or_default())
    }

    /// Drops the entry when no long-poll holds it any more.
    pub(crate) fn release(&self, key: &K) {
        let mut waiting = self
            .waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if waiting
            .get(key)
            .is_some_and(|notify| Arc::strong_count(notify) == 1)
        {
            waiting.remove(key);
        }
    }

    pub(crate) fn notify(&self, keys: &[K]) {
        if keys.is_empty() {
            return;
        }
        let mut waiting = self
            .waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for key in keys {
            if let Some(notify) = waiting.remove(key) {
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

    /// Derives and checks ticket codes (`engine::tickets`).
    pub(crate) fn ticket_mac(&self) -> &engine::tickets::TicketMac {
        &self.shared.ticket_mac
    }

    pub(crate) fn shards(&self) -> &[ShardState] {
        &self.shared.shards
    }

    pub(crate) fn shard_count(&self) -> u32 {
        self.shared.shards.len() as u32
    }

    /// The shard of an id (`engine::shard_of`: every id says its shard).
    pub(crate) fn shard_of(&self, id: impl Into<u64>) -> &ShardState {
        &self.shared.shards[engine::shard_of(id.into(), self.shard_count()) as usize]
    }

    /// The read model of the shard that holds `id`, for a short read. Never held across
    /// an `.await`.
    pub(crate) fn model_of(&self, id: impl Into<u64>) -> RwLockReadGuard<'_, ReadModel> {
        self.shard_of(id).model()
    }

    /// Shard 0's read model: the whole model of a single-shard deployment.
    pub(crate) fn first_model(&self) -> RwLockReadGuard<'_, ReadModel> {
        self.shared.shards[0].model()
    }

    /// Every shard's read model, in shard order, each read-locked for a short read.
    /// Builds the search index if it is not yet, before a search takes the read models'
    /// locks (`SearchIndex::prepare`): a 500 if tantivy fails.
    pub(crate) fn prepare_search(&self) -> Result<(), crate::error::AppError> {
        let models: Vec<&std::sync::RwLock<ReadModel>> = self
            .shared
            .shards
            .iter()
            .map(|shard| &*shard.model)
            .collect();
        self.shared
            .search
            .prepare(&models, self.shared.control.catalog_lock())
            .map(drop)
            .map_err(|error| crate::error::AppError::internal(format!("the search index: {error}")))
    }

    pub(crate) fn models(&self) -> Vec<RwLockReadGuard<'_, ReadModel>> {
        self.shared.shards.iter().map(ShardState::model).collect()
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

    /// Places for one long-poll (a waitlist entry's, a user's notifications) under the
    /// per-user and per-address caps (off with the rate limits); 429 over either.
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
            AppError::too_many_open(reason, limit, max, "long-polls")
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

    /// Each shard's gauges, in shard order (labelled `shard` in the metrics).
    pub(crate) fn gauges(&self) -> Vec<Gauges> {
        self.shared
            .shards
            .iter()
            .map(|shard| {
                let model = shard.model();
                let follower = &shard.follower;
                Gauges {
                    applied_offset: model.applied_offset,
                    outcomes_position: follower.position.load(Ordering::Relaxed),
                    outcomes_end_offset: follower.end_offset.load(Ordering::Relaxed),
                    live_holds: model.live_holds,
                    live_bookings: model.live_bookings,
                    waiting: model.waiting,
                    events: model.events().count() as u64,
                    pending_writes: shard.pending.waiting() as u64,
                    read_model_anomalies: model.anomalies,
                }
            })
            .collect()
    }

    /// Input offset of the last outcome applied to shard 0's read model (the whole model
    /// of a single-shard deployment; [`AppState::applied_offsets`] for every shard).
    pub fn applied_offset(&self) -> Option<u64> {
        self.first_model().applied_offset
    }

    /// Each shard's last applied outcome offset, in shard order.
    pub fn applied_offsets(&self) -> Vec<Option<u64>> {
        self.models()
            .iter()
            .map(|model| model.applied_offset)
            .collect()
    }

    /// True once every shard's follower has read its whole outcomes log (as of its last
    /// look).
    pub fn caught_up(&self) -> bool {
        self.shared
            .shards
            .iter()
            .all(|shard| shard.follower.caught_up.load(Ordering::Acquire))
    }

    /// blake3 of the read models' canonical encoding (`follower_state`): equal for two
    /// ingresses whose models are the same, whatever their history (tests and tools).
    /// With one shard, the digest of its model's encoding alone.
    pub fn read_model_digest(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        for model in self.models() {
            hasher.update(&crate::follower_state::encode(0, &model));
        }
        hasher.finalize().to_hex().to_string()
    }

    /// Outcomes the followers have read since this ingress started.
    pub fn outcomes_read(&self) -> u64 {
        self.shared
            .shards
            .iter()
            .map(|shard| shard.follower.outcomes_read.load(Ordering::Acquire))
            .sum()
    }

    /// The outcome offset of the snapshot shard 0's read model was loaded from (`None`:
    /// it was rebuilt from offset 0).
    pub fn resumed_from(&self) -> Option<u64> {
        self.shared.shards[0]
            .follower
            .resumed_from
            .load(Ordering::Acquire)
            .checked_sub(1)
    }

    /// The outcome offset of the last snapshot this ingress wrote of shard 0's model.
    pub fn snapshot_written(&self) -> Option<u64> {
        self.shared.shards[0]
            .follower
            .snapshot_written
            .load(Ordering::Acquire)
            .checked_sub(1)
    }

    /// Long-polls waiting for a change right now: waitlist entries and users watched.
    pub fn long_polls(&self) -> usize {
        self.shared.watchers.len() + self.shared.user_watchers.len()
    }

    /// Makes long-polls answer at once; call when shutting down.
    pub fn begin_shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }
}
