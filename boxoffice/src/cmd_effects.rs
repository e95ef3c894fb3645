//! The effects worker (`effects` crate): its settings, the ingress's view of it (the
//! delivery log and re-sends), and `boxoffice effects`, the worker alone next to a Kafka
//! deployment (every shard's outcomes topic and the control topic). `serve` runs it in its
//! own process unless `effects.enabled = false`.

use crate::cmd_engine::{log_error, ToolError};
use crate::settings::Settings;
use effects::{RetryPolicy, Worker, WorkerConfig, WorkerLogs};
use ingress::{EffectsControl, WebhookAttempt, WebhookDelivery};
use requestlog::KafkaLog;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn worker_config(settings: &Settings, data_dir: &Path) -> WorkerConfig {
    let effects = &settings.effects;
    WorkerConfig {
        state_dir: data_dir.join("effects"),
        policy: RetryPolicy {
            first_retry_ms: effects.first_retry_ms.max(1),
            retry_max_ms: effects.retry_max_ms.max(effects.first_retry_ms.max(1)),
            disable_after_ms: effects.disable_after_ms,
        },
        attempt_timeout: Duration::from_millis(effects.attempt_timeout_ms),
        backlog_per_endpoint_max: effects.backlog_per_endpoint_max,
        deliveries_in_flight_max: effects.deliveries_in_flight_max.max(1),
        private_addresses_allowed: settings.development || effects.private_addresses_allowed,
        seed: rand_seed(),
    }
}

/// Jitter only has to differ between workers, not be secret.
fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
        ^ u64::from(std::process::id())
}

/// The worker as the ingress's webhook routes see it.
pub(crate) struct EffectsHandle(pub(crate) Arc<Worker>);

impl EffectsControl for EffectsHandle {
    fn deliveries(&self, webhook: &str, limit: usize) -> Result<Vec<WebhookDelivery>, String> {
        let messages = self
            .0
            .deliveries(webhook, limit)
            .map_err(|error| error.to_string())?;
        Ok(messages
            .into_iter()
            .map(|message| WebhookDelivery {
                message_id: message.id,
                event_type: message.kind,
                status: if message.delivered {
                    "delivered"
                } else {
                    "pending"
                }
                .into(),
                timestamp: rfc3339(message.time_ms),
                attempts: message
                    .attempts
                    .into_iter()
                    .map(|attempt| WebhookAttempt {
                        at: rfc3339(attempt.at_ms),
                        status_code: attempt.status_code,
                        error: attempt.error,
                        latency_ms: attempt.latency_ms,
                    })
                    .collect(),
            })
            .collect())
    }

    fn resend(&self, webhook: &str, message_id: &str) -> Result<bool, String> {
        self.0
            .resend(webhook, message_id)
            .map_err(|error| error.to_string())
    }

    fn metrics_text(&self) -> String {
        self.0.metrics_text()
    }

    fn tenant_of(&self, webhook: &str) -> Option<String> {
        self.0.tenant_of(webhook)
    }
}

fn rfc3339(time_ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_ms) * 1_000_000)
        .ok()
        .and_then(|time| {
            time.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// `boxoffice effects`: the worker on the Kafka topics until SIGINT or SIGTERM, with its
/// listener (`effects.listen`: `/healthz`, `/metrics`, the delivery log and re-sends;
/// prints `effects endpoint on http://ADDR` once bound).
pub(crate) fn run(settings: &Settings) -> Result<(), ToolError> {
    let mut outcomes: Vec<Box<dyn requestlog::LogReader>> = Vec::new();
    for shard in 0..settings.shards {
        let kafka = settings.for_shard(shard).map_err(ToolError::Invalid)?.kafka;
        let log = KafkaLog::open(kafka.options(&kafka.outcomes_topic)).map_err(log_error(
            format!("cannot open Kafka topic {}", kafka.outcomes_topic),
        ))?;
        outcomes
            .push(Box::new(log.reader().map_err(log_error(
                "cannot open the outcomes topic's reader",
            ))?));
    }
    let control = crate::cmd_engine::open_control_log(settings, &settings.data_dir)?;
    let gateway = settings
        .payments
        .gateway(settings.development)
        .map_err(ToolError::Invalid)?
        .map(|gateway| effects::refunds::RefundGateway {
            gateway,
            currency: settings.payments.currency.clone(),
        });
    let worker = Worker::start_with_gateway(
        worker_config(settings, &settings.data_dir),
        WorkerLogs {
            outcomes,
            control_reader: control
                .open_reader()
                .map_err(log_error("cannot open the control topic's reader"))?,
            control_writer: control
                .open_writer()
                .map_err(log_error("cannot open the control topic's writer"))?,
            // The engine runs in another process: its outcomes are decoded.
            recent_outcomes: Vec::new(),
        },
        gateway,
    )
    .map_err(|error| ToolError::Invalid(error.to_string()))?;
    let worker = Arc::new(worker);
    let io_error = |what: String| move |source| ToolError::Io { what, source };
    let http = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("effects-http")
        .build()
        .map_err(io_error("cannot start the effects HTTP runtime".into()))?;
    let listen = settings.effects.listen.clone();
    let listener = http
        .block_on(tokio::net::TcpListener::bind(&listen))
        .map_err(io_error(format!("cannot listen on {listen}")))?;
    let address = listener.local_addr().map_err(io_error(
        "cannot read the effects listener's address".into(),
    ))?;
    let tenants = settings
        .auth
        .tenants
        .iter()
        .map(|tenant| ingress::Tenant {
            id: tenant.id.clone(),
            admin_key: tenant.admin_key.clone(),
        })
        .collect();
    let router = ingress::effects_router(
        tenants,
        settings.auth.operator_key.clone(),
        Arc::new(EffectsHandle(Arc::clone(&worker))),
    );
    println!("effects endpoint on http://{address}");
    println!("effects worker running");
    tracing::info!(%address, "effects endpoint listening");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut stop_tx = Some(stop_tx);
    ctrlc::set_handler(move || {
        if let Some(stop) = stop_tx.take() {
            let _ = stop.send(());
        }
    })
    .map_err(|error| ToolError::Invalid(format!("cannot handle signals: {error}")))?;
    let served = http.block_on(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await
    });
    worker.stop();
    served.map_err(io_error("the effects endpoint failed".into()))
}
