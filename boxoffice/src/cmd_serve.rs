//! `boxoffice serve`: everything in one process on the embedded log — the engine runtime
//! (reader, engine, publisher, ticker, snapshots) on `<data_dir>/requests`,
//! `<data_dir>/outcomes` and `<data_dir>/snapshots`, the HTTP ingress in front of it
//! (its idempotency index and read-model snapshots in `<data_dir>/ingress`), the control
//! log (`<data_dir>/control`) and the effects worker (webhooks, `<data_dir>/effects`).
//!
//! Start-up: open the logs and the snapshot store, start the runtime (it restores the
//! newest snapshot and replays the tail), start the ingress (it loads its newest read-model
//! snapshot and its follower reads the outcomes after it), wait until both have caught up, then print `listening on http://ADDR`.
//! Shutdown (SIGINT/SIGTERM): stop accepting, finish in-flight requests, stop the ingress,
//! then the runtime (which publishes what it applied).

use crate::cmd_engine::{self, log_error, ToolError};
use crate::cmd_ingress;
use crate::settings::{LogKind, Settings};
use ingress::{EngineControl, Ingress, IngressConfig};
use runtime::{Logs, Role, Runtime, RuntimeHandle};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The runtime as readiness sees it.
struct RuntimeControl(RuntimeHandle);

impl EngineControl for RuntimeControl {
    fn failure(&self) -> Option<String> {
        self.0.status().failure
    }

    fn recent_outcomes(&self) -> Option<engine::wire::SharedRecentOutcomes> {
        Some(self.0.recent_outcomes())
    }
}

/// How often start-up reports the engine's replay progress.
const REPLAY_REPORT_EVERY: Duration = Duration::from_secs(5);

pub(crate) fn run(
    settings: &Settings,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
) -> Result<(), ToolError> {
    crate::scheduling::serving_process(settings).map_err(ToolError::Invalid)?;
    let data_dir = data_dir.unwrap_or_else(|| settings.data_dir.clone());
    let listen = listen.unwrap_or_else(|| settings.http.listen.clone());
    let ingress_config = IngressConfig {
        state_dir: Some(cmd_ingress::ingress_state_dir(&data_dir)),
        ..cmd_ingress::ingress_config(settings).map_err(ToolError::Invalid)?
    };
    ingress_config.validate().map_err(ToolError::Invalid)?;
    if settings.log.kind != LogKind::Embedded {
        tracing::warn!("serve always runs on the embedded log; log.kind = kafka applies to `engine` and `ingress`");
    }
    let mut embedded = settings.clone();
    embedded.log.kind = LogKind::Embedded;
    embedded.data_dir = data_dir.clone();
    // One engine runtime per shard, each on its own logs and snapshots (shard K under
    // `<data_dir>/shard-K`, shard 0 in `<data_dir>` as a single-shard deployment always
    // had them).
    let mut runtimes = Vec::new();
    let mut shard_logs = Vec::new();
    let mut first_requests = None;
    let mut outcome_logs = Vec::new();
    for shard in 0..settings.shards {
        let shard_settings = embedded.for_shard(shard).map_err(ToolError::Invalid)?;
        let logs = cmd_engine::open_logs(&shard_settings, &shard_settings.data_dir)?;
        let store = cmd_engine::open_snapshots(&shard_settings, &shard_settings.data_dir)?;
        let runtime = Runtime::start(
            cmd_engine::runtime_options(&shard_settings, Role::Primary),
            Logs {
                requests: Arc::clone(&logs.requests),
                outcomes: Arc::clone(&logs.outcomes),
            },
            Box::new(store),
        )?;
        let handle = runtime.handle();
        let writer = logs
            .requests
            .open_writer()
            .map_err(log_error("cannot open the requests log's writer"))?;
        let reader = logs
            .outcomes
            .open_reader()
            .map_err(log_error("cannot open the outcomes log's reader"))?;
        shard_logs.push(ingress::ShardLogs {
            writer,
            outcomes: reader,
            outcomes_log_id: Some(logs.outcomes.log_id()),
            engine: Some(Arc::new(RuntimeControl(handle.clone()))),
        });
        first_requests.get_or_insert_with(|| Arc::clone(&logs.requests));
        outcome_logs.push(Arc::clone(&logs.outcomes));
        runtimes.push((shard, runtime));
    }
    // The control log, in every deployment: tenant placements and webhook endpoints.
    let control_log = cmd_engine::open_control_log(&embedded, &data_dir)?;
    let control = Some(ingress::ControlLogs {
        writer: control_log
            .open_writer()
            .map_err(log_error("cannot open the control log's writer"))?,
        reader: control_log
            .open_reader()
            .map_err(log_error("cannot open the control log's reader"))?,
    });
    let payments_gateway = settings
        .payments
        .gateway(settings.development)
        .map_err(ToolError::Invalid)?;
    let ingress =
        Ingress::start_shards(ingress_config, shard_logs, control).map_err(ToolError::Invalid)?;
    if let Some(gateway) = &payments_gateway {
        ingress.set_payments(settings.payments.ingress(Arc::clone(gateway)));
    }
    // The effects worker: every shard's outcomes and the control log, its store in
    // `<data_dir>/effects`.
    let effects = match settings.effects.enabled {
        false => None,
        true => {
            let outcomes = outcome_logs
                .iter()
                .map(|log| log.open_reader())
                .collect::<Result<Vec<_>, _>>()
                .map_err(log_error(
                    "cannot open an outcomes log's reader for the effects worker",
                ))?;
            let worker = effects::Worker::start_with_gateway(
                crate::cmd_effects::worker_config(settings, &data_dir),
                effects::WorkerLogs {
                    outcomes,
                    control_reader: control_log
                        .open_reader()
                        .map_err(log_error("cannot open the control log's reader"))?,
                    control_writer: control_log
                        .open_writer()
                        .map_err(log_error("cannot open the control log's writer"))?,
                    recent_outcomes: runtimes
                        .iter()
                        .map(|(_, runtime)| runtime.handle().recent_outcomes())
                        .collect(),
                },
                payments_gateway
                    .clone()
                    .map(|gateway| effects::refunds::RefundGateway {
                        gateway,
                        currency: settings.payments.currency.clone(),
                    }),
            )
            .map_err(|error| ToolError::Invalid(error.to_string()))?;
            let worker = Arc::new(worker);
            ingress.set_effects(Arc::new(crate::cmd_effects::EffectsHandle(Arc::clone(
                &worker,
            ))));
            Some(worker)
        }
    };
    let handles: Vec<(u32, RuntimeHandle)> = runtimes
        .iter()
        .map(|(shard, runtime)| (*shard, runtime.handle()))
        .collect();
    let wait_for_engine = || {
        for (shard, handle) in &handles {
            loop {
                let (status, done) = handle.wait_for(REPLAY_REPORT_EVERY, |status| {
                    status.failure.is_some()
                        || (status.role == Role::Primary
                            && status.caught_up()
                            && status.published_all())
                });
                if done || status.failure.is_some() {
                    break;
                }
                tracing::info!(shard, applied_offset = ?status.applied_offset, log_end_offset = status.log_end_offset, "the engine is replaying the requests log");
            }
        }
    };
    let operator = crate::operator_http::engine_routes(
        handles.clone(),
        first_requests.expect("at least one shard"),
        &settings.auth.operator_key,
    );
    let served = cmd_ingress::serve_http(
        &listen,
        &ingress,
        operator,
        settings.http.worker_threads_resolved(),
        settings.http.background_threads_batch,
        wait_for_engine,
    );
    ingress.stop();
    if let Some(worker) = effects {
        worker.stop();
    }
    let mut stopped = Ok(());
    for (shard, runtime) in runtimes {
        match runtime.shutdown() {
            Ok(status) => {
                tracing::info!(shard, applied_offset = ?status.applied_offset, state_hash = %status.state_hash, "stopped");
            }
            Err(error) => {
                if stopped.is_ok() {
                    stopped = Err(error);
                }
            }
        }
    }
    served?;
    stopped?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use requestlog::{EmbeddedLog, EmbeddedOptions};
    use runtime::{OpenLog, RuntimeOptions};
    use serde_json::{json, Value};
    use tower::ServiceExt;

    /// An outcomes log that refuses every append once armed, as a payload limit once did
    /// with a large outcome.
    struct Armed {
        log: Arc<dyn OpenLog>,
        armed: Arc<std::sync::atomic::AtomicBool>,
    }

    struct ArmedWriter {
        writer: Arc<dyn requestlog::LogWriter>,
        armed: Arc<std::sync::atomic::AtomicBool>,
    }

    impl OpenLog for Armed {
        fn open_reader(&self) -> Result<Box<dyn requestlog::LogReader>, requestlog::LogError> {
            self.log.open_reader()
        }

        fn open_writer(&self) -> Result<Arc<dyn requestlog::LogWriter>, requestlog::LogError> {
            Ok(Arc::new(ArmedWriter {
                writer: self.log.open_writer()?,
                armed: Arc::clone(&self.armed),
            }))
        }

        fn log_id(&self) -> String {
            self.log.log_id()
        }
    }

    impl requestlog::LogWriter for ArmedWriter {
        fn append(
            &self,
            payloads: Vec<Vec<u8>>,
        ) -> Result<Vec<requestlog::Appended>, requestlog::LogError> {
            if self.armed.load(std::sync::atomic::Ordering::Acquire) {
                return Err(requestlog::LogError::PayloadTooLarge {
                    index: 0,
                    size_bytes: payloads[0].len(),
                    size_max_bytes: 8,
                });
            }
            self.writer.append(payloads)
        }

        fn end_offset(&self) -> Result<u64, requestlog::LogError> {
            self.writer.end_offset()
        }
    }

    /// The runtime next to the ingress stops (here its outcomes log starts refusing every
    /// outcome): `/readyz` answers 503 at once, with the runtime's reason.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readyz_is_503_with_the_reason_once_the_runtime_has_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let requests: Arc<dyn OpenLog> = Arc::new(
            EmbeddedLog::open(dir.path().join("requests"), EmbeddedOptions::default()).unwrap(),
        );
        let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let outcomes: Arc<dyn OpenLog> = Arc::new(Armed {
            log: Arc::new(
                EmbeddedLog::open(dir.path().join("outcomes"), EmbeddedOptions::default()).unwrap(),
            ),
            armed: Arc::clone(&armed),
        });
        let runtime = Runtime::start(
            RuntimeOptions::new(engine::EngineConfig::default()),
            Logs {
                requests: Arc::clone(&requests),
                outcomes: Arc::clone(&outcomes),
            },
            Box::new(snapshotter::MemoryStore::new(1)),
        )
        .unwrap();
        let handle = runtime.handle();
        let ingress = Ingress::start(
            ingress::IngressConfig::default(),
            requests.open_writer().unwrap(),
            outcomes.open_reader().unwrap(),
            Some(Arc::new(RuntimeControl(handle.clone()))),
        )
        .unwrap();
        let readyz = || async {
            let response = ingress
                .router()
                .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        };
        // Before: the engine answers (the read model may still be catching up).
        let (status, body) = readyz().await;
        let readiness = match status {
            StatusCode::OK => &body,
            _ => &body["error"]["details"],
        };
        assert_eq!(
            (&readiness["engine_answering"], &readiness["engine_failure"]),
            (&json!(true), &Value::Null),
            "{body}"
        );

        armed.store(true, std::sync::atomic::Ordering::Release);
        let tick = engine::wire::encode_request(&engine::Request::new(engine::Command::Tick));
        requests.open_writer().unwrap().append(vec![tick]).unwrap();
        let (stopped, failed) = tokio::task::spawn_blocking(move || {
            handle.wait_for(Duration::from_secs(30), |status| status.failure.is_some())
        })
        .await
        .unwrap();
        assert!(failed, "{stopped:?}");
        let (status_after, body) = readyz().await;
        assert_eq!(status_after, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let error = &body["error"];
        assert_eq!(
            (
                &error["details"]["reason"],
                &error["details"]["engine_answering"]
            ),
            (&json!("engine_stopped"), &json!(false))
        );
        let message = error["message"].as_str().unwrap();
        assert!(
            message.starts_with("the engine has stopped: publishing outcomes: outcomes log: payload 0 of the append is"),
            "{message}"
        );
        assert_eq!(
            error["details"]["engine_failure"].as_str(),
            stopped.failure.as_deref()
        );
        ingress.stop();
        assert!(runtime.shutdown().is_err());
    }
}
