//! Settings: the defaults built into the binary (`config/default.toml`), then a
//! configuration file (`--config FILE`) over them, then the environment over both.
//!
//! Any key can be overridden as `BOXOFFICE_<SECTION>_<KEY>` (e.g.
//! `BOXOFFICE_HTTP_LISTEN`, `BOXOFFICE_RATE_LIMIT_ENABLED`); top-level keys as
//! `BOXOFFICE_<KEY>` (`BOXOFFICE_DATA_DIR`); `BOXOFFICE_LISTEN` is short for the HTTP
//! listen address. Kafka client properties (`[kafka.client]`, dotted librdkafka names) are
//! `BOXOFFICE_KAFKA_CLIENT_<PROPERTY>` with every `.` written `_`
//! (`BOXOFFICE_KAFKA_CLIENT_SASL_PASSWORD` sets `sasl.password`: librdkafka's string
//! properties have no `_` of their own).

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub(crate) enum SettingsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration in {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("refusing to start outside development mode: development default secrets are set for {}; set real secrets in the configuration or the environment (e.g. BOXOFFICE_AUTH_OPERATOR_KEY), or pass --dev for development", settings.join(", "))]
    DemoSecrets { settings: Vec<&'static str> },
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct Settings {
    pub(crate) data_dir: PathBuf,
    /// Shards of this deployment: each one requests log, one outcomes log and one engine
    /// (issue "Past one engine thread"). Optional in a file (1).
    #[serde(default = "default_shards")]
    pub(crate) shards: u32,
    /// The shard this process's engine tools act on (`--shard`), never read from a file:
    /// [`Settings::for_shard`] sets it with the topics, data directory and engine place.
    #[serde(skip)]
    pub(crate) shard: u32,
    pub(crate) http: HttpSettings,
    pub(crate) auth: AuthSettings,
    pub(crate) rate_limit: RateLimitSettings,
    pub(crate) engine: EngineSettings,
    pub(crate) log: LogSettings,
    pub(crate) kafka: KafkaSettings,
    pub(crate) snapshot: SnapshotSettings,
    /// The effects worker (webhook deliveries). Optional in a file.
    #[serde(default)]
    pub(crate) effects: EffectsSettings,
    /// Payments through a gateway (issue "Payments through a real gateway"). Optional in
    /// a file (none).
    #[serde(default)]
    pub(crate) payments: PaymentsSettings,
    /// Pseudonyms and the personal-data store (issue 23; PRIVACY.md).
    pub(crate) privacy: PrivacySettings,
    /// Development mode (`--dev`), never read from a file: the demo secrets are accepted
    /// and development-only endpoints exist. Outside it a demo secret stops start-up.
    #[serde(skip)]
    pub(crate) development: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct HttpSettings {
    pub(crate) listen: String,
    pub(crate) body_bytes_max: usize,
    pub(crate) outcome_timeout_ms: u64,
    /// Every request is answered within this (503 otherwise). Optional in a file, as are
    /// the keys below, so configurations written before them still load.
    #[serde(default = "default_request_timeout_ms")]
    pub(crate) request_timeout_ms: u64,
    /// Tenant keys are refused (503) while the ingress is further than this behind the
    /// control log, so a revoked key works on another ingress at most this long.
    #[serde(default = "default_control_lag_ms_max")]
    pub(crate) control_lag_ms_max: u64,
    /// Peers (addresses or CIDR ranges) whose `X-Forwarded-For` names the client; empty:
    /// the TCP peer is the client. A list in a file; in the environment a comma-separated
    /// string (`BOXOFFICE_HTTP_TRUSTED_PROXIES=10.0.0.0/8,127.0.0.1`).
    #[serde(default, deserialize_with = "list_or_comma_separated")]
    pub(crate) trusted_proxies: Vec<String>,
    #[serde(default = "default_long_polls_per_user_max")]
    pub(crate) long_polls_per_user_max: usize,
    #[serde(default = "default_long_polls_per_address_max")]
    pub(crate) long_polls_per_address_max: usize,
    #[serde(default = "default_streams_per_address_max")]
    pub(crate) streams_per_address_max: usize,
    /// `GET /v1/me/notifications`: what a user keeps per shard, and users per shard.
    #[serde(default = "default_notifications_per_user_max")]
    pub(crate) notifications_per_user_max: usize,
    #[serde(default = "default_notification_users_max")]
    pub(crate) notification_users_max: usize,
    /// Threads of the HTTP runtime; 0: half the cores the process may use (`cpus`), at
    /// least one (the other half runs the log writer, the engine's threads and the outcome
    /// follower).
    #[serde(default)]
    pub(crate) worker_threads: usize,
    /// Every thread of the process but the HTTP runtime's under Linux's `SCHED_BATCH`, so
    /// that a woken pipeline thread does not preempt a running one (`scheduling.rs`).
    #[serde(default = "default_background_threads_batch")]
    pub(crate) background_threads_batch: bool,
    /// Whether the process may take transparent huge pages (`scheduling.rs`): off by
    /// default, as Redis does, for the latency of the threads that fault them in.
    #[serde(default)]
    pub(crate) transparent_huge_pages: bool,
    /// The CPUs every thread of the process runs on (its affinity, set before it starts
    /// any thread: `scheduling.rs`); empty: wherever the kernel puts them. A list of CPU
    /// numbers in a file; in the environment one number or a text like taskset's
    /// (`BOXOFFICE_HTTP_CPUS=0` or `0,2-3`).
    #[serde(default, deserialize_with = "cpu_list")]
    pub(crate) cpus: Vec<usize>,
}

fn default_background_threads_batch() -> bool {
    true
}

impl HttpSettings {
    /// [`HttpSettings::worker_threads`], with 0 resolved.
    pub(crate) fn worker_threads_resolved(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, |cores| (cores.get() / 2).max(1)),
            threads => threads,
        }
    }
}

fn default_shards() -> u32 {
    1
}

/// The name of shard `shard`'s copy of `base` (a topic, a transactional id): shard 0 keeps
/// `base`, so a single-shard deployment's names are the ones it always had.
pub(crate) fn shard_name(base: &str, shard: u32) -> String {
    match shard {
        0 => base.to_string(),
        shard => format!("{base}.shard-{shard}"),
    }
}

/// Where shard `shard` keeps its files under `data_dir`: shard 0 in `data_dir` itself.
pub(crate) fn shard_dir(data_dir: &Path, shard: u32) -> PathBuf {
    match shard {
        0 => data_dir.to_path_buf(),
        shard => data_dir.join(format!("shard-{shard}")),
    }
}

fn default_control_lag_ms_max() -> u64 {
    2_000
}

fn default_request_timeout_ms() -> u64 {
    ingress::IngressConfig::default()
        .request_timeout
        .as_millis() as u64
}

fn default_long_polls_per_user_max() -> usize {
    ingress::IngressConfig::default().long_polls_per_user_max
}

fn default_long_polls_per_address_max() -> usize {
    ingress::IngressConfig::default().long_polls_per_address_max
}

fn default_streams_per_address_max() -> usize {
    ingress::IngressConfig::default().streams_per_address_max
}

fn default_notifications_per_user_max() -> usize {
    ingress::IngressConfig::default().notifications_per_user_max
}

fn default_notification_users_max() -> usize {
    ingress::IngressConfig::default().notification_users_max
}

/// A list of strings, or one string of comma-separated items (what an environment
/// variable can say).
fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    Ok(match ListOrString::deserialize(deserializer)? {
        ListOrString::List(items) => items,
        ListOrString::String(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// CPU numbers: one, a list of them, or a text of comma-separated numbers and ranges
/// (`"0,2-3"`, as `taskset -c` takes them), each below the kernel's limit of
/// [`rustix::thread::CpuSet::MAX_CPU`].
fn cpu_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<usize>, D::Error> {
    struct Cpus;
    fn checked<E: serde::de::Error>(cpu: u64) -> Result<usize, E> {
        usize::try_from(cpu)
            .ok()
            .filter(|&cpu| cpu < rustix::thread::CpuSet::MAX_CPU)
            .ok_or_else(|| {
                E::custom(format!(
                    "CPU {cpu} is past the last one a CPU set can name ({})",
                    rustix::thread::CpuSet::MAX_CPU - 1
                ))
            })
    }
    fn number<E: serde::de::Error>(text: &str) -> Result<usize, E> {
        let cpu = text
            .trim()
            .parse::<u64>()
            .map_err(|_| E::custom(format!("{text:?} is not a CPU number")))?;
        checked(cpu)
    }
    impl<'de> serde::de::Visitor<'de> for Cpus {
        type Value = Vec<usize>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter
                .write_str("a CPU number, a list of them, or a text such as \"0\" or \"0,2-3\"")
        }

        fn visit_u64<E: serde::de::Error>(self, cpu: u64) -> Result<Vec<usize>, E> {
            Ok(vec![checked(cpu)?])
        }

        fn visit_i64<E: serde::de::Error>(self, cpu: i64) -> Result<Vec<usize>, E> {
            let cpu =
                u64::try_from(cpu).map_err(|_| E::custom(format!("{cpu} is not a CPU number")))?;
            self.visit_u64(cpu)
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Vec<usize>, E> {
            let mut cpus = Vec::new();
            for item in text
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
            {
                match item.split_once('-') {
                    None => cpus.push(number(item)?),
                    Some((first, last)) => {
                        let (first, last) = (number::<E>(first)?, number::<E>(last)?);
                        if first > last {
                            return Err(E::custom(format!(
                                "the range {item:?} ends before it starts"
                            )));
                        }
                        cpus.extend(first..=last);
                    }
                }
            }
            Ok(cpus)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Vec<usize>, A::Error> {
            let mut cpus = Vec::new();
            while let Some(cpu) = seq.next_element::<u64>()? {
                cpus.push(checked(cpu)?);
            }
            Ok(cpus)
        }
    }
    deserializer.deserialize_any(Cpus)
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct AuthSettings {
    pub(crate) operator_key: String,
    pub(crate) user_token_secret: String,
    pub(crate) tenants: Vec<TenantSettings>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct PrivacySettings {
    /// The deployment's secret from which each tenant's pseudonym key is derived
    /// (`ingress::privacy`). Changing it gives every user new pseudonyms.
    pub(crate) pseudonym_key: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct TenantSettings {
    pub(crate) id: String,
    pub(crate) admin_key: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct RateLimitSettings {
    pub(crate) enabled: bool,
    pub(crate) per_user_per_second: u32,
    pub(crate) per_user_burst: u32,
    pub(crate) per_address_per_second: u32,
    pub(crate) per_address_burst: u32,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct EngineSettings {
    pub(crate) ticket_secret: String,
    pub(crate) confirm_grace_ms: u64,
    pub(crate) waitlist_length_max: u32,
    pub(crate) waitlist_wait_max_ms: u64,
    /// Live waitlist entries one user may have per event. Optional in a file (the
    /// engine's default), so configurations written before it still load.
    #[serde(default = "default_waiters_per_user_max")]
    pub(crate) waiters_per_user_max: u32,
    /// Open desk tickets one user may have per desk (optional, as above).
    #[serde(default = "default_desk_tickets_per_user_max")]
    pub(crate) desk_tickets_per_user_max: u32,
    pub(crate) seats_per_order_cap: u32,
    pub(crate) tick_interval_ms: u64,
    /// This replica's name, as `boxoffice promote --node` names it. Replicas that share a
    /// log need distinct names.
    #[serde(default = "default_node")]
    pub(crate) node: String,
    /// Where `boxoffice engine` serves its operator endpoints (status, promote, metrics).
    #[serde(default = "default_operator_listen")]
    pub(crate) operator_listen: String,
    /// Automatic fail-over, off at 0: a standby promotes itself once requests it has
    /// applied have gone unanswered (the outcomes log not growing) for this long.
    #[serde(default)]
    pub(crate) auto_promote_after_ms: u64,
    /// The engine applies a commit of an embedded requests log while its fdatasync is in
    /// flight, releasing nothing it derived before the records are durable
    /// (`runtime::RuntimeOptions::apply_before_durable`). Optional in a file (on).
    #[serde(default = "default_apply_before_durable")]
    pub(crate) apply_before_durable: bool,
    /// How long a repeated Idempotency-Key returns the first answer (the contract's 24 h;
    /// the ingress's index keeps keys this long).
    #[serde(default = "default_idempotency_window_ms")]
    pub(crate) idempotency_window_ms: u64,
    /// How long the engine itself remembers a key: the retries that reach the log before
    /// the ingress has indexed the first answer.
    #[serde(default = "default_idempotency_engine_window_ms")]
    pub(crate) idempotency_engine_window_ms: u64,
}

fn default_apply_before_durable() -> bool {
    true
}

fn default_idempotency_window_ms() -> u64 {
    engine::EngineConfig::default().idempotency_window_ms
}

fn default_idempotency_engine_window_ms() -> u64 {
    engine::EngineConfig::default().idempotency_engine_window_ms
}

fn default_waiters_per_user_max() -> u32 {
    engine::EngineConfig::default().waiters_per_user_max
}

fn default_desk_tickets_per_user_max() -> u32 {
    engine::EngineConfig::default().desk_tickets_per_user_max
}

fn default_node() -> String {
    "engine-1".to_string()
}

fn default_operator_listen() -> String {
    "127.0.0.1:8081".to_string()
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogKind {
    Embedded,
    Kafka,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct LogSettings {
    pub(crate) kind: LogKind,
    /// The journal of each synced embedded log (`requestlog/src/journal.rs`): 0 for none
    /// (RocksDB syncs every commit), else from `requestlog::JOURNAL_SIZE_MIN_BYTES` to
    /// `requestlog::JOURNAL_SIZE_MAX_BYTES` ([`Settings::check_log`]).
    #[serde(default = "default_journal_size_bytes")]
    pub(crate) journal_size_bytes: u64,
    /// Under load, how long a synced embedded log's writer waits to gather a commit
    /// (`requestlog::EmbeddedOptions::group_commit_delay_us`): 0 to
    /// `requestlog::GROUP_COMMIT_DELAY_MAX_US`.
    #[serde(default = "default_group_commit_delay_us")]
    pub(crate) group_commit_delay_us: u64,
    /// The appends in the commit before that make it wait (at least 1).
    #[serde(default = "default_group_commit_siblings")]
    pub(crate) group_commit_siblings: usize,
    /// Each embedded log's record files start a new one past this size
    /// (`requestlog::EmbeddedOptions::segment_size_bytes`): from
    /// `requestlog::SEGMENT_SIZE_MIN_BYTES` to `requestlog::SEGMENT_SIZE_MAX_BYTES`.
    #[serde(default = "default_segment_size_bytes")]
    pub(crate) segment_size_bytes: u64,
}

fn default_journal_size_bytes() -> u64 {
    requestlog::EmbeddedOptions::default().journal_size_bytes
}

fn default_group_commit_delay_us() -> u64 {
    requestlog::EmbeddedOptions::default().group_commit_delay_us
}

fn default_group_commit_siblings() -> usize {
    requestlog::EmbeddedOptions::default().group_commit_siblings
}

fn default_segment_size_bytes() -> u64 {
    requestlog::EmbeddedOptions::default().segment_size_bytes
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct KafkaSettings {
    pub(crate) brokers: String,
    pub(crate) requests_topic: String,
    pub(crate) outcomes_topic: String,
    /// The engine's outcomes producer writes in transactions under `transactional_id`, and
    /// opening one fences every older producer with that id. Off (the default): an
    /// idempotent producer, no transactions; an old primary that has not read the
    /// `Promote` replacing it yet writes at most the outcomes up to that record, byte for
    /// byte the new primary's, which readers drop by request offset (ARCHITECTURE.md,
    /// "Fail-over"). Transactions cost the broker a coordinator round trip and a commit
    /// marker per append: about half the throughput (BENCHMARKS.md, session 21).
    #[serde(default)]
    pub(crate) outcomes_transactional: bool,
    pub(crate) transactional_id: String,
    /// Replicas of a topic Boxoffice creates, and the fewest an existing topic may have.
    #[serde(default = "default_one")]
    pub(crate) replication_factor: NonZeroU16,
    /// `min.insync.replicas` of a topic Boxoffice creates, and the least an existing topic
    /// may have (at most `replication_factor`).
    #[serde(default = "default_one")]
    pub(crate) min_insync_replicas: NonZeroU16,
    /// The shortest `retention.ms` an existing topic may have; -1: it must keep records for
    /// ever (replay from offset 0 needs the whole log).
    #[serde(default = "default_unlimited")]
    pub(crate) retention_ms_min: i64,
    /// The smallest `retention.bytes` an existing topic may have; -1: no size limit.
    #[serde(default = "default_unlimited")]
    pub(crate) retention_bytes_min: i64,
    /// `retention.ms` of the requests and outcomes topics Boxoffice creates (issue 23,
    /// PRIVACY.md); -1: for ever. Optional in a file (30 days).
    #[serde(default = "default_log_retention_ms")]
    pub(crate) retention_ms: i64,
    /// `retention.ms` of the control topic Boxoffice creates; -1 (the default): for ever,
    /// as every ingress rebuilds its tenant state from the control log's offset 0.
    #[serde(default = "default_unlimited")]
    pub(crate) control_retention_ms: i64,
    /// librdkafka properties for every client (producers, consumers, the admin client),
    /// passed verbatim and applied last: `security.protocol`, `sasl.*`, `ssl.*`,
    /// `client.id`... Values may be written as strings, numbers or booleans.
    #[serde(default, deserialize_with = "client_properties")]
    pub(crate) client: BTreeMap<String, String>,
}

fn default_one() -> NonZeroU16 {
    NonZeroU16::MIN
}

fn default_unlimited() -> i64 {
    -1
}

/// 30 days: PRIVACY.md says why.
pub(crate) const LOG_RETENTION_MS_DEFAULT: i64 = 30 * 24 * 3_600_000;

fn default_log_retention_ms() -> i64 {
    LOG_RETENTION_MS_DEFAULT
}

/// A table of librdkafka properties: scalar values, each as librdkafka reads it (a string).
fn client_properties<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let table = BTreeMap::<String, toml::Value>::deserialize(deserializer)?;
    table
        .into_iter()
        .map(|(name, value)| {
            let value = match value {
                toml::Value::String(text) => text,
                toml::Value::Integer(number) => number.to_string(),
                toml::Value::Float(number) => number.to_string(),
                toml::Value::Boolean(flag) => flag.to_string(),
                other => {
                    return Err(serde::de::Error::custom(format!(
                    "kafka.client.{name} is a {}; a client property is a string, number or boolean",
                    other.type_str()
                )))
                }
            };
            Ok((name, value))
        })
        .collect()
}

impl KafkaSettings {
    /// The control log's topic (`engine::control`): one for the deployment, named after
    /// the configured requests topic.
    pub(crate) fn control_topic(&self) -> String {
        format!("{}.control", self.requests_topic)
    }

    /// The options of one of the two topics: its shape and checks from `[kafka]`, and the
    /// client properties of `[kafka.client]`.
    pub(crate) fn options(&self, topic: &str) -> requestlog::KafkaOptions {
        let minimum = |value: i64| u64::try_from(value).ok();
        let retention_ms = if topic == self.control_topic() {
            self.control_retention_ms
        } else {
            self.retention_ms
        };
        requestlog::KafkaOptions {
            replication_factor: i32::from(self.replication_factor.get()),
            min_insync_replicas: i32::from(self.min_insync_replicas.get()),
            retention_ms_min: minimum(self.retention_ms_min),
            retention_ms: minimum(retention_ms),
            retention_bytes_min: minimum(self.retention_bytes_min),
            client_properties: self
                .client
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            ..requestlog::KafkaOptions::new(&self.brokers, topic)
        }
    }
}

/// How `BOXOFFICE_KAFKA_CLIENT_<PROPERTY>` variables start, lower-cased.
const CLIENT_PROPERTY_PREFIX: &str = "kafka_client_";

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct SnapshotSettings {
    pub(crate) every_records: u64,
    pub(crate) every_ms: u64,
    pub(crate) keep: usize,
    /// The ingress's read-model snapshots: every this many outcomes...
    #[serde(default = "default_ingress_every_outcomes")]
    pub(crate) ingress_every_outcomes: u64,
    /// ...or this long after the last one...
    #[serde(default = "default_ingress_every_ms")]
    pub(crate) ingress_every_ms: u64,
    /// ...keeping the newest this many.
    #[serde(default = "default_ingress_keep")]
    pub(crate) ingress_keep: usize,
}

fn default_ingress_every_outcomes() -> u64 {
    1_000_000
}

fn default_ingress_every_ms() -> u64 {
    60_000
}

fn default_ingress_keep() -> usize {
    2
}

/// The effects worker: webhook deliveries (`effects` crate).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub(crate) struct EffectsSettings {
    /// `serve` runs the worker (in Kafka mode it is `boxoffice effects`).
    pub(crate) enabled: bool,
    /// Webhook endpoints may be private, loopback or link-local addresses (the SSRF
    /// guard off); development mode always allows them.
    pub(crate) private_addresses_allowed: bool,
    /// One delivery attempt's limit, connecting included.
    pub(crate) attempt_timeout_ms: u64,
    /// The first retry's delay; each further one doubles, up to `retry_max_ms`
    /// (jittered: between half and all of it).
    pub(crate) first_retry_ms: u64,
    pub(crate) retry_max_ms: u64,
    /// An endpoint whose oldest waiting message has failed for this long is disabled.
    pub(crate) disable_after_ms: u64,
    /// Messages one endpoint may have waiting on disk; newer ones are dropped (counted).
    pub(crate) backlog_per_endpoint_max: u64,
    /// Deliveries in flight at once, every endpoint together (one per endpoint).
    pub(crate) deliveries_in_flight_max: usize,
    /// `boxoffice effects`'s listener: health, metrics, the delivery log and re-sends
    /// (a Kafka-mode ingress has no worker in its process to answer them).
    pub(crate) listen: String,
}

impl Default for EffectsSettings {
    fn default() -> Self {
        EffectsSettings {
            enabled: true,
            private_addresses_allowed: false,
            attempt_timeout_ms: 10_000,
            first_retry_ms: 5_000,
            retry_max_ms: 3_600_000,
            disable_after_ms: 86_400_000,
            backlog_per_endpoint_max: 100_000,
            deliveries_in_flight_max: 64,
            listen: "127.0.0.1:8082".into(),
        }
    }
}

/// Payments through a gateway (`payments` crate): the ingress creates a hold's payment and
/// hears the gateway's webhook; the effects worker refunds payments due back.
#[derive(Clone, Deserialize, Serialize)]
#[serde(default)]
pub(crate) struct PaymentsSettings {
    /// `none` (no payment endpoints; a confirm's `payment_ref` is taken as given),
    /// `stripe`, or `test` (development only: an in-memory gateway where every payment
    /// succeeds at once, `payments::instant`; in `serve`, whose ingress and worker share it).
    pub(crate) gateway: String,
    /// ISO 4217: the currency of events created without one (an event may name its own).
    pub(crate) currency: String,
    /// Stripe's API (`https://api.stripe.com`; stripe-mock or a fake in tests).
    pub(crate) stripe_api_base: String,
    /// Stripe's secret API key (`sk_…`): from the environment
    /// (`BOXOFFICE_PAYMENTS_STRIPE_SECRET_KEY`), never logged.
    pub(crate) stripe_secret_key: String,
    /// The webhook endpoint's signing secret (`whsec_…`,
    /// `BOXOFFICE_PAYMENTS_WEBHOOK_SECRET`).
    pub(crate) webhook_secret: String,
    /// How far a webhook's signed timestamp may be from now, either side.
    pub(crate) webhook_tolerance_s: u64,
    /// One gateway call's limit, connecting included.
    pub(crate) request_timeout_ms: u64,
}

impl Default for PaymentsSettings {
    fn default() -> Self {
        PaymentsSettings {
            gateway: "none".into(),
            currency: "EUR".into(),
            stripe_api_base: payments::stripe::STRIPE_API_BASE.into(),
            stripe_secret_key: String::new(),
            webhook_secret: String::new(),
            webhook_tolerance_s: payments::signature::TOLERANCE_S_DEFAULT,
            request_timeout_ms: 10_000,
        }
    }
}

impl std::fmt::Debug for PaymentsSettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PaymentsSettings")
            .field("gateway", &self.gateway)
            .field("currency", &self.currency)
            .field("stripe_api_base", &self.stripe_api_base)
            .field("stripe_secret_key", &"***")
            .field("webhook_secret", &"***")
            .field("webhook_tolerance_s", &self.webhook_tolerance_s)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .finish()
    }
}

impl PaymentsSettings {
    /// The configured gateway (`None` for `none`), or what is wrong with the settings;
    /// `test` only in development mode.
    pub(crate) fn gateway(
        &self,
        development: bool,
    ) -> Result<Option<std::sync::Arc<dyn payments::PaymentGateway>>, String> {
        if !engine::terms::currency_valid(&self.currency) {
            return Err(format!(
                "payments.currency = {:?}: an ISO 4217 currency code, upper case (EUR)",
                self.currency
            ));
        }
        match self.gateway.as_str() {
            "none" => Ok(None),
            "test" if development => Ok(Some(std::sync::Arc::new(
                payments::instant::InstantGateway::default(),
            ))),
            "test" => Err(
                "payments.gateway = \"test\" takes no money: development mode (--dev) only".into(),
            ),
            "stripe" => {
                if self.stripe_secret_key.is_empty() || self.webhook_secret.is_empty() {
                    return Err("payments.gateway = \"stripe\" needs payments.stripe_secret_key and payments.webhook_secret (BOXOFFICE_PAYMENTS_STRIPE_SECRET_KEY, BOXOFFICE_PAYMENTS_WEBHOOK_SECRET)".into());
                }
                let client = payments::stripe::StripeClient::new(payments::stripe::StripeConfig {
                    api_base: self.stripe_api_base.clone(),
                    secret_key: payments::SecretKey::new(self.stripe_secret_key.clone()),
                    timeout: std::time::Duration::from_millis(self.request_timeout_ms),
                })
                .map_err(|error| error.to_string())?;
                Ok(Some(std::sync::Arc::new(client)))
            }
            other => Err(format!(
                "payments.gateway = {other:?}: \"none\", \"stripe\" or \"test\""
            )),
        }
    }

    /// What the ingress needs to take payments through `gateway`.
    pub(crate) fn ingress(
        &self,
        gateway: std::sync::Arc<dyn payments::PaymentGateway>,
    ) -> ingress::PaymentsConfig {
        ingress::PaymentsConfig {
            gateway,
            webhook_secret: self.webhook_secret.clone(),
            webhook_tolerance_s: self.webhook_tolerance_s,
        }
    }
}

/// The development defaults that must never protect real data.
pub(crate) const DEFAULT_SECRETS: [&str; 5] = [
    "demo-operator-key",
    "demo-user-secret",
    "demo-admin-key",
    "demo-ticket-secret",
    ingress::DEVELOPMENT_PSEUDONYM_KEY,
];

/// The defaults, compiled in: the binary runs from any directory with no file at all.
pub(crate) const DEFAULTS: &str = include_str!("../../config/default.toml");
const DEFAULTS_NAME: &str = "the built-in defaults (config/default.toml)";

impl Settings {
    /// The built-in defaults, `file` over them when given, the environment over both.
    pub(crate) fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        let text = file
            .map(|path| {
                std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            })
            .transpose()?;
        let file = file.zip(text.as_deref());
        Self::parse_layers(file, std::env::vars())
    }

    /// The configuration file alone over the defaults (tests pass the file's text).
    #[cfg(test)]
    pub(crate) fn parse(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
        path: &Path,
    ) -> Result<Settings, SettingsError> {
        Self::parse_layers(Some((path, text)), env)
    }

    fn parse_layers(
        file: Option<(&Path, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        let name = file.map_or_else(
            || PathBuf::from(DEFAULTS_NAME),
            |(path, _)| path.to_path_buf(),
        );
        let invalid = |message: String| SettingsError::Invalid {
            path: name.clone(),
            message,
        };
        let mut root: toml::Table =
            DEFAULTS
                .parse()
                .map_err(|error: toml::de::Error| SettingsError::Invalid {
                    path: PathBuf::from(DEFAULTS_NAME),
                    message: error.to_string(),
                })?;
        if let Some((_, text)) = file {
            let layer: toml::Table = text
                .parse()
                .map_err(|error: toml::de::Error| invalid(error.to_string()))?;
            merge(&mut root, layer);
        }
        let mut overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(name, _)| name.starts_with("BOXOFFICE_"))
            .collect();
        overrides.sort();
        let overridden: Vec<String> = overrides.iter().map(|(name, _)| name.clone()).collect();
        for (name, value) in overrides {
            let key = name["BOXOFFICE_".len()..].to_ascii_lowercase();
            if let Some(property) = key.strip_prefix(CLIENT_PROPERTY_PREFIX) {
                set_client_property(&mut root, &property.replace('_', "."), value);
                continue;
            }
            let key = if key == "listen" {
                "http_listen".to_string()
            } else {
                key
            };
            apply_override(&mut root, &key, &value);
        }
        // A value from the environment is named by its variable too: the file (or the
        // defaults) named in the error may not be where the value came from.
        toml::Value::Table(root)
            .try_into()
            .map_err(|error: toml::de::Error| {
                let message = error.to_string();
                if overridden.is_empty() {
                    return invalid(message);
                }
                invalid(format!(
                    "{} (the environment sets {})",
                    message.trim_end(),
                    overridden.join(", ")
                ))
            })
    }

    /// Outside development mode no development default secret may protect anything.
    pub(crate) fn check_secrets(&self) -> Result<(), SettingsError> {
        let settings = self.default_secrets_in_use();
        if self.development || settings.is_empty() {
            return Ok(());
        }
        Err(SettingsError::DemoSecrets { settings })
    }

    /// The effective configuration as TOML, every secret masked (`boxoffice config`).
    pub(crate) fn effective_toml(&self) -> String {
        let mut value = toml::Value::try_from(self).expect("settings serialize");
        mask_secrets(&mut value);
        toml::to_string_pretty(&value).expect("settings serialize")
    }

    /// Which development default secrets are in use.
    pub(crate) fn default_secrets_in_use(&self) -> Vec<&'static str> {
        let mut used = Vec::new();
        if self.auth.operator_key == DEFAULT_SECRETS[0] {
            used.push("auth.operator_key");
        }
        if self.auth.user_token_secret == DEFAULT_SECRETS[1] {
            used.push("auth.user_token_secret");
        }
        if self
            .auth
            .tenants
            .iter()
            .any(|tenant| tenant.admin_key == DEFAULT_SECRETS[2])
        {
            used.push("auth.tenants.admin_key");
        }
        if self.engine.ticket_secret == DEFAULT_SECRETS[3] {
            used.push("engine.ticket_secret");
        }
        if self.privacy.pseudonym_key == DEFAULT_SECRETS[4] {
            used.push("privacy.pseudonym_key");
        }
        used
    }

    /// These settings for shard `shard` of `shards`: its topics and transactional id
    /// (`shard_name`), its data directory (`shard_dir`) and its engine's place. Shard 0's
    /// are the settings as they are.
    pub(crate) fn for_shard(&self, shard: u32) -> Result<Settings, String> {
        if shard >= self.shards {
            return Err(format!(
                "--shard {shard} does not exist: this deployment has shards = {} (shards 0 to {})",
                self.shards,
                self.shards - 1
            ));
        }
        let mut settings = self.clone();
        settings.shard = shard;
        settings.data_dir = shard_dir(&self.data_dir, shard);
        let kafka = &mut settings.kafka;
        kafka.requests_topic = shard_name(&self.kafka.requests_topic, shard);
        kafka.outcomes_topic = shard_name(&self.kafka.outcomes_topic, shard);
        kafka.transactional_id = shard_name(&self.kafka.transactional_id, shard);
        Ok(settings)
    }

    /// `log.journal_size_bytes`: 0, or within the journal's bounds;
    /// `log.group_commit_delay_us` at most its bound, `log.group_commit_siblings` at least 1.
    pub(crate) fn check_log(&self) -> Result<(), String> {
        let size = self.log.journal_size_bytes;
        if !requestlog::journal_size_allowed(size) {
            return Err(format!(
                "log.journal_size_bytes is {size}; it must be 0 (no journal) or from {} to {}",
                requestlog::JOURNAL_SIZE_MIN_BYTES,
                requestlog::JOURNAL_SIZE_MAX_BYTES
            ));
        }
        let delay_us = self.log.group_commit_delay_us;
        if delay_us > requestlog::GROUP_COMMIT_DELAY_MAX_US {
            return Err(format!(
                "log.group_commit_delay_us is {delay_us}; it must be from 0 (commit at once) to {}",
                requestlog::GROUP_COMMIT_DELAY_MAX_US
            ));
        }
        if self.log.group_commit_siblings == 0 {
            return Err("log.group_commit_siblings is 0; it must be at least 1".to_string());
        }
        let segment = self.log.segment_size_bytes;
        if !(requestlog::SEGMENT_SIZE_MIN_BYTES..=requestlog::SEGMENT_SIZE_MAX_BYTES)
            .contains(&segment)
        {
            return Err(format!(
                "log.segment_size_bytes is {segment}; it must be from {} to {}",
                requestlog::SEGMENT_SIZE_MIN_BYTES,
                requestlog::SEGMENT_SIZE_MAX_BYTES
            ));
        }
        Ok(())
    }

    /// Options of an embedded log that is not synced on its writes (the outcomes log) as
    /// configured.
    pub(crate) fn unsynced_log_options(&self) -> requestlog::EmbeddedOptions {
        requestlog::EmbeddedOptions {
            sync_appends: false,
            segment_size_bytes: self.log.segment_size_bytes,
            ..requestlog::EmbeddedOptions::default()
        }
    }

    /// Options of a synced embedded log (requests, control) as configured.
    pub(crate) fn synced_log_options(&self) -> requestlog::EmbeddedOptions {
        requestlog::EmbeddedOptions {
            journal_size_bytes: self.log.journal_size_bytes,
            group_commit_delay_us: self.log.group_commit_delay_us,
            group_commit_siblings: self.log.group_commit_siblings,
            segment_size_bytes: self.log.segment_size_bytes,
            ..requestlog::EmbeddedOptions::default()
        }
    }

    /// Checks what no single key can: `shards` from 1 to `engine::SHARDS_MAX`.
    pub(crate) fn check_shards(&self) -> Result<(), String> {
        if (1..=engine::SHARDS_MAX).contains(&self.shards) {
            Ok(())
        } else {
            Err(format!(
                "shards is {}; it must be from 1 to {}",
                self.shards,
                engine::SHARDS_MAX
            ))
        }
    }

    pub(crate) fn engine_config(&self) -> engine::EngineConfig {
        engine::EngineConfig {
            shard: engine::ShardPlace {
                index: self.shard,
                count: self.shards,
            },
            ticket_secret: self.engine.ticket_secret.as_bytes().to_vec(),
            confirm_grace_ms: self.engine.confirm_grace_ms,
            waitlist_length_max: self.engine.waitlist_length_max,
            waitlist_wait_max_ms: self.engine.waitlist_wait_max_ms,
            waiters_per_user_max: self.engine.waiters_per_user_max,
            desk_tickets_per_user_max: self.engine.desk_tickets_per_user_max,
            seats_per_order_cap: self.engine.seats_per_order_cap,
            idempotency_window_ms: self.engine.idempotency_window_ms,
            idempotency_engine_window_ms: self.engine.idempotency_engine_window_ms,
            ..engine::EngineConfig::default()
        }
    }
}

/// `[kafka.client] property = value` (always a string: librdkafka reads strings).
fn set_client_property(root: &mut toml::Table, property: &str, value: String) {
    let kafka = root
        .entry("kafka")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(kafka) = kafka {
        let client = kafka
            .entry("client")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(client) = client {
            client.insert(property.to_string(), toml::Value::String(value));
        }
    }
}

/// Whether a key holds a secret: `*_key`, `*secret*`, `*password*`, and the Kafka client's
/// private key (`ssl.key.pem`) and OAuth configuration (`sasl.oauthbearer.config`).
fn is_secret(key: &str) -> bool {
    key.ends_with("_key")
        || key.contains("secret")
        || key.contains("password")
        || key == "ssl.key.pem"
        || key == "sasl.oauthbearer.config"
}

/// Keys that hold a secret ([`is_secret`]) show as `***`.
fn mask_secrets(value: &mut toml::Value) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table.iter_mut() {
                let secret = is_secret(key);
                if secret && value.is_str() {
                    *value = toml::Value::String("***".into());
                } else {
                    mask_secrets(value);
                }
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

/// `layer` over `base`: tables merge key by key, anything else (arrays included) is
/// replaced whole.
fn merge(base: &mut toml::Table, layer: toml::Table) {
    for (key, value) in layer {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(layer)) => merge(base, layer),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// `section_key` → `[section] key` when the section exists (longest section name
/// first, so `rate_limit_enabled` finds `rate_limit`); otherwise a top-level key.
fn apply_override(root: &mut toml::Table, key: &str, value: &str) {
    let mut sections: Vec<String> = root
        .iter()
        .filter(|(_, value)| value.is_table())
        .map(|(name, _)| name.clone())
        .collect();
    sections.sort_by_key(|name| std::cmp::Reverse(name.len()));
    let parsed = parse_value(value);
    for section in sections {
        if let Some(field) = key.strip_prefix(&format!("{section}_")) {
            if let Some(toml::Value::Table(table)) = root.get_mut(&section) {
                table.insert(field.to_string(), parsed);
            }
            return;
        }
    }
    if root.contains_key(key) {
        root.insert(key.to_string(), parsed);
    }
}

fn parse_value(value: &str) -> toml::Value {
    if let Ok(flag) = value.parse::<bool>() {
        return toml::Value::Boolean(flag);
    }
    if let Ok(number) = value.parse::<i64>() {
        return toml::Value::Integer(number);
    }
    toml::Value::String(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = DEFAULTS;

    #[test]
    fn the_defaults_are_built_in_and_a_file_overrides_only_what_it_names() {
        let built_in = Settings::parse_layers(None, []).unwrap();
        assert_eq!(built_in.http.listen, "127.0.0.1:8080");
        assert_eq!(built_in.engine.confirm_grace_ms, 5_000);
        let file = "[engine]\nconfirm_grace_ms = 7000\n[[auth.tenants]]\nid = \"acme\"\nadmin_key = \"k\"\n";
        let settings = Settings::parse(file, [], Path::new("site.toml")).unwrap();
        assert_eq!(settings.engine.confirm_grace_ms, 7_000);
        assert_eq!(
            settings.engine.waitlist_length_max,
            built_in.engine.waitlist_length_max
        );
        assert_eq!(settings.http.listen, "127.0.0.1:8080");
        // Arrays are replaced whole: the file's tenants, not the demo tenant plus them.
        assert_eq!(settings.auth.tenants.len(), 1);
        assert_eq!(settings.auth.tenants[0].id, "acme");
        let error = Settings::parse("[engine\n", [], Path::new("broken.toml")).unwrap_err();
        assert!(error.to_string().contains("broken.toml"), "{error}");
    }

    #[test]
    fn the_effective_configuration_masks_every_secret() {
        let settings = Settings::parse_layers(None, []).unwrap();
        let shown = settings.effective_toml();
        for secret in DEFAULT_SECRETS {
            assert!(!shown.contains(secret), "{secret} shown in:\n{shown}");
        }
        assert!(shown.contains("confirm_grace_ms = 5000"), "{shown}");
        assert!(shown.contains("operator_key = \"***\""), "{shown}");
    }

    #[test]
    fn defaults_parse_and_environment_overrides_them() {
        let path = Path::new("config/default.toml");
        let settings = Settings::parse(DEFAULT, [], path).unwrap();
        assert_eq!(settings.http.listen, "127.0.0.1:8080");
        assert_eq!(
            settings.default_secrets_in_use().len(),
            DEFAULT_SECRETS.len()
        );
        let env = [
            ("BOXOFFICE_LISTEN".to_string(), "127.0.0.1:9999".to_string()),
            ("BOXOFFICE_DATA_DIR".to_string(), "/tmp/x".to_string()),
            (
                "BOXOFFICE_RATE_LIMIT_ENABLED".to_string(),
                "false".to_string(),
            ),
            ("BOXOFFICE_LOG_KIND".to_string(), "kafka".to_string()),
        ];
        let settings = Settings::parse(DEFAULT, env, path).unwrap();
        assert_eq!(settings.http.listen, "127.0.0.1:9999");
        assert_eq!(settings.data_dir, PathBuf::from("/tmp/x"));
        assert!(!settings.rate_limit.enabled);
        assert_eq!(settings.log.kind, LogKind::Kafka);
        let defaults = engine::EngineConfig::default();
        assert_eq!(
            (
                settings.engine_config().idempotency_window_ms,
                settings.engine_config().idempotency_engine_window_ms
            ),
            (
                defaults.idempotency_window_ms,
                defaults.idempotency_engine_window_ms
            ),
            "the file's idempotency windows are the engine's defaults"
        );
    }

    #[test]
    fn payments_come_from_the_environment_and_their_secrets_never_show() {
        let path = Path::new("config/default.toml");
        let settings = Settings::parse(DEFAULT, [], path).unwrap();
        assert_eq!(
            (
                settings.payments.gateway.as_str(),
                settings.payments.currency.as_str()
            ),
            ("none", "EUR")
        );
        assert!(settings.payments.gateway(false).unwrap().is_none());
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect()
        };
        let stripe = [
            ("BOXOFFICE_PAYMENTS_GATEWAY", "stripe"),
            ("BOXOFFICE_PAYMENTS_STRIPE_SECRET_KEY", "sk_test_hidden"),
            ("BOXOFFICE_PAYMENTS_WEBHOOK_SECRET", "whsec_hidden"),
            ("BOXOFFICE_PAYMENTS_CURRENCY", "CHF"),
        ];
        let settings = Settings::parse(DEFAULT, env(&stripe), path).unwrap();
        assert!(settings.payments.gateway(false).unwrap().is_some());
        assert_eq!(settings.payments.currency, "CHF");
        let shown = format!("{} {:?}", settings.effective_toml(), settings);
        assert!(!shown.contains("hidden"), "{shown}");
        for (pairs, error) in [
            (&stripe[..1], "needs payments.stripe_secret_key"),
            (
                &[("BOXOFFICE_PAYMENTS_GATEWAY", "paypal")][..],
                "\"none\", \"stripe\" or \"test\"",
            ),
            (
                &[("BOXOFFICE_PAYMENTS_GATEWAY", "test")][..],
                "development mode (--dev) only",
            ),
            (&[("BOXOFFICE_PAYMENTS_CURRENCY", "euro")][..], "ISO 4217"),
        ] {
            let settings = Settings::parse(DEFAULT, env(pairs), path).unwrap();
            let refused = settings.payments.gateway(false).err().unwrap();
            assert!(refused.contains(error), "{refused}");
        }
        let test = Settings::parse(
            DEFAULT,
            env(&[("BOXOFFICE_PAYMENTS_GATEWAY", "test")]),
            path,
        )
        .unwrap();
        assert!(test.payments.gateway(true).unwrap().is_some());
    }

    #[test]
    fn demo_secrets_are_refused_outside_development_mode() {
        let path = Path::new("config/default.toml");
        let mut settings = Settings::parse(DEFAULT, [], path).unwrap();
        let error = settings.check_secrets().unwrap_err().to_string();
        for key in [
            "auth.operator_key",
            "auth.user_token_secret",
            "auth.tenants.admin_key",
            "engine.ticket_secret",
            "privacy.pseudonym_key",
        ] {
            assert!(error.contains(key), "{error}");
        }
        settings.development = true;
        assert!(settings.check_secrets().is_ok());
        // One demo secret left is enough to refuse, and the error names only it.
        let mut settings = Settings::parse(DEFAULT, [], path).unwrap();
        settings.auth.operator_key = "a-real-operator-key".into();
        settings.auth.user_token_secret = "a-real-user-secret".into();
        settings.auth.tenants[0].admin_key = "a-real-admin-key".into();
        settings.privacy.pseudonym_key = "a-real-pseudonym-key".into();
        let error = settings.check_secrets().unwrap_err().to_string();
        assert!(
            error.contains("engine.ticket_secret") && !error.contains("auth."),
            "{error}"
        );
        settings.engine.ticket_secret = "a-real-ticket-secret".into();
        assert!(settings.check_secrets().is_ok());
    }

    #[test]
    fn the_edge_settings_load_from_the_file_and_the_environment() {
        let path = Path::new("site.toml");
        let ingress_config = |file: &str, env: &[(&str, &str)]| {
            let env = env
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()));
            crate::cmd_ingress::ingress_config(&Settings::parse(file, env, path).unwrap())
        };
        let defaults = ingress::IngressConfig::default();
        let config = ingress_config("", &[]).unwrap();
        assert!(
            config.trusted_proxies.is_empty(),
            "no proxy is trusted by default"
        );
        assert_eq!(
            (
                config.request_timeout,
                config.long_polls_per_user_max,
                config.long_polls_per_address_max,
                config.streams_per_address_max,
                config.notifications_per_user_max,
                config.notification_users_max
            ),
            (
                defaults.request_timeout,
                defaults.long_polls_per_user_max,
                defaults.long_polls_per_address_max,
                defaults.streams_per_address_max,
                defaults.notifications_per_user_max,
                defaults.notification_users_max
            ),
            "config/default.toml says what the ingress defaults to"
        );
        let file = "[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]\nrequest_timeout_ms = 9000\n";
        let config = ingress_config(file, &[]).unwrap();
        let proxies: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(|proxy| proxy.to_string())
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "127.0.0.1/32"]);
        assert_eq!(config.request_timeout, std::time::Duration::from_secs(9));
        // The environment says a list as a comma-separated string.
        let config = ingress_config(
            "",
            &[
                ("BOXOFFICE_HTTP_TRUSTED_PROXIES", "10.0.0.0/8, fd00::/8"),
                ("BOXOFFICE_HTTP_STREAMS_PER_ADDRESS_MAX", "3"),
                ("BOXOFFICE_HTTP_NOTIFICATIONS_PER_USER_MAX", "7"),
            ],
        )
        .unwrap();
        assert_eq!(config.trusted_proxies.len(), 2);
        assert_eq!(config.streams_per_address_max, 3);
        assert_eq!(config.notifications_per_user_max, 7);
        let error =
            ingress_config("[http]\ntrusted_proxies = [\"proxy.local\"]\n", &[]).unwrap_err();
        assert!(
            error.contains("http.trusted_proxies") && error.contains("proxy.local"),
            "{error}"
        );
    }

    #[test]
    fn the_per_user_caps_load_from_the_file_and_the_environment() {
        let path = Path::new("config/default.toml");
        let config = Settings::parse(DEFAULT, [], path).unwrap().engine_config();
        assert_eq!(
            (
                config.waiters_per_user_max,
                config.desk_tickets_per_user_max
            ),
            (4, 4)
        );
        let env = [
            (
                "BOXOFFICE_ENGINE_WAITERS_PER_USER_MAX".to_string(),
                "2".to_string(),
            ),
            (
                "BOXOFFICE_ENGINE_DESK_TICKETS_PER_USER_MAX".to_string(),
                "7".to_string(),
            ),
        ];
        let config = Settings::parse(DEFAULT, env, path).unwrap().engine_config();
        assert_eq!(
            (
                config.waiters_per_user_max,
                config.desk_tickets_per_user_max
            ),
            (2, 7)
        );
        // A file written before the caps existed still loads, with the defaults.
        let older: String = DEFAULT
            .lines()
            .filter(|line| !line.contains("_per_user_max"))
            .map(|line| format!("{line}\n"))
            .collect();
        let config = Settings::parse(&older, [], path).unwrap().engine_config();
        assert_eq!(
            (
                config.waiters_per_user_max,
                config.desk_tickets_per_user_max
            ),
            (4, 4)
        );
    }

    #[test]
    fn kafka_client_properties_come_from_the_file_and_the_environment() {
        let path = Path::new("site.toml");
        let file = "[kafka.client]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"from-file\"\n\"socket.keepalive.enable\" = true\n\"reconnect.backoff.ms\" = 250\n";
        let env = [
            (
                "BOXOFFICE_KAFKA_CLIENT_SASL_USERNAME".to_string(),
                "boxoffice".to_string(),
            ),
            (
                "BOXOFFICE_KAFKA_CLIENT_SASL_PASSWORD".to_string(),
                "Hunter2-Secret".to_string(),
            ),
            (
                "BOXOFFICE_KAFKA_CLIENT_SSL_KEY_PEM".to_string(),
                "-----BEGIN PRIVATE KEY-----".to_string(),
            ),
        ];
        let settings = Settings::parse(file, env, path).unwrap();
        let options = settings.kafka.options("boxoffice.requests");
        assert_eq!(options.topic, "boxoffice.requests");
        let properties: Vec<(&str, &str)> = options
            .client_properties
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(
            properties,
            [
                ("reconnect.backoff.ms", "250"),
                ("sasl.mechanism", "SCRAM-SHA-512"),
                ("sasl.password", "Hunter2-Secret"),
                ("sasl.username", "boxoffice"),
                ("security.protocol", "SASL_SSL"),
                ("socket.keepalive.enable", "true"),
                ("ssl.key.pem", "-----BEGIN PRIVATE KEY-----"),
            ]
        );
        let shown = settings.effective_toml();
        assert!(!shown.contains("Hunter2"), "{shown}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(shown.contains("\"sasl.password\" = \"***\""), "{shown}");
        assert!(
            shown.contains("\"sasl.username\" = \"boxoffice\""),
            "{shown}"
        );
        // No properties by default.
        let defaults = Settings::parse(DEFAULT, [], path).unwrap();
        assert!(defaults.kafka.options("t").client_properties.is_empty());
    }

    #[test]
    fn a_client_property_reaches_the_kafka_client() {
        // librdkafka refuses an unknown security protocol when the client is made, before
        // any broker is contacted: the error names the property, so it was passed on.
        let env = [(
            "BOXOFFICE_KAFKA_CLIENT_SECURITY_PROTOCOL".to_string(),
            "carrier_pigeon".to_string(),
        )];
        let settings = Settings::parse(DEFAULT, env, Path::new("x.toml")).unwrap();
        let error = requestlog::KafkaLog::open(settings.kafka.options("boxoffice.requests"))
            .err()
            .expect("refused");
        let error = error.to_string();
        assert!(
            error.contains("security.protocol") && error.contains("carrier_pigeon"),
            "{error}"
        );
    }

    /// `log.journal_size_bytes`: 8 MiB by default, set by file or environment, 0 turns the
    /// journal off, and a size outside its bounds is refused naming the key.
    #[test]
    fn the_journal_size_is_configured_and_bounded() {
        let path = Path::new("site.toml");
        let defaults = Settings::parse(DEFAULT, [], path).unwrap();
        defaults.check_log().unwrap();
        assert_eq!(defaults.synced_log_options().journal_size_bytes, 8 << 20);
        let env = |bytes: &str| {
            [(
                "BOXOFFICE_LOG_JOURNAL_SIZE_BYTES".to_string(),
                bytes.to_string(),
            )]
        };
        let off = Settings::parse(DEFAULT, env("0"), path).unwrap();
        off.check_log().unwrap();
        assert_eq!(off.synced_log_options().journal_size_bytes, 0);
        let large = Settings::parse(
            "[log]\nkind = \"embedded\"\njournal_size_bytes = 67108864",
            [],
            path,
        )
        .unwrap();
        large.check_log().unwrap();
        assert_eq!(large.synced_log_options().journal_size_bytes, 64 << 20);
        for refused in ["1000", "2147483648"] {
            let error = Settings::parse(DEFAULT, env(refused), path)
                .unwrap()
                .check_log()
                .unwrap_err();
            assert!(
                error.starts_with(&format!("log.journal_size_bytes is {refused}")),
                "{error}"
            );
        }
    }

    /// `log.group_commit_delay_us` and `log.group_commit_siblings`: the library's defaults
    /// (400 us under a load of 8 appends), set by file or environment, 0 turns the delay
    /// off; a delay past its bound, or no siblings, is refused naming the key.
    #[test]
    fn the_group_commit_delay_is_configured_and_bounded() {
        let path = Path::new("site.toml");
        let defaults = Settings::parse(DEFAULT, [], path).unwrap();
        defaults.check_log().unwrap();
        let options = defaults.synced_log_options();
        assert_eq!(
            (options.group_commit_delay_us, options.group_commit_siblings),
            (400, 8)
        );
        let env = |key: &str, value: &str| [(key.to_string(), value.to_string())];
        let off = Settings::parse(
            DEFAULT,
            env("BOXOFFICE_LOG_GROUP_COMMIT_DELAY_US", "0"),
            path,
        )
        .unwrap();
        off.check_log().unwrap();
        assert_eq!(off.synced_log_options().group_commit_delay_us, 0);
        let set = Settings::parse(
            "[log]\nkind = \"embedded\"\ngroup_commit_delay_us = 1000\ngroup_commit_siblings = 3",
            [],
            path,
        )
        .unwrap();
        set.check_log().unwrap();
        let options = set.synced_log_options();
        assert_eq!(
            (options.group_commit_delay_us, options.group_commit_siblings),
            (1000, 3)
        );
        let error = Settings::parse(
            DEFAULT,
            env("BOXOFFICE_LOG_GROUP_COMMIT_DELAY_US", "100001"),
            path,
        )
        .unwrap()
        .check_log()
        .unwrap_err();
        assert!(
            error.starts_with("log.group_commit_delay_us is 100001"),
            "{error}"
        );
        let error = Settings::parse(
            DEFAULT,
            env("BOXOFFICE_LOG_GROUP_COMMIT_SIBLINGS", "0"),
            path,
        )
        .unwrap()
        .check_log()
        .unwrap_err();
        assert!(
            error.starts_with("log.group_commit_siblings is 0"),
            "{error}"
        );
    }

    /// `log.segment_size_bytes`: the library's 64 MiB by default, for the synced logs and
    /// the outcomes log alike; set by file or environment; outside its bounds refused,
    /// naming the key.
    #[test]
    fn the_record_files_size_is_configured_and_bounded() {
        let path = Path::new("site.toml");
        let defaults = Settings::parse(DEFAULT, [], path).unwrap();
        defaults.check_log().unwrap();
        assert_eq!(defaults.synced_log_options().segment_size_bytes, 64 << 20);
        let outcomes = defaults.unsynced_log_options();
        assert_eq!(
            (outcomes.segment_size_bytes, outcomes.sync_appends),
            (64 << 20, false)
        );
        let env = |value: &str| {
            [(
                "BOXOFFICE_LOG_SEGMENT_SIZE_BYTES".to_string(),
                value.to_string(),
            )]
        };
        let set = Settings::parse(DEFAULT, env("1048576"), path).unwrap();
        set.check_log().unwrap();
        assert_eq!(set.synced_log_options().segment_size_bytes, 1 << 20);
        assert_eq!(set.unsynced_log_options().segment_size_bytes, 1 << 20);
        for (value, bad) in [("4095", "4095"), ("1073741825", "1073741825")] {
            let error = Settings::parse(DEFAULT, env(value), path)
                .unwrap()
                .check_log()
                .unwrap_err();
            assert!(
                error.starts_with(&format!(
                    "log.segment_size_bytes is {bad}; it must be from 4096 to 1073741824"
                )),
                "{error}"
            );
        }
    }

    /// Shard K's settings: its topics, transactional id, data directory and engine place;
    /// shard 0's names are the single-shard ones; a shard that does not exist, or a shard
    /// count out of range, is refused with the key named.
    #[test]
    fn each_shard_has_its_topics_data_directory_and_engine_place() {
        let settings = Settings::parse(
            "shards = 3\ndata_dir = \"/srv/box\"",
            [],
            Path::new("site.toml"),
        )
        .unwrap();
        settings.check_shards().unwrap();
        let first = settings.for_shard(0).unwrap();
        assert_eq!(
            (
                first.kafka.requests_topic.as_str(),
                first.data_dir.as_path(),
                first.engine_config().shard
            ),
            (
                "boxoffice.requests",
                Path::new("/srv/box"),
                engine::ShardPlace { index: 0, count: 3 }
            )
        );
        let third = settings.for_shard(2).unwrap();
        assert_eq!(
            (
                third.kafka.requests_topic.as_str(),
                third.kafka.outcomes_topic.as_str(),
                third.kafka.transactional_id.as_str(),
                third.data_dir.as_path(),
                third.engine_config().shard
            ),
            (
                "boxoffice.requests.shard-2",
                "boxoffice.outcomes.shard-2",
                format!("{}.shard-2", settings.kafka.transactional_id).as_str(),
                Path::new("/srv/box/shard-2"),
                engine::ShardPlace { index: 2, count: 3 }
            )
        );
        assert_eq!(settings.kafka.control_topic(), "boxoffice.requests.control");
        let error = settings.for_shard(3).unwrap_err();
        assert!(error.contains("shards = 3"), "{error}");
        let single = Settings::parse("", [], Path::new("site.toml")).unwrap();
        assert_eq!(
            (single.shards, single.engine_config().shard),
            (1, engine::ShardPlace::default())
        );
        for shards in ["0", "257"] {
            let settings = Settings::parse(
                "",
                [("BOXOFFICE_SHARDS".to_string(), shards.to_string())],
                Path::new("site.toml"),
            )
            .unwrap();
            let error = settings.check_shards().unwrap_err();
            assert!(error.starts_with(&format!("shards is {shards}")), "{error}");
        }
    }

    #[test]
    fn kafka_topic_checks_come_from_the_kafka_section() {
        let path = Path::new("site.toml");
        let defaults = Settings::parse(DEFAULT, [], path)
            .unwrap()
            .kafka
            .options("t");
        assert_eq!(
            (
                defaults.replication_factor,
                defaults.min_insync_replicas,
                defaults.retention_ms_min,
                defaults.retention_bytes_min
            ),
            (1, 1, None, None)
        );
        // Issue 23: the requests and outcomes topics are created with a finite retention
        // (30 days), the control topic kept for ever; both from the file or environment.
        let defaults = Settings::parse(DEFAULT, [], path).unwrap().kafka;
        assert_eq!(
            (
                defaults.options("boxoffice.requests").retention_ms,
                defaults.options("boxoffice.outcomes.shard-1").retention_ms,
                defaults.options("boxoffice.requests.control").retention_ms,
            ),
            (Some(2_592_000_000), Some(2_592_000_000), None)
        );
        let env = [
            ("BOXOFFICE_KAFKA_RETENTION_MS".to_string(), "-1".to_string()),
            (
                "BOXOFFICE_KAFKA_CONTROL_RETENTION_MS".to_string(),
                "86400000".to_string(),
            ),
        ];
        let kafka = Settings::parse("", env, path).unwrap().kafka;
        assert_eq!(
            (
                kafka.options("boxoffice.requests").retention_ms,
                kafka.options("boxoffice.requests.control").retention_ms,
            ),
            (None, Some(86_400_000))
        );
        let file = "[kafka]\nreplication_factor = 3\nmin_insync_replicas = 2\nretention_ms_min = 604800000\n";
        let env = [(
            "BOXOFFICE_KAFKA_RETENTION_BYTES_MIN".to_string(),
            "1099511627776".to_string(),
        )];
        let options = Settings::parse(file, env, path).unwrap().kafka.options("t");
        assert_eq!(
            (
                options.replication_factor,
                options.min_insync_replicas,
                options.retention_ms_min,
                options.retention_bytes_min
            ),
            (3, 2, Some(604_800_000), Some(1 << 40))
        );
        for (file, named) in [
            ("[kafka]\nreplication_factor = 0\n", "replication_factor"),
            (
                "[kafka.client]\n\"sasl.mechanism\" = [\"PLAIN\"]\n",
                "kafka.client.sasl.mechanism",
            ),
        ] {
            let error = Settings::parse(file, [], path).unwrap_err().to_string();
            assert!(error.contains(named), "{file}: {error}");
        }
    }

    /// The `[http]` settings of the default configuration with `variable` set to `value`
    /// in the environment (none when `value` is `None`).
    fn http_with(variable: &str, value: Option<&str>) -> Result<HttpSettings, SettingsError> {
        let env = value.map(|value| (variable.to_string(), value.to_string()));
        Settings::parse(DEFAULT, env, Path::new("site.toml")).map(|settings| settings.http)
    }

    /// `http.background_threads_batch`: on by default, off by file or environment, and a
    /// value that is not a boolean is refused naming it.
    #[test]
    fn background_threads_batch_is_on_by_default_and_can_be_turned_off() {
        const VARIABLE: &str = "BOXOFFICE_HTTP_BACKGROUND_THREADS_BATCH";
        let path = Path::new("site.toml");
        assert!(http_with(VARIABLE, None).unwrap().background_threads_batch);
        assert!(
            !http_with(VARIABLE, Some("false"))
                .unwrap()
                .background_threads_batch
        );
        let file = DEFAULT.replace(
            "background_threads_batch = true",
            "background_threads_batch = false",
        );
        assert_ne!(file, DEFAULT, "the default configuration names the key");
        assert!(
            !Settings::parse(&file, [], path)
                .unwrap()
                .http
                .background_threads_batch
        );
        let error = http_with(VARIABLE, Some("sometimes")).unwrap_err();
        assert!(
            error.to_string().contains("background_threads_batch"),
            "{error}"
        );
    }

    /// `http.transparent_huge_pages`: off by default (the default configuration names the
    /// key), on by environment, and a value that is not a boolean is refused naming it.
    #[test]
    fn transparent_huge_pages_are_off_by_default_and_can_be_turned_on() {
        const VARIABLE: &str = "BOXOFFICE_HTTP_TRANSPARENT_HUGE_PAGES";
        assert!(DEFAULT.contains("transparent_huge_pages = false"));
        assert!(!http_with(VARIABLE, None).unwrap().transparent_huge_pages);
        assert!(
            http_with(VARIABLE, Some("true"))
                .unwrap()
                .transparent_huge_pages
        );
        let error = http_with(VARIABLE, Some("madvise")).unwrap_err();
        assert!(
            error.to_string().contains("transparent_huge_pages"),
            "{error}"
        );
    }

    /// `http.cpus`: none by default; a list in a file; one number, or numbers and ranges
    /// as `taskset -c` takes them, in the environment; anything else refused, naming it.
    #[test]
    fn cpus_are_any_by_default_and_can_be_named() {
        let path = Path::new("site.toml");
        let cpus =
            |value: Option<&str>| http_with("BOXOFFICE_HTTP_CPUS", value).map(|http| http.cpus);
        assert!(DEFAULT.contains("cpus = []"));
        assert_eq!(cpus(None).unwrap(), Vec::<usize>::new());
        assert_eq!(cpus(Some("")).unwrap(), Vec::<usize>::new());
        assert_eq!(cpus(Some("1")).unwrap(), vec![1]);
        assert_eq!(cpus(Some("0, 2-4")).unwrap(), vec![0, 2, 3, 4]);
        let file = DEFAULT.replace("cpus = []", "cpus = [3, 1]");
        let settings = Settings::parse(&file, [], path).unwrap();
        assert_eq!(settings.http.cpus, vec![3, 1]);
        for bad in ["one", "4-2", "-1", "0,x", "1024", "true"] {
            let error = cpus(Some(bad)).unwrap_err().to_string();
            assert!(
                error.contains("http.cpus") && error.contains("BOXOFFICE_HTTP_CPUS"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn a_bad_value_is_a_clear_error() {
        let env = [("BOXOFFICE_LOG_KIND".to_string(), "floppy".to_string())];
        let error = Settings::parse(DEFAULT, env, Path::new("x.toml")).unwrap_err();
        assert!(
            error.to_string().contains("floppy") || error.to_string().contains("variant"),
            "{error}"
        );
    }
}
