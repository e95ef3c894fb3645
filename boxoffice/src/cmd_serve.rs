//! `boxoffice serve`: everything in one process on the embedded log — the engine runtime
//! (reader, engine, publisher, ticker, snapshots) on `<data_dir>/requests`,
//! `<data_dir>/outcomes` and `<data_dir>/snapshots`, and the HTTP ingress in front of it.
//!
//! Start-up: open the logs and the snapshot store, start the runtime (it restores the
//! newest snapshot and replays the tail), start the ingress (its follower reads the outcomes
//! log from 0), wait until both have caught up, then print `listening on http://ADDR`.
//! Shutdown (SIGINT/SIGTERM): stop accepting, finish in-flight requests, stop the ingress,
//! then the runtime (which publishes what it applied).

use crate::cmd_engine::{self, log_error, ToolError};
use crate::cmd_ingress;
use crate::settings::{LogKind, Settings};
use ingress::{EngineControl, EngineRole, EngineStatus, Ingress, SnapshotStatus};
use runtime::{Logs, Role, Runtime, RuntimeHandle};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The runtime as the operator endpoints see it.
struct RuntimeControl(RuntimeHandle);

impl EngineControl for RuntimeControl {
    fn status(&self) -> Option<EngineStatus> {
        let status = self.0.status();
        Some(EngineStatus {
            role: match status.role {
                Role::Primary => EngineRole::Primary,
                Role::Standby => EngineRole::Standby,
            },
            applied_offset: status.applied_offset,
            log_end_offset: status.log_end_offset,
            last_snapshot: status.last_snapshot.map(|snapshot| SnapshotStatus {
                offset: snapshot.offset,
                at_ms: snapshot.at_ms,
            }),
            state_hash: status.state_hash,
            state_hash_offset: status.state_hash_offset,
            failure: status.failure,
        })
    }

    fn promote(&self) -> Result<(), String> {
        self.0
            .promote()
            .map(|_| ())
            .map_err(|error| error.to_string())
    }
}

/// How often start-up reports the engine's replay progress.
const REPLAY_REPORT_EVERY: Duration = Duration::from_secs(5);

pub(crate) fn run(
    settings: &Settings,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
) -> Result<(), ToolError> {
    cmd_ingress::warn_about_default_secrets(settings);
    let data_dir = data_dir.unwrap_or_else(|| settings.data_dir.clone());
    let listen = listen.unwrap_or_else(|| settings.http.listen.clone());
    if settings.log.kind != LogKind::Embedded {
        tracing::warn!("serve always runs on the embedded log; log.kind = kafka applies to `engine` and `ingress`");
    }
    let mut embedded = settings.clone();
    embedded.log.kind = LogKind::Embedded;
    let logs = cmd_engine::open_logs(&embedded, &data_dir)?;
    let store = cmd_engine::open_snapshots(settings, &data_dir)?;
    let runtime_logs = Logs {
        requests: Arc::clone(&logs.requests),
        outcomes: Arc::clone(&logs.outcomes),
    };
    let runtime = Runtime::start(
        cmd_engine::runtime_options(settings, Role::Primary),
        runtime_logs,
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
    let ingress = Ingress::start(
        cmd_ingress::ingress_config(settings),
        writer,
        reader,
        Some(Arc::new(RuntimeControl(handle.clone()))),
    )
    .map_err(ToolError::Invalid)?;
    let wait_for_engine = || loop {
        let (status, done) = handle.wait_for(REPLAY_REPORT_EVERY, |status| {
            status.failure.is_some()
                || (status.role == Role::Primary && status.caught_up() && status.published_all())
        });
        if done || status.failure.is_some() {
            break;
        }
        tracing::info!(applied_offset = ?status.applied_offset, log_end_offset = status.log_end_offset, "the engine is replaying the requests log");
    };
    let served = cmd_ingress::serve_http(&listen, &ingress, wait_for_engine);
    ingress.stop();
    let stopped = runtime.shutdown();
    served?;
    let status = stopped?;
    tracing::info!(applied_offset = ?status.applied_offset, state_hash = %status.state_hash, "stopped");
    Ok(())
}
