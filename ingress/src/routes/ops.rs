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

/// Readiness: the requests log is writable, the read model has caught up with the
/// outcomes log, and the engine answers.
///
/// Whether the engine answers: when it runs in this process (`boxoffice serve`), its
/// status says whether it has stopped on a failure, and readiness gives the reason. In
/// every deployment (and the only sign an ingress of Kafka mode has, the engine being
/// another process): the engine is not answering when requests wait for outcomes (the
/// requests log's end is past the last outcome the read model applied) and no new
/// outcome has come for the outcome timeout (`http.outcome_timeout_ms`), the time after
/// which a write gives up on its outcome and answers 503. An engine that is alive keeps
/// answering, even far behind; one that stopped while nothing is written is noticed once
/// something is written and goes unanswered.
///
/// `details` is the [`Readiness`] body plus `reason`: `engine_stopped`,
/// `log_not_writable`, `engine_not_answering` or `catching_up`.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Log writable, read model caught up, engine answering", body = Readiness), (status = 503, description = "Not ready; details say why", body = ErrorBody)))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let writer = Arc::clone(&state.shared.writer);
    let requests_end_offset = match tokio::time::timeout(
        LOG_CHECK_TIMEOUT,
        tokio::task::spawn_blocking(move || writer.end_offset()),
    )
    .await
    {
        Ok(Ok(Ok(end))) => Some(end),
        _ => None,
    };
    let log_writable = requests_end_offset.is_some();
    let follower = &state.shared.follower;
    let caught_up =
        follower.caught_up.load(Ordering::Acquire) && follower.running.load(Ordering::Acquire);
    let applied_offset = state.applied_offset();
    let engine_failure = state
        .shared
        .engine
        .as_ref()
        .and_then(|engine| engine.status())
        .and_then(|status| status.failure);
    let unanswered = requests_end_offset
        .is_some_and(|end| end > applied_offset.map_or(0, |applied| applied + 1));
    let silent = follower
        .silent_for()
        .is_some_and(|silent| silent >= state.config().outcome_timeout);
    let engine_answering = engine_failure.is_none() && !(unanswered && silent);
    let readiness = Readiness {
        ready: log_writable && caught_up && engine_answering,
        log_writable,
        caught_up,
        engine_answering,
        engine_failure,
        applied_offset,
        requests_end_offset,
        outcomes_position: follower.position.load(Ordering::Acquire),
        outcomes_end_offset: follower.end_offset.load(Ordering::Acquire),
    };
    if readiness.ready {
        return answer(StatusCode::OK, readiness.applied_offset, Json(readiness));
    }
    let (reason, message) = if let Some(failure) = &readiness.engine_failure {
        (
            Reason::EngineStopped,
            format!("the engine has stopped: {failure}"),
        )
    } else if !log_writable {
        (
            Reason::LogNotWritable,
            "the requests log is not writable".to_string(),
        )
    } else if !engine_answering {
        (
            Reason::EngineNotAnswering,
            format!(
                "the engine is not answering: requests wait for outcomes and none has come for {} ms",
                state.config().outcome_timeout.as_millis()
            ),
        )
    } else {
        (
            Reason::CatchingUp,
            "the read model is catching up with the outcomes log".to_string(),
        )
    };
    let details = serde_json::to_value(&readiness).unwrap_or_default();
    AppError::unavailable(reason, message)
        .with_details(details)
        .into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "OpenMetrics text format (Prometheus scrapes it)", body = String, content_type = "application/openmetrics-text")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.shared.metrics.render(&state.gauges());
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
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
