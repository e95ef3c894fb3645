//! Operations: liveness, readiness, metrics, the engine's status and promotion, and the
//! OpenAPI document.

use crate::api::*;
use crate::error::{AppError, ErrorBody, Reason};
use crate::extract::Operator;
use crate::state::AppState;
use crate::times;
use crate::views::answer;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How long readiness waits for the log to say it is writable.
const LOG_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process is alive", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Log writable and read model caught up", body = Readiness), (status = 503, description = "Not ready; details say why", body = ErrorBody)))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let writer = Arc::clone(&state.shared.writer);
    let log_writable = matches!(
        tokio::time::timeout(
            LOG_CHECK_TIMEOUT,
            tokio::task::spawn_blocking(move || writer.end_offset())
        )
        .await,
        Ok(Ok(Ok(_)))
    );
    let follower = &state.shared.follower;
    let caught_up =
        follower.caught_up.load(Ordering::Acquire) && follower.running.load(Ordering::Acquire);
    let readiness = Readiness {
        ready: log_writable && caught_up,
        log_writable,
        caught_up,
        applied_offset: state.applied_offset(),
        outcomes_position: follower.position.load(Ordering::Acquire),
        outcomes_end_offset: follower.end_offset.load(Ordering::Acquire),
    };
    if readiness.ready {
        return answer(StatusCode::OK, readiness.applied_offset, Json(readiness));
    }
    let details = serde_json::to_value(&readiness).unwrap_or_default();
    let (reason, message) = if log_writable {
        (
            Reason::CatchingUp,
            "the read model is catching up with the outcomes log",
        )
    } else {
        (Reason::LogNotWritable, "the requests log is not writable")
    };
    AppError::unavailable(reason, message)
        .with_details(details)
        .into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.shared.metrics.render(&state.gauges());
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn engine_status(state: &AppState) -> Result<EngineStatusResponse, AppError> {
    let engine =
        state.shared.engine.as_ref().ok_or_else(|| {
            AppError::unavailable(Reason::NoEngine, "no engine runs in this process")
        })?;
    let status = engine
        .status()
        .ok_or_else(|| AppError::unavailable(Reason::EngineStarting, "the engine is starting"))?;
    Ok(EngineStatusResponse {
        role: status.role.name().to_string(),
        applied_offset: status.applied_offset,
        log_end_offset: status.log_end_offset,
        last_snapshot: status.last_snapshot.map(|snapshot| SnapshotBody {
            offset: snapshot.offset,
            at: times::format(snapshot.at_ms),
        }),
        state_hash: status.state_hash,
        state_hash_offset: status.state_hash_offset,
    })
}

#[utoipa::path(get, path = "/v1/admin/engine", tag = "operations",
    responses((status = 200, description = "The engine's role, offsets, last snapshot and state hash", body = EngineStatusResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("operator_key" = [])))]
pub(crate) async fn engine(
    State(state): State<AppState>,
    _operator: Operator,
) -> Result<Json<EngineStatusResponse>, AppError> {
    engine_status(&state).map(Json)
}

#[utoipa::path(post, path = "/v1/admin/engine/promote", tag = "operations",
    responses((status = 200, description = "Promoted; the new status", body = EngineStatusResponse), (status = 409, description = "Cannot promote (already primary, ...)", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("operator_key" = [])))]
pub(crate) async fn promote(
    State(state): State<AppState>,
    _operator: Operator,
) -> Result<Json<EngineStatusResponse>, AppError> {
    let engine =
        state.shared.engine.clone().ok_or_else(|| {
            AppError::unavailable(Reason::NoEngine, "no engine runs in this process")
        })?;
    let result = tokio::task::spawn_blocking(move || engine.promote())
        .await
        .map_err(AppError::internal)?;
    result.map_err(|reason| AppError::conflict(Reason::PromotionRefused, reason))?;
    tracing::warn!("engine promoted to primary by the operator");
    engine_status(&state).map(Json)
}

pub(crate) async fn openapi() -> Response {
    let mut response = Json(crate::openapi::document()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}
