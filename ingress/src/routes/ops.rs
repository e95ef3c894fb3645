//! Operations: liveness, readiness, metrics, the engine's status and promotion, and the
//! OpenAPI document.

use crate::api::*;
use crate::error::{AppError, ErrorBody, Reason};
use crate::extract::{ApiJson, ApiPath, Operator};
use crate::state::{AppState, ShardState};
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
    let mut shards = Vec::new();
    for shard in state.shards() {
        shards.push(shard_readiness(&state, shard).await);
    }
    let (mut readiness, not_ready) = if shards.len() == 1 {
        shards.pop().expect("one shard")
    } else {
        // Every shard's model whole, and at least one shard selling: a shard that is down
        // answers 503 for its own events only (`submit`).
        let whole = shards.iter().all(|(shard, not_ready)| {
            shard.caught_up
                && !matches!(
                    not_ready,
                    Some((
                        Reason::OutcomesGap | Reason::OutcomesTruncated | Reason::CatchingUp,
                        _
                    ))
                )
        });
        let selling = shards.iter().any(|(shard, _)| shard.ready);
        let not_ready = if whole && selling {
            None
        } else {
            shards.iter().find_map(|(_, not_ready)| not_ready.clone())
        };
        let first = shards[0].0.clone();
        let readiness = Readiness {
            ready: not_ready.is_none(),
            shards: Some(shards.into_iter().map(|(shard, _)| shard).collect()),
            ..first
        };
        (readiness, not_ready)
    };
    let Some((reason, message)) = not_ready else {
        readiness.ready = true;
        return answer(StatusCode::OK, readiness.applied_offset, Json(readiness));
    };
    readiness.ready = false;
    let details = serde_json::to_value(&readiness).unwrap_or_default();
    AppError::unavailable(reason, message)
        .with_details(details)
        .into_response()
}

/// One shard's readiness, and why it is not ready (the first reason of [`readyz`]'s
/// list), if it is not.
async fn shard_readiness(
    state: &AppState,
    shard: &ShardState,
) -> (Readiness, Option<(Reason, String)>) {
    let writer = Arc::clone(&shard.writer);
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
    let follower = &shard.follower;
    let caught_up =
        follower.caught_up.load(Ordering::Acquire) && follower.running.load(Ordering::Acquire);
    let applied_offset = shard.model().applied_offset;
    let engine_failure = shard.engine.as_ref().and_then(|engine| engine.failure());
    let unanswered = requests_end_offset
        .is_some_and(|end| end > applied_offset.map_or(0, |applied| applied + 1));
    let silent = follower
        .silent_for()
        .is_some_and(|silent| silent >= state.config().outcome_timeout);
    let engine_answering = engine_failure.is_none() && !(unanswered && silent);
    if log_writable && !unanswered && silent {
        probe_engine(shard);
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
        shards: None,
    };
    if readiness.ready {
        return (readiness, None);
    }
    let not_ready = if let Some(failure) = &readiness.engine_failure {
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
    (readiness, Some(not_ready))
}

/// Nothing waits for an outcome and none has come for the outcome timeout: asks the
/// engine whether it answers with a `Tick` (it changes nothing but the engine's clock, as
/// the engine's own ticks do), so an engine that has gone while nothing was written is
/// noticed by the next readiness check after its timeout: the tick waits, unanswered. At
/// most one probe per outcome timeout, and only while readiness is asked.
fn probe_engine(shard: &ShardState) {
    let follower = Arc::clone(&shard.follower);
    follower.note_probe();
    let writer = Arc::clone(&shard.writer);
    let tick = engine::wire::encode_request(&engine::Request::new(engine::Command::Tick));
    tokio::task::spawn_blocking(move || {
        if let Err(error) = writer.append(vec![tick]) {
            tracing::warn!(%error, "readiness cannot append its probe tick");
        }
    });
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "OpenMetrics text format (Prometheus scrapes it)", body = String, content_type = "application/openmetrics-text")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.shared.metrics.render(
        &state.gauges(),
        state.long_polls() as u64,
        state.shared.feeds.streams() as u64,
    );
    // The effects worker next to this ingress (`serve`): its families go before the
    // exposition's closing `# EOF`, which must stay last.
    if let Some(effects) = state.shared.effects.get() {
        let worker = effects.metrics_text();
        let end = text.rfind("# EOF").unwrap_or(text.len());
        text.insert_str(end, &worker);
    }
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

pub(crate) fn configured_tenant(state: &AppState, tenant_id: &str) -> Result<(), AppError> {
    if state.shared.control.accounts().exists(tenant_id) {
        Ok(())
    } else {
        Err(tenant_not_found(tenant_id))
    }
}

/// 404 `tenant_not_found`.
pub(crate) fn tenant_not_found(tenant_id: &str) -> AppError {
    AppError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        Reason::TenantNotFound,
        format!("no tenant {tenant_id:?}"),
    )
}

fn placement(state: &AppState, tenant_id: String) -> TenantPlacement {
    TenantPlacement {
        shard: state.shared.control.pin(&tenant_id),
        tenant_id,
        shards: state.shard_count(),
    }
}

/// Where a tenant's new events go
///
/// The shard the tenant's new events and desks are placed on (from the control log), or
/// `null` when they are spread by request.
#[utoipa::path(get, path = "/v1/operator/tenants/{tenant_id}/placement", tag = "operations",
    params(("tenant_id" = String, Path)),
    responses((status = 200, description = "The tenant's placement", body = TenantPlacement), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "No such tenant", body = ErrorBody)),
    security(("operator_key" = [])))]
pub(crate) async fn get_placement(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(tenant_id): ApiPath<String>,
) -> Result<Json<TenantPlacement>, AppError> {
    configured_tenant(&state, &tenant_id)?;
    Ok(Json(placement(&state, tenant_id)))
}

/// Pin a tenant's new events to a shard
///
/// Appends the placement to the control log, which every ingress follows; answers once
/// this ingress applies it. Events already created stay on their shard (their ids say
/// which). `{"shard": null}` spreads the tenant's new events by request again.
#[utoipa::path(put, path = "/v1/operator/tenants/{tenant_id}/placement", tag = "operations",
    params(("tenant_id" = String, Path)), request_body = TenantPlacementBody,
    responses((status = 200, description = "Recorded in the control log and applied here", body = TenantPlacement), (status = 400, description = "No such shard (`details.field` = `shard`)", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "No such tenant", body = ErrorBody), (status = 409, description = "no_control_log: a single-shard deployment places everything on shard 0", body = ErrorBody), (status = 422, description = "tenant_pins_max", body = ErrorBody), (status = 503, description = "The control log cannot be written or read", body = ErrorBody)),
    security(("operator_key" = [])))]
pub(crate) async fn put_placement(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(tenant_id): ApiPath<String>,
    ApiJson(body): ApiJson<TenantPlacementBody>,
) -> Result<Json<TenantPlacement>, AppError> {
    use crate::control::PlaceError;
    configured_tenant(&state, &tenant_id)?;
    state
        .shared
        .control
        .set_pin(&tenant_id, body.shard, state.config().outcome_timeout)
        .await
        .map_err(|error| match error {
            PlaceError::NoControlLog => AppError::conflict(
                Reason::NoControlLog,
                "this deployment has one shard and no control log: every event is on shard 0",
            ),
            PlaceError::ShardOutOfRange { shard, shards } => AppError::field(
                "shard",
                format!(
                    "shard {shard} does not exist: shards are 0 to {}",
                    shards - 1
                ),
            ),
            PlaceError::TooManyPins => AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "limit_exceeded",
                Reason::TenantPinsMax,
                format!("at most {} tenants may be pinned", crate::control::PINS_MAX),
            ),
            PlaceError::Log(error) => {
                AppError::unavailable(Reason::LogNotWritable, format!("the control log: {error}"))
            }
        })?;
    Ok(Json(placement(&state, tenant_id)))
}

pub(crate) async fn openapi(State(state): State<AppState>) -> Response {
    let mut response = Json(crate::openapi::document_for(&state.config().engine)).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}

/// Erase a user (crypto-shredding)
///
/// Appends a `UserErased` record to the control log; every ingress that applies it
/// destroys the key that seals the user's id in its personal-data store, so attendee
/// exports show the user's bookings as `erased` and no replay brings the identity back.
/// The bookings themselves stay (seats stay sold, under the pseudonym); a user who comes
/// back gets a new pseudonym. Answered once this ingress has applied the record. The user
/// is named in the body, never in the URL (which access logs keep).
#[utoipa::path(post, path = "/v1/operator/users/erase", tag = "operations",
    request_body = EraseUserBody,
    responses((status = 200, description = "Recorded in the control log and applied here", body = UserErasure), (status = 400, description = "Neither or both of `user_id` and `pseudonym`, or a malformed one", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "unknown_user: no booking, hold or stored identity of that user here", body = ErrorBody), (status = 409, description = "user_erased: erased already", body = ErrorBody), (status = 422, description = "erased_users_max", body = ErrorBody), (status = 503, description = "The control log cannot be written or read", body = ErrorBody)),
    security(("operator_key" = [])))]
pub(crate) async fn erase_user(
    State(state): State<AppState>,
    _operator: Operator,
    ApiJson(body): ApiJson<EraseUserBody>,
) -> Result<Json<UserErasure>, AppError> {
    use crate::control::EraseError;
    use crate::privacy::{is_pseudonym, TokenScope, PSEUDONYM_CHARS};
    let shared = &state.shared;
    if body.tenant_id.is_some() && body.user_id.is_none() {
        return Err(AppError::field(
            "tenant_id",
            "tenant_id goes with user_id (a pseudonym names its scope already)",
        ));
    }
    if let Some(tenant) = &body.tenant_id {
        configured_tenant(&state, tenant)?;
    }
    let scope = match &body.tenant_id {
        Some(tenant) => TokenScope::Tenant(tenant),
        None => TokenScope::Deployment,
    };
    let pseudonym = match (body.user_id, body.pseudonym) {
        (Some(user_id), None) => {
            if user_id.trim().is_empty()
                || user_id.len() > crate::USER_ID_BYTES_MAX
                || user_id.chars().any(char::is_control)
            {
                return Err(AppError::field(
                    "user_id",
                    format!(
                        "user_id must be a user id of 1 to {} bytes without control characters",
                        crate::USER_ID_BYTES_MAX
                    ),
                ));
            }
            // The current generation: the one the user's requests act as today.
            shared
                .pseudonyms
                .current(scope, &user_id, |pseudonym| {
                    shared.control.is_erased(pseudonym)
                })
                .ok_or_else(|| AppError::conflict(Reason::UserErased, "this user is erased"))?
        }
        (None, Some(pseudonym)) => {
            if !is_pseudonym(&pseudonym) {
                return Err(AppError::bad_request(
                    Reason::MalformedPseudonym,
                    format!(
                        "pseudonym must be u_ and {} lowercase base32 characters",
                        PSEUDONYM_CHARS - 2
                    ),
                )
                .with_details(serde_json::json!({ "field": "pseudonym" })));
            }
            pseudonym
        }
        _ => {
            return Err(AppError::bad_request(
                Reason::InvalidBody,
                "give exactly one of user_id and pseudonym",
            ))
        }
    };
    if shared.control.is_erased(&pseudonym) {
        return Err(AppError::conflict(
            Reason::UserErased,
            format!("{pseudonym} is erased already"),
        ));
    }
    let stored = shared.personal.knows(&pseudonym).map_err(|error| {
        tracing::error!(%error, "the personal-data store failed");
        AppError::unavailable(
            Reason::PersonalDataUnavailable,
            "the personal-data store cannot be read; try again",
        )
    })?;
    let known = stored
        || state
            .models()
            .iter()
            .any(|model| model.user_bookings(&pseudonym).next().is_some());
    if !known {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            Reason::UnknownUser,
            "no booking or stored identity of that user on this ingress",
        ));
    }
    let control_offset = shared
        .control
        .erase_user(&pseudonym, state.config().outcome_timeout)
        .await
        .map_err(|error| match error {
            EraseError::NoControlLog => AppError::unavailable(
                Reason::NoControlLog,
                "this ingress has no control log to record the erasure in",
            ),
            EraseError::AlreadyErased => {
                AppError::conflict(Reason::UserErased, format!("{pseudonym} is erased already"))
            }
            EraseError::TooMany => AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "limit_exceeded",
                Reason::ErasedUsersMax,
                format!(
                    "at most {} users may be erased",
                    crate::control::ERASED_USERS_MAX
                ),
            ),
            EraseError::Log(error) => {
                AppError::unavailable(Reason::LogNotWritable, format!("the control log: {error}"))
            }
        })?;
    Ok(Json(UserErasure {
        pseudonym,
        control_offset,
    }))
}
