//! The ingress's settings. `boxoffice` builds them from its configuration file; tests
//! build them from [`IngressConfig::default`] (the development defaults).

use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct IngressConfig {
    /// Larger request bodies are refused with 413 before they are parsed.
    pub body_bytes_max: usize,
    /// How long a write waits for its outcome (including the append) before 503; a retry
    /// with the same Idempotency-Key then returns the real outcome.
    pub outcome_timeout: Duration,
    pub operator_key: String,
    /// HS256 secret of user tokens.
    pub user_token_secret: String,
    /// The deployment's secret from which every tenant's pseudonym key is derived
    /// (`privacy`): user ids become pseudonyms before anything reaches a log. Changing it
    /// gives every user new pseudonyms (their earlier bookings are no longer theirs).
    pub pseudonym_key: String,
    pub tenants: Vec<Tenant>,
    pub rate_limit: RateLimitConfig,
    /// The engine's limits: the ingress refuses what the engine would refuse as invalid, so
    /// nothing invalid reaches the log.
    pub engine: engine::EngineConfig,
    /// Appends waiting for an appender thread; a full queue makes writers wait (bounded by
    /// `outcome_timeout`).
    pub append_queue_depth: usize,
    /// Records per `append` call (group commit at the ingress).
    pub append_batch_records_max: usize,
    /// Threads calling the blocking `LogWriter::append`; two let one batch fill while the
    /// previous one is being made durable.
    pub appender_threads: usize,
    /// Outcomes nobody waited for yet, kept for a writer that registers late.
    pub completed_outcomes_max: usize,
    /// Ended holds and waitlist entries the read model remembers (for `GET` of an expired
    /// hold); the oldest are forgotten first.
    pub ended_entries_max: usize,
    /// Default hold TTL of a service desk's validated tickets.
    pub desk_hold_ttl: Duration,
    /// Seat-map streams (`GET /v1/events/{id}/stream`) open at once; more are 503.
    pub streams_max: usize,
    /// Seat-map streams one client address (an IPv6 /64) may have open; more are 429.
    pub streams_per_address_max: usize,
    /// Waitlist long-polls (`wait_seconds` > 0) one user may have waiting; more are 429.
    pub long_polls_per_user_max: usize,
    /// Waitlist long-polls one client address (an IPv6 /64) may have waiting; more are 429.
    pub long_polls_per_address_max: usize,
    /// Notifications (`GET /v1/me/notifications`) a user keeps per shard; the oldest are
    /// dropped, and a read says so.
    pub notifications_per_user_max: usize,
    /// Users with notifications a shard keeps; the one told least recently is forgotten.
    pub notification_users_max: usize,
    /// Every request is answered within this (503 `request_timeout` otherwise). Writes
    /// answer by `outcome_timeout` and long-polls wait a little less than this, so only a
    /// request stuck somewhere unexpected meets it. A stream's head is answered at once;
    /// its body is not bounded by it.
    pub request_timeout: Duration,
    /// Peers whose `X-Forwarded-For` is believed (see `client_address`); empty: none, the
    /// TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Development mode (`boxoffice --dev`): development-only endpoints exist. Off by
    /// default; the binary refuses demo secrets outside it.
    pub development: bool,
    /// Webhook endpoints may be private, loopback or link-local addresses (the SSRF guard
    /// is off): development mode, or `effects.private_addresses_allowed`.
    pub webhook_private_addresses_allowed: bool,
    /// ISO 4217: the currency of events created without one (`payments.currency`).
    pub currency_default: String,
    /// Where the follower keeps its state: a slot per running ingress under it, each with
    /// the idempotency index (window `engine.idempotency_window_ms`) and, for an ingress
    /// started with its outcomes log's identity (`Ingress::start_resuming`), read-model
    /// snapshots (`follower_state`). `None` keeps the index in memory and takes no
    /// snapshots, for tests and tools.
    pub state_dir: Option<PathBuf>,
    /// A read-model snapshot is taken after this many outcomes...
    pub snapshot_every_outcomes: u64,
    /// ...or this long after the last one, if any outcome came since.
    pub snapshot_interval: Duration,
    /// Read-model snapshots kept per slot (the newest).
    pub snapshots_keep: usize,
    /// Tenant keys (API keys and config-file admin keys) are refused with 503 while this
    /// ingress is further than this behind its control log (`crate::accounts::Freshness`):
    /// a key revoked elsewhere works here at most this long.
    pub control_lag_max: Duration,
}

/// The development default user-token secret (`config/default.toml`). Anyone can mint
/// tokens with it, so while it is in use the demo user switcher may mint them too.
pub const DEVELOPMENT_USER_TOKEN_SECRET: &str = "demo-user-secret";

/// The development default pseudonym key (`config/default.toml`), refused outside `--dev`.
pub const DEVELOPMENT_PSEUDONYM_KEY: &str = "demo-pseudonym-key";

#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: String,
    pub admin_key: String,
}

#[derive(Clone, Debug)]
pub struct RateLimitConfig {
    pub enabled: bool,
    pub per_user_per_second: u32,
    pub per_user_burst: u32,
    pub per_address_per_second: u32,
    pub per_address_burst: u32,
    /// Keys held per limiter before idle (full) buckets are dropped (see `rate_limit`).
    pub keys_max: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            per_user_per_second: 20,
            per_user_burst: 40,
            per_address_per_second: 100,
            per_address_burst: 200,
            keys_max: 100_000,
        }
    }
}

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig {
            body_bytes_max: 64 * 1024,
            outcome_timeout: Duration::from_millis(5_000),
            operator_key: "demo-operator-key".into(),
            user_token_secret: DEVELOPMENT_USER_TOKEN_SECRET.into(),
            pseudonym_key: DEVELOPMENT_PSEUDONYM_KEY.into(),
            tenants: vec![Tenant {
                id: "demo".into(),
                admin_key: "demo-admin-key".into(),
            }],
            rate_limit: RateLimitConfig::default(),
            engine: engine::EngineConfig::default(),
            append_queue_depth: 4096,
            append_batch_records_max: 512,
            appender_threads: 2,
            completed_outcomes_max: 65_536,
            ended_entries_max: 1_000_000,
            desk_hold_ttl: Duration::from_secs(300),
            streams_max: 10_000,
            streams_per_address_max: 32,
            long_polls_per_user_max: 8,
            long_polls_per_address_max: 256,
            notifications_per_user_max: crate::notifications::PER_USER_MAX_DEFAULT,
            notification_users_max: crate::notifications::USERS_MAX_DEFAULT,
            request_timeout: Duration::from_millis(70_000),
            trusted_proxies: Vec::new(),
            development: false,
            webhook_private_addresses_allowed: false,
            currency_default: "EUR".into(),
            state_dir: None,
            snapshot_every_outcomes: 1_000_000,
            snapshot_interval: Duration::from_secs(60),
            snapshots_keep: 2,
            control_lag_max: Duration::from_millis(2_000),
        }
    }
}

/// The largest body the wire format can carry comfortably: a record is at most
/// `engine::wire::RECORD_BYTES_MAX`, and a body is never larger than a quarter of it.
pub(crate) const BODY_BYTES_CAP: usize = engine::wire::RECORD_BYTES_MAX / 4;
const _: () = assert!(
    BODY_BYTES_CAP >= 64 * 1024,
    "the contract's 64 KiB bodies must fit a record"
);

impl IngressConfig {
    /// Checks relationships between settings; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if !engine::terms::currency_valid(&self.currency_default) {
            return Err(format!(
                "payments.currency = {:?}: an ISO 4217 currency code, upper case (EUR)",
                self.currency_default
            ));
        }
        if self.body_bytes_max == 0 || self.body_bytes_max > BODY_BYTES_CAP {
            return Err(format!(
                "http.body_bytes_max must be from 1 to {BODY_BYTES_CAP}"
            ));
        }
        if self.outcome_timeout.is_zero() {
            return Err("http.outcome_timeout_ms must be positive".into());
        }
        if self.user_token_secret.is_empty() || self.operator_key.is_empty() {
            return Err("auth.user_token_secret and auth.operator_key must not be empty".into());
        }
        if self.pseudonym_key.len() < 16 {
            return Err("privacy.pseudonym_key must be at least 16 bytes (a secret: user ids in every log are keyed with it)".into());
        }
        for tenant in &self.tenants {
            if tenant.id.is_empty() || tenant.admin_key.is_empty() {
                return Err("every auth.tenants entry needs an id and an admin_key".into());
            }
            if tenant.admin_key == self.operator_key {
                return Err(format!(
                    "tenant {} uses the operator key as its admin key",
                    tenant.id
                ));
            }
        }
        let mut keys: Vec<&str> = self
            .tenants
            .iter()
            .map(|tenant| tenant.admin_key.as_str())
            .collect();
        keys.sort();
        keys.dedup();
        if keys.len() != self.tenants.len() {
            return Err("two tenants share an admin key".into());
        }
        if self.append_queue_depth == 0
            || self.append_batch_records_max == 0
            || self.appender_threads == 0
            || self.completed_outcomes_max == 0
        {
            return Err(
                "append queue, batch, thread and completed-outcome limits must be positive".into(),
            );
        }
        if self.streams_max == 0 {
            return Err("the seat-map stream limit must be positive".into());
        }
        for (name, value) in [
            ("http.streams_per_address_max", self.streams_per_address_max),
            ("http.long_polls_per_user_max", self.long_polls_per_user_max),
            (
                "http.long_polls_per_address_max",
                self.long_polls_per_address_max,
            ),
            (
                "http.notifications_per_user_max",
                self.notifications_per_user_max,
            ),
            ("http.notification_users_max", self.notification_users_max),
        ] {
            if value == 0 {
                return Err(format!("{name} must be positive"));
            }
        }
        if self.snapshot_every_outcomes == 0
            || self.snapshot_interval.is_zero()
            || self.snapshots_keep == 0
        {
            return Err("ingress.snapshot_every_outcomes, ingress.snapshot_interval_ms and ingress.snapshots_keep must be positive".into());
        }
        if self.request_timeout <= self.outcome_timeout {
            return Err(format!(
                "http.request_timeout_ms ({} ms) must exceed http.outcome_timeout_ms ({} ms): a write must be able to answer first",
                self.request_timeout.as_millis(),
                self.outcome_timeout.as_millis()
            ));
        }
        Ok(())
    }

    /// True only in development mode with the development default user-token secret:
    /// then (and only then) the demo user switcher mints user tokens. With any other
    /// secret a minted token would be a real credential, and outside development mode the
    /// endpoint does not exist (404).
    pub fn demo_tokens_enabled(&self) -> bool {
        self.development && self.user_token_secret == DEVELOPMENT_USER_TOKEN_SECRET
    }
}
