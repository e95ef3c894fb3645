//! `ingress`: the HTTP API v1 of Boxoffice (axum), over the requests and outcomes logs.
//!
//! Writes are validated here (nothing invalid reaches the log), encoded as
//! `engine::Request`s, appended to the requests log, and answered from the engine's
//! outcome for that record's offset. Reads are answered from a read model that follows the
//! outcomes log (CQRS), never from the engine or the log.
//!
//! Layout:
//! - `lib.rs`: [`Ingress`] (starts the appender and follower threads), [`app`] (the
//!   router), [`serve`] (socket, graceful shutdown), and the middleware.
//! - `writes`: appends (straight to the log's writer with `LogWriter::start_append` where
//!   the log has that path, the embedded one; else appender threads, batched, blocking
//!   `LogWriter::append`) and the pending writes waiting for their outcomes.
//! - `follower`: the outcome follower thread; `read_model`: what it maintains, with
//!   `notifications` (each user's webhook messages, `GET /v1/me/notifications`), their
//!   large tables `dense_map`s (by id) and `cow_map`s (by name), copied a pointer per
//!   block or shard for the snapshots;
//!   [`follower_state`]: its snapshots, so a restart reads only the outcomes after one;
//!   [`idempotency_index`]: first answers to keyed requests for the contract's 24 hours
//!   (RocksDB), which it feeds too.
//! - `routes/`: handlers (`public`, `admin`, `user`, `ops`, and `web`: the seat-map page,
//!   its live stream and the demo user switcher; the page itself is in `ingress/web/`);
//!   `live`: which events an outcome changed, and a watch per event for the streams;
//!   `validate`: request bodies to engine commands (an event spec's values by `engine::spec_rules`); `views`: records to response bodies; `api`: the bodies themselves.
//! - `extract`, `auth` (with `user_token`: the deployment's HS256 tokens), `privacy`
//!   (pseudonyms), `personal_data`, `client_address` (trusted proxies, `X-Forwarded-For`),
//!   `rate_limit` (`governor`), `open_caps` (open long-polls and streams), `metrics`
//!   (`prometheus-client`), `error`, `times`: edge concerns. Every request passes
//!   [`app`]'s layers: metrics and logging, the request timeout, the client address and
//!   its rate limit, the body limit.
//! - [`engine_control`]: the engine runtime next to this ingress (`serve`), for readiness.
//! - `openapi`: the generated OpenAPI document.
//!
//! Architecture invariant: nothing is answered to a write before its record is durable in
//! the requests log and its outcome has been applied to the read model.

mod accounts;
mod api;
mod auth;
mod catalog;
mod client_address;
mod config;
mod control;
mod cow_map;
mod dense_map;
pub mod effects_control;
pub mod engine_control;
mod error;
mod extract;
mod follower;
pub mod follower_state;
mod generations;
pub mod idempotency_index;
mod identity_bench;
mod live;
mod metrics;
mod notifications;
mod open_caps;
mod openapi;
pub mod payments;
mod personal_data;
mod privacy;
mod rate_limit;
mod read_model;
mod read_model_bench;
mod routes;
mod search;
mod state;
mod stored_filter;
mod times;
mod user_token;
mod validate;
mod views;
mod writes;

pub use api::{EngineRole, EngineStatusResponse, PromoteResponse, ShardStatusBody, SnapshotBody};
pub use auth::{mint_user_token, USER_ID_BYTES_MAX};
pub use client_address::parse_trusted_proxy;
pub use config::{
    IngressConfig, RateLimitConfig, Tenant, DEVELOPMENT_PSEUDONYM_KEY,
    DEVELOPMENT_USER_TOKEN_SECRET,
};
pub use effects_control::{EffectsControl, WebhookAttempt, WebhookDelivery};
pub use engine_control::EngineControl;
pub use error::{AppError, Reason};
#[doc(hidden)]
pub use identity_bench::{identity_steps_bench, IdentitySteps};
pub use openapi::document as openapi_document;
pub use openapi::webhooks as openapi_webhooks;
pub use payments::PaymentsConfig;
pub use personal_data::HOSTED_TABLES as PERSONAL_DATA_TABLES;
pub use privacy::{deployment_pseudonym, PSEUDONYM_CHARS, PSEUDONYM_PREFIX};
#[doc(hidden)]
pub use read_model_bench::{apply_bench as read_model_apply_bench, copy_pause_bench, CopyPause};
pub use routes::webhooks::effects_router;
pub use state::AppState;

use crate::client_address::ClientAddress;
use crate::follower::Follower;
use crate::idempotency_index::IdempotencyIndex;
use crate::live::EventFeeds;
use crate::metrics::{MethodLabel, Metrics};
use crate::open_caps::OpenCounts;
use crate::rate_limit::RateLimiter;
use crate::read_model::ReadModel;
use crate::state::{FollowerStatus, ShardState, Shared, Watchers};
use crate::writes::{Pending, Writes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use requestlog::{LogReader, LogWriter};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running ingress: its shared state plus each shard's outcome follower and snapshot
/// threads, and the control log's follower.
pub struct Ingress {
    state: AppState,
    stop: Arc<AtomicBool>,
    followers: Vec<JoinHandle<()>>,
    /// Joined after the followers, which hand them their last snapshots as they stop.
    snapshot_threads: Vec<JoinHandle<()>>,
}

/// How long a starting ingress waits to catch up with its control log.
const CONTROL_CATCH_UP_AT_START: std::time::Duration = std::time::Duration::from_secs(10);

/// One shard's logs, as an ingress uses them.
pub struct ShardLogs {
    /// Appends to the shard's requests log.
    pub writer: Arc<dyn LogWriter>,
    /// Reads the shard's outcomes log (from its current position, normally offset 0).
    pub outcomes: Box<dyn LogReader>,
    /// The outcomes log's identity: with `config.state_dir`, the shard's read model resumes
    /// from its newest snapshot there (`None`: rebuilt from offset 0, no snapshots).
    pub outcomes_log_id: Option<String>,
    /// The shard's engine when it runs in this process (`serve`), for readiness.
    pub engine: Option<Arc<dyn EngineControl>>,
}

/// The control log (`engine::control`), as an ingress uses it.
pub struct ControlLogs {
    pub writer: Arc<dyn LogWriter>,
    pub reader: Box<dyn LogReader>,
}

/// Where shard `shard`'s follower state lives under an ingress's state directory: shard
/// 0 in it (where a single-shard ingress always kept it), shard K in `shard-K`.
pub fn shard_state_dir(state_dir: &std::path::Path, shard: u32) -> std::path::PathBuf {
    match shard {
        0 => state_dir.to_path_buf(),
        shard => state_dir.join(format!("shard-{shard}")),
    }
}

impl Ingress {
    /// Starts the appender threads (on `writer`) and the outcome follower (reading
    /// `outcomes` from its current position, normally offset 0), with an idempotency index
    /// emptied at start and no read-model snapshots.
    pub fn start(
        config: IngressConfig,
        writer: Arc<dyn LogWriter>,
        outcomes: Box<dyn LogReader>,
        engine: Option<Arc<dyn EngineControl>>,
    ) -> Result<Ingress, String> {
        Self::start_shards(
            config,
            vec![ShardLogs {
                writer,
                outcomes,
                outcomes_log_id: None,
                engine,
            }],
            None,
        )
    }

    /// [`Ingress::start`], resuming from the newest read-model snapshot of the outcomes log
    /// `outcomes_log_id` in `config.state_dir` (and taking snapshots): the follower reads
    /// only the outcomes after it (`follower_state`). Without a state directory it is
    /// [`Ingress::start`] from offset 0. An error, naming the cause, when the state there
    /// was built from another outcomes log, or when the outcomes log no longer holds the
    /// records the follower needs (retention removed them).
    pub fn start_resuming(
        config: IngressConfig,
        writer: Arc<dyn LogWriter>,
        outcomes: Box<dyn LogReader>,
        outcomes_log_id: &str,
        engine: Option<Arc<dyn EngineControl>>,
    ) -> Result<Ingress, String> {
        Self::start_shards(
            config,
            vec![ShardLogs {
                writer,
                outcomes,
                outcomes_log_id: Some(outcomes_log_id.to_string()),
                engine,
            }],
            None,
        )
    }

    /// An ingress over every shard of a deployment (`shards[k]` is shard k's logs; ids say
    /// their shard, `engine::shard_of`), with the control log when there is one. Each
    /// shard has its own appenders, pending writes, outcome follower, read model,
    /// idempotency index and snapshots (shard K's under `shard-K` of the state directory,
    /// [`shard_state_dir`]).
    pub fn start_shards(
        config: IngressConfig,
        shards: Vec<ShardLogs>,
        control: Option<ControlLogs>,
    ) -> Result<Ingress, String> {
        config.validate()?;
        assert!(!shards.is_empty(), "an ingress serves at least one shard");
        let shard_count = u32::try_from(shards.len()).map_err(|_| "too many shards".to_string())?;
        if shard_count > engine::SHARDS_MAX {
            return Err(format!(
                "{shard_count} shards; at most {}",
                engine::SHARDS_MAX
            ));
        }
        let metrics = Arc::new(Metrics::new(shard_count));
        let watchers = Arc::new(Watchers::default());
        let user_watchers = Arc::new(Watchers::default());
        let feeds = Arc::new(EventFeeds::new(config.streams_max));
        let search = search::SearchIndex::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut shard_states = Vec::new();
        let mut followers = Vec::new();
        let mut snapshot_threads = Vec::new();
        for (index, logs) in (0u32..).zip(shards) {
            let state_dir = config
                .state_dir
                .as_deref()
                .map(|dir| shard_state_dir(dir, index));
            let (shard, follower, snapshot_thread) = start_shard(
                &config,
                state_dir.as_deref(),
                logs,
                SharedParts {
                    metrics: &metrics,
                    watchers: &watchers,
                    user_watchers: &user_watchers,
                    feeds: &feeds,
                    search_changes: &search.changes,
                    stop: &stop,
                    shard_count,
                },
            )
            .map_err(|error| match shard_count {
                1 => error,
                _ => format!("shard {index}: {error}"),
            })?;
            shard_states.push(shard);
            followers.push(follower);
            snapshot_threads.extend(snapshot_thread);
        }
        let bootstrap_tenants: Vec<String> = config
            .tenants
            .iter()
            .map(|tenant| tenant.id.clone())
            .collect();
        // The personal-data store (`personal_data`), before the control follower: an
        // erasure it applies destroys a key there.
        // It lives in this ingress's slot (shard 0's, claimed by its idempotency index:
        // several ingresses may share a state directory, each with a slot of its own).
        let slot = shard_states
            .first()
            .and_then(|shard| shard.idempotency.path())
            .map(std::path::Path::to_path_buf);
        // In shard 0's requests log when that log can hold it (`serve`'s embedded log,
        // opened with `PERSONAL_DATA_TABLES`): a new user's entry is then written in the
        // commit of its request (one fsync for both), and a store kept apart by an earlier
        // version moves in.
        let legacy = slot.as_ref().map(|slot| slot.join("personal"));
        let hosted = match shard_states
            .first()
            .and_then(|shard| shard.writes.hosted_tables())
        {
            Some(tables) => personal_data::PersonalData::hosted(tables, legacy.as_deref())
                .map_err(|error| error.to_string())?,
            None => None,
        };
        let personal = Arc::new(match (hosted, legacy) {
            (Some(hosted), _) => hosted,
            (None, Some(dir)) => {
                personal_data::PersonalData::open(&dir).map_err(|error| error.to_string())?
            }
            (None, None) => personal_data::PersonalData::in_memory(),
        });
        // A new user's entry is made durable before any commit that could hold its request.
        for shard in &shard_states {
            shard.writes.sync_before_commits(personal.before_commit());
        }
        let control = match control {
            Some(ControlLogs { writer, reader }) => {
                let control = Arc::new(control::Control::new(
                    shard_count,
                    Some(writer),
                    Arc::clone(&personal),
                    bootstrap_tenants,
                    config.control_lag_max,
                ));
                followers.push(control.follow(reader, Arc::clone(&stop)).map_err(|error| {
                    format!("cannot start the control log's follower: {error}")
                })?);
                // Tenant keys are refused until the control log is applied up to its end
                // (`accounts::Freshness`): wait for that here, so a starting ingress does
                // not refuse them in its first moments (bounded: past it, it serves and
                // refuses tenant keys until caught up).
                if !control.wait_caught_up(CONTROL_CATCH_UP_AT_START) {
                    tracing::warn!(
                        "the control log is not caught up yet: tenant keys are refused until it is"
                    );
                }
                control
            }
            None => Arc::new(control::Control::new(
                shard_count,
                None,
                Arc::clone(&personal),
                bootstrap_tenants,
                config.control_lag_max,
            )),
        };
        let rate = &config.rate_limit;
        let shared = Shared {
            pseudonyms: privacy::Pseudonyms::new(&config.pseudonym_key),
            personal,
            auth: auth::Auth::new(
                config.tenants.clone(),
                config.operator_key.clone(),
                &config.user_token_secret,
            ),
            user_limiter: RateLimiter::new(
                rate.per_user_per_second,
                rate.per_user_burst,
                rate.keys_max,
            ),
            address_limiter: RateLimiter::new(
                rate.per_address_per_second,
                rate.per_address_burst,
                rate.keys_max,
            ),
            long_polls_per_user: Arc::new(OpenCounts::new(config.long_polls_per_user_max)),
            long_polls_per_address: Arc::new(OpenCounts::new(config.long_polls_per_address_max)),
            streams_per_address: Arc::new(OpenCounts::new(config.streams_per_address_max)),
            ticket_mac: engine::tickets::TicketMac::new(&config.engine.ticket_secret),
            config,
            shards: shard_states,
            control,
            watchers,
            user_watchers,
            feeds,
            search,
            metrics,
            shutdown: tokio::sync::watch::channel(false).0,
            effects: std::sync::OnceLock::new(),
            payments: std::sync::OnceLock::new(),
        };
        Ok(Ingress {
            state: AppState {
                shared: Arc::new(shared),
            },
            stop,
            followers,
            snapshot_threads,
        })
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// The effects worker running next to this ingress (`serve`): the webhook delivery log
    /// and re-sends are answered from it. Set once; a second call is ignored.
    pub fn set_effects(&self, effects: Arc<dyn EffectsControl>) {
        let _ = self.state.shared.effects.set(effects);
    }

    /// Takes payments through `payments.gateway` (`crate::payments`). Set once; a second
    /// call is ignored.
    pub fn set_payments(&self, payments: PaymentsConfig) {
        let _ = self.state.shared.payments.set(payments);
    }

    pub fn router(&self) -> Router {
        app(self.state.clone())
    }

    /// Waits until the read model has applied everything the outcomes log held (start-up:
    /// before saying "listening"). False on timeout.
    pub async fn wait_caught_up(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.state.caught_up() {
                return true;
            }
            // Polled: start-up only, and the follower has no async signal for it.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.state.caught_up()
    }

    /// Stops the ingress's threads: new writes are refused (503), queued appends finish,
    /// the appenders and the follower are joined, and the follower's last snapshot is
    /// written. Call it once the HTTP server has stopped. Returns the outcome offset of the
    /// last snapshot written, if any.
    pub fn stop(mut self) -> Option<u64> {
        self.state.begin_shutdown();
        for shard in self.state.shards() {
            shard.writes.close();
        }
        self.stop.store(true, Ordering::Release);
        for follower in self.followers.drain(..) {
            let _ = follower.join();
        }
        for snapshots in self.snapshot_threads.drain(..) {
            let _ = snapshots.join();
        }
        self.state.snapshot_written()
    }
}

impl Drop for Ingress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// What every shard's threads share.
struct SharedParts<'a> {
    metrics: &'a Arc<Metrics>,
    watchers: &'a Arc<Watchers<engine::WaiterId>>,
    user_watchers: &'a Arc<Watchers<engine::UserName>>,
    feeds: &'a Arc<EventFeeds>,
    search_changes: &'a Arc<search::SearchChanges>,
    stop: &'a Arc<AtomicBool>,
    /// How many engine shards there are (the spacing of one shard's ids).
    shard_count: u32,
}

/// A shard's state, its follower thread and its snapshot thread (when it takes snapshots).
type StartedShard = (ShardState, JoinHandle<()>, Option<JoinHandle<()>>);

/// One shard's state and threads: its idempotency index and read model (from its newest
/// snapshot in `state_dir` when the outcomes log's id is given), its appenders and its
/// outcome follower.
fn start_shard(
    config: &IngressConfig,
    state_dir: Option<&std::path::Path>,
    logs: ShardLogs,
    parts: SharedParts<'_>,
) -> Result<StartedShard, String> {
    let ShardLogs {
        writer,
        mut outcomes,
        outcomes_log_id,
        engine,
    } = logs;
    let pending = Arc::new(
        Pending::new(config.completed_outcomes_max)
            .observing(parts.metrics.outcome_after_durable.clone()),
    );
    let follower_status = Arc::new(FollowerStatus::default());
    let window_ms = config.engine.idempotency_window_ms;
    let (idempotency, resumed, store) = match (state_dir, outcomes_log_id.as_deref()) {
        (Some(dir), Some(log_id)) => {
            let (index, covered) = IdempotencyIndex::open_resumable(dir, window_ms, log_id)
                .map_err(|error| error.to_string())?;
            let slot = index.path().expect("an index on disk has a slot");
            let store = snapshotter::RocksStore::open(
                slot.join(follower_state::SNAPSHOTS_DIR),
                snapshotter::RocksStoreOptions {
                    keep: config.snapshots_keep,
                    ..snapshotter::RocksStoreOptions::default()
                },
            )
            .map_err(|error| format!("ingress snapshots in {}: {error}", slot.display()))?;
            let (resumed, _skipped) =
                follower_state::load_newest(&store, log_id, covered.map(|c| c.offset))
                    .map_err(|error| error.to_string())?;
            if resumed.is_none() && covered.is_some() {
                // Rebuilt from offset 0: start from an empty index.
                index.clear().map_err(|error| error.to_string())?;
            }
            (index, resumed, Some((store, log_id.to_string())))
        }
        (dir, _) => (
            IdempotencyIndex::open(dir, window_ms).map_err(|error| error.to_string())?,
            None,
            None,
        ),
    };
    let idempotency = Arc::new(idempotency);
    let (mut model, position) = match resumed {
        Some(state) => {
            let mut model = state.model;
            model.set_ended_entries_max(config.ended_entries_max);
            follower_status.resumed_from.store(
                model.applied_offset.map_or(0, |offset| offset + 1),
                Ordering::Release,
            );
            (model, Some(state.position))
        }
        None => (
            ReadModel::new(config.ended_entries_max),
            store.as_ref().map(|_| 0),
        ),
    };
    model.set_shard_count(parts.shard_count);
    model.notifications.set_limits(
        config.notifications_per_user_max,
        config.notification_users_max,
    );
    if let Some(position) = position {
        outcomes
            .seek(position)
            .map_err(|error| cannot_follow_from(&model, position, error))?;
    }
    let resume_position = outcomes.position();
    let model = Arc::new(RwLock::new(model));
    let (snapshots, snapshot_thread) = match store {
        Some((store, log_id)) => {
            let (trigger, thread) = follower_state::start_writer(
                Box::new(store),
                Arc::clone(&idempotency),
                log_id,
                config.snapshot_every_outcomes,
                config.snapshot_interval,
                Arc::clone(&follower_status.snapshot_written),
            );
            (trigger, Some(thread))
        }
        None => (follower_state::SnapshotTrigger::off(), None),
    };
    let writes = Writes::start(
        Arc::clone(&writer),
        Arc::clone(&pending),
        Arc::clone(parts.metrics),
        config.outcome_timeout,
        config.append_queue_depth,
        config.append_batch_records_max,
        config.appender_threads,
    );
    let follower = Follower {
        model: Arc::clone(&model),
        pending: Arc::clone(&pending),
        idempotency: Arc::clone(&idempotency),
        watchers: Arc::clone(parts.watchers),
        user_watchers: Arc::clone(parts.user_watchers),
        metrics: Arc::clone(parts.metrics),
        status: Arc::clone(&follower_status),
        feeds: Arc::clone(parts.feeds),
        search_changes: Arc::clone(parts.search_changes),
        snapshots,
        resume_position,
        recent_outcomes: engine.as_ref().and_then(|engine| engine.recent_outcomes()),
    }
    .spawn(outcomes, Arc::clone(parts.stop));
    let shard = ShardState {
        writes,
        pending,
        model,
        idempotency,
        follower: follower_status,
        engine,
        writer,
    };
    Ok((shard, follower, snapshot_thread))
}

/// Why the follower cannot start at `position` of the outcomes log.
fn cannot_follow_from(model: &ReadModel, position: u64, error: requestlog::LogError) -> String {
    let from = match model.applied_offset {
        Some(offset) => format!("its newest usable snapshot covers the outcomes up to offset {offset}, so it reads the outcomes log from record {position}"),
        None => "it has no usable snapshot, so it rebuilds the read model from the outcomes log's record 0".to_string(),
    };
    match error {
        requestlog::LogError::OffsetOutOfRange { start_offset, end_offset, .. } if position < start_offset => format!(
            "the ingress cannot follow the outcomes log: {from}, but the log now starts at record {start_offset} (it ends at {end_offset}): retention removed the records between. Start it with a snapshot that the log still covers (another ingress's state directory), or keep the outcomes log longer"
        ),
        error => format!("the ingress cannot follow the outcomes log: {from}: {error}"),
    }
}

/// The whole API. Tests call `app(state).oneshot(request)`.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// [`app`] with `extra` routes next to the API's, behind the same layers (metrics,
/// logging, the request timeout, the client address and its rate limit, the body limit):
/// `boxoffice serve` adds the engine's operator endpoints.
pub fn app_with(state: AppState, extra: Router) -> Router {
    let body_limit = state.config().body_bytes_max;
    let mut router = Router::new();
    if state.config().demo_tokens_enabled() {
        router = router.route("/v1/demo/tokens", post(routes::web::demo_token));
    }
    // With an engine in this process (`serve`), the operator router of the `boxoffice`
    // binary serves these next to this one; without one they say where to go.
    if state.shards().iter().all(|shard| shard.engine.is_none()) {
        router = router
            .route("/v1/admin/engine", get(routes::ops::no_engine))
            .route("/v1/admin/engine/promote", post(routes::ops::no_engine))
            .route("/v1/admin/engine/requests", get(routes::ops::no_engine));
    }
    router
        .route("/", get(routes::web::page))
        .route("/events/{event_id}", get(routes::web::page))
        .route("/web/{asset}", get(routes::web::asset))
        .route("/healthz", get(routes::ops::healthz))
        .route("/readyz", get(routes::ops::readyz))
        .route("/metrics", get(routes::ops::metrics))
        .route("/v1/openapi.json", get(routes::ops::openapi))
        .route(
            "/v1/operator/tenants",
            get(routes::accounts::list_tenants).post(routes::accounts::create_tenant),
        )
        .route(
            "/v1/operator/tenants/{tenant_id}",
            get(routes::accounts::get_tenant),
        )
        .route(
            "/v1/operator/tenants/{tenant_id}/suspend",
            post(routes::accounts::suspend_tenant),
        )
        .route(
            "/v1/operator/tenants/{tenant_id}/resume",
            post(routes::accounts::resume_tenant),
        )
        .route(
            "/v1/operator/tenants/{tenant_id}/keys",
            post(routes::accounts::issue_admin_key),
        )
        .route(
            "/v1/operator/tenants/{tenant_id}/placement",
            get(routes::ops::get_placement).put(routes::ops::put_placement),
        )
        .route("/v1/operator/users/erase", post(routes::ops::erase_user))
        .route("/v1/cities", get(routes::public::cities))
        .route("/v1/venues", get(routes::public::venues))
        .route("/v1/events", get(routes::public::events))
        .route("/v1/events/{event_id}", get(routes::public::event))
        .route("/v1/events/{event_id}/seats", get(routes::public::seats))
        .route("/v1/events/{event_id}/draw", get(routes::public::draw))
        .route("/v1/events/{event_id}/stream", get(routes::web::stream))
        .route(
            "/v1/events/{event_id}/holds",
            post(routes::user::place_hold),
        )
        .route(
            "/v1/events/{event_id}/waitlist",
            post(routes::user::join_waitlist),
        )
        .route(
            "/v1/holds/{hold_id}",
            get(routes::user::get_hold).delete(routes::user::release_hold),
        )
        .route(
            "/v1/holds/{hold_id}/confirm",
            post(routes::user::confirm_hold),
        )
        .route(
            "/v1/me/notifications",
            get(routes::user::list_notifications),
        )
        .route(
            "/v1/holds/{hold_id}/payment",
            post(routes::payments::create_payment),
        )
        .route("/v1/payments/webhook", post(routes::payments::webhook))
        .route(
            "/v1/admin/reports/reconciliation",
            get(routes::payments::reconciliation),
        )
        .route("/v1/bookings", get(routes::user::list_bookings))
        .route(
            "/v1/bookings/{booking_id}",
            get(routes::user::get_booking).delete(routes::user::cancel_booking),
        )
        .route(
            "/v1/bookings/{booking_id}/tickets/{ticket_id}/qr.svg",
            get(routes::user::ticket_qr),
        )
        .route(
            "/v1/waitlist/{waitlist_id}",
            get(routes::user::get_waitlist).delete(routes::user::leave_waitlist),
        )
        .route(
            "/v1/desks/{desk_id}/tickets",
            post(routes::user::create_desk_ticket),
        )
        .route(
            "/v1/desks/{desk_id}/tickets/{ticket_id}",
            get(routes::user::get_desk_ticket).delete(routes::user::cancel_desk_ticket),
        )
        .route(
            "/v1/desks/{desk_id}/tickets/{ticket_id}/confirm",
            post(routes::user::confirm_desk_ticket),
        )
        .route(
            "/v1/admin/events",
            get(routes::admin::list_events).post(routes::admin::create_event),
        )
        .route(
            "/v1/admin/events/{event_id}",
            get(routes::admin::get_event)
                .patch(routes::admin::patch_event)
                .delete(routes::admin::cancel_event),
        )
        .route(
            "/v1/admin/events/{event_id}/checkin",
            post(routes::admin::checkin),
        )
        .route(
            "/v1/admin/events/{event_id}/attendees",
            get(routes::admin::attendees),
        )
        .route(
            "/v1/admin/events/{event_id}/draw",
            post(routes::admin::open_arrival_window),
        )
        .route(
            "/v1/admin/events/{event_id}/draw/reveal",
            post(routes::admin::reveal_draw_seed),
        )
        .route(
            "/v1/admin/webhooks",
            get(routes::webhooks::list_webhooks).post(routes::webhooks::create_webhook),
        )
        .route(
            "/v1/admin/webhooks/{webhook_id}",
            get(routes::webhooks::get_webhook).delete(routes::webhooks::delete_webhook),
        )
        .route(
            "/v1/admin/webhooks/{webhook_id}/enable",
            post(routes::webhooks::enable_webhook),
        )
        .route(
            "/v1/admin/webhooks/{webhook_id}/deliveries",
            get(routes::webhooks::deliveries),
        )
        .route(
            "/v1/admin/webhooks/{webhook_id}/deliveries/{message_id}/resend",
            post(routes::webhooks::resend),
        )
        .route(
            "/v1/admin/keys",
            get(routes::accounts::list_keys).post(routes::accounts::create_key),
        )
        .route(
            "/v1/admin/keys/{key_id}",
            axum::routing::delete(routes::accounts::revoke_key),
        )
        .route(
            "/v1/admin/keys/{key_id}/rotate",
            post(routes::accounts::rotate_key),
        )
        .route(
            "/v1/admin/user-token-key",
            get(routes::accounts::get_user_token_key)
                .put(routes::accounts::put_user_token_key)
                .delete(routes::accounts::delete_user_token_key),
        )
        .route(
            "/v1/admin/venues",
            get(routes::catalog::list_venues).post(routes::catalog::create_venue),
        )
        .route(
            "/v1/admin/venues/{venue_id}",
            get(routes::catalog::get_venue).patch(routes::catalog::patch_venue),
        )
        .route(
            "/v1/admin/titles",
            get(routes::catalog::list_titles).post(routes::catalog::create_title),
        )
        .route(
            "/v1/admin/events/{event_id}/listing",
            put(routes::catalog::put_listing),
        )
        .route("/v1/titles", get(routes::catalog::titles))
        .route("/v1/titles/{title_id}/shows", get(routes::catalog::shows))
        .route("/v1/admin/desks", post(routes::admin::create_desk))
        .route("/v1/admin/desks/{desk_id}", get(routes::admin::desk))
        .fallback(|| async { AppError::no_route() })
        .method_not_allowed_fallback(|| async {
            AppError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                error::Reason::MethodNotAllowed,
                "this method is not allowed here",
            )
        })
        .with_state(state.clone())
        .merge(extra)
        // One `layer` call: `Router::layer` wraps every route in a boxed service, and each
        // layer above clones all the boxes below it for every request (four layers were
        // 13% of the HTTP workers' samples under hold + confirm, `front` 5.7%). `front`
        // does what the four did, in their order, cloning the route once.
        .layer(
            tower::ServiceBuilder::new()
                .layer(FrontLayer { state })
                .layer(DefaultBodyLimit::max(body_limit)),
        )
}

/// Every request's way in, outermost first: counts and times every answer by route
/// template and logs it (5xx as warnings); answers 503 `request_timeout` for a handler
/// still running at the configured timeout (the handler is dropped, the answer still
/// counted and logged); finds the client's address and applies its rate limit
/// ([`admit`]).
///
/// A tower layer of its own rather than `middleware::from_fn`: that one clones the route
/// below it (a boxed service: an allocation), boxes it again into a `Next` and boxes
/// the middleware's future, three allocations a request on the HTTP threads (6% of
/// their samples under hold + confirm with `front` as an `async fn`, BENCHMARKS.md
/// "Session 43"). Here the route is called in place (axum's routes are always ready) and
/// the answer is finished in [`FrontFuture`], a plain future with the route's inside.
#[derive(Clone)]
struct FrontLayer {
    state: AppState,
}

impl<S> tower::Layer<S> for FrontLayer {
    type Service = Front<S>;

    fn layer(&self, inner: S) -> Front<S> {
        Front {
            state: self.state.clone(),
            inner,
        }
    }
}

/// [`FrontLayer`]'s service around one route.
#[derive(Clone)]
struct Front<S> {
    state: AppState,
    inner: S,
}

impl<S> tower::Service<Request> for Front<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = FrontFuture<S::Future>;

    fn poll_ready(
        &mut self,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let started = Instant::now();
        let method = request.method().clone();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let (handler, refused) = match admit(&self.state, &mut request) {
            Err(refused) => (None, Some(refused.into_response())),
            Ok(()) => (
                Some(tokio::time::timeout(
                    self.state.config().request_timeout,
                    self.inner.call(request),
                )),
                None,
            ),
        };
        FrontFuture {
            handler,
            refused,
            started,
            method,
            route,
            state: self.state.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request under [`Front`]: its handler under the request timeout (or the answer
    /// that refused it), then the answer counted and logged.
    struct FrontFuture<F> {
        #[pin]
        handler: Option<tokio::time::Timeout<F>>,
        refused: Option<Response>,
        started: Instant,
        method: axum::http::Method,
        route: Option<MatchedPath>,
        state: AppState,
    }
}

impl<F> std::future::Future for FrontFuture<F>
where
    F: std::future::Future<Output = Result<Response, std::convert::Infallible>>,
{
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let response = match this.handler.as_pin_mut() {
            None => this
                .refused
                .take()
                .expect("a refused request's future is polled to its answer once"),
            Some(handler) => match std::task::ready!(handler.poll(context)) {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_elapsed) => AppError::outcome_unknown(
                    error::Reason::RequestTimeout,
                    "the request was not answered in time",
                )
                .into_response(),
            },
        };
        let elapsed = this.started.elapsed();
        let status = response.status();
        let method = &*this.method;
        let route = this.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        this.state.shared.metrics.observe_http(
            route,
            MethodLabel::of(method),
            status.as_u16(),
            elapsed,
        );
        if status.is_server_error() {
            tracing::warn!(%method, %route, status = status.as_u16(), latency_ms = elapsed.as_secs_f64() * 1e3, "request failed");
        } else {
            tracing::debug!(%method, %route, status = status.as_u16(), latency_ms = elapsed.as_secs_f64() * 1e3, "request");
        }
        std::task::Poll::Ready(Ok(response))
    }
}

/// Finds the client's address (`client_address`: the peer, or behind a trusted proxy
/// the `X-Forwarded-For` hop it saw), keeps it in the request's extensions for the caps
/// on long-polls and streams, and applies its rate limit (health and metrics are exempt):
/// what refuses the request, if anything does.
fn admit(state: &AppState, request: &mut Request) -> Result<(), AppError> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    if let Some(peer) = peer {
        let address = ClientAddress(client_address::client_address(
            peer,
            request.headers(),
            &state.config().trusted_proxies,
        ));
        request.extensions_mut().insert(address);
        let exempt = matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics");
        if !exempt {
            state.check_address_rate(address)?;
        }
    }
    Ok(())
}

/// Serves the API on `listener` until `shutdown` completes; in-flight requests finish
/// (long-polls answer at once), then this returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Router::new(), shutdown).await
}

/// [`serve`], with `extra` routes next to the API's (`boxoffice serve` adds the engine's
/// operator routes).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    extra: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = app_with(state.clone(), extra);
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        state.begin_shutdown();
    };
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal)
    .await
}
