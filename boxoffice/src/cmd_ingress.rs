//! `boxoffice ingress`: the HTTP API alone, against the Kafka topics (requests topic
//! writer, outcomes topic reader); the engine runs elsewhere (`boxoffice engine`). Also
//! what `serve` shares with it: the ingress settings and the HTTP loop.

use crate::cmd_engine::{log_error, ToolError};
use crate::settings::Settings;
use ingress::{Ingress, IngressConfig, RateLimitConfig, Tenant};
use requestlog::KafkaLog;
use std::sync::Arc;
use std::time::Duration;

/// How often start-up reports progress while the read model catches up.
const CATCH_UP_REPORT_EVERY: Duration = Duration::from_secs(5);

/// The ingress's settings; an unreadable `http.trusted_proxies` entry is an error naming it.
pub(crate) fn ingress_config(settings: &Settings) -> Result<IngressConfig, String> {
    let rate = &settings.rate_limit;
    let http = &settings.http;
    let trusted_proxies = http
        .trusted_proxies
        .iter()
        .map(|entry| ingress::parse_trusted_proxy(entry))
        .collect::<Result<_, _>>()?;
    Ok(IngressConfig {
        body_bytes_max: http.body_bytes_max,
        outcome_timeout: Duration::from_millis(http.outcome_timeout_ms),
        control_lag_max: Duration::from_millis(http.control_lag_ms_max),
        request_timeout: Duration::from_millis(http.request_timeout_ms),
        trusted_proxies,
        long_polls_per_user_max: http.long_polls_per_user_max,
        long_polls_per_address_max: http.long_polls_per_address_max,
        streams_per_address_max: http.streams_per_address_max,
        notifications_per_user_max: http.notifications_per_user_max,
        notification_users_max: http.notification_users_max,
        operator_key: settings.auth.operator_key.clone(),
        user_token_secret: settings.auth.user_token_secret.clone(),
        pseudonym_key: settings.privacy.pseudonym_key.clone(),
        tenants: settings
            .auth
            .tenants
            .iter()
            .map(|tenant| Tenant {
                id: tenant.id.clone(),
                admin_key: tenant.admin_key.clone(),
            })
            .collect(),
        rate_limit: RateLimitConfig {
            enabled: rate.enabled,
            per_user_per_second: rate.per_user_per_second,
            per_user_burst: rate.per_user_burst,
            per_address_per_second: rate.per_address_per_second,
            per_address_burst: rate.per_address_burst,
            ..RateLimitConfig::default()
        },
        engine: settings.engine_config(),
        development: settings.development,
        webhook_private_addresses_allowed: settings.development
            || settings.effects.private_addresses_allowed,
        state_dir: Some(ingress_state_dir(&settings.data_dir)),
        snapshot_every_outcomes: settings.snapshot.ingress_every_outcomes,
        snapshot_interval: Duration::from_millis(settings.snapshot.ingress_every_ms),
        snapshots_keep: settings.snapshot.ingress_keep,
        currency_default: settings.payments.currency.clone(),
        ..IngressConfig::default()
    })
}

/// Where ingresses keep their state, each in a slot of its own: the idempotency index and
/// read-model snapshots (`ingress::follower_state`).
pub(crate) fn ingress_state_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("ingress")
}

/// An HTTP runtime: `worker_threads` threads named `name`, which answer under the default
/// scheduling policy when the process's other threads run as batch (`crate::scheduling`).
pub(crate) fn http_runtime(
    name: &str,
    worker_threads: usize,
    background_threads_batch: bool,
) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(worker_threads)
        .enable_all()
        .thread_name(name);
    if background_threads_batch {
        builder.on_thread_start(crate::scheduling::answering);
    }
    builder.build()
}

/// Runs `serving` (a server's accept loop) as a task on `runtime`'s workers and waits for
/// it on this thread. Not `block_on(serving)`: a `block_on` future runs on the thread that
/// calls it, which in `serve`, `ingress` and `engine` runs under `SCHED_BATCH` with the
/// pipeline (`crate::scheduling`), so a new connection would wait for a running thread's
/// slice before it was accepted whenever every core is busy; the workers answer under
/// the default policy. A panic of the task is resumed here.
pub(crate) fn serve_on_workers<F>(runtime: &tokio::runtime::Runtime, serving: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    runtime.block_on(async {
        match tokio::spawn(serving).await {
            Ok(output) => output,
            Err(error) => match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // The task is only cancelled by the runtime's shutdown, which cannot
                // begin while this `block_on` holds the runtime.
                Err(error) => panic!("the accept loop's task ended without an answer: {error}"),
            },
        }
    })
}

/// Binds `listen`, waits until the read model has caught up with the outcomes log, prints
/// `listening on http://ADDR`, and serves until SIGINT or SIGTERM; in-flight requests
/// finish first. `before_ready` runs on the HTTP runtime before the catch-up wait (serve
/// waits for its engine there).
pub(crate) fn serve_http(
    listen: &str,
    ingress: &Ingress,
    extra: axum::Router,
    worker_threads: usize,
    background_threads_batch: bool,
    before_ready: impl FnOnce() + Send,
) -> Result<(), ToolError> {
    let io_error = |what: String| move |source| ToolError::Io { what, source };
    let runtime = http_runtime("http", worker_threads, background_threads_batch)
        .map_err(io_error("cannot start the HTTP runtime".into()))?;
    let listener = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(io_error(format!("cannot listen on {listen}")))?;
        let address = listener.local_addr().map_err(io_error("cannot read the listening address".into()))?;
        before_ready();
        while !ingress.wait_caught_up(CATCH_UP_REPORT_EVERY).await {
            tracing::info!(applied_offset = ?ingress.state().applied_offset(), "the read model is catching up with the outcomes log");
        }
        println!("listening on http://{address}");
        tracing::info!(%address, "ready");
        Ok::<_, ToolError>(listener)
    })?;
    serve_on_workers(
        &runtime,
        ingress::serve_with(listener, ingress.state(), extra, shutdown_signal()),
    )
    .map_err(io_error("the HTTP server failed".into()))
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

pub(crate) fn run(settings: &Settings, listen: Option<String>) -> Result<(), ToolError> {
    crate::scheduling::serving_process(settings).map_err(ToolError::Invalid)?;
    let config = ingress_config(settings).map_err(ToolError::Invalid)?;
    config.validate().map_err(ToolError::Invalid)?;
    // Every shard's requests topic (written) and outcomes topic (followed): ids say their
    // shard, so this ingress routes each request itself.
    let mut shards = Vec::new();
    for shard in 0..settings.shards {
        let kafka = settings.for_shard(shard).map_err(ToolError::Invalid)?.kafka;
        let requests = KafkaLog::open(kafka.options(&kafka.requests_topic)).map_err(log_error(
            format!("cannot open Kafka topic {}", kafka.requests_topic),
        ))?;
        let outcomes = KafkaLog::open(kafka.options(&kafka.outcomes_topic)).map_err(log_error(
            format!("cannot open Kafka topic {}", kafka.outcomes_topic),
        ))?;
        let writer = requests
            .writer()
            .map_err(log_error("cannot open the requests topic's writer"))?;
        let reader = outcomes
            .reader()
            .map_err(log_error("cannot open the outcomes topic's reader"))?;
        // The engine runs in another process: the operator endpoints answer 503 here.
        shards.push(ingress::ShardLogs {
            writer: Arc::new(writer),
            outcomes: Box::new(reader),
            outcomes_log_id: Some(outcomes.log_id().to_string()),
            engine: None,
        });
    }
    // The control topic, in every deployment: tenant placements and webhook endpoints.
    let control_log = crate::cmd_engine::open_control_log(settings, &settings.data_dir)?;
    let control = Some(ingress::ControlLogs {
        writer: control_log
            .open_writer()
            .map_err(log_error("cannot open the control topic's writer"))?,
        reader: control_log
            .open_reader()
            .map_err(log_error("cannot open the control topic's reader"))?,
    });
    let gateway = settings
        .payments
        .gateway(settings.development)
        .map_err(ToolError::Invalid)?;
    let ingress = Ingress::start_shards(config, shards, control).map_err(ToolError::Invalid)?;
    if let Some(gateway) = gateway {
        ingress.set_payments(settings.payments.ingress(gateway));
    }
    let listen = listen.unwrap_or_else(|| settings.http.listen.clone());
    let served = serve_http(
        &listen,
        &ingress,
        axum::Router::new(),
        settings.http.worker_threads_resolved(),
        settings.http.background_threads_batch,
        || {},
    );
    ingress.stop();
    served
}
