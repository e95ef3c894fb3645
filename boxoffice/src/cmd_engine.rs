//! `boxoffice engine [--role primary|standby]`: the engine runtime alone, on the configured
//! log. Also the helpers that open the configured logs and snapshot store, shared by the
//! offline tools (`replay`, `snapshot`, `log export`) and by `serve`.
//!
//! Embedded mode keeps everything under the data directory: `<data_dir>/requests`,
//! `<data_dir>/outcomes` (RocksDB logs) and `<data_dir>/snapshots`. Kafka mode uses the
//! `[kafka]` topics and still keeps snapshots in `<data_dir>/snapshots`.

use crate::settings::{KafkaSettings, LogKind, Settings};
use requestlog::{EmbeddedLog, EmbeddedOptions, KafkaLog, LogError};
use runtime::{Logs, OpenLog, Role, Runtime, RuntimeError, RuntimeOptions};
use snapshotter::{RocksStore, RocksStoreOptions, SnapshotError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The error of the offline tools and the `engine` command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ToolError {
    #[error("{what}: {source}")]
    Log { what: String, source: LogError },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn log_error(what: impl Into<String>) -> impl FnOnce(LogError) -> ToolError {
    let what = what.into();
    move |source| ToolError::Log { what, source }
}

/// The two logs as configured.
pub(crate) struct ConfiguredLogs {
    pub(crate) requests: Arc<dyn OpenLog>,
    pub(crate) outcomes: Arc<dyn OpenLog>,
}

fn embedded(dir: PathBuf, options: EmbeddedOptions) -> Result<Arc<dyn OpenLog>, ToolError> {
    let log = EmbeddedLog::open(&dir, options).map_err(log_error(format!(
        "cannot open the log in {}",
        dir.display()
    )))?;
    Ok(Arc::new(log))
}

fn kafka(settings: &KafkaSettings, topic: &str) -> Result<Arc<dyn OpenLog>, ToolError> {
    Ok(Arc::new(kafka_log(settings, topic)?))
}

/// The engine's outcomes topic: its one writer is the primary's publisher, which appends
/// one batch at a time and waits for it, so nothing else could join a batch and a linger
/// would only delay each one (transactional or not).
fn kafka_outcomes(settings: &KafkaSettings) -> Result<Arc<dyn OpenLog>, ToolError> {
    let topic = &settings.outcomes_topic;
    let mut options = settings.options(topic);
    options.linger = std::time::Duration::ZERO;
    if settings.outcomes_transactional {
        options.transactional_id = Some(settings.transactional_id.clone());
    }
    Ok(Arc::new(open_kafka(settings, options)?))
}

fn kafka_log(settings: &KafkaSettings, topic: &str) -> Result<KafkaLog, ToolError> {
    open_kafka(settings, settings.options(topic))
}

fn open_kafka(
    settings: &KafkaSettings,
    options: requestlog::KafkaOptions,
) -> Result<KafkaLog, ToolError> {
    let topic = options.topic.clone();
    KafkaLog::open(options).map_err(log_error(format!(
        "cannot open Kafka topic {topic} on {}",
        settings.brokers
    )))
}

/// The requests topic (Kafka mode), for replica announcements: each `engine` announces
/// its node there ([`requestlog::ReplicaAnnouncer`]) and `promote` refuses a node none
/// has announced.
pub(crate) fn requests_topic(settings: &Settings) -> Result<KafkaLog, ToolError> {
    kafka_log(&settings.kafka, &settings.kafka.requests_topic)
}

pub(crate) fn create_data_dir(data_dir: &Path) -> Result<(), ToolError> {
    std::fs::create_dir_all(data_dir).map_err(|source| ToolError::Io {
        what: format!("cannot create {}", data_dir.display()),
        source,
    })
}

/// Opens the requests and outcomes logs per `[log]` (and `[kafka]`). In Kafka mode with
/// `kafka.outcomes_transactional` the outcomes writer is transactional, so a second engine
/// fences the first.
pub(crate) fn open_logs(settings: &Settings, data_dir: &Path) -> Result<ConfiguredLogs, ToolError> {
    match settings.log.kind {
        LogKind::Embedded => {
            create_data_dir(data_dir)?;
            Ok(ConfiguredLogs {
                // The ingress's personal-data store lives in the requests log's database
                // (`ingress::PERSONAL_DATA_TABLES`): a new user's entry is written in the
                // commit of its request, one fsync for both.
                requests: embedded(
                    data_dir.join("requests"),
                    EmbeddedOptions {
                        hosted_tables: ingress::PERSONAL_DATA_TABLES.map(String::from).to_vec(),
                        ..settings.synced_log_options()
                    },
                )?,
                // Outcomes are a function of the requests log: only the requests log is
                // fsync'd on the write path; the snapshot thread makes outcomes durable
                // before a snapshot claims them, and a restart publishes what a machine
                // crash lost again (`runtime`).
                outcomes: embedded(data_dir.join("outcomes"), settings.unsynced_log_options())?,
            })
        }
        LogKind::Kafka => {
            let kafka_settings = &settings.kafka;
            Ok(ConfiguredLogs {
                requests: kafka(kafka_settings, &kafka_settings.requests_topic)?,
                outcomes: kafka_outcomes(kafka_settings)?,
            })
        }
    }
}

/// The control log (`engine::control`) of a deployment of more than one shard: embedded
/// in `<data_dir>/control`, or the Kafka topic `<requests_topic>.control` (the
/// configured base name, whatever the shard).
pub(crate) fn open_control_log(
    settings: &Settings,
    data_dir: &Path,
) -> Result<Arc<dyn OpenLog>, ToolError> {
    match settings.log.kind {
        LogKind::Embedded => {
            create_data_dir(data_dir)?;
            embedded(data_dir.join("control"), settings.synced_log_options())
        }
        LogKind::Kafka => kafka(&settings.kafka, &settings.kafka.control_topic()),
    }
}

pub(crate) fn open_snapshots(
    settings: &Settings,
    data_dir: &Path,
) -> Result<RocksStore, ToolError> {
    create_data_dir(data_dir)?;
    let options = RocksStoreOptions {
        keep: settings.snapshot.keep.max(1),
        ..RocksStoreOptions::default()
    };
    Ok(RocksStore::open(data_dir.join("snapshots"), options)?)
}

pub(crate) fn runtime_options(settings: &Settings, role: Role) -> RuntimeOptions {
    RuntimeOptions {
        role,
        node: settings.engine.node.clone(),
        tick_interval_ms: settings.engine.tick_interval_ms,
        snapshot_every_records: settings.snapshot.every_records,
        snapshot_every_ms: settings.snapshot.every_ms,
        apply_before_durable: settings.engine.apply_before_durable,
        ..RuntimeOptions::new(settings.engine_config())
    }
}

/// How often `engine` looks at its status (role changes are printed when seen).
const STATUS_EVERY: Duration = Duration::from_millis(200);
/// How often a replica announces itself again (Kafka keeps an announcement for
/// `offsets.retention.minutes` after the last one, 7 days by default).
const ANNOUNCE_EVERY: Duration = Duration::from_secs(60);

/// A replica's announcement on the requests topic (Kafka mode), repeated every
/// `ANNOUNCE_EVERY` with the replica's next offset to apply. A failure is logged, not
/// fatal: the replica runs, and `promote --node` refuses it until an announcement lands.
struct Announcement {
    announcer: requestlog::ReplicaAnnouncer,
    last: Option<std::time::Instant>,
}

impl Announcement {
    fn new(settings: &Settings) -> Result<Option<Announcement>, ToolError> {
        if settings.log.kind != LogKind::Kafka {
            return Ok(None);
        }
        let announcer = requests_topic(settings)?
            .replica_announcer(&settings.engine.node)
            .map_err(log_error("cannot create the replica announcer"))?;
        Ok(Some(Announcement {
            announcer,
            last: None,
        }))
    }

    fn announce_if_due(&mut self, status: &runtime::EngineStatus) {
        if self
            .last
            .is_some_and(|last| last.elapsed() < ANNOUNCE_EVERY)
        {
            return;
        }
        self.last = Some(std::time::Instant::now());
        let next_offset = status.applied_offset.map_or(0, |applied| applied + 1);
        if let Err(error) = self.announcer.announce(next_offset) {
            tracing::warn!(%error, "cannot announce this replica on the requests topic; `boxoffice promote --node` refuses it until it can");
        }
    }
}

/// Serves the operator endpoints on their own thread and tokio runtime (the engine's
/// threads never wait on it). Prints `operator endpoint on http://ADDR` once bound.
fn serve_operator(
    settings: &Settings,
    handle: runtime::RuntimeHandle,
    requests: Arc<dyn OpenLog>,
    stop: crossbeam_channel::Receiver<()>,
) -> Result<std::thread::JoinHandle<()>, ToolError> {
    let io_error = |what: String| move |source| ToolError::Io { what, source };
    let listen = settings.engine.operator_listen.clone();
    let http = crate::cmd_ingress::http_runtime(
        "operator-http",
        1,
        settings.http.background_threads_batch,
    )
    .map_err(io_error("cannot start the operator HTTP runtime".into()))?;
    let listener = http
        .block_on(tokio::net::TcpListener::bind(&listen))
        .map_err(io_error(format!("cannot listen on {listen}")))?;
    let address = listener
        .local_addr()
        .map_err(io_error("cannot read the operator address".into()))?;
    let router = crate::operator_http::router(
        settings.shard,
        settings.shards,
        handle,
        requests,
        &settings.auth.operator_key,
    );
    println!("operator endpoint on http://{address}");
    tracing::info!(%address, "operator endpoint listening");
    std::thread::Builder::new()
        .name("operator-http".into())
        .spawn(move || {
            crate::cmd_ingress::serve_on_workers(&http, async move {
                let stopped = async move {
                    let _ = tokio::task::spawn_blocking(move || stop.recv()).await;
                };
                if let Err(error) = axum::serve(listener, router)
                    .with_graceful_shutdown(stopped)
                    .await
                {
                    tracing::error!(%error, "the operator endpoint failed");
                }
            });
        })
        .map_err(io_error("cannot start the operator thread".into()))
}

/// Automatic fail-over (`engine.auto_promote_after_ms` > 0) reads the outcomes log's end
/// and gives it, with the time, to the runtime's role machine (`runtime/src/role.rs`
/// holds the rule), which appends a `Promote` record naming this standby when outcomes
/// it applied have gone unanswered for that long.
struct AutoPromote {
    outcomes: Box<dyn requestlog::LogReader>,
    started: std::time::Instant,
}

impl AutoPromote {
    fn new(outcomes: &dyn OpenLog) -> Result<AutoPromote, ToolError> {
        let outcomes = outcomes
            .open_reader()
            .map_err(log_error("cannot read the outcomes log"))?;
        Ok(AutoPromote {
            outcomes,
            started: std::time::Instant::now(),
        })
    }

    fn check(&mut self, handle: &runtime::RuntimeHandle) {
        let end = match self.outcomes.end_offset() {
            Ok(end) => end,
            Err(error) => {
                tracing::warn!(%error, "automatic fail-over cannot read the outcomes log's end");
                return;
            }
        };
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match handle.auto_promote(end, now_ms) {
            Ok(Some(offset)) => {
                tracing::warn!(
                    offset,
                    "no outcome published while requests wait: promoting this standby"
                );
                println!("node {} auto-promoting at offset {offset}", handle.node());
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "automatic promotion failed"),
        }
    }
}

pub(crate) fn run(settings: &Settings, data_dir: &Path, role: Role) -> Result<(), ToolError> {
    crate::scheduling::serving_process(settings).map_err(ToolError::Invalid)?;
    let logs = open_logs(settings, data_dir)?;
    let store = open_snapshots(settings, data_dir)?;
    let mut auto_promote = match settings.engine.auto_promote_after_ms {
        0 => None,
        _ => Some(AutoPromote::new(logs.outcomes.as_ref())?),
    };
    let runtime = Runtime::start(
        RuntimeOptions {
            auto_promote_after_ms: settings.engine.auto_promote_after_ms,
            ..runtime_options(settings, role)
        },
        Logs {
            requests: Arc::clone(&logs.requests),
            outcomes: Arc::clone(&logs.outcomes),
        },
        Box::new(store),
    )?;
    let (interrupted, interrupt) = crossbeam_channel::bounded(1);
    ctrlc::set_handler(move || {
        let _ = interrupted.try_send(());
    })
    .map_err(|error| ToolError::Invalid(format!("cannot install the signal handler: {error}")))?;
    let handle = runtime.handle();
    let (operator_stop, operator_stopped) = crossbeam_channel::bounded::<()>(0);
    let operator = serve_operator(
        settings,
        handle.clone(),
        Arc::clone(&logs.requests),
        operator_stopped,
    )?;
    let mut announcement = Announcement::new(settings)?;
    let mut last_role = None;
    loop {
        let status = handle.status();
        if let Some(announcement) = announcement.as_mut() {
            announcement.announce_if_due(&status);
        }
        if last_role != Some(status.role) {
            // One line per role change, on stdout for scripts and tests.
            println!("node {} is {}", handle.node(), status.role.as_str());
            last_role = Some(status.role);
        }
        if status.failure.is_some() {
            break;
        }
        if let Some(auto_promote) = auto_promote.as_mut() {
            auto_promote.check(&handle);
        }
        if interrupt.recv_timeout(STATUS_EVERY).is_ok() {
            tracing::info!("interrupted: stopping the engine runtime");
            break;
        }
        tracing::debug!(
            role = status.role.as_str(),
            applied_offset = ?status.applied_offset,
            log_end_offset = status.log_end_offset,
            published_offset = ?status.published_offset,
            last_snapshot = ?status.last_snapshot.as_ref().map(|snapshot| snapshot.offset),
            state_hash = %status.state_hash,
            "engine status"
        );
    }
    drop(operator_stop);
    let _ = operator.join();
    let status = runtime.shutdown()?;
    tracing::info!(applied_offset = ?status.applied_offset, published_offset = ?status.published_offset, state_hash = %status.state_hash, "engine runtime stopped");
    Ok(())
}
