//! Operations: liveness, readiness, metrics, the engine's status and promotion, and the
//! OpenAPI document.

use crate::api::*;
use crate::error::{AppError, ErrorBody, Reason};
use crate::extract::Operator;
use crate::state::AppState;
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
/// something is written and goes unanswered: to notice that, readiness itself writes a
/// `Tick` once the engine has been silent for the outcome timeout while nothing waits
/// (`probe_engine`), so `/readyz` turns 503 within about two timeouts of an engine's end.
///
/// `details` is the [`Readiness`] body plus `reason`: `engine_stopped`,
/// `log_not_writable`, `engine_not_answering`, `outcomes_truncated`, `outcomes_gap` or
/// `catching_up`.
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
        .and_then(|engine| engine.failure());
    let unanswered = requests_end_offset
        .is_some_and(|end| end > applied_offset.map_or(0, |applied| applied + 1));
    let silent = follower
        .silent_for()
        .is_some_and(|silent| silent >= state.config().outcome_timeout);
    let engine_answering = engine_failure.is_none() && !(unanswered && silent);
    if log_writable && !unanswered && silent {
        probe_engine(&state);
    }
    let gap = follower.gap();
    let truncated = follower.truncated();
    let readiness = Readiness {
        ready: log_writable
            && caught_up
            && engine_answering
            && gap.is_none()
            && truncated.is_none(),
        log_writable,
        caught_up,
        engine_answering,
        engine_failure,
        applied_offset,
        requests_end_offset,
        outcomes_position: follower.position.load(Ordering::Acquire),
        outcomes_end_offset: follower.end_offset.load(Ordering::Acquire),
        outcomes_missing_from: gap.map(|(expected, _)| expected),
    };
    if readiness.ready {
        return answer(StatusCode::OK, readiness.applied_offset, Json(readiness));
    }
    let (reason, message) = if let Some(failure) = &readiness.engine_failure {
        (
            Reason::EngineStopped,
            format!("the engine has stopped: {failure}"),
        )
    } else if let Some((position, start_offset)) = truncated {
        (
            Reason::OutcomesTruncated,
            format!("the outcomes log now starts at record {start_offset}, but this ingress has read only up to record {position}: retention removed outcomes it has not applied; the read model is stale (restart it from a snapshot the log still covers)"),
        )
    } else if let Some((expected, seen)) = gap {
        (
            Reason::OutcomesGap,
            format!("the outcomes log has a gap: outcome {expected} never came (the next was {seen}); the read model is stale"),
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

/// Nothing waits for an outcome and none has come for the outcome timeout: asks the
/// engine whether it answers with a `Tick` (it changes nothing but the engine's clock, as
/// the engine's own ticks do), so an engine that has gone while nothing was written is
/// noticed by the next readiness check after its timeout: the tick waits, unanswered. At
/// most one probe per outcome timeout, and only while readiness is asked.
fn probe_engine(state: &AppState) {
    let follower = Arc::clone(&state.shared.follower);
    follower.note_probe();
    let writer = Arc::clone(&state.shared.writer);
    let tick = engine::wire::encode_request(&engine::Request::new(engine::Command::Tick));
    tokio::task::spawn_blocking(move || {
        if let Err(error) = writer.append(vec![tick]) {
            tracing::warn!(%error, "readiness cannot append its probe tick");
        }
    });
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

/// `/v1/admin/engine` and promotion on an ingress without an engine in its process: the
/// engine's own operator endpoint answers them (`boxoffice engine --operator-listen`).
pub(crate) async fn no_engine(_operator: Operator) -> AppError {
    AppError::unavailable(
        Reason::NoEngine,
        "no engine runs in this process: ask the engine's operator endpoint",
    )
}

/// Documentation only: the operator router of `boxoffice serve` and `boxoffice engine`
/// (`boxoffice/src/operator_http.rs`) serves this, and its tests check its answers against
/// this document.
#[utoipa::path(get, path = "/v1/admin/engine", tag = "operations",
    responses((status = 200, description = "The replica's role, offsets, last snapshot and state hash", body = EngineStatusResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, description = "No engine runs in this process (an ingress alone)", body = ErrorBody)),
    security(("operator_key" = [])))]
#[allow(dead_code)]
pub(crate) fn engine() {}

/// Documentation only, as [`engine`]: appends a `Promote` record naming this replica;
/// the role changes once the replica applies it (poll `GET /v1/admin/engine`).
#[utoipa::path(post, path = "/v1/admin/engine/promote", tag = "operations",
    responses((status = 202, description = "The Promote record is in the requests log", body = PromoteResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, description = "Already primary, or a promotion is under way", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("operator_key" = [])))]
#[allow(dead_code)]
pub(crate) fn promote() {}

/// Documentation only, as [`engine`]: the replica's requests log as JSON lines, one record a
/// line in the form of `boxoffice log export` (`{"offset","timestamp_ms","request"}`, or
/// `"undecodable"` with the reason), streamed. A load tester stores it in its recording
/// (from 0 to the status's `state_hash_offset`) so a replay can rebuild the exact log.
#[utoipa::path(get, path = "/v1/admin/engine/requests", tag = "operations",
    params(
        ("from" = Option<u64>, Query, description = "First offset (default 0)"),
        ("to" = Option<u64>, Query, description = "Last offset, inclusive (default: the log's last record when asked); past the end, the export stops at the end"),
    ),
    responses((status = 200, description = "The records from `from` through `to`, one JSON object a line", body = String, content_type = "application/x-ndjson"), (status = 400, description = "`from` or `to` is not an offset, or another parameter is given", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, description = "No engine runs in this process (an ingress alone)", body = ErrorBody)),
    security(("operator_key" = [])))]
#[allow(dead_code)]
pub(crate) fn requests_log() {}

pub(crate) async fn openapi(State(state): State<AppState>) -> Response {
    let mut response = Json(crate::openapi::document_for(&state.config().engine)).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}
