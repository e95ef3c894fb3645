//! The Kafka log: one single-partition topic, written by an idempotent (optionally
//! transactional) producer, read by a consumer assigned to an explicit offset.
//!
//! ```text
//!  appenders ──► KafkaWriter ── enqueue under a lock ──► librdkafka ──► broker (acks=all)
//!                    ▲                                         │
//!                    └──── Condvar ◄── delivery report thread ─┘  (offset, LogAppendTime)
//!  KafkaReader: BaseConsumer, assign(topic, 0, offset), read_committed, no consumer group
//! ```
//!
//! The public API is blocking; librdkafka's own threads do the I/O. The only futures (topic
//! creation and description through the admin client) are driven by [`block_on`], so no async
//! runtime is needed.
//!
//! [`KafkaLog::open`] checks the topic before anything reads or writes it (`check_topic`):
//! whether `open` created it or an operator did, a topic that cannot keep a log safe is refused
//! with [`LogError::TopicSetting`] naming the setting. Why each one matters:
//!
//! - `partitions` = 1: one partition is one order.
//! - `cleanup.policy` = `delete`: compaction keeps only the last record per key and would
//!   remove requests.
//! - `retention.ms` / `retention.bytes`: a replica with no snapshot replays the requests log
//!   from offset 0, and the ingress rebuilds its read model from the outcomes log's offset 0,
//!   so by default both must be unlimited (`-1`); `retention_ms_min` / `retention_bytes_min`
//!   accept a finite retention at least that long, and a topic `open` creates gets
//!   `retention_ms` (then also the shortest accepted when no minimum is given).
//! - `message.timestamp.type` = `LogAppendTime`: a record's timestamp is the engine's clock
//!   (holds expire by it). With `CreateTime` it would be whatever each producer's host clock
//!   (or a producer's choice) says, so one ingress with a skewed clock would move expiry for
//!   everyone; the broker's append time is one clock, assigned in log order.
//! - the partition's replicas ≥ `replication_factor`, `min.insync.replicas` ≥
//!   `min_insync_replicas`, `unclean.leader.election.enable` = `false`: an acknowledged
//!   (`acks=all`) record survives the loss of a broker, and an out-of-date replica never
//!   becomes leader (which would drop acknowledged records).

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message, Timestamp};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::{Appended, LogError, LogReader, LogRecord, LogWriter, KAFKA_LOG_ID_PREFIX};

/// The log always lives in partition 0 of its topic.
const PARTITION: i32 = 0;

/// Room for Kafka's record-batch framing on top of the largest payload, when sizing
/// `message.max.bytes` (producer) and `max.message.bytes` (topic).
const BATCH_OVERHEAD_BYTES: usize = 64 * 1024;

/// Back-off while librdkafka's local queue is full (it drains as deliveries complete).
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(5);

/// How long a transactional append waits for the producer's queues to empty before it
/// commits (they empty microseconds after the last delivery report).
const QUEUES_EMPTY_WAIT_MAX: Duration = Duration::from_millis(10);

/// Back-off between metadata look-ups while a new topic's leader is being elected.
const METADATA_RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// How to reach and shape the topic, and the limits of one writer.
#[derive(Clone, Debug)]
pub struct KafkaOptions {
    /// `bootstrap.servers`, e.g. `127.0.0.1:19092`.
    pub brokers: String,
    /// The topic holding the log; it must have exactly one partition.
    pub topic: String,
    /// Create the topic at `open` when it does not exist (1 partition, `LogAppendTime`,
    /// unlimited retention). When false a missing topic is an error.
    pub create_if_missing: bool,
    /// Replication factor of a topic created by `open`, and the fewest replicas an existing
    /// topic's partition may have (1 for a single dev broker, 3 in production).
    pub replication_factor: i32,
    /// `min.insync.replicas` of a topic created by `open`, and the least an existing topic may
    /// have: an `acks=all` append is acknowledged once this many replicas have it (1 for a
    /// single dev broker, 2 in production with 3 replicas). At most `replication_factor`.
    pub min_insync_replicas: i32,
    /// The shortest `retention.ms` an existing topic may have; `None` (the default): the
    /// topic must keep records for ever (`-1`), as replay from offset 0 needs.
    pub retention_ms_min: Option<u64>,
    /// `retention.ms` of a topic created by `open`; `None` (the default): unlimited (`-1`).
    /// A finite one also accepts an existing topic that keeps records at least as long
    /// (when `retention_ms_min` is `None`). Issue 23: logs are not kept for ever.
    pub retention_ms: Option<u64>,
    /// The smallest `retention.bytes` an existing topic may have; `None` (the default): no
    /// size limit (`-1`).
    pub retention_bytes_min: Option<u64>,
    /// When set, the writer is transactional with this `transactional.id`: each `append` is one
    /// transaction, and starting a second writer with the same id fences the first (its appends
    /// then fail with [`LogError::Fenced`]). Each committed transaction also writes a commit
    /// marker, which takes an offset: offsets then increase with gaps instead of being dense.
    pub transactional_id: Option<String>,
    /// Largest payload accepted by `append`.
    pub payload_size_max_bytes: usize,
    /// Most records in one `append` call.
    pub append_records_max: usize,
    /// Deadline of one metadata, watermark, admin or transaction-control request.
    pub operation_timeout: Duration,
    /// `message.timeout.ms`: how long librdkafka keeps retrying one record before it reports
    /// the delivery as failed. `append` waits at most this long (plus `operation_timeout`).
    pub delivery_timeout: Duration,
    /// `linger.ms`: how long the producer waits to fill a batch. Concurrent appenders share
    /// batches (Kafka's group commit); a single appender pays this much latency. A
    /// transactional writer does not linger (see [`KafkaOptions::producer_linger`]).
    pub linger: Duration,
    /// Extra librdkafka properties for every client (security settings, `client.id`, ...),
    /// applied last.
    pub client_properties: Vec<(String, String)>,
}

impl KafkaOptions {
    /// Options with defaults for a topic on `brokers`: create if missing, replication factor 1,
    /// not transactional, 1 MiB payloads, 4096 records per append.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> KafkaOptions {
        KafkaOptions {
            brokers: brokers.into(),
            topic: topic.into(),
            create_if_missing: true,
            replication_factor: 1,
            min_insync_replicas: 1,
            retention_ms_min: None,
            retention_ms: None,
            retention_bytes_min: None,
            transactional_id: None,
            payload_size_max_bytes: 1024 * 1024,
            append_records_max: 4096,
            operation_timeout: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(60),
            linger: Duration::from_millis(2),
            client_properties: Vec::new(),
        }
    }

    /// The producer's `linger.ms`. A transactional writer appends one transaction at a time
    /// (`append_lock`), enqueues all of its records at once and waits for them: nothing
    /// else can join its batches, so lingering would only delay every transaction (the
    /// engine's outcomes: 2.9k -> 3.7k requests/s end to end on Kafka at 0, BENCHMARKS.md,
    /// "HTTP hold + confirm, session 11"). Idempotent writers keep `linger`: the ingress's
    /// appender threads do share batches (at 0 its CPU per request rose by a third).
    fn producer_linger(&self) -> Duration {
        if self.transactional_id.is_some() {
            Duration::ZERO
        } else {
            self.linger
        }
    }

    fn assert_valid(&self) {
        assert!(!self.brokers.is_empty());
        assert!(!self.topic.is_empty());
        assert!(self.replication_factor >= 1);
        assert!(self.min_insync_replicas >= 1);
        assert!(self.payload_size_max_bytes > 0);
        assert!(self.append_records_max > 0);
        assert!(!self.operation_timeout.is_zero());
        assert!(!self.delivery_timeout.is_zero());
        if let Some(id) = &self.transactional_id {
            assert!(!id.is_empty());
        }
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("allow.auto.create.topics", "false")
            .set(
                "socket.timeout.ms",
                millis(self.operation_timeout).to_string(),
            );
        config
    }

    fn apply_client_properties(&self, config: &mut ClientConfig) {
        for (key, value) in &self.client_properties {
            config.set(key, value);
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A Kafka topic used as a log. Cheap to clone the handles it makes; `open` only checks (and
/// maybe creates) the topic.
pub struct KafkaLog {
    options: Arc<KafkaOptions>,
    log_id: String,
}

impl KafkaLog {
    /// Checks that the topic exists with one partition and a leader, creating it first when
    /// `create_if_missing` is set, then that its settings can keep a log (see the module's
    /// documentation): a mismatch is [`LogError::TopicSetting`].
    pub fn open(options: KafkaOptions) -> Result<KafkaLog, LogError> {
        options.assert_valid();
        if options.min_insync_replicas > options.replication_factor {
            return Err(LogError::TopicSetting {
                topic: options.topic.clone(),
                setting: "min.insync.replicas",
                found: options.min_insync_replicas.to_string(),
                required: format!(
                    "at most the replication factor ({}): every append would be refused",
                    options.replication_factor
                ),
            });
        }
        let mut config = options.client_config();
        options.apply_client_properties(&mut config);
        let admin: AdminClient<DefaultClientContext> = config.create()?;
        if options.create_if_missing {
            create_topic(&admin, &options)?;
        }
        let replicas = wait_for_leader(admin.inner(), &options)?;
        let topic_configs = describe_topic(&admin, &options)?;
        check_topic(&options, replicas, &topic_configs)?;
        let cluster_id = admin
            .inner()
            .fetch_cluster_id(options.operation_timeout)
            .ok_or(LogError::Timeout {
                operation: "the Kafka cluster id",
                timeout_ms: millis(options.operation_timeout),
            })?;
        let log_id = format!("{KAFKA_LOG_ID_PREFIX}{cluster_id}/{}", options.topic);
        Ok(KafkaLog {
            options: Arc::new(options),
            log_id,
        })
    }

    /// The identity of this log: `kafka:<cluster id>/<topic>`. Snapshots record it, so a
    /// snapshot is never loaded against another topic or cluster. (A topic deleted and
    /// created again under the same name keeps the id; Kafka's topic ids are not exposed by
    /// the client library yet.)
    pub fn log_id(&self) -> &str {
        &self.log_id
    }

    /// A new producer. In transactional mode this fences any earlier writer with the same
    /// `transactional.id` (in this process or another).
    pub fn writer(&self) -> Result<KafkaWriter, LogError> {
        KafkaWriter::new(Arc::clone(&self.options))
    }

    /// A new consumer positioned at offset 0.
    pub fn reader(&self) -> Result<KafkaReader, LogError> {
        KafkaReader::new(Arc::clone(&self.options))
    }

    pub fn options(&self) -> &KafkaOptions {
        &self.options
    }

    /// A handle that announces `node` as a replica reading this log (see
    /// [`ReplicaAnnouncer`]).
    pub fn replica_announcer(&self, node: &str) -> Result<ReplicaAnnouncer, LogError> {
        assert!(!node.is_empty());
        let group = format!("{}{node}", replica_group_prefix(&self.options.topic));
        let mut config = self.options.client_config();
        config
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        self.options.apply_client_properties(&mut config);
        let consumer: BaseConsumer<TracingContext> = config.create_with_context(TracingContext)?;
        Ok(ReplicaAnnouncer {
            consumer,
            options: Arc::clone(&self.options),
        })
    }

    /// The nodes announced as replicas of this log ([`ReplicaAnnouncer::announce`]), sorted.
    pub fn announced_replicas(&self) -> Result<Vec<String>, LogError> {
        let mut config = self.options.client_config();
        // A consumer needs a group id; this one only lists groups, never joins or commits.
        config.set("group.id", "boxoffice-replica-list");
        self.options.apply_client_properties(&mut config);
        let consumer: BaseConsumer<TracingContext> = config.create_with_context(TracingContext)?;
        let groups = consumer.fetch_group_list(None, self.options.operation_timeout)?;
        let prefix = replica_group_prefix(&self.options.topic);
        let mut nodes: Vec<String> = groups
            .groups()
            .iter()
            .filter_map(|group| group.name().strip_prefix(&prefix))
            .map(str::to_string)
            .collect();
        nodes.sort();
        nodes.dedup();
        Ok(nodes)
    }
}

/// The consumer groups replicas of `topic` announce themselves under.
fn replica_group_prefix(topic: &str) -> String {
    format!("boxoffice-replica.{topic}.")
}

/// Announces a replica: commits its next offset to read for the log's topic under the
/// consumer group `boxoffice-replica.<topic>.<node>`. No member ever joins the group; the
/// broker lists it with its committed offset (so lag tools see each replica's position)
/// and keeps it for `offsets.retention.minutes` (7 days by default) after the last commit,
/// so a running replica announces itself again now and then.
pub struct ReplicaAnnouncer {
    consumer: BaseConsumer<TracingContext>,
    options: Arc<KafkaOptions>,
}

impl ReplicaAnnouncer {
    pub fn announce(&self, next_offset: u64) -> Result<(), LogError> {
        let mut offsets = TopicPartitionList::new();
        let kafka_offset = i64::try_from(next_offset).expect("offset fits i64");
        offsets.add_partition_offset(
            &self.options.topic,
            PARTITION,
            Offset::Offset(kafka_offset),
        )?;
        self.consumer.commit(&offsets, CommitMode::Sync)?;
        Ok(())
    }
}

fn create_topic(
    admin: &AdminClient<DefaultClientContext>,
    options: &KafkaOptions,
) -> Result<(), LogError> {
    let max_message_bytes = (options.payload_size_max_bytes + BATCH_OVERHEAD_BYTES).to_string();
    let min_insync_replicas = options.min_insync_replicas.to_string();
    let retention_ms = options
        .retention_ms
        .map_or_else(|| "-1".to_string(), |retention| retention.to_string());
    let topic = NewTopic::new(
        &options.topic,
        1,
        TopicReplication::Fixed(options.replication_factor),
    )
    // The broker stamps each batch: timestamps are monotonic per partition and do not
    // depend on the clocks of the ingress hosts.
    .set("message.timestamp.type", "LogAppendTime")
    // Kept for ever unless a retention is configured (issue 23: personal data is not
    // kept longer than needed; a restart then needs snapshots newer than the retention).
    .set("retention.ms", &retention_ms)
    .set("retention.bytes", "-1")
    .set("cleanup.policy", "delete")
    .set("unclean.leader.election.enable", "false")
    .set("min.insync.replicas", &min_insync_replicas)
    .set("max.message.bytes", &max_message_bytes);
    let admin_options = AdminOptions::new()
        .operation_timeout(Some(options.operation_timeout))
        .request_timeout(Some(options.operation_timeout));
    let results = block_on(admin.create_topics([&topic], &admin_options))?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created kafka topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(LogError::Topic {
                    topic: name,
                    reason: format!("cannot create: {code}"),
                });
            }
        }
    }
    Ok(())
}

/// Waits (bounded by `operation_timeout`) until the topic has its one partition with a leader,
/// so that the first append or fetch does not race the topic's creation. Returns how many
/// replicas the partition has.
fn wait_for_leader<C: ClientContext>(
    client: &Client<C>,
    options: &KafkaOptions,
) -> Result<usize, LogError> {
    let deadline = Instant::now() + options.operation_timeout;
    let topic_error = |reason: String| LogError::Topic {
        topic: options.topic.clone(),
        reason,
    };
    loop {
        let metadata = client.fetch_metadata(Some(&options.topic), options.operation_timeout)?;
        let topic = metadata
            .topics()
            .iter()
            .find(|topic| topic.name() == options.topic);
        let last_problem = match topic {
            None => "missing from metadata".to_owned(),
            Some(topic) => match topic.error() {
                Some(error) => format!(
                    "does not exist or is unavailable ({:?})",
                    RDKafkaErrorCode::from(error)
                ),
                None if topic.partitions().len() != 1 => {
                    return Err(LogError::TopicSetting {
                        topic: options.topic.clone(),
                        setting: "partitions",
                        found: topic.partitions().len().to_string(),
                        required: "exactly 1 (one partition is one order)".into(),
                    });
                }
                None if topic.partitions()[0].leader() >= 0 => {
                    return Ok(topic.partitions()[0].replicas().len())
                }
                None => "partition 0 has no leader yet".to_owned(),
            },
        };
        if Instant::now() + METADATA_RETRY_BACKOFF > deadline {
            return Err(topic_error(last_problem));
        }
        thread::sleep(METADATA_RETRY_BACKOFF);
    }
}

/// The topic's configuration as the broker reports it (explicit and inherited values alike).
fn describe_topic(
    admin: &AdminClient<DefaultClientContext>,
    options: &KafkaOptions,
) -> Result<Vec<(String, String)>, LogError> {
    let admin_options = AdminOptions::new()
        .operation_timeout(Some(options.operation_timeout))
        .request_timeout(Some(options.operation_timeout));
    let topic = ResourceSpecifier::Topic(&options.topic);
    let results = block_on(admin.describe_configs([&topic], &admin_options))?;
    let mut configs = Vec::new();
    for result in results {
        let resource = result.map_err(|code| LogError::Topic {
            topic: options.topic.clone(),
            reason: format!("cannot describe its configuration: {code}"),
        })?;
        configs.extend(
            resource
                .entries
                .into_iter()
                .filter_map(|entry| Some((entry.name, entry.value?))),
        );
    }
    Ok(configs)
}

/// Checks an existing topic's replica count and configuration (`configs`: name, value)
/// against what a log needs. The first mismatch, in the order of the module's documentation,
/// is the error.
fn check_topic(
    options: &KafkaOptions,
    replicas: usize,
    configs: &[(String, String)],
) -> Result<(), LogError> {
    let mismatch = |setting: &'static str, found: &str, required: String| LogError::TopicSetting {
        topic: options.topic.clone(),
        setting,
        found: found.to_string(),
        required,
    };
    let value = |setting: &'static str| -> Result<&str, LogError> {
        configs
            .iter()
            .find(|(name, _)| name == setting)
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| mismatch(setting, "not reported by the broker", "a value".into()))
    };
    let integer = |setting: &'static str| -> Result<i64, LogError> {
        let found = value(setting)?;
        found
            .parse::<i64>()
            .map_err(|_| mismatch(setting, found, "an integer".into()))
    };

    let cleanup_policy = value("cleanup.policy")?;
    if cleanup_policy != "delete" {
        return Err(mismatch(
            "cleanup.policy",
            cleanup_policy,
            "delete (compaction would remove records)".into(),
        ));
    }
    let retentions = [
        (
            "retention.ms",
            options.retention_ms_min.or(options.retention_ms),
            "ms",
        ),
        ("retention.bytes", options.retention_bytes_min, "bytes"),
    ];
    for (setting, minimum, unit) in retentions {
        let found = integer(setting)?;
        let long_enough = found < 0 || minimum.is_some_and(|minimum| found as u64 >= minimum);
        if !long_enough {
            let required = match minimum {
                None => {
                    "-1 (unlimited: a replica without a snapshot replays from offset 0)".to_string()
                }
                Some(minimum) => format!("-1 (unlimited) or at least {minimum} {unit}"),
            };
            return Err(mismatch(setting, &found.to_string(), required));
        }
    }
    let timestamp_type = value("message.timestamp.type")?;
    if timestamp_type != "LogAppendTime" {
        return Err(mismatch(
            "message.timestamp.type",
            timestamp_type,
            "LogAppendTime (record timestamps are the engine's clock: one clock, the broker's)"
                .into(),
        ));
    }
    let replication_factor = usize::try_from(options.replication_factor).unwrap_or(usize::MAX);
    if replicas < replication_factor {
        return Err(mismatch(
            "replication factor",
            &replicas.to_string(),
            format!("at least {replication_factor} (the configured replication factor)"),
        ));
    }
    let min_insync_replicas = integer("min.insync.replicas")?;
    if min_insync_replicas < i64::from(options.min_insync_replicas) {
        return Err(mismatch(
            "min.insync.replicas",
            &min_insync_replicas.to_string(),
            format!(
                "at least {} (the configured min_insync_replicas)",
                options.min_insync_replicas
            ),
        ));
    }
    let unclean = value("unclean.leader.election.enable")?;
    if unclean != "false" {
        return Err(mismatch(
            "unclean.leader.election.enable",
            unclean,
            "false (an out-of-date leader would drop acknowledged records)".into(),
        ));
    }
    Ok(())
}

/// Maps a librdkafka error to the log's error, singling out fencing.
fn log_error(error: KafkaError) -> LogError {
    match error.rdkafka_error_code() {
        Some(code) if is_fencing(code) => LogError::Fenced,
        _ => LogError::Kafka(error),
    }
}

fn is_fencing(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Fenced
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::TransactionCoordinatorFenced
    )
}

/// Forwards librdkafka's logs and global errors to `tracing`.
struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, reason, "kafka client error");
    }
}

impl ConsumerContext for TracingContext {}

/// Where a delivery report lands: the append waiting for it, and the record's index there.
struct DeliverySlot {
    batch: Arc<PendingBatch>,
    index: usize,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        TracingContext.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        TracingContext.error(error, reason);
    }
}

/// Routes each delivery report to its [`DeliverySlot`].
struct DeliveryContext;

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<DeliverySlot>;

    fn delivery(&self, result: &DeliveryResult<'_>, slot: Box<DeliverySlot>) {
        let outcome = match result {
            Ok(message) => {
                let offset =
                    u64::try_from(message.offset()).expect("a delivered record has an offset");
                let timestamp_ms = match message.timestamp() {
                    Timestamp::LogAppendTime(ms) | Timestamp::CreateTime(ms) => {
                        u64::try_from(ms).unwrap_or(0)
                    }
                    Timestamp::NotAvailable => 0,
                };
                Ok(Appended {
                    offset,
                    timestamp_ms,
                })
            }
            Err((error, _message)) => Err(log_error(error.clone())),
        };
        slot.batch.complete(slot.index, outcome);
    }
}

/// The outcomes of one append's records, filled in by delivery reports.
struct PendingBatch {
    state: Mutex<PendingState>,
    completed: Condvar,
}

struct PendingState {
    outcomes: Vec<Option<Result<Appended, LogError>>>,
    remaining: usize,
}

impl PendingBatch {
    fn new(count: usize) -> Arc<PendingBatch> {
        Arc::new(PendingBatch {
            state: Mutex::new(PendingState {
                outcomes: (0..count).map(|_| None).collect(),
                remaining: count,
            }),
            completed: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PendingState> {
        self.state.lock().expect("pending batch poisoned")
    }

    fn complete(&self, index: usize, outcome: Result<Appended, LogError>) {
        let mut state = self.lock();
        assert!(
            state.outcomes[index].is_none(),
            "one delivery report per record"
        );
        state.outcomes[index] = Some(outcome);
        state.remaining -= 1;
        if state.remaining == 0 {
            self.completed.notify_all();
        }
    }

    /// Waits for every outcome; the first failure (by record index) wins.
    fn wait(&self, timeout: Duration) -> Result<Vec<Appended>, LogError> {
        let state = self.lock();
        let (mut state, wait) = self
            .completed
            .wait_timeout_while(state, timeout, |state| state.remaining > 0)
            .expect("pending batch poisoned");
        if wait.timed_out() {
            return Err(LogError::Timeout {
                operation: "delivery reports",
                timeout_ms: millis(timeout),
            });
        }
        let outcomes = std::mem::take(&mut state.outcomes);
        let appended = outcomes
            .into_iter()
            .map(|outcome| outcome.expect("every record reported"))
            .collect::<Result<Vec<_>, _>>()?;
        assert!(
            appended
                .windows(2)
                .all(|pair| pair[0].offset < pair[1].offset),
            "one partition keeps order"
        );
        Ok(appended)
    }
}

/// Appends to a [`KafkaLog`]. Clones share one producer.
#[derive(Clone)]
pub struct KafkaWriter {
    inner: Arc<WriterInner>,
}

struct WriterInner {
    producer: ThreadedProducer<DeliveryContext>,
    options: Arc<KafkaOptions>,
    /// Held while enqueueing one append (so its records are contiguous) and, when
    /// transactional, for the whole transaction (one transaction at a time per producer).
    append_lock: Mutex<()>,
    /// Set once the producer has been fenced: it can never write again.
    fenced: AtomicBool,
}

impl KafkaWriter {
    fn new(options: Arc<KafkaOptions>) -> Result<KafkaWriter, LogError> {
        let mut config = options.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                millis(options.delivery_timeout).to_string(),
            )
            .set("linger.ms", millis(options.producer_linger()).to_string())
            .set(
                "message.max.bytes",
                (options.payload_size_max_bytes + BATCH_OVERHEAD_BYTES).to_string(),
            );
        if let Some(id) = &options.transactional_id {
            config.set("transactional.id", id).set(
                "transaction.timeout.ms",
                millis(options.delivery_timeout).max(1000).to_string(),
            );
        }
        options.apply_client_properties(&mut config);
        let producer: ThreadedProducer<DeliveryContext> =
            config.create_with_context(DeliveryContext)?;
        if options.transactional_id.is_some() {
            // Registers with the transaction coordinator, bumping the epoch: any older producer
            // with the same id is fenced from here on.
            producer
                .init_transactions(options.operation_timeout)
                .map_err(log_error)?;
        }
        let inner = WriterInner {
            producer,
            options,
            append_lock: Mutex::new(()),
            fenced: AtomicBool::new(false),
        };
        Ok(KafkaWriter {
            inner: Arc::new(inner),
        })
    }

    fn check_limits(&self, payloads: &[Vec<u8>]) -> Result<(), LogError> {
        let options = &self.inner.options;
        crate::error::check_append_limits(
            payloads,
            options.append_records_max,
            options.payload_size_max_bytes,
        )
    }

    /// Records a fencing error so that later appends fail fast.
    fn note(&self, error: LogError) -> LogError {
        if matches!(error, LogError::Fenced) {
            self.inner.fenced.store(true, Ordering::Release);
        }
        error
    }

    fn fatal_error(&self) -> Option<LogError> {
        if self.inner.fenced.load(Ordering::Acquire) {
            return Some(LogError::Fenced);
        }
        let (code, reason) = self.inner.producer.client().fatal_error()?;
        if is_fencing(code) {
            return Some(self.note(LogError::Fenced));
        }
        tracing::error!(?code, reason, "kafka producer is in a fatal state");
        Some(LogError::Kafka(KafkaError::MessageProduction(code)))
    }

    /// Enqueues every payload, in order. If one cannot be enqueued, the ones after it are not
    /// tried and the error is returned; the batch is then incomplete and must not be waited for
    /// (delivery reports of the records already enqueued still arrive and are dropped with it).
    fn enqueue(&self, payloads: &[Vec<u8>]) -> Result<Arc<PendingBatch>, LogError> {
        let batch = PendingBatch::new(payloads.len());
        let deadline = Instant::now() + self.inner.options.delivery_timeout;
        for (index, payload) in payloads.iter().enumerate() {
            let slot = Box::new(DeliverySlot {
                batch: Arc::clone(&batch),
                index,
            });
            let mut record = BaseRecord::<(), [u8], Box<DeliverySlot>>::with_opaque_to(
                &self.inner.options.topic,
                slot,
            )
            .partition(PARTITION)
            .payload(payload.as_slice());
            loop {
                match self.inner.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                        if Instant::now() < deadline =>
                    {
                        record = returned;
                        thread::sleep(QUEUE_FULL_BACKOFF);
                    }
                    Err((error, _returned)) => {
                        let error = self.note(log_error(error));
                        tracing::warn!(%error, index, "kafka enqueue failed");
                        return Err(error);
                    }
                }
            }
        }
        Ok(batch)
    }

    fn wait_timeout(&self) -> Duration {
        self.inner.options.delivery_timeout + self.inner.options.operation_timeout
    }

    fn append_idempotent(&self, payloads: &[Vec<u8>]) -> Result<Vec<Appended>, LogError> {
        let batch = {
            let _guard = self.inner.append_lock.lock().expect("append lock poisoned");
            self.enqueue(payloads)?
        };
        batch
            .wait(self.wait_timeout())
            .map_err(|error| self.note(error))
    }

    /// One transaction per append: all of its records are committed, or none is visible to
    /// `read_committed` readers.
    fn append_transactional(&self, payloads: &[Vec<u8>]) -> Result<Vec<Appended>, LogError> {
        let _guard = self.inner.append_lock.lock().expect("append lock poisoned");
        let producer = &self.inner.producer;
        let timeout = self.inner.options.operation_timeout;
        producer
            .begin_transaction()
            .map_err(|error| self.note(log_error(error)))?;
        let batch = match self.enqueue(payloads) {
            Ok(batch) => batch,
            Err(error) => {
                self.abort();
                return Err(error);
            }
        };
        // Every record acknowledged first, and its delivery report served: with nothing left
        // in the producer's queues, the flush inside `commit_transaction` returns at once. With
        // records still in flight it would poll the event queue for up to 100 ms, which the
        // producer's own polling thread drains first: every transaction took 100 ms.
        let appended = match batch.wait(self.wait_timeout()) {
            Ok(appended) => appended,
            Err(error) => {
                // A fenced producer purges its queue: the delivery error then only says
                // "purged", and the producer's fatal error says why.
                if let Some(fatal) = self.fatal_error() {
                    return Err(fatal);
                }
                let error = self.note(error);
                self.abort();
                return Err(error);
            }
        };
        self.wait_queues_empty();
        if let Err(error) = producer.commit_transaction(timeout) {
            let abortable =
                matches!(&error, KafkaError::Transaction(rd) if rd.txn_requires_abort());
            let error = self.note(log_error(error));
            if abortable {
                self.abort();
            }
            return Err(error);
        }
        Ok(appended)
    }

    /// Waits (briefly, bounded) until the producer holds no record and no delivery report:
    /// the last report is released by the polling thread just after its callback ran.
    fn wait_queues_empty(&self) {
        let deadline = Instant::now() + QUEUES_EMPTY_WAIT_MAX;
        while self.inner.producer.in_flight_count() > 0 && Instant::now() < deadline {
            thread::yield_now();
        }
    }

    /// Aborts the open transaction; a failure to abort is logged (the next `begin` reports a
    /// producer that cannot go on).
    fn abort(&self) {
        let timeout = self.inner.options.operation_timeout;
        if let Err(error) = self.inner.producer.abort_transaction(timeout) {
            let error = self.note(log_error(error));
            tracing::warn!(%error, "abort_transaction failed");
        }
    }
}

impl LogWriter for KafkaWriter {
    /// Returns once every record is acknowledged by all in-sync replicas (and, when
    /// transactional, once the transaction is committed).
    fn append(&self, payloads: Vec<Vec<u8>>) -> Result<Vec<Appended>, LogError> {
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        self.check_limits(&payloads)?;
        if let Some(error) = self.fatal_error() {
            return Err(error);
        }
        let appended = if self.inner.options.transactional_id.is_some() {
            self.append_transactional(&payloads)?
        } else {
            self.append_idempotent(&payloads)?
        };
        assert_eq!(appended.len(), payloads.len());
        Ok(appended)
    }

    fn end_offset(&self) -> Result<u64, LogError> {
        let options = &self.inner.options;
        let client = self.inner.producer.client();
        let (_low, high) =
            client.fetch_watermarks(&options.topic, PARTITION, options.operation_timeout)?;
        Ok(u64::try_from(high).unwrap_or(0))
    }
}

/// Reads a [`KafkaLog`] in offset order with an assigned (not subscribed) consumer: no group
/// membership, no rebalances, no committed offsets. The caller owns its position.
pub struct KafkaReader {
    consumer: BaseConsumer<TracingContext>,
    options: Arc<KafkaOptions>,
    position: u64,
    /// A record was returned since the last (re-)assignment: from then on the consumer's own
    /// position is of this assignment and can be trusted to step over transaction markers.
    delivered_since_assign: bool,
    /// An error met after some records were already read in the same `poll`; returned by the
    /// next `poll` so that neither the records nor the error is lost.
    deferred_error: Option<LogError>,
}

/// The consumers' `fetch.wait.max.ms` (librdkafka's default is 500). A `read_committed`
/// fetch waiting at the end of a transactional topic (the outcomes) is not answered when
/// the transaction's commit marker makes its records readable, only when the wait ends: with
/// the default, every request of a quiet deployment took about half a second (creating 21
/// events one after the other: 514 ms each; with 20 ms, 13.5 ms each: BENCHMARKS.md,
/// "HTTP hold + confirm, session 15"). Under load fetches are answered by new records
/// first. The price: an idle consumer asks the broker 50 times a second instead of twice.
/// A deployment's `client_properties` override it.
const FETCH_WAIT_MAX_MS: u64 = 20;

/// A reader's client configuration: the options', then what a reader needs, then the
/// deployment's own properties (which win).
fn reader_config(options: &KafkaOptions) -> ClientConfig {
    let mut config = options.client_config();
    config
        // librdkafka needs a group id to assign partitions; it is never joined (no
        // subscribe) and never committed to.
        .set(
            "group.id",
            format!("boxoffice-requestlog-{}", options.topic),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "error")
        .set("check.crcs", "true")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", FETCH_WAIT_MAX_MS.to_string());
    options.apply_client_properties(&mut config);
    config
}

impl KafkaReader {
    fn new(options: Arc<KafkaOptions>) -> Result<KafkaReader, LogError> {
        let config = reader_config(&options);
        let consumer: BaseConsumer<TracingContext> = config.create_with_context(TracingContext)?;
        let mut reader = KafkaReader {
            consumer,
            options,
            position: 0,
            delivered_since_assign: false,
            deferred_error: None,
        };
        reader.assign(0)?;
        Ok(reader)
    }

    fn assign(&mut self, offset: u64) -> Result<(), LogError> {
        let mut assignment = TopicPartitionList::new();
        let kafka_offset = i64::try_from(offset).expect("offset fits i64");
        assignment.add_partition_offset(
            &self.options.topic,
            PARTITION,
            Offset::Offset(kafka_offset),
        )?;
        self.consumer.assign(&assignment)?;
        self.position = offset;
        self.delivered_since_assign = false;
        self.deferred_error = None;
        Ok(())
    }

    /// Moves `position` over transaction markers. A marker (the commit record a transactional
    /// writer adds after each transaction) takes an offset but is never returned, so after
    /// the last record of a transaction `position` would stay on the marker and never reach
    /// the end offset: a reader could never tell it has caught up. librdkafka advances the
    /// consumer's own position over the markers it consumes; it is used only once a record
    /// was returned since the last assignment (before that it may still be the old one's).
    fn step_over_markers(&mut self) {
        if !self.delivered_since_assign {
            return;
        }
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        let next = positions
            .find_partition(&self.options.topic, PARTITION)
            .and_then(|element| match element.offset() {
                Offset::Offset(next) => u64::try_from(next).ok(),
                _ => None,
            });
        if let Some(next) = next.filter(|next| *next > self.position) {
            self.position = next;
        }
    }

    fn watermarks(&self) -> Result<(u64, u64), LogError> {
        let (low, high) = self.consumer.fetch_watermarks(
            &self.options.topic,
            PARTITION,
            self.options.operation_timeout,
        )?;
        Ok((
            u64::try_from(low).unwrap_or(0),
            u64::try_from(high).unwrap_or(0),
        ))
    }

    fn out_of_range(&self) -> LogError {
        let (start_offset, end_offset) = self.watermarks().unwrap_or((0, 0));
        LogError::OffsetOutOfRange {
            offset: self.position,
            start_offset,
            end_offset,
        }
    }

    /// A consumer error, or `None` for one librdkafka recovers from by itself (a broker
    /// connection dropping, a leader moving).
    fn consumer_error(&self, error: KafkaError) -> Option<LogError> {
        match error {
            KafkaError::MessageConsumption(
                RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset,
            ) => Some(self.out_of_range()),
            KafkaError::MessageConsumptionFatal(_) => Some(LogError::Kafka(error)),
            KafkaError::MessageConsumption(code) if !is_transient(code) => {
                Some(LogError::Kafka(error))
            }
            error => {
                tracing::warn!(%error, "kafka consumer error (retrying)");
                None
            }
        }
    }
}

fn is_transient(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::OperationTimedOut
    )
}

impl LogReader for KafkaReader {
    /// Checks `offset` against the partition's watermarks, then re-assigns the consumer there
    /// (dropping anything prefetched from the old position).
    fn seek(&mut self, offset: u64) -> Result<(), LogError> {
        let (start_offset, end_offset) = self.watermarks()?;
        if offset < start_offset || offset > end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start_offset,
                end_offset,
            });
        }
        self.assign(offset)
    }

    /// Waits up to `timeout` for a first record, then takes whatever else is already fetched,
    /// up to `max_records`. Offsets are strictly increasing from the current position; they are
    /// consecutive unless the topic holds transaction markers (transactional writers).
    fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<Vec<LogRecord>, LogError> {
        if let Some(error) = self.deferred_error.take() {
            return Err(error);
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut records = Vec::new();
        while records.len() < max_records {
            let wait = match (records.is_empty(), deadline) {
                (false, _) => Duration::ZERO,
                (true, Some(deadline)) => deadline.saturating_duration_since(Instant::now()),
                (true, None) => Duration::from_secs(3600),
            };
            let error = match self.consumer.poll(wait) {
                None if !records.is_empty() || wait.is_zero() => break,
                None => continue,
                Some(Ok(message)) => {
                    let offset =
                        u64::try_from(message.offset()).expect("a fetched record has an offset");
                    if offset < self.position {
                        continue; // left over from before a seek, or the start of a fetched batch
                    }
                    let timestamp_ms = message
                        .timestamp()
                        .to_millis()
                        .and_then(|ms| u64::try_from(ms).ok())
                        .unwrap_or(0);
                    let payload = message.payload().unwrap_or_default().to_vec();
                    records.push(LogRecord {
                        offset,
                        timestamp_ms,
                        payload,
                    });
                    self.position = offset + 1;
                    self.delivered_since_assign = true;
                    continue;
                }
                Some(Err(error)) => error,
            };
            if let Some(error) = self.consumer_error(error) {
                if records.is_empty() {
                    return Err(error);
                }
                self.deferred_error = Some(error);
                break;
            }
        }
        self.step_over_markers();
        Ok(records)
    }

    fn position(&self) -> u64 {
        self.position
    }

    fn end_offset(&self) -> Result<u64, LogError> {
        Ok(self.watermarks()?.1)
    }
}

/// Drives one future to completion on the calling thread (admin calls only: their futures are
/// completed by rdkafka's own polling thread).
fn block_on<F: Future>(future: F) -> F::Output {
    struct ThreadWaker(Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut context = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A topic as `open` creates it, as the broker describes it.
    fn sound_configs() -> Vec<(String, String)> {
        [
            ("cleanup.policy", "delete"),
            ("retention.ms", "-1"),
            ("retention.bytes", "-1"),
            ("message.timestamp.type", "LogAppendTime"),
            ("min.insync.replicas", "2"),
            ("unclean.leader.election.enable", "false"),
        ]
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .to_vec()
    }

    #[test]
    fn only_a_writer_without_transactions_lingers() {
        let mut options = KafkaOptions::new("broker:9092", "outcomes");
        options.linger = Duration::from_millis(2);
        assert_eq!(options.producer_linger(), Duration::from_millis(2));
        options.transactional_id = Some("engine-0".into());
        assert_eq!(options.producer_linger(), Duration::ZERO);
    }

    #[test]
    fn readers_wait_briefly_for_records_unless_the_deployment_says_otherwise() {
        let mut options = KafkaOptions::new("broker:9092", "outcomes");
        let config = reader_config(&options);
        assert_eq!(config.get("fetch.wait.max.ms"), Some("20"));
        assert_eq!(config.get("isolation.level"), Some("read_committed"));
        options
            .client_properties
            .push(("fetch.wait.max.ms".into(), "100".into()));
        assert_eq!(
            reader_config(&options).get("fetch.wait.max.ms"),
            Some("100")
        );
    }

    fn options() -> KafkaOptions {
        let mut options = KafkaOptions::new("broker:9092", "requests");
        options.replication_factor = 3;
        options.min_insync_replicas = 2;
        options
    }

    /// The setting named by the refusal of a topic with `replicas` replicas and `changed`
    /// configuration values (`None`: accepted).
    #[track_caller]
    fn check(
        options: &KafkaOptions,
        replicas: usize,
        changed: &[(&str, &str)],
        refused: Option<&str>,
    ) {
        let mut configs = sound_configs();
        for (name, value) in changed {
            match configs.iter_mut().find(|(existing, _)| existing == name) {
                Some(entry) => entry.1 = value.to_string(),
                None => configs.push((name.to_string(), value.to_string())),
            }
        }
        match (check_topic(options, replicas, &configs), refused) {
            (Ok(()), None) => {}
            (Err(LogError::TopicSetting { setting, topic, .. }), Some(expected)) => {
                assert_eq!((setting, topic.as_str()), (expected, "requests"));
            }
            (result, expected) => panic!("expected {expected:?}, got {result:?}"),
        }
    }

    #[test]
    fn a_topic_that_cannot_keep_the_log_is_refused_naming_the_setting() {
        let options = options();
        check(&options, 3, &[], None);
        check(
            &options,
            3,
            &[("cleanup.policy", "compact")],
            Some("cleanup.policy"),
        );
        check(
            &options,
            3,
            &[("cleanup.policy", "compact,delete")],
            Some("cleanup.policy"),
        );
        check(
            &options,
            3,
            &[("retention.ms", "604800000")],
            Some("retention.ms"),
        );
        check(
            &options,
            3,
            &[("retention.bytes", "1073741824")],
            Some("retention.bytes"),
        );
        check(
            &options,
            3,
            &[("message.timestamp.type", "CreateTime")],
            Some("message.timestamp.type"),
        );
        check(&options, 2, &[], Some("replication factor"));
        check(&options, 4, &[], None);
        check(
            &options,
            3,
            &[("min.insync.replicas", "1")],
            Some("min.insync.replicas"),
        );
        check(&options, 3, &[("min.insync.replicas", "3")], None);
        check(
            &options,
            3,
            &[("unclean.leader.election.enable", "true")],
            Some("unclean.leader.election.enable"),
        );
        check(
            &options,
            3,
            &[("retention.ms", "forever")],
            Some("retention.ms"),
        );
    }

    #[test]
    fn a_finite_retention_is_accepted_from_its_configured_minimum() {
        let mut options = options();
        options.retention_ms_min = Some(7 * 24 * 3_600_000);
        options.retention_bytes_min = Some(1 << 40);
        check(&options, 3, &[("retention.ms", "604800000")], None);
        check(
            &options,
            3,
            &[("retention.ms", "604799999")],
            Some("retention.ms"),
        );
        check(&options, 3, &[("retention.ms", "-1")], None);
        check(&options, 3, &[("retention.bytes", "1099511627776")], None);
        check(
            &options,
            3,
            &[("retention.bytes", "1099511627775")],
            Some("retention.bytes"),
        );
    }

    /// A topic created with the configured retention (issue 23) passes its own check, and
    /// so does one that keeps records longer; a shorter one does not.
    #[test]
    fn the_configured_retention_is_the_minimum_when_none_is_given() {
        let mut options = options();
        options.retention_ms = Some(30 * 24 * 3_600_000);
        check(&options, 3, &[("retention.ms", "2592000000")], None);
        check(&options, 3, &[("retention.ms", "2592000001")], None);
        check(&options, 3, &[("retention.ms", "-1")], None);
        check(
            &options,
            3,
            &[("retention.ms", "2591999999")],
            Some("retention.ms"),
        );
        // An explicit minimum still decides.
        options.retention_ms_min = Some(1_000);
        check(&options, 3, &[("retention.ms", "1000")], None);
    }

    #[test]
    fn a_setting_the_broker_does_not_report_is_refused_naming_it() {
        let options = options();
        let configs: Vec<(String, String)> = sound_configs()
            .into_iter()
            .filter(|(name, _)| name != "message.timestamp.type")
            .collect();
        match check_topic(&options, 3, &configs) {
            Err(LogError::TopicSetting { setting, .. }) => {
                assert_eq!(setting, "message.timestamp.type")
            }
            other => panic!("{other:?}"),
        }
    }
}
